"""Tests of mp3gan.data.corpus.licences and .manifest: DEP-5, stated licences, the manifest."""

from __future__ import annotations

import json

import pytest
from fake_debian import FLUID_COPYRIGHT, LMMS_COPYRIGHT, MUSESCORE_COPYRIGHT, SONIC_PI_COPYRIGHT

from mp3gan.data.corpus import drums
from mp3gan.data.corpus import licences as L
from mp3gan.data.corpus import manifest as M


def test_copyright_parsing_last_match_wins():
    stanzas = L.parse_copyright(SONIC_PI_COPYRIGHT)
    assert [s.licence for s in stanzas] == ["MIT", "CC-BY-SA-3.0", "CC0"]
    assert L.licence_for(stanzas, ["etc/samples/bd_boom.flac"]).licence == "CC0"
    assert L.licence_for(stanzas, ["etc/samples/other.flac"]).licence == "MIT"
    kit = L.licence_for(stanzas, ["drumkits/Loud Kit.h2drumkit"])
    assert kit.licence == "CC-BY-SA-3.0" and kit.copyright == "Drummer <d@example.org>; 2017 Other"
    assert L.licence_for(L.parse_copyright("Files: a\nLicense: X\n"), ["b"]) is None


def test_lmms_projects_get_their_own_stanza_or_the_package_default(tmp_path):
    path = tmp_path / "copyright"
    path.write_text(LMMS_COPYRIGHT)
    lic = L.dep5_licence(path, ["data/projects/demos/Good-Song.mmpz"])
    assert lic.licence == "Artistic-2" and lic.copyright == "2011 Good Author"
    assert "Files: data/projects/demos/Good-*" in lic.source and str(path) in lic.source
    assert L.dep5_licence(path, ["data/projects/demos/Other.mmp"]).licence == "GPL-2+"
    assert L.dep5_licence(tmp_path / "missing", ["x"]) is None


def test_a_stated_licence_needs_its_exact_words(tmp_path):
    path = tmp_path / "copyright"
    path.write_text(MUSESCORE_COPYRIGHT)
    statement = "MuseScore_General_HQ SoundFont (MIT, parts PD or CC0)"
    lic = L.stated_licence(path, "MIT (parts PD or CC0)", statement)
    assert lic.licence == "MIT (parts PD or CC0)" and statement in lic.source
    assert (
        lic.copyright
        == "Adaptation for MuseScore_General Copyright © 2018-2021 S. Christian Collins"
    )
    # Reflowed text still matches; changed terms do not.
    path.write_text(FLUID_COPYRIGHT)
    assert L.stated_licence(path, "MIT", "I hereby release Fluid under the MIT license").licence
    path.write_text(MUSESCORE_COPYRIGHT.replace("(MIT, parts", "(GPL, parts"))
    assert L.stated_licence(path, "MIT (parts PD or CC0)", statement) is None
    assert L.stated_licence(tmp_path / "missing", "MIT", statement) is None


def test_kit_licence_from_debian_then_drumkit_xml(tmp_path):
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        SONIC_PI_COPYRIGHT.replace("Files: *\nCopyright: 2016 Someone\nLicense: MIT\n", "")
    )
    xml = '<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><license>{}</license></drumkit_info>'
    for name, text in [("circKit v4", "CC BY-SA"), ("Other", "This is CC0")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "drumkit.xml").write_text(xml.format(text))
    lic = drums.kit_licence(tmp_path / "circKit v4", copyright_file)  # version suffix dropped
    assert lic.licence == "CC-BY-SA-3.0" and str(copyright_file) in lic.source
    assert lic.note == "CC BY-SA"
    lic = drums.kit_licence(tmp_path / "Other", copyright_file)  # not in Debian's file
    assert lic.licence == "This is CC0" and lic.source.endswith("drumkit.xml (<license>)")


def _entry(path: str, **kw) -> M.ManifestEntry:
    base = dict(path=path, source="sonic-pi", kind="one-shot", duration_s=1.5,
                sample_rate=44100, channels=2, licence="CC0",
                licence_source="/usr/share/doc/x/copyright (Files: *)",
                copyright="2013 Someone", origin="/usr/share/x.flac", seed=None, project=None,
                cutoff_hz=21000.0, full_band=True, extra={"kit": "K"})  # fmt: skip
    return M.ManifestEntry(**{**base, **kw})


def test_manifest_round_trip_and_licence_and_kind_required(tmp_path):
    entries = [_entry("a.flac"), _entry("b/c.flac", seed=3, kind="music", project="p.mmp")]
    M.write_manifest(tmp_path / "manifest.jsonl", entries)
    assert M.read_manifest(tmp_path / "manifest.jsonl") == entries
    assert not list(tmp_path.glob(".*.part")), "atomic write leaves no temp file"
    with pytest.raises(M.CorpusError, match="no licence"):
        M.write_manifest(tmp_path / "m2.jsonl", [_entry("x.flac", licence="")])
    with pytest.raises(M.CorpusError, match="kind 'speech'"):
        M.write_manifest(tmp_path / "m2.jsonl", [_entry("x.flac", kind="speech")])
    assert not (tmp_path / "m2.jsonl").exists()
    row = {**json.loads(json.dumps(entries[0].__dict__)), "licence_source": ""}
    (tmp_path / "m3.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(M.CorpusError, match="no licence"):
        M.read_manifest(tmp_path / "m3.jsonl")
    # A manifest from before kinds reads (kind '', project None) for a rebuild to fill in.
    old = {k: v for k, v in entries[0].__dict__.items() if k not in ("kind", "project")}
    (tmp_path / "m4.jsonl").write_text(json.dumps(old) + "\n")
    (read,) = M.read_manifest(tmp_path / "m4.jsonl")
    assert read.kind == "" and read.project is None and read.licence == "CC0"
