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

import datetime
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm import tqdm

from mp3gan import audio as audio_lib
from mp3gan import baselines, metrics
from mp3gan.degrade import LowPass, parse_degradation
from mp3gan.files import write_text_atomic

log = logging.getLogger(__name__)

Method = Callable[[np.ndarray, int], np.ndarray]
PARTS = ("input", "output", "improvement")
# References are lossless; MP3 (or any lossy file) as a reference would score the codec
# against itself.
REFERENCE_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff")
# Rate used when a reference's own rate cannot be carried by MP3 (e.g. 96 kHz).
FALLBACK_SAMPLE_RATE = 44100
# Clips start this long before the first sound, so the first attack keeps its pre-echo
# and the onset detector (metrics.find_onsets) has the 50 ms of history it needs.
CLIP_LEAD_IN_S = 0.1
# A clip starts at the first sample within this many dB of the file's peak.
CLIP_START_DB = -40.0


def _clean(value: float | None) -> float | None:
    """A JSON-safe float: NaN/inf (undefined metric) become None, -0.0 becomes 0.0."""
    if value is None or not math.isfinite(value):
        return None
    return float(value) + 0.0


def align_output(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, cutoff_hz: float | None
) -> tuple[np.ndarray, int, int]:
    """:func:`audio.align_to_reference` on the band the MP3 input kept: ``(aligned, lag,
    polarity)``, ``aligned`` shaped like ``reference``.

    The estimate is matched against the reference low-passed at the input's cutoff. A
    band a method invents above the cutoff is uncorrelated with the reference by nature;
    matched against the full reference it lets the cross-correlation peak wander when it
    carries most of the energy (a hi-hat at 32 kbps came out 194 samples off, inverted).
    Both signals share the band below the cutoff, so that is where the lag is decided.
    """
    anchor = reference
    if cutoff_hz is not None and cutoff_hz < baselines.FULL_BAND_FRACTION * sample_rate / 2:
        anchor = LowPass(cutoff_hz)(reference, sample_rate)
    return audio_lib.align_to_reference(anchor, estimate)


def score_pair(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, cutoff_hz: float | None
) -> tuple[dict[str, float | None], int, int]:
    """Align ``estimate`` (:func:`align_output`) and score it: ``(scores, lag, polarity)``.

    ``cutoff_hz`` is the MP3 input's cutoff: the alignment band and the high band of
    :func:`metrics.score_all` both start there.
    """
    aligned, lag, polarity = align_output(reference, estimate, sample_rate, cutoff_hz)
    scores = metrics.score_all(reference, aligned, sample_rate, cutoff_hz=cutoff_hz)
    return {key: _clean(value) for key, value in scores.items()}, int(lag), int(polarity)


def _improvement(inputs: dict, outputs: dict) -> dict[str, float | None]:
    deltas = {}
    for key, out in outputs.items():
        before = inputs.get(key)
        ok = out is not None and before is not None
        deltas[key] = _clean(metrics.improvement(key, before, out)) if ok else None
    return deltas


def evaluate_clips(
    methods: dict[str, Method], clips: list[dict], progress: bool = False
) -> list[dict]:
    """Score every method on every clip against the clip's degraded input.

    ``clips``: dicts with ``name``, ``degradation`` (spec string), ``reference`` and
    ``degraded`` ``[C, T]`` and ``sample_rate``. Returns one record per (clip, method)
    with the metrics of the ``input``, of the ``output``, their ``improvement``
    (positive = better), the alignment ``lag``/``polarity`` of the output (and of the
    input, ``input_lag``/``input_polarity``), the input's ``cutoff_hz`` and the
    method's ``runtime_s``. A method that returns another shape raises ValueError.
    """
    records = []
    for clip in tqdm(clips, desc="clips", unit="clip", disable=not progress, leave=False):
        reference = np.asarray(clip["reference"], dtype=np.float32)
        degraded = np.asarray(clip["degraded"], dtype=np.float32)
        sample_rate = int(clip["sample_rate"])
        cutoff = _clean(metrics.cutoff_frequency(degraded, sample_rate))
        input_scores, input_lag, input_polarity = score_pair(
            reference, degraded, sample_rate, cutoff
        )
        for method, predict in methods.items():
            start = time.perf_counter()
            output = np.asarray(predict(degraded, sample_rate), dtype=np.float32)
            runtime = time.perf_counter() - start
            if output.shape != degraded.shape:
                raise ValueError(
                    f"method {method!r} on {clip['name']}: output shape {output.shape} "
                    f"!= input shape {degraded.shape}"
                )
            audio_lib.check_finite(output, f"method {method!r} on {clip['name']}")
            output_scores, lag, polarity = score_pair(reference, output, sample_rate, cutoff)
            records.append(
                {
                    "clip": clip["name"],
                    "degradation": clip["degradation"],
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


def list_references(folder: str | os.PathLike) -> list[Path]:
    """Lossless audio files under ``folder`` (recursive, hidden files skipped), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of reference audio")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in REFERENCE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def held_out_files(
    corpus_dir: str | os.PathLike, split: str = "test", data_config=None
) -> list[Path]:
    """The files of one held-out split of a corpus, by the training data's own split rule.

    ``data_config`` is the training config's ``data`` section (its ``validation_fraction``
    and ``test_fraction`` decide the split; None = the data module's defaults): pass the
    one the model was trained with, so no training file is evaluated.
    """
    from mp3gan.data import loader

    config = loader.default_data_config()
    if data_config is not None:
        for key in ("validation_fraction", "test_fraction"):
            if data_config.get(key, None) is not None:
                config[key] = data_config[key]
    config.path = str(corpus_dir)
    root, recordings = loader.load_split(config, split)
    return [root / r.path for r in recordings]


def select_clip(
    audio: np.ndarray, sample_rate: int, seconds: float | None, pad: bool = True
) -> np.ndarray:
    """``seconds`` of ``audio`` whose first sound starts CLIP_LEAD_IN_S into the clip.

    Deterministic. Leading silence beyond the lead-in is skipped (it would score as a
    perfect match); a file that starts with its attack (a drum one-shot) gets silence
    put in front, so every clip's first attack has silence before it where pre-echo
    shows and where the onset detector finds it. A shorter file is padded with trailing
    silence, as it would ring out: clips of one length run through the JAX metrics
    without recompiling per file (a few seconds each) and weigh the same in every mean
    (``pad=False`` leaves it shorter). ``seconds=None`` keeps the whole file as it is.
    """
    if seconds is None:
        return audio
    n = round(seconds * sample_rate)
    lead = round(CLIP_LEAD_IN_S * sample_rate)
    envelope = np.abs(audio).max(axis=0)
    first = int(np.argmax(envelope >= envelope.max() * 10 ** (CLIP_START_DB / 20)))
    if first < lead:
        audio = np.pad(audio, ((0, 0), (lead - first, 0)))
        first = lead
    clip = audio[..., first - lead : first - lead + n]
    if pad and clip.shape[-1] < n:
        clip = np.pad(clip, ((0, 0), (0, n - clip.shape[-1])))
    return clip


def load_reference(
    path: str | os.PathLike,
    sample_rate: int | None,
    clip_seconds: float | None,
    pad: bool = True,
) -> tuple[np.ndarray, int]:
    """Read a reference, resample it for MP3 and cut its clip (:func:`select_clip`)."""
    reference, rate = audio_lib.read_audio(path)
    target = sample_rate or (rate if rate in audio_lib.MP3_SAMPLE_RATES else FALLBACK_SAMPLE_RATE)
    if target != rate:
        reference = audio_lib.resample(reference, rate, target)
    reference = select_clip(reference, target, clip_seconds, pad)
    if not np.any(reference):
        raise audio_lib.AudioError(f"{path}: the clip is digital silence")
    return reference, target


def evaluate_folder(
    reference_dir: str | os.PathLike,
    degradations: Sequence[str],
    methods: dict[str, Method],
    files: Sequence[str | os.PathLike] | None = None,
    max_files: int | None = None,
    clip_seconds: float | None = None,
    sample_rate: int | None = None,
    failures: list[dict] | None = None,
    progress: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Degrade each reference file, run every method, score: ``(summary, records)``.

    ``files`` (default: every lossless file under ``reference_dir``, sorted) is cut to
    ``max_files`` evenly spaced ones; each file is cut to ``clip_seconds``
    (:func:`select_clip`) and resampled to ``sample_rate`` (default: its own rate if MP3
    can carry it, else 44.1 kHz). A file that fails (unreadable, corrupt, silent, a
    method error) is logged by name and skipped; pass a list as ``failures`` to collect
    ``{"file", "error"}`` entries.
    Raises RuntimeError when no file could be evaluated.
    """
    root = Path(reference_dir)
    paths = [Path(f) for f in files] if files is not None else list_references(root)
    if max_files is not None and len(paths) > max_files:
        # Evenly spaced over the sorted list, so a subset still spans every sub-folder
        # (source) of a corpus rather than the first one only.
        picks = np.unique(np.linspace(0, len(paths) - 1, max(1, max_files)).round().astype(int))
        paths = [paths[i] for i in picks]
    if not paths:
        raise FileNotFoundError(f"{root}: no reference audio ({', '.join(REFERENCE_EXTENSIONS)})")
    chains = [parse_degradation(spec) for spec in degradations]
    failures = [] if failures is None else failures
    records: list[dict] = []
    bar = tqdm(paths, desc="evaluate", unit="file", disable=not progress)
    for path in bar:
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        bar.set_postfix_str(name[-40:])
        try:
            reference, rate = load_reference(path, sample_rate, clip_seconds)
            clips = [
                {
                    "name": name,
                    "degradation": chain.name,
                    "reference": reference,
                    "degraded": chain(reference, rate),
                    "sample_rate": rate,
                }
                for chain in chains
            ]
            records.extend(evaluate_clips(methods, clips))
        except Exception as e:  # one bad file (or one method failing on it) must not end a run
            failures.append({"file": name, "error": f"{type(e).__name__}: {e}"})
            log.warning("skipping %s: %s: %s", name, type(e).__name__, e)
            tqdm.write(f"skipping {name}: {type(e).__name__}: {e}")
    if not records:
        raise RuntimeError(f"{root}: no file could be evaluated ({len(failures)} failed)")
    return summarize(records), records


def improvement_table(summary: list[dict]) -> dict[str, dict[str, dict[str, dict]]]:
    """``{degradation: {method: {metric: {mean, ci95, n}}}}`` of the improvement over MP3."""
    table: dict[str, dict[str, dict[str, dict]]] = {}
    for row in summary:
        table.setdefault(row["degradation"], {})[row["method"]] = {
            key: stat["improvement"] for key, stat in row["metrics"].items()
        }
    return table


def model_method(checkpoint: str | os.PathLike) -> Method:
    """The trained generator of ``checkpoint`` as a predict function (one compile).

    ``checkpoint`` is a training workdir or model folder; ``"none"`` is the untrained
    generator, exactly the identity (a pipeline check).
    """
    from mp3gan.restore import Restorer  # late import: flax/orbax are slow to load

    return Restorer.from_checkpoint(checkpoint)


def run_evaluation(
    out_dir: str | os.PathLike,
    reference_dir: str | os.PathLike,
    split: str | None = None,
    data_config=None,
    checkpoint: str | os.PathLike | None = None,
    bitrates: Sequence[int] = (32, 64, 128),
    lowpass_hz: float | None = None,
    max_files: int | None = None,
    clip_seconds: float | None = None,
    sample_rate: int | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate the baselines (and the model of ``checkpoint``) and write the results.

    ``reference_dir`` is a folder of lossless references; with ``split`` ("test" or
    "validation") only that held-out split of it is used, split as ``data_config`` (the
    training config's ``data`` section) says (:func:`held_out_files`).
    Writes ``results.json`` (settings, per-clip records, the summary with mean and 95 %
    CI per (degradation, method), each method's improvement over the MP3 input, skipped
    files) and ``results.md``: the table of :func:`results_markdown`, built from the
    JSON as written. Returns the JSON's content.
    """
    methods: dict[str, Method] = dict(baselines.BASELINES)
    if checkpoint is not None:
        methods["model"] = model_method(checkpoint)
    degradations = [f"mp3:{int(b)}" for b in bitrates]
    if lowpass_hz:
        degradations.append(f"lowpass:{lowpass_hz:g}")
    files = None
    if split is not None:
        files = held_out_files(reference_dir, split, data_config)
    failures: list[dict] = []
    started = time.perf_counter()
    summary, records = evaluate_folder(
        reference_dir,
        degradations,
        methods,
        files=files,
        max_files=max_files,
        clip_seconds=clip_seconds,
        sample_rate=sample_rate,
        failures=failures,
        progress=progress,
    )
    results = {
        "command": command,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "reference_dir": str(reference_dir),
        "split": split,
        "split_fractions": None
        if split is None or data_config is None
        else {k: data_config.get(k, None) for k in ("validation_fraction", "test_fraction")},
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "degradations": degradations,
        "methods": list(methods),
        "clip_seconds": clip_seconds,
        "files_evaluated": len({r["clip"] for r in records}),
        "failures": failures,
        "wall_time_s": time.perf_counter() - started,
        "metric_info": {k: v for k, v in metrics.METRIC_INFO.items()},
        "summary": summary,
        "improvement": improvement_table(summary),
        "records": records,
    }
    out_dir = Path(out_dir)
    json_path = out_dir / "results.json"
    write_text_atomic(json_path, json.dumps(results, indent=1, allow_nan=False) + "\n")
    # The table is rendered from the file as written, so it can never disagree with it.
    written = json.loads(json_path.read_text())
    write_text_atomic(out_dir / "results.md", results_markdown(written["summary"]))
    return written
