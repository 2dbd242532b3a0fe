"""Exporting a generator for use without mp3gan: a ``jax.export`` artifact.

:func:`export_generator` serialises the generator (parameters baked in as constants,
symbolic ``[channels, samples]`` shape) with ``jax.export``; the artifact runs with only
jax and numpy installed (docs/RESTORE.md). :func:`export_to_file` writes it with its
SHA-256 (``PATH.sha256``, the format ``sha256sum -c`` reads) and a JSON description
beside it; :func:`load` verifies the checksum before deserialising.

An artifact is code: deserialising and calling it runs the computation it describes in
XLA, and a damaged one can crash the process (a flipped bit gave SIGSEGV or SIGABRT
inside ``deserialize``/``call``) or silently compute with other weights. The checksum
catches damage; it does not make an artifact from an untrusted source safe (whoever can
alter the artifact can alter its checksum), so load only artifacts you trust.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from mp3gan import files
from mp3gan.restore.restorer import DEFAULT_CROSSFADE, _gated, generator_margin

EXPORT_PLATFORMS = ("cpu", "cuda", "tpu")
CHECKSUM_SUFFIX = ".sha256"


class ExportError(ValueError):
    """An artifact cannot be loaded: the message names it and says why, in one line."""


def checksum_path(path: str | Path) -> Path:
    """Where :func:`export_to_file` writes the artifact's SHA-256: ``PATH.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def export_generator(generator: nnx.Module, platforms: Sequence[str] = EXPORT_PLATFORMS) -> bytes:
    """Serialise ``float32 [channels, samples] -> [channels, samples]`` with ``jax.export``.

    The parameters are closed over, so they are baked into the artifact as constants;
    both dimensions are symbolic, so one artifact takes any channel count and length.
    The function is the one :class:`~mp3gan.restore.Restorer` runs per chunk (generator
    + silence gate), applied to the whole input at once: memory grows with the length,
    so chunk long files the way the Restorer does.
    """
    channels, samples = jax.export.symbolic_shape("channels, samples")
    spec = jax.ShapeDtypeStruct((channels, samples), jnp.float32)
    exported = jax.export.export(jax.jit(lambda x: _gated(generator, x)), platforms=platforms)(spec)
    return bytes(exported.serialize())


def export_to_file(generator: nnx.Module, sample_rate: int, path: str | Path) -> Path:
    """Write :func:`export_generator`'s artifact atomically, then ``PATH.sha256`` (its
    SHA-256 as ``sha256sum`` writes it) and ``PATH.json`` metadata (sample rate,
    receptive field, checksum) for users who have only the artifact."""
    path = Path(path)
    blob = export_generator(generator)
    digest = hashlib.sha256(blob).hexdigest()
    before, after = generator.context
    meta = {
        "sample_rate": int(sample_rate),
        "input": "float32 [channels, samples] at sample_rate",
        "receptive_field_before": before,
        "receptive_field_after": after,
        "recommended_chunk_overlap": 2 * generator_margin(generator) + DEFAULT_CROSSFADE,
        "platforms": list(EXPORT_PLATFORMS),
        "sha256": digest,
    }
    files.write_bytes_atomic(path, blob)
    files.write_text_atomic(checksum_path(path), f"{digest}  {path.name}\n")
    files.write_text_atomic(path.with_name(path.name + ".json"), json.dumps(meta, indent=2) + "\n")
    return path


def load(path: str | Path) -> jax.export.Exported:
    """Read an artifact written by :func:`export_to_file`, verify its SHA-256 against
    ``PATH.sha256``, and only then deserialise it.

    Raises ExportError (one line) when the artifact or its checksum file is missing or
    unreadable, the checksum does not match (damaged or altered: not deserialised, since
    a damaged artifact can crash the process), or jax cannot deserialise it. Only load
    artifacts from a source you trust: an artifact is code (see the module docstring).
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise ExportError(f"{path}: cannot read it ({e.strerror or e})") from None
    sums = checksum_path(path)
    try:
        expected = sums.read_text(encoding="utf-8").split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError):
        raise ExportError(
            f"{path}: no readable checksum in {sums.name} beside it; refusing to load an "
            "unverified artifact (it is code: use one from a trusted source, with its checksum)"
        ) from None
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise ExportError(
            f"{path}: SHA-256 {actual[:16]}... does not match {sums.name} "
            f"({expected[:16]}...): damaged or altered, not loaded"
        )
    try:
        return jax.export.deserialize(bytearray(blob))
    except Exception as e:  # a checksummed artifact from another jax version, say
        why = (str(e).strip().splitlines() or [""])[0]
        raise ExportError(
            f"{path}: jax cannot deserialise it ({type(e).__name__}: {why})"
        ) from None
