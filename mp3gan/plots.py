"""Pictures of what MP3 broke and what a restoration gave back: one figure, six panels.

:func:`restoration_figure` shows, for a reference, its MP3 decode and a restoration:

- top: spectrograms of the three on one shared dB colour scale, the MP3 cutoff marked,
  so the lost band (and anything put back into it) is visible at a glance;
- bottom left: the waveforms around the reference's strongest transient, in ms from the
  onset, where MP3 pre-echo shows as noise before the attack;
- bottom middle: the level above 2 kHz around the same onset, in dB, which makes
  pre-echo that is small in amplitude plain to see;
- bottom right: the coherence of the MP3 and of the restoration with the reference over
  frequency (1 = the original's waveform, ~0 = unrelated or missing content).

All spectra come from :mod:`mp3gan.dsp`. Figures are plain ``matplotlib.figure.Figure``
objects on the Agg canvas: nothing is registered with pyplot, so nothing needs closing
and training loops cannot leak figures. Drawing only: what to
draw is decided by the callers (:mod:`mp3gan.evaluate_run`'s ``analyze_file``, the
trainer's evaluation).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mp3gan import dsp, metrics
from mp3gan.files import atomic_path

FIGSIZE = (16.0, 10.0)  # inches; at DPI this is the PNG's size in pixels
DPI = 100
SPEC_N_FFT = 2048
SPEC_HOP = 256
SPEC_RANGE_DB = 90.0  # colour scale spans this far below the loudest bin
# Pre-echo view: MP3 spreads quantisation noise over its 1152-sample granule pair
# (26 ms at 44.1 kHz), so look that far back and a little past the attack.
ZOOM_BEFORE_MS = 30.0
ZOOM_AFTER_MS = 15.0
# The level trace: energy above 2 kHz (where pre-echo is audible) in ~1.5 ms frames.
LEVEL_N_FFT = 64
LEVEL_HOP = 16
LEVEL_MIN_HZ = 2000.0
LEVEL_RANGE_DB = 80.0
COHERENCE_NPERSEG = 2048
COLOURS = {"reference": "black", "mp3": "tab:red", "restored": "tab:blue"}


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x if x.ndim == 1 else x.mean(axis=0)


def _spectrogram_db(x: np.ndarray) -> np.ndarray:
    power = np.asarray(np.abs(dsp.stft(x, SPEC_N_FFT, SPEC_HOP)), np.float64) ** 2
    return 10 * np.log10(power + 1e-20)


def strongest_onset(reference: np.ndarray, sample_rate: int) -> int:
    """Sample index of the reference's sharpest attack (:func:`metrics.find_onsets`).

    Among the detected onsets, the one whose 5 ms after are loudest relative to the
    20 ms before; the loudest sample when no onset is found.
    """
    x = _mono(reference).astype(np.float64)
    onsets = metrics.find_onsets(x, sample_rate)
    if len(onsets) == 0:
        return int(np.argmax(np.abs(x)))
    after, before = round(0.005 * sample_rate), round(0.020 * sample_rate)
    floor = 1e-12 * float(np.mean(x**2) + 1e-30)

    def sharpness(onset: int) -> float:
        post = np.mean(x[onset : onset + after] ** 2)
        pre = np.mean(x[max(0, onset - before) : onset] ** 2) if onset > 0 else 0.0
        return post / (pre + floor)

    return int(max(onsets, key=sharpness))


def _level_db(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame centres (samples) and energy above LEVEL_MIN_HZ per short frame, in dB."""
    magnitude = np.asarray(np.abs(dsp.stft(x, LEVEL_N_FFT, LEVEL_HOP)), np.float64)
    freqs = np.arange(magnitude.shape[0]) * sample_rate / LEVEL_N_FFT
    energy = (magnitude[freqs >= LEVEL_MIN_HZ] ** 2).sum(axis=0)
    return np.arange(magnitude.shape[-1]) * LEVEL_HOP, 10 * np.log10(energy + 1e-20)


def _aligned_signals(reference, degraded, restored, sample_rate, restored_label):
    """Mono reference, MP3 and restoration (aligned), their labels and the MP3 cutoff."""
    reference = np.asarray(reference, dtype=np.float32)
    ref2 = reference if reference.ndim == 2 else reference[None]
    signals = {"reference": _mono(ref2)}
    labels = {"reference": "reference", "mp3": "MP3", "restored": restored_label}
    cutoff = metrics.cutoff_frequency(degraded, sample_rate)
    band = cutoff if np.isfinite(cutoff) else None
    for key, x in (("mp3", degraded), ("restored", restored)):
        aligned, lag, polarity = metrics.align_output(
            ref2, np.asarray(x, np.float32), sample_rate, band
        )
        signals[key] = _mono(aligned)
        if lag or polarity != 1:
            labels[key] += f" (re-aligned: lag {lag}, polarity {polarity:+d})"
    return signals, labels, cutoff


def _spectrogram_panels(top, signals, labels, cutoff: float, sample_rate: int) -> None:
    """(a) spectrograms on one colour scale, set by the reference's loudest bin."""
    specs = {key: _spectrogram_db(x) for key, x in signals.items()}
    vmax = float(specs["reference"].max())
    duration = len(signals["reference"]) / sample_rate
    has_cutoff = np.isfinite(cutoff) and cutoff < sample_rate / 2
    spec_axes = top.subplots(1, 3, sharex=True, sharey=True)
    for ax, (key, spec) in zip(spec_axes, specs.items(), strict=True):
        image = ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmax - SPEC_RANGE_DB,
            vmax=vmax,
            extent=(0.0, duration, 0.0, sample_rate / 2000),
            interpolation="nearest",
        )
        ax.set_title(labels[key], fontsize=12)
        ax.set_xlabel("time (s)")
        if has_cutoff:
            ax.axhline(cutoff / 1000, color="white", ls="--", lw=1.0, alpha=0.8)
    spec_axes[0].set_ylabel("frequency (kHz)")
    if has_cutoff:
        label = f"MP3 cutoff {cutoff / 1000:.1f} kHz"
        spec_axes[1].text(
            0.99 * duration, cutoff / 1000, label, color="white", ha="right", va="bottom",
            fontsize=10,
        )  # fmt: skip
    top.colorbar(image, ax=spec_axes, label="power (dB)", fraction=0.03, pad=0.01)


_WIDTHS = {"reference": 1.4, "mp3": 1.0, "restored": 1.0}


def _onset_panels(wave_ax, level_ax, signals, labels, sample_rate: int) -> None:
    """(b) waveforms and high-band level around the strongest transient."""
    onset = strongest_onset(signals["reference"], sample_rate)
    n = len(signals["reference"])
    lo = max(0, onset - round(ZOOM_BEFORE_MS * sample_rate / 1000))
    hi = min(n, onset + round(ZOOM_AFTER_MS * sample_rate / 1000))
    t_ms = (np.arange(lo, hi) - onset) * 1000 / sample_rate
    # Stacked traces (one shared amplitude scale) so no curve hides another.
    spacing = 2.2 * max(float(np.abs(x[lo:hi]).max(initial=0.0)) for x in signals.values())
    spacing = spacing or 1.0
    for row, (key, x) in enumerate(signals.items()):
        offset = -row * spacing
        wave_ax.plot(t_ms, x[lo:hi] + offset, color=COLOURS[key], lw=_WIDTHS[key] * 0.8)
        wave_ax.text(
            t_ms[0], offset + 0.3 * spacing, " " + labels[key], color=COLOURS[key],
            va="bottom", ha="left", fontsize=10,
        )  # fmt: skip
    wave_ax.axvline(0.0, color="grey", ls=":", lw=1.0)
    wave_ax.set_title(f"waveforms at the strongest onset ({onset / sample_rate:.3f} s)")
    wave_ax.set_xlabel("time from onset (ms)")
    wave_ax.set_ylabel("amplitude (traces offset)")
    wave_ax.set_yticks([])
    wave_ax.set_xlim(t_ms[0], t_ms[-1])
    wave_ax.set_ylim(-2.5 * spacing, 0.5 * spacing)

    level_peak = -np.inf
    for key, x in signals.items():
        centres, level = _level_db(x, sample_rate)
        keep = (centres >= lo) & (centres < hi)
        level_peak = max(level_peak, float(level[keep].max(initial=-np.inf)))
        level_ax.plot(
            (centres[keep] - onset) * 1000 / sample_rate, level[keep], color=COLOURS[key],
            lw=_WIDTHS[key] + 0.4, label=labels[key],
        )  # fmt: skip
    level_ax.axvline(0.0, color="grey", ls=":", lw=1.0)
    level_ax.set_ylim(level_peak - LEVEL_RANGE_DB, level_peak + 5)
    level_ax.set_xlim(t_ms[0], t_ms[-1])
    level_ax.set_title(f"level above {LEVEL_MIN_HZ / 1000:g} kHz: pre-echo shows before 0 ms")
    level_ax.set_xlabel("time from onset (ms)")
    level_ax.set_ylabel("level (dB)")
    level_ax.legend(loc="lower right", fontsize=9)


def _coherence_panel(coh_ax, signals, labels, cutoff: float, sample_rate: int) -> None:
    """(c) coherence with the reference over frequency."""
    nperseg = min(COHERENCE_NPERSEG, len(signals["reference"]))
    # MP3 wide and pale underneath: where the restoration leaves the MP3 band as it is,
    # the two curves coincide and the MP3 still shows as a halo instead of vanishing.
    for key, width, alpha in (("mp3", 2.6, 0.5), ("restored", 0.9, 1.0)):
        f, cxy = dsp.coherence(signals["reference"], signals[key], sample_rate, nperseg=nperseg)
        coh_ax.plot(
            np.asarray(f) / 1000, np.asarray(cxy), color=COLOURS[key], lw=width, alpha=alpha,
            label=labels[key],
        )  # fmt: skip
    if np.isfinite(cutoff) and cutoff < sample_rate / 2:
        coh_ax.axvline(cutoff / 1000, color="grey", ls="--", lw=1.0, label="MP3 cutoff")
    coh_ax.set_xlim(0, sample_rate / 2000)
    coh_ax.set_ylim(0, 1.05)
    coh_ax.set_title("coherence with the reference")
    coh_ax.set_xlabel("frequency (kHz)")
    coh_ax.set_ylabel("magnitude-squared coherence")
    coh_ax.legend(loc="upper right", fontsize=9)


def restoration_figure(
    reference: np.ndarray,
    degraded: np.ndarray,
    restored: np.ndarray,
    sample_rate: int,
    title: str = "",
    restored_label: str = "restored",
) -> Figure:
    """Spectrograms, pre-echo zoom and coherence of reference / MP3 / restored.

    Arrays are ``[C, T]`` or ``[T]`` (channels are averaged for display); the MP3 and
    restored signals are aligned to the reference first (:func:`metrics.align_output`).
    """
    signals, labels, cutoff = _aligned_signals(
        reference, degraded, restored, sample_rate, restored_label
    )
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 0.9])
    if title:
        fig.suptitle(title, fontsize=15)
    _spectrogram_panels(top, signals, labels, cutoff, sample_rate)
    wave_ax, level_ax, coh_ax = bottom.subplots(1, 3)
    _onset_panels(wave_ax, level_ax, signals, labels, sample_rate)
    _coherence_panel(coh_ax, signals, labels, cutoff, sample_rate)
    for ax in (wave_ax, level_ax, coh_ax):
        ax.grid(alpha=0.3)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as an image (format from the extension) atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=fig.dpi)
    return path


def training_curves(rows: list[dict], title: str = "") -> Figure:
    """Losses (left) and held-out metrics of the MP3 input and the output (right) against
    the step, from the rows of a run's ``metrics.jsonl``."""
    fig = Figure(figsize=(14.0, 5.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, eval_ax = fig.subplots(1, 2)
    if title:
        fig.suptitle(title, fontsize=13)
    losses = sorted({k for row in rows for k in row if k.startswith("loss/")})
    for key in losses + ["g_loss", "d_loss"]:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            steps, values = zip(*points, strict=True)
            loss_ax.plot(steps, values, label=key.removeprefix("loss/"), lw=1.0)
    loss_ax.set_yscale("symlog", linthresh=0.1)
    loss_ax.set_xlabel("step")
    loss_ax.set_title("training losses")
    loss_ax.legend(fontsize=8, ncol=2)
    metrics_seen = sorted({k.rsplit("/", 1)[0] for r in rows for k in r if k.startswith("eval/")})
    for i, key in enumerate(metrics_seen):
        colour = f"C{i % 10}"
        for part, style in (("input", ":"), ("output", "-")):
            points = [(r["step"], r[f"{key}/{part}"]) for r in rows if f"{key}/{part}" in r]
            if points:
                steps, values = zip(*points, strict=True)
                label = f"{key.removeprefix('eval/')} ({part})"
                eval_ax.plot(steps, values, style, color=colour, marker="o", ms=3, label=label)
    eval_ax.set_xlabel("step")
    eval_ax.set_title("held-out clips: MP3 input (dotted) and restoration (solid)")
    eval_ax.legend(fontsize=7, ncol=2)
    for ax in (loss_ax, eval_ax):
        ax.grid(alpha=0.3)
    return fig
