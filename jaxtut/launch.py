"""How a command scales out: its --seeds, --devices and multi-process options, checked and joined.

Everything here runs before JAX or torch does any work, so a bad combination of options costs
nothing (docs/scaling.md). :class:`Launch` holds the options; :meth:`Launch.check` refuses what
cannot work, :meth:`Launch.join` joins a multi-process run and says whether this process is the
primary one (the only one that prints and writes files), :meth:`Launch.mesh` builds the
data-parallel mesh the options ask for.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxtut.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Launch:
    """The scaling options of one command.

    Attributes:
      seeds: train this many seeds (``None``: one run).
      devices: split every batch over this many devices of one process (JAX).
      coordinator, num_processes, process_id: one process of a multi-process run.
      distributed: join a multi-process run configured by the environment.
      init, save: whether ``--init`` / ``--save`` were given (they exclude ``--seeds``).
    """

    seeds: int | None = None
    devices: int | None = None
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    distributed: bool = False
    init: bool = False
    save: bool = False

    @classmethod
    def from_args(cls, args: Any) -> Launch:
        """The options of an argparse namespace (absent ones are off)."""
        names = [f.name for f in dataclasses.fields(cls)]
        values = {n: getattr(args, n, None) for n in names}
        values["distributed"] = bool(values["distributed"])
        values["init"], values["save"] = bool(values["init"]), bool(values["save"])
        return cls(**values)

    @property
    def multi_process(self) -> bool:
        """Whether the command is one process of a multi-process run."""
        given = (self.coordinator, self.num_processes, self.process_id)
        return self.distributed or any(v is not None for v in given)

    def check(self, tutorial: Any, framework: str) -> None:
        """Refuses combinations of options that cannot work, with one line each."""
        used = [
            flag
            for flag, on in (
                ("--seeds", self.seeds),
                ("--devices", self.devices),
                ("--num-processes", self.multi_process),
            )
            if on
        ]
        if used and not tutorial.trains:
            raise ConfigError(
                f"{tutorial.id} is not a training tutorial; drop {' and '.join(used)}"
            )
        if self.multi_process:
            from jaxtut.distributed import initialize_checks

            initialize_checks(self.coordinator, self.num_processes, self.process_id)
        if framework == "torch":
            self._check_torch(tutorial)
        if self.seeds and self.init:
            raise ConfigError("--seeds draws each seed's own initial parameters; drop --init")
        if self.seeds and self.save:
            raise ConfigError(
                "--save writes one model; with --seeds, --json holds every seed's final parameters"
            )

    def _check_torch(self, tutorial: Any) -> None:
        if self.devices:
            raise ConfigError(
                "--devices splits the JAX program over devices; the torch reference runs "
                "data-parallel as processes (--coordinator, --num-processes, --process-id)"
            )
        if self.seeds and self.multi_process:
            raise ConfigError(
                "torch runs --seeds one after another in one process; drop the distributed options"
            )
        if self.multi_process:
            from jaxtut.torch_ref.distributed import check_supported

            check_supported(tutorial.id)
            given = [v is not None for v in (self.coordinator, self.num_processes, self.process_id)]
            if any(given) and not all(given):
                raise ConfigError(
                    "the torch run needs all of --coordinator, --num-processes and --process-id "
                    "(or none, with --distributed, to read torchrun's MASTER_ADDR, MASTER_PORT, "
                    "WORLD_SIZE and RANK)"
                )

    def join(self, framework: str) -> bool:
        """Joins the multi-process run when asked (before JAX starts); True in the primary."""
        if not self.multi_process:
            return True
        if framework == "torch":
            from jaxtut.torch_ref.distributed import init_process_group

            rank, _ = init_process_group(self.coordinator, self.num_processes, self.process_id)
            return rank == 0
        from jaxtut.distributed import initialize

        rank, _ = initialize(self.coordinator, self.num_processes, self.process_id)
        return rank == 0

    def mesh(self, device: str):
        """The data-parallel mesh that --devices or the multi-process options ask for, else None."""
        if self.devices is None and not self.multi_process:
            return None
        from jaxtut.scaling import device_mesh

        return device_mesh(self.devices, device=device)

    def prepare(self, tutorial: Any, config: Any, framework: str) -> tuple[bool, Any]:
        """Checks the options, joins the run, checks the device(s): ``(primary, mesh or None)``.

        ``framework`` is ``"jax"``, ``"torch"`` or ``"parity"`` (both frameworks; the JAX side
        may be data-parallel, the torch side runs as processes).
        """
        self.check(tutorial, "jax" if framework == "parity" else framework)
        if framework == "parity" and self.multi_process:
            from jaxtut.torch_ref.distributed import check_supported

            check_supported(tutorial.id)
        primary = self.join("torch" if framework == "torch" else "jax")
        for side in ("jax", "torch") if framework == "parity" else (framework,):
            check_device(config.device, side)
        return primary, None if framework == "torch" else self.mesh(config.device)


def run_benchmarks(argv: list[str]) -> int:
    """``jaxtut bench``: the source tree's benchmarks (not shipped in a wheel), given ``argv``."""
    import sys
    from pathlib import Path

    import jaxtut
    from jaxtut.errors import JaxtutError

    root = Path(jaxtut.__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__init__.py").is_file():
        raise JaxtutError(
            f"'jaxtut bench' needs the repository's benchmarks/ folder, which is not next to "
            f"this installation ({root}); run it from a source checkout (pip install -e .)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import benchmarks

    return benchmarks.main(argv)


def check_device(device: str, framework: str) -> None:
    """Fails early, with the devices that do exist, when the requested device is absent."""
    if framework == "jax":
        from jaxtut.runtime import resolve_jax_device

        resolve_jax_device(device)
    else:
        from jaxtut.torch_ref._common import torch_device

        torch_device(device)
