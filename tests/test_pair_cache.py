"""Tests of the prepared pair cache (mp3gan.data.pair_cache, pairs.build_pair_cache).

A cached pair must be the on-the-fly pair for the same file, degradation and crop: the
reference identical, the degraded side equal up to float16 storage wherever the codec
keeps no state across the file (a low-pass; VBR MP3 on the same frame grid). CBR MP3
carries its bit reservoir across frames, so a whole-file encode and a window encode
differ where the reservoir differs; there the pair is checked for alignment and for the
same codec error.
"""

import dataclasses
import logging

import numpy as np
import pytest
from helpers import clicks_and_noise

from mp3gan import audio, degrade
from mp3gan.data import sources
from mp3gan.data.pair_cache import CACHE_VERSION, PairCache, encode_whole
from mp3gan.data.pairs import PairMaker, PairSettings, build_pair_cache

SR = 44100
LOW = degrade.LowPass(3000)
MARGIN = 2 * audio.MP3_FRAME
DEGRADATIONS = ("lowpass:4000", "vbr:0.5", "mp3:64")
# float16 keeps 11 significant bits: relative rounding error at most 2**-11.
F16 = 2.0**-11


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("MP3GAN_CACHE_HOME", str(tmp_path / "home"))
    root = tmp_path / "corpus"
    for name, sr, channels in [("stereo.flac", SR, 2), ("mono48k.wav", 48000, 1)]:
        x = clicks_and_noise(3 * sr, sr, channels, seed=channels)
        audio.write_audio(root / name, (0.5 * x / np.abs(x).max()).astype(np.float32), sr)
    settings = PairSettings(crop_samples=8192, degradations=DEGRADATIONS, encode_margin=MARGIN)
    summary = build_pair_cache(root, tmp_path / "cache", DEGRADATIONS, settings, progress=False)
    recordings = {r.path: r for r in sources.scan_folder(root)}
    cached = dataclasses.replace(settings, cache_dir=str(tmp_path / "cache"))
    return root, recordings, settings, cached, summary


def _error_db(pair) -> float:
    return 10 * np.log10(np.mean((pair.degraded - pair.reference) ** 2))


def test_a_cached_pair_equals_the_on_the_fly_pair(corpus):
    root, recs, settings, cached_settings, _ = corpus
    fly = PairMaker(root, list(recs.values()), settings)
    cached = PairMaker(root, list(recs.values()), cached_settings)
    on_grid = 30 * audio.MP3_FRAME  # (start - margin) on the whole file's MP3 frame grid
    for name, rec in recs.items():
        for spec, start, gain in [("lowpass:4000", 9000, -3.0), ("lowpass:4000", 0, 4.0),
                                  ("vbr:0.5", on_grid, 0.0), ("mp3:64", 20000, -3.0)]:  # fmt: skip
            a = fly.pair_at(rec, start, spec, gain_db=gain)
            b = cached.pair_at(rec, start, spec, gain_db=gain)
            np.testing.assert_array_equal(b.reference, a.reference)
            assert (b.gain_db, b.start, b.path, b.degradation) == (a.gain_db, start, name, spec)
            if spec == "mp3:64":
                assert audio.find_offset(LOW(b.reference, SR), LOW(b.degraded, SR)) == (0, 1)
                assert abs(_error_db(b) - _error_db(a)) < 1.0, (name, spec)
                continue
            # The 48 kHz file: whole-file and window resampling differ by < 1e-3 (pairs).
            resampled = 1e-3 if rec.sample_rate != SR else 0.0
            vbr = 1e-4 if spec.startswith("vbr") else 0.0
            bound = F16 * np.abs(a.degraded) + resampled + vbr + 1e-7
            assert (np.abs(b.degraded - a.degraded) <= bound).all(), (name, spec, start)


def test_the_loader_only_reads_the_cache(corpus, monkeypatch):
    root, recs, _, cached_settings, summary = corpus
    assert summary.encoded == {d: 2 for d in DEGRADATIONS} and not summary.failed
    assert "vbr:0.5" in summary.report()
    # (Crops that start before their file are encoded on the fly: see the next test.)
    no_lead_in = dataclasses.replace(cached_settings, lead_in=0.0)
    maker = PairMaker(root, list(recs.values()), no_lead_in)
    assert maker.cache_coverage() == (6, 6)
    for kind in (degrade.LowPass, degrade.Mp3):
        monkeypatch.setattr(kind, "__call__", lambda *a: pytest.fail("encoded again"))
    rng = np.random.default_rng(0)
    pairs = [maker.random_pair(rng) for _ in range(12)]
    assert {p.degradation for p in pairs} == set(DEGRADATIONS)
    again = build_pair_cache(root, cached_settings.cache_dir, DEGRADATIONS, cached_settings,
                             progress=False)  # fmt: skip
    assert again.encoded == {d: 0 for d in DEGRADATIONS}


def test_a_crop_before_the_file_is_encoded_on_the_fly(corpus):
    """The cache keeps only the file's own span; the silence before it and the codec's
    pre-echo there are made on the fly, as without a cache."""
    root, recs, settings, cached_settings, _ = corpus
    rec = recs["stereo.flac"]
    a = PairMaker(root, [rec], settings).pair_at(rec, -3000, "mp3:64")
    b = PairMaker(root, [rec], cached_settings).pair_at(rec, -3000, "mp3:64")
    np.testing.assert_array_equal(b.reference, a.reference)
    np.testing.assert_array_equal(b.degraded, a.degraded)


def test_missing_or_stale_entries_fall_back_to_encoding(corpus, caplog):
    root, recs, settings, cached_settings, _ = corpus
    cache = PairCache(cached_settings.cache_dir, SR, MARGIN)
    cache.path(recs["stereo.flac"], "mp3:64").unlink()
    maker = PairMaker(root, list(recs.values()), cached_settings)
    assert maker.cache_coverage() == (5, 6)
    with caplog.at_level(logging.WARNING, logger="mp3gan.data.pairs"):
        pair = maker.pair_at(recs["stereo.flac"], 5000, "mp3:64")
    assert "lacks mp3:64 of stereo.flac" in caplog.text
    expected = PairMaker(root, list(recs.values()), settings).pair_at(recs["stereo.flac"], 5000,
                                                                      "mp3:64")  # fmt: skip
    np.testing.assert_array_equal(pair.degraded, expected.degraded)
    # A rewritten file has another size/mtime: its old encodes are never served.
    changed = dataclasses.replace(recs["mono48k.wav"], mtime_ns=recs["mono48k.wav"].mtime_ns + 1)
    assert not cache.has(changed, "vbr:0.5") and cache.has(recs["mono48k.wav"], "vbr:0.5")


def test_a_file_that_fails_is_named_and_leaves_nothing(corpus, tmp_path, monkeypatch):
    root, recs, settings, *_ = corpus

    def fail(self, audio_in, sample_rate):
        raise audio.AlignmentError("residual offset 3 samples")

    monkeypatch.setattr(degrade.Mp3, "__call__", fail)
    summary = build_pair_cache(root, tmp_path / "c2", ("mp3:32",), settings, progress=False)
    assert summary.encoded == {"mp3:32": 0}
    assert sorted(x.split(" (")[0] for x in summary.failed) == ["mono48k.wav", "stereo.flac"]
    assert not [p for p in (tmp_path / "c2").rglob("*") if p.is_file()], "nothing half-written"


def test_encode_whole_is_the_aligned_round_trip_of_the_padded_file(corpus):
    root, recs, *_ = corpus
    x, _ = audio.read_audio(root / "stereo.flac")
    y = encode_whole(x, degrade.parse_degradation("mp3:128"), SR, MARGIN)
    assert y.shape == x.shape
    audio.check_aligned(x, y)
    files = list((root.parent / "cache" / CACHE_VERSION / "mp3_64").glob("*.npy"))
    assert len(files) == 2 and all(np.load(f).dtype == np.float16 for f in files)
