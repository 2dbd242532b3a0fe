"""Tests of mp3gan.data.corpus.build: the registry's sources built on a fake Debian system.

Everything runs on the tree and fake programs of ``fake_debian`` (no Debian packages,
no network): licences and kinds in every manifest row, skipped sources, failing renders
reported by name with nothing half-written, idempotent reruns, and the split by recording.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from fake_debian import FakeDebian, noise

from mp3gan.audio import MODEL_SAMPLE_RATE, read_audio, write_audio
from mp3gan.data import corpus as C
from mp3gan.data import sources
from mp3gan.data.corpus import items as I
from mp3gan.data.corpus.licences import Licence
from mp3gan.data.corpus.manifest import read_jsonl, write_jsonl

SR = MODEL_SAMPLE_RATE
MINUTES = {"avldrums": 1.0, "songs": 4.0}


@pytest.fixture
def debian(tmp_path):
    fake = FakeDebian(tmp_path / "system")
    fake.install_all()
    return fake


def _build(debian, out, **kw):
    kw = {"minutes": MINUTES, "paths": debian.paths, "progress": False, **kw}
    return C.prepare_corpus(out, **kw)


def test_every_source_builds_and_every_row_has_a_licence_and_kind(debian, tmp_path, capsys):
    out = tmp_path / "corpus"
    summary = _build(debian, out)
    entries = C.read_manifest(out / C.MANIFEST)
    assert {e.source for e in entries} == set(C.SOURCES)
    for e in entries:
        assert e.licence and e.licence_source and e.copyright, e.path
        assert e.kind in C.KINDS, e.path
        assert (out / e.path).is_file()
        assert read_audio(out / e.path)[1] == SR
    kinds = {e.source: {x.kind for x in entries if x.source == e.source} for e in entries}
    assert kinds == {"sonic-pi": {"drums", "one-shot"}, "hydrogen": {"one-shot"},
                     "avldrums": {"drums"}, "songs": {"music"}, "lmms": {"music"}}  # fmt: skip
    by_path = {e.path: e for e in entries}
    assert by_path["sonic-pi/bd_boom.flac"].licence == "CC0"  # its own stanza
    assert by_path["sonic-pi/loop_x.flac"].licence == "MIT"  # falls under Files: *
    good = by_path["lmms/demos/Good-Song.flac"]
    assert good.licence == "Artistic-2" and good.copyright == "2011 Good Author"
    assert good.project.endswith("demos/Good-Song.mmpz") and good.extra["author"] == "Good"
    assert good.extra["vorbis_samples"] == ["drums/kick01.ogg"]
    assert by_path["lmms/shorties/Short-Snip.flac"].licence == "CC-BY-SA-4"
    songs = [e for e in entries if e.source == "songs"]
    assert songs and all(e.seed is not None and e.extra["parts"] for e in songs)
    assert {e.licence for e in songs} <= {"MIT (parts PD or CC0)", "MIT", "GPL-2"}
    assert not any("tutorials" in e.path or "lesson" in e.path for e in entries)
    assert summary.minutes(kind="music") > 0 and "kind music" in summary.report()
    assert "| `songs` | music |" in summary.markdown()


def test_a_failing_render_is_reported_by_name_and_leaves_nothing(debian, tmp_path, capsys):
    out = tmp_path / "corpus"
    _build(debian, out, sources=["lmms"])
    err = capsys.readouterr().err
    excluded = {x["original"]: x["reason"] for x in read_jsonl(out / C.EXCLUDED)}
    broken = str(debian.share("lmms", "projects", "demos", "Broken-Song.mmp"))
    crash = str(debian.share("lmms", "projects", "demos", "Crash-Song.mmpz"))
    assert "exit status 3" in excluded[f"{broken} rendered by lmms"]
    assert "SIGSEGV" in excluded[f"{crash} rendered by lmms"]
    assert "Broken-Song.mmp" in err and "Crash-Song.mmpz" in err
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert written == ["Good-Song.flac", "Short-Snip.flac", "excluded.jsonl", "manifest.jsonl"]


def test_hydrogen_takes_only_the_kits_of_hydrogen_drumkits(debian, tmp_path):
    out = tmp_path / "corpus"
    _build(debian, out, sources=["hydrogen"])
    paths = {e.path for e in C.read_manifest(out / C.MANIFEST)}
    assert paths == {f"hydrogen/Bright_Kit/hit_{i}.flac" for i in range(3)}
    (excluded,) = read_jsonl(out / C.EXCLUDED)
    assert excluded["kit"] == "Dull Kit" and "band-limited" in excluded["reason"]


def test_missing_packages_are_named_with_the_install_command(debian, tmp_path, capsys):
    debian.remove("hydrogen-drumkits")  # files stay, as after "apt-get remove"
    debian.remove("fluidsynth")
    _build(debian, tmp_path / "corpus", sources=["sonic-pi", "hydrogen", "songs"])
    err = capsys.readouterr().err
    assert "source 'hydrogen' skipped: missing Debian package 'hydrogen-drumkits' " \
        "(not installed" in err  # fmt: skip
    assert "source 'songs' skipped" in err and "apt-get install -y fluidsynth" in err
    for name in ("sonic-pi-samples", "lmms-common"):
        debian.remove(name)
    debian.remove("lmms")
    with pytest.raises(C.CorpusError, match="no corpus source is available") as e:
        _build(debian, tmp_path / "c2", sources=["sonic-pi", "lmms"])
    assert "apt-get install -y lmms lmms-common sonic-pi-samples" in str(e.value)
    with pytest.raises(C.CorpusError, match="unknown source 'napster'"):
        _build(debian, tmp_path / "c3", sources=["napster"])


def test_reruns_rewrite_nothing_and_keep_what_they_do_not_rebuild(debian, tmp_path, capsys):
    out = tmp_path / "corpus"
    first = _build(debian, out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    excluded = read_jsonl(out / C.EXCLUDED)
    # A rerun of one source rewrites nothing and keeps every other source's files.
    _build(debian, out, sources=["sonic-pi"])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")} == mtimes
    key = lambda e: e.path  # noqa: E731
    assert sorted(C.read_manifest(out / C.MANIFEST), key=key) == sorted(first.entries, key=key)
    assert read_jsonl(out / C.EXCLUDED) == excluded
    # A full rerun does not judge again what it left out as band-limited, but it tries
    # again what failed (a render can be flaky), and names the new failure.
    calls = debian.tmp / "lmms-calls"
    (debian.bin / "lmms").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 99\n')
    again = _build(debian, out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")} == mtimes
    assert sorted(x["original"] for x in again.excluded) == sorted(x["original"] for x in excluded)
    tried = sorted(Path(x).name for x in calls.read_text().split() if ".mmp" in x)
    assert tried == ["Broken-Song.mmp", "Crash-Song.mmpz"]
    assert all("exit status 99" in x["reason"] for x in again.excluded if x["source"] == "lmms")
    # Killed before the manifest was written: files are measured again, not rewritten;
    # audio that is not in the manifest is reported (a folder scan would train on it).
    (out / C.MANIFEST).unlink()
    write_audio(out / "sonic-pi" / "stray.flac", noise(0.1), SR)
    summary = _build(debian, out, sources=["sonic-pi"])
    assert {p: t for p, t in mtimes.items() if "sonic-pi" in str(p)} == {
        p: p.stat().st_mtime_ns for p in out.rglob("*.flac") if "sonic-pi" in str(p)
        and p.stem != "stray"
    }  # fmt: skip
    assert "sonic-pi/stray.flac" in summary.stale and "not in the manifest" in summary.report()
    # An entry made from something else (another seed) is made again.
    rows = read_jsonl(out / C.MANIFEST)
    rows[0]["origin"] = "something else"
    write_jsonl(out / C.MANIFEST, rows)
    _build(debian, out, sources=["sonic-pi"])
    assert (out / rows[0]["path"]).stat().st_mtime_ns != mtimes[out / rows[0]["path"]]


def test_a_rendered_song_never_feeds_two_splits(debian, tmp_path):
    out = tmp_path / "corpus"
    _build(debian, out, minutes={"avldrums": 2.0, "songs": 12.0})
    entries = {e.path: e for e in C.read_manifest(out / C.MANIFEST)}
    recordings = sources.scan_folder(out, index_file=tmp_path / "index.jsonl")
    splits = sources.split_recordings(recordings, 0.2, 0.2)
    where = defaultdict(set)  # the song (seed or project) -> splits it feeds
    for split, members in splits.items():
        for r in members:
            e = entries[r.path]
            assert r.kind == e.kind and r.source == e.source and r.licence == e.licence
            if e.seed is not None or e.project is not None:
                where[(e.source, e.seed, e.project)].add(split)
    rendered = [e for e in entries.values() if e.source in ("songs", "avldrums", "lmms")]
    assert len(where) == len(rendered) >= 10, "one file per song"
    assert all(len(s) == 1 for s in where.values())
    assert len({s for v in where.values() for s in v}) >= 2, "songs feed several splits"


def test_band_limited_renders_and_silence_are_left_out(tmp_path):
    class Bar:
        def update(self, n):
            pass

    run = I.Run(tmp_path, {}, C.MIN_SOURCE_CUTOFF_HZ, Bar())
    lic = Licence("MIT", "here")
    dull = noise(2.0, cutoff_hz=9000.0, channels=2)
    for name, audio in [("dull", dull), ("silent", np.zeros((2, SR), np.float32))]:
        item = I.Item(f"songs/{name}.flac", "songs", "music", lic, name,
                      lambda a=audio: (a, {}), full_band_only=True)  # fmt: skip
        run.emit(item)
    kept = I.Item("one/dull.flac", "sonic-pi", "one-shot", lic, "kept", lambda: (dull, {}))
    run.emit(kept)
    assert [x["reason"].split(":")[0] for x in run.excluded] == ["band-limited", "silent"]
    assert [(e.path, e.full_band) for e in run.entries] == [("one/dull.flac", False)]
    assert sorted(p.name for p in tmp_path.rglob("*.flac")) == ["dull.flac"]
    assert json.loads(json.dumps(run.excluded[0]))["cutoff_hz"] < 12000
