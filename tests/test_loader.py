"""Tests for mp3gan.data.loader: pmap-shaped batches, determinism, resume, shards, clips."""

import json
import logging

import numpy as np
import pytest
from helpers import clicks_and_noise

from configs import base
from mp3gan import audio, degrade
from mp3gan.data import loader as data_loader
from mp3gan.data import sources
from mp3gan.data.pairs import build_pair_cache
from mp3gan.data.sources import DataError

SR = 44100
CROP = 4096
LOW = degrade.LowPass(3000)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Ten short files: mono and stereo, 44.1 and 48 kHz, in two folders."""
    root = tmp_path_factory.mktemp("loader") / "corpus"
    for i in range(10):
        sr = 48000 if i % 4 == 3 else SR
        x = clicks_and_noise(int((0.6 + 0.1 * i) * sr), sr, 1 + i % 2, seed=i)
        audio.write_audio(root / f"album{i % 2}" / f"t{i}.flac", x * (0.5 / np.abs(x).max()), sr)
    return root


@pytest.fixture
def config(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MP3GAN_CACHE_HOME", str(tmp_path / "cache"))
    c = data_loader.default_data_config()
    c.path = str(corpus)
    c.crop_samples = CROP
    c.degradations = ("mp3:48", "vbr:0.6", "lowpass:4000")
    c.workers = 0
    c.validation_fraction = 0.15
    c.test_fraction = 0.15
    return c


def _loader(config, seed=0, devices=2, per_device=3, **kw):
    return data_loader.make_train_loader(
        config,
        num_devices=devices,
        per_device_batch=per_device,
        seed=seed,
        process_index=kw.pop("process_index", 0),
        process_count=kw.pop("process_count", 1),
        **kw,
    )


def _take(loader, n):
    with loader:
        return [next(loader) for _ in range(n)]


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b, strict=True):
        for key in ("reference", "degraded"):
            np.testing.assert_array_equal(a[key], b[key])


def test_batches_are_shaped_for_pmap_and_aligned(config):
    (batch,) = _take(_loader(config, devices=4, per_device=2), 1)
    assert set(batch) == {"reference", "degraded"}
    for key in batch:
        assert batch[key].shape == (4, 2, CROP) and batch[key].dtype == np.float32
        assert np.isfinite(batch[key]).all()
    rows_ref, rows_deg = batch["reference"].reshape(8, CROP), batch["degraded"].reshape(8, CROP)
    assert len({r.tobytes() for r in rows_ref}) == 8  # eight distinct rows
    for ref, deg in zip(rows_ref, rows_deg, strict=True):
        # Away from the crop's ends, where the check's own filter meets the cut (a click
        # there can pull the estimate a sample off).
        inner = slice(512, -512)
        ref_low, deg_low = LOW(ref[None], SR)[:, inner], LOW(deg[None], SR)[:, inner]
        assert audio.find_offset(ref_low, deg_low) == (0, 1)
        assert not np.array_equal(ref, deg)


def test_same_seed_same_batches_other_seed_others(config):
    first = _take(_loader(config, seed=3), 3)
    _assert_same(first, _take(_loader(config, seed=3), 3))
    other = _take(_loader(config, seed=4), 1)[0]
    assert not np.array_equal(other["reference"], first[0]["reference"])


def test_resume_from_saved_state_continues_the_stream(config):
    uninterrupted = _take(_loader(config), 5)
    first = _loader(config)
    _assert_same(uninterrupted[:2], [next(first), next(first)])
    state = json.loads(json.dumps(first.get_state()))  # what a checkpoint stores
    first.close()
    assert state["next_batch"] == 2
    resumed = _loader(config)
    resumed.set_state(state)
    _assert_same(uninterrupted[2:], _take(resumed, 3))


def test_worker_processes_give_the_same_stream_and_resume(config):
    in_process = _take(_loader(config), 3)
    config.workers = 2
    with _loader(config) as workers:
        _assert_same(in_process[:2], [next(workers), next(workers)])
        state = workers.get_state()
    config.workers = 1  # the position does not depend on the number of workers
    resumed = _loader(config)
    resumed.set_state(json.dumps(state))
    _assert_same(in_process[2:], _take(resumed, 1))


def test_state_checks(config, caplog):
    loader = _loader(config, seed=1)
    state = loader.get_state()
    json.dumps(state)
    with caplog.at_level(logging.WARNING, logger="mp3gan.data.loader"):
        _loader(config, seed=2).set_state(state)
    assert "seed" in caplog.text
    with pytest.raises(ValueError, match="loader state"):
        loader.set_state({"next_batch": 3})
    with pytest.raises(ValueError, match="next_batch"):
        loader.set_state({**state, "next_batch": -1})


def test_the_cache_log_says_lead_in_crops_are_encoded_on_the_fly(config, corpus, tmp_path, caplog):
    config.degradations = ("lowpass:4000",)
    build_pair_cache(corpus, tmp_path / "pairs", config.degradations,
                     data_loader.pair_settings(config), progress=False)  # fmt: skip
    config.cache_dir = str(tmp_path / "pairs")
    for lead_in, said in ((0.15, True), (0.0, False)):
        config.lead_in = lead_in
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mp3gan.data.loader"):
            _loader(config)
        assert "holds" in caplog.text
        assert ("15% of crops that open before their file" in caplog.text) == said, caplog.text


def test_training_reads_only_its_split_and_processes_read_disjoint_files(config, corpus):
    splits = sources.split_recordings(
        sources.scan_folder(corpus), config.validation_fraction, config.test_fraction
    )
    train = {r.path for r in splits["train"]}
    shards = [_loader(config, process_index=p, process_count=2) for p in range(2)]
    files = [{r.path for r in s.recordings} for s in shards]
    assert files[0] and files[1] and not files[0] & files[1]
    assert files[0] | files[1] == train
    # Each process's stream differs too (its own files, its own seed stream).
    a, b = (_take(s, 1)[0] for s in shards)
    assert not np.array_equal(a["reference"], b["reference"])


def test_validation_clips_are_fixed(config, corpus):
    degradations = ["mp3:64", "lowpass:4000"]
    clips = data_loader.validation_clips(config, 5, 8192, degradations)
    again = data_loader.validation_clips(config, 5, 8192, degradations)
    validation = {
        r.path
        for r in sources.split_recordings(sources.scan_folder(corpus), 0.15, 0.15)["validation"]
    }
    assert len({c.name for c in clips}) == 5
    assert {c.degradation for c in clips} == set(degradations)
    for c, d in zip(clips, again, strict=True):
        assert c.name == d.name and c.path in validation
        np.testing.assert_array_equal(c.reference, d.reference)
        np.testing.assert_array_equal(c.degraded, d.degraded)
        assert c.reference.shape == c.degraded.shape
        assert c.reference.shape[1] == 8192 and c.sample_rate == SR
        assert audio.find_offset(LOW(c.reference, SR), LOW(c.degraded, SR)) == (0, 1)


def test_clear_errors(config, tmp_path):
    two = tmp_path / "two"
    for i in range(2):
        audio.write_audio(two / f"{i}.flac", clicks_and_noise(SR // 2, SR, 1, i) * 0.5, SR)
    config.path = str(two)
    with pytest.raises(DataError, match="validation split is empty"):
        data_loader.validation_clips(config, 2, 4096, ["mp3:64"])
    (tmp_path / "empty").mkdir()
    config.path = str(tmp_path / "empty")
    with pytest.raises(DataError, match="empty.*no usable lossless audio"):
        _loader(config)
    config.path = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match="not a folder"):
        _loader(config)
    config.path = two.as_posix()
    config.degradations = ("mp3:9999",)
    with pytest.raises(ValueError, match="bad degradation"):
        _loader(config)


def test_the_base_config_data_section_is_the_loader_default():
    # The loader fills fields a config lacks from DATA_DEFAULTS; configs/base.py spells
    # them out with comments. Both must say the same, or "default" means two things.
    assert base.get_config().data.to_dict() == data_loader.default_data_config().to_dict()
