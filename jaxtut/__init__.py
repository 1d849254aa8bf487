"""jaxtut: classic beginner PyTorch tutorials in functional, jit-compiled JAX/Flax/Optax.

``import jaxtut`` never imports torch. Start from the catalogue::

    import jaxtut
    jaxtut.list_tutorials()
    result = jaxtut.get("mnist_mlp").run("jax")

and check your own model's JAX port against its torch original with :func:`jaxtut.compare`
(docs/compare.md).
"""

from jaxtut.errors import JaxtutError
from jaxtut.registry import TUTORIALS, get, ids
from jaxtut.result import RunResult

__version__ = "0.1.0"


def list_tutorials() -> list[str]:
    """Every tutorial id in catalogue order."""
    return list(ids())


def __getattr__(name: str):
    # jaxtut.compare imports JAX when first used, so that `import jaxtut` stays light.
    if name == "compare":
        from jaxtut.harness import compare

        return compare
    raise AttributeError(f"module 'jaxtut' has no attribute {name!r}")


__all__ = [
    "TUTORIALS",
    "JaxtutError",
    "RunResult",
    "__version__",
    "compare",
    "get",
    "ids",
    "list_tutorials",
]
