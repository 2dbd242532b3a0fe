"""Where high-band LSD is lost: each method's spectral error above the MP3's cutoff, by
sub-band and by how loud the frame is, signed (too dark or too bright) and RMS.

    python benchmarks/lsd_bands.py --corpus data/corpus
    python benchmarks/lsd_bands.py --corpus data/corpus --split test --clip-seconds 10 \\
        --clips-per-file 6 --degradations mp3:64,mp3:128

``lsd_high`` (:func:`mp3gan.metrics.lsd`) is one number per clip: the mean over active
frames of the RMS, over the bins above the input's cutoff, of the dB difference between
reference and output. A method can lose it by being too dark or too bright, in the
octave just above the cutoff or near Nyquist, in loud frames or in the quiet ones (the
metric weighs every frame within 60 dB of the loudest alike). This splits the band above
the cutoff into three equal parts and the active frames into loud (within 20 dB of the
loudest) and quiet (20-60 dB below), and prints per cell the mean of (output dB -
reference dB) and the RMS of that difference, over the cell's bins and frames, with the
metric's own STFT (2048, hop 512) and floor. The clips, codec round trip and alignment
are ``launch/evaluate.py``'s. Prints figures; not a test.
"""

from __future__ import annotations

import common
import numpy as np

from mp3gan import baselines, dsp, metrics
from mp3gan.evaluate_run import model_method

N_FFT, HOP = 2048, 512  # metrics.lsd's defaults
LOUD_DB = 20.0  # frames within this of the clip's loudest count as loud
ACTIVE_DB = 60.0  # metrics.lsd: frames further below the loudest are skipped
PARTS = 3  # equal sub-bands of the band above the cutoff


def power_db(x: np.ndarray, floor: float | None = None) -> tuple[np.ndarray, float]:
    """``(dB [C, bins, frames], floor)``: power spectrogram in dB over ``floor`` (the
    metric's, 100 dB below the mean bin power of ``x``, when not given)."""
    power = np.abs(np.asarray(dsp.stft(np.atleast_2d(x), N_FFT, HOP))) ** 2
    floor = 1e-10 * power.mean(dtype=np.float64) if floor is None else floor
    return 10 * np.log10(power + floor), floor


def cell_errors(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, cutoff_hz: float
) -> dict[str, tuple[float, float, int]]:
    """``{cell: (sum of dB differences, sum of their squares, count)}`` for the sub-bands
    above ``cutoff_hz`` and the loud and quiet frames (estimate minus reference)."""
    ref_db, floor = power_db(reference)
    est_db, _ = power_db(estimate, floor)
    freqs = np.arange(N_FFT // 2 + 1) * sample_rate / N_FFT
    frame_db = 10 * np.log10(np.sum(10 ** (ref_db / 10), axis=-2) + 1e-30)  # [C, frames]
    below_loudest = frame_db.max() - frame_db
    frames = {"loud": below_loudest <= LOUD_DB}
    frames["quiet"] = (below_loudest > LOUD_DB) & (below_loudest <= ACTIVE_DB)
    edges = np.linspace(cutoff_hz, sample_rate / 2 + 1e-6, PARTS + 1)
    # Named by their place (the cutoff differs from clip to clip): third 1 starts at it.
    bands = {
        f"third {i + 1}": (freqs >= lo) & (freqs < hi)
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    }
    diff = est_db - ref_db  # [C, bins, frames]
    active = frames["loud"] | frames["quiet"]
    high = freqs >= cutoff_hz

    def cell(bins: np.ndarray, frame_mask: np.ndarray) -> tuple[float, float, int]:
        part = diff[:, bins, :]
        d = part[np.broadcast_to(frame_mask[:, None, :], part.shape)]
        return float(d.sum()), float((d**2).sum()), d.size

    cells = {name: cell(band, active) for name, band in bands.items()}
    cells.update({name: cell(high, mask) for name, mask in frames.items()})
    return cells


def main() -> None:
    args, checkpoint, data_config = common.model_on_held_out_options(__doc__)
    methods = {
        "MP3": baselines.identity,
        "exciter": baselines.exciter,
        "SBR": baselines.spectral_band_replication,
        "model": model_method(checkpoint),
    }
    clips = common.held_out_clips(args, data_config)
    print("cells: mean (output dB - reference dB) / RMS dB, above the MP3's cutoff")
    for spec in args.degradations.split(","):
        totals: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
        lsd_high: dict[str, list[float]] = {m: [] for m in methods}
        for reference, mp3, rate in common.degraded_clips(spec, clips):
            cutoff = metrics.cutoff_frequency(mp3, rate)
            if not cutoff < rate / 2 * 0.95:
                continue  # no band above the cutoff to judge
            for name, method in methods.items():
                output, _, _ = metrics.align_output(reference, method(mp3, rate), rate, cutoff)
                lsd_high[name].append(metrics.lsd(reference, output, rate, f_min=cutoff))
                for cell, values in cell_errors(reference, output, rate, cutoff).items():
                    totals[name][cell] = totals[name].get(cell, 0) + np.asarray(values)
        if not lsd_high["MP3"]:
            print(f"{spec}: no clip with a cutoff")
            continue
        cells = list(totals["MP3"])
        print(f"\n{spec} (n={len(lsd_high['MP3'])})")
        print(f"{'':8s} {'lsd_high':>9s} " + " ".join(f"{c:>14s}" for c in cells))
        for name in methods:
            row = []
            for cell in cells:
                total, squares, count = totals[name][cell]
                if not count:  # e.g. no quiet frame in any clip
                    row.append("-")
                    continue
                row.append(f"{total / count:+6.1f}/{np.sqrt(squares / count):5.1f}")
            cells_text = " ".join(f"{r:>14s}" for r in row)
            print(f"{name:8s} {np.nanmean(lsd_high[name]):9.2f} {cells_text}")


if __name__ == "__main__":
    main()
