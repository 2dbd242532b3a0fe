"""Exporting a generator for use without mp3gan: a ``jax.export`` artifact.

:func:`export_generator` serialises the generator (parameters baked in as constants,
symbolic ``[channels, samples]`` shape) with ``jax.export``; the artifact runs with only
jax and numpy installed (docs/RESTORE.md). :func:`export_to_file` writes it with a JSON
description beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from mp3gan import files
from mp3gan.restore.restorer import DEFAULT_CROSSFADE, _gated, generator_margin

EXPORT_PLATFORMS = ("cpu", "cuda", "tpu")


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
    """Write :func:`export_generator`'s artifact atomically, plus ``PATH.json`` metadata
    (sample rate, receptive field) for users who have only the artifact."""
    path = Path(path)
    blob = export_generator(generator)
    before, after = generator.context
    meta = {
        "sample_rate": int(sample_rate),
        "input": "float32 [channels, samples] at sample_rate",
        "receptive_field_before": before,
        "receptive_field_after": after,
        "recommended_chunk_overlap": 2 * generator_margin(generator) + DEFAULT_CROSSFADE,
        "platforms": list(EXPORT_PLATFORMS),
    }
    files.write_bytes_atomic(path, blob)
    files.write_text_atomic(path.with_name(path.name + ".json"), json.dumps(meta, indent=2) + "\n")
    return path
