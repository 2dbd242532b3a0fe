"""Build the training corpus from Debian packages, and optionally its pair cache (docs/DATA.md).

python launch/prepare_data.py --out data/corpus --install
python launch/prepare_data.py --sources songs --song-minutes 300 --seed 1
python launch/prepare_data.py --out data/corpus --pair-cache data/pair-cache
"""

from __future__ import annotations

import argparse
import sys

from mp3gan.data.corpus import (
    DEFAULT_GROOVE_MINUTES,
    DEFAULT_SONG_MINUTES,
    MIN_SOURCE_CUTOFF_HZ,
    REGISTRY,
    SOURCES,
    CorpusError,
    prepare_corpus,
)
from mp3gan.data.pairs import DEFAULT_DEGRADATIONS, build_pair_cache
from mp3gan.data.sources import DataError

PROG = "prepare_data.py"


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    sources = "\n".join(f"  {name:9s} {s.summary}" for name, s in REGISTRY.items())
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=f"sources:\n{sources}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        help=f"minutes of avldrums grooves (default: {DEFAULT_GROOVE_MINUTES:g})",
    )
    p.add_argument(
        "--song-minutes",
        type=float,
        default=DEFAULT_SONG_MINUTES,
        help="minutes of songs to compose and render; band-limited renders are "
        f"left out, so fewer are kept (default: {DEFAULT_SONG_MINUTES:g})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated grooves and songs")
    p.add_argument(
        "--min-cutoff-hz",
        type=float,
        default=MIN_SOURCE_CUTOFF_HZ,
        help=f"cutoff that counts as full band (default: {MIN_SOURCE_CUTOFF_HZ:g})",
    )
    p.add_argument("--install", action="store_true", help="apt-get install missing packages first")
    p.add_argument(
        "--pair-cache",
        default="",
        help="then encode every corpus file into this pair cache, once per degradation "
        "(train with --config.data.cache_dir=<this folder>)",
    )
    p.add_argument(
        "--degradations",
        default=",".join(DEFAULT_DEGRADATIONS),
        help="degradations the pair cache holds, built in this order (default: the base config's)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = _parser(prog).parse_args(argv)
    try:
        summary = prepare_corpus(
            out=args.out,
            sources=[s.strip() for s in args.sources.split(",") if s.strip()],
            minutes={"avldrums": args.groove_minutes, "songs": args.song_minutes},
            seed=args.seed,
            install=args.install,
            min_cutoff_hz=args.min_cutoff_hz,
            progress=not args.no_progress,
        )
        print(summary.report(), flush=True)
        if args.pair_cache:
            degradations = [d.strip() for d in args.degradations.split(",") if d.strip()]
            cache = build_pair_cache(
                args.out, args.pair_cache, degradations, progress=not args.no_progress
            )
            print(cache.report())
    except (CorpusError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The ``mp3gan-prepare`` console script."""
    sys.exit(main(prog="mp3gan-prepare"))
