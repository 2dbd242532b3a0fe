"""Checkpoints with orbax: a training run's layout, resume, and the generator for inference.

A training work directory holds two orbax managers:

- ``checkpoints/latest``: the newest steps, for resuming;
- ``checkpoints/best``: the best step by the config's ``train.best_metric``.

Each step stores four items: ``generator`` (its parameters, all inference needs),
``train`` (step counter, discriminator parameters, both optimiser states), ``loader``
(the data loader's position, JSON) and ``config`` (the training config, JSON), so a
model is always rebuilt with the exact config it was trained with.

A standalone inference checkpoint (the shipped model) is a folder with
``config.json`` and an orbax ``generator`` item.

Damage. A step that cannot be read back (a truncated file, a truncated ``_METADATA``, an
empty step folder) or whose parameters are not finite is *damaged*. Resuming falls back
to the newest intact step, with a warning naming the damaged ones, which are moved to
``checkpoints/damaged/`` (orbax would otherwise keep reporting them as the latest step
and silently skip saving that step again). Loading a model for inference never falls
back: it refuses a damaged checkpoint with one line saying which and why.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from mp3gan.files import write_text_atomic
from mp3gan.models import Generator, build_generator

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "mp3gan-base"
DAMAGED = "damaged"  # folder beside the managers where damaged steps are moved

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint cannot be used: the message names it and says why, in one line."""


def _why(error: BaseException) -> str:
    """One line about a failed restore (orbax's own messages run to many lines)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def check_finite_tree(tree: Any, name: str) -> None:
    """Raise CheckpointError naming the first floating-point leaf that is not finite."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        a = np.asarray(leaf)
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise CheckpointError(
                f"{name}: parameter {jax.tree_util.keystr(path)} holds NaN/Inf "
                "(damaged, or saved after training diverged)"
            )


def config_to_json(config: ml_collections.ConfigDict) -> dict:
    """A JSON-safe plain dict of a config (tuples become lists)."""
    return json.loads(config.to_json_best_effort())


def config_from_json(data: dict) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(data)


def write_config(path: str | Path, config: ml_collections.ConfigDict) -> None:
    """A config as indented JSON, atomically (the work directory's ``config.json``)."""
    write_text_atomic(path, json.dumps(config_to_json(config), indent=2) + "\n")


def abstract_like(tree: Any) -> Any:
    """Shape/dtype placeholders for orbax to restore into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def managers(workdir: str | Path, keep: int = 2) -> tuple[ocp.CheckpointManager, ...]:
    """The (latest, best) checkpoint managers of a training work directory."""
    root = Path(workdir).resolve() / "checkpoints"

    def barriers(name: str) -> ocp.options.MultiprocessingOptions:
        # Both managers can save the same step at once; in a multi-process run their
        # cross-process barriers are named by step, so they need distinct prefixes.
        return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)

    latest = ocp.CheckpointManager(
        root / "latest",
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, multiprocessing_options=barriers("latest")
        ),
    )
    best = ocp.CheckpointManager(
        root / "best",
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1,
            create=True,
            best_fn=lambda metrics: metrics["score"],
            best_mode="min",
            multiprocessing_options=barriers("best"),
        ),
    )
    return latest, best


def save_step(
    manager: ocp.CheckpointManager,
    step: int,
    generator_params: nnx.State,
    train: dict,
    loader_state: dict,
    config: ml_collections.ConfigDict,
    metrics: dict | None = None,
) -> None:
    """Save one step (host arrays, not replicated) to ``manager`` asynchronously."""
    manager.save(
        step,
        args=ocp.args.Composite(
            generator=ocp.args.StandardSave(generator_params),
            train=ocp.args.StandardSave(train),
            loader=ocp.args.JsonSave(loader_state),
            config=ocp.args.JsonSave(config_to_json(config)),
        ),
        metrics=metrics,
    )


def _set_aside(manager: ocp.CheckpointManager, step: int) -> Path:
    """Move a damaged step out of the manager's folder; returns where it went."""
    root = Path(manager.directory)
    target = root.parent / DAMAGED / f"{root.name}-{step}"
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{root.name}-{step}.{n}")
    try:
        os.replace(root / str(step), target)
    except FileNotFoundError:  # another process of the job moved it first
        pass
    return target


def restore_step(
    manager: ocp.CheckpointManager, generator_params: nnx.State, train: dict
) -> tuple[int, nnx.State, dict, dict] | None:
    """Restore the newest intact step into the given structures; None when there is none.

    Damaged steps (see the module docstring) newer than the one restored are moved to
    ``checkpoints/damaged/`` with a warning naming each. When every step is damaged,
    raises CheckpointError naming them and moves nothing: starting afresh is the user's
    decision.
    """
    damaged: list[tuple[int, str]] = []
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    generator=ocp.args.StandardRestore(abstract_like(generator_params)),
                    train=ocp.args.StandardRestore(abstract_like(train)),
                    loader=ocp.args.JsonRestore(),
                ),
            )
            check_finite_tree(restored.generator, "generator")
            check_finite_tree(restored.train, "train")
        except Exception as e:  # any failure to read a step back makes it damaged
            damaged.append((step, _why(e)))
            continue
        for bad, why in damaged:
            moved = _set_aside(manager, bad)
            log.warning(
                "checkpoint step %d in %s is damaged (%s); resuming from step %d instead; "
                "the damaged step was moved to %s",
                *(bad, manager.directory, why, step, moved),
            )
        if damaged:
            manager.reload()
        return step, restored.generator, restored.train, restored.loader
    if damaged:
        steps = "; ".join(f"step {step}: {why}" for step, why in damaged)
        raise CheckpointError(
            f"{manager.directory}: every checkpoint is damaged ({steps}); move them away "
            "to start afresh"
        )
    return None


class TrainCheckpoints:
    """A training work directory's checkpoints: the latest steps and the best one.

    Owns both orbax managers and the layout of a step (see the module docstring), so the
    trainer only says *when* to save and what the score was.
    """

    def __init__(self, workdir: str | Path, keep: int = 2):
        self.latest, self.best = managers(workdir, keep=keep)

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def restore(self, generator_params: nnx.State, train: dict, loader):
        """The latest step's ``(step, generator_params, train)`` shaped like the given
        ones (the loader moved to its position), or None when there is none."""
        restored = restore_step(self.latest, generator_params, train)
        if restored is None:
            return None
        step, g_params, train, loader_state = restored
        loader.set_state(loader_state)
        return step, g_params, train

    def save(
        self,
        step: int,
        generator_params: nnx.State,
        train: dict,
        loader_state: dict,
        config: ml_collections.ConfigDict,
        score: float | None = None,
        lower_is_better: bool = True,
    ) -> None:
        """Save ``step`` as the latest, and as the best when ``score`` (the evaluation's
        ``train.best_metric``) is given; the best manager keeps the best by score."""
        save_step(self.latest, step, generator_params, train, loader_state, config)
        if score is not None:
            ranked = {"score": score if lower_is_better else -score}
            save_step(self.best, step, generator_params, train, loader_state, config, ranked)
        if jax.process_count() > 1:
            # Orbax's background commit reports the saved step to JAX's preemption
            # service; let it land before the loop reports later steps, or a notice in
            # between would pick a stop step already passed.
            self.wait()

    def wait(self) -> None:
        """Block until every save has been committed."""
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.wait()
        self.latest.close()
        self.best.close()


def save_generator(
    path: str | Path, generator: Generator, config: ml_collections.ConfigDict
) -> None:
    """Write a standalone inference checkpoint: ``config.json`` + orbax ``generator``."""
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    params = jax.tree.map(np.asarray, nnx.state(generator, nnx.Param))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path / "generator", params, force=True)
    write_config(path / "config.json", config)


def _restore_into(config: ml_collections.ConfigDict, restore_fn) -> Generator:
    # eval_shape: only shapes, no random init (which costs tens of seconds on a CPU).
    graphdef, params = nnx.split(
        nnx.eval_shape(lambda: build_generator(config.model.generator, nnx.Rngs(0)))
    )
    return nnx.merge(graphdef, restore_fn(abstract_like(params)))


def _first_step(path: Path, order: tuple[str, str]) -> tuple[ocp.CheckpointManager, int] | None:
    """The manager and step that hold ``path``'s checkpoint, None when none does: one
    step's own folder (``.../latest/2500``) names its manager and step; else the latest
    step of the first of the workdir's ``checkpoints/<order>`` managers, then of ``path``
    as a manager, that has one."""
    # A folder named by a number with no checkpoints inside is a step (intact or not:
    # a damaged one then fails to restore and says so); a workdir named "15" is not.
    if path.name.isdigit() and path.is_dir() and not (path / "checkpoints").is_dir():
        return ocp.CheckpointManager(path.parent), int(path.name)
    for candidate in [path / "checkpoints" / name for name in order] + [path]:
        if candidate.is_dir():
            manager = ocp.CheckpointManager(candidate)
            step = manager.latest_step()
            if step is not None:
                return manager, step
    return None


def _step_config(manager: ocp.CheckpointManager, step: int) -> ml_collections.ConfigDict:
    """The training config saved with ``step``."""
    args = ocp.args.Composite(config=ocp.args.JsonRestore())
    return config_from_json(manager.restore(step, args=args).config)


def load_config(path: str | Path) -> ml_collections.ConfigDict:
    """The training config of a checkpoint (model folder, training work directory or one
    of its steps), without loading any weights: what the model was trained on, and how
    its data split. Raises CheckpointError (one line) when it cannot be read."""
    path = Path(path).resolve()
    if (path / "config.json").is_file():
        try:
            return config_from_json(json.loads((path / "config.json").read_text("utf-8")))
        except Exception as e:
            raise CheckpointError(f"{path / 'config.json'}: unreadable ({_why(e)})") from None
    found = _first_step(path, ("latest", "best"))
    if found is None:
        raise FileNotFoundError(f"{path}: no mp3gan checkpoint found (no config.json, no steps)")
    manager, step = found
    try:
        return _step_config(manager, step)
    except Exception as e:
        where = f"{manager.directory} step {step}"
        raise CheckpointError(f"{where}: damaged checkpoint ({_why(e)})") from None


def load_generator(
    path: str | Path | None = None,
) -> tuple[Generator, ml_collections.ConfigDict]:
    """Load a generator with its training config from a checkpoint.

    ``path`` may be a standalone inference checkpoint, a training work directory (its
    best step, else its latest), one of its ``checkpoints/{best,latest}`` managers, or
    one step of a manager (``workdir/checkpoints/latest/2500``: to score a run's steps).
    ``None`` means the shipped model, ``DEFAULT_CHECKPOINT``. Raises CheckpointError
    (one line) for a damaged checkpoint or parameters that are not finite.
    """
    path = Path(DEFAULT_CHECKPOINT if path is None else path).resolve()
    if not path.exists():
        hint = (
            "the shipped model is missing from this checkout (bring it back with "
            "`git checkout -- checkpoints/mp3gan-base`), or pass --checkpoint with a "
            "model of your own"
            if path == DEFAULT_CHECKPOINT
            else "no such checkpoint"
        )
        raise FileNotFoundError(f"{path}: {hint}")
    # A training work directory has a config.json too, but no generator item beside it.
    if (path / "config.json").is_file() and (path / "generator").is_dir():
        try:
            config = config_from_json(json.loads((path / "config.json").read_text()))
            with ocp.StandardCheckpointer() as checkpointer:
                generator = _restore_into(
                    config, lambda target: checkpointer.restore(path / "generator", target)
                )
        except Exception as e:
            raise CheckpointError(f"{path}: damaged checkpoint ({_why(e)})") from None
        check_finite_tree(nnx.state(generator, nnx.Param), str(path))
        return generator, config
    found = _first_step(path, ("best", "latest"))
    if found is None:
        raise FileNotFoundError(f"{path}: no mp3gan checkpoint found (no config.json, no steps)")
    manager, step = found

    def restore(target):
        args = ocp.args.Composite(generator=ocp.args.StandardRestore(target))
        return manager.restore(step, args=args).generator

    where = f"{manager.directory} step {step}"
    try:
        config = _step_config(manager, step)
        generator = _restore_into(config, restore)
    except Exception as e:
        raise CheckpointError(f"{where}: damaged checkpoint ({_why(e)})") from None
    check_finite_tree(nnx.state(generator, nnx.Param), where)
    return generator, config
