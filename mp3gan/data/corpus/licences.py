"""Licences of corpus material, read from the packages' Debian copyright files.

Most packages ship a machine-readable copyright file (DEP-5): ``Files:`` stanzas with
glob patterns, ``Copyright:`` and ``License:``; the last stanza matching a path governs it.
A few soundfont packages use free-form text instead; for those we accept a licence only
when the file states it in the exact words we expect (:func:`stated_licence`), so a
package whose terms change is left out rather than mislabelled.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CopyrightStanza:
    """One ``Files:`` paragraph of a machine-readable (DEP-5) debian/copyright file."""

    patterns: tuple[str, ...]
    licence: str
    copyright: str
    upstream: str


@dataclass(frozen=True)
class Licence:
    """A licence as read from a file, and the attribution that goes with it."""

    licence: str
    source: str  # the file (and stanza or statement) it was read from
    copyright: str = ""  # the holders: the attribution CC-BY(-SA) requires
    note: str = ""
    upstream: str = ""


def parse_copyright(text: str) -> list[CopyrightStanza]:
    """Parse the ``Files:`` stanzas of a DEP-5 copyright file, in file order."""
    stanzas = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        name = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and name is not None:
                fields[name].append(line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                fields[name] = [value.strip()]
        if "files" not in fields or "license" not in fields:
            continue
        lines = [v for v in fields.get("copyright", []) if v and v != "."]
        stanzas.append(
            CopyrightStanza(
                patterns=tuple(" ".join(fields["files"]).split()),
                licence=fields["license"][0],
                copyright="; ".join(lines),
                upstream=" ".join(fields.get("source", [])),
            )
        )
    return stanzas


def _dep5_match(pattern: str, path: str) -> bool:
    # DEP-5 globs: '*' matches anything including '/', '?' one character; nothing else.
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, path) is not None


def licence_for(stanzas: Sequence[CopyrightStanza], paths: Iterable[str]) -> CopyrightStanza | None:
    """The stanza governing the first of ``paths`` that any stanza matches (last one wins)."""
    for path in paths:
        matches = [s for s in stanzas if any(_dep5_match(p, path) for p in s.patterns)]
        if matches:
            return matches[-1]
    return None


def read_stanzas(path: str | os.PathLike) -> list[CopyrightStanza]:
    """The stanzas of a copyright file ([] when it does not exist)."""
    path = Path(path)
    return parse_copyright(path.read_text(encoding="utf-8")) if path.is_file() else []


def stanza_licence(stanza: CopyrightStanza | None, copyright_file: Path) -> Licence | None:
    """The :class:`Licence` a stanza gives, citing the file and the stanza's patterns."""
    if stanza is None:
        return None
    where = f"{copyright_file} (Files: {' '.join(stanza.patterns)})"
    return Licence(stanza.licence, where, stanza.copyright, upstream=stanza.upstream)


def dep5_licence(copyright_file: Path, paths: Iterable[str]) -> Licence | None:
    """The licence of the first of ``paths`` (upstream paths) a DEP-5 file covers."""
    return stanza_licence(licence_for(read_stanzas(copyright_file), paths), copyright_file)


def stated_licence(copyright_file: Path, licence: str, statement: str) -> Licence | None:
    """``licence`` if the free-form ``copyright_file`` contains ``statement`` verbatim.

    The attribution is every line of the file that carries a copyright sign or the word
    "Copyright" (whitespace squeezed). None when the file is missing or lacks the words.
    """
    if not copyright_file.is_file():
        return None
    text = copyright_file.read_text(encoding="utf-8")
    if " ".join(statement.split()) not in " ".join(text.split()):
        return None
    holders = [
        " ".join(line.split())
        for line in text.splitlines()
        if ("©" in line or "Copyright " in line) and "debianised" not in line.lower()
    ]
    return Licence(licence, f'{copyright_file} (states: "{statement}")', "; ".join(holders))
