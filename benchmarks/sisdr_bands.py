"""Where a model's SI-SDR goes: its waveform error below and above the MP3's cutoff.

    python benchmarks/sisdr_bands.py --corpus data/corpus
    python benchmarks/sisdr_bands.py --corpus data/corpus --checkpoint checkpoints/mp3gan-base \\
        --split validation --degradations mp3:32,mp3:64,mp3:128

SI-SDR scores the waveform, so a high band the model invents (even at the right level and
spectrum, but not phase-coherent with the reference's, which it cannot know) costs SI-SDR
even when it is the restoration the listener wants. This splits each clip's error at the
MP3's cutoff (an FFT brick wall) and reports the error energy in each band relative to the
reference's energy (dB, lower is better) for the MP3 and the model, and the SI-SDR of the
model's output with its band above the cutoff removed: the part of the SI-SDR change that
the band fill accounts for, apart from what happens in the band the MP3 kept. The clips and
alignment are ``launch/evaluate.py``'s (same split rule, clip cut, codec round trip and
:func:`metrics.align_output`), so the SI-SDR columns equal its rows when no clip is left
out (a clip with any non-finite figure is, and the line counts them). Prints figures; not
a test.
"""

from __future__ import annotations

import common
import numpy as np

from mp3gan import metrics
from mp3gan.evaluate_run import model_method


def split_at(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """``(below, above)``: ``x`` split at ``cutoff_hz`` by zeroing FFT bins; they sum to ``x``."""
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / sample_rate)
    below = np.fft.irfft(np.where(freqs < cutoff_hz, spectrum, 0), n=x.shape[-1], axis=-1)
    return below, x - below


def band_errors_db(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, cutoff_hz: float
) -> tuple[float, float]:
    """Error energy of ``estimate`` below and above ``cutoff_hz``, dB re the reference's energy."""
    energy = np.sum(reference.astype(np.float64) ** 2)
    ref_bands = split_at(reference, sample_rate, cutoff_hz)
    est_bands = split_at(estimate, sample_rate, cutoff_hz)
    pairs = zip(ref_bands, est_bands, strict=True)
    below, above = (np.sum((e - r) ** 2) / energy for r, e in pairs)
    return 10 * np.log10(below + 1e-30), 10 * np.log10(above + 1e-30)


def main() -> None:
    args, checkpoint, data_config = common.model_on_held_out_options(__doc__)
    predict = model_method(checkpoint)
    clips = common.held_out_clips(args, data_config)
    print(
        "degradation  error below / above cutoff (dB re reference)   SI-SDR (dB)\n"
        "             MP3              model                          MP3    model  model "
        "below cutoff"
    )
    for spec in args.degradations.split(","):
        rows = []
        for reference, mp3, rate in common.degraded_clips(spec, clips):
            cutoff = metrics.cutoff_frequency(mp3, rate)
            # The model restores the MP3 as decoded; the MP3 and the output are then aligned
            # to the reference as evaluate.py's score_pair aligns them for scoring.
            mp3_aligned, _, _ = metrics.align_output(reference, mp3, rate, cutoff)
            output, _, _ = metrics.align_output(reference, predict(mp3, rate), rate, cutoff)
            output_below, _ = split_at(output, rate, cutoff)
            rows.append(
                (
                    *band_errors_db(reference, mp3_aligned, rate, cutoff),
                    *band_errors_db(reference, output, rate, cutoff),
                    metrics.si_sdr(reference, mp3_aligned),
                    metrics.si_sdr(reference, output),
                    metrics.si_sdr(reference, output_below),
                )
            )
        print(format_row(spec, rows), flush=True)


def format_row(spec: str, rows: list[tuple[float, ...]]) -> str:
    """One printed line: the column means over the clips whose every figure is finite, and
    how many clips that is. NaN or inf come from a silent reference (or, for SI-SDR, a
    silent or exact estimate); an error-free band is finite, floored near -300 dB."""
    values = np.asarray(rows, np.float64).reshape(len(rows), 7)
    finite = values[np.all(np.isfinite(values), axis=1)]
    left_out = len(values) - len(finite)
    count = f"(n={len(finite)}" + (f", {left_out} not finite left out)" if left_out else ")")
    if len(finite) == 0:
        return f"{spec:12s} no clip to score {count}"
    m = finite.mean(axis=0)
    return (
        f"{spec:12s} {m[0]:6.2f} / {m[1]:6.2f}  {m[2]:6.2f} / {m[3]:6.2f}"
        f"                  {m[4]:6.2f} {m[5]:6.2f} {m[6]:6.2f}   {count}"
    )


if __name__ == "__main__":
    main()
