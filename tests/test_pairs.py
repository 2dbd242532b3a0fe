"""Tests for mp3gan.data.pairs: aligned crops, codec-clean edges, gain, silence, the mix.

The pair cache has its own tests (test_pair_cache.py).
"""

import dataclasses
import json
import logging

import numpy as np
import pytest
from helpers import clicks_and_noise

from mp3gan import audio, degrade
from mp3gan.data import sources
from mp3gan.data.pairs import PairMaker, PairSettings, level_db, mix_weights, read_window

SR = 44100
LOW = degrade.LowPass(3000)


def _peak(x, peak=0.5):
    return (x * (peak / np.abs(x).max())).astype(np.float32)


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("MP3GAN_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "corpus"
    audio.write_audio(root / "stereo.flac", _peak(clicks_and_noise(3 * SR, SR, 2, seed=1)), SR)
    audio.write_audio(root / "mono48k.wav", _peak(clicks_and_noise(2 * 48000, 48000, 1, 2)), 48000)
    recordings = {r.path: r for r in sources.scan_folder(root)}
    return root, recordings


def _settings(**kw):
    base = dict(crop_samples=8192, degradations=("mp3:64",), gain_db=(0.0, 0.0))
    return PairSettings(**{**base, **kw})


def _assert_aligned(pair):
    assert pair.reference.shape == pair.degraded.shape
    assert pair.reference.dtype == pair.degraded.dtype == np.float32
    # Compare below MP3's cutoff, where even 32 kbps keeps the waveform.
    lag, polarity = audio.find_offset(LOW(pair.reference, SR), LOW(pair.degraded, SR))
    assert (lag, polarity) == (0, 1), pair.degradation


@pytest.mark.parametrize("spec", ["mp3:32", "mp3:64", "mp3:192", "vbr:0.7", "lowpass:4000"])
def test_pairs_are_aligned(corpus, spec):
    root, recs = corpus
    maker = PairMaker(root, list(recs.values()), _settings(degradations=(spec,)))
    for name, start in [("stereo.flac", 20000), ("mono48k.wav", 1234)]:
        pair = maker.pair_at(recs[name], start, spec)
        assert pair.reference.shape == (recs[name].channels, 8192)
        _assert_aligned(pair)
        corr = np.corrcoef(LOW(pair.reference, SR).ravel(), LOW(pair.degraded, SR).ravel())[0, 1]
        assert corr > 0.9


def test_reference_is_the_file_at_the_model_rate(corpus):
    root, recs = corpus
    maker = PairMaker(root, list(recs.values()), _settings(degradations=("lowpass:4000",)))
    x, _ = audio.read_audio(root / "stereo.flac")
    np.testing.assert_array_equal(
        maker.pair_at(recs["stereo.flac"], 5000, "mp3:64").reference, x[:, 5000:13192]
    )
    # 48 kHz: a window resampled on its own matches the whole file resampled, in the middle.
    y, _ = audio.read_audio(root / "mono48k.wav")
    whole = audio.resample(y, 48000, SR)
    crop = read_window(root / "mono48k.wav", recs["mono48k.wav"], 30000, 8192, SR)
    assert np.abs(crop - whole[:, 30000:38192]).max() < 1e-3


@pytest.mark.parametrize("spec", ["vbr:0.5", "lowpass:4000"])
def test_crops_carry_no_codec_edge_effects(corpus, spec):
    """A crop cut from a margin-encoded window equals the same crop of a whole-file encode;
    encoding the crop alone differs at its edges. (VBR and the low-pass have no bit
    reservoir carrying state across the file, so only edge effects can differ; the window
    starts on the whole file's MP3 frame grid so both encodes frame the audio alike.)"""
    root, recs = corpus
    rec = recs["stereo.flac"]
    x, _ = audio.read_audio(root / rec.path)
    whole = degrade.parse_degradation(spec)(x, SR)
    margin = 2 * audio.MP3_FRAME
    start = 30 * audio.MP3_FRAME  # (start - margin) is on the frame grid
    edge = 1024

    def edge_error(settings):
        pair = PairMaker(root, [rec], settings).pair_at(rec, start, spec)
        error = np.abs(pair.degraded - whole[:, start : start + 8192])
        return max(error[:, :edge].max(), error[:, -edge:].max()), error[:, edge:-edge].max()

    with_margin, with_margin_middle = edge_error(_settings(encode_margin=margin))
    without_margin, _ = edge_error(_settings(encode_margin=0))
    assert without_margin > 3e-3
    assert with_margin < 1e-4 and with_margin_middle < 1e-4


def test_gain_applies_to_both_and_stays_below_full_scale(corpus):
    root, recs = corpus
    rec = recs["stereo.flac"]
    maker = PairMaker(root, [rec], _settings(degradations=("lowpass:4000",)))
    unity = maker.pair_at(rec, 10000, "lowpass:4000", gain_db=0.0)
    quiet = maker.pair_at(rec, 10000, "lowpass:4000", gain_db=-12.0)
    g = 10 ** (-12 / 20)
    np.testing.assert_allclose(quiet.reference, g * unity.reference, atol=1e-6)
    np.testing.assert_allclose(quiet.degraded, g * unity.degraded, atol=1e-6)
    loud = maker.pair_at(rec, 10000, "mp3:64", gain_db=30.0)
    assert np.abs(loud.reference).max() <= 0.99 and loud.gain_db < 30
    _assert_aligned(loud)


def test_random_pairs_skip_silence_and_unreadable_files(tmp_path, caplog):
    root = tmp_path / "c"
    mostly_silent = np.zeros((1, 3 * SR), np.float32)
    mostly_silent[:, 2 * SR :] = _peak(clicks_and_noise(SR, SR, 1, seed=3))
    audio.write_audio(root / "quiet.flac", mostly_silent, SR)
    audio.write_audio(root / "silent.flac", np.zeros((1, SR), np.float32), SR)
    audio.write_audio(root / "gone.flac", _peak(clicks_and_noise(SR, SR, 1, seed=4)), SR)
    recs = sources.scan_folder(root, index_file=tmp_path / "index.jsonl")
    (root / "gone.flac").write_bytes(b"corrupted after indexing")
    # (No lead-in: the files' silence is what is tested, not the silence before them.)
    settings = _settings(degradations=("lowpass:4000", "mp3:96"), gain_db=(-6.0, 0.0), lead_in=0)
    maker = PairMaker(root, recs, settings)
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING, logger="mp3gan.data.pairs"):
        pairs = [maker.random_pair(rng) for _ in range(12)]
    assert {p.path for p in pairs} == {"quiet.flac"}
    assert all(level_db(p.reference) > settings.silence_db for p in pairs)
    assert all(p.start + 8192 > 2 * SR for p in pairs)
    assert {p.degradation for p in pairs} == {"lowpass:4000", "mp3:96"}
    assert "gone.flac" in caplog.text
    for p in pairs:
        _assert_aligned(p)


def _recording(path, duration, kind=None, source=None):
    return sources.Recording(path, duration, SR, 1, int(duration * SR), kind=kind, source=source)


def test_mix_shares_draws_between_kinds_and_sources():
    recs = [_recording("song.flac", 300.0, "music", "songs"),
            _recording("lmms.flac", 100.0, "music", "lmms"),
            _recording("groove.flac", 200.0, "drums", "avldrums"),
            _recording("hit1.flac", 1.0, "one-shot", "hydrogen"),
            _recording("hit2.flac", 3.0, "one-shot", "hydrogen")]  # fmt: skip
    by_duration = mix_weights(recs, ())
    np.testing.assert_allclose(by_duration, np.array([300, 100, 200, 1, 3]) / 604)
    w = mix_weights(recs, ("music=0.6", "drums=0.3", "one-shot=0.1"))
    np.testing.assert_allclose(w, [0.45, 0.15, 0.3, 0.025, 0.075])
    # The first entry naming a file's source or kind wins; shares of absent groups and
    # files no entry names drop out.
    w = mix_weights(recs, ("lmms=1", "music=1", "speech=5"))
    np.testing.assert_allclose(w, [0.5, 0.5, 0, 0, 0])
    # Nothing named (a corpus without a manifest): by duration.
    plain = [dataclasses.replace(r, kind=None, source=None) for r in recs]
    np.testing.assert_allclose(mix_weights(plain, ("music=1",)), by_duration)
    for bad in (("music",), ("music=0",), ("=1",), ("music=lots",)):
        with pytest.raises(ValueError, match="bad data.mix entry"):
            PairSettings(mix=bad)


def test_random_pairs_follow_the_mix(tmp_path):
    root = tmp_path / "c"
    for name in ("long.flac", "short.flac"):
        audio.write_audio(root / name, _peak(clicks_and_noise(SR * (4 if "long" in name else 1),
                                                              SR, 1, seed=5)), SR)  # fmt: skip
    manifest = [
        {"path": "long.flac", "licence": "CC0", "kind": "drums", "source": "x"},
        {"path": "short.flac", "licence": "CC0", "kind": "music", "source": "y"},
    ]
    (root / "manifest.jsonl").write_text("\n".join(map(json.dumps, manifest)) + "\n")
    recs = sources.scan_folder(root, index_file=tmp_path / "index.jsonl")
    rng = np.random.default_rng(0)
    for mix, share_short in [((), 0.2), (("music=0.5", "drums=0.5"), 0.5)]:
        maker = PairMaker(root, recs, _settings(degradations=("lowpass:4000",), mix=mix))
        paths = [maker.random_pair(rng).path for _ in range(400)]
        assert abs(paths.count("short.flac") / 400 - share_short) < 0.07, mix


def test_a_share_of_crops_open_with_silence_before_their_file(tmp_path):
    """``lead_in`` of the crops start up to half a crop before their file: the silence
    is encoded with it, so the codec's pre-echo ahead of the first attack is in the
    pair; ``lead_in=0`` turns it off."""
    root = tmp_path / "c"
    hit = _peak(clicks_and_noise(SR // 8, SR, 1, seed=6))
    audio.write_audio(root / "hit.flac", hit, SR)
    audio.write_audio(root / "long.flac", _peak(clicks_and_noise(3 * SR, SR, 1, seed=7)), SR)
    recs = sources.scan_folder(root, index_file=tmp_path / "index.jsonl")
    by_name = {r.path: r for r in recs}
    rng = np.random.default_rng(0)
    maker = PairMaker(root, [by_name["long.flac"]], _settings(lead_in=0.3))
    starts = np.array([maker.random_pair(rng).start for _ in range(200)])
    assert -4096 <= starts.min() < -3000 and 0.2 < np.mean(starts < 0) < 0.4
    off = PairMaker(root, [by_name["long.flac"]], _settings(lead_in=0.0))
    assert all(off.random_pair(rng).start >= 0 for _ in range(50))
    pair = PairMaker(root, recs, _settings()).pair_at(by_name["hit.flac"], -2000, "mp3:64")
    assert not pair.reference[:, :2000].any()
    np.testing.assert_allclose(pair.reference[:, 2000 : 2000 + hit.shape[-1]], hit, atol=1e-6)
    _assert_aligned(pair)
    # The codec's noise reaches into the silence before the attack, as in a played file.
    assert 0 < np.abs(pair.degraded[:, 1000:2000]).max() < 0.1 * np.abs(hit).max()
    with pytest.raises(ValueError, match="lead_in"):
        _settings(lead_in=1.5)
