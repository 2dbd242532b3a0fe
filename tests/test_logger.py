"""The writer: scalars to metrics.jsonl, media to FLAC/PNG files; nothing computed."""

import json

import ml_collections
import numpy as np
import soundfile as sf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mp3gan import logger


def _config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"wandb": {"mode": "disabled", "project": "p", "name": ""}})


def _media(name: str) -> logger.Media:
    figure = Figure(figsize=(2, 2), dpi=50)
    FigureCanvasAgg(figure)
    figure.add_subplot().plot([0, 1])
    tone = 0.5 * np.sin(np.linspace(0, 100, 4410, dtype=np.float32))[None]
    return logger.Media(name, 44100, {"reference": tone, "restored": 2.0 * tone}, figure)


def test_scalars_and_media_are_written_as_files(tmp_path):
    run = logger.Logger(_config(), tmp_path, is_main=True)
    run.log_scalars(3, {"g_loss": 1.5})
    run.log_scalars(4, {"g_loss": 1.25})
    run.log_media(4, [_media("song.flac mp3:64 @x")])
    run.finish()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"step": 3, "g_loss": 1.5}, {"step": 4, "g_loss": 1.25}]
    files = sorted(p.name for p in (tmp_path / "media" / "step_0000004").iterdir())
    assert files == [
        "song.flac_mp3_64_x.png",
        "song.flac_mp3_64_x.reference.flac",
        "song.flac_mp3_64_x.restored.flac",
    ]
    restored, sr = sf.read(tmp_path / "media" / "step_0000004" / files[2])
    assert sr == 44100 and np.abs(restored).max() <= 1.0  # clipped for the listening copy


def test_other_processes_write_nothing(tmp_path):
    run = logger.Logger(_config(), tmp_path, is_main=False)
    run.log_scalars(1, {"g_loss": 1.0})
    run.log_media(1, [_media("x")])
    assert list(tmp_path.iterdir()) == []


def test_safe_name_keeps_only_portable_characters():
    assert logger.safe_name("a/b:c@d e") == "a_b_c_d_e"
    assert logger.safe_name("::") == "clip"
