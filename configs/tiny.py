"""Tiny model and short crops for tests and CI: minutes on 2 CPU cores, not quality.

Run:
    python launch/train.py --config configs/tiny.py --workdir workdir/tiny
"""

from configs import base
from mp3gan import models


def get_config():
    c = base.get_config()
    c.data.crop_samples = 2048
    c.data.workers = 0
    c.data.degradations = ("mp3:64", "mp3:128")
    c.model.generator = dict(models.TINY_GENERATOR)
    c.model.discriminator = dict(models.TINY_DISCRIMINATORS, periods=(2, 3), fft_sizes=(512,))
    c.loss.stft_fft_sizes = (256, 1024)
    c.optim.warmup_steps = 10
    c.train.steps = 40
    c.train.batch_size = 4
    c.train.recon_warmup_steps = 20
    c.train.log_every = 10
    c.train.eval_every = 20
    c.train.checkpoint_every = 10
    c.train.eval_clips = 2
    c.train.eval_clip_seconds = 0.5
    c.train.eval_degradations = ("mp3:64",)
    # Step schedule only: tests compare logs and checkpoints step by step.
    c.train.log_minutes = c.train.first_eval_minutes = c.train.eval_minutes = 0.0
    c.wandb.mode = "disabled"
    c.wandb.media_clips = 1
    return c
