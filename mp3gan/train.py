"""The trainer: GAN train step, pmap over local devices, evaluation, checkpoints, logging.

``train_step`` is a pure per-device function: gradients and metrics are averaged with
``lax.pmean`` over ``AXIS``, so the same function runs under ``jax.pmap`` today and
under ``jax.shard_map`` later by changing one line (``pmapped_step``).

In a multi-process job (``mp3gan.distributed``) every process runs this same loop on its
local devices and its own shard of the data; ``pmean`` spans all processes, so the
parameters stay identical everywhere. Process 0 logs and evaluates; saves are collective
(orbax), so whether to save is agreed across processes before each one.

One step (HiFi-GAN order): the generator restores the MP3 batch; once the
reconstruction-only warm-up is over, the discriminators take a step on (reference,
restoration); then the generator takes a step on reconstruction losses (mel,
multi-resolution STFT, coherence) plus, after warm-up, the adversarial and
feature-matching losses against the updated discriminators. The generator's forward
pass runs once per step (``jax.vjp``) and serves both updates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from mp3gan import checkpoint, distributed, losses
from mp3gan.data import loader as data_loader
from mp3gan.data.pairs import parse_mix
from mp3gan.degrade import parse_degradation
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


def reconstruction_losses(reference, estimate, loss_cfg, sample_rate: int) -> dict:
    """The non-adversarial loss terms, each a per-example mean over the batch."""
    terms = {
        "mel": losses.mel_loss(reference, estimate, sample_rate),
        "mr_stft": losses.multi_resolution_stft_loss(
            reference, estimate, fft_sizes=tuple(loss_cfg.stft_fft_sizes)
        ),
    }
    if loss_cfg.coherence > 0:
        terms["coherence"] = losses.coherence_loss(
            reference, estimate, sample_rate, f_min=loss_cfg.coherence_min_hz
        )
    return terms


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


def train_step(
    state: TrainState, batch: dict, *, statics: StepStatics, adversarial: bool
) -> tuple[TrainState, dict]:
    """One update of both networks on one device's share of the batch.

    ``batch`` holds ``reference`` and ``degraded`` of shape [per_device, samples].
    ``adversarial`` is static: the warm-up variant compiles without discriminators.
    """
    cfg = statics.loss
    reference, degraded = batch["reference"], batch["degraded"]
    restored, generator_vjp = jax.vjp(
        lambda p: nnx.merge(statics.g_graphdef, p)(degraded), state.g_params
    )
    metrics = {}
    d_params, d_opt = state.d_params, state.d_opt

    def judged(x):
        return discriminator_view(x, state.step, statics.disc_crop)

    if adversarial:

        def d_loss_fn(params):
            disc = nnx.merge(statics.d_graphdef, params)
            real_logits, _ = disc(judged(reference))
            fake_logits, _ = disc(judged(jax.lax.stop_gradient(restored)))
            return losses.discriminator_adversarial_loss(real_logits, fake_logits)

        d_loss, d_grads = jax.value_and_grad(d_loss_fn)(d_params)
        d_grads = jax.lax.pmean(d_grads, AXIS)
        updates, d_opt = statics.d_tx.update(d_grads, d_opt, d_params)
        d_params = optax.apply_updates(d_params, updates)
        metrics["d_loss"] = d_loss
        metrics["d_grad_norm"] = optax.tree.norm(d_grads)

    def g_loss_fn(estimate):
        terms = reconstruction_losses(reference, estimate, cfg, statics.sample_rate)
        if adversarial:
            disc = nnx.merge(statics.d_graphdef, d_params)
            _, real_features = disc(judged(reference))
            fake_logits, fake_features = disc(judged(estimate))
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
    metrics.update({f"loss/{k}": v for k, v in terms.items()})
    metrics["g_loss"] = g_loss
    metrics["g_grad_norm"] = optax.tree.norm(g_grads)
    new_state = TrainState(state.step + 1, g_params, d_params, g_opt, d_opt)
    return new_state, jax.lax.pmean(metrics, AXIS)


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


def predict_fn(g_graphdef, g_params) -> Callable[[np.ndarray, int], np.ndarray]:
    """``predict(audio [C, T], sample_rate) -> [C, T]``: channels run as the batch."""
    apply = jax.jit(lambda p, x: nnx.merge(g_graphdef, p)(x))

    def predict(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        del sample_rate  # evaluation clips are already at the model rate
        return np.asarray(apply(g_params, jnp.asarray(audio, jnp.float32)))

    return predict


class ConfigError(ValueError):
    """The config cannot be trained as given; the message names the field."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """Fail at once, on every process alike, on fields that would only fail later (and,
    in a job, on process 0 alone: the validation clips are made there)."""
    _global_batch_split(config)
    for field in ("data.degradations", "train.eval_degradations"):
        section, name = field.split(".")
        for spec in config[section][name]:
            try:
                parse_degradation(spec)
            except ValueError as e:
                raise ConfigError(f"{field}: {e}") from None
    try:
        parse_mix(config.data.get("mix", ()))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _global_batch_split(config) -> int:
    n_global = jax.device_count()
    if config.train.batch_size % n_global:
        raise ConfigError(
            f"train.batch_size={config.train.batch_size} is not divisible by the "
            f"{n_global} devices taking part; choose a multiple of {n_global}"
        )
    return config.train.batch_size // n_global


def _compile_steps(statics, config, start: int, p_state, batch) -> dict[bool, Callable]:
    """The pmapped step variants (warm-up, adversarial), those this run uses compiled now.

    Compiling ahead (`.lower().compile()` fills the cache the call uses) lets the
    processes of a job meet at a barrier before the first collective: one may find the
    step in the persistent compilation cache while another compiles for minutes, and
    CPU (gloo) collectives give up after 30 s of waiting.
    """
    steps = {False: pmapped_step(statics, False), True: pmapped_step(statics, True)}
    if start < config.train.steps:
        first, last = start, config.train.steps - 1
        for adversarial in {step >= config.train.recon_warmup_steps for step in (first, last)}:
            steps[adversarial].lower(p_state, batch).compile()
    return steps


def _check_finite(step: int, metrics: dict, last_saved: int | None) -> None:
    bad = {k: float(v) for k, v in metrics.items() if not math.isfinite(float(v))}
    if bad:
        saved = f"last checkpoint: step {last_saved}" if last_saved is not None else "none saved"
        raise FloatingPointError(f"non-finite loss at step {step}: {bad} ({saved})")


def _announce(config, workdir: Path, per_device: int) -> None:
    if jax.process_count() > 1:
        tqdm.write(
            f"{jax.process_count()} processes, {jax.device_count()} devices "
            f"({jax.local_device_count()} here); global batch {config.train.batch_size} = "
            f"{per_device} per device; work directory {workdir}"
        )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> TrainState:
    """Train (or resume) in ``workdir``; returns the final state on the host.

    In a multi-process job every process calls this with the same config and work
    directory (on a filesystem they all share).
    """
    from mp3gan import logger  # wandb and media; imported here to keep the step light

    check_config(config)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    main = distributed.is_main()
    distributed.assert_same(config.to_json_best_effort(sort_keys=True), "config")
    distributed.assert_same(str(workdir), "work directory")
    n_local = jax.local_device_count()
    per_device = _global_batch_split(config)
    if main:
        _announce(config, workdir, per_device)
    state, statics = create_state(config)
    latest, best = checkpoint.managers(workdir, keep=config.train.keep_checkpoints)
    distributed.assert_same(
        str(latest.latest_step()),
        "latest checkpoint step (the work directory must be one all processes share)",
    )
    loader = data_loader.make_train_loader(
        config.data, num_devices=n_local, per_device_batch=per_device, seed=config.seed
    )
    restored = checkpoint.restore_step(latest, *checkpoint_items(state))
    if restored is not None:
        step, g_params, train, loader_state = restored
        state = state_from_checkpoint(g_params, train)
        loader.set_state(loader_state)
        if main:
            tqdm.write(f"resumed from {latest.directory} at step {step}")
    start = int(state.step)

    def main_setup():  # process 0 alone evaluates and logs
        clips = data_loader.validation_clips(
            config.data,
            n_clips=config.train.eval_clips,
            clip_samples=int(config.train.eval_clip_seconds * config.data.sample_rate),
            degradations=config.train.eval_degradations,
        )
        return clips, logger.Logger(config, workdir, is_main=True)

    # on_main: should process 0 fail here, the others stop too instead of waiting for it.
    setup = distributed.on_main(main_setup, "making the validation clips or starting the logs")
    clips, run = setup if main else ([], logger.Logger(config, workdir, is_main=False))
    p_state = replicate(state, n_local)
    first_batch = next(loader) if start < config.train.steps else None
    steps = _compile_steps(statics, config, start, p_state, first_batch)
    # Process 0 also made the validation clips: all meet before the first collective.
    distributed.barrier("ready to train")
    last_saved = start if restored is not None else None
    last_save_time = time.monotonic()
    bar = tqdm(
        total=config.train.steps, initial=start, desc="train", dynamic_ncols=True, disable=not main
    )
    tic, tic_step = time.perf_counter(), start
    pending = None  # the previous step's metrics: read one step late so devices stay busy
    with distributed.PreemptionWatch() as preemption:
        for step in range(start, config.train.steps):
            batch = first_batch if step == start else next(loader)
            adversarial = step >= config.train.recon_warmup_steps
            p_state, metrics = steps[adversarial](p_state, batch)
            if pending is not None:
                _check_finite(step, pending, last_saved)
            pending = unreplicate(metrics)
            done = step + 1
            is_log = done % config.train.log_every == 0 or done == config.train.steps
            if is_log:
                _check_finite(done, pending, last_saved)
                rate = (done - tic_step) / (time.perf_counter() - tic)
                samples = config.train.batch_size * config.data.crop_samples
                scalars = {k: float(v) for k, v in pending.items()}
                scalars["steps_per_s"] = rate
                scalars["audio_s_per_s"] = rate * samples / config.data.sample_rate
                run.log_scalars(done, scalars)
                bar.set_postfix(
                    g=f"{scalars['g_loss']:.3f}",
                    d=f"{scalars.get('d_loss', 0):.3f}",
                    it_s=f"{rate:.2f}",
                )
                tic, tic_step = time.perf_counter(), done
            bar.update(1)
            is_eval = done % config.train.eval_every == 0 or done == config.train.steps
            # Also by wall time, so a slow machine (a CPU) still saves within minutes. The
            # clocks of several processes disagree, and a save is collective: process 0
            # decides, at log steps only (agreeing is a round trip to the coordinator).
            overdue = False
            if jax.process_count() == 1 or is_log:
                late = time.monotonic() - last_save_time > 60 * config.train.checkpoint_minutes
                overdue = bool(distributed.agree(late))
            # A scheduler's SIGTERM: save now, at a step every process agrees on.
            preempted = preemption.should_stop(done)
            if is_eval or overdue or preempted or done % config.train.checkpoint_every == 0:
                host = unreplicate(p_state)
                g_params, train = checkpoint_items(host)
                summary = None
                evaluate = is_eval and not preempted  # the grace period is for saving
                if evaluate:  # the others wait while process 0 evaluates
                    predict = predict_fn(statics.g_graphdef, host.g_params)
                    evaluation = functools.partial(run.log_evaluation, done, predict, clips)
                    summary = distributed.on_main(evaluation, f"evaluating step {done}")
                # The best metric can be undefined on every clip (e.g. no high band).
                score = None if summary is None else summary.get(config.train.best_metric)
                if evaluate:
                    score = distributed.agree(score)
                checkpoint.save_step(latest, done, g_params, train, loader.get_state(), config)
                if score is not None:
                    metrics_for_best = {"score": score if config.train.best_lower else -score}
                    checkpoint.save_step(
                        best, done, g_params, train, loader.get_state(), config, metrics_for_best
                    )
                if jax.process_count() > 1:
                    # Orbax's background commit reports the saved step to JAX's preemption
                    # service; let it land before the loop reports later steps, or a
                    # notice in between would pick a stop step already passed.
                    latest.wait_until_finished()
                    best.wait_until_finished()
                last_saved, last_save_time = done, time.monotonic()
            if preempted:
                if main:
                    tqdm.write(
                        f"stopped by SIGTERM after step {done}, and saved: rerun the same "
                        "command to resume"
                    )
                break
        # Still inside the watch: a SIGTERM now must not kill the last commit.
        bar.close()
        loader.close()
        latest.wait_until_finished()
        best.wait_until_finished()
        latest.close()
        best.close()
        run.finish()
    return unreplicate(p_state)
