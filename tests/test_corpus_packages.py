"""Tests of mp3gan.data.corpus.packages: packages are checked with dpkg, not by look-alikes."""

from __future__ import annotations

import pytest
from fake_debian import FakeDebian

from mp3gan.data.corpus import packages as P
from mp3gan.data.corpus.build import REGISTRY


@pytest.fixture
def debian(tmp_path):
    fake = FakeDebian(tmp_path)
    fake.install_all()
    return fake


def _missing(source: str, paths: P.SystemPaths) -> list[P.Missing]:
    return P.missing_requirements(REGISTRY[source].requirements(paths), paths)


def test_a_look_alike_folder_does_not_hide_a_missing_package(debian):
    assert _missing("hydrogen", debian.paths) == []
    debian.remove("hydrogen-drumkits")
    # The hydrogen program's own kit keeps */drumkit.xml in the folder: a file check
    # would pass. dpkg says the package is not installed.
    assert any(debian.share("hydrogen", "data", "drumkits").glob("*/drumkit.xml"))
    (missing,) = _missing("hydrogen", debian.paths)
    assert missing.requirement.package == "hydrogen-drumkits"
    assert missing.reason == "not installed"
    message = P.missing_message("hydrogen", [missing])
    assert "'hydrogen-drumkits' (not installed" in message
    assert message.endswith("apt-get install -y hydrogen-drumkits")


def test_installed_but_files_gone_is_named_too(debian, tmp_path):
    for font in debian.share("sounds", "sf2").glob("TimGM6mb.sf2"):
        font.unlink()
    (missing,) = _missing("songs", debian.paths)
    assert missing.requirement.package == "timgm6mb-soundfont"
    assert missing.reason.startswith("installed, but") and "TimGM6mb.sf2" in missing.reason


def test_dpkg_status_parsing_and_file_lists(debian):
    status = P.installed_packages(["lmms", "hydrogen-drumkits", "no-such-package"],
                                  debian.paths.dpkg_query)  # fmt: skip
    assert status == {"lmms", "hydrogen-drumkits"}
    files = P.package_files("hydrogen-drumkits", debian.paths.dpkg_query)
    assert any(f.endswith("Bright Kit/drumkit.xml") for f in files)
    assert not any("GMRockKit" in f for f in files)


def test_without_dpkg_only_files_are_checked(debian, capsys):
    paths = P.SystemPaths(root=debian.root, fluidsynth=debian.paths.fluidsynth,
                          lmms=debian.paths.lmms, dpkg_query="dpkg-query-not-here-xyz")  # fmt: skip
    assert P.installed_packages(["lmms"], paths.dpkg_query) is None
    debian.remove("sonic-pi-samples")  # dpkg would say so; the files are still there
    assert _missing("sonic-pi", paths) == []
    assert "not found (not a Debian system?)" in capsys.readouterr().err
    (missing,) = _missing("songs", P.SystemPaths(root=debian.root, lmms=debian.paths.lmms,
                                                 fluidsynth="fluidsynth-not-here-xyz",
                                                 dpkg_query=paths.dpkg_query))  # fmt: skip
    assert missing.requirement.package == "fluidsynth"
    assert "the 'fluidsynth-not-here-xyz' program" in missing.reason


def test_install_command_names_each_package_once():
    command = P.install_command(["lmms", "fluidsynth", "lmms"])
    assert command.endswith("apt-get install -y fluidsynth lmms")
