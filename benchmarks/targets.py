"""The project's performance targets, checked against one run's results.

Each target states its threshold, the value this run measured, whether it is met, and a note:
how the value was obtained, and for a miss, by how much it missed, why (from profiling on the
machine the targets were set on) and what would close the gap. CPU targets are judged on CPU
runs, GPU targets on GPU runs; the others are still listed with their measured value and
``met: null``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Results = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Target:
    """One target.

    Attributes:
      id: a stable name.
      description: what is promised, in words.
      device: ``"cpu"`` or ``"gpu"``: where it is judged.
      op: ``">="`` or ``"<="``.
      threshold: the bound.
      unit: ``"x"`` (a ratio), ``"s"`` or ``"GB/s"``.
      measure: ``results -> (value or None, how it was measured)``.
      why: the cause of a miss and what would close it (shown only when missed).
    """

    id: str
    description: str
    device: str
    op: str
    threshold: float
    unit: str
    measure: Callable[[Results], tuple[float | None, str]]
    why: str = ""


def _variant(results: Results, tutorial: str, variant: str) -> dict[str, Any] | None:
    for record in results.get("training", []):
        if record["tutorial"] == tutorial:
            return next((v for v in record["variants"] if v["variant"] == variant), None)
    return None


def _fused_vs_eager(
    tutorial: str, threshold: float
) -> Callable[[Results], tuple[float | None, str]]:
    def measure(results: Results):
        fused = _variant(results, tutorial, "jax_fused")
        eager = _variant(results, tutorial, "torch_eager")
        if fused is None or eager is None:
            return None, f"{tutorial} was not benchmarked"
        how = (
            f"torch eager / JAX fused, median per step of the default run "
            f"({eager['per_step_s']['median'] * 1e6:.1f} us eager, "
            f"{fused['per_step_s']['median'] * 1e6:.3f} us fused)"
        )
        marginal = fused.get("marginal")
        if marginal and marginal["per_step_s"]:
            step, fixed = marginal["per_step_s"], marginal["per_call_overhead_s"]
            how += (
                f"; split by a {marginal['steps_long_run']}-step run into "
                f"{step * 1e9:.1f} ns per step ({marginal['ratio_vs_torch_eager']:,.0f}x eager) "
                f"and {fixed * 1e6:.0f} us fixed per call"
            )
            # Steps a run needs before its per-step time (fixed / steps + step) meets the bound.
            budget = eager["per_step_s"]["median"] / threshold - step
            if budget > 0 and fixed > 0:
                how += f"; a run of >= {fixed / budget:,.0f} steps would meet the bound"
            elif budget <= 0:
                how += "; even the per-step cost alone misses the bound"
        return fused["ratio_vs_torch_eager"], how

    return measure


def _mnist_vs_compile(results: Results):
    fused = _variant(results, "mnist_mlp", "jax_fused")
    compiled = _variant(results, "mnist_mlp", "torch_compile")
    if fused is None or compiled is None:
        return None, "torch.compile of mnist_mlp was not measured (--quick or --no-torch-compile)"
    ratio = compiled["per_epoch_s"]["median"] / fused["per_epoch_s"]["median"]
    return ratio, (
        f"torch.compile epoch {compiled['per_epoch_s']['median']:.3f} s (after "
        f"{compiled['compile_s']:.1f} s compiling) / fused {fused['per_epoch_s']['median']:.3f} s"
    )


def _mnist_vs_floor(results: Results):
    for row in results.get("roofline", {}).get("models", []):
        if row["tutorial"] == "mnist_mlp" and "conventional" in row:
            conv, minimal = row["conventional"], row["minimal"]
            gemms = row["gemm_only_epoch"]
            return conv["epoch_over_floor"], (
                f"fused epoch {row['fused_epoch_s']:.3f} s / floor {conv['matmul_floor_s']:.3f} s "
                f"(39.3 GFLOP at the measured peak {results['roofline']['peak']['peak_gflops']:.0f}"
                f" GFLOP/s); counting only the matmuls training needs (27.3 GFLOP), the floor is "
                f"{minimal['matmul_floor_s']:.3f} s and the epoch "
                f"{minimal['epoch_over_floor']:.2f}x it; the step's matmuls alone at their real "
                f"shapes take {gemms['seconds']['median']:.3f} s per epoch "
                f"({gemms['fraction_of_peak']:.0%} of peak) and the fused epoch is "
                f"{gemms['fused_epoch_over_it']:.2f}x that"
            )
    return None, "mnist_mlp roofline not measured"


def _seeds_per_model(tutorial: str):
    def measure(results: Results):
        for record in results.get("seeds", []):
            if record["tutorial"] == tutorial:
                row = next((r for r in record["counts"] if r["k"] == 64), None)
                if row is None:
                    break
                single = record["single_run"]["seconds"]["median"]
                return row["per_model_vs_single"], (
                    f"K=64 vmapped: {row['jax_per_model_s'] * 1e3:.3f} ms per model vs "
                    f"{single * 1e3:.3f} ms for one plain fused run "
                    f"({record['steps_per_model']} steps per model)"
                )
        return None, f"{tutorial} many-seeds not measured"

    return measure


def _gpu_seeds_wall(results: Results):
    for record in results.get("seeds", []):
        if record["tutorial"] == "mnist_mlp":
            rows = {r["k"]: r for r in record["counts"]}
            if 1 in rows and 64 in rows:
                one = rows[1]["jax_total_s"]["median"]
                many = rows[64]["jax_total_s"]["median"]
                return many / one, f"K=64 {many:.4f} s / K=1 {one:.4f} s (vmapped JAX)"
    return None, "mnist_mlp many-seeds not measured"


def _gpu_sin(results: Results):
    sin = results.get("micro", {}).get("sin", {})
    rows = {
        r["name"]: r for r in sin.get("sin", []) if r["dtype"] == "float32"
    }  # the JAX kernel's throughput (back to back) where measured, else one waited call
    waited = rows.get("jax jit(sin), donated")
    chosen = rows.get("jax jit(sin) x10 back-to-back") or waited
    if chosen is None:
        return None, "sin not measured"
    how = f"JAX {chosen['name']}, float32, {sin['n']}^2 elements"
    if waited is not None and chosen is not waited:
        how += f"; one call waited for each time: {waited['effective_gbps']:.0f} GB/s"
    torch_best = max(
        (r["effective_gbps"] for r in rows.values() if r["framework"] == "torch"), default=None
    )
    if torch_best is not None:
        how += f"; torch best {torch_best:.0f} GB/s"
    return chosen["effective_gbps"], how


def _gpu_mnist_epoch(results: Results):
    fused = _variant(results, "mnist_mlp", "jax_fused")
    if fused is None:
        return None, "mnist_mlp not benchmarked"
    return fused["per_epoch_s"]["median"], "median fused JAX epoch (batch 64, 938 steps)"


TARGETS = (
    Target(
        "mnist_mlp_fused_vs_eager",
        "mnist_mlp fused JAX epoch >= 2.0x faster than torch eager",
        "cpu",
        ">=",
        2.0,
        "x",
        _fused_vs_eager("mnist_mlp", 2.0),
    ),
    Target(
        "mnist_mlp_fused_vs_compile",
        "mnist_mlp fused JAX epoch >= 1.8x faster than torch.compile",
        "cpu",
        ">=",
        1.8,
        "x",
        _mnist_vs_compile,
    ),
    Target(
        "mnist_mlp_fused_vs_floor",
        "mnist_mlp fused JAX epoch within 1.5x of the matmul floor",
        "cpu",
        "<=",
        1.5,
        "x",
        _mnist_vs_floor,
    ),
    Target(
        "perceptron_fused_vs_eager",
        "perceptron fused JAX >= 2000x faster per step than torch eager",
        "cpu",
        ">=",
        2000.0,
        "x",
        _fused_vs_eager("perceptron", 2000.0),
    ),
    Target(
        "mlp_1_10_1_fused_vs_eager",
        "mlp_1_10_1 fused JAX >= 2000x faster per step than torch eager",
        "cpu",
        ">=",
        2000.0,
        "x",
        _fused_vs_eager("mlp_1_10_1", 2000.0),
    ),
    Target(
        "logreg_fused_vs_eager",
        "logreg_breast_cancer fused JAX >= 10x faster per epoch than torch eager",
        "cpu",
        ">=",
        10.0,
        "x",
        _fused_vs_eager("logreg_breast_cancer", 10.0),
    ),
    Target(
        "seeds_mnist_mlp_per_model",
        "64 vmapped mnist_mlp seeds: time per model <= 1.1x a single run",
        "cpu",
        "<=",
        1.1,
        "x",
        _seeds_per_model("mnist_mlp"),
    ),
    Target(
        "seeds_perceptron_per_model",
        "64 vmapped perceptron seeds: time per model <= 1.1x a single run (far better expected)",
        "cpu",
        "<=",
        1.1,
        "x",
        _seeds_per_model("perceptron"),
    ),
    Target(
        "gpu_seeds_mnist_wall",
        "GPU: 64 mnist_mlp seeds in <= 2x the wall time of one",
        "gpu",
        "<=",
        2.0,
        "x",
        _gpu_seeds_wall,
    ),
    Target(
        "gpu_sin_bandwidth",
        "GPU: sin float32 at >= 2.5 TB/s effective",
        "gpu",
        ">=",
        2500.0,
        "GB/s",
        _gpu_sin,
    ),
    Target(
        "gpu_mnist_mlp_epoch",
        "GPU: mnist_mlp fused epoch <= 30 ms",
        "gpu",
        "<=",
        0.030,
        "s",
        _gpu_mnist_epoch,
    ),
)

# Why a target was missed, and what would close it, from profiling on the machines the targets
# were set for (a 2-core AMD EPYC for the CPU targets, an H100 for the GPU ones). Shown in a
# target's note only when it is missed; the measured figures are in the note beside it.
WHY: dict[str, str] = {
    "mnist_mlp_fused_vs_floor": (
        "Why: the floor prices every FLOP at the rate of a 2048^2 GEMM, but this model's matmuls "
        "are 64 x 784 x 128 and smaller, which XLA:CPU runs at about a third to a half of that "
        "rate; the roofline section measures the step's matmuls alone, at their real shapes in "
        "one compiled loop, and they already take most of the epoch. The rest is the batch "
        "gather, ReLUs, log-softmax and NLL, the SGD update and the final test evaluation. "
        "Closing it: bigger GEMMs (a larger batch gives the same FLOPs in fewer, larger "
        "products) or faster small-GEMM kernels in XLA:CPU; the training loop itself is not "
        "where the time goes."
    ),
    "perceptron_fused_vs_eager": (
        "Why: a default run is only 600 steps, and every call of the fused program pays a fixed "
        "cost (launching the executable, one small buffer per parameter, optimizer slot, loss "
        "and metric in and out, the final evaluation) that outweighs the steps themselves; the "
        "per-step cost alone beats eager by far more than the bound (the split above). Closing "
        "it: fewer, larger buffers per call (parameters and optimizer state packed into one "
        "array, metrics only on request) or longer runs; training many seeds per call already "
        "divides the per-model cost (see the many-seeds table)."
    ),
    "mlp_1_10_1_fused_vs_eager": (
        "Why: besides the fixed cost per call (as for the perceptron), each step costs ~20x the "
        "perceptron's although it has only 31 weights. Its compiled loop body is 11 fused "
        "kernels and 5 copies per step (the perceptron's: 6 and 3), and XLA:CPU's runtime pays "
        "a dispatch per kernel per iteration. Profiling supports this: unrolling the "
        "perceptron's step loop 6x (a bigger body, the same arithmetic) raised its per-step "
        "cost from ~12 ns to ~280 ns, the 1-10-1 network's level, while unrolling the 1-10-1 "
        "loop changed nothing; the body's shape, not its arithmetic, sets the cost. Closing it "
        "needs a runtime that executes such loop bodies as one compiled function (or a step "
        "that compiles to fewer kernels); even the per-step cost alone reaches only about half "
        "the bound."
    ),
    "gpu_mnist_mlp_epoch": (
        "Why: a step of this model is ~42 MFLOP (64 samples), about a microsecond of H100 "
        "work, so an epoch is bound by the small kernels each of its 938 steps launches from "
        "XLA's while loop (~37 us per step), not by arithmetic. Measured on an H100: "
        "unrolling the step scan 4-16x (fewer loop iterations, more fusion across steps) "
        "brought the epoch from 35 ms to about 30-31 ms; running the loop as a CUDA graph "
        "(--xla_gpu_enable_command_buffer with WHILE) made it slower (40 ms). Closing it: an "
        "unrolled step scan on GPU (a change to jaxtut.train.fit), or larger batches."
    ),
    "gpu_sin_bandwidth": (
        "Why: when every call is waited for, each ~0.3 ms kernel also pays JAX's launch and "
        "synchronisation latency; launched back to back the same kernel streams at ~2.85 TB/s "
        "on an H100. Closing it: judge the kernel by the back-to-back figure, or keep "
        "programs from waiting after every op."
    ),
    "gpu_seeds_mnist_wall": (
        "Why: one MNIST model leaves an H100 almost idle (launch-bound, see the epoch target), "
        "but 64 models make every step 64 x 64 samples of float32 matmuls at full precision "
        "(no TF32, for parity): ~2.7 GFLOP per step, already ~50 us at the measured float32 "
        "GEMM peak, as batched small GEMMs that run well below it. The 64-seed program is "
        "therefore compute-bound, not launch-bound. Closing it: TF32 or bf16 matmuls (which "
        "the parity rule excludes here), or fewer seeds per program."
    ),
    "seeds_mnist_mlp_per_model": (
        "Why: vmapped, each matmul becomes a batch of independent small matmuls, run at about "
        "the small-GEMM rate of one model's, on cores a single run already keeps busy. A "
        "profile without the test evaluation (100 steps per model) gave per-model time 0.59x a "
        "single run at K = 8 but 1.08-1.13x at K = 16, 32 and 64. The likeliest cause (no "
        "hardware counters on this VM to confirm it): beyond ~8 models, the models' "
        "parameters, momentum buffers and gradients (~1.3 MB per model) and the gathered "
        "batches outgrow the 32 MB L3 cache, and every step streams them from memory. So 64 "
        "seeds sit right at "
        "this bound and run-to-run noise decides it (see the min-max spread). Closing it: "
        "train 64 seeds as 8 programs of 8 (a change to the caller, not to the program)."
    ),
}


def evaluate(results: Results, device: str, quick: bool) -> list[dict[str, Any]]:
    """Every target with its measured value, threshold, ``met`` (or ``None``) and a note."""
    out = []
    for target in TARGETS:
        value, how = target.measure(results)
        applies = target.device == device
        met = None
        if applies and value is not None:
            met = value >= target.threshold if target.op == ">=" else value <= target.threshold
        note = how
        if not applies:
            note = f"judged on {target.device} runs only; {how}"
        elif value is None:
            note = f"not measured: {how}"
        elif not met:
            if target.op == ">=":
                short = f"{value / target.threshold:.2f}x of the bound ({target.threshold:g})"
            else:
                short = f"{value / target.threshold:.2f}x the bound ({target.threshold:g})"
            note = f"MISSED: {short}. {how}. {WHY.get(target.id, target.why)}".strip()
        if quick and value is not None:
            note += " [--quick run: reduced sizes and repeats, not the committed figure]"
        out.append(
            {
                "id": target.id,
                "description": target.description,
                "device": target.device,
                "op": target.op,
                "threshold": target.threshold,
                "unit": target.unit,
                "measured": value,
                "met": met,
                "note": note,
            }
        )
    return out
