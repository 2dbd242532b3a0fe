"""The registry of corpus sources, and the build: run them, write manifest and exclusions.

Sources whose Debian packages are missing are skipped with the install command printed
(``install=True`` runs apt-get for them first). Reruns skip files already written and
carry earlier judgements forward, so an interrupted build resumes and a finished one
reruns in seconds; the manifest and the list of exclusions are written even when a run
is interrupted, and every file is written atomically.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mp3gan.data.corpus.drums import AVLDRUMS, HYDROGEN, SONIC_PI
from mp3gan.data.corpus.items import AUDIO_EXTENSIONS, MIN_SOURCE_CUTOFF_HZ, Context, Run, Source
from mp3gan.data.corpus.manifest import (
    EXCLUDED,
    KINDS,
    MANIFEST,
    CorpusError,
    ManifestEntry,
    read_jsonl,
    read_manifest,
    write_jsonl,
    write_manifest,
)
from mp3gan.data.corpus.music import LMMS, SONGS
from mp3gan.data.corpus.packages import (
    SystemPaths,
    apt_install,
    install_command,
    missing_message,
    missing_requirements,
)

# The registry: the corpus sources by name, built in this order. Adding a source is one
# entry here (a :class:`~mp3gan.data.corpus.items.Source`: its packages, a file count
# for the progress bar, and a build function).
REGISTRY: dict[str, Source] = {s.name: s for s in (SONIC_PI, HYDROGEN, AVLDRUMS, SONGS, LMMS)}
SOURCES = tuple(REGISTRY)
# Sources that generate as many minutes as asked (``--<name>-minutes``).
GENERATED = ("avldrums", "songs")


@dataclass
class CorpusSummary:
    """What a build produced, per source and kind, and how long each source took."""

    out: Path
    entries: list[ManifestEntry]
    excluded: list[dict[str, Any]]
    skipped_sources: dict[str, str]
    seconds: float
    stale: list[str] = field(default_factory=list)
    source_seconds: dict[str, float] = field(default_factory=dict)

    def minutes(
        self, source: str | None = None, full_band: bool = False, kind: str | None = None
    ) -> float:
        """Minutes of audio (of one source and/or kind; only full-band files if asked)."""
        chosen = [e for e in self.entries if source in (None, e.source) and kind in (None, e.kind)]
        return sum(e.duration_s for e in chosen if e.full_band or not full_band) / 60

    def licences(self, source: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.entries:
            if e.source == source:
                counts[e.licence] = counts.get(e.licence, 0) + 1
        return counts

    def _rows(self) -> list[tuple[str, str, int, float, float, str]]:
        rows = []
        for source in [s for s in SOURCES if any(e.source == s for e in self.entries)]:
            kinds = sorted({e.kind for e in self.entries if e.source == source})
            n = sum(e.source == source for e in self.entries)
            lic = ", ".join(f"{k} ({v})" for k, v in sorted(self.licences(source).items()))
            rows.append((source, "+".join(kinds), n, self.minutes(source),
                         self.minutes(source, full_band=True), lic))  # fmt: skip
        return rows

    def report(self) -> str:
        """The summary as text for a terminal."""
        lines = [f"corpus: {self.out}  ({len(self.entries)} files, {self.seconds:.0f} s)"]
        for source, kinds, n, minutes, full, lic in self._rows():
            took = self.source_seconds.get(source)
            lines.append(f"  {source:9s} {kinds:15s} {n:4d} files {minutes:7.2f} min "
                         f"({full:7.2f} full-band)" + (f" {took:6.0f} s" if took else "")
                         + f"  licences: {lic}")  # fmt: skip
        for kind in KINDS:
            lines.append(f"  kind {kind:9s} {self.minutes(kind=kind):7.2f} min "
                         f"({self.minutes(kind=kind, full_band=True):7.2f} full-band)")  # fmt: skip
        lines.append(
            f"  total     {self.minutes():7.2f} min, full-band (cutoff >= "
            f"{MIN_SOURCE_CUTOFF_HZ:.0f} Hz) {self.minutes(full_band=True):7.2f} min"
        )
        for x in self.excluded:
            lines.append(f"  excluded  {x['source']}: {x.get('kit', x['original'])}: {x['reason']}")
        for why in self.skipped_sources.values():
            lines.append(f"  skipped   {why}")
        if self.stale:
            lines.append(
                f"  warning   {len(self.stale)} audio file(s) under {self.out} are not in the "
                f"manifest (from another seed or older run?) but a folder scan would train on "
                f"them; delete them if unwanted, e.g. {self.stale[0]}"
            )
        return "\n".join(lines)

    def markdown(self) -> str:
        """The per-source table for docs/DATA.md."""
        lines = ["| source | kind | files | minutes | full-band minutes | licences (files) |",
                 "|---|---|---|---|---|---|"]  # fmt: skip
        for source, kinds, n, minutes, full, lic in self._rows():
            lines.append(f"| `{source}` | {kinds} | {n} | {minutes:.2f} | {full:.2f} | {lic} |")
        total = len(self.entries)
        lines.append(f"| **total** | | **{total}** | **{self.minutes():.2f}** | "
                     f"**{self.minutes(full_band=True):.2f}** | |")  # fmt: skip
        return "\n".join(lines)


def _available(
    names: Sequence[str], paths: SystemPaths, install: bool
) -> tuple[list[str], dict[str, str]]:
    """(sources whose packages are here, {skipped source: message}); may apt-get first."""
    unknown = [s for s in names if s not in REGISTRY]
    if unknown:
        raise CorpusError(f"unknown source '{unknown[0]}' (choose from {', '.join(SOURCES)})")
    needs = {s: REGISTRY[s].requirements(paths) for s in names}
    missing = {s: missing_requirements(needs[s], paths) for s in names}
    if install and any(missing.values()):
        apt_install(sorted({m.requirement.package for ms in missing.values() for m in ms}))
        missing = {s: missing_requirements(needs[s], paths) for s in names}
    skipped = {s: missing_message(s, m) for s, m in missing.items() if m}
    for message in skipped.values():
        print(f"warning: {message}", file=sys.stderr)
    available = [s for s in names if not missing[s]]
    if not available:
        packages = [m.requirement.package for ms in missing.values() for m in ms]
        raise CorpusError(
            "no corpus source is available: " + " | ".join(skipped.values())
            + f". Install everything with: {install_command(packages)}"
        )  # fmt: skip
    return available, skipped


def _stale(out: Path, listed: set[str]) -> list[str]:
    """Audio under the sources' folders that the manifest does not list."""
    return sorted(
        p.relative_to(out).as_posix()
        for s in SOURCES
        for p in (out / s).rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.relative_to(out).as_posix() not in listed
    )


def prepare_corpus(
    out: str | os.PathLike = "data/corpus",
    sources: Sequence[str] = SOURCES,
    minutes: dict[str, float] | None = None,
    seed: int = 0,
    install: bool = False,
    min_cutoff_hz: float = MIN_SOURCE_CUTOFF_HZ,
    paths: SystemPaths | None = None,
    progress: bool = True,
) -> CorpusSummary:
    """Build (or complete) the corpus in ``out`` and write its ``manifest.jsonl``.

    ``minutes`` sets how much the generating sources make (``{"avldrums": 20, "songs":
    150}``; missing ones keep their defaults). Deterministic for ``seed`` on the same
    package versions. CorpusError if no requested source is available.
    """
    t0 = time.perf_counter()
    paths, out = paths or SystemPaths(), Path(out)
    available, skipped = _available(list(sources), paths, install)
    ctx = Context(paths, seed, dict(minutes or {}), min_cutoff_hz)
    known = {e.path: e for e in read_manifest(out / MANIFEST)}
    old_excluded = read_jsonl(out / EXCLUDED)
    total = sum(REGISTRY[s].count(ctx) for s in available)
    timings: dict[str, float] = {}
    with tqdm(total=total, unit="file", disable=not progress) as bar:
        run = Run(out, known, min_cutoff_hz, bar, {x["original"]: x for x in old_excluded})
        done: list[str] = []
        try:
            for name in available:
                start = time.perf_counter()
                REGISTRY[name].build(ctx, run)
                timings[name] = time.perf_counter() - start
                done.append(name)
        finally:
            kept, excluded = _merge(out, known, old_excluded, run, done)
            write_manifest(out / MANIFEST, kept + run.entries)
            write_jsonl(out / EXCLUDED, excluded)
    entries = kept + run.entries
    return CorpusSummary(out, entries, excluded, skipped, time.perf_counter() - t0,
                         _stale(out, {e.path for e in entries}), timings)  # fmt: skip


def _merge(
    out: Path,
    known: dict[str, ManifestEntry],
    old_excluded: list[dict[str, Any]],
    run: Run,
    done: list[str],
) -> tuple[list[ManifestEntry], list[dict[str, Any]]]:
    """Earlier entries and exclusions to keep beside this run's.

    A source this run finished replaces its earlier entries; those of sources not run
    (their packages are gone, or not asked for) and, after an error or Ctrl-C, of sources
    not finished are kept while their files exist: a run with fewer packages never
    forgets files, and the rerun after an interruption skips what was made.
    """
    made = {e.path for e in run.entries}
    kept = [
        e
        for e in known.values()
        if e.path not in made and e.source not in done and (out / e.path).is_file()
    ]
    judged = {x["original"] for x in run.excluded}
    excluded = [x for x in old_excluded if x["original"] not in judged and x["source"] not in done]
    return kept, excluded + run.excluded  # fmt: skip
