"""Tests of the corpus composers, on the MIDI they write (mido): grooves and songs.

No audio: what is checked is the Standard MIDI File each composer hands to the renderer.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import mido
import pytest

from mp3gan.data.corpus import grooves as G
from mp3gan.data.corpus import songs as S
from mp3gan.data.corpus.midi import DRUM_CHANNEL, PPQ, Note, Voice, midi_file, read_midi


def _events(data: bytes) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) over all tracks, sorted by tick."""
    out = []
    for track in read_midi(data).tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            out.append((tick, msg))
    return sorted(out, key=lambda e: e[0])


def _programs(data: bytes) -> dict[int, int]:
    return {m.channel: m.program for _, m in _events(data) if m.type == "program_change"}


def _sounding(data: bytes) -> list[tuple[int, int, int, int]]:
    """(start, end, channel, key) of every note in the file."""
    open_notes, notes = {}, []
    for tick, m in _events(data):
        if m.type == "note_on" and m.velocity > 0:
            open_notes[(m.channel, m.note)] = tick
        elif m.type in ("note_off", "note_on") and (m.channel, m.note) in open_notes:
            notes.append((open_notes.pop((m.channel, m.note)), tick, m.channel, m.note))
    assert not open_notes, "every note is released"
    return notes


# ------------------------------------------------------------------------------ MIDI


def test_midi_file_has_tempo_metre_setup_and_balanced_notes():
    notes = (Note(0, 60, 100, 240), Note(480, 64, 90, 960))
    voice = Voice("lead", channel=2, program=73, notes=notes, volume=90, pan=30, reverb=40)
    data = midi_file([voice], bpm=96, end_tick=4 * PPQ, beats_per_bar=3)
    mid = read_midi(data)
    assert mid.type == 1 and mid.ticks_per_beat == PPQ and len(mid.tracks) == 2
    meta = {m.type: m for _, m in _events(data) if m.is_meta}
    assert round(mido.tempo2bpm(meta["set_tempo"].tempo)) == 96
    assert meta["time_signature"].numerator == 3
    controls = {m.control: m.value for _, m in _events(data) if m.type == "control_change"}
    assert controls == {0: 0, 32: 0, 7: 90, 10: 30, 91: 40, 93: 0}
    assert _programs(data) == {2: 73}
    assert _sounding(data) == [(0, 240, 2, 60), (480, 1440, 2, 64)]
    assert mid.tracks[1][-1].type == "end_of_track"


def test_a_release_never_cuts_the_next_note_of_the_same_key():
    notes = (Note(0, 38, 100, 60), Note(10, 38, 90, 60), Note(500, 42, 80, 60))
    data = midi_file([Voice("drums", 0, 0, notes)], bpm=120, end_tick=1000)
    assert _sounding(data) == [(0, 10, 0, 38), (10, 70, 0, 38), (500, 560, 0, 42)]


def test_drum_channel_gets_no_bank_select():
    data = midi_file([Voice("drums", DRUM_CHANNEL, 25, (Note(0, 36, 100, 60),))], 120, 480)
    assert not [m for _, m in _events(data) if m.type == "control_change" and m.control == 0]
    assert _programs(data) == {DRUM_CHANNEL: 25}


# --------------------------------------------------------------------------- grooves


def test_groove_is_deterministic_varied_and_plays_on_channel_0():
    a, b = G.generate_groove(123, 30.0), G.generate_groove(123, 30.0)
    assert a == b and a.midi() == b.midi()
    grooves = [G.generate_groove(s, 30.0) for s in range(40)]
    assert len({g.hits for g in grooves}) == 40
    assert all(70 <= g.bpm <= 180 for g in grooves)
    assert len({g.style for g in grooves}) >= 5
    for g in grooves:
        keys = {h.key for h in g.hits}
        assert G.KICK in keys and keys & {G.SNARE, G.SNARE_EDGE, G.CLAP}
        assert keys & {G.CRASH1, G.CRASH2, G.CRASH3}, "every groove ends on a crash"
        assert abs(g.duration_s - G.TAIL_S - 30.0) < 240 / g.bpm  # whole bars
    notes = _sounding(grooves[0].midi())
    assert len(notes) == len(grooves[0].hits) and {c for _, _, c, _ in notes} == {0}
    assert _programs(grooves[0].midi()) == {0: 0}


def test_plans_are_seeded_and_prefix_stable():
    short, long = G.groove_plan(5, 2.0), G.groove_plan(5, 6.0)
    assert long[: len(short)] == short, "more minutes extend the same sequence"
    assert sum(d for _, d in short) >= 120 and G.groove_plan(6, 2.0) != short
    songs = S.song_plan(5, 10.0)
    assert all(60 <= d <= 180 for _, d in songs) and S.song_plan(5, 20.0)[: len(songs)] == songs


# ----------------------------------------------------------------------------- songs


@pytest.fixture(scope="module")
def songs():
    return [S.compose_song(seed, 60.0) for seed in range(24)]


def test_song_is_deterministic_per_seed(songs):
    again = S.compose_song(3, 60.0)
    assert again == songs[3] and again.midi() == songs[3].midi()
    assert len({s.midi() for s in songs}) == len(songs)
    assert S.compose_song(3, 90.0).midi() != songs[3].midi()


def test_songs_cover_the_instrument_families_on_the_midi(songs):
    families, roles = Counter(), Counter()
    for song in songs:
        data = song.midi()
        for channel, program in _programs(data).items():
            families["drums" if channel == DRUM_CHANNEL else S.family(program)] += 1
        roles.update(p.role for p in song.parts)
    wanted = {"piano", "guitar", "bass", "strings", "ensemble", "brass", "reed", "pipe",
              "synth lead", "synth pad", "chromatic percussion", "organ", "drums"}  # fmt: skip
    assert wanted <= set(families), set(families)
    assert set(roles) == {"bass", "chords", "pad", "melody", "arpeggio", "drums"}


def test_songs_play_several_parts_at_once_with_their_own_placement(songs):
    for song in songs:
        data = song.midi()
        notes = _sounding(data)
        starts = defaultdict(set)
        for start, end, channel, _ in notes:
            for beat in range(start // PPQ, (end - 1) // PPQ + 1):
                starts[beat].add(channel)
        busiest = max(len(c) for c in starts.values())
        assert busiest >= 3, f"seed {song.seed}: at most {busiest} parts at once"
        assert {c for _, _, c, _ in notes} == {p.voice.channel for p in song.parts}
        pans = {p.voice.pan for p in song.parts if p.role not in ("bass", "drums")}
        assert len(pans) == len([p for p in song.parts if p.role not in ("bass", "drums")])
    assert {s.effects for s in songs} == {True, False}
    assert all(p.voice.reverb > 0 for s in songs if s.effects for p in s.parts)
    assert {s.beats_per_bar for s in songs} == {3, 4} and len({s.mode for s in songs}) >= 4
    assert len({s.tonic for s in songs}) >= 8 and min(s.bpm for s in songs) < 90
    legato = [p.legato for s in songs for p in s.parts if p.role in ("melody", "bass")]
    assert min(legato) < 0.5 < 0.9 < max(legato), "staccato to legato"


def test_notes_stay_in_midi_range_and_in_the_song(songs):
    for song in songs:
        for _, m in _events(song.midi()):
            if m.type == "note_on":
                assert 0 <= m.note <= 127 and 1 <= m.velocity <= 127
        assert max(end for _, end, _, _ in _sounding(song.midi())) <= song.end_tick
        assert 55 <= song.duration_s <= 70
