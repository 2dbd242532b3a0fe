"""Checkpoints: a damaged step is passed over for the newest intact one when resuming,
and a damaged or non-finite model is refused with one line when loading for inference."""

import logging
import shutil
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx
from helpers import random_generator

from mp3gan import checkpoint
from mp3gan.checkpoint import CheckpointError

CONFIG = ml_collections.ConfigDict({"a": 1})


def params(step: int) -> tuple[dict, dict]:
    """Small stand-ins for the generator and train items of a step."""
    generator = {"w": np.arange(1000, dtype=np.float32) + step}
    train = {"step": np.asarray(step, np.int32), "d": np.ones(300, np.float32) * step}
    return generator, train


def template() -> tuple[dict, dict]:
    return params(0)


@pytest.fixture
def workdir(tmp_path):
    """A work directory whose latest manager holds steps 10, 20 and 30."""
    latest, _ = checkpoint.managers(tmp_path, keep=3)
    for step in (10, 20, 30):
        checkpoint.save_step(latest, step, *params(step), {"position": step}, CONFIG)
    latest.wait_until_finished()
    return tmp_path


def biggest_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def truncate_data(step: Path) -> None:
    truncate(biggest_file(step / "generator"))


def truncate_metadata(step: Path) -> None:
    truncate(step / "generator" / "_METADATA")


def empty_folder(step: Path) -> None:
    shutil.rmtree(step)
    step.mkdir()


DAMAGE = [truncate_data, truncate_metadata, empty_folder]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_latest_step_falls_back_to_the_newest_intact_one(workdir, damage, caplog):
    steps = workdir / "checkpoints" / "latest"
    damage(steps / "30")
    latest, _ = checkpoint.managers(workdir, keep=3)
    with caplog.at_level(logging.WARNING, logger="mp3gan.checkpoint"):
        step, generator, train, loader = checkpoint.restore_step(latest, *template())
    assert step == 20 and loader == {"position": 20}
    np.testing.assert_array_equal(generator["w"], params(20)[0]["w"])
    assert "step 30" in caplog.text and "damaged" in caplog.text and "step 20" in caplog.text
    # Moved aside, so a resumed run saves step 30 again (orbax skips an existing step).
    assert (workdir / "checkpoints" / "damaged" / "latest-30").is_dir()
    assert latest.latest_step() == 20
    checkpoint.save_step(latest, 30, *params(30), {"position": 30}, CONFIG)
    latest.wait_until_finished()
    again, _ = checkpoint.managers(workdir, keep=3)
    assert checkpoint.restore_step(again, *template())[0] == 30


def test_non_finite_parameters_make_a_step_damaged(tmp_path, caplog):
    latest, _ = checkpoint.managers(tmp_path, keep=3)
    checkpoint.save_step(latest, 10, *params(10), {}, CONFIG)
    generator, train = params(20)
    generator["w"][5] = np.nan
    checkpoint.save_step(latest, 20, generator, train, {}, CONFIG)
    latest.wait_until_finished()
    with caplog.at_level(logging.WARNING, logger="mp3gan.checkpoint"):
        assert checkpoint.restore_step(latest, *template())[0] == 10
    assert "step 20" in caplog.text and "NaN" in caplog.text


def test_every_step_damaged_is_one_clear_error(workdir):
    steps = workdir / "checkpoints" / "latest"
    for step in ("10", "20", "30"):
        truncate_data(steps / step)
    latest, _ = checkpoint.managers(workdir, keep=3)
    with pytest.raises(CheckpointError, match="every checkpoint is damaged") as err:
        checkpoint.restore_step(latest, *template())
    assert "\n" not in str(err.value)
    assert all(f"step {s}" in str(err.value) for s in (10, 20, 30))
    assert sorted(p.name for p in steps.iterdir()) == ["10", "20", "30"]  # nothing moved


# Issue 16, item 2: a model for inference is refused, never used, when it is damaged.
SMALL = dict(kind="unet", channels=2, down_factors=(2,), dilations=(1,), kernel_size=3)
MODEL_CONFIG = ml_collections.ConfigDict(
    {"data": {"sample_rate": 44100}, "model": {"generator": dict(SMALL, max_channels=2)}}
)


def test_a_model_with_non_finite_parameters_is_refused(tmp_path):
    generator = random_generator(size=MODEL_CONFIG.model.generator.to_dict())
    graphdef, state = nnx.split(generator)
    state = jax.tree.map(lambda p: p * np.float32(np.nan), state)
    checkpoint.save_generator(tmp_path / "nan", nnx.merge(graphdef, state), MODEL_CONFIG)
    with pytest.raises(CheckpointError, match=r"nan: parameter .* holds NaN/Inf"):
        checkpoint.load_generator(tmp_path / "nan")


def test_a_damaged_model_is_one_line(tmp_path):
    generator = random_generator(size=MODEL_CONFIG.model.generator.to_dict())
    checkpoint.save_generator(tmp_path / "cut", generator, MODEL_CONFIG)
    truncate(biggest_file(tmp_path / "cut" / "generator"))
    with pytest.raises(CheckpointError, match="cut: damaged checkpoint") as err:
        checkpoint.load_generator(tmp_path / "cut")
    assert "\n" not in str(err.value)


def test_one_step_of_a_workdir_loads_by_its_folder(tmp_path):
    generator = random_generator(size=MODEL_CONFIG.model.generator.to_dict())
    state = nnx.state(generator, nnx.Param)
    workdir = tmp_path / "15"  # a workdir named by a number is still a workdir
    latest, _ = checkpoint.managers(workdir, keep=3)
    for step in (10, 20):
        scaled = jax.tree.map(lambda p, s=step: np.asarray(p) * np.float32(s), state)
        config = ml_collections.ConfigDict(MODEL_CONFIG.to_dict())
        config.data.sample_rate = 44100 + step  # each step's own config is read
        checkpoint.save_step(latest, step, scaled, {"step": np.int32(step)}, {}, config)
    latest.wait_until_finished()
    weights = {}
    for where, rate in (("10", 44110), ("20", 44120), (None, 44120)):
        path = workdir if where is None else workdir / "checkpoints" / "latest" / where
        loaded, config = checkpoint.load_generator(path)
        assert config.data.sample_rate == rate
        assert checkpoint.load_config(path).data.sample_rate == rate
        weights[where] = jax.tree.leaves(nnx.state(loaded, nnx.Param))[0]
    first = np.asarray(jax.tree.leaves(state)[0])
    np.testing.assert_allclose(weights["10"], first * 10)
    np.testing.assert_allclose(weights["20"], first * 20)
    np.testing.assert_allclose(weights[None], weights["20"])  # the workdir: its latest


def test_a_missing_or_empty_step_folder_is_one_line(tmp_path, capsys):
    from helpers import load_cli

    latest, _ = checkpoint.managers(tmp_path, keep=3)
    generator = random_generator(size=MODEL_CONFIG.model.generator.to_dict())
    params_ = jax.tree.map(np.asarray, nnx.state(generator, nnx.Param))
    checkpoint.save_step(latest, 10, params_, {"step": np.int32(10)}, {}, MODEL_CONFIG)
    latest.wait_until_finished()
    steps = tmp_path / "checkpoints" / "latest"
    (steps / "30").mkdir()  # an empty step folder is damaged, not "not found"
    for load in (checkpoint.load_generator, checkpoint.load_config):
        with pytest.raises(CheckpointError, match="step 30: damaged checkpoint") as err:
            load(steps / "30")
        assert "\n" not in str(err.value)
        with pytest.raises(
            FileNotFoundError, match="no mp3gan checkpoint found|no such checkpoint"
        ):
            load(steps / "40")  # rotated out, or never saved
    evaluate = load_cli("evaluate")
    for step in ("30", "40"):
        argv = ["--checkpoint", str(steps / step), "--split", "validation"]
        assert evaluate.main(argv + ["--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("evaluate.py: error:") and "\n" not in err
