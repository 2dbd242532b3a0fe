"""For a GPU: the base experiment with a wider, deeper frame generator and HiFi-GAN-sized
discriminators (same families as base).

Run:
    python launch/train.py --config configs/large.py --workdir workdir/large
On a CPU it is ~5× slower per step than base; ``benchmarks/models.py`` prints its cost.
"""

from configs import base
from mp3gan import models


def get_config():
    c = base.get_config()
    c.model.generator = dict(models.LARGE_GENERATOR)
    c.model.discriminator = dict(models.LARGE_DISCRIMINATORS)
    c.train.batch_size = 32
    return c
