"""One process of the multi-process training test (tests/test_distributed.py).

It is ``launch/train.py`` itself (same flags, same code path) plus ``--out``: the file
where this process writes its final parameters (npz), so the test can compare processes.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("launch_train", ROOT / "launch" / "train.py")
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)

_OUT = flags.DEFINE_string("out", None, "Where to write this process's final parameters.")


def main(argv):
    from mp3gan import train

    finished = {}
    train_and_evaluate = train.train_and_evaluate

    def keep_result(config, workdir, **kwargs):
        finished["state"] = train_and_evaluate(config, workdir, **kwargs)
        return finished["state"]

    train.train_and_evaluate = keep_result
    cli.main(argv)
    import jax

    leaves = [np.asarray(x) for x in jax.tree.leaves(finished["state"])]
    np.savez(_OUT.value, *leaves)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    flags.mark_flags_as_required(["out"])
    app.run(main)
