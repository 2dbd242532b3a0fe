"""Evaluation: exact zero for identity, honest CIs, one table built from the JSON."""

import numpy as np
import pytest
from helpers import clicks_and_noise
from scipy import stats

from mp3gan import audio, baselines, evaluate, metrics
from mp3gan.degrade import Clip

SR = 44100


@pytest.fixture(scope="module")
def clip():
    reference = clicks_and_noise(SR, SR, channels=2, seed=5)
    degraded = audio.mp3_roundtrip(reference, SR, bitrate=64)
    return Clip("clicks", "mp3:64", reference, degraded, SR)


def late_and_inverted(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """A 'method' that delays its output by 7 samples and flips its polarity."""
    return -np.pad(x, ((0, 0), (7, 0)))[:, : x.shape[-1]]


def loud_invented_band(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """A 'method' that puts loud noise, unrelated to the reference, above ~12 kHz."""
    noise = np.random.default_rng(0).standard_normal(x.shape)
    spectrum = np.fft.rfft(noise, axis=-1)
    spectrum[..., np.fft.rfftfreq(x.shape[-1], 1 / sample_rate) < 12000] = 0
    return (x + 3 * np.abs(x).max() * np.fft.irfft(spectrum, x.shape[-1])).astype(np.float32)


def test_identity_improvement_is_exactly_zero_and_alignment_is_recorded(clip):
    methods = {
        "identity": baselines.identity,
        "shifted": late_and_inverted,
        "invented": loud_invented_band,
    }
    records = evaluate.evaluate_clips(methods, [clip])
    assert [r["method"] for r in records] == ["identity", "shifted", "invented"]
    identity, shifted, invented = records
    assert identity["improvement"], "no metrics were recorded"
    for key, delta in identity["improvement"].items():
        assert delta is None or delta == 0.0, (key, delta)
    assert identity["output"] == identity["input"]
    assert (identity["lag"], identity["polarity"]) == (0, 1)
    assert (identity["input_lag"], identity["input_polarity"]) == (0, 1)
    # The shifted method is re-aligned before scoring, and what was done is on record.
    assert (shifted["lag"], shifted["polarity"]) == (7, -1)
    assert shifted["output"]["lsd"] == pytest.approx(identity["output"]["lsd"], abs=0.5)
    # An invented band louder than the kept one does not move the alignment.
    assert (invented["lag"], invented["polarity"]) == (0, 1)
    assert 8000 < identity["cutoff_hz"] < 14000


def test_improvement_sign_follows_higher_is_better(clip):
    (record,) = evaluate.evaluate_clips({"sbr": baselines.spectral_band_replication}, [clip])
    for key in ("lsd", "lsd_high"):  # lower is better: a filled band must count as a gain
        assert record["output"][key] < record["input"][key]
        assert record["improvement"][key] == pytest.approx(
            record["input"][key] - record["output"][key]
        )
    assert record["improvement"]["si_sdr"] == pytest.approx(
        record["output"]["si_sdr"] - record["input"]["si_sdr"]
    )


def fake_record(degradation, method, value, clip="a"):
    scores = {"lsd": value, "si_sdr": None}
    return {
        "clip": clip,
        "degradation": degradation,
        "method": method,
        "lag": 0,
        "polarity": 1,
        "runtime_s": 0.1,
        "input": {"lsd": 10.0, "si_sdr": None},
        "output": scores,
        "improvement": {"lsd": 10.0 - value, "si_sdr": None},
    }


def test_summarize_gives_mean_and_t_interval_per_degradation_and_method():
    values = [1.0, 2.0, 4.0]
    records = [fake_record("mp3:64", "m", v, clip=str(i)) for i, v in enumerate(values)]
    records.append(fake_record("mp3:32", "m", 5.0))
    summary = evaluate.summarize(records)
    assert [(r["degradation"], r["method"], r["n"]) for r in summary] == [
        ("mp3:64", "m", 3),
        ("mp3:32", "m", 1),
    ]
    lsd = summary[0]["metrics"]["lsd"]
    half_width = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert lsd["output"]["mean"] == pytest.approx(np.mean(values))
    assert lsd["output"]["ci95"] == pytest.approx(half_width)
    assert lsd["improvement"]["mean"] == pytest.approx(10 - np.mean(values))
    assert lsd["input"]["ci95"] == 0.0
    assert summary[1]["metrics"]["lsd"]["output"]["ci95"] is None  # one clip: no interval
    assert summary[0]["metrics"]["si_sdr"]["output"] == {"mean": None, "ci95": None, "n": 0}


def test_markdown_shows_the_mp3_input_even_without_identity():
    summary = evaluate.summarize([fake_record("mp3:64", "model", 4.0)])
    table = evaluate.results_markdown(summary)
    rows = [line for line in table.splitlines() if line.startswith("| mp3:64")]
    assert len(rows) == 2
    assert "(MP3 input)" in rows[0] and "10.00" in rows[0]
    assert "4.00 (+6.00)" in rows[1]


def test_an_undefined_metric_does_not_end_an_evaluation(clip, monkeypatch):
    # Issue 16, item 10: ViSQOL refusing the clips killed training's evaluation.
    from test_metrics import FailingVisqol

    monkeypatch.setattr(metrics, "_visqol_api", lambda: FailingVisqol())
    records = evaluate.evaluate_clips({"identity": baselines.identity}, [clip], skip_metrics=())
    assert records[0]["output"]["visqol"] is None and records[0]["input"]["visqol"] is None
    assert records[0]["output"]["lsd"] is not None
    summary = evaluate.summarize(records)
    assert summary and "visqol" in evaluate.results_markdown(summary)
