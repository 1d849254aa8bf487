"""jaxtut: classic beginner PyTorch tutorials in functional, jit-compiled JAX/Flax/Optax.

``import jaxtut`` never imports torch. Start from the catalogue::

    import jaxtut
    jaxtut.list_tutorials()
    result = jaxtut.get("mnist_mlp").run("jax")
"""

from jaxtut.errors import JaxtutError
from jaxtut.registry import TUTORIALS, get, ids
from jaxtut.result import RunResult

__version__ = "0.1.0"


def list_tutorials() -> list[str]:
    """Every tutorial id in catalogue order."""
    return list(ids())


__all__ = ["TUTORIALS", "JaxtutError", "RunResult", "__version__", "get", "ids", "list_tutorials"]
