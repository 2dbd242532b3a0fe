"""Evaluation runs over files: folders of lossless references in, results and figures out.

The file layer on top of :mod:`mp3gan.evaluate` (which scores arrays with predict
functions and builds tables):

- :func:`run_evaluation` (``launch/evaluate.py``) evaluates the baselines and a model on a
  folder or a corpus's held-out split and writes ``results.json`` and ``results.md``;
- :func:`evaluate_folder` degrades, restores and scores each file (one bad file is
  reported and skipped);
- :func:`analyze_file` (``launch/analyze.py``) draws one file's restoration figure.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mp3gan import audio as audio_lib
from mp3gan import baselines, metrics, plots
from mp3gan.degrade import Clip, parse_degradation
from mp3gan.evaluate import evaluate_clips, results_markdown, summarize
from mp3gan.files import write_text_atomic

log = logging.getLogger(__name__)

# References are lossless; MP3 (or any lossy file) as a reference would score the codec
# against itself.
REFERENCE_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff")
# Clips start this long before the first sound, so the first attack keeps its pre-echo
# and the onset detector (metrics.find_onsets) has the 50 ms of history it needs.
CLIP_LEAD_IN_S = 0.1
# A clip starts at the first sample within this many dB of the file's peak.
CLIP_START_DB = -40.0


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
    corpus_dir: str | os.PathLike,
    split: str = "test",
    data_config=None,
    kinds: Sequence[str] | None = None,
) -> list[Path]:
    """The files of one held-out split of a corpus, by the training data's own split rule.

    ``data_config`` is the training config's ``data`` section (its ``validation_fraction``
    and ``test_fraction`` decide the split; None = the data module's defaults): pass the
    one the model was trained with, so no training file is evaluated. ``kinds`` keeps
    only files whose manifest ``kind`` is one of them (e.g. ``("music",)``).
    """
    from mp3gan.data import loader

    config = loader.default_data_config()
    if data_config is not None:
        for key in ("validation_fraction", "test_fraction"):
            if data_config.get(key, None) is not None:
                config[key] = data_config[key]
    config.path = str(corpus_dir)
    root, recordings = loader.load_split(config, split)
    if kinds is not None:
        recordings = [r for r in recordings if r.kind in set(kinds)]
        if not recordings:
            raise FileNotFoundError(
                f"{root}: no file of kind {', '.join(kinds)} in the {split} split (the "
                "kinds come from the corpus's manifest.jsonl)"
            )
    return [root / r.path for r in recordings]


def bucket_length(samples: int) -> int:
    """The smallest length of the grid 4096 · 1.25^k that holds ``samples``: at most a
    quarter of silence added, and a few dozen lengths cover everything up to an hour."""
    length = 4096
    while length < samples:
        length = int(np.ceil(length * 1.25 / 4096)) * 4096
    return length


def select_clip(
    audio: np.ndarray,
    sample_rate: int,
    seconds: float | None,
    pad: bool = True,
    start: int = 0,
) -> np.ndarray:
    """``seconds`` of ``audio`` whose first sound starts CLIP_LEAD_IN_S into the clip.

    ``start``: look for the first sound from this sample on (a passage inside a file);
    the lead-in before it is the file's own audio, never inserted silence, so a clip
    from the middle of a song has no fake onset.

    Deterministic. Leading silence beyond the lead-in is skipped (it would score as a
    perfect match); a file that starts with its attack (a drum one-shot) gets silence
    put in front, so every clip's first attack has silence before it where pre-echo
    shows and where the onset detector finds it. A shorter file is padded with trailing
    silence, as it would ring out: clips of one length run through the JAX metrics
    without recompiling per file (a few seconds each) and weigh the same in every mean
    (``pad=False`` leaves it shorter). ``seconds=None`` keeps the whole file, padded to
    :func:`bucket_length` (``pad=False``: as it is).
    """
    if seconds is None:
        if not pad:
            return audio
        # A whole file, padded with trailing silence to the next of a few lengths: the
        # JAX metrics then compile once per length bucket, not once per file.
        return np.pad(audio, ((0, 0), (0, bucket_length(audio.shape[-1]) - audio.shape[-1])))
    n = round(seconds * sample_rate)
    lead = round(CLIP_LEAD_IN_S * sample_rate)
    envelope = np.abs(audio[..., start:]).max(axis=0)
    first = start + int(np.argmax(envelope >= envelope.max() * 10 ** (CLIP_START_DB / 20)))
    if first < lead:  # only at the very start of a file
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
    clips, rate = load_reference_clips(path, sample_rate, clip_seconds, 1, pad)
    return clips[0], rate


def load_reference_clips(
    path: str | os.PathLike,
    sample_rate: int | None,
    clip_seconds: float | None,
    clips_per_file: int = 1,
    pad: bool = True,
) -> tuple[list[np.ndarray], int]:
    """Read a reference, resample it for MP3 and cut up to ``clips_per_file`` clips.

    The file is divided into ``clips_per_file`` equal parts and each part's clip is cut
    by :func:`select_clip` (from the part's first sound); parts too short for a whole
    clip, or silent, are dropped, except the first. One long song then gives several
    clips from its verses, choruses and ending, not only its intro.
    """
    reference, rate = audio_lib.read_audio(path)
    # A rate MP3 cannot carry (e.g. 96 kHz) is scored at the model's rate.
    mp3_rate = rate if rate in audio_lib.MP3_SAMPLE_RATES else audio_lib.MODEL_SAMPLE_RATE
    target = sample_rate or mp3_rate
    if target != rate:
        reference = audio_lib.resample(reference, rate, target)
    parts = max(1, int(clips_per_file)) if clip_seconds is not None else 1
    length = reference.shape[-1]
    peak = float(np.abs(reference).max(initial=0.0))
    clips = [select_clip(reference, target, clip_seconds, pad)]
    for k in range(1, parts):
        part = reference[..., k * length // parts : (k + 1) * length // parts]
        # A part too short for a clip, or only a quiet tail (40 dB below the file's
        # peak), gives no clip of its own.
        if part.shape[-1] < round(clip_seconds * target):
            continue
        if float(np.abs(part).max()) < peak * 10 ** (CLIP_START_DB / 20):
            continue
        # Cut from the whole file, so the lead-in is the song itself, not silence.
        clips.append(select_clip(reference, target, clip_seconds, pad, k * length // parts))
    if not np.any(clips[0]):
        raise audio_lib.AudioError(f"{path}: the clip is digital silence")
    return clips, target


def evaluate_folder(
    reference_dir: str | os.PathLike,
    degradations: Sequence[str],
    methods: dict[str, audio_lib.PredictFn],
    files: Sequence[str | os.PathLike] | None = None,
    max_files: int | None = None,
    clip_seconds: float | None = None,
    sample_rate: int | None = None,
    failures: list[dict] | None = None,
    progress: bool = True,
    skip_metrics: Sequence[str] = metrics.SLOW_METRICS,
    clips_per_file: int = 1,
) -> tuple[list[dict], list[dict]]:
    """Degrade each reference file, run every method, score: ``(summary, records)``.

    ``files`` (default: every lossless file under ``reference_dir``, sorted) is cut to
    ``max_files`` evenly spaced ones; each file is cut to ``clip_seconds``
    (:func:`select_clip`) and resampled to ``sample_rate`` (default: its own rate if MP3
    can carry it, else 44.1 kHz). A file that fails (unreadable, corrupt, silent, a
    method error) is logged by name and skipped; pass a list as ``failures`` to collect
    ``{"file", "error"}`` entries. ``clips_per_file`` > 1 scores that many clips from
    equal parts of each long file (:func:`load_reference_clips`), named ``file#k``.
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
            references, rate = load_reference_clips(path, sample_rate, clip_seconds, clips_per_file)
            clips = [
                Clip(f"{name}#{k}" if k else name, chain.name, ref, chain(ref, rate), rate)
                for k, ref in enumerate(references)
                for chain in chains
            ]
            records.extend(evaluate_clips(methods, clips, skip_metrics=skip_metrics))
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


def model_method(checkpoint: str | os.PathLike) -> audio_lib.PredictFn:
    """The trained generator of ``checkpoint`` as a predict function (one compile).

    ``checkpoint`` is a training workdir, one of its steps or a model folder; ``"none"``
    is the untrained generator, exactly the identity (a pipeline check).
    """
    from mp3gan.restore.restorer import Restorer  # late: flax/orbax are slow to load

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
    degradations: Sequence[str] | None = None,
    skip_metrics: Sequence[str] = metrics.SLOW_METRICS,
    kinds: Sequence[str] | None = None,
    clips_per_file: int = 1,
) -> dict:
    """Evaluate the baselines (and the model of ``checkpoint``) and write the results.

    ``reference_dir`` is a folder of lossless references; with ``split`` ("test" or
    "validation") only that held-out split of it is used, split as ``data_config`` (the
    training config's ``data`` section) says (:func:`held_out_files`), and of the manifest
    ``kinds`` given. ``clips_per_file``: clips from equal parts of each long file.
    Writes ``results.json`` (settings, per-clip records, the summary with mean and 95 %
    CI per (degradation, method), each method's improvement over the MP3 input, skipped
    files) and ``results.md``: the table of :func:`results_markdown`, built from the
    JSON as written. Returns the JSON's content.
    """
    methods: dict[str, audio_lib.PredictFn] = dict(baselines.BASELINES)
    if checkpoint is not None:
        methods["model"] = model_method(checkpoint)
    if degradations is None:
        degradations = [f"mp3:{int(b)}" for b in bitrates]
        if lowpass_hz:
            degradations.append(f"lowpass:{lowpass_hz:g}")
    degradations = list(degradations)
    files = None
    if split is not None:
        files = held_out_files(reference_dir, split, data_config, kinds)
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
        skip_metrics=skip_metrics,
        clips_per_file=clips_per_file,
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
        "skipped_metrics": list(skip_metrics),
        "clip_seconds": clip_seconds,
        "clips_per_file": clips_per_file,
        "kinds": None if kinds is None else list(kinds),
        "files_evaluated": len(
            {r["clip"].rsplit("#", 1)[0] if clips_per_file > 1 else r["clip"] for r in records}
        ),
        "clips_evaluated": len({r["clip"] for r in records}),
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


def _best_baseline(reference: np.ndarray, degraded: np.ndarray, sample_rate: int):
    """(name, output) of the baseline with the lowest LSD; identity when none helps.

    LSD alone (not :func:`metrics.score_all`) keeps this quick: it is the metric that
    sees a filled band, which is what the baselines are for.
    """
    cutoff = metrics.cutoff_frequency(degraded, sample_rate)
    cutoff = cutoff if np.isfinite(cutoff) else None
    best = ("identity", degraded, metrics.lsd(reference, degraded, sample_rate))
    for name, method in baselines.BASELINES.items():
        if name == "identity":
            continue
        output = method(degraded, sample_rate)
        aligned, _, _ = metrics.align_output(reference, output, sample_rate, cutoff)
        lsd = metrics.lsd(reference, aligned, sample_rate)
        if np.isfinite(lsd) and (not np.isfinite(best[2]) or lsd < best[2]):
            best = (name, output, lsd)
    return best[0], best[1]


def analyze_file(
    reference_path: str | os.PathLike,
    out: str | os.PathLike = "analysis.png",
    bitrate: int = 64,
    checkpoint: str | os.PathLike | None = None,
    seconds: float | None = 8.0,
    write_audio: bool = False,
    start_seconds: float = 0.0,
) -> Path:
    """Encode a lossless file to MP3, restore it and save :func:`plots.restoration_figure`.

    Without ``checkpoint`` the "restored" panel shows the best baseline by LSD (or the
    MP3 itself when no baseline helps) and the title says so. ``seconds`` limits the
    analysed clip (from just before the first sound after ``start_seconds`` into the
    file; None = the whole file from there).
    ``write_audio`` also writes the three signals beside the figure, as 24-bit FLAC:
    ``<out stem>.reference.flac``, ``.mp3.flac`` (the decoded, aligned MP3) and
    ``.restored.flac``, to listen to what the figure shows.
    """
    reference_path = Path(reference_path)
    reference, sample_rate = load_reference(reference_path, None, None, pad=False)
    start = round(start_seconds * sample_rate)
    if not 0 <= start < reference.shape[-1]:
        raise ValueError(f"{reference_path}: start {start_seconds} s is outside the file")
    if start and not np.any(reference[..., start:]):
        raise ValueError(f"{reference_path}: only digital silence after {start_seconds} s")
    if seconds is None:
        reference = reference[..., start:]
    else:
        reference = select_clip(reference, sample_rate, seconds, pad=False, start=start)
    degraded = parse_degradation(f"mp3:{bitrate}")(reference, sample_rate)
    if checkpoint is not None:
        restored = model_method(checkpoint)(degraded, sample_rate)
        label = f"restored (model {Path(checkpoint).name})"
        what = f"model checkpoint {checkpoint}"
    else:
        name, restored = _best_baseline(reference, degraded, sample_rate)
        label = f"restored ({name} baseline)"
        what = f"no checkpoint: 'restored' is the {name} baseline (best by LSD)"
    title = f"{reference_path.name}: MP3 {bitrate} kbps, {sample_rate} Hz; {what}"
    fig = plots.restoration_figure(reference, degraded, restored, sample_rate, title, label)
    path = plots.save_figure(fig, out)
    if write_audio:
        signals = {"reference": reference, "mp3": degraded, "restored": restored}
        # FLAC holds no sample beyond full scale: one gain for all three keeps them
        # comparable (an MP3 often overshoots a reference normalised to 0 dBFS).
        peak = max(float(np.abs(x).max()) for x in signals.values())
        gain = min(1.0, 0.999 / peak) if peak > 0 else 1.0
        if gain < 1.0:
            log.info("%s: all three scaled by %.2f dB to fit FLAC", path, 20 * np.log10(gain))
        for name, signal in signals.items():
            audio_lib.write_audio(path.with_suffix(f".{name}.flac"), gain * signal, sample_rate)
    return path


def plot_training_curves(
    workdir: str | os.PathLike,
    out: str | os.PathLike,
    metric_names: Sequence[str] = (
        "lsd",
        "lsd_high",
        "si_sdr",
        "pre_echo_db",
        "pre_echo_error_db",
    ),
) -> Path:
    """Draw a run's ``metrics.jsonl`` (:func:`plots.training_curves`), keeping the
    held-out ``metric_names`` only, and save it as an image."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.jsonl (is this a training work directory?)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    keep = {f"/{m}/" for m in metric_names}
    rows = [
        {k: v for k, v in r.items() if not k.startswith("eval/") or any(m in k for m in keep)}
        for r in rows
    ]
    return plots.save_figure(plots.training_curves(rows, title=Path(workdir).name), out)
