"""Train mp3gan: flags only, then one library call.

    python launch/train.py --config configs/base.py --workdir workdir/base
    python launch/train.py --config configs/tiny.py --config.train.steps=100

Rerunning the same command resumes from the work directory's latest checkpoint.

Several processes (hosts, or GPUs under SLURM) train one model together when launched as
a multi-process job: under ``srun`` with several tasks, ``mpirun``, on a Cloud TPU VM, or
with an explicit coordinator (docs/CLUSTER.md):

    python launch/train.py --config configs/base.py --workdir /shared/base \\
        --coordinator_address=host0:1234 --num_processes=2 --process_id=0   # and =1
"""

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

# Config files import each other as `configs.*`; make the repo root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (checkpoints, logs).")
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
flags.mark_flags_as_required(["config"])


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from mp3gan import distributed

    try:  # before anything touches a device
        distributed.initialize(
            _DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
        )
    except distributed.DistributedError as e:
        raise app.UsageError(str(e)) from None
    from mp3gan import checkpoint, data, train

    config = _CONFIG.value
    workdir = _WORKDIR.value or f"workdir/{Path(flags.FLAGS['config'].config_filename).stem}"
    try:
        train.train_and_evaluate(config, workdir)
    except train.ConfigError as e:  # raised before any work, by its first check
        raise app.UsageError(str(e)) from None
    except (data.DataError, FloatingPointError, checkpoint.CheckpointError) as e:  # one line
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    app.run(main)
