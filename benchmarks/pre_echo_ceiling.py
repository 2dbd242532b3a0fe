"""How much pre-echo a gain stage of a given time resolution could take away at best.

    python benchmarks/pre_echo_ceiling.py --corpus data/corpus
    python benchmarks/pre_echo_ceiling.py --corpus data/corpus --split validation \\
        --clip-seconds 5 --clips-per-file 3 --frames 512:128,128:32,64:16,32:8

An *oracle* gain: per bin and frame of an STFT of the MP3, ``|R| / |X|`` (R the
reference's STFT, so the reference is known), limited to ±35 dB as the generator's fine
stage is, applied to the MP3's STFT and inverted. No model can beat it at that frame size
with the MP3's phase, so it is the ceiling on what the generator's gain stages
(``hop=128`` main frames of 11.6 ms, ``fine_hop=32`` fine frames of 2.9 ms) can remove,
and tells whether a miss is the resolution's or the prediction's. The signed pre-echo
can fall below 0 (a lead-in dulled below the reference's), so read "lower by" together
with the pre-echo error (the distance from the reference's level either way). The clips are
``launch/evaluate.py``'s (same split rule, clip cut and codec round trip), so the MP3 row
equals RESULTS.md's input row. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common
import jax.numpy as jnp
import numpy as np

from mp3gan import dsp, metrics

GAIN_LIMIT_DB = 35.0  # the fine stage's gains lie within ±35 dB


def oracle_gain(reference: np.ndarray, degraded: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The degraded audio with each STFT bin scaled to the reference's magnitude."""
    ref = dsp.stft(jnp.asarray(reference), n_fft, hop)
    deg = dsp.stft(jnp.asarray(degraded), n_fft, hop)
    limit = 10 ** (GAIN_LIMIT_DB / 20)
    gain = jnp.clip(jnp.abs(ref) / (jnp.abs(deg) + 1e-9), 1 / limit, limit)
    return np.asarray(dsp.istft(deg * gain, n_fft, hop, degraded.shape[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_held_out_arguments(p, split="test", clip_seconds=10.0, clips_per_file=6)
    p.add_argument("--frames", default="512:128,128:32,64:16", help="n_fft:hop, comma-separated")
    args = p.parse_args()
    frames = [tuple(int(v) for v in f.split(":")) for f in args.frames.split(",")]
    data_config = common.load_config(Path(__file__).parent.parent / "configs" / "base.py").data
    clips = common.held_out_clips(args, data_config)
    print(
        "degradation  frames (ms)      pre-echo dB (lower by)   pre-echo error dB   "
        "SI-SDR dB (change)"
    )
    for spec in args.degradations.split(","):
        rows: dict[str, list[tuple[float, float, float]]] = {}
        for reference, mp3, rate in common.degraded_clips(spec, clips):
            outputs = {"MP3 input": mp3}
            for n_fft, hop in frames:
                label = f"{1000 * n_fft / rate:.1f} / {1000 * hop / rate:.2f}"
                outputs[label] = oracle_gain(reference, mp3, n_fft, hop)
            for label, y in outputs.items():
                scores = (
                    metrics.pre_echo_db(reference, y, rate),
                    metrics.si_sdr(reference, y),
                    metrics.pre_echo_error_db(reference, y, rate),
                )
                rows.setdefault(label, []).append(scores)
        base = np.array(rows["MP3 input"])
        for label, values in rows.items():
            v = np.array(values)
            print(
                f"{spec:12s} {label:16s} {np.nanmean(v[:, 0]):6.2f} "
                f"({np.nanmean(base[:, 0] - v[:, 0]):+.2f})          "
                f"{np.nanmean(v[:, 2]):6.2f}            "
                f"{v[:, 1].mean():6.2f} ({(v[:, 1] - base[:, 1]).mean():+.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
