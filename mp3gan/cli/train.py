"""Train mp3gan: flags only, then one library call.

    python launch/train.py --config configs/base.py --workdir workdir/base
    python launch/train.py --config configs/tiny.py --config.train.steps=100

Rerunning the same command resumes from the work directory's latest checkpoint (a
changed data path, model, loss or degradations is refused: use a new --workdir, or
--allow_config_change). --workdir defaults to workdir/<config file name>. Every field
of the config can be set as --config.SECTION.FIELD=VALUE; configs/base.py lists them
all, each with a comment (the data fields with their meanings in mp3gan/data/loader.py,
DATA_DEFAULTS). Ctrl-C or SIGTERM saves a checkpoint and stops.

Several processes (hosts, or GPUs under SLURM) train one model together when launched as
a multi-process job: under ``srun`` with several tasks, ``mpirun``, on a Cloud TPU VM, or
with an explicit coordinator (docs/CLUSTER.md):

    python launch/train.py --config configs/base.py --workdir /shared/base \\
        --coordinator_address=host0:1234 --num_processes=2 --process_id=0   # and =1
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
import signal
import sys
from pathlib import Path
from types import FrameType

from absl import app, flags, logging
from ml_collections import config_flags

# The flags live in absl's one global registry, under this module's name: importing it
# twice, or beside launch/train.py (which only imports it), defines each flag once.
_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Work directory (checkpoints, logs, media); default workdir/<config name>."
)
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed",
    "auto",
    ["auto", "on", "off"],
    "Join a multi-process job: auto = when launched as one (SLURM/MPI with several "
    "tasks, a Cloud TPU VM, or a coordinator given); on = always (JAX detects the "
    "cluster); off = never.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0's coordinator (default: $JAX_COORDINATOR_ADDRESS).",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes in the job (default: $JAX_NUM_PROCESSES).", lower_bound=1
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index (default: $JAX_PROCESS_ID).", lower_bound=0
)
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change",
    False,
    "Resume a work directory even though the config's data, model, loss or degradations "
    "differ from the ones it was started with.",
)
flags.mark_flags_as_required(["config"])

PROG = "train.py"


def _config_file(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _unknown_override(argv: list[str]) -> str | None:
    """The first ``--config.a.b=…`` naming no field of the config, with close matches."""
    path = _config_file(argv)
    if path is None or not Path(path).is_file():
        return None
    spec = importlib.util.spec_from_file_location("config_for_help", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    for arg in argv:
        match = re.match(r"--config\.([\w.]+)", arg)
        if not match:
            continue
        node, walked = config, []
        for part in match.group(1).split("."):
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if part not in keys:
                close = difflib.get_close_matches(part, keys, n=3)
                prefix = ".".join(walked)
                hint = ", ".join(f"{prefix}.{c}" if prefix else c for c in close)
                hint = f" (did you mean {hint}?)" if hint else ""
                return f"unknown config field {match.group(1)!r}{hint}; see {path}"
            node, walked = node[part], [*walked, part]
    return None


def _configs_importable(argv: list[str]) -> None:
    """Config files import each other as ``configs.*``: put the folder above a config's
    ``configs/`` folder on ``sys.path``, from whatever directory the command runs."""
    path = _config_file(argv)
    if path is None:
        return
    folder = Path(path).expanduser().resolve().parent
    if folder.name == "configs" and str(folder.parent) not in sys.path:
        sys.path.insert(0, str(folder.parent))
    # A config kept elsewhere may still build on this checkout's configs/base.py.
    from mp3gan.cli import REPO

    if (REPO / "configs").is_dir() and str(REPO) not in sys.path:
        sys.path.append(str(REPO))


def parse_flags(argv: list[str], prog: str = PROG) -> list[str]:
    """absl's flag parsing, with ``--help`` exiting 0 and every mistake in one line."""
    if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in argv[1:]):
        print(__doc__)
        print(flags.FLAGS.module_help(sys.modules[__name__]))
        sys.exit(0)
    _configs_importable(argv)
    try:
        return flags.FLAGS(argv)
    except Exception as e:  # noqa: BLE001 - config overrides raise all kinds of errors
        message = _unknown_override(argv) or str(e).strip().splitlines()[0].strip("'\"")
        sys.exit(f"{prog}: error: {message} (--help lists the flags)")


class _Interrupted(KeyboardInterrupt):
    """SIGTERM during start-up, raised like Ctrl-C so the same clean-up runs."""


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise _Interrupted


def main(argv: list[str], prog: str = PROG) -> int | None:
    """absl's ``main``, on parsed flags: train, or one line and an exit status."""
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from mp3gan import distributed

    try:  # before anything touches a device
        distributed.initialize(
            _DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
        )
    except distributed.DistributedError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)  # one line, not absl's flag list
        return 2
    import jax

    from mp3gan import checkpoint, data, train

    config = _CONFIG.value
    workdir = _WORKDIR.value or f"workdir/{Path(flags.FLAGS['config'].config_filename).stem}"
    if not jax.distributed.is_initialized():
        # A lone process: SIGTERM during start-up (corpus, loader, compile) unwinds like
        # Ctrl-C, so the loader's workers are stopped; the training loop itself turns
        # both into "save and stop". In a job, JAX's preemption service owns SIGTERM.
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        train.train_and_evaluate(config, workdir, allow_config_change=_ALLOW_CHANGE.value)
    except train.ConfigError as e:  # raised before any work, by its first check
        print(f"{prog}: error: {e}", file=sys.stderr)  # one line, not absl's flag list
        return 2
    except (data.DataError, FloatingPointError, checkpoint.CheckpointError) as e:  # one line
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        name = "SIGTERM" if isinstance(e, _Interrupted) else "SIGINT"
        print(
            f"{prog}: stopped by {name} before a checkpoint could be written for the "
            "current step; rerun the same command to resume from the last one",
            file=sys.stderr,
        )
        sys.exit(143 if name == "SIGTERM" else 130)


def run(prog: str = "mp3gan-train") -> None:
    """The ``mp3gan-train`` console script (``launch/train.py`` runs it as ``train.py``)."""
    app.run(
        functools.partial(main, prog=prog),
        flags_parser=functools.partial(parse_flags, prog=prog),
    )
