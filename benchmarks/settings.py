"""What one benchmark invocation measures and how big: the full run or the ``--quick`` one."""

from __future__ import annotations

import dataclasses

from benchmarks.timing import MIN_TIMED_S

# The benchmarks that are not training tutorials, selectable by name like tutorial ids.
SECTIONS = ("roofline", "seeds", "sin", "normal_equation")
MNIST_IDS = ("mnist_logreg", "mnist_mlp")
SEED_IDS = ("mnist_mlp", "perceptron")
ROOFLINE_IDS = ("mnist_mlp", "mnist_logreg")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and switches of one invocation.

    Attributes:
      device: ``"cpu"`` or ``"gpu"``.
      repeats: timed repeats per measurement (after the untimed first call).
      quick: the smoke-test sizes (see :meth:`create`).
      training_ids: training tutorials to time.
      sections: which of :data:`SECTIONS` to run.
      mnist_steps: steps per timed MNIST run; ``None`` for a whole epoch (938 or 600 steps).
        Fewer steps are timed in ``--quick`` and the epoch time is extrapolated, which the
        results say.
      compile_ids: tutorials that also get a ``torch.compile`` variant (compiling costs 5-20 s per
        tutorial on a 2-core CPU).
      seed_counts: numbers of models trained at once in the many-seeds benchmark.
      max_mnist_seeds: the largest of ``seed_counts`` used for MNIST (the quick run stops at 8:
        every vmapped MNIST call spends seconds outside the timed program, see docs).
      seeds_mnist_steps: steps per model in the many-seeds MNIST runs.
      seeds_perceptron_epochs: epochs per model in the many-seeds perceptron runs.
      sin_n: the ``sin`` benchmark's matrix is ``sin_n x sin_n``.
      gemm_n: the matmul-peak benchmark multiplies two ``gemm_n x gemm_n`` float32 matrices.
      marginal_factor: the fused per-step marginal cost is measured with this many times the
        default epochs (small tutorials only).
      min_timed_s: a run shorter than :data:`~benchmarks.timing.SHORT_RUN_S` is sampled until
        this many of its seconds are timed (:func:`~benchmarks.timing.steady_samples`); the
        quick run takes a tenth, since each sample of a catalogue run also pays its untimed
        set-up.
    """

    device: str
    repeats: int
    quick: bool
    training_ids: tuple[str, ...]
    sections: tuple[str, ...]
    mnist_steps: int | None
    compile_ids: tuple[str, ...]
    seed_counts: tuple[int, ...]
    max_mnist_seeds: int
    seeds_mnist_steps: int
    seeds_perceptron_epochs: int
    sin_n: int
    gemm_n: int
    marginal_factor: int
    min_timed_s: float

    @classmethod
    def create(
        cls,
        *,
        device: str,
        repeats: int | None,
        quick: bool,
        training_ids: tuple[str, ...],
        sections: tuple[str, ...],
        torch_compile: bool = True,
    ) -> Settings:
        """The settings for a full run, or the cut-down ``quick`` ones (under 2 min on 2 cores)."""
        gpu = device == "gpu"
        # torch.compile costs 5-20 s per tutorial here; the quick run compiles one tiny model.
        compile_ids = tuple(i for i in training_ids if i == "perceptron") if quick else training_ids
        return cls(
            device=device,
            repeats=repeats or (3 if quick else 5),
            quick=quick,
            training_ids=training_ids,
            sections=sections,
            mnist_steps=100 if quick else None,
            compile_ids=compile_ids if torch_compile else (),
            seed_counts=(1, 8, 64),
            max_mnist_seeds=8 if quick else 64,
            seeds_mnist_steps=20 if quick else 200,
            seeds_perceptron_epochs=10 if quick else 100,
            sin_n=4_000 if quick else 10_000,
            gemm_n=8192 if gpu else (1024 if quick else 2048),
            marginal_factor=10,
            min_timed_s=MIN_TIMED_S / 10 if quick else MIN_TIMED_S,
        )
