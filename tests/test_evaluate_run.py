"""Tests for mp3gan.evaluate_run: folders and held-out splits in, results and tables out."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from helpers import clicks_and_noise, load_cli

from mp3gan import audio, baselines, evaluate, evaluate_run

SR = 44100


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
    folder, data_config = cli.default_data(str(model))  # its data is not on this machine
    assert "embedded" in str(folder).lower() and data_config.test_fraction == 0.5
    (tmp_path / "music").mkdir()
    folder, data_config = cli.default_data(str(model))
    assert folder == tmp_path / "music" and data_config.test_fraction == 0.5


def test_analyze_curves_writes_a_png_of_a_runs_metrics(tmp_path):
    rows = [{"step": 5, "g_loss": 3.0}, {"step": 5, "eval/mp3:64/lsd/output": 2.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli = load_cli("analyze")
    assert cli.main(["--curves", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["--curves", str(tmp_path / "nothing"), "--out", str(tmp_path / "d.png")]) == 2
    assert not (tmp_path / "d.png").exists()


def test_clips_per_file_cuts_clips_from_equal_parts_of_a_long_file(tmp_path):
    x = clicks_and_noise(int(3.5 * SR), SR, channels=2, seed=4)
    audio.write_audio(tmp_path / "long.flac", 0.9 * x / np.abs(x).max(), SR)
    clips, rate = evaluate_run.load_reference_clips(tmp_path / "long.flac", None, 1.0, 3)
    assert rate == SR and [c.shape for c in clips] == [(2, SR)] * 3
    # Each from its own part, cut from the whole file: the lead-in is the recording
    # itself (no silence put in front of a passage in the middle of a song).
    whole = audio.read_audio(tmp_path / "long.flac")[0]
    for k in (1, 2):
        start = evaluate_run.select_clip(whole, SR, 1.0, start=k * whole.shape[-1] // 3)
        np.testing.assert_array_equal(clips[k], start)
        windows = np.lib.stride_tricks.sliding_window_view(whole[0], 64)
        (begin, *_) = np.flatnonzero((windows == clips[k][0, :64]).all(axis=1))
        np.testing.assert_array_equal(whole[:, begin : begin + SR], clips[k])
        assert begin >= k * whole.shape[-1] // 3 - round(evaluate_run.CLIP_LEAD_IN_S * SR)
    np.testing.assert_array_equal(
        clips[0], evaluate_run.load_reference(tmp_path / "long.flac", None, 1.0)[0]
    )
    # A part shorter than a clip is dropped (3.5 s in 4 parts of 0.875 s): one clip left.
    assert len(evaluate_run.load_reference_clips(tmp_path / "long.flac", None, 1.0, 4)[0]) == 1
    _, records = evaluate_run.evaluate_folder(
        tmp_path,
        ["mp3:64"],
        {"identity": baselines.identity},
        clip_seconds=1.0,
        clips_per_file=3,
        progress=False,
    )
    assert sorted(r["clip"] for r in records) == ["long.flac", "long.flac#1", "long.flac#2"]


def test_held_out_files_keeps_the_kinds_asked_for(tmp_path):
    write_folder(tmp_path, list(range(40)))
    rows = [
        {"path": f"loop{i}.flac", "licence": "CC0-1.0", "kind": "music" if i % 2 else "drums"}
        for i in range(40)
    ]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    every = evaluate_run.held_out_files(tmp_path, "test")
    music = evaluate_run.held_out_files(tmp_path, "test", kinds=("music",))
    assert music and set(music) < set(every)
    assert all(int(p.stem[4:]) % 2 for p in music)
    with pytest.raises(FileNotFoundError, match="no file of kind speech"):
        evaluate_run.held_out_files(tmp_path, "test", kinds=("speech",))


def test_evaluate_cli_split_validation_scores_the_validation_files(tmp_path, monkeypatch):
    cli = load_cli("evaluate")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_folder(corpus, list(range(12)))
    monkeypatch.setattr(cli, "DEFAULT_CORPUS", corpus)
    scored = {}
    for split in ("validation", "test"):
        out = tmp_path / split
        argv = ["--split", split, "--bitrates", "64", "--clip-seconds", "1", "--out", str(out)]
        assert cli.main(argv) == 0
        records = json.loads((out / "results.json").read_text())["records"]
        scored[split] = {r["clip"] for r in records}
        expected = {p.name for p in evaluate_run.held_out_files(corpus, split)}
        assert scored[split] == expected
    assert scored["validation"] and not scored["validation"] & scored["test"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--clips-per-file", "3"], "--clips-per-file needs --clip-seconds"),
        (["--clips-per-file", "0", "--clip-seconds", "1"], "must be at least 1"),
        (["--kinds", "music", "--data", "."], "--kinds selects from the held-out split"),
        (["--kinds", ","], "--kinds needs at least one kind"),
        (["--split", "validation", "--data", "."], "--split selects a held-out split"),
        (["--split", "train"], "invalid choice: 'train'"),
    ],
)
def test_evaluate_cli_refuses_inconsistent_clip_flags_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        load_cli("evaluate").main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err
