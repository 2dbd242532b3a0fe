"""Picture one file's MP3 damage and its restoration: ``mp3gan-analyze`` after ``pip install``.

Flags and code are in mp3gan/cli/analyze.py (``--help`` lists the flags).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's mp3gan

from mp3gan.cli.analyze import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
