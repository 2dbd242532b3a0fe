"""Tests for mp3gan.audio: I/O, resampling, and the aligned MP3 round trip."""

import numpy as np
import pytest
import soundfile as sf
from helpers import clicks_and_noise

from mp3gan import audio
from mp3gan.degrade import LowPass


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("bitrate", [32, 48, 64, 96, 128, 192, 320, "vbr"])
def test_mp3_roundtrip_is_aligned(sr, channels, bitrate):
    # 0.7 s: several clicks, and a length that is not a multiple of the 1152-sample frame.
    x = clicks_and_noise(int(0.7 * sr) + 17, sr, channels, seed=channels)
    if bitrate == "vbr":
        y = audio.mp3_roundtrip(x, sr, bitrate=None, vbr_quality=0.5, verify=False)
    else:
        y = audio.mp3_roundtrip(x, sr, bitrate=bitrate, verify=False)
    assert y.shape == x.shape
    lag, polarity = audio.find_offset(x, y)
    assert (lag, polarity) == (0, 1)
    # Beyond the peak position: below 3 kHz, where even 32 kbps is faithful, the round
    # trip closely resembles the input at lag 0.
    low = LowPass(3000)
    assert np.corrcoef(low(x, sr).sum(0), low(y, sr).sum(0))[0, 1] > 0.9


@pytest.mark.parametrize("bitrate", [32, 64, 128, 320])
def test_measured_bitrate_matches_request(bitrate):
    sr = 44100
    x = clicks_and_noise(5 * sr, sr, 2)
    data = audio.mp3_encode(x, sr, bitrate=bitrate)
    assert abs(audio.mp3_bitrate_kbps(data, x.shape[-1], sr) / bitrate - 1) < 0.05


def test_check_aligned_fails_loudly_on_offset_and_polarity():
    x = clicks_and_noise(20000, 44100)
    shifted = np.roll(x, 3, axis=-1)
    with pytest.raises(audio.AlignmentError, match="offset 3"):
        audio.check_aligned(x, shifted)
    with pytest.raises(audio.AlignmentError, match="polarity -1"):
        audio.check_aligned(x, -x)
    aligned, lag, pol = audio.align_to_reference(x, -shifted)
    assert (lag, pol) == (3, -1)
    np.testing.assert_allclose(aligned[:, :-3], x[:, :-3])


def test_short_and_silent_inputs_roundtrip():
    sr = 44100
    for n in [1, 100, 1152, 1153]:
        y = audio.mp3_roundtrip(np.zeros((1, n), np.float32), sr, bitrate=128)
        assert y.shape == (1, n)
        assert np.abs(y).max() < 1e-4


def test_more_than_two_channels_roundtrip():
    x = clicks_and_noise(20000, 44100, channels=3)
    assert audio.mp3_roundtrip(x, 44100, 128).shape == x.shape


def test_resample_preserves_a_tone_and_length():
    sr_in, sr_out = 48000, 44100
    t = np.arange(sr_in) / sr_in
    x = np.sin(2 * np.pi * 1000 * t)[None].astype(np.float32)
    y = audio.resample(x, sr_in, sr_out)
    assert y.shape == (1, sr_out)
    ref = np.sin(2 * np.pi * 1000 * np.arange(sr_out) / sr_out)
    np.testing.assert_allclose(y[0, 1000:-1000], ref[1000:-1000], atol=1e-3)


def test_write_read_roundtrip_and_atomicity(tmp_path):
    x = clicks_and_noise(1000, 44100, 2)
    for ext in [".wav", ".flac"]:
        p = tmp_path / f"a{ext}"
        audio.write_audio(p, x, 44100)
        y, sr = audio.read_audio(p)
        assert sr == 44100 and y.shape == x.shape
        np.testing.assert_allclose(y, x, atol=1e-6 if ext == ".wav" else 2e-7 * 2**8)
    with pytest.raises(audio.AudioError, match="NaN/Inf"):
        audio.write_audio(tmp_path / "nan.wav", np.full((1, 10), np.nan), 44100)
    with pytest.raises(audio.AudioError, match="clip"):
        audio.write_audio(tmp_path / "loud.flac", 2 * np.ones((1, 10)), 44100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac", "a.wav"]


def test_bad_files_get_clear_errors(tmp_path):
    sr = 44100
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_bytes(b"this is not audio at all " * 40)
    good = audio.mp3_encode(clicks_and_noise(sr, sr), sr, 128)
    truncated = tmp_path / "cut.mp3"
    truncated.write_bytes(good[:200])
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1], np.float32), sr, subtype="FLOAT")
    cases = {
        empty: "empty",
        text: "not readable",
        truncated: "no audio samples|not readable",
        nan: "NaN",
        tmp_path / "missing.wav": "no such file",
    }
    for path, message in cases.items():
        with pytest.raises(audio.AudioError, match=message) as err:
            audio.read_audio(path)
        assert str(path) in str(err.value)
    with pytest.raises(audio.AudioError, match="zero channels"):
        audio.mp3_encode(np.zeros((0, 10)), sr)
    with pytest.raises(audio.AudioError, match="not a decodable"):
        audio.mp3_decode(b"garbage" * 100, name="bytes.mp3")


def wav_with_header(path, sample_rate: int, channels: int = 1, frames: int = 2000):
    """A 16-bit PCM WAV whose header claims ``sample_rate`` and ``channels``."""
    sf.write(path, np.zeros((frames, channels), np.float32), 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"RIFF" and data[12:16] == b"fmt "
    data[24:28] = sample_rate.to_bytes(4, "little")
    data[28:32] = (sample_rate * channels * 2 % 2**32).to_bytes(4, "little")  # byte rate
    path.write_bytes(bytes(data))
    return path


# Issue 16, item 3: a header's rate and channel count are checked before any allocation.
@pytest.mark.parametrize("rate", [2_147_483_647, 1, 3999, 768_001])
def test_implausible_sample_rates_are_refused(tmp_path, rate):
    path = wav_with_header(tmp_path / "claims.wav", rate)
    with pytest.raises(audio.AudioError, match=f"sample rate {rate} Hz is outside"):
        audio.read_audio(path)
    for rate_ok in (audio.MIN_SAMPLE_RATE, audio.MAX_SAMPLE_RATE):
        ok = wav_with_header(tmp_path / f"ok{rate_ok}.wav", rate_ok)
        assert audio.read_audio(ok)[1] == rate_ok


def test_too_many_channels_are_refused(tmp_path):
    many = tmp_path / "many.aiff"
    sf.write(many, np.zeros((100, 185), np.float32), 44100, subtype="PCM_16")
    with pytest.raises(audio.AudioError, match="185 channels; at most 64"):
        audio.read_audio(many)
    sf.write(tmp_path / "ok.aiff", np.zeros((100, 64), np.float32), 44100, subtype="PCM_16")
    assert audio.read_audio(tmp_path / "ok.aiff")[0].shape == (64, 100)


# Issue 16, item 9: one behaviour for read_audio and the restore path's reader.
def test_read_audio_refuses_a_truncated_mp3(tmp_path):
    sr = 44100
    data = audio.mp3_encode(clicks_and_noise(3 * sr, sr), sr, 128)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) * 6 // 10])  # its Xing header still says 3 s
    with pytest.raises(audio.AudioError, match="truncated or corrupt MP3"):
        audio.read_audio(cut)


def test_unreadable_file_names_the_real_cause(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(100, np.float32), 44100)

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    # The tests run as root, whom chmod does not stop: deny the open audio.py makes.
    monkeypatch.setattr(audio, "open", denied, raising=False)
    with pytest.raises(audio.AudioError, match="locked.wav: cannot read it \\(Permission denied"):
        audio.read_audio(path)
    monkeypatch.undo()
    with pytest.raises(audio.AudioError, match="is a folder"):
        audio.read_audio(tmp_path)
