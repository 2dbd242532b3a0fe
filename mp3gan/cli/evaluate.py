"""Evaluate the baselines (and a trained model) on held-out lossless audio: one table.

    python launch/evaluate.py                                   # held-out test split
    python launch/evaluate.py --checkpoint workdir/base --max-files 20 --clip-seconds 5
    python launch/evaluate.py --data my_flacs/ --bitrates 32,64,128 --lowpass 4000
    python launch/evaluate.py --checkpoint workdir/run --split validation --kinds music \
        --clip-seconds 5 --clips-per-file 5                    # choose a step, keep test unseen

Without --data it evaluates the held-out test split of the training data: the
checkpoint's own (its data.path and split fractions, so a model is never scored on
files it trained on), else data/corpus, else the embedded corpus. ``--split validation``
scores the validation split instead, for choosing among a run's steps without looking
at the test split.

Writes OUT/results.json (per-clip values, mean and 95 % CI per (degradation, method),
each method's improvement over the MP3 input) and OUT/results.md (the table, built from
the JSON).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from mp3gan.cli import REPO

DEFAULT_CORPUS = REPO / "data" / "corpus"
PROG = "evaluate.py"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def default_data(checkpoint: str | None) -> tuple[Path, Any]:
    """``(folder, data config)`` whose held-out split to evaluate when --data is not given."""
    from mp3gan.data.loader import default_data_config

    data_config = default_data_config()
    if checkpoint is not None and checkpoint.lower() != "none":
        from mp3gan.checkpoint import load_config

        # Hold out exactly the files training held out: same split rule and fractions.
        data_config = load_config(checkpoint).data
        trained_on = Path(data_config.get("path", "") or "-")
        if not trained_on.is_absolute():
            trained_on = REPO / trained_on  # a shipped model names data/corpus
        if data_config.get("path", "") and trained_on.is_dir():
            return trained_on, data_config
    if DEFAULT_CORPUS.is_dir():
        return DEFAULT_CORPUS, data_config
    from mp3gan.data.embedded import ensure_embedded_corpus

    print(
        f"{DEFAULT_CORPUS} does not exist (build it: python launch/prepare_data.py "
        "--out data/corpus --install); using the embedded corpus"
    )
    return ensure_embedded_corpus(), data_config


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument(
        "--checkpoint",
        help="training workdir, one of its steps (WORKDIR/checkpoints/latest/2500) or model "
        "folder (default: baselines only)",
    )
    p.add_argument(
        "--data",
        help="folder of lossless references, all evaluated (default: the held-out test "
        "split of the checkpoint's training data, else of data/corpus, else of the "
        "embedded corpus)",
    )
    p.add_argument(
        "--split",
        choices=("test", "validation"),
        help="with the held-out split: which one (default test; validation to choose "
        "among a run's steps without looking at the test split)",
    )
    p.add_argument("--bitrates", default="32,64,128", help="MP3 CBR kbps, comma-separated")
    p.add_argument("--lowpass", type=float, help="also evaluate a low-pass at this many Hz")
    p.add_argument(
        "--degradations",
        help="degradation specs, comma-separated (e.g. mp3:64,vbr:0.4); replaces "
        "--bitrates and --lowpass",
    )
    p.add_argument(
        "--visqol",
        action="store_true",
        help="also score ViSQOL (needs the visqol extra; its Python port takes minutes a "
        "clip on a small CPU)",
    )
    p.add_argument("--max-files", type=int, help="evaluate at most this many files")
    p.add_argument(
        "--clip-seconds",
        type=float,
        help="seconds per file (default: whole files; a fixed length avoids recompiling per file)",
    )
    p.add_argument(
        "--clips-per-file",
        type=int,
        default=1,
        help="with --clip-seconds: clips from this many equal parts of each long file "
        "(more clips from few long songs; named file#k)",
    )
    p.add_argument(
        "--kinds",
        help="with the held-out split: only files of these manifest kinds, comma-separated "
        "(e.g. music; a built corpus has music, drums, one-shot)",
    )
    p.add_argument("--sample-rate", type=int, help="resample references to this rate")
    p.add_argument("--out", default="results/evaluate", help="output folder")
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.clips_per_file < 1:
        parser.error(f"--clips-per-file must be at least 1, got {args.clips_per_file}")
    if args.clips_per_file > 1 and args.clip_seconds is None:
        parser.error("--clips-per-file needs --clip-seconds (the length of each clip)")
    if args.kinds is not None and not _split(args.kinds):
        parser.error("--kinds needs at least one kind, e.g. --kinds music")
    if args.kinds and args.data is not None:
        parser.error("--kinds selects from the held-out split: leave out --data")
    if args.split and args.data is not None:
        parser.error("--split selects a held-out split of the corpus: leave out --data")

    from mp3gan.checkpoint import CheckpointError

    split, data, data_config = None, args.data, None
    try:
        if data is None:
            data, data_config = default_data(args.checkpoint)
            split = args.split or "test"
            print(f"evaluating the held-out {split} split of {data}")
        results = _run(args, data, split, data_config, prog, argv)
    # No such checkpoint, step, file or kind in the split; a damaged checkpoint.
    except (FileNotFoundError, CheckpointError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print((out / "results.md").read_text())
    print(
        f"{results['files_evaluated']} file(s) ({results['clips_evaluated']} clips) evaluated, "
        f"{len(results['failures'])} skipped; "
        f"wrote {out / 'results.md'} and {out / 'results.json'}"
    )
    return 0


def _run(
    args: argparse.Namespace, data, split, data_config, prog: str, argv: list[str] | None
) -> dict:
    """The evaluation the flags ask for; returns results.json's content."""
    from mp3gan import metrics
    from mp3gan.evaluate_run import run_evaluation

    # The command recorded in results.json, as it was typed.
    invoked = ["python", "launch/evaluate.py"] if prog == PROG else [prog]
    command = shlex.join([*invoked, *(sys.argv[1:] if argv is None else argv)])
    return run_evaluation(
        args.out,
        data,
        split=split,
        data_config=data_config,
        checkpoint=args.checkpoint,
        bitrates=[int(b) for b in args.bitrates.split(",") if b.strip()],
        lowpass_hz=args.lowpass,
        max_files=args.max_files,
        clip_seconds=args.clip_seconds,
        sample_rate=args.sample_rate,
        command=command,
        degradations=None if args.degradations is None else _split(args.degradations),
        skip_metrics=() if args.visqol else metrics.SLOW_METRICS,
        kinds=_split(args.kinds) if args.kinds else None,
        clips_per_file=args.clips_per_file,
    )


def run() -> None:
    """The ``mp3gan-evaluate`` console script."""
    sys.exit(main(prog="mp3gan-evaluate"))
