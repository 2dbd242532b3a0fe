"""The drum sources: Sonic Pi's samples, Hydrogen's drum kits, AVL drum grooves.

* ``sonic-pi`` (``sonic-pi-samples``): CC0/MIT loops and one-shots, FLAC 44.1 kHz.
* ``hydrogen`` (``hydrogen-drumkits``): 14 drum kits of one-shots, licence per kit. Kits
  recorded through a band-limited chain are measured and left out.
* ``avldrums`` (``avldrums.lv2-soundfont`` + ``fluidsynth``): drum grooves generated here
  (:mod:`mp3gan.data.corpus.grooves`) and rendered with real recorded drum samples.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from mp3gan.data.corpus.grooves import generate_groove, groove_plan
from mp3gan.data.corpus.items import Context, Item, Run, Source, load_44k, measure_cutoff, slug
from mp3gan.data.corpus.items import audio_files as _audio_files
from mp3gan.data.corpus.licences import Licence, dep5_licence, licence_for, read_stanzas
from mp3gan.data.corpus.licences import stanza_licence as _stanza_licence
from mp3gan.data.corpus.packages import (
    SystemPaths,
    file_requirement,
    package_files,
    program_requirement,
)
from mp3gan.data.corpus.render import midi_loader

# A Hydrogen kit is left out as band-limited (its recording chain, not its instruments)
# when more than this fraction of its files show a cutoff below the full-band limit.
KIT_BANDLIMITED_FRACTION = 0.25
DEFAULT_GROOVE_MINUTES = 20.0
AVL_GLOB = "*_LV2.sf2"


def _file_loader(path: Path):
    return lambda: load_44k(path)


# ------------------------------------------------------------------------------ sonic-pi


def _sonic_pi_samples(paths: SystemPaths) -> Path:
    return paths.share("sonic-pi", "samples")


def _build_sonic_pi(ctx: Context, run: Run) -> None:
    copyright_file = ctx.paths.copyright("sonic-pi-samples")
    for f in sorted(_sonic_pi_samples(ctx.paths).glob("*.flac")):
        # The Debian copyright file names the upstream tree (etc/samples/*.flac).
        lic = dep5_licence(copyright_file, [f"etc/samples/{f.name}"])
        if lic is None:
            run.bar.update(1)
            run.exclude("sonic-pi", str(f), "no licence found")
            continue
        # Its loops are drum and percussion loops (a few melodic); the rest single sounds.
        kind = "drums" if f.name.startswith("loop_") else "one-shot"
        rel = f"sonic-pi/{slug(f.stem)}.flac"
        run.emit(Item(rel, "sonic-pi", kind, lic, str(f), _file_loader(f)))


SONIC_PI = Source(
    name="sonic-pi",
    summary="Sonic Pi's loops and one-shots (CC0, MIT)",
    requirements=lambda p: [file_requirement("sonic-pi-samples", _sonic_pi_samples(p), "*.flac")],
    count=lambda ctx: len(list(_sonic_pi_samples(ctx.paths).glob("*.flac"))),
    build=_build_sonic_pi,
)


# ------------------------------------------------------------------------------ hydrogen


def _drumkits(paths: SystemPaths) -> Path:
    return paths.share("hydrogen", "data", "drumkits")


def _drumkit_info(kit: Path) -> tuple[str, str]:
    """(licence text, author) from a Hydrogen drumkit.xml ('' when absent)."""
    try:
        root = ET.parse(kit / "drumkit.xml").getroot()
    except (ET.ParseError, OSError):
        return "", ""

    def top(tag: str) -> str:
        for child in root:  # top-level only: instruments may carry their own tags
            if child.tag.rsplit("}", 1)[-1] == tag:
                return (child.text or "").strip()
        return ""

    return top("license"), top("author")


def kit_licence(kit: Path, copyright_file: Path) -> Licence | None:
    """A Hydrogen kit's licence: the Debian copyright file first, else its drumkit.xml."""
    xml_licence, author = _drumkit_info(kit)
    # Debian names the upstream archives, e.g. drumkits/circAfrique.h2drumkit for the
    # folder "circAfrique v4": try the folder name, then without a trailing version.
    names = [kit.name, re.sub(r"[\s_-]+v?[\d.]+$", "", kit.name)]
    stanza = licence_for(read_stanzas(copyright_file), [f"drumkits/{n}.h2drumkit" for n in names])
    found = _stanza_licence(stanza, copyright_file)
    if found is not None:
        return Licence(found.licence, found.source, found.copyright, note=xml_licence)
    if xml_licence:
        return Licence(xml_licence, f"{kit / 'drumkit.xml'} (<license>)", author)
    return None


def hydrogen_kits(paths: SystemPaths) -> list[Path]:
    """The kits ``hydrogen-drumkits`` installed (not the ``hydrogen`` program's own two,
    which share the folder), by dpkg's file list; every kit there without dpkg."""
    kits = sorted(p.parent for p in _drumkits(paths).glob("*/drumkit.xml"))
    owned = package_files("hydrogen-drumkits", paths.dpkg_query)
    if owned is None:
        return kits
    return [k for k in kits if str(k / "drumkit.xml") in owned]


def _kit_is_band_limited(run: Run, kit: Path, files: list[Path], lic: Licence) -> bool:
    """Judge a kit before writing any of it: cymbals cut off well below their natural
    bandwidth mean the recording chain was band-limited, and then its other, duller
    sounds are too, even where the metric cannot see it."""
    cutoffs = [measure_cutoff(load_44k(f)[0]) for f in files]
    low = [c for c in cutoffs if c is not None and c < run.min_cutoff_hz]
    fraction = len(low) / max(1, sum(c is not None for c in cutoffs))
    if fraction <= KIT_BANDLIMITED_FRACTION:
        return False
    run.exclude(
        "hydrogen", str(kit),
        f"band-limited kit: {len(low)} of {len(files)} files cut off below "
        f"{run.min_cutoff_hz:.0f} Hz (median of those {np.median(low):.0f} Hz)",
        kit=kit.name, licence=lic.licence, files=len(files),
        cutoff_hz_median_low=round(float(np.median(low)), 1),
    )  # fmt: skip
    return True


def _build_hydrogen(ctx: Context, run: Run) -> None:
    for kit in hydrogen_kits(ctx.paths):
        files = _audio_files(kit)
        rels = [f"hydrogen/{slug(kit.name)}/{slug(f.stem)}.flac" for f in files]
        lic = kit_licence(kit, ctx.paths.copyright("hydrogen-drumkits"))
        if lic is None:
            run.bar.update(len(files))
            run.exclude("hydrogen", str(kit), "no licence found", kit=kit.name)
            continue
        built_before = any(r in run.known for r in rels)
        if not built_before and str(kit) in run.known_excluded:  # judged by an earlier run
            run.bar.update(len(files))
            run.excluded.append(run.known_excluded[str(kit)])
            continue
        if not built_before and _kit_is_band_limited(run, kit, files, lic):
            run.bar.update(len(files))
            continue
        for f, rel in zip(files, rels, strict=True):
            item = Item(rel, "hydrogen", "one-shot", lic, str(f), _file_loader(f))
            item.extra = {"kit": kit.name}
            run.emit(item)


HYDROGEN = Source(
    name="hydrogen",
    summary="Hydrogen's drum kits: one-shots at several velocities (GPL-2, CC-BY(-SA), CC0)",
    requirements=lambda p: [file_requirement("hydrogen-drumkits", _drumkits(p), "*/drumkit.xml")],
    count=lambda ctx: sum(len(_audio_files(k)) for k in hydrogen_kits(ctx.paths)),
    build=_build_hydrogen,
)


# ------------------------------------------------------------------------------ avldrums


def _avl_fonts(paths: SystemPaths) -> list[Path]:
    return sorted(paths.share("sounds", "sf2").glob(AVL_GLOB))


def _build_avldrums(ctx: Context, run: Run) -> None:
    fonts = _avl_fonts(ctx.paths)
    copyright_file = ctx.paths.copyright("avldrums.lv2-soundfont")
    minutes = ctx.minutes.get("avldrums", DEFAULT_GROOVE_MINUTES)
    for index, (gseed, duration) in enumerate(groove_plan(ctx.seed, minutes)):
        rng = np.random.default_rng([gseed, 1])
        font = fonts[int(rng.integers(len(fonts)))]
        peak_db = float(rng.uniform(-6.0, -1.0))  # varied levels, as in real mixes
        lic = dep5_licence(copyright_file, [f"sf2/{font.name}"])
        if lic is None:
            run.bar.update(1)
            run.exclude("avldrums", str(font), "no licence found")
            continue
        groove = generate_groove(gseed, duration)
        kit = font.stem.removesuffix("_LV2")
        origin = (f"generate_groove(seed={gseed}, duration_s={duration!r}) "
                  f"rendered by fluidsynth with {font}")  # fmt: skip
        item = Item(
            rel=f"avldrums/{slug(kit)}/groove_{index:04d}_{groove.style}_{groove.bpm}bpm.flac",
            source="avldrums",
            kind="drums",
            licence=lic,
            origin=origin,
            load=midi_loader(groove.midi, font, peak_db, ctx.paths.fluidsynth, name=origin),
            seed=gseed,
            extra={
                "kit": kit,
                "bpm": groove.bpm,
                "style": groove.style,
                "bars": groove.bars,
                "peak_dbfs": round(peak_db, 2),
            },  # fmt: skip
        )
        run.emit(item)


AVLDRUMS = Source(
    name="avldrums",
    summary="drum grooves generated here, rendered with the AVL drum kits (CC-BY-SA-3.0)",
    requirements=lambda p: [
        file_requirement("avldrums.lv2-soundfont", p.share("sounds", "sf2"), AVL_GLOB),
        program_requirement("fluidsynth", p.fluidsynth),
    ],
    count=lambda ctx: len(
        groove_plan(ctx.seed, ctx.minutes.get("avldrums", DEFAULT_GROOVE_MINUTES))
    ),
    build=_build_avldrums,
)
