"""Evaluate baselines (and a model) on held-out audio: ``mp3gan-evaluate`` after ``pip install``.

Flags and code are in mp3gan/cli/evaluate.py (``--help`` lists the flags).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's mp3gan

from mp3gan.cli.evaluate import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
