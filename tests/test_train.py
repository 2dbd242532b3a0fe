"""Tests for mp3gan.train: the loop (resume, NaN stop, logs, schedule, checks) and its CLI."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import clicks_and_noise, run_train_cli

from configs import tiny
from mp3gan import audio, checkpoint, models, train
from mp3gan.data import DataError


def _run(tmp_path, steps, workdir_name="run"):
    config = tiny.get_config()
    config.train.steps = steps
    return train.train_and_evaluate(config, tmp_path / workdir_name), config


def test_resume_equals_uninterrupted_run(tmp_path):
    straight, _ = _run(tmp_path, 30, "straight")
    _run(tmp_path, 10, "resumed")
    resumed, _ = _run(tmp_path, 30, "resumed")
    assert int(resumed.step) == int(straight.step) == 30
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    lines = [
        json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [x["step"] for x in lines if "g_loss" in x] == [10, 20, 30]
    # The trained generator loads back for inference with its config.
    generator, config = checkpoint.load_generator(tmp_path / "resumed")
    assert config.model.generator.dim == tiny.get_config().model.generator["dim"]
    out = generator(jnp.zeros((1, 1000)))
    assert out.shape == (1, 1000)


def test_nonfinite_loss_stops_with_the_step(tmp_path):
    config = tiny.get_config()
    config.optim.g_lr = 1e30  # diverges at once
    config.optim.warmup_steps = 1
    config.optim.clip_norm = 1e30
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step \d+"):
        train.train_and_evaluate(config, tmp_path / "nan")


def test_batch_must_divide_over_devices(tmp_path):
    config = tiny.get_config()
    config.train.batch_size = 6
    with pytest.raises(train.ConfigError, match="not divisible by the 4 devices"):
        train.train_and_evaluate(config, tmp_path / "bad")


@pytest.mark.parametrize("field", ["data.degradations", "train.eval_degradations"])
def test_bad_degradations_fail_before_any_work(tmp_path, field):
    config = tiny.get_config()
    section, name = field.split(".")
    config[section][name] = ("mp3:64", "nonsense:1")
    with pytest.raises(train.ConfigError, match=f"{field}: bad degradation 'nonsense:1'"):
        train.train_and_evaluate(config, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing made, not even the work directory


def test_an_unknown_complex_band_fails_before_any_work(tmp_path):
    config = tiny.get_config()
    config.loss.complex_band = "above"
    with pytest.raises(train.ConfigError, match="loss.complex_band='above': one of all, kept"):
        train.train_and_evaluate(config, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("band", "hz", "message"),
    [
        ("kept", -1.0, "complex_band_min_cutoff_hz=-1: 0 .off. or a frequency below 22050 Hz"),
        ("kept", 30000.0, "complex_band_min_cutoff_hz=30000: 0 .off. or a frequency below"),
        ("all", 8500.0, "complex_band_min_cutoff_hz=8500 needs loss.complex_band 'kept'"),
        ("kept", (12000.0, 8500.0), "min_cutoff_hz=12000 must be below .*max_cutoff_hz=8500"),
        ("all", (0.0, 12000.0), "complex_band_max_cutoff_hz=12000 needs loss.complex_band"),
    ],
)
def test_a_bad_complex_band_cutoff_fails_before_any_work(tmp_path, band, hz, message):
    config = tiny.get_config()
    config.loss.complex_band = band
    low, high = hz if isinstance(hz, tuple) else (hz, 0.0)
    config.loss.complex_band_min_cutoff_hz = low
    config.loss.complex_band_max_cutoff_hz = high
    with pytest.raises(train.ConfigError, match=message):
        train.train_and_evaluate(config, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_wandb_offline_writes_scalars_and_media(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = tiny.get_config()
    config.train.steps = 20
    config.wandb.mode = "offline"
    train.train_and_evaluate(config, tmp_path / "wb")
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = [p.name for p in runs[0].rglob("*")]
    assert any(name.endswith(".wandb") for name in files)
    assert any(name.endswith(".wav") for name in files), files
    assert any(name.endswith(".png") for name in files), files


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path):
    result = run_train_cli(
        "--config.train.eval_degradations=('nonsense:1',)", f"--workdir={tmp_path / 'run'}"
    )
    assert result.returncode != 0
    assert "train.eval_degradations: bad degradation 'nonsense:1'" in result.stderr
    assert "Traceback" not in result.stderr


def test_is_due_by_step_by_last_step_and_by_wall_time():
    assert train.is_due(50, 50, 1000) and not train.is_due(49, 50, 1000)
    assert train.is_due(1000, 300, 1000)  # the last step always
    assert not train.is_due(7, 0, 1000)  # 0 = never by count
    assert train.is_due(7, 0, None, seconds_since=301.0, minutes=5.0)
    assert not train.is_due(7, 0, None, seconds_since=299.0, minutes=5.0)
    assert not train.is_due(7, 0, None, seconds_since=1e9, minutes=0.0)  # 0 = never by time


def test_first_evaluation_by_wall_time_writes_numbers_audio_and_figures(tmp_path):
    config = tiny.get_config()
    config.train.steps = 4
    config.train.eval_every = 1000
    config.train.first_eval_minutes = 1e-9  # due at once, then not again before the end
    config.train.eval_minutes = 60.0
    train.train_and_evaluate(config, tmp_path / "run")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = sorted({x["step"] for x in lines if any(k.startswith("eval/") for k in x)})
    assert evaluated == [1, 4]  # by wall time after the first step, and at the end
    keys = next(x for x in lines if x["step"] == 1)
    assert "eval/mp3:64/lsd/input" in keys and "eval/mp3:64/lsd/output" in keys
    media = sorted(p.name for p in (tmp_path / "run" / "media" / "step_0000001").iterdir())
    assert len(media) == 4  # reference, mp3, restored (FLAC) and the figure (PNG)
    assert all(":" not in name and "@" not in name for name in media), media
    assert sum(name.endswith(".png") for name in media) == 1


def test_resuming_another_experiment_is_refused_with_the_difference(tmp_path):
    config = tiny.get_config()
    config.train.steps = 2
    train.train_and_evaluate(config, tmp_path / "run")
    changed = tiny.get_config()
    changed.train.steps = 4  # the schedule may change
    changed.data.degradations = ("mp3:32",)
    with pytest.raises(train.ConfigError) as info:
        train.train_and_evaluate(changed, tmp_path / "run")
    message = str(info.value)
    assert 'data.degradations: ["mp3:64", "mp3:128"] -> ["mp3:32"]' in message
    assert "--workdir" in message and "--allow_config_change" in message
    state = train.train_and_evaluate(changed, tmp_path / "run", allow_config_change=True)
    assert int(state.step) == 4


# Issue 16, item 5: data problems fail before any work, one line each.
def _one_file_corpus(root):
    root.mkdir()
    audio.write_audio(root / "only.flac", clicks_and_noise(22050, 44100) * 0.5, 44100)
    return root


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda root: root, "data.path is not a folder|no such folder"),
        (lambda root: root.mkdir() or root, "no usable lossless audio"),
        (_one_file_corpus, "the validation split is empty"),
    ],
    ids=["missing", "empty", "one-file"],
)
def test_data_problems_fail_before_any_work(tmp_path, monkeypatch, make, message):
    monkeypatch.setenv("MP3GAN_CACHE_HOME", str(tmp_path / "cache"))
    config = tiny.get_config()
    config.data.path = str(make(tmp_path / "corpus"))
    built = []
    monkeypatch.setattr(train, "create_state", lambda *a: built.append(1))
    with pytest.raises(DataError, match=message) as err:
        train.train_and_evaluate(config, tmp_path / "run")
    assert "\n" not in str(err.value) and not built
    assert not (tmp_path / "run").exists()


# Issue 16, item 5: a divergence or unusable checkpoints end the CLI with the message.
@pytest.mark.parametrize(
    "error",
    [
        'FloatingPointError("non-finite loss at step 7: g_loss nan (last checkpoint: step 5)")',
        "checkpoint.CheckpointError('/w/checkpoints/latest: every checkpoint is damaged')",
        "data.DataError('/w/corpus: data.path is not a folder')",
    ],
)
def test_cli_stops_cleanly_with_the_message(tmp_path, error):
    import subprocess
    import sys

    from helpers import ROOT, train_command

    script = f"""
import runpy, sys
sys.path.insert(0, {str(ROOT)!r})
from mp3gan import checkpoint, data, train
def stopped(config, workdir, **kwargs):
    raise {error}
train.train_and_evaluate = stopped
sys.argv = {train_command(f"--workdir={tmp_path / 'run'}")[1:]!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    message = re.search(r"\((['\"])(.*)\1\)$", error).group(2)
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        f"train.py: error: {message}"
    ]


def test_a_new_run_can_start_from_a_models_generator(tmp_path):
    # How the shipped model is trained further: a new work directory, train.init_from.
    config = tiny.get_config()
    config.train.steps = 2
    trained = train.train_and_evaluate(config, tmp_path / "first")
    generator, saved_config = checkpoint.load_generator(tmp_path / "first")
    checkpoint.save_generator(tmp_path / "model", generator, saved_config)
    again = tiny.get_config()
    again.train.init_from = str(tmp_path / "model")
    again.train.steps = 0  # nothing trained: the state is the initialisation itself
    started = train.train_and_evaluate(again, tmp_path / "second")
    leaves = zip(jax.tree.leaves(started.g_params), jax.tree.leaves(trained.g_params), strict=True)
    for a, b in leaves:
        np.testing.assert_array_equal(a, b)
    again.train.steps = 2
    assert int(train.train_and_evaluate(again, tmp_path / "second").step) == 2
    other = tiny.get_config()
    other.model.generator["dim"] = 8
    other.train.init_from = str(tmp_path / "model")
    with pytest.raises(train.ConfigError, match="another shape"):
        train.train_and_evaluate(other, tmp_path / "third")


def test_a_model_without_the_newer_stages_starts_a_run_that_has_them(tmp_path, capsys):
    # The shipped model of an earlier layout (no mask, no fine stage) initialises a
    # generator that has them: its parameters are copied, the new heads start at the
    # identity, and a model with parameters the config lacks is refused.
    config = tiny.get_config()
    config.model.generator.update(mask=False, fine_hop=0)
    config.train.steps = 2
    trained = train.train_and_evaluate(config, tmp_path / "old")
    generator, saved_config = checkpoint.load_generator(tmp_path / "old")
    checkpoint.save_generator(tmp_path / "model", generator, saved_config)
    grown = tiny.get_config()
    assert grown.model.generator.mask and grown.model.generator.fine_hop
    grown.train.init_from = str(tmp_path / "model")
    grown.train.steps = 0
    started = train.train_and_evaluate(grown, tmp_path / "grown")
    assert "new parameters start at their initialisation: fine_head.bias" in capsys.readouterr().out
    old = dict(nnx.to_flat_state(trained.g_params))
    for path, value in nnx.to_flat_state(started.g_params):
        if path in old:
            np.testing.assert_array_equal(value.get_value(), old[path].get_value())
        else:
            assert path[0] in ("mask_head", "fine_head") and not np.any(value.get_value())
    grown_model = models.build_generator(grown.model.generator, nnx.Rngs(0))
    checkpoint.save_generator(tmp_path / "grown_model", grown_model, grown)
    config.train.init_from = str(tmp_path / "grown_model")
    with pytest.raises(train.ConfigError, match="another shape.*fine_head"):
        train.train_and_evaluate(config, tmp_path / "shrunk")
