"""Export a trained generator as a jax.export artifact: flags only, then library calls.

    python launch/export.py                                  # the shipped model
    python launch/export.py --checkpoint workdir/base --out mp3gan.jaxexport

Without --out the artifact goes to exports/<model name>.jaxexport, a folder git ignores.

The artifact is ``float32 [channels, samples] -> [channels, samples]`` at the model rate,
with the parameters baked in; it runs with only jax and numpy installed (see
docs/RESTORE.md for the loading snippet). ``OUT.sha256`` beside it holds its checksum
(verify it before loading: an artifact is code) and ``OUT.json`` records the rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mp3gan.cli import REPO

EXPORTS = REPO / "exports"
PROG = "export.py"


def default_out(checkpoint: str | None) -> Path:
    """``exports/<name>.jaxexport``: the shipped model's name, or the checkpoint folder's."""
    name = "mp3gan-base" if checkpoint is None else Path(checkpoint).resolve().name or "model"
    return EXPORTS / f"{name}.jaxexport"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog="example:\n  %(prog)s --checkpoint workdir/base --out mp3gan.jaxexport",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="training workdir, one of its steps (WORKDIR/checkpoints/latest/2500) or shipped "
        "model folder (default: the shipped "
        "checkpoints/mp3gan-base); 'none' = untrained identity model",
    )
    p.add_argument(
        "--out", metavar="FILE", help="artifact to write (default: exports/<model>.jaxexport)"
    )
    args = p.parse_args(argv)

    from mp3gan.export import export_to_file
    from mp3gan.restore import Restorer

    try:
        restorer = Restorer.from_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    out = args.out or default_out(args.checkpoint)
    path = export_to_file(restorer.generator, restorer.sample_rate, out)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): float32 [channels, samples] "
        f"at {restorer.sample_rate} Hz; SHA-256 in {path.name}.sha256, metadata in "
        f"{path.name}.json"
    )
    return 0


def run() -> None:
    """The ``mp3gan-export`` console script."""
    sys.exit(main(prog="mp3gan-export"))
