"""Multi-process (multi-host) training: joining a ``jax.distributed`` job, and agreeing.

JAX runs one Python process per host (or per GPU, as SLURM launches it); each process
feeds its local devices from its own shard of the data, and the train step's ``pmean``
spans every device of every process. This module is the one home for:

- :func:`initialize`: join the job when the program was launched as one (SLURM, Open MPI,
  a Cloud TPU VM, or an explicit coordinator address / process count / process id from
  flags or ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``);
- :func:`agree`: process 0's value on every process. Anything that decides whether a
  collective runs (a checkpoint save by wall time, a best-model save after an evaluation
  that only process 0 runs) must be decided once and shared, or the processes wait on
  each other forever; :func:`barrier`: wait for all processes. Both wait on JAX's
  coordination service, not on a device collective, so one process may take long
  (an evaluation, a compilation) without the others' collectives timing out;
- :func:`assert_same`: fail early, with a readable message, when processes were started
  with different configs or work directories;
- :class:`PreemptionWatch`: a SIGTERM (a scheduler's notice before it kills the job) as a
  request to save and stop at a step every process agrees on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import jax
import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")

MODES = ("auto", "on", "off")
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # read by JAX itself as well
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
_GOOGLE_PCI_VENDOR = "0x1ae0"  # Cloud TPU chips show up as PCI devices of this vendor


class DistributedError(RuntimeError):
    """A multi-process job cannot be joined as asked (the message says why and what to do)."""


def _count(environ: Mapping[str, str], name: str) -> int:
    try:
        return int(environ.get(name, "1"))
    except ValueError:
        return 1


def _on_cloud_tpu_vm() -> bool:
    if importlib.util.find_spec("libtpu") is None:
        return False
    vendors = Path("/sys/bus/pci/devices").glob("*/vendor")
    return any(p.read_text().strip() == _GOOGLE_PCI_VENDOR for p in vendors if p.is_file())


def detect_launcher(environ: Mapping[str, str] | None = None) -> str | None:
    """The multi-process launcher this process runs under, or None for a lone process.

    ``"explicit"``: a coordinator address in the environment; ``"slurm"``: an ``srun``
    step with more than one task; ``"openmpi"``: ``mpirun`` with more than one rank;
    ``"tpu"``: a Cloud TPU VM (JAX reads the pod's layout from the VM's metadata).
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_COORDINATOR):
        return "explicit"
    # The variables JAX's own SLURM detection reads (SLURM_STEP_NODELIST: inside srun).
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_LOCALID")
    if all(k in env for k in slurm) and _count(env, "SLURM_NTASKS") > 1:
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in env and _count(env, "OMPI_COMM_WORLD_SIZE") > 1:
        return "openmpi"
    if environ is None and _on_cloud_tpu_vm():
        return "tpu"
    return None


def _int_or_none(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DistributedError(f"{name} must be an integer, got {value!r}") from None


def _check_layout(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    if coordinator_address is not None:
        host, _, port = coordinator_address.rpartition(":")
        if not host or not port.isdigit():
            raise DistributedError(
                f"coordinator address must be HOST:PORT (process 0's host and a free "
                f"port), got {coordinator_address!r}"
            )
    if num_processes is not None and process_id is not None:
        if not 0 <= process_id < num_processes:
            raise DistributedError(f"process_id {process_id} not in [0, {num_processes})")


def initialize(
    mode: str = "auto",
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Join a multi-process job when launched as one; returns whether it did.

    ``mode``: ``"auto"`` joins when :func:`detect_launcher` finds a launcher or any of
    the three arguments is given; ``"on"`` always joins (JAX detects what is not given:
    SLURM, Open MPI, Cloud TPU, Kubernetes); ``"off"`` never does. The arguments
    default to ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``.
    Must run before anything touches a JAX device.
    """
    if mode not in MODES:
        raise DistributedError(f"distributed mode must be one of {MODES}, got {mode!r}")
    if mode == "off":
        return False
    if jax.distributed.is_initialized():
        return True  # the caller's program joined already
    env = os.environ if environ is None else environ
    coordinator_address = coordinator_address or env.get(ENV_COORDINATOR) or None
    num_processes = _int_or_none(
        num_processes if num_processes is not None else env.get(ENV_NUM_PROCESSES),
        "num_processes",
    )
    process_id = _int_or_none(
        process_id if process_id is not None else env.get(ENV_PROCESS_ID), "process_id"
    )
    explicit = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    launcher = detect_launcher(environ)
    managed = launcher not in (None, "explicit")  # the launcher tells JAX the layout
    given = any(v is not None for v in explicit.values())
    if mode == "auto" and not managed and not given:
        return False
    missing = [name for name, value in explicit.items() if value is None]
    if mode == "auto" and not managed and missing:
        raise DistributedError(
            "a multi-process job needs a coordinator address, a process count and a "
            f"process id; missing {', '.join(missing)} (flags --{' --'.join(missing)}, "
            f"or {ENV_COORDINATOR} / {ENV_NUM_PROCESSES} / {ENV_PROCESS_ID})"
        )
    _check_layout(coordinator_address, num_processes, process_id)
    # CPU processes reduce over gloo (the default in recent JAX; older ones had none).
    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in env:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    except RuntimeError as e:
        if "must be called before" in str(e):
            raise DistributedError(
                "jax.distributed.initialize must run first thing in the program, before "
                f"any JAX computation ({e})"
            ) from None
        raise
    except ValueError as e:  # JAX found no launcher to fill in what was not given
        raise DistributedError(
            f"cannot join a multi-process job: {e}; pass --coordinator_address, "
            "--num_processes and --process_id, or --distributed=off to train alone"
        ) from None
    log.info(
        "joined a %d-process job as process %d (%s): %d local of %d devices",
        *(jax.process_count(), jax.process_index(), launcher or "explicit"),
        *(jax.local_device_count(), jax.device_count()),
    )
    return True


def is_main() -> bool:
    """Whether this is process 0, the one that logs and evaluates."""
    return jax.process_index() == 0


# How long a process waits for the others at a decision or barrier: process 0 may be
# evaluating, or compiling while the others found the program in the compilation cache.
WAIT_S = 3600
_SEQUENCE = itertools.count()  # every process makes the same calls in the same order


def _coordinator():
    """The coordination service's client (key-value store, barriers), or None.

    Waiting there, not in a device collective, matters: a CPU (gloo) collective gives up
    after 30 s, far less than an evaluation or a compilation can take. JAX has no public
    accessor for the client yet; ``multihost_utils`` reads the same attribute.
    """
    return jax_internal_state().client


def jax_internal_state():
    """JAX's own distributed state: its coordination-service ``client`` and its
    ``preemption_sync_manager``.

    Private API (``jax._src.distributed.global_state``), read in this one place: JAX has
    no public accessor for either yet. If a JAX release moves it, this says so plainly
    (and ``tests/test_distributed.py`` fails on it) instead of an AttributeError deep in
    a training run.
    """
    try:
        from jax._src import distributed as jax_distributed

        state = jax_distributed.global_state
    except (ImportError, AttributeError) as e:
        raise DistributedError(
            f"jax {jax.__version__} no longer has jax._src.distributed.global_state, which "
            "mp3gan reads for the coordination client; mp3gan.distributed needs updating"
        ) from e
    missing = [a for a in ("client", "preemption_sync_manager") if not hasattr(state, a)]
    if missing:
        raise DistributedError(
            f"jax {jax.__version__}: jax._src.distributed.global_state has no "
            f"{', '.join(missing)}; mp3gan.distributed needs updating"
        )
    return state


def _from_main(text: str, timeout_s: float) -> str:
    """Process 0's ``text`` on every process, through the coordination service."""
    key = f"mp3gan/from_main/{next(_SEQUENCE)}"
    client = _coordinator()
    if is_main():
        client.key_value_set(key, text)
        return text
    return client.blocking_key_value_get(key, int(timeout_s * 1000))


def agree(value: float | bool | None, timeout_s: float = WAIT_S) -> float | None:
    """Process 0's value (as a float; ``None`` stays ``None``) on every process.

    The identity in a single process. Every process must call it at the same point.
    """
    if jax.process_count() == 1:
        return None if value is None else float(value)
    if _coordinator() is None:  # processes without the service (a TPU pod never initialized)
        from jax.experimental import multihost_utils

        x = np.float32(np.nan if value is None else float(value))
        out = float(multihost_utils.broadcast_one_to_all(x))
        return None if math.isnan(out) else out
    out = json.loads(_from_main(json.dumps(None if value is None else float(value)), timeout_s))
    return None if out is None else float(out)


def on_main(fn: Callable[[], T], what: str, timeout_s: float = WAIT_S) -> T | None:
    """Run ``fn`` on process 0 alone (the others return ``None`` once it is done).

    If it raises, every process raises: process 0 its own error, the others a
    :class:`DistributedError` naming ``what`` failed, so none is left waiting at the
    next collective until a timeout. Every process must call it at the same point.
    """
    if jax.process_count() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below, after telling the others
            error = e
    if _coordinator() is None:
        failed = agree(error is not None, timeout_s)
        message = "see process 0's log"
    else:
        message = _from_main("" if error is None else f"{type(error).__name__}: {error}", timeout_s)
        failed = bool(message)
    if error is not None:
        raise error
    if failed:
        raise DistributedError(f"process 0 failed while {what} ({message})")
    return result


def barrier(name: str, timeout_s: float = WAIT_S) -> None:
    """Wait until every process gets here (a no-op for one process)."""
    if jax.process_count() == 1:
        return
    client = _coordinator()
    if client is None:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
        return
    client.wait_at_barrier(f"mp3gan/{name}/{next(_SEQUENCE)}", int(timeout_s * 1000))


def assert_same(text: str, what: str, timeout_s: float = WAIT_S) -> None:
    """Raise on every process unless all hold the same ``text`` (a no-op for one process)."""
    if jax.process_count() == 1:
        return
    digest = hashlib.sha256(text.encode()).hexdigest()
    client = _coordinator()
    if client is None:
        from jax.experimental import multihost_utils

        mine = np.frombuffer(bytes.fromhex(digest)[:16], np.int32)
        gathered = np.asarray(multihost_utils.process_allgather(mine))
        digests = [row.tobytes().hex() for row in gathered]
    else:
        key = f"mp3gan/same/{next(_SEQUENCE)}"
        client.key_value_set(f"{key}/{jax.process_index()}", digest)
        digests = [
            client.blocking_key_value_get(f"{key}/{i}", int(timeout_s * 1000))
            for i in range(jax.process_count())
        ]
    differs = [i for i, d in enumerate(digests) if d != digests[0]]
    if differs:
        raise DistributedError(
            f"processes {differs} run with a different {what} than process 0; start every "
            "process with the same command"
        )


class PreemptionWatch:
    """Turns SIGTERM (and, in a lone process, Ctrl-C) into "save and stop at this step",
    agreed by every process.

    In a multi-process job JAX's preemption service receives SIGTERM and picks the step
    (``multihost_utils.reached_preemption_sync_point``: the step after the furthest
    process's), so that all processes save together; with the service switched off
    (``jax_enable_preemption_service=False``) SIGTERM is left to its default. A lone
    process catches SIGTERM and SIGINT itself while the watch is open (``with``), and
    stops after the current step; a second Ctrl-C stops at once.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self._received = threading.Event()
        self._previous: dict[int, object] = {}
        self.signal_name = "SIGTERM"

    def __enter__(self) -> PreemptionWatch:
        if not jax.distributed.is_initialized():
            try:
                for signum in self.SIGNALS:
                    self._previous[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: signals cannot be caught here
                self._previous = {}
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        del frame
        if self._received.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
        self.signal_name = signal.Signals(signum).name
        self._received.set()

    def should_stop(self, step: int) -> bool:
        """Call at every step, on every process: whether to save now and stop."""
        if jax.distributed.is_initialized():
            from jax.experimental import multihost_utils

            if jax_internal_state().preemption_sync_manager is None:
                return False  # the service is switched off
            return multihost_utils.reached_preemption_sync_point(step)
        return self._received.is_set()
