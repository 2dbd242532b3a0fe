"""Issue 14's targets for music, checked on ``launch/evaluate.py`` results: which a model
meets, and by how much it misses the others.

    python benchmarks/issue_targets.py results/base_test_music results/candidate_test_music

Each argument is an evaluation folder (its ``results.json``) with the model's rows and
the exciter's and SBR's, at 32, 64 and 128 kbps; give models scored on the same clips
(the same command, the same corpus build), since a margin from another build's clips
compares nothing. The targets, as the issue states them, against the MP3 input:

- 32 and 64 kbps: LSD and high-band LSD at least 25 % lower; signed pre-echo at least
  2 dB lower; SI-SDR at least equal (the 95 % interval of the change not below -0.1 dB);
- 128 kbps: LSD and high-band LSD at least 15 % lower; pre-echo and SI-SDR no worse than
  the input by more than 0.1 dB (the mean change);
- at each rate it beats the exciter and SBR on every one of these metrics (lower LSD,
  high-band LSD and pre-echo, higher SI-SDR).

Prints one row per target and a column per folder: ``ok`` or the amount it is short by
(in the metric's unit). Reads numbers; runs nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LOWER_IS_BETTER = {"lsd": True, "lsd_high": True, "pre_echo_db": True, "si_sdr": False}
BASELINES = ("exciter", "sbr")


def load_rows(folder: str | Path) -> dict[tuple[str, str], dict]:
    """``{(degradation, method): metrics}`` of an evaluation folder's results.json."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (run launch/evaluate.py --out {folder})")
    summary = json.loads(path.read_text())["summary"]
    return {(row["degradation"], row["method"]): row["metrics"] for row in summary}


def _mean(metrics: dict, key: str, part: str) -> float:
    return float(metrics[key][part]["mean"])


def target_shortfalls(rows: dict[tuple[str, str], dict]) -> dict[str, float]:
    """``{target: shortfall}``: 0 where the model meets it, else how far it is from it
    (dB or per cent, always positive). A rate or baseline the results lack is left out."""
    out: dict[str, float] = {}
    for rate, share in (("mp3:32", 25.0), ("mp3:64", 25.0), ("mp3:128", 15.0)):
        model = rows.get((rate, "model"))
        if model is None:
            continue
        for key in ("lsd", "lsd_high"):
            cut = 100.0 * (1.0 - _mean(model, key, "output") / _mean(model, key, "input"))
            out[f"{rate} {key} >= {share:.0f} % lower"] = max(0.0, share - cut)
        pre_echo = _mean(model, "pre_echo_db", "improvement")
        change = model["si_sdr"]["improvement"]
        if rate == "mp3:128":
            out[f"{rate} pre-echo no worse than -0.1 dB"] = max(0.0, -0.1 - pre_echo)
            out[f"{rate} SI-SDR mean change >= -0.1 dB"] = max(0.0, -0.1 - change["mean"])
        else:
            out[f"{rate} pre-echo >= 2 dB lower"] = max(0.0, 2.0 - pre_echo)
            low = change["mean"] - (change.get("ci95") or 0.0)
            out[f"{rate} SI-SDR interval >= -0.1 dB"] = max(0.0, -0.1 - low)
        for baseline in BASELINES:
            other = rows.get((rate, baseline))
            if other is None:
                continue
            for key, lower in LOWER_IS_BETTER.items():
                ours, theirs = _mean(model, key, "output"), _mean(other, key, "output")
                behind = ours - theirs if lower else theirs - ours
                # Beating means strictly better: a tie is short by nothing measurable,
                # so it reads as a miss of 0.00 rather than as met.
                out[f"{rate} beats {baseline} on {key}"] = 0.0 if behind < 0 else max(behind, 1e-9)
    return out


def format_table(folders: list[str], shortfalls: list[dict[str, float]]) -> str:
    """The targets as rows, one column per folder: ``ok`` or the shortfall."""
    targets = list(dict.fromkeys(t for s in shortfalls for t in s))
    width = max(len(t) for t in targets)
    lines = [" ".join([" " * width, *(f"{Path(f).name:>16}" for f in folders)])]
    for target in targets:
        cells = []
        for s in shortfalls:
            value = s.get(target)
            cell = "-" if value is None else "ok" if value == 0 else f"short {value:.2f}"
            cells.append(f"{cell:>16}")
        lines.append(" ".join([target.ljust(width), *cells]))
    met = [sum(v == 0 for v in s.values()) for s in shortfalls]
    lines.append(" ".join(["targets met".ljust(width), *(f"{m:>16}" for m in met)]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="launch/evaluate.py output folders")
    args = p.parse_args(argv)
    try:
        shortfalls = [target_shortfalls(load_rows(f)) for f in args.folders]
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as e:
        print(f"issue_targets.py: error: {e}", file=sys.stderr)
        return 2
    if not any(shortfalls):
        print("issue_targets.py: error: no model rows at mp3:32/64/128", file=sys.stderr)
        return 2
    print(format_table(args.folders, shortfalls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
