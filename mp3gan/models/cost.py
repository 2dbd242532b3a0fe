"""What a network costs: multiply-accumulates per channel-second from XLA's cost analysis.

Counting by hand drifts from the code; asking the compiler does not. ``flops`` is XLA's
own count for the compiled call (a multiply-add is 2 flops), so a figure printed here is
the figure of exactly what runs, convs, FFTs and all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


def compiled_flops(fn: Callable, *args: Any) -> float:
    """XLA's flop count of ``jax.jit(fn)(*args)`` (compiled, not run)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, list | tuple):  # older jax: one dict per computation
        analysis = analysis[0]
    return float(analysis["flops"])


def gmac_per_channel_second(
    module: nnx.Module, sample_rate: int, seconds: float = 2.0, rows: int = 1
) -> float:
    """Forward cost of ``module`` (``[rows, T] -> ...``) in GMAC per second of one channel.

    For discriminators, whose output is a structure, the whole output is computed.
    """
    graphdef, state = nnx.split(module)
    samples = round(seconds * sample_rate)
    x = jnp.zeros((rows, samples), jnp.float32)
    flops = compiled_flops(lambda s, x: nnx.merge(graphdef, s)(x), state, x)
    return flops / 2 / (rows * seconds) / 1e9


def parameter_count(module: nnx.Module) -> int:
    """Number of trainable parameters (``nnx.Param`` leaves)."""
    return int(sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param))))
