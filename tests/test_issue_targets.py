"""benchmarks/issue_targets.py reads an evaluation's rows and names each target met or the
amount it misses by: a wrong sign or threshold here would report a model as shipped-worthy."""

import json

from issue_targets import main, target_shortfalls


def _metrics(lsd, lsd_high, si_sdr, pre_echo, inputs=(40.0, 50.0, 20.0, 3.0), ci=0.02):
    values = dict(
        zip(
            ("lsd", "lsd_high", "si_sdr", "pre_echo_db"),
            (lsd, lsd_high, si_sdr, pre_echo),
            strict=True,
        )
    )
    out = {}
    for (key, value), given in zip(values.items(), inputs, strict=True):
        better = given - value if key != "si_sdr" else value - given
        out[key] = {
            "input": {"mean": given, "ci95": 0.1},
            "output": {"mean": value, "ci95": 0.1},
            "improvement": {"mean": better, "ci95": ci},
        }
    return out


def _rows(model_at_64):
    rows = {}
    for rate in ("mp3:32", "mp3:64", "mp3:128"):
        rows[(rate, "exciter")] = _metrics(20.0, 20.0, 19.0, 3.0)
        rows[(rate, "sbr")] = _metrics(22.0, 24.0, 20.0, 3.0)
        rows[(rate, "model")] = _metrics(15.0, 15.0, 20.1, 0.5)
    rows[("mp3:64", "model")] = model_at_64
    return rows


def test_a_model_that_meets_everything_is_short_of_nothing():
    shortfalls = target_shortfalls(_rows(_metrics(15.0, 15.0, 20.1, 0.5)))
    assert len(shortfalls) == 3 * (4 + 2 * 4)
    assert all(value == 0 for value in shortfalls.values())


def test_each_miss_is_named_with_its_amount():
    # 64 kbps: LSD 20 % lower (5 short of 25), pre-echo 1.5 dB lower (0.5 short), SI-SDR
    # change -0.05 with interval 0.1 (low end -0.15: 0.05 short), high band darker than
    # the exciter's by 1 dB, SI-SDR below SBR's by 0.05.
    rows = _rows(_metrics(32.0, 21.0, 19.95, 1.5, ci=0.1))
    short = {k: v for k, v in target_shortfalls(rows).items() if v > 0}
    assert set(short) == {
        "mp3:64 lsd >= 25 % lower",
        "mp3:64 pre-echo >= 2 dB lower",
        "mp3:64 SI-SDR interval >= -0.1 dB",
        "mp3:64 beats exciter on lsd",
        "mp3:64 beats exciter on lsd_high",
        "mp3:64 beats sbr on lsd",
        "mp3:64 beats sbr on si_sdr",
    }
    assert abs(short["mp3:64 lsd >= 25 % lower"] - 5.0) < 1e-9
    assert abs(short["mp3:64 pre-echo >= 2 dB lower"] - 0.5) < 1e-9
    assert abs(short["mp3:64 SI-SDR interval >= -0.1 dB"] - 0.05) < 1e-9
    assert abs(short["mp3:64 beats exciter on lsd_high"] - 1.0) < 1e-9
    assert abs(short["mp3:64 beats sbr on si_sdr"] - 0.05) < 1e-9


def test_at_128_kbps_the_bound_is_on_the_mean_and_no_harm(tmp_path, capsys):
    rows = _rows(_metrics(15.0, 15.0, 20.1, 0.5))
    rows[("mp3:128", "model")] = _metrics(15.0, 15.0, 19.85, 3.2, ci=1.0)
    short = target_shortfalls(rows)
    assert abs(short["mp3:128 SI-SDR change >= -0.1 dB"] - 0.05) < 1e-9
    assert abs(short["mp3:128 pre-echo change >= -0.1 dB"] - 0.1) < 1e-9
    summary = [{"degradation": d, "method": m, "metrics": v} for (d, m), v in rows.items()]
    (tmp_path / "results.json").write_text(json.dumps({"summary": summary}))
    assert main([str(tmp_path)]) == 0
    table = capsys.readouterr().out
    met = sum(v == 0 for v in short.values())
    last = next(line for line in table.splitlines() if line.startswith("targets met"))
    assert "short 0.05" in table and last.split()[-1] == f"{met}/{len(short)}"
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_128_kbps_spectral_bar_is_15_per_cent():
    rows = _rows(_metrics(15.0, 15.0, 20.1, 0.5))
    rows[("mp3:128", "model")] = _metrics(32.0, 36.0, 20.1, 0.5)  # 20 % and 28 % lower
    short = target_shortfalls(rows)
    assert short["mp3:128 lsd >= 15 % lower"] == 0 and short["mp3:128 lsd_high >= 15 % lower"] == 0
    rows[("mp3:128", "model")] = _metrics(36.0, 50.0, 20.1, 0.5)  # 10 % and 0 % lower
    short = target_shortfalls(rows)
    assert abs(short["mp3:128 lsd >= 15 % lower"] - 5.0) < 1e-9
    assert abs(short["mp3:128 lsd_high >= 15 % lower"] - 15.0) < 1e-9


def _write(folder, rows, **fields):
    folder.mkdir()
    summary = [{"degradation": d, "method": m, "metrics": v} for (d, m), v in rows.items()]
    results = {"summary": summary, "split": "test", "kinds": ["music"], "clips_evaluated": 18}
    (folder / "results.json").write_text(json.dumps({**results, **fields}))


def test_undefined_metrics_show_as_dashes_and_bad_folders_are_one_line(tmp_path, capsys):
    rows = _rows(_metrics(15.0, 15.0, 20.1, 0.5))
    rows[("mp3:32", "model")]["pre_echo_db"]["improvement"]["mean"] = None  # no onsets
    short = target_shortfalls(rows)
    assert short["mp3:32 pre-echo >= 2 dB lower"] is None
    _write(tmp_path / "a", rows)
    _write(tmp_path / "b", _rows(_metrics(15.0, 15.0, 20.1, 0.5)), clips_evaluated=43)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("mp3:32 pre-echo"))
    assert row.split()[-2:] == ["-", "ok"]
    assert "scored different clips" in out
    baselines_only = {k: v for k, v in rows.items() if k[1] != "model"}
    _write(tmp_path / "c", baselines_only)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "results.json").write_text("{not json")
    for folder, message in (("c", "no model rows"), ("d", "not launch/evaluate.py results")):
        assert main([str(tmp_path / "a"), str(tmp_path / folder)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
