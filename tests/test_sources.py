"""Tests for mp3gan.data.sources: folder scan, cached index, split by recording, shards."""

import json
import logging

import numpy as np
import pytest
from helpers import clicks_and_noise

from mp3gan import audio
from mp3gan.data import sources
from mp3gan.data.sources import DataError, Recording


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache"
    monkeypatch.setenv("MP3GAN_CACHE_HOME", str(home))
    return home


def _write(path, seconds=0.5, sr=44100, channels=1, seed=0):
    audio.write_audio(path, clicks_and_noise(int(seconds * sr), sr, channels, seed) * 0.5, sr)


@pytest.fixture
def messy_folder(tmp_path):
    root = tmp_path / "corpus"
    _write(root / "good.flac", 0.5, 44100, 2)
    _write(root / "sub" / "mono48k.wav", 0.25, 48000, 1, seed=1)
    (root / "bad.wav").write_text("this is not a RIFF file")
    (root / "notes.txt").write_text("liner notes")
    (root / "manifest.jsonl").write_text("")  # corpus metadata: read or skipped quietly
    (root / "excluded.jsonl").write_text('{"original": "x.wav", "reason": "silent"}\n')
    (root / "lossy.mp3").write_bytes(audio.mp3_encode(clicks_and_noise(4410, 44100), 44100))
    _write(root / "truncated.flac", 2.0, 44100, 2, seed=2)
    data = (root / "truncated.flac").read_bytes()
    (root / "truncated.flac").write_bytes(data[: len(data) // 3])
    return root


def test_scan_indexes_usable_files_and_reports_the_others_by_name(messy_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="mp3gan.data.sources"):
        recordings = sources.scan_folder(messy_folder)
    by_path = {r.path: r for r in recordings}
    assert sorted(by_path) == ["good.flac", "sub/mono48k.wav"]
    good, mono = by_path["good.flac"], by_path["sub/mono48k.wav"]
    assert (good.sample_rate, good.channels, good.frames) == (44100, 2, 22050)
    assert good.duration_s == pytest.approx(0.5)
    assert (mono.sample_rate, mono.channels, mono.frames) == (48000, 1, 12000)
    for name in ("bad.wav", "truncated.flac", "lossy.mp3", "notes.txt"):
        assert name in caplog.text, name
    assert "good.flac" not in caplog.text
    assert "jsonl" not in caplog.text


def test_index_is_cached_and_refreshed_when_a_file_changes(messy_folder, monkeypatch):
    first = sources.scan_folder(messy_folder)
    assert sources.index_path(messy_folder).is_file()

    probed = []
    real_probe = sources.probe
    monkeypatch.setattr(sources, "probe", lambda p, *a: probed.append(p.name) or real_probe(p, *a))
    assert sources.scan_folder(messy_folder) == first
    # Only the unusable files (never cached) were looked at again.
    assert "good.flac" not in probed and "mono48k.wav" not in probed

    _write(messy_folder / "good.flac", 1.0, 44100, 2)
    refreshed = {r.path: r for r in sources.scan_folder(messy_folder)}
    assert "good.flac" in probed
    assert refreshed["good.flac"].frames == 44100


def test_empty_or_unusable_folder_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty.*no usable lossless audio"):
        sources.scan_folder(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.wav").write_text("nope")
    with pytest.raises(DataError, match="junk.*1 unreadable"):
        sources.scan_folder(junk)
    with pytest.raises(DataError, match="no such folder"):
        sources.scan_folder(tmp_path / "missing")


def test_licence_is_carried_from_the_corpus_manifest(messy_folder):
    lines = [
        {
            "path": "good.flac",
            "duration_s": 0.5,
            "sample_rate": 44100,
            "channels": 2,
            "licence": "CC0-1.0",
            "kind": "music",
            "source": "songs",
        },
        {"path": "other.flac", "licence": "MIT"},
    ]
    (messy_folder / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    by_path = {r.path: r for r in sources.scan_folder(messy_folder)}
    assert by_path["good.flac"].licence == "CC0-1.0"
    assert (by_path["good.flac"].kind, by_path["good.flac"].source) == ("music", "songs")
    assert by_path["sub/mono48k.wav"].licence is None
    assert by_path["sub/mono48k.wav"].kind is None
    # The cached index does not keep old manifest facts: they are read afresh each scan.
    lines[0]["kind"] = "drums"
    (messy_folder / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert {r.path: r for r in sources.scan_folder(messy_folder)}["good.flac"].kind == "drums"


def _fake(paths):
    return [
        Recording(path=p, duration_s=1.0, sample_rate=44100, channels=1, frames=44100)
        for p in paths
    ]


def test_split_is_by_file_and_stable_when_files_are_added():
    recordings = _fake([f"album{i // 10}/track{i:03d}.flac" for i in range(200)])
    splits = sources.split_recordings(recordings, 0.1, 0.1)
    names = {s: {r.path for r in rs} for s, rs in splits.items()}
    # Each file in exactly one split; fractions roughly as asked.
    assert sum(len(v) for v in names.values()) == 200
    assert set.union(*names.values()) == {r.path for r in recordings}
    assert not (
        names["train"] & names["validation"]
        or names["train"] & names["test"]
        or names["validation"] & names["test"]
    )
    assert 8 <= len(names["validation"]) <= 35 and 8 <= len(names["test"]) <= 35
    # The same on every run, and in any input order.
    shuffled = [recordings[i] for i in np.random.default_rng(0).permutation(200)]
    assert sources.split_recordings(shuffled, 0.1, 0.1) == splits
    # Adding files never moves the others.
    more = sources.split_recordings(
        recordings + _fake([f"new/{i}.flac" for i in range(30)]), 0.1, 0.1
    )
    for split, paths in names.items():
        assert paths <= {r.path for r in more[split]}


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_every_split_has_a_file_from_three_files(n):
    for trial in range(5):
        recordings = _fake([f"set{trial}/song{i}.wav" for i in range(n)])
        splits = sources.split_recordings(recordings, 0.05, 0.05)
        assert all(splits[s] for s in sources.SPLITS), (trial, splits)
        assert sum(len(v) for v in splits.values()) == n
        assert splits == sources.split_recordings(recordings, 0.05, 0.05)


def test_fewer_than_three_files_all_train_and_bad_fractions_rejected():
    splits = sources.split_recordings(_fake(["a.flac", "b.flac"]))
    assert len(splits["train"]) == 2 and not splits["validation"] and not splits["test"]
    with pytest.raises(ValueError, match="fractions"):
        sources.split_recordings(_fake(["a.flac"]), 0.6, 0.5)


def test_process_shards_are_disjoint_and_cover_the_files():
    recordings = _fake([f"{i}.flac" for i in range(10)])
    shards = [sources.shard_for_process(recordings, p, 3) for p in range(3)]
    paths = [{r.path for r in s} for s in shards]
    assert all(paths) and sum(len(p) for p in paths) == 10
    assert set.union(*paths) == {r.path for r in recordings}
    with pytest.raises(DataError, match="2 training recordings cannot be shared by 3"):
        sources.shard_for_process(recordings[:2], 0, 3)


def test_a_header_claiming_an_implausible_rate_is_not_indexed(tmp_path, caplog):
    # Issue 16, item 3: training reads through the same bounds as read_audio.
    from test_audio import wav_with_header

    root = tmp_path / "corpus"
    root.mkdir()
    _write(root / "good.flac")
    wav_with_header(root / "huge.wav", 2_147_483_647)
    with caplog.at_level(logging.WARNING, logger="mp3gan.data.sources"):
        recordings = sources.scan_folder(root)
    assert [r.path for r in recordings] == ["good.flac"]
    assert "huge.wav: sample rate 2147483647 Hz is outside" in caplog.text
