"""Standard MIDI Files for the composers, written with ``mido``.

A piece is a list of :class:`Note` (absolute ticks) per :class:`Voice` (a MIDI channel
with its instrument, level, pan and effect sends). :func:`midi_file` writes a format-1
file: a conductor track (tempo, metre) and one track per voice, which is what
fluidsynth and every sequencer read.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import mido

PPQ = 480  # ticks per quarter note
DRUM_CHANNEL = 9  # General MIDI percussion (channel 10, 0-based 9)
# General MIDI level 1 instrument families, eight programs each.
FAMILIES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings",
            "ensemble", "brass", "reed", "pipe", "synth lead", "synth pad", "synth effects",
            "ethnic", "percussive", "sound effects")  # fmt: skip


def family(program: int) -> str:
    """The General MIDI family of a 0-based program number."""
    return FAMILIES[program // 8]


@dataclass(frozen=True)
class Note:
    """One note: start (ticks), key, velocity (1..127), length (ticks)."""

    tick: int
    key: int
    velocity: int
    duration: int


@dataclass(frozen=True)
class Voice:
    """A MIDI channel and its set-up. On channel 9 ``program`` picks a GM drum kit."""

    name: str
    channel: int
    program: int
    notes: tuple[Note, ...]
    volume: int = 100  # CC7
    pan: int = 64  # CC10: 0 left, 64 centre, 127 right
    reverb: int = 0  # CC91 send
    chorus: int = 0  # CC93 send


def _note_events(voice: Voice) -> list[tuple[int, int, mido.Message]]:
    """(tick, order, message) for the notes; a release never cuts a later note of its key."""
    events = []
    notes = sorted(voice.notes, key=lambda n: (n.tick, n.key))
    next_on: dict[int, int] = {}
    offs = [0] * len(notes)
    for i in range(len(notes) - 1, -1, -1):
        n = notes[i]
        offs[i] = min(n.tick + n.duration, next_on.get(n.key, n.tick + n.duration))
        next_on[n.key] = n.tick
    for n, off in zip(notes, offs, strict=True):
        velocity = int(min(max(n.velocity, 1), 127))
        # Note-offs sort before note-ons at the same tick (order 1 < 2).
        events.append((n.tick, 2, mido.Message("note_on", channel=voice.channel, note=n.key,
                                               velocity=velocity)))  # fmt: skip
        events.append((max(off, n.tick + 1), 1,
                       mido.Message("note_off", channel=voice.channel, note=n.key)))  # fmt: skip
    return events


def _voice_track(voice: Voice, end_tick: int) -> mido.MidiTrack:
    ch = voice.channel
    setup = [mido.MetaMessage("track_name", name=voice.name)]
    if ch != DRUM_CHANNEL:
        # Bank 0 explicitly: a soundfont's presets live in banks, and the drum channel's
        # bank (128) is the synthesizer's business.
        setup += [
            mido.Message("control_change", channel=ch, control=0, value=0),
            mido.Message("control_change", channel=ch, control=32, value=0),
        ]
    setup += [
        mido.Message("program_change", channel=ch, program=voice.program),
        mido.Message("control_change", channel=ch, control=7, value=voice.volume),
        mido.Message("control_change", channel=ch, control=10, value=voice.pan),
        mido.Message("control_change", channel=ch, control=91, value=voice.reverb),
        mido.Message("control_change", channel=ch, control=93, value=voice.chorus),
    ]
    events = [(0, 0, m) for m in setup] + _note_events(voice)
    return _track(events, end_tick)


def _track(events: list[tuple[int, int, mido.Message]], end_tick: int) -> mido.MidiTrack:
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = mido.MidiTrack(), 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    return track


def midi_file(
    voices: Sequence[Voice],
    bpm: float,
    end_tick: int,
    beats_per_bar: int = 4,
    ppq: int = PPQ,
) -> bytes:
    """A format-1 Standard MIDI File playing ``voices`` at ``bpm``, ending at ``end_tick``."""
    conductor = [
        (0, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))),
        (0, 0, mido.MetaMessage("time_signature", numerator=beats_per_bar, denominator=4)),
    ]
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    mid.tracks.append(_track(conductor, end_tick))
    for voice in voices:
        mid.tracks.append(_voice_track(voice, end_tick))
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def read_midi(data: bytes) -> mido.MidiFile:
    """Parse Standard MIDI File bytes (for checks and tests)."""
    return mido.MidiFile(file=io.BytesIO(data))
