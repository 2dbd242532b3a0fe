"""Restore MP3 (or WAV/FLAC/AIFF/OGG) files with mp3gan: flags only, then library calls.

python launch/restore.py song.mp3                  # -> song.restored.wav
python launch/restore.py album/ -o restored/ -t flac
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

PROG = "restore.py"

USAGE_EXAMPLES = """\
examples:
  %(prog)s song.mp3                       write song.restored.wav next to it
  %(prog)s song.mp3 -o clean.flac         one file, 24-bit FLAC (safety-limited)
  %(prog)s a.mp3 b.mp3 -o out/            several files into a folder
  %(prog)s album/ -o restored/ -t flac    a folder, recursively, keeping sub-folders
  %(prog)s song.mp3 --checkpoint workdir/base
  %(prog)s song.mp3 --checkpoint none     untrained model = identity (pipeline test)

Output is WAV (32-bit float: peaks above full scale are kept, never clipped) unless the
output name ends in .flac or -t flac is given. FLAC is 24-bit and cannot hold peaks
above full scale, so it goes through a look-ahead safety limiter (5 ms), and each file
that needed it is reported with the gain reduction applied. Output sample rate and
channels are those of the input. Existing outputs are overwritten; an input is never
overwritten. Each output appears only when complete (written to a hidden temporary
file first). Exit status: 0 if every file was restored, 1 if any failed, 2 on usage
errors, 130 on Ctrl-C, 143 on SIGTERM, 129 on SIGHUP (no partial output either way).
"""


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        usage="%(prog)s [options] INPUT... [-o OUT]",
        description="Restore low-bitrate MP3 audio (pre-echo, smeared transients, lost high\n"
        "band) with the mp3gan generator. INPUT: audio files (MP3, WAV, FLAC, AIFF, OGG)\n"
        "or folders (searched recursively; *.restored.* files are skipped).",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=argparse.SUPPRESS)
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file (one input; .wav or .flac) or folder (several inputs, a folder "
        "input, an existing folder, or a name ending in /). Default: NAME.restored.wav "
        "next to each input",
    )
    p.add_argument(
        "-t",
        "--type",
        choices=("wav", "flac"),
        default="wav",
        help="output format when OUT is not a file name (default: wav)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="trained model: a training workdir, one of its steps (WORKDIR/checkpoints/latest/"
        "2500) or a shipped model folder (default: the "
        "shipped checkpoints/mp3gan-base); 'none' = untrained identity model",
    )
    p.add_argument(
        "--chunk-seconds",
        type=float,
        metavar="S",
        help="length of the chunks the model runs on (default ~3 s); longer is a little "
        "faster and uses more memory; the output does not depend on it",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or per-file lines")
    args = p.parse_args(argv)

    from mp3gan.files import signals_interrupt

    def error(msg: str) -> None:
        print(f"{p.prog}: error: {msg}", file=sys.stderr)

    # SIGTERM and SIGHUP unwind like Ctrl-C: the output being written is deleted.
    with signals_interrupt():
        try:
            return _run(args, error)
        except KeyboardInterrupt as e:
            why = "interrupted" if not hasattr(e, "exit_status") else f"terminated by {e}"
            error(f"{why}; no partial output was left behind")
            return getattr(e, "exit_status", 130)


def _run(args: argparse.Namespace, error: Callable[[str], None]) -> int:
    from mp3gan.audio import AudioError
    from mp3gan.restore import Restorer, find_inputs, plan_outputs, restore_files

    try:
        pairs = plan_outputs(find_inputs(args.inputs, args.output), args.output, f".{args.type}")
    except AudioError as e:
        error(str(e))
        return 2
    if not pairs:
        error("no audio files found in the inputs")
        return 1
    try:
        restorer = Restorer.from_checkpoint(args.checkpoint, chunk_seconds=args.chunk_seconds)
    except (FileNotFoundError, ValueError) as e:
        error(str(e))
        return 2
    failed = restore_files(
        restorer,
        pairs,
        show_progress=False if args.quiet else None,
        log=(lambda msg: None) if args.quiet else None,
        on_error=error,
    )
    if failed:
        error(f"{failed} of {len(pairs)} files failed")
    return 1 if failed else 0


def run() -> None:
    """The ``mp3gan-restore`` console script."""
    sys.exit(main(prog="mp3gan-restore"))
