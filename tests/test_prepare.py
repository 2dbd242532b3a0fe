"""Tests of the corpus builder: MIDI writer, grooves, licences, manifest, missing packages.

Everything runs on fake package trees made in tmp_path, except the fluidsynth render,
which needs the real Debian packages and is skipped (with the reason) without them.
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from mp3gan.audio import read_audio, write_audio
from mp3gan.data import prepare as P
from mp3gan.metrics import cutoff_frequency

SR = P.SAMPLE_RATE


def parse_smf(data: bytes) -> tuple[tuple[int, int, int], list[tuple[int, bytes]]]:
    """Minimal SMF reader: ((format, ntracks, division), [(absolute tick, event bytes)])."""
    assert data[:4] == b"MThd"
    (hlen, fmt, ntrk, division) = struct.unpack(">IHHH", data[4:14])
    assert hlen == 6
    assert data[14:18] == b"MTrk"
    (tlen,) = struct.unpack(">I", data[18:22])
    track = data[22:]
    assert len(track) == tlen, "track chunk length must match its contents"
    events, i, tick = [], 0, 0
    while i < len(track):
        delta = 0
        while True:  # variable-length delta time
            b = track[i]
            i += 1
            delta = (delta << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        tick += delta
        status = track[i]
        if status == 0xFF:  # meta: type, length (< 128 here), payload
            n = track[i + 2]
            events.append((tick, track[i : i + 3 + n]))
            i += 3 + n
        else:
            n = 2 if status & 0xF0 in (0xC0, 0xD0) else 3
            events.append((tick, track[i : i + n]))
            i += n
    return (fmt, ntrk, division), events


# ------------------------------------------------------------------------------ MIDI


@pytest.mark.parametrize(
    "value, encoded",
    [(0, b"\x00"), (0x7F, b"\x7f"), (0x80, b"\x81\x00"), (0x3FFF, b"\xff\x7f"),
     (0x200000, b"\x81\x80\x80\x00")],
)  # fmt: skip
def test_vlq(value, encoded):
    assert P.encode_vlq(value) == encoded


def test_midi_file_is_valid_smf():
    groove = P.generate_groove(seed=7, duration_s=10.0)
    (fmt, ntrk, division), events = parse_smf(groove.midi())
    assert (fmt, ntrk, division) == (0, 1, P.PPQ)
    ons = [(t, e) for t, e in events if e[0] & 0xF0 == 0x90]
    offs = [(t, e) for t, e in events if e[0] & 0xF0 == 0x80]
    assert len(ons) == len(offs) == len(groove.hits)
    assert [t for t, _ in ons] == [h.tick for h in groove.hits]
    assert all(e[0] == 0x90 and 1 <= e[2] <= 127 for _, e in ons), "channel index 0"
    # Tempo, program 0 on channel 0, end of track last and at the groove's end.
    tempo = next(e for _, e in events if e[:2] == b"\xff\x51")
    assert int.from_bytes(tempo[3:6], "big") == round(60e6 / groove.bpm)
    assert any(e == b"\xc0\x00" for _, e in events)
    assert events[-1] == (groove.end_tick, b"\xff\x2f\x00")
    ticks = [t for t, _ in events]
    assert ticks == sorted(ticks), "delta times are never negative"


def test_note_off_never_cuts_the_next_stroke_of_the_same_key():
    hits = [P.Hit(0, 38, 100), P.Hit(10, 38, 90), P.Hit(500, 42, 80)]
    _, events = parse_smf(P.midi_file(hits, bpm=120, end_tick=1000, note_ticks=60))
    snare = [(t, e[0] & 0xF0) for t, e in events if len(e) == 3 and e[1] == 38]
    assert snare == [(0, 0x90), (10, 0x80), (10, 0x90), (70, 0x80)]


def test_groove_is_deterministic_and_varied():
    a, b = P.generate_groove(123, 30.0), P.generate_groove(123, 30.0)
    assert a == b and a.midi() == b.midi()
    grooves = [P.generate_groove(s, 30.0) for s in range(40)]
    assert len({g.hits for g in grooves}) == 40
    assert all(70 <= g.bpm <= 180 for g in grooves)
    assert len({g.style for g in grooves}) >= 5
    for g in grooves:
        keys = {h.key for h in g.hits}
        assert P.KICK in keys
        assert keys & {P.SNARE, P.SNARE_EDGE, P.CLAP}
        assert keys & {P.CRASH1, P.CRASH2, P.CRASH3}, "every groove ends on a crash"
        assert abs(g.duration_s - P.TAIL_S - 30.0) < 240 / g.bpm  # whole bars
        assert all(1 <= h.velocity <= 127 and h.tick >= 0 for h in g.hits)


def test_groove_plan_is_seeded_and_prefix_stable():
    short, long = P.groove_plan(5, 2.0), P.groove_plan(5, 6.0)
    assert long[: len(short)] == short, "more minutes extend the same sequence"
    assert sum(d for _, d in short) >= 120
    assert P.groove_plan(6, 2.0) != short


# ------------------------------------------------------------------- licences, manifest

COPYRIGHT = """\
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


def test_copyright_parsing_last_match_wins():
    stanzas = P.parse_copyright(COPYRIGHT)
    assert [s.licence for s in stanzas] == ["MIT", "CC-BY-SA-3.0", "CC0"]
    assert P.licence_for(stanzas, ["etc/samples/bd_boom.flac"]).licence == "CC0"
    assert P.licence_for(stanzas, ["etc/samples/other.flac"]).licence == "MIT"
    kit = P.licence_for(stanzas, ["drumkits/Loud Kit.h2drumkit"])
    assert kit.licence == "CC-BY-SA-3.0" and kit.copyright == "Drummer <d@example.org>; 2017 Other"
    assert P.licence_for(stanzas, ["nothing/matches"]) == P.licence_for(stanzas, ["x"])
    assert P.licence_for(P.parse_copyright("Files: a\nLicense: X\n"), ["b"]) is None


def test_kit_licence_from_debian_then_drumkit_xml(tmp_path):
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        COPYRIGHT.replace("Files: *\nCopyright: 2016 Someone\nLicense: MIT\n", "")
    )
    xml = '<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><license>{}</license></drumkit_info>'
    for name, text in [("circKit v4", "CC BY-SA"), ("Other", "This is CC0")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "drumkit.xml").write_text(xml.format(text))
    lic = P.kit_licence(tmp_path / "circKit v4", copyright_file)  # version suffix dropped
    assert lic.licence == "CC-BY-SA-3.0" and str(copyright_file) in lic.source
    assert lic.note == "CC BY-SA"
    lic = P.kit_licence(tmp_path / "Other", copyright_file)  # not in Debian's file
    assert lic.licence == "This is CC0" and lic.source.endswith("drumkit.xml (<license>)")


def _entry(path: str, **kw) -> P.ManifestEntry:
    base = dict(path=path, source="sonic-pi", duration_s=1.5, sample_rate=SR, channels=2,
                licence="CC0", licence_source="/usr/share/doc/x/copyright (Files: *)",
                copyright="2013 Someone", origin="/usr/share/x.flac", seed=None,
                cutoff_hz=21000.0, full_band=True, extra={"kit": "K"})  # fmt: skip
    return P.ManifestEntry(**{**base, **kw})


def test_manifest_round_trip_and_licence_required(tmp_path):
    entries = [_entry("a.flac"), _entry("b/c.flac", seed=3, full_band=False, extra={})]
    P.write_manifest(tmp_path / "manifest.jsonl", entries)
    assert P.read_manifest(tmp_path / "manifest.jsonl") == entries
    assert not list(tmp_path.glob("*.part")), "atomic write leaves no temp file"
    with pytest.raises(P.CorpusError, match="no licence"):
        P.write_manifest(tmp_path / "m2.jsonl", [_entry("x.flac", licence="")])
    row = json.dumps({**json.loads(json.dumps(entries[0].__dict__)), "licence_source": ""})
    (tmp_path / "m3.jsonl").write_text(row + "\n")
    with pytest.raises(P.CorpusError, match="no licence"):
        P.read_manifest(tmp_path / "m3.jsonl")


# ---------------------------------------------------------------- missing packages


def _nowhere(tmp_path: Path) -> P.SystemPaths:
    gone = tmp_path / "not-installed"
    return P.SystemPaths(
        sonic_pi_samples=gone / "samples", sonic_pi_copyright=gone / "c1",
        hydrogen_drumkits=gone / "drumkits", hydrogen_copyright=gone / "c2",
        soundfonts=gone / "sf2", avldrums_copyright=gone / "c3",
        fluidsynth="fluidsynth-not-installed-xyz",
    )  # fmt: skip


def test_missing_package_names_package_and_install_command(tmp_path):
    paths = _nowhere(tmp_path)
    missing = P.missing_requirements("avldrums", paths)
    assert [r.package for r in missing] == ["avldrums.lv2-soundfont", "fluidsynth"]
    message = P.missing_message("avldrums", missing)
    assert "fluidsynth-not-installed-xyz" in message
    assert "apt-get install -y avldrums.lv2-soundfont fluidsynth" in message
    with pytest.raises(P.CorpusError) as err:
        P.prepare_corpus(tmp_path / "out", paths=paths, progress=False)
    text = str(err.value)
    assert "no corpus source is available" in text
    assert "apt-get install -y avldrums.lv2-soundfont fluidsynth hydrogen-drumkits " \
        "sonic-pi-samples" in text  # fmt: skip
    with pytest.raises(P.CorpusError, match="unknown source"):
        P.prepare_corpus(tmp_path / "out", sources=["napster"], paths=paths, progress=False)


def _noise(seconds, cutoff_hz=None, channels=1, seed=0, sr=SR):
    x = 0.1 * np.random.default_rng(seed).standard_normal((channels, int(seconds * sr)))
    if cutoff_hz is not None:
        x = signal.sosfiltfilt(signal.butter(12, cutoff_hz, fs=sr, output="sos"), x, axis=-1)
    return x.astype(np.float32)


def test_builds_available_sources_skips_missing_and_is_idempotent(tmp_path, capsys):
    paths = _nowhere(tmp_path)
    samples = tmp_path / "samples"
    write_audio(samples / "bd_boom.flac", _noise(0.5), SR)
    write_audio(samples / "loop_x.flac", _noise(1.0, channels=2, seed=1), SR)
    drumkits = tmp_path / "drumkits"
    xml = "<drumkit_info><name>{0}</name><license>CC0</license></drumkit_info>"
    for kit, cutoff in [("Bright Kit", None), ("Dull Kit", 11000.0)]:
        (drumkits / kit).mkdir(parents=True)
        (drumkits / kit / "drumkit.xml").write_text(xml.format(kit))
        for i in range(3):
            write_audio(
                drumkits / kit / f"hit {i}.wav", _noise(0.3, cutoff, seed=i, sr=48000), 48000
            )
    (tmp_path / "c1").write_text(COPYRIGHT)
    paths = replace(paths, sonic_pi_samples=samples, sonic_pi_copyright=tmp_path / "c1",
                    hydrogen_drumkits=drumkits)  # fmt: skip
    out = tmp_path / "corpus"

    summary = P.prepare_corpus(out, paths=paths, progress=False)
    err = capsys.readouterr().err
    assert "source 'avldrums' skipped" in err and "apt-get install -y" in err
    entries = P.read_manifest(out / P.MANIFEST)
    assert {e.path for e in entries} == {
        "sonic-pi/bd_boom.flac", "sonic-pi/loop_x.flac",
        "hydrogen/Bright_Kit/hit_0.flac", "hydrogen/Bright_Kit/hit_1.flac",
        "hydrogen/Bright_Kit/hit_2.flac",
    }  # fmt: skip
    by_path = {e.path: e for e in entries}
    assert by_path["sonic-pi/bd_boom.flac"].licence == "CC0"  # its own stanza
    assert by_path["sonic-pi/loop_x.flac"].licence == "MIT"  # falls under Files: *
    hit = by_path["hydrogen/Bright_Kit/hit_0.flac"]
    assert hit.licence == "CC0" and hit.extra["source_sample_rate"] == 48000
    assert hit.full_band and hit.cutoff_hz >= P.FULL_BAND_HZ
    audio, sr = read_audio(out / hit.path)
    assert sr == SR and audio.shape == (1, round(0.3 * SR))
    assert by_path["sonic-pi/loop_x.flac"].channels == 2
    (excluded,) = [json.loads(x) for x in (out / P.EXCLUDED).read_text().splitlines()]
    assert excluded["kit"] == "Dull Kit" and "band-limited" in excluded["reason"]
    assert not (out / "hydrogen" / "Dull_Kit").exists()
    assert summary.minutes("sonic-pi") == pytest.approx(1.5 / 60, abs=1e-4)

    # A rerun rewrites nothing and yields the same manifest, even without the sources
    # that built it (a run with fewer packages keeps earlier files).
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    P.prepare_corpus(out, sources=["sonic-pi"], paths=paths, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")} == mtimes
    assert sorted(P.read_manifest(out / P.MANIFEST), key=lambda e: e.path) == sorted(
        entries, key=lambda e: e.path
    )
    assert [x["original"] for x in P._read_jsonl(out / P.EXCLUDED)] == [
        str(drumkits / "Dull Kit")
    ], "exclusions of sources not rebuilt are kept too"

    # Killed before the manifest was written: files are measured again, not rewritten.
    # An entry made from something else (another seed) is remade. Audio that is not in
    # the manifest is reported, since a folder scan would train on it.
    (out / P.MANIFEST).unlink()
    write_audio(out / "sonic-pi" / "stray.flac", _noise(0.1), SR)
    summary = P.prepare_corpus(out, sources=["sonic-pi"], paths=paths, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac") if p.stem != "stray"} == mtimes
    assert {e.path for e in summary.entries} == {"sonic-pi/bd_boom.flac", "sonic-pi/loop_x.flac"}
    # (The hydrogen files too: the manifest that listed them is gone.)
    assert summary.stale == [*(f"hydrogen/Bright_Kit/hit_{i}.flac" for i in range(3)),
                             "sonic-pi/stray.flac"]  # fmt: skip
    assert "not in the manifest" in summary.report()
    rows = [json.loads(x) for x in (out / P.MANIFEST).read_text().splitlines()]
    rows[0]["origin"] = "something else"
    P.write_jsonl(out / P.MANIFEST, rows)
    P.prepare_corpus(out, sources=["sonic-pi"], paths=paths, progress=False)
    remade = out / rows[0]["path"]
    assert remade.stat().st_mtime_ns != mtimes[remade]


# ----------------------------------------------------------------------- fluidsynth


def _soundfont() -> Path | None:
    paths = P.SystemPaths()
    fonts = sorted(paths.soundfonts.glob(paths.soundfont_glob))
    return fonts[0] if fonts else None


def test_fluidsynth_renders_full_band_groove():
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed (apt-get install -y fluidsynth)")
    font = _soundfont()
    if font is None:
        pytest.skip("AVL drum soundfont not installed (apt-get install -y avldrums.lv2-soundfont)")
    groove = P.generate_groove(seed=3, duration_s=2.0)
    audio = P.render_midi(groove.midi(), font)
    assert audio.shape[0] == 2 and audio.shape[1] >= 2 * SR
    two = audio[:, : 2 * SR]
    assert np.sqrt(np.mean(two**2)) > 1e-3, "render is silent"
    assert cutoff_frequency(two, SR) >= P.FULL_BAND_HZ
    finished = P._finish_render(audio, -1.0)
    assert np.abs(finished).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
