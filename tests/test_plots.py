"""Pictures: the restoration figure and the analyze command's PNG."""

import numpy as np
from helpers import burst_after_silence, clicks_and_noise, load_cli
from matplotlib.figure import Figure
from matplotlib.image import imread

from mp3gan import audio, evaluate_run, plots

SR = 44100


def test_strongest_onset_is_the_burst():
    x = burst_after_silence(SR, seed=0)
    onset = plots.strongest_onset(x, SR)
    assert abs(onset - (SR // 2 + 300)) <= SR // 1000  # within the 1 ms onset block


def test_restoration_figure_has_labelled_panels_and_saves_atomically(tmp_path):
    reference = np.concatenate([burst_after_silence(SR), clicks_and_noise(SR // 2, SR)], axis=1)
    reference = np.repeat(reference, 2, axis=0)
    degraded = audio.mp3_roundtrip(reference, SR, bitrate=64)
    fig = plots.restoration_figure(reference, degraded, degraded, SR, title="test figure")
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.get_axes()]
    assert {"reference", "MP3", "restored", "coherence with the reference"} <= set(titles)
    panels = [ax for ax in fig.get_axes() if ax.get_title()]  # all but the colour bar
    assert len(panels) == 6 and all(ax.get_xlabel() for ax in panels)
    ylabels = {ax.get_ylabel() for ax in fig.get_axes()}
    assert {"frequency (kHz)", "level (dB)", "magnitude-squared coherence"} <= ylabels
    path = plots.save_figure(fig, tmp_path / "sub" / "fig.png")
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temporary left
    height, width = imread(path).shape[:2]
    assert (width, height) == (plots.FIGSIZE[0] * plots.DPI, plots.FIGSIZE[1] * plots.DPI)


def test_analyze_cli_writes_a_png_of_the_expected_size(tmp_path):
    x = clicks_and_noise(int(1.2 * SR), SR, channels=2, seed=7)
    source = tmp_path / "loop.flac"
    audio.write_audio(source, 0.9 * x / np.abs(x).max(), SR)
    out = tmp_path / "analysis.png"
    argv = [str(source), "--bitrate", "64", "--seconds", "1", "--out", str(out)]
    assert load_cli("analyze").main(argv) == 0
    image = imread(out)
    assert image.shape[:2] == (plots.FIGSIZE[1] * plots.DPI, plots.FIGSIZE[0] * plots.DPI)
    assert image[..., :3].std() > 0.05  # something was drawn


def test_training_curves_draw_losses_and_input_beside_output():
    rows = [
        {"step": 10, "g_loss": 5.0, "loss/mel": 1.0},
        {"step": 20, "g_loss": 4.0, "loss/mel": 0.8, "d_loss": 0.5},
        {"step": 20, "eval/mp3:64/lsd/input": 9.0, "eval/mp3:64/lsd/output": 6.0},
    ]
    fig = plots.training_curves(rows, title="run")
    loss_ax, eval_ax = fig.axes[:2]
    assert {line.get_label() for line in loss_ax.get_lines()} == {"mel", "g_loss", "d_loss"}
    labels = {line.get_label() for line in eval_ax.get_lines()}
    assert labels == {"mp3:64/lsd (input)", "mp3:64/lsd (output)"}


def test_analyze_cli_writes_the_three_signals_beside_the_figure_with_audio(tmp_path):
    x = clicks_and_noise(int(1.2 * SR), SR, channels=2, seed=8)
    source = tmp_path / "loop.flac"
    audio.write_audio(source, x / np.abs(x).max(), SR)  # at 0 dBFS: the MP3 overshoots
    out = tmp_path / "ex.png"
    argv = [str(source), "--seconds", "1", "--out", str(out), "--audio"]
    assert load_cli("analyze").main(argv) == 0
    written = {
        n: audio.read_audio(tmp_path / f"ex.{n}.flac") for n in ("reference", "mp3", "restored")
    }
    assert all(rate == SR and a.shape == (2, SR) for a, rate in written.values())
    reference = written["reference"][0]
    assert np.abs(reference).max() <= 1.0 and np.abs(written["mp3"][0]).max() <= 1.0
    # One gain for all three: the reference is the source's clip, scaled as a whole.
    clip = evaluate_run.load_reference(source, None, 1.0)[0]
    ratio = np.abs(reference).max() / np.abs(clip).max()
    assert ratio < 0.999  # the MP3 overshot full scale: all three were turned down
    np.testing.assert_allclose(reference, ratio * clip, atol=1e-4)
    mp3 = audio.mp3_roundtrip(clip, SR, bitrate=64)
    np.testing.assert_allclose(written["mp3"][0], ratio * mp3, atol=1e-4)


def test_analyze_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    x = clicks_and_noise(SR, SR, channels=1, seed=9)
    source = tmp_path / "short.flac"
    audio.write_audio(source, 0.5 * x / np.abs(x).max(), SR)
    cli = load_cli("analyze")
    for argv in ([str(tmp_path / "missing.flac")], [str(source), "--start", "5"]):
        assert cli.main([*argv, "--out", str(tmp_path / "a.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("analyze.py: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "a.png").exists()
