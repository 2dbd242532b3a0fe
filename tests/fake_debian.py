"""A fake Debian system for the corpus tests: package files, copyright files, programs.

CI has only pip packages, so the corpus builder is tested against a tree made here: the
files the sources read (samples, kits, soundfont headers, LMMS projects), their Debian
copyright files, and small Python scripts standing in for ``dpkg-query``, ``fluidsynth``
and ``lmms``. The fake renderers write noise (full band) and fail on request: a soundfont
or project whose name contains "broken" makes them exit with an error, one containing
"crash" makes them write half a file and die of SIGSEGV (what lmms does on a corrupt
project).
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from scipy import signal

from mp3gan.audio import write_audio
from mp3gan.data.corpus.packages import SystemPaths

SR = 44100

SONIC_PI_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2016 Someone
License: MIT

Files:
 drumkits/Loud?Kit.h2drumkit
 drumkits/circKit.h2drumkit
Copyright: Drummer <d@example.org>
 2017 Other
License: CC-BY-SA-3.0
Comment:
 .
 listed in drumkit.xml

Files: etc/samples/bd_boom.flac
Copyright: 2010 Kicker
Source: http://example.org/1
License: CC0

License: MIT
 Permission is hereby granted...
"""

LMMS_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2004-2014 LMMS Developers
License: GPL-2+

Files: data/projects/demos/Good-*
 data/projects/demos/Broken-*
 data/projects/demos/Crash-*
Copyright: 2011 Good Author
License: Artistic-2

Files: data/projects/shorties/Short-*
Copyright: Shorty
License: CC-BY-SA-4
"""

TIMGM_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: TimGM6mb.sf2
Copyright: 2004 Tim Brechbill
License: GPL-2
"""

MUSESCORE_COPYRIGHT = """\
Licence:

MuseScore_General_HQ SoundFont (MIT, parts PD or CC0):

Adaptation for MuseScore_General Copyright © 2018-2021 S. Christian Collins
"""

FLUID_COPYRIGHT = """\
License:
 From README:
  "I hereby release Fluid under the MIT license, as described in COPYING."

    Copyright © 2000-2002, 2008 Frank Wen
"""

RENDERER = '''#!{python}
"""Fake {name}: writes 1.5 s of stereo noise to the output file, or fails on request."""
import os, signal, sys
import numpy as np, soundfile as sf
args = sys.argv[1:]
out = args[args.index("{out_flag}") + 1]
inputs = " ".join(a for a in args if a.endswith((".sf2", ".mmp", ".mmpz")))
if "broken" in inputs.lower():
    print("error: cannot load " + inputs, file=sys.stderr)
    sys.exit(3)
if "crash" in inputs.lower():
    with open(out, "wb") as f:
        f.write(b"RIFF\\x00\\x00")  # half a file, then the crash
    os.kill(os.getpid(), signal.SIGSEGV)
noise = 0.1 * np.random.default_rng(len(inputs)).standard_normal((int(1.5 * 44100), 2))
sf.write(out, noise.astype("float32"), 44100, subtype="FLOAT")
'''

DPKG_QUERY = '''#!{python}
"""Fake dpkg-query: -W -f=... PKG... (status lines) and -L PKG (file list) from a JSON db."""
import json, sys
db = json.load(open({db!r}))
args = sys.argv[1:]
if args[0] == "-L":
    print("\\n".join(db.get(args[1], [])))
    sys.exit(0 if args[1] in db else 1)
for name in args[2:]:
    print(name + "\\t" + ("installed" if name in db else "not-installed"))
'''


def noise(seconds: float, cutoff_hz: float | None = None, channels: int = 1, seed: int = 0,
          sr: int = SR) -> np.ndarray:  # fmt: skip
    """Noise at about -20 dBFS RMS, optionally low-passed (a band-limited recording)."""
    x = 0.1 * np.random.default_rng(seed).standard_normal((channels, int(seconds * sr)))
    if cutoff_hz is not None:
        x = signal.sosfiltfilt(signal.butter(12, cutoff_hz, fs=sr, output="sos"), x, axis=-1)
    return x.astype(np.float32)


def _script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def soundfont_header(major: int = 2, minor: int = 1) -> bytes:
    """The first bytes of a SoundFont file: RIFF sfbk, LIST INFO, ifil version."""
    ifil = b"ifil" + struct.pack("<IHH", 4, major, minor)
    info = b"LIST" + struct.pack("<I", 4 + len(ifil)) + b"INFO" + ifil
    return b"RIFF" + struct.pack("<I", 4 + len(info)) + b"sfbk" + info


class FakeDebian:
    """A package tree under ``tmp/root`` and fake programs under ``tmp/bin``."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "root"
        self.bin = tmp / "bin"
        self.bin.mkdir(parents=True)
        self.db_file = tmp / "dpkg.json"
        self.db: dict[str, list[str]] = {}
        self._save()
        python = sys.executable
        self.paths = SystemPaths(
            root=self.root,
            fluidsynth=_script(self.bin / "fluidsynth",
                               RENDERER.format(python=python, name="fluidsynth", out_flag="-F")),
            lmms=_script(self.bin / "lmms",
                         RENDERER.format(python=python, name="lmms", out_flag="-o")),
            dpkg_query=_script(self.bin / "dpkg-query",
                               DPKG_QUERY.format(python=python, db=str(self.db_file))),
        )  # fmt: skip

    def _save(self) -> None:
        self.db_file.write_text(json.dumps(self.db))

    def share(self, *parts: str) -> Path:
        return self.paths.share(*parts)

    def install(self, package: str, files: dict[str, bytes | str | np.ndarray] | None = None,
                copyright: str = "") -> None:  # fmt: skip
        """Put ``files`` (paths under usr/share -> content) in the tree, and register them."""
        listed = []
        for rel, content in (files or {}).items():
            path = self.share(*rel.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, np.ndarray):
                write_audio(path, content, SR if path.suffix == ".flac" else 48000)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
            listed.append(str(path))
        if copyright:
            path = self.paths.copyright(package)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(copyright)
            listed.append(str(path))
        self.db[package] = self.db.get(package, []) + listed
        self._save()

    def remove(self, package: str) -> None:
        """Mark ``package`` not installed (its files stay, as after 'apt-get remove')."""
        self.db.pop(package, None)
        self._save()

    def install_all(self) -> None:
        """Every package the sources need, with small contents."""
        self.install("sonic-pi-samples", {
            "sonic-pi/samples/bd_boom.flac": noise(0.5),
            "sonic-pi/samples/loop_x.flac": noise(1.0, channels=2, seed=1),
        }, SONIC_PI_COPYRIGHT)  # fmt: skip
        xml = "<drumkit_info><name>{0}</name><license>CC0</license></drumkit_info>"
        kits: dict[str, bytes | str | np.ndarray] = {}
        for kit, cutoff in [("Bright Kit", None), ("Dull Kit", 11000.0)]:
            kits[f"hydrogen/data/drumkits/{kit}/drumkit.xml"] = xml.format(kit)
            for i in range(3):
                kits[f"hydrogen/data/drumkits/{kit}/hit {i}.wav"] = noise(0.3, cutoff, seed=i,
                                                                          sr=48000)  # fmt: skip
        self.install("hydrogen-drumkits", kits, SONIC_PI_COPYRIGHT)
        # The hydrogen program's own kit sits in the same folder (a look-alike).
        self.install("hydrogen-data", {
            "hydrogen/data/drumkits/GMRockKit/drumkit.xml": xml.format("GMRockKit"),
            "hydrogen/data/drumkits/GMRockKit/kick.wav": noise(0.3, sr=48000),
        })  # fmt: skip
        self.install("avldrums.lv2-soundfont", {"sounds/sf2/Red_Zeppelin_LV2.sf2":
                                                soundfont_header()},
                     "Files: sf2/*\nCopyright: 2015 Glen\nLicense: CC-BY-SA-3.0\n")  # fmt: skip
        self.install("fluidsynth", {"doc/fluidsynth/README": "x"})
        for package, name, text in [
            ("musescore-general-soundfont-lossless", "MuseScore_General_Full.sf2",
             MUSESCORE_COPYRIGHT),
            ("fluid-soundfont-gm", "FluidR3_GM.sf2", FLUID_COPYRIGHT),
            ("timgm6mb-soundfont", "TimGM6mb.sf2", TIMGM_COPYRIGHT),
        ]:  # fmt: skip
            self.install(package, {f"sounds/sf2/{name}": soundfont_header()}, text)
        self.install("lmms", {"doc/lmms/README": "x"})
        good = b"\0\0\0\0" + zlib.compress(
            b'<lmms-project><sample src="drums/kick01.ogg"/>'
            b'<sample src="drums/x.wav"/></lmms-project>'
        )
        self.install("lmms-common", {
            "lmms/projects/demos/Good-Song.mmpz": good,
            "lmms/projects/demos/Broken-Song.mmp": "<lmms-project/>",
            "lmms/projects/demos/Crash-Song.mmpz": b"not zlib",
            "lmms/projects/shorties/Short-Snip.mmp": "<lmms-project/>",
            "lmms/projects/tutorials/lesson.mmp": "<lmms-project/>",
        }, LMMS_COPYRIGHT)  # fmt: skip
