"""The command-line programs: flags in, one library call out.

Each module is one command with ``main(argv) -> exit status`` (train: absl's ``main``)
and ``run()``, the console script ``pip install`` puts on PATH; ``launch/<name>.py`` is a
shim over the same code, so both spellings behave alike:

    mp3gan-train     python launch/train.py         (mp3gan.cli.train)
    mp3gan-restore   python launch/restore.py       (mp3gan.cli.restore)
    mp3gan-export    python launch/export.py        (mp3gan.cli.export)
    mp3gan-evaluate  python launch/evaluate.py      (mp3gan.cli.evaluate)
    mp3gan-analyze   python launch/analyze.py       (mp3gan.cli.analyze)
    mp3gan-prepare   python launch/prepare_data.py  (mp3gan.cli.prepare)

Messages name the program as invoked (``train.py: error: …`` or ``mp3gan-train: error:
…``). Nothing is imported here, so ``--help`` stays fast.
"""

from pathlib import Path

# The checkout the package sits in (an editable install): configs/, data/, exports/.
REPO = Path(__file__).resolve().parent.parent.parent
