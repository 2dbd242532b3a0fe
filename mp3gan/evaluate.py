"""Evaluation that proves improvement: score methods and the MP3 input they start from.

Evaluators take predict functions ``fn(audio [C, T], sample_rate) -> [C, T]`` (the
baselines of :mod:`mp3gan.baselines`, a trained model's ``restore``), never models, so
the trainer, the command line and the tests share one code path:

- :func:`evaluate_clips` scores the degraded input once and every method's output the
  same way (:func:`mp3gan.metrics.score_all`, on the band above the *input's* cutoff),
  and records each method's improvement over the input, signed so positive = better;
- :func:`summarize` gives the mean and 95 % confidence interval per (degradation, method);
- :func:`results_markdown` renders one table from that summary;
- :func:`evaluate_folder` / :func:`run_evaluation` do the same for a folder of lossless
  references and write ``results.json`` and the ``results.md`` built from it.

Every (reference, output) pair goes through :func:`mp3gan.audio.align_to_reference`
first and the lag and polarity it found are recorded: a method that shifts its output
by a few samples would otherwise look far worse than it sounds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Iterable

import numpy as np
from scipy import stats
from tqdm import tqdm

from mp3gan import audio as audio_lib
from mp3gan import metrics
from mp3gan.degrade import Clip

log = logging.getLogger(__name__)

PARTS = ("input", "output", "improvement")


def _clean(value: float | None) -> float | None:
    """A JSON-safe float: NaN/inf (undefined metric) become None, -0.0 becomes 0.0."""
    if value is None or not math.isfinite(value):
        return None
    return float(value) + 0.0


def score_pair(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    cutoff_hz: float | None,
    skip: Collection[str] = metrics.SLOW_METRICS,
) -> tuple[dict[str, float | None], int, int]:
    """Align ``estimate`` (:func:`align_output`) and score it: ``(scores, lag, polarity)``.

    ``cutoff_hz`` is the MP3 input's cutoff: the alignment band and the high band of
    :func:`metrics.score_all` both start there.
    """
    aligned, lag, polarity = metrics.align_output(reference, estimate, sample_rate, cutoff_hz)
    scores = metrics.score_all(reference, aligned, sample_rate, cutoff_hz=cutoff_hz, skip=skip)
    return {key: _clean(value) for key, value in scores.items()}, int(lag), int(polarity)


def _improvement(inputs: dict, outputs: dict) -> dict[str, float | None]:
    deltas = {}
    for key, out in outputs.items():
        before = inputs.get(key)
        ok = out is not None and before is not None
        deltas[key] = _clean(metrics.improvement(key, before, out)) if ok else None
    return deltas


def evaluate_clips(
    methods: dict[str, audio_lib.PredictFn],
    clips: list[Clip],
    progress: bool = False,
    skip_metrics: Collection[str] = metrics.SLOW_METRICS,
) -> list[dict]:
    """Score every method on every clip against the clip's degraded input.

    ``clips``: :class:`mp3gan.degrade.Clip`. Returns one record per (clip, method)
    with the metrics of the ``input``, of the ``output``, their ``improvement``
    (positive = better), the alignment ``lag``/``polarity`` of the output (and of the
    input, ``input_lag``/``input_polarity``), the input's ``cutoff_hz`` and the
    method's ``runtime_s``. A method that returns another shape raises ValueError.
    """
    records = []
    for clip in tqdm(clips, desc="clips", unit="clip", disable=not progress, leave=False):
        reference = np.asarray(clip.reference, dtype=np.float32)
        degraded = np.asarray(clip.degraded, dtype=np.float32)
        sample_rate = int(clip.sample_rate)
        cutoff = _clean(metrics.cutoff_frequency(degraded, sample_rate))
        input_scores, input_lag, input_polarity = score_pair(
            reference, degraded, sample_rate, cutoff, skip_metrics
        )
        for method, predict in methods.items():
            start = time.perf_counter()
            output = np.asarray(predict(degraded, sample_rate), dtype=np.float32)
            runtime = time.perf_counter() - start
            if output.shape != degraded.shape:
                raise ValueError(
                    f"method {method!r} on {clip.name}: output shape {output.shape} "
                    f"!= input shape {degraded.shape}"
                )
            audio_lib.check_finite(output, f"method {method!r} on {clip.name}")
            output_scores, lag, polarity = score_pair(
                reference, output, sample_rate, cutoff, skip_metrics
            )
            records.append(
                {
                    "clip": clip.name,
                    "degradation": clip.degradation,
                    "method": method,
                    "sample_rate": sample_rate,
                    "seconds": reference.shape[-1] / sample_rate,
                    "cutoff_hz": cutoff,
                    "input_lag": input_lag,
                    "input_polarity": input_polarity,
                    "lag": lag,
                    "polarity": polarity,
                    "runtime_s": runtime,
                    "input": input_scores,
                    "output": output_scores,
                    "improvement": _improvement(input_scores, output_scores),
                }
            )
    return records


def mean_ci95(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """Mean and half-width of its 95 % confidence interval (Student t), over defined values.

    ``ci95`` is None with fewer than two values (no spread to estimate).
    """
    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if len(xs) == 0:
        return {"mean": None, "ci95": None, "n": 0}
    ci = None
    if len(xs) > 1:
        ci = float(stats.t.ppf(0.975, len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs)))
    return {"mean": _clean(float(xs.mean())), "ci95": _clean(ci), "n": len(xs)}


def summarize(records: list[dict]) -> list[dict]:
    """Per (degradation, method), in order of first appearance: ``n`` clips and, per
    metric, the mean and 95 % CI of the input, the output and the improvement.

    Also counts the clips whose output needed re-alignment (``realigned``: lag != 0 or
    polarity flipped) and the mean ``runtime_s``.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["degradation"], record["method"]), []).append(record)
    summary = []
    for (degradation, method), group in groups.items():
        keys = list(dict.fromkeys(key for r in group for key in r["output"]))
        summary.append(
            {
                "degradation": degradation,
                "method": method,
                "n": len(group),
                "realigned": sum(r["lag"] != 0 or r["polarity"] != 1 for r in group),
                "runtime_s": float(np.mean([r["runtime_s"] for r in group])),
                "metrics": {
                    key: {part: mean_ci95(r[part].get(key) for r in group) for part in PARTS}
                    for key in keys
                },
            }
        )
    return summary


def _metric_header(key: str) -> str:
    info = metrics.METRIC_INFO.get(key, {})
    unit = f" ({info['unit']})" if info.get("unit") else ""
    arrow = " ↑" if info.get("higher_is_better") else " ↓"
    return f"{key}{unit}{arrow if info else ''}"


def _decimals(values: Iterable[float | None]) -> int:
    """Enough decimals for the metric's scale: 0 for Hz, 3 for values below 1."""
    largest = max((abs(v) for v in values if v is not None), default=0.0)
    return 0 if largest >= 1000 else 2 if largest >= 1 else 3


def _cell(stat: dict, decimals: int, n_clips: int) -> str:
    out, imp = stat["output"], stat["improvement"]
    if out["mean"] is None:
        return "–"
    text = f"{out['mean']:.{decimals}f}"
    if imp["mean"] is not None:
        ci = f" ± {imp['ci95']:.{decimals}f}" if imp["ci95"] is not None else ""
        text += f" ({imp['mean'] + 0.0:+.{decimals}f}{ci})"
    # A metric undefined on some clips (pre-echo needs an onset) rests on fewer of them.
    return text + (f" [n={out['n']}]" if out["n"] < n_clips else "")


def _input_row(row: dict) -> dict:
    """A table row showing the MP3 input's own values (for a summary without identity)."""
    none = {"mean": None, "ci95": None, "n": 0}
    return {
        **row,
        "method": "(MP3 input)",
        "metrics": {
            key: {"output": stat["input"], "improvement": none}
            for key, stat in row["metrics"].items()
        },
    }


def results_markdown(summary: list[dict]) -> str:
    """One markdown table: a row per (degradation, method), a column per metric.

    Each cell is ``output (Δ ± CI)``: the mean over clips of the method's output and of
    its improvement over the MP3 input, positive = better, with the 95 % CI of that
    improvement. The identity row is the MP3 input itself (Δ = 0); when a degradation
    has no identity row, a "(MP3 input)" row shows the input's values.
    """
    rows: list[dict] = []
    for degradation in dict.fromkeys(row["degradation"] for row in summary):
        group = [row for row in summary if row["degradation"] == degradation]
        if not any(row["method"] == "identity" for row in group):
            rows.append(_input_row(group[0]))
        rows.extend(group)
    keys = list(dict.fromkeys(key for row in rows for key in row["metrics"]))
    order = list(metrics.METRIC_INFO)
    keys.sort(key=lambda k: order.index(k) if k in order else len(order))
    decimals = {
        key: _decimals(
            row["metrics"][key][part]["mean"]
            for row in rows
            if key in row["metrics"]
            for part in ("output", "improvement")
        )
        for key in keys
    }
    lines = [
        "| degradation | method | n | " + " | ".join(_metric_header(k) for k in keys) + " |",
        "|---|---|--:|" + "--:|" * len(keys),
    ]
    for row in rows:
        cells = [
            _cell(row["metrics"][key], decimals[key], row["n"]) if key in row["metrics"] else "–"
            for key in keys
        ]
        lines.append(
            f"| {row['degradation']} | {row['method']} | {row['n']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Cells: mean of the output over n clips (mean improvement over the MP3 input ± 95 % "
        "CI, Student t; positive = better). The identity row is the MP3 input itself. "
        "↑ higher is better, ↓ lower is better. [n=k]: the metric is defined on k clips only.",
        "",
    ]
    for key in keys:
        info = metrics.METRIC_INFO.get(key)
        if info:
            lines.append(f"- `{key}`: {info['description']}")
    realigned = [f"{r['degradation']}/{r['method']}" for r in summary if r.get("realigned")]
    if realigned:
        lines.append(
            f"- outputs re-aligned before scoring (lag or polarity): {', '.join(realigned)}"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# During training: numbers for the logger, media for the logger (it writes, we compute)
# --------------------------------------------------------------------------------------


def evaluate_for_training(
    predict: audio_lib.PredictFn, clips: list[Clip]
) -> tuple[dict[str, float], dict[str, float]]:
    """Score ``predict`` on the validation clips: ``(scalars, output_means)``.

    ``scalars`` are the per-degradation means of the input, the output and the
    improvement, named ``eval/<degradation>/<metric>/<part>`` (lesson 2: the input is
    always reported beside the output); ``output_means`` the model's mean output metric
    over all clips, which picks the best checkpoint. Undefined metrics are left out.
    """
    records = evaluate_clips({"model": predict}, clips)  # no slow metric during training
    scalars: dict[str, float] = {}
    for row in summarize(records):
        for metric, parts in row["metrics"].items():
            for part in PARTS:
                # None marks an undefined metric (e.g. pre-echo without onsets).
                if parts[part]["mean"] is not None:
                    name = f"eval/{row['degradation']}/{metric}/{part}"
                    scalars[name] = parts[part]["mean"]
    values: dict[str, list[float]] = {}
    for record in records:
        for metric, value in record["output"].items():
            if value is not None:
                values.setdefault(metric, []).append(value)
    return scalars, {k: float(np.mean(v)) for k, v in values.items()}


def media_for_training(predict: audio_lib.PredictFn, clips: list[Clip], step: int) -> list:
    """Audio (reference, MP3, restored) and the restoration figure of each clip, as
    :class:`mp3gan.logger.Media` for the logger to write."""
    from mp3gan import plots
    from mp3gan.logger import Media

    media = []
    for clip in clips:
        sr = clip.sample_rate
        restored = np.asarray(predict(clip.degraded, sr), np.float32)
        name = f"{clip.name} {clip.degradation}"
        figure = plots.restoration_figure(
            clip.reference, clip.degraded, restored, sr, title=f"{name}, step {step}"
        )
        audio = {"reference": clip.reference, "mp3": clip.degraded, "restored": restored}
        media.append(Media(name, sr, audio, figure))
    return media
