"""Train mp3gan: ``mp3gan-train`` after ``pip install``.

Flags and code are in mp3gan/cli/train.py (``--help`` lists the flags).
"""

import sys
from pathlib import Path

# This checkout's mp3gan, and its configs (which import each other as `configs.*`).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mp3gan.cli.train import PROG, main, parse_flags, run  # noqa: E402

__all__ = ["main", "parse_flags"]

if __name__ == "__main__":
    run(PROG)
