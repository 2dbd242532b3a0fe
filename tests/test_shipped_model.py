"""The shipped model (checkpoints/mp3gan-base): what a fresh clone restores with by default."""

import json

import numpy as np
from helpers import ROOT, clicks_and_noise

from mp3gan import audio, checkpoint, restore

SR = 44100


def test_the_default_checkpoint_is_the_shipped_base_model():
    assert checkpoint.DEFAULT_CHECKPOINT == ROOT / "checkpoints" / "mp3gan-base"
    config = json.loads((checkpoint.DEFAULT_CHECKPOINT / "config.json").read_text())
    assert config["model"]["generator"]["kind"] == "frame"
    assert config["data"]["sample_rate"] == SR
    assert (checkpoint.DEFAULT_CHECKPOINT / "README.md").is_file()  # its card
    size = sum(p.stat().st_size for p in checkpoint.DEFAULT_CHECKPOINT.rglob("*") if p.is_file())
    assert size < 30e6


def test_restore_with_no_checkpoint_uses_the_shipped_model_and_changes_the_mp3():
    reference = 0.5 * clicks_and_noise(SR, SR, channels=2, seed=3)
    mp3 = audio.mp3_roundtrip(reference, SR, bitrate=64)
    restored = restore.restore(mp3, SR)  # checkpoint=None: the shipped model
    assert restored.shape == mp3.shape and np.isfinite(restored).all()
    assert np.abs(restored - mp3).max() > 1e-4  # a trained model, not the identity
    # and nothing wild: the correction is small next to the signal
    assert np.sqrt(np.mean((restored - mp3) ** 2)) < 0.5 * np.sqrt(np.mean(mp3**2))


def test_fresh_clone_command_restores_an_mp3_with_the_shipped_model(tmp_path):
    """The README's promise: `python launch/restore.py some.mp3 -o out.wav`, no checkpoint."""
    import subprocess
    import sys

    reference = 0.5 * clicks_and_noise(SR, SR, channels=2, seed=4)
    source = tmp_path / "some.mp3"
    source.write_bytes(audio.mp3_encode(reference, SR, bitrate=64))
    out = tmp_path / "out.wav"
    cmd = [sys.executable, str(ROOT / "launch" / "restore.py"), str(source), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    restored, rate = audio.read_audio(out)
    mp3, _ = audio.read_audio(source)
    assert rate == SR and restored.shape == mp3.shape
    assert np.abs(restored - mp3).max() > 1e-4
