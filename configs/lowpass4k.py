"""Sanity task (lesson 5): restore lossless audio low-passed at 4 kHz.

Success here is audible and measurable: the band above 4 kHz comes back.

Run:
    python launch/train.py --config configs/lowpass4k.py --workdir workdir/lowpass4k
"""

from configs import base


def get_config():
    c = base.get_config()
    c.data.degradations = ("lowpass:4000",)
    c.train.eval_degradations = ("lowpass:4000",)
    c.loss.coherence_min_hz = 4000.0
    return c
