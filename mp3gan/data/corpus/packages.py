"""What each corpus source needs from Debian, how we check it, and how to install it.

A source's requirement is a Debian package plus the files or program the source reads
from it. It is met when the package manager reports the package installed (``dpkg-query``
status ``installed``) *and* those files are there. Files alone are not proof: a package
can leave look-alikes behind or share a folder with another (the ``hydrogen`` program's
own two kits sit in the folder ``hydrogen-drumkits`` fills, so a folder check let a corpus
be built from 2 kits instead of 14 without a word). On a system without ``dpkg-query``
(not Debian) only the files are checked, and we say so once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SystemPaths:
    """Where Debian puts things and which programs to run (tests point these at fakes)."""

    root: Path = Path("/")  # the tree holding usr/share
    fluidsynth: str = "fluidsynth"
    lmms: str = "lmms"
    dpkg_query: str = "dpkg-query"

    def share(self, *parts: str) -> Path:
        """``<root>/usr/share/<parts>``."""
        return Path(self.root, "usr", "share", *parts)

    def copyright(self, package: str) -> Path:
        """A package's Debian copyright file."""
        return self.share("doc", package, "copyright")


@dataclass(frozen=True)
class Requirement:
    """A Debian package a source needs, what it reads from it, and how to see that it is there."""

    package: str
    what: str  # the files or program the source reads, for messages
    present: Callable[[], bool]  # the files or program exist


def file_requirement(package: str, folder: Path, pattern: str) -> Requirement:
    """``package`` must provide at least one file matching ``folder/pattern``."""
    return Requirement(package, str(folder / pattern), lambda: any(folder.glob(pattern)))


def program_requirement(package: str, program: str) -> Requirement:
    """``package`` must provide the program ``program`` on the PATH (or at that path)."""
    return Requirement(
        package, f"the '{program}' program", lambda: shutil.which(program) is not None
    )


@dataclass(frozen=True)
class Missing:
    """A requirement that is not met, and why."""

    requirement: Requirement
    reason: str


_warned_no_dpkg: set[str] = set()


def installed_packages(packages: Iterable[str], dpkg_query: str = "dpkg-query") -> set[str] | None:
    """The subset of ``packages`` that dpkg reports installed; None without dpkg-query."""
    packages = sorted(set(packages))
    if shutil.which(dpkg_query) is None:
        return None
    # Unknown names print an error on stderr and set rc 1; known ones print a line each.
    result = subprocess.run(
        [dpkg_query, "-W", "-f=${Package}\t${db:Status-Status}\n", *packages],
        capture_output=True,
        text=True,
    )
    installed = set()
    for line in result.stdout.splitlines():
        name, _, status = line.partition("\t")
        if status.strip() == "installed":
            installed.add(name.split(":")[0])  # multi-arch names carry ":amd64"
    return installed


def missing_requirements(requirements: Sequence[Requirement], paths: SystemPaths) -> list[Missing]:
    """The requirements not met here: package not installed, or its files not found."""
    installed = installed_packages([r.package for r in requirements], paths.dpkg_query)
    if installed is None and paths.dpkg_query not in _warned_no_dpkg:
        _warned_no_dpkg.add(paths.dpkg_query)
        print(
            f"warning: '{paths.dpkg_query}' not found (not a Debian system?): checking "
            "for the packages' files only",
            file=sys.stderr,
        )
    missing = []
    for r in requirements:
        if installed is not None and r.package not in installed:
            missing.append(Missing(r, "not installed"))
        elif not r.present():
            missing.append(Missing(r, f"installed, but {r.what} not found"))
    return missing


def install_command(packages: Iterable[str]) -> str:
    """The exact command that installs ``packages`` (with sudo unless we are root)."""
    sudo = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {' '.join(sorted(set(packages)))}"


def missing_message(source: str, missing: Sequence[Missing]) -> str:
    """A message naming what is missing, the package, and the command to install it."""
    items = "; ".join(
        f"Debian package '{m.requirement.package}' ({m.reason}; provides {m.requirement.what})"
        for m in missing
    )
    return (
        f"source '{source}' skipped: missing {items}. "
        f"Install with: {install_command(m.requirement.package for m in missing)}"
    )


def apt_install(packages: Sequence[str]) -> None:
    """Run apt-get install for ``packages``; a failure is reported, not raised."""
    cmd = install_command(packages).split()
    print(f"running: {' '.join(cmd)}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        print(
            f"warning: '{' '.join(cmd)}' exited with {result.returncode} "
            "(on a fresh system run 'apt-get update' first)",
            file=sys.stderr,
        )


def package_files(package: str, dpkg_query: str = "dpkg-query") -> set[str] | None:
    """The paths dpkg lists for an installed ``package``; None without dpkg-query."""
    if shutil.which(dpkg_query) is None:
        return None
    result = subprocess.run([dpkg_query, "-L", package], capture_output=True, text=True)
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}
