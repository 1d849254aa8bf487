"""The source tutorials' micro-benchmarks, done right.

``sin`` of a 10,000 x 10,000 matrix: the source timed one call per library, the first one, with
allocation, lazy initialisation and (on the GPU) asynchronous launch all mixed in. Here each
library computes it in place or into a preallocated buffer where it can (NumPy ``out=``, torch
``sin_``/``out=``, JAX ``jit`` with the input donated), after a warm-up call, with the device
synchronised around every timed call, the host-to-device copy timed on its own, and the result
expressed as effective bandwidth (bytes read + bytes written per second) against the memory
bandwidth measured in the same run by a large copy.

The 10 x 5 normal equation: per-call latency of ``(X^T X)^-1 X^T y`` (the source's formula) and of
the three fits of :mod:`jaxtut.tutorials.normal_equation`, in NumPy, torch and jitted JAX. A problem
this small measures call overhead, not arithmetic, which is what it is reported as.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.settings import Settings
from benchmarks.timing import BENCH_TRACES, Stats, clock, no_recompile, per_call, timed_repeats


def _repeat(fn: Callable[[], Any], repeats: int, device: Any = None, label: str = "sin"):
    return timed_repeats(
        fn, repeats, label=label, traces=lambda: BENCH_TRACES["micro"], torch_device=device
    )


def _row(name, framework, dtype, op, first, stats, traffic_bytes, note="") -> dict[str, Any]:
    return {
        "name": name,
        "framework": framework,
        "dtype": dtype,
        "op": op,
        "first_call_s": first,
        "seconds": stats.to_dict(),
        "bytes_moved": traffic_bytes,
        "effective_gbps": traffic_bytes / stats.median / 1e9,
        "note": note,
    }


def bench_sin(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """``sin`` of an ``n x n`` matrix in NumPy, torch and JAX, float32 and float64.

    Returns:
      ``{"n", "copy": [rows], "sin": [rows], "h2d": [rows], "memory_bandwidth_gbps"}``; each sin
      row also carries ``fraction_of_bandwidth``.
    """
    import jax
    import jax.numpy as jnp
    import torch

    from jaxtut.configs import Config
    from jaxtut.runtime import jax_runtime
    from jaxtut.torch_ref._common import torch_runtime

    n, repeats = settings.sin_n, settings.repeats
    gpu = settings.device == "gpu"
    rng = np.random.default_rng(0)
    host = {"float64": rng.random((n, n))}
    host["float32"] = host["float64"].astype(np.float32)
    copies, sins, h2d = [], [], []

    def add(rows, row):
        rows.append(row)
        log(
            f"  {row['op']:<5} {row['name']:<26} {row['dtype']:<8} {row['seconds']['median']:8.4f}"
            f" s  {row['effective_gbps']:8.1f} GB/s"
        )

    # NumPy (host memory; on a GPU machine it measures the host, reported all the same).
    for dtype in ("float32", "float64"):
        src = host[dtype]
        traffic = 2 * src.nbytes  # read the input, write the output
        buf = src.copy()
        if dtype == "float32":
            first, stats = _repeat(lambda buf=buf, src=src: np.copyto(buf, src), repeats)
            add(copies, _row("numpy copyto", "numpy", dtype, "copy", first, stats, traffic))
        first, stats = _repeat(lambda buf=buf: np.sin(buf, out=buf), repeats)
        add(sins, _row("numpy sin(out=x)", "numpy", dtype, "sin", first, stats, traffic))
        if dtype == "float32":
            first, stats = _repeat(lambda src=src: np.sin(src), repeats)
            add(
                sins,
                _row(
                    "numpy sin (allocating)",
                    "numpy",
                    dtype,
                    "sin",
                    first,
                    stats,
                    traffic,
                    "a new output array per call (allocation and first-touch page faults)",
                ),
            )
        del buf

    # torch
    with torch_runtime(Config(device=settings.device)) as device:
        for dtype in ("float32", "float64"):
            src = torch.from_numpy(host[dtype])
            traffic = 2 * host[dtype].nbytes
            if gpu:
                first, stats = _repeat(lambda src=src: src.to(device), repeats, device)
                nbytes = host[dtype].nbytes
                add(h2d, _row("torch .to(cuda)", "torch", dtype, "h2d", first, stats, nbytes))
            x = src.to(device, copy=True)
            out = torch.empty_like(x)
            if dtype == "float32":
                first, stats = _repeat(lambda x=x, out=out: out.copy_(x), repeats, device)
                add(copies, _row("torch copy_", "torch", dtype, "copy", first, stats, traffic))
            first, stats = _repeat(lambda x=x: torch.sin_(x), repeats, device)
            add(sins, _row("torch sin_ (in place)", "torch", dtype, "sin", first, stats, traffic))
            if gpu:
                stats = _back_to_back(lambda x=x: torch.sin_(x), repeats, device)
                add(
                    sins,
                    _row(
                        BACK_TO_BACK.format("torch sin_"),
                        "torch",
                        dtype,
                        "sin",
                        None,
                        stats,
                        traffic,
                        BACK_TO_BACK_NOTE,
                    ),
                )
            first, stats = _repeat(lambda x=x, out=out: torch.sin(x, out=out), repeats, device)
            add(sins, _row("torch sin(out=)", "torch", dtype, "sin", first, stats, traffic))
            del x, out
            if gpu:
                torch.cuda.empty_cache()

    # JAX: the output buffer is the donated input's, so the chain x <- sin(x) runs in place.
    def sin(x):
        BENCH_TRACES["micro"] += 1
        return jnp.sin(x)

    def add_constant(x, c):
        BENCH_TRACES["micro"] += 1
        return x + c  # a traced scalar: XLA cannot fold it away, so this is a real copy pass

    for dtype in ("float32", "float64"):
        with jax_runtime(dtype, settings.device) as device:
            traffic = 2 * host[dtype].nbytes
            if gpu:
                first, stats = _repeat(
                    lambda dtype=dtype: jax.device_put(host[dtype], device), repeats, label="h2d"
                )
                nbytes = host[dtype].nbytes
                add(h2d, _row("jax device_put", "jax", dtype, "h2d", first, stats, nbytes))
            state = [jax.device_put(host[dtype], device)]
            if dtype == "float32":
                # Donated too, so that the pass streams through memory instead of paging in a
                # fresh output buffer every call (which a non-donated jit would allocate).
                shift = jax.jit(add_constant, donate_argnums=0)
                c = jnp.asarray(0.5, dtype)
                chain = _donating_chain(lambda x, shift=shift, c=c: shift(x, c), state)
                first, stats = _repeat(chain, repeats)
                add(copies, _row("jax x + c, donated", "jax", dtype, "copy", first, stats, traffic))
            chain = _donating_chain(jax.jit(sin, donate_argnums=0), state)
            first, stats = _repeat(chain, repeats)
            add(sins, _row("jax jit(sin), donated", "jax", dtype, "sin", first, stats, traffic))
            if gpu:
                stats = _back_to_back(chain, repeats)
                add(
                    sins,
                    _row(
                        BACK_TO_BACK.format("jax jit(sin)"),
                        "jax",
                        dtype,
                        "sin",
                        None,
                        stats,
                        traffic,
                        BACK_TO_BACK_NOTE,
                    ),
                )
            state.clear()

    bandwidth = max(r["effective_gbps"] for r in copies if _on_device(r, gpu))
    for row in sins:
        row["fraction_of_bandwidth"] = (
            row["effective_gbps"] / bandwidth if _on_device(row, gpu) else None
        )
    return {
        "n": n,
        "elements": n * n,
        "copy": copies,
        "sin": sins,
        "h2d": h2d,
        "memory_bandwidth_gbps": bandwidth,
        "bandwidth_source": "fastest large copy on the benchmark's device, same run",
    }


# On a GPU, each call above is waited for, which adds the launch-and-wait latency to a kernel of a
# few hundred microseconds. The back-to-back rows launch this many calls and wait once, so they
# measure the kernel's own throughput (what a program that does not wait after every op sees).
PIPELINE = 10
BACK_TO_BACK = "{} x10 back-to-back"
BACK_TO_BACK_NOTE = "per call, 10 calls launched before one wait: the kernel's own throughput"


def _back_to_back(fn: Callable[[], Any], repeats: int, device: Any = None) -> Stats:
    """Per-call time of ``PIPELINE`` calls launched back to back, then waited for once."""

    def batch():
        out = None
        for _ in range(PIPELINE):
            out = fn()
        return out

    _, stats = _repeat(batch, repeats, device)
    return stats.scaled(1 / PIPELINE)


def _donating_chain(fn: Callable[[Any], Any], state: list[Any]) -> Callable[[], Any]:
    """A call of ``state[0] = fn(state[0])``: each output becomes the next (donated) input."""

    def step():
        state[0] = fn(state[0])
        return state[0]

    return step


def _on_device(row: dict[str, Any], gpu: bool) -> bool:
    """Whether a row ran on the benchmark's device (NumPy always runs on the host)."""
    return not gpu or row["framework"] != "numpy"


def bench_normal_equation(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Per-call latency of the 10 x 5 normal equation in NumPy, torch and jitted JAX."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxtut.configs import NormalEquationConfig
    from jaxtut.runtime import jax_runtime
    from jaxtut.torch_ref import normal_equation as torch_ne
    from jaxtut.torch_ref._common import tensor, torch_runtime
    from jaxtut.tutorials import normal_equation as ne

    config = NormalEquationConfig(device=settings.device)
    x, y = ne.normal_equation_data(config)
    rows = []

    def add(framework: str, op: str, stats: Stats, compile_s: float | None = None) -> None:
        rows.append(
            {
                "framework": framework,
                "op": op,
                "per_call_s": stats.to_dict(),
                "compile_s": compile_s,
            }
        )
        log(f"  normal_equation {framework:<6} {op:<22} {stats.median * 1e6:9.2f} us/call")

    repeats = settings.repeats
    add("numpy", "inverse formula", per_call(lambda: np.linalg.inv(x.T @ x) @ (x.T @ y), repeats))
    add("numpy", "all three fits", per_call(lambda: ne.fit_numpy(x, y), repeats))

    with torch_runtime(config) as device:
        xt, yt = tensor(x, config, device=device), tensor(y, config, device=device)

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def torch_inverse():
            out = torch.inverse(xt.T @ xt) @ (xt.T @ yt)
            sync()
            return out

        def torch_all():
            out = torch_ne.fit(xt, yt)
            sync()
            return out

        add("torch", "inverse formula", per_call(torch_inverse, repeats))
        add("torch", "all three fits", per_call(torch_all, repeats))

    def inverse(x, y):
        BENCH_TRACES["micro"] += 1
        hi = jax.lax.Precision.HIGHEST
        return jnp.matmul(
            jnp.linalg.inv(jnp.matmul(x.T, x, precision=hi)),
            jnp.matmul(x.T, y, precision=hi),
            precision=hi,
        )

    from jaxtut.train import TRACE_COUNTS

    with jax_runtime(config.dtype, config.device) as device:
        xd, yd = jax.device_put((x, y), device)
        for op, fn in (("inverse formula", inverse), ("all three fits", ne.fit)):
            jitted = jax.jit(fn)
            _, compile_s = clock(lambda jitted=jitted: jitted(xd, yd))
            with no_recompile(
                f"normal_equation jax {op}",
                lambda: BENCH_TRACES["micro"],
                lambda: TRACE_COUNTS["normal_equation"],
            ):
                stats = per_call(
                    lambda jitted=jitted: jax.block_until_ready(jitted(xd, yd)), repeats
                )
            add("jax", op, stats, compile_s)

    torch_time = {r["op"]: r["per_call_s"]["median"] for r in rows if r["framework"] == "torch"}
    for row in rows:
        row["ratio_vs_torch"] = torch_time[row["op"]] / row["per_call_s"]["median"]
    return {
        "config": config.to_dict(),
        "shape": list(x.shape),
        "rows": rows,
        "note": "per call, result waited for; a 10 x 5 problem measures call overhead",
    }
