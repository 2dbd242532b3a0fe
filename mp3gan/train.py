"""The training loop: set-up, resume, the pmapped steps, and the periodic actions.

The computation itself (state, generator and discriminator steps, pmap) lives in
:mod:`mp3gan.steps`; this module only drives it. ``train_and_evaluate`` reads top to
bottom in bannered sections, as big_vision's trainers do, and one helper,
:func:`is_due`, decides every periodic action (log, evaluate, save) by step count and,
so that a slow machine shows results within minutes, by wall time.

In a multi-process job (``mp3gan.distributed``) every process runs this same loop on its
local devices and its own shard of the data; ``pmean`` spans all processes, so the
parameters stay identical everywhere. Process 0 logs and evaluates; saves are collective
(orbax), so whether to save is agreed across processes before each one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import jax
import ml_collections
from flax import nnx
from tqdm import tqdm

from mp3gan import checkpoint, distributed, losses
from mp3gan.data import loader as data_loader
from mp3gan.data.pairs import parse_mix
from mp3gan.degrade import parse_degradation
from mp3gan.steps import (
    AXIS,
    StepStatics,
    TrainState,
    checkpoint_items,
    create_state,
    discriminator_step,
    generator_step,
    make_optimizer,
    pmapped_step,
    predict_fn,
    reconstruction_losses,
    replicate,
    state_from_checkpoint,
    train_step,
    unreplicate,
)

__all__ = [
    "AXIS",
    "ConfigError",
    "StepStatics",
    "TrainState",
    "check_config",
    "create_state",
    "discriminator_step",
    "generator_step",
    "is_due",
    "make_optimizer",
    "pmapped_step",
    "reconstruction_losses",
    "replicate",
    "train_and_evaluate",
    "train_step",
    "unreplicate",
]

# Config fields that define the experiment: resuming a work directory with any of them
# changed would silently continue another experiment.
EXPERIMENT_FIELDS = ("data.path", "data.sample_rate", "data.degradations", "model", "loss")


class ConfigError(ValueError):
    """The config cannot be trained as given; the message names the field."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """Fail at once, on every process alike, on fields that would only fail later (and,
    in a job, on process 0 alone: the validation clips are made there): ConfigError
    naming the field, or DataError naming the corpus folder."""
    _global_batch_split(config)
    # The corpus (DataError), before the model is built: the loader would find out later.
    data_loader.check_corpus(config.data)
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
    try:
        losses.complex_band_settings(config.loss, config.data.sample_rate)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _field(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_resume_config(config: ml_collections.ConfigDict, workdir: Path, allow: bool) -> None:
    """Refuse to resume ``workdir`` with a different experiment (data, model, losses).

    The trainer writes ``config.json`` into a new work directory; a rerun compares the
    :data:`EXPERIMENT_FIELDS` with it. Schedule fields (steps, logging) may change.
    """
    saved_path = workdir / "config.json"
    if allow or not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    current = checkpoint.config_to_json(config)
    changed = [
        f"{field}: {json.dumps(_field(saved, field))} -> {json.dumps(_field(current, field))}"
        for field in EXPERIMENT_FIELDS
        if _field(saved, field) != _field(current, field)
    ]
    if changed:
        raise ConfigError(
            f"{workdir} holds another experiment ({'; '.join(changed)}); train in a new "
            "--workdir, or pass --allow_config_change to continue this one with the new config"
        )


def _global_batch_split(config) -> int:
    n_global = jax.device_count()
    if config.train.batch_size % n_global:
        raise ConfigError(
            f"train.batch_size={config.train.batch_size} is not divisible by the "
            f"{n_global} devices taking part; choose a multiple of {n_global}"
        )
    return config.train.batch_size // n_global


def is_due(
    done: int,
    every: int = 0,
    total: int | None = None,
    seconds_since: float = 0.0,
    minutes: float | None = None,
) -> bool:
    """Whether a periodic action is due after ``done`` steps: every ``every`` steps (0 =
    never by count), at the last step ``total``, or once ``minutes`` of wall time have
    passed since it last ran (None or 0 = never by time)."""
    by_step = (every > 0 and done % every == 0) or done == total
    return by_step or (bool(minutes) and seconds_since >= 60.0 * minutes)


def _compile_steps(statics, config, start: int, p_state, batch) -> dict[bool, object]:
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


class _Say:
    """One-line progress messages from process 0, flushed at once (tqdm-safe)."""

    def __init__(self, main: bool):
        self.main = main

    def __call__(self, message: str) -> None:
        if self.main:
            tqdm.write(message)


def _log_step(run, done: int, pending: dict, config, rate: float) -> None:
    samples = config.train.batch_size * config.data.crop_samples
    scalars = {k: float(v) for k, v in pending.items()}
    scalars["steps_per_s"] = rate
    scalars["audio_s_per_s"] = rate * samples / config.data.sample_rate
    run.log_scalars(done, scalars)


def _evaluate(run, done: int, statics, host: TrainState, clips, config) -> dict | None:
    """Process 0 scores the held-out clips and hands numbers and media to the logger."""
    from mp3gan import evaluate  # metrics, baselines and plots: only where they are used

    def evaluation():
        predict = predict_fn(statics.g_graphdef, host.g_params)
        scalars, output_means = evaluate.evaluate_for_training(predict, clips)
        run.log_scalars(done, scalars)
        media = evaluate.media_for_training(predict, clips[: config.wandb.media_clips], done)
        run.log_media(done, media)
        return output_means

    # The others wait while process 0 evaluates.
    return distributed.on_main(evaluation, f"evaluating step {done}")


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | Path, allow_config_change: bool = False
) -> TrainState:
    """Train (or resume) in ``workdir``; returns the final state on the host.

    In a multi-process job every process calls this with the same config and work
    directory (on a filesystem they all share).
    """
    from mp3gan import logger  # wandb; imported here to keep the step light

    # ---------------------------------------------------------------------------------
    # Checks: before any work, and before the work directory exists
    # ---------------------------------------------------------------------------------
    check_config(config)
    workdir = Path(workdir).resolve()
    check_resume_config(config, workdir, allow_config_change)
    main = distributed.is_main()
    say = _Say(main)
    workdir.mkdir(parents=True, exist_ok=True)
    distributed.assert_same(config.to_json_best_effort(sort_keys=True), "config")
    distributed.assert_same(str(workdir), "work directory")
    if main:
        checkpoint.write_config(workdir / "config.json", config)
    n_local = jax.local_device_count()
    per_device = _global_batch_split(config)
    if jax.process_count() > 1:
        say(
            f"{jax.process_count()} processes, {jax.device_count()} devices "
            f"({n_local} here); global batch {config.train.batch_size} = "
            f"{per_device} per device; work directory {workdir}"
        )

    # ---------------------------------------------------------------------------------
    # Model, checkpoints, data
    # ---------------------------------------------------------------------------------
    say("building the model …")
    state, statics = create_state(config)
    # Orbax's managers meet over gloo, which gives up after 30 s: building the model can
    # take one process far longer than another (a loaded machine), so meet first on the
    # coordination service, which waits as long as it takes.
    distributed.barrier("checkpoint managers")
    checkpoints = checkpoint.TrainCheckpoints(workdir, keep=config.train.keep_checkpoints)
    distributed.assert_same(
        str(checkpoints.latest_step()),
        "latest checkpoint step (the work directory must be one all processes share)",
    )
    what = config.data.path or "the embedded corpus (built on first use)"
    say(f"loading the training data from {what} …")
    loader = data_loader.make_train_loader(
        config.data, num_devices=n_local, per_device_batch=per_device, seed=config.seed
    )
    try:
        return _train(config, workdir, state, statics, checkpoints, loader, logger, say)
    finally:
        loader.close()  # also on an error or a signal: no worker process outlives us
        checkpoints.close()


def _generator_params(path: str, state: TrainState, say=print):
    """The generator parameters of the model at ``path``, checked to fit this config's.

    Parameters this config's generator has and the model lacks (a stage added since,
    e.g. ``mask`` or ``fine_hop``, whose heads start at the identity) keep their fresh
    initialisation and are named; every parameter the model has must be here, same shape.
    """
    generator, _ = checkpoint.load_generator(path)
    have = dict(nnx.to_flat_state(nnx.state(generator, nnx.Param)))
    want = nnx.to_flat_state(state.g_params)
    extra = sorted(set(have) - {path for path, _ in want})
    wrong = [
        p for p, x in want if p in have and (have[p].shape, have[p].dtype) != (x.shape, x.dtype)
    ]
    if extra or wrong:
        raise ConfigError(
            f"train.init_from: {path} holds a generator of another shape than "
            f"model.generator describes ({_dotted((extra + wrong)[0])}); use the model's "
            "own config (its config.json), optionally with stages it lacks added"
        )
    fresh = [_dotted(p) for p, _ in want if p not in have]
    if fresh:
        say(f"train.init_from: new parameters start at their initialisation: {', '.join(fresh)}")
    return nnx.from_flat_state([(p, have.get(p, x)) for p, x in want])


def _dotted(path: tuple) -> str:
    """``blocks.0.expand.kernel`` for a flat-state path."""
    return ".".join(str(part) for part in path)


class Schedule:
    """When each periodic action (log, eval, save) is due: by step count or wall time.

    The wall-time part is decided by process 0 and agreed by all (the clocks of several
    processes disagree, and evaluation and saving are collective), at step-based log
    steps only in a multi-process job: agreeing is a round trip to the coordinator.
    """

    ACTIONS = ("log", "eval", "save")

    def __init__(self, t: ml_collections.ConfigDict):
        self.total = t.steps
        self.every = {"log": t.log_every, "eval": t.eval_every, "save": t.checkpoint_every}
        self.minutes = {
            "log": t.get("log_minutes", None),
            "eval": t.get("eval_minutes", None),
            "save": t.checkpoint_minutes,
        }
        now = time.monotonic()
        self.last = dict.fromkeys(self.ACTIONS, now)
        if self.minutes["eval"] and t.get("first_eval_minutes", None):
            # The first evaluation comes after first_eval_minutes, the others every
            # eval_minutes: a CPU run shows results within minutes.
            self.last["eval"] = now - 60.0 * (self.minutes["eval"] - t.first_eval_minutes)

    def due(self, done: int) -> dict[str, bool]:
        """Which actions are due after step ``done`` (call on every process, every step)."""
        by_step = {a: is_due(done, self.every[a], self.total) for a in self.ACTIONS}
        late = dict.fromkeys(self.ACTIONS, False)
        if jax.process_count() == 1 or by_step["log"]:
            now = time.monotonic()
            wanted = [
                is_due(done, seconds_since=now - self.last[a], minutes=self.minutes[a])
                for a in self.ACTIONS
            ]
            bits = int(distributed.agree(sum(int(w) << i for i, w in enumerate(wanted))))
            late = {a: bool(bits >> i & 1) for i, a in enumerate(self.ACTIONS)}
        return {a: by_step[a] or late[a] for a in self.ACTIONS}

    def ran(self, action: str) -> None:
        self.last[action] = time.monotonic()


def _train(config, workdir, state, statics, checkpoints, loader, logger, say) -> TrainState:
    main = distributed.is_main()

    # ---------------------------------------------------------------------------------
    # Resume, validation clips, logs
    # ---------------------------------------------------------------------------------
    resumed = checkpoints.restore(*checkpoint_items(state), loader)
    if resumed is not None:
        state = state_from_checkpoint(*resumed[1:])
        say(f"resumed from {checkpoints.latest.directory} at step {int(state.step)}")
    # A process that found a step damaged (and fell back) must not run on alone.
    distributed.assert_same(str(int(state.step)), "resumed step")
    if resumed is None and config.train.get("init_from", ""):
        # A new run that starts from a model's generator (e.g. the shipped one); the
        # discriminators and optimisers start fresh.
        state = state.replace(g_params=_generator_params(config.train.init_from, state, say))
        say(f"generator initialised from {config.train.init_from}")
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

    # ---------------------------------------------------------------------------------
    # Compile
    # ---------------------------------------------------------------------------------
    p_state = replicate(state, jax.local_device_count())
    first_batch = next(loader) if start < config.train.steps else None
    say("compiling the train step (a minute or two on a CPU; once per run) …")
    tic = time.perf_counter()
    steps = _compile_steps(statics, config, start, p_state, first_batch)
    say(f"compiled in {time.perf_counter() - tic:.0f} s; training")
    # Process 0 also made the validation clips: all meet before the first collective.
    distributed.barrier("ready to train")
    last_saved = start if resumed is not None else None
    run_state = (p_state, first_batch, steps, clips, run, last_saved)
    return _loop(config, statics, checkpoints, loader, say, start, *run_state)


def _loop(
    config,
    statics,
    checkpoints,
    loader,
    say,
    start,
    p_state,
    first_batch,
    steps,
    clips,
    run,
    last_saved,
) -> TrainState:
    """The train loop: step, then whatever periodic actions are due."""
    t = config.train
    schedule = Schedule(t)
    bar = tqdm(
        total=t.steps,
        initial=start,
        desc="train",
        dynamic_ncols=True,
        disable=not distributed.is_main(),
    )
    tic, tic_step = time.perf_counter(), start
    pending = None  # the previous step's metrics, checked one step late
    with distributed.PreemptionWatch() as preemption:
        for step in range(start, t.steps):
            batch = first_batch if step == start else next(loader)
            p_state, metrics = steps[step >= t.recon_warmup_steps](p_state, batch)
            if pending is not None:
                _check_finite(step, pending, last_saved)
            pending = unreplicate(metrics)
            done = step + 1
            bar.update(1)
            bar.set_postfix(
                g=f"{float(pending['g_loss']):.3f}", d=f"{float(pending.get('d_loss', 0)):.3f}"
            )
            due = schedule.due(done)
            # A scheduler's SIGTERM (or Ctrl-C): save now, at a step every process agrees on.
            preempted = preemption.should_stop(done)
            is_eval = due["eval"] and not preempted  # the grace period is for saving
            if due["log"]:
                _check_finite(done, pending, last_saved)
                rate = (done - tic_step) / (time.perf_counter() - tic)
                _log_step(run, done, pending, config, rate)
                tic, tic_step = time.perf_counter(), done
                schedule.ran("log")
            if due["save"] or is_eval or preempted:
                _check_finite(done, pending, last_saved)  # never save a diverged state
                host = unreplicate(p_state)
                output_means = None
                if is_eval:
                    output_means = _evaluate(run, done, statics, host, clips, config)
                    schedule.ran("eval")
                # The best metric can be undefined on every clip (e.g. no high band).
                score = None if output_means is None else output_means.get(t.best_metric)
                if is_eval:
                    score = distributed.agree(score)
                items = checkpoint_items(host)
                checkpoints.save(done, *items, loader.get_state(), config, score, t.best_lower)
                last_saved = done
                schedule.ran("save")
            if preempted:
                say(
                    f"stopped by {preemption.signal_name} after step {done}, and saved: "
                    "rerun the same command to resume"
                )
                break

        # ---------------------------------------------------------------------------------
        # Finish (still inside the watch: a signal now must not kill the last commit)
        # ---------------------------------------------------------------------------------
        bar.close()
        loader.close()
        checkpoints.wait()
        run.finish()
    return unreplicate(p_state)
