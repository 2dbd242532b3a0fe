"""Picture one file's MP3 damage and its restoration: spectrograms, pre-echo, coherence.

    python launch/analyze.py drums.flac --bitrate 64 --out fig.png
    python launch/analyze.py drums.flac --checkpoint workdir/base
    python launch/analyze.py song.flac --audio --out ex.png  # + ex.reference/mp3/restored.flac
    python launch/analyze.py --curves workdir/base --out curves.png   # training curves

Without --checkpoint the "restored" panel shows the best baseline (by LSD), and the
figure's title says so.
"""

from __future__ import annotations

import argparse
import sys

PROG = "analyze.py"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("reference", nargs="?", help="lossless reference file (WAV/FLAC/AIFF)")
    p.add_argument("--curves", metavar="WORKDIR", help="draw a training run's curves instead")
    p.add_argument("--bitrate", type=int, default=64, help="MP3 CBR kbps (default 64)")
    p.add_argument(
        "--checkpoint",
        help="training workdir, one of its steps (WORKDIR/checkpoints/latest/2500) or model folder",
    )
    p.add_argument("--seconds", type=float, default=8.0, help="clip length; 0 = whole file")
    p.add_argument(
        "--start", type=float, default=0.0, help="seconds into the file the clip starts from"
    )
    p.add_argument("--out", default="analysis.png", help="output image (default analysis.png)")
    p.add_argument(
        "--audio",
        action="store_true",
        help="also write the reference, the MP3 and the restoration beside the image "
        "(OUT.reference.flac, OUT.mp3.flac, OUT.restored.flac)",
    )
    args = p.parse_args(argv)
    if (args.reference is None) == (args.curves is None):
        p.error("give a reference file or --curves WORKDIR (one of them)")
    if args.curves:
        from mp3gan.evaluate_run import plot_training_curves

        try:
            print(f"wrote {plot_training_curves(args.curves, args.out)}")
        except FileNotFoundError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2
        return 0

    from mp3gan.evaluate_run import analyze_file

    try:
        path = analyze_file(
            args.reference,
            args.out,
            bitrate=args.bitrate,
            checkpoint=args.checkpoint,
            seconds=args.seconds or None,
            write_audio=args.audio,
            start_seconds=args.start,
        )
    except (OSError, ValueError) as e:  # a missing or unreadable file (AudioError), a bad --start
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}" + (" and its three FLAC files" if args.audio else ""))
    return 0


def run() -> None:
    """The ``mp3gan-analyze`` console script."""
    sys.exit(main(prog="mp3gan-analyze"))
