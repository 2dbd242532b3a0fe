"""Train mp3gan: flags only, then one library call.

    python launch/train.py --config configs/base.py --workdir workdir/base
    python launch/train.py --config configs/tiny.py --config.train.steps=100

Rerunning the same command resumes from the work directory's latest checkpoint.
"""

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

# Config files import each other as `configs.*`; make the repo root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory (checkpoints, logs).")
flags.mark_flags_as_required(["config"])


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from mp3gan import train

    config = _CONFIG.value
    workdir = _WORKDIR.value or f"workdir/{Path(flags.FLAGS['config'].config_filename).stem}"
    train.train_and_evaluate(config, workdir)


if __name__ == "__main__":
    app.run(main)
