"""Evaluation: exact zero for identity, honest CIs, one table built from the JSON."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import clicks_and_noise, load_cli
from scipy import stats

from mp3gan import audio, baselines, evaluate, evaluate_run, metrics

SR = 44100


@pytest.fixture(scope="module")
def clip():
    reference = clicks_and_noise(SR, SR, channels=2, seed=5)
    degraded = audio.mp3_roundtrip(reference, SR, bitrate=64)
    return {
        "name": "clicks",
        "degradation": "mp3:64",
        "reference": reference,
        "degraded": degraded,
        "sample_rate": SR,
    }


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


def write_folder(folder: Path, seeds: list[int]) -> None:
    for seed in seeds:
        x = clicks_and_noise(int(1.2 * SR), SR, channels=2, seed=seed)
        audio.write_audio(folder / f"loop{seed}.flac", 0.9 * x / np.abs(x).max(), SR)


def test_evaluate_folder_skips_a_corrupt_file_by_name(tmp_path, caplog):
    write_folder(tmp_path, [11])
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    failures = []
    with caplog.at_level(logging.WARNING, logger="mp3gan.evaluate"):
        summary, records = evaluate_run.evaluate_folder(
            tmp_path,
            ["mp3:64"],
            {"identity": baselines.identity},
            clip_seconds=1.0,
            failures=failures,
            progress=False,
        )
    assert [f["file"] for f in failures] == ["broken.wav"]
    assert "broken.wav" in caplog.text
    assert {r["clip"] for r in records} == {"loop11.flac"}
    assert [(r["degradation"], r["method"], r["n"]) for r in summary] == [("mp3:64", "identity", 1)]


def test_evaluate_cli_on_two_folders_writes_a_table_built_from_its_json(tmp_path):
    cli = load_cli("evaluate")
    folders = {"a": [1, 2], "b": [3]}
    for name, seeds in folders.items():
        data, out = tmp_path / name, tmp_path / f"out_{name}"
        data.mkdir()
        write_folder(data, seeds)
        (data / "notes.txt").write_text("not audio")  # ignored: not a reference file
        argv = ["--data", str(data), "--bitrates", "64", "--clip-seconds", "1", "--out", str(out)]
        argv += ["--lowpass", "4000"] if name == "a" else []
        assert cli.main(argv) == 0

        results = json.loads((out / "results.json").read_text())
        table = (out / "results.md").read_text()
        assert table == evaluate.results_markdown(results["summary"])
        degradations = ["mp3:64", "lowpass:4000"] if name == "a" else ["mp3:64"]
        expected = [(d, m) for d in degradations for m in ("identity", "exciter", "sbr")]
        assert [(r["degradation"], r["method"]) for r in results["summary"]] == expected
        table_rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
        assert len(table_rows) == len(expected)
        assert all(r["n"] == len(seeds) for r in results["summary"])
        assert len(results["records"]) == len(seeds) * len(expected)
        assert results["failures"] == []
        sbr = results["improvement"]["mp3:64"]["sbr"]["lsd_high"]
        assert sbr["mean"] > 0  # the filled band counts as an improvement
        identity = results["improvement"]["mp3:64"]["identity"]
        assert all(stat["mean"] in (0.0, None) for stat in identity.values())


def test_select_clip_puts_the_first_attack_after_a_lead_in_and_fixes_the_length():
    lead = round(evaluate_run.CLIP_LEAD_IN_S * SR)
    one_shot = np.zeros((1, SR // 2), np.float32)
    one_shot[0, :100] = 1.0  # attack at sample 0, shorter than the clip
    clip = evaluate_run.select_clip(one_shot, SR, 1.0)
    assert clip.shape == (1, SR)
    assert not clip[0, :lead].any() and clip[0, lead] == 1.0
    late = np.zeros((2, 3 * SR), np.float32)
    late[:, 2 * SR] = 0.5  # two seconds of silence first
    clip = evaluate_run.select_clip(late, SR, 1.0)
    assert clip.shape == (2, SR) and clip[0, lead] == 0.5
    assert evaluate_run.select_clip(one_shot, SR, 1.0, pad=False).shape == (1, lead + SR // 2)


def test_whole_files_are_padded_to_a_few_lengths():
    lengths = {evaluate_run.bucket_length(n) for n in range(1, 44100 * 60, 997)}
    assert len(lengths) <= 30  # a minute of any length: a few compiles, not one per file
    for n in (1, 4096, 4097, 44100, 441000):
        assert n <= evaluate_run.bucket_length(n) <= max(4096, 1.25 * n + 4096)
    x = np.ones((2, 5000), np.float32)
    padded = evaluate_run.select_clip(x, SR, None)
    assert padded.shape == (2, evaluate_run.bucket_length(5000))
    assert np.all(padded[:, :5000] == 1) and not np.any(padded[:, 5000:])


def test_evaluate_default_data_follows_the_checkpoint_then_the_embedded_corpus(
    tmp_path, monkeypatch
):
    import json

    cli = load_cli("evaluate")
    monkeypatch.setattr(cli, "DEFAULT_CORPUS", tmp_path / "no-corpus")
    folder, data_config = cli.default_data(None)
    assert folder.is_dir() and "embedded" in str(folder).lower()
    model = tmp_path / "model"
    (model / "generator").mkdir(parents=True)
    trained_on = {"path": str(tmp_path / "music"), "test_fraction": 0.5}
    (model / "config.json").write_text(json.dumps({"data": trained_on, "model": {}}))
    folder, data_config = cli.default_data(str(model))
    assert folder == tmp_path / "music" and data_config.test_fraction == 0.5


def test_an_undefined_metric_does_not_end_an_evaluation(clip, monkeypatch):
    # Issue 16, item 10: ViSQOL refusing the clips killed training's evaluation.
    from test_metrics import FailingVisqol

    monkeypatch.setattr(metrics, "_visqol_api", lambda: FailingVisqol())
    records = evaluate.evaluate_clips({"identity": baselines.identity}, [clip])
    assert records[0]["output"]["visqol"] is None and records[0]["input"]["visqol"] is None
    assert records[0]["output"]["lsd"] is not None
    summary = evaluate.summarize(records)
    assert summary and "visqol" in evaluate.results_markdown(summary)
