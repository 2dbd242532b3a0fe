"""The pure training computation: train state, the generator and discriminator steps,
optimisers, and the pmap that runs them over the local devices.

``train_step`` is a pure per-device function: gradients and metrics are averaged with
``lax.pmean`` over ``AXIS``, so the same function runs under ``jax.pmap`` today and
under ``jax.shard_map`` later by changing one line (``pmapped_step``). As in DAC, the
discriminator and generator updates are separate pure functions over one combined
:class:`TrainState`.

One step (HiFi-GAN order): the generator restores the MP3 batch; once the
reconstruction-only warm-up is over, the discriminators take a step on (reference,
restoration); then the generator takes a step on reconstruction losses (mel,
multi-resolution STFT, coherence) plus, after warm-up, the adversarial and
feature-matching losses against the updated discriminators.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from mp3gan import losses
from mp3gan.audio import PredictFn
from mp3gan.models import Discriminators, build_generator

AXIS = "devices"


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training (replicated over devices under pmap)."""

    step: jax.Array
    g_params: nnx.State
    d_params: nnx.State
    g_opt: optax.OptState
    d_opt: optax.OptState


@dataclasses.dataclass(frozen=True)
class StepStatics:
    """What the step closes over: module structure, optimisers and loss settings."""

    g_graphdef: Any
    d_graphdef: Any
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    loss: ml_collections.FrozenConfigDict
    sample_rate: int
    disc_crop: int = 0  # samples the discriminators judge (0 = the whole crop)


def make_optimizer(optim: ml_collections.ConfigDict, lr: float, total_steps: int):
    """AdamW with linear warm-up, cosine decay and global-norm clipping."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, lr, max(optim.warmup_steps, 1), max(total_steps, optim.warmup_steps + 1), lr * 0.1
    )
    return optax.chain(
        optax.clip_by_global_norm(optim.clip_norm),
        optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay),
    )


def reconstruction_losses(reference, estimate, loss_cfg, sample_rate: int, degraded=None) -> dict:
    """The non-adversarial loss terms, each a per-example mean over the batch.

    ``degraded`` (the generator's input) is needed by the term measured against the
    input's own error (waveform) and tells the complex term where the input holds the
    band (``loss.complex_band``; without it that term counts every bin)."""
    terms = {
        "mel": losses.mel_loss(reference, estimate, sample_rate),
        "mr_stft": losses.multi_resolution_stft_loss(
            reference, estimate, fft_sizes=tuple(loss_cfg.stft_fft_sizes)
        ),
    }
    if loss_cfg.get("pre_echo", 0) > 0:
        terms["pre_echo"] = losses.pre_echo_loss(reference, estimate, sample_rate)
    if loss_cfg.get("lead_in_spectrum", 0) > 0:
        terms["lead_in_spectrum"] = losses.lead_in_spectrum_loss(reference, estimate, sample_rate)
    if loss_cfg.get("waveform", 0) > 0 and degraded is not None:
        terms["waveform"] = losses.waveform_error_ratio_loss(reference, degraded, estimate)
    if loss_cfg.get("complex", 0) > 0:
        # Only where the input holds the band, when asked (and the input is known).
        band, min_cutoff_hz, max_cutoff_hz = losses.complex_band_settings(loss_cfg, sample_rate)
        terms["complex"] = losses.compressed_complex_loss(
            reference,
            estimate,
            degraded=degraded,
            where=band,
            min_cutoff_hz=min_cutoff_hz,
            max_cutoff_hz=max_cutoff_hz,
            sample_rate=sample_rate,
        )
    if loss_cfg.coherence > 0:
        terms["coherence"] = losses.coherence_loss(
            reference, estimate, sample_rate, f_min=loss_cfg.coherence_min_hz
        )
    return terms


def _judged(x: jax.Array, step: jax.Array, statics: StepStatics) -> jax.Array:
    return discriminator_view(x, step, statics.disc_crop)


def discriminator_view(x: jax.Array, step: jax.Array, crop: int) -> jax.Array:
    """The window of ``x`` ``[B, T]`` the discriminators judge at this step.

    Judging ``crop < T`` samples cuts the discriminators' cost (most of a CPU GAN step)
    in proportion. The offset moves with the step (a fixed stride through all offsets,
    the same for reference and restoration), so the whole crop is judged over time and
    the step stays a pure function of its inputs.
    """
    length = x.shape[-1]
    if crop <= 0 or crop >= length:
        return x
    offset = (step.astype(jnp.uint32) * jnp.uint32(7919)) % jnp.uint32(length - crop + 1)
    return jax.lax.dynamic_slice_in_dim(x, offset.astype(jnp.int32), crop, axis=-1)


def discriminator_step(
    state: TrainState, reference: jax.Array, restored: jax.Array, statics: StepStatics
) -> tuple[TrainState, dict]:
    """One LSGAN update of the discriminators on (reference, restoration)."""

    def d_loss_fn(params):
        disc = nnx.merge(statics.d_graphdef, params)
        real_logits, _ = disc(_judged(reference, state.step, statics))
        fake_logits, _ = disc(_judged(jax.lax.stop_gradient(restored), state.step, statics))
        return losses.discriminator_adversarial_loss(real_logits, fake_logits)

    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(state.d_params)
    d_grads = jax.lax.pmean(d_grads, AXIS)
    updates, d_opt = statics.d_tx.update(d_grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    metrics = {"d_loss": d_loss, "d_grad_norm": optax.tree.norm(d_grads)}
    return state.replace(d_params=d_params, d_opt=d_opt), metrics


def generator_step(
    state: TrainState,
    reference: jax.Array,
    degraded: jax.Array,
    restored: jax.Array,
    generator_vjp: Callable,
    statics: StepStatics,
    adversarial: bool,
) -> tuple[TrainState, dict]:
    """One update of the generator: reconstruction losses, plus (``adversarial``) the
    LSGAN and feature-matching losses against the state's (already updated)
    discriminators. ``generator_vjp`` pulls the loss gradient back through the forward
    pass that produced ``restored``."""
    cfg = statics.loss

    def g_loss_fn(estimate):
        terms = reconstruction_losses(reference, estimate, cfg, statics.sample_rate, degraded)
        if adversarial:
            disc = nnx.merge(statics.d_graphdef, state.d_params)
            _, real_features = disc(_judged(reference, state.step, statics))
            fake_logits, fake_features = disc(_judged(estimate, state.step, statics))
            terms["adversarial"] = losses.generator_adversarial_loss(fake_logits)
            terms["feature"] = losses.feature_matching_loss(
                jax.lax.stop_gradient(real_features), fake_features
            )
        total = sum(cfg[name] * value for name, value in terms.items())
        return total, terms

    (g_loss, terms), d_restored = jax.value_and_grad(g_loss_fn, has_aux=True)(restored)
    (g_grads,) = generator_vjp(d_restored)
    g_grads = jax.lax.pmean(g_grads, AXIS)
    updates, g_opt = statics.g_tx.update(g_grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    metrics = {f"loss/{k}": v for k, v in terms.items()}
    metrics["g_loss"] = g_loss
    metrics["g_grad_norm"] = optax.tree.norm(g_grads)
    return state.replace(g_params=g_params, g_opt=g_opt), metrics


def train_step(
    state: TrainState, batch: dict, *, statics: StepStatics, adversarial: bool
) -> tuple[TrainState, dict]:
    """One update of both networks on one device's share of the batch (HiFi-GAN order:
    discriminators first, then the generator against them).

    ``batch`` holds ``reference`` and ``degraded`` of shape [per_device, samples].
    ``adversarial`` is static: the warm-up variant compiles without discriminators. The
    generator's forward pass runs once (``jax.vjp``) and serves both updates.
    """
    reference, degraded = batch["reference"], batch["degraded"]
    restored, generator_vjp = jax.vjp(
        lambda p: nnx.merge(statics.g_graphdef, p)(degraded), state.g_params
    )
    metrics = {}
    if adversarial:
        state, metrics = discriminator_step(state, reference, restored, statics)
    state, g_metrics = generator_step(
        state, reference, degraded, restored, generator_vjp, statics, adversarial
    )
    metrics.update(g_metrics)
    return state.replace(step=state.step + 1), jax.lax.pmean(metrics, AXIS)


def pmapped_step(statics: StepStatics, adversarial: bool, devices=None) -> Callable:
    """``train_step`` over the local devices (or ``devices``), leading axis = device."""
    step = functools.partial(train_step, statics=statics, adversarial=adversarial)
    return jax.pmap(step, axis_name=AXIS, devices=devices, donate_argnums=(0,))


def create_state(config: ml_collections.ConfigDict) -> tuple[TrainState, StepStatics]:
    """Fresh generator/discriminator parameters and optimiser states (host, unreplicated)."""
    generator = build_generator(config.model.generator, nnx.Rngs(config.seed))
    discriminators = Discriminators(**config.model.discriminator, rngs=nnx.Rngs(config.seed + 1))
    g_graphdef, g_params = nnx.split(generator)
    d_graphdef, d_params = nnx.split(discriminators)
    total = config.train.steps
    g_tx = make_optimizer(config.optim, config.optim.g_lr, total)
    d_tx = make_optimizer(config.optim, config.optim.d_lr, total)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt=g_tx.init(g_params),
        d_opt=d_tx.init(d_params),
    )
    statics = StepStatics(
        g_graphdef,
        d_graphdef,
        g_tx,
        d_tx,
        ml_collections.FrozenConfigDict(config.loss),
        config.data.sample_rate,
        int(config.train.get("disc_crop", 0)),
    )
    return state, statics


def replicate(tree: Any, n: int, devices=None) -> Any:
    """One copy per device, laid out exactly as ``pmapped_step`` returns its state
    (same mesh axis name).

    Going through an identity pmap matters: host arrays and device arrays are different
    input types to pmap, and the step would otherwise compile twice.
    """
    stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), tree)
    return jax.pmap(lambda x: x, axis_name=AXIS, devices=devices)(stacked)


def unreplicate(tree: Any) -> Any:
    """This process's first device's copy, on the host (no device computation)."""

    def first(x):
        if isinstance(x, jax.Array):  # pmap output: read one local shard, [1, ...]
            return np.asarray(x.addressable_data(0))[0]
        return np.asarray(x[0])

    return jax.tree.map(first, tree)


def checkpoint_items(state: TrainState) -> tuple[nnx.State, dict]:
    """A host state as the checkpoint's ``generator`` and ``train`` items."""
    return state.g_params, {
        "step": state.step,
        "d_params": state.d_params,
        "g_opt": state.g_opt,
        "d_opt": state.d_opt,
    }


def state_from_checkpoint(g_params, train: dict) -> TrainState:
    """The inverse of :func:`checkpoint_items`."""
    return TrainState(
        jnp.asarray(train["step"]), g_params, train["d_params"], train["g_opt"], train["d_opt"]
    )


def predict_fn(g_graphdef, g_params) -> PredictFn:
    """``predict(audio [C, T], sample_rate) -> [C, T]``: channels run as the batch."""
    apply = jax.jit(lambda p, x: nnx.merge(g_graphdef, p)(x))

    def predict(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        del sample_rate  # evaluation clips are already at the model rate
        return np.asarray(apply(g_params, jnp.asarray(audio, jnp.float32)))

    return predict
