"""Tests of mp3gan.data.corpus.render: soundfont checks and renderer failures (with fakes).

The real renders need Debian's fluidsynth and lmms with their data packages; those two
tests are skipped, saying what to install, when they are not here.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_debian import FakeDebian, soundfont_header

from mp3gan.audio import MODEL_SAMPLE_RATE
from mp3gan.data.corpus import render as R
from mp3gan.data.corpus import songs
from mp3gan.data.corpus.items import MIN_SOURCE_CUTOFF_HZ, measure_cutoff
from mp3gan.data.corpus.music import GM_SOUNDFONTS, lmms_projects
from mp3gan.data.corpus.packages import SystemPaths

SR = MODEL_SAMPLE_RATE
MIDI = songs.compose_song(1, 20.0).midi()


def test_only_version_2_soundfonts_are_lossless(tmp_path):
    sf2, sf3, other = tmp_path / "a.sf2", tmp_path / "b.sf3", tmp_path / "c.sf2"
    sf2.write_bytes(soundfont_header(2, 1) + b"\0" * 64)
    sf3.write_bytes(soundfont_header(3, 0) + b"\0" * 64)
    other.write_bytes(b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 64)
    assert R.soundfont_version(sf2) == (2, 1)
    R.check_lossless_soundfont(sf2)
    with pytest.raises(R.RenderError, match="version 3.0; only version 2"):
        R.check_lossless_soundfont(sf3)
    with pytest.raises(R.RenderError, match="not a SoundFont file"):
        R.check_lossless_soundfont(other)


def test_renders_return_audio_and_failures_name_their_input(tmp_path):
    fake = FakeDebian(tmp_path)
    good, broken = tmp_path / "good.sf2", tmp_path / "broken.sf2"
    audio = R.render_midi(MIDI, good, fluidsynth=fake.paths.fluidsynth)
    assert audio.shape == (2, int(1.5 * SR)) and audio.dtype == np.float32
    with pytest.raises(R.RenderError, match=r"song 7: fluidsynth failed \(exit status 3: "
                       r"error: cannot load .*broken.sf2\)"):  # fmt: skip
        R.render_midi(MIDI, broken, fluidsynth=fake.paths.fluidsynth, name="song 7")
    crash = tmp_path / "Crash.mmpz"
    crash.write_bytes(b"x")
    with pytest.raises(R.RenderError, match=r"Crash.mmpz: lmms failed \(killed by SIGSEGV\)"):
        R.render_lmms(crash, lmms=fake.paths.lmms)
    with pytest.raises(R.RenderError, match="no such project file"):
        R.render_lmms(tmp_path / "missing.mmp", lmms=fake.paths.lmms)
    with pytest.raises(R.RenderError, match="cannot run"):
        R.render_lmms(crash, lmms=str(tmp_path / "no-lmms-here"))


def test_silent_unreadable_and_endless_renders_are_errors(tmp_path):
    project = tmp_path / "p.mmp"
    project.write_text("<lmms-project/>")
    scripts = {
        "silent": "import numpy as np, soundfile as sf, sys\n"
                  "sf.write(sys.argv[sys.argv.index('-o') + 1], np.zeros((100, 2)), 44100)\n",
        "garbage": "import sys\nopen(sys.argv[sys.argv.index('-o') + 1], 'w').write('junk')\n",
        "nothing": "pass\n",
        "slow": "import time\ntime.sleep(30)\n",
    }  # fmt: skip
    expected = {"silent": "the render is silent", "garbage": "not usable audio",
                "nothing": "nothing wrote no audio", "slow": "still running after 1 s"}  # fmt: skip
    for name, body in scripts.items():
        program = tmp_path / name
        program.write_text(f"#!{sys.executable}\n{body}")
        program.chmod(0o755)
        with pytest.raises(R.RenderError, match=expected[name]):
            R.render_lmms(project, lmms=str(program), timeout_s=1)
    assert not list(tmp_path.glob("*.wav")), "renders happen in a temporary folder"


def test_finish_render_trims_the_tail_and_sets_the_peak():
    audio = np.zeros((2, 3 * SR), np.float32)
    audio[:, :SR] = 0.5 * np.sin(np.linspace(0, 2000, SR))
    audio[:, SR : 2 * SR] = 1e-6  # inaudible decay
    out = R.finish_render(audio, -3.0)
    assert out.shape == (2, SR) and np.abs(out).max() == pytest.approx(10 ** (-3 / 20), rel=1e-5)
    assert abs(out[:, -1]).max() < 1e-3, "faded out"
    with pytest.raises(R.RenderError, match="silent"):
        R.finish_render(np.zeros((2, 100), np.float32), -1.0)


def _installed(path: Path, package: str, program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} not installed (apt-get install -y {program})")
    if not path.exists():
        pytest.skip(f"{path} not installed (apt-get install -y {package})")


def test_fluidsynth_renders_a_song_full_band_through_each_soundfont():
    for font in GM_SOUNDFONTS:
        path = font.path(SystemPaths())
        _installed(path, font.package, "fluidsynth")
        R.check_lossless_soundfont(path)
        audio = R.render_midi(songs.compose_song(1, 20.0).midi(), path, effects=True)
        assert audio.shape[0] == 2 and audio.shape[1] >= 20 * SR
        assert measure_cutoff(R.finish_render(audio, -1.0)) >= MIN_SOURCE_CUTOFF_HZ, font.file


def test_lmms_renders_a_packaged_short_song_full_band():
    projects = [p for p in lmms_projects(SystemPaths()) if p.name == "Greshz-CoolSnip.mmpz"]
    _installed(projects[0] if projects else Path("/usr/share/lmms/projects"), "lmms-common",
               "lmms")  # fmt: skip
    audio = R.render_lmms(projects[0])
    assert audio.shape[0] == 2 and audio.shape[1] > 10 * SR
    assert measure_cutoff(R.finish_render(audio, -1.0)) >= MIN_SOURCE_CUTOFF_HZ
