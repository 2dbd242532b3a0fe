"""Tests for mp3gan.data.embedded: the synthetic default corpus."""

import json

import numpy as np
import pytest

from mp3gan import audio
from mp3gan.data import embedded, sources
from mp3gan.data.loader import corpus_root, default_data_config

N_STYLES = len(embedded._STYLES)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """One song of each style, 1-1.5 s long."""
    dest = tmp_path_factory.mktemp("emb") / "tiny"
    return embedded.build_embedded_corpus(dest, n_songs=N_STYLES, seconds=(1.0, 1.5))


def _band_energy_fraction(x, sr, lo_hz):
    spectrum = np.abs(np.fft.rfft(x.sum(0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / sr)
    return spectrum[freqs >= lo_hz].sum() / spectrum.sum()


def test_tiny_corpus_is_stereo_flac_with_a_licence_manifest(tiny_corpus):
    flacs = sorted(tiny_corpus.glob("*.flac"))
    assert len(flacs) == N_STYLES
    manifest = [
        json.loads(line) for line in (tiny_corpus / "manifest.jsonl").read_text().splitlines()
    ]
    assert sorted(m["path"] for m in manifest) == [f.name for f in flacs]
    assert all(m["licence"] == embedded.LICENCE for m in manifest)
    recordings = sources.scan_folder(tiny_corpus, index_file=tiny_corpus.parent / "index.jsonl")
    assert len(recordings) == N_STYLES
    for r in recordings:
        assert (r.sample_rate, r.channels) == (44100, 2)
        assert 1.0 <= r.duration_s <= 1.5
        assert r.licence == embedded.LICENCE


def test_songs_are_transient_rich_full_band_and_not_silent(tiny_corpus):
    high_band, crest = [], []
    for path in sorted(tiny_corpus.glob("*.flac")):
        x, sr = audio.read_audio(path)
        assert 0.5 <= np.abs(x).max() <= 0.96, path.name  # normalised, below full scale
        assert 10 * np.log10(np.mean(x**2)) > -45, path.name
        assert not np.array_equal(x[0], x[1]), path.name  # really stereo
        high_band.append(_band_energy_fraction(x, sr, 10000))
        crest.append(np.abs(x).max() / np.sqrt(np.mean(x**2)))
    # Drums and castanets reach far above 10 kHz; castanets over silence are extremely peaky.
    assert max(high_band) > 0.05
    assert max(crest) > 10


def test_build_is_deterministic_and_not_repeated(tiny_corpus, tmp_path):
    again = embedded.build_embedded_corpus(tmp_path / "again", n_songs=N_STYLES, seconds=(1.0, 1.5))
    for a in sorted(tiny_corpus.glob("*.flac")):
        np.testing.assert_array_equal(audio.read_audio(a)[0], audio.read_audio(again / a.name)[0])
    mtimes = {p: p.stat().st_mtime_ns for p in again.iterdir()}
    embedded.build_embedded_corpus(again, n_songs=N_STYLES, seconds=(1.0, 1.5))
    assert {p: p.stat().st_mtime_ns for p in again.iterdir()} == mtimes
    # No temporary build folders are left next to it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]


def test_different_seed_gives_different_songs():
    _, a = embedded.synthesize_song(1, seed=1, seconds=(1.0, 1.0))
    _, b = embedded.synthesize_song(1, seed=2, seconds=(1.0, 1.0))
    assert a.shape == b.shape and not np.allclose(a, b)


@pytest.mark.slow
def test_default_corpus_is_built_on_first_use(tmp_path, monkeypatch):
    """An empty data.path means the embedded corpus: some dozens of songs, a few minutes."""
    monkeypatch.setenv("MP3GAN_CACHE_HOME", str(tmp_path))
    config = default_data_config()
    assert config.path == ""
    root = corpus_root(config)
    assert root == tmp_path / embedded.EMBEDDED_VERSION
    recordings = sources.scan_folder(root)
    assert len(recordings) == embedded.DEFAULT_SONGS
    assert 3 <= sum(r.duration_s for r in recordings) / 60 <= 6
    splits = sources.split_recordings(recordings, config.validation_fraction, config.test_fraction)
    assert all(splits[s] for s in sources.SPLITS)
    # Built once, then reused as it is (how long the build takes is benchmarks' business:
    # on a loaded 2-core machine it ranges from 20 s to 90 s).
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert corpus_root(config) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps
