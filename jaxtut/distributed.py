"""Several processes (on one host or many) training one data-parallel run with JAX's runtime.

Every process runs the same command. :func:`initialize` joins ``jax.distributed`` (CPU
collectives over gloo); after that, ``jax.devices()`` lists the devices of every process, and a
mesh over all of them (:func:`jaxtut.scaling.device_mesh`) makes :func:`jaxtut.train.train`
split every global batch over all processes' devices. What each process does:

* it loads the whole data set and computes the same batch plan (same seed, same files), so the
  batches are the same everywhere without any exchange of indices;
* it feeds only its own slice of every global batch into the global index arrays
  (``jax.make_array_from_process_local_data``); the replicated arrays (parameters, optimizer
  state, the data gathered from) are fed whole;
* it runs the same compiled program; XLA's collectives (gloo on the CPU, NCCL on GPUs) sum the
  loss and gradients over the global batch;
* the outputs are replicated, so every process holds the whole result; only process 0
  (:func:`is_primary`) prints and writes files.

No scheduler of our own is involved: launch the processes with whatever starts processes on your
machines (a shell loop, ``srun``, ``mpirun``, Kubernetes), passing each its process id, or let
``jax.distributed.initialize`` read them from the environment (``JAX_COORDINATOR_ADDRESS``,
SLURM, Open MPI, Kubernetes). See ``docs/scaling.md``.
"""

from __future__ import annotations

import os
import socket

from jaxtut.errors import ConfigError

# The address variable jax.distributed.initialize reads when no coordinator is given.
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 120,
) -> tuple[int, int]:
    """Joins the distributed runtime; call it before anything else uses JAX.

    Args:
      coordinator: ``HOST:PORT`` where process 0 serves the coordination service (every process
        passes the same); ``None`` reads ``JAX_COORDINATOR_ADDRESS`` or a cluster's environment.
      num_processes: how many processes take part; ``None`` lets JAX read it from a cluster's
        environment (SLURM, Open MPI, Kubernetes).
      process_id: this process's index in ``0 .. num_processes - 1``; ``None`` as above.
      timeout_s: how long to wait for every process to join.

    Returns:
      ``(process index, process count)``.

    Raises:
      ConfigError: bad arguments, JAX already started, or the processes could not connect.
    """
    initialize_checks(coordinator, num_processes, process_id)
    import jax

    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    # gloo is JAX's default for cross-process collectives on the CPU; pinned so that a changed
    # default cannot silently turn a run into one that fails at its first collective.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=timeout_s,
        )
    except (ValueError, RuntimeError, TypeError) as err:
        message = " ".join(str(err).split())
        raise ConfigError(
            f"could not join the distributed run ({message}); every process needs the same "
            "--coordinator HOST:PORT and --num-processes, and its own --process-id, given "
            f"before JAX starts (or {COORDINATOR_ENV} and a cluster's environment)"
        ) from None
    return jax.process_index(), jax.process_count()


def initialize_checks(
    coordinator: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """The checks of :func:`initialize` that need no JAX: raises :class:`ConfigError`."""
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes must be at least 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError(
            f"--process-id must be in 0..{num_processes - 1} for {num_processes} processes, "
            f"got {process_id}"
        )
    if coordinator is not None:
        parse_address(coordinator)


def is_primary() -> bool:
    """True in process 0 (or when not distributed): the process that prints and writes files."""
    import jax

    return jax.process_index() == 0


def parse_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; raises :class:`ConfigError` on anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"expected HOST:PORT for the coordinator, got {address!r}")
    return host.strip("[]"), int(port)


def coordinator_host(coordinator: str | None) -> str | None:
    """The coordinator's host from the flag or ``JAX_COORDINATOR_ADDRESS``, if either is set."""
    address = coordinator or os.environ.get(COORDINATOR_ENV)
    return parse_address(address)[0] if address else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def shared_port(host: str) -> int:
    """A free port chosen by process 0 on ``host`` and broadcast to every process.

    Used to rendezvous a second runtime (PyTorch's process group) beside JAX's: process 0 hosts
    both, so the port must be free on its host.
    """
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    port = free_port(host) if jax.process_index() == 0 else 0
    return int(multihost_utils.broadcast_one_to_all(np.asarray(port, np.int32)))


def torch_address(coordinator: str | None) -> str:
    """``HOST:PORT`` for PyTorch's rendezvous beside JAX's: process 0's host, a shared free port.

    Raises:
      ConfigError: no coordinator is known (neither the flag nor ``JAX_COORDINATOR_ADDRESS``).
    """
    host = coordinator_host(coordinator)
    if host is None:
        raise ConfigError(
            "parity across processes needs --coordinator HOST:PORT (or "
            "JAX_COORDINATOR_ADDRESS): process 0's host also serves PyTorch's rendezvous"
        )
    return f"{host}:{shared_port(host)}"


def parity_across_processes(tutorial_id: str, config, *, steps: int | None, launch):
    """``jaxtut parity`` as one of several processes: ``(pair, checks)``.

    Like :func:`jaxtut.parity.parity`, with the JAX mesh over every process's devices and the
    torch side as ``DistributedDataParallel``; ``launch`` is the command's
    :class:`jaxtut.launch.Launch` (already joined).
    """
    from jaxtut.parity import check_pair

    pair = run_parity(
        tutorial_id,
        config,
        steps=steps,
        torch_address=torch_address(launch.coordinator),
        devices=launch.devices,
    )
    return pair, check_pair(pair, config.dtype)


def run_parity(
    tutorial_id: str,
    config,
    *,
    plan=None,
    steps: int | None = None,
    torch_address: str | None = None,
    devices: int | None = None,
):
    """A P-process JAX run against a P-process PyTorch (``DistributedDataParallel``) run.

    Both start from the torch reference's initial parameters for ``config.seed`` and split every
    global batch of the shared plan the same way over the processes. Call it in every process,
    after :func:`initialize`.

    Args:
      tutorial_id: a tutorial that :mod:`jaxtut.torch_ref.distributed` supports.
      config: the shared config.
      plan: optional plan override.
      steps: compare only the first ``steps`` steps (as :func:`jaxtut.parity.parity` does).
      torch_address: ``HOST:PORT`` for PyTorch's rendezvous; ``None`` joins an already
        initialized process group.
      devices: the JAX mesh's size: ``None`` or the total device count of all processes.

    Returns:
      A :class:`jaxtut.parity.Pair` (identical in every process).
    """
    import jax

    from jaxtut import registry, scaling
    from jaxtut.parity import Pair, shared_init
    from jaxtut.torch_ref import distributed as torch_dist

    tutorial = registry.get(tutorial_id)
    torch_dist.check_supported(tutorial_id)
    if steps is not None:  # the supported tutorials are batched: the first steps of the plan
        from jaxtut.parity import truncate

        plan = truncate(tutorial.experiment(config).plan, steps)
    init = shared_init(tutorial_id, config)
    jax_result = scaling.run(
        tutorial_id,
        config,
        mesh=scaling.device_mesh(devices, device=config.device),
        init_params=init,
        plan=plan,
    )
    if torch_address is not None:
        torch_dist.init_process_group(torch_address, jax.process_count(), jax.process_index())
    torch_result = torch_dist.run_ddp(tutorial.id, config, init, plan=plan)
    return Pair(tutorial.id, config, init, jax_result, torch_result)
