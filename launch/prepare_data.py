"""Build the training corpus from Debian packages (see docs/DATA.md).

python launch/prepare_data.py --out data/corpus
python launch/prepare_data.py --sources avldrums --groove-minutes 60 --seed 1
"""

from __future__ import annotations

import argparse
import sys

from mp3gan.data.prepare import (
    DEFAULT_GROOVE_MINUTES,
    FULL_BAND_HZ,
    SOURCES,
    CorpusError,
    prepare_corpus,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/corpus", help="corpus folder (default: data/corpus)")
    p.add_argument(
        "--sources",
        default=",".join(SOURCES),
        help=f"comma-separated subset of {','.join(SOURCES)} (default: all)",
    )
    p.add_argument(
        "--groove-minutes",
        type=float,
        default=DEFAULT_GROOVE_MINUTES,
        help="minutes of avldrums grooves to render; the default alone makes the corpus "
        f">= 20 full-band minutes (default: {DEFAULT_GROOVE_MINUTES:g})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated grooves")
    p.add_argument(
        "--min-cutoff-hz",
        type=float,
        default=FULL_BAND_HZ,
        help=f"cutoff that counts as full band (default: {FULL_BAND_HZ:g})",
    )
    p.add_argument("--install", action="store_true", help="apt-get install missing packages first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    try:
        summary = prepare_corpus(
            out=args.out,
            sources=sources,
            groove_minutes=args.groove_minutes,
            seed=args.seed,
            install=args.install,
            min_cutoff_hz=args.min_cutoff_hz,
            progress=not args.no_progress,
        )
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
