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
"""

from __future__ import annotations

import json
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


def restore_step(
    manager: ocp.CheckpointManager, generator_params: nnx.State, train: dict
) -> tuple[int, nnx.State, dict, dict] | None:
    """Restore the latest step into the given structures; None when there is none."""
    step = manager.latest_step()
    if step is None:
        return None
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            generator=ocp.args.StandardRestore(abstract_like(generator_params)),
            train=ocp.args.StandardRestore(abstract_like(train)),
            loader=ocp.args.JsonRestore(),
        ),
    )
    return step, restored.generator, restored.train, restored.loader


class TrainCheckpoints:
    """A training work directory's checkpoints: the latest steps and the best one.

    Owns both orbax managers and the layout of a step (see the module docstring), so the
    trainer only says *when* to save and what the score was.
    """

    def __init__(self, workdir: str | Path, keep: int = 2):
        self.latest, self.best = managers(workdir, keep=keep)

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def restore(self, state, loader):
        """The latest saved state (and the loader moved to its position), or None."""
        from mp3gan.steps import checkpoint_items, state_from_checkpoint

        restored = restore_step(self.latest, *checkpoint_items(state))
        if restored is None:
            return None
        _, g_params, train, loader_state = restored
        loader.set_state(loader_state)
        return state_from_checkpoint(g_params, train)

    def save(
        self,
        step: int,
        host_state,
        loader_state: dict,
        config: ml_collections.ConfigDict,
        score: float | None = None,
        lower_is_better: bool = True,
    ) -> None:
        """Save ``step`` as the latest, and as the best when ``score`` (the evaluation's
        ``train.best_metric``) is given; the best manager keeps the best by score."""
        from mp3gan.steps import checkpoint_items

        g_params, train = checkpoint_items(host_state)
        save_step(self.latest, step, g_params, train, loader_state, config)
        if score is not None:
            ranked = {"score": score if lower_is_better else -score}
            save_step(self.best, step, g_params, train, loader_state, config, ranked)
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


def load_config(path: str | Path) -> ml_collections.ConfigDict:
    """The training config of a checkpoint (model folder or training work directory),
    without loading any weights: what the model was trained on, and how its data split."""
    path = Path(path).resolve()
    if (path / "config.json").is_file():
        return config_from_json(json.loads((path / "config.json").read_text(encoding="utf-8")))
    for candidate in (path / "checkpoints" / "latest", path / "checkpoints" / "best", path):
        if candidate.is_dir():
            manager = ocp.CheckpointManager(candidate)
            step = manager.latest_step()
            if step is not None:
                args = ocp.args.Composite(config=ocp.args.JsonRestore())
                return config_from_json(manager.restore(step, args=args).config)
    raise FileNotFoundError(f"{path}: no mp3gan checkpoint found (no config.json, no steps)")


def load_generator(
    path: str | Path | None = None,
) -> tuple[Generator, ml_collections.ConfigDict]:
    """Load a generator with its training config from a checkpoint.

    ``path`` may be a standalone inference checkpoint, a training work directory (its
    best step, else its latest), or one of its ``checkpoints/{best,latest}`` managers.
    ``None`` means the shipped model, ``DEFAULT_CHECKPOINT``.
    """
    path = Path(DEFAULT_CHECKPOINT if path is None else path).resolve()
    if not path.exists():
        hint = (
            "no shipped model exists yet; train one with "
            "`python launch/train.py --config configs/base.py --workdir workdir/base` "
            "and pass --checkpoint workdir/base"
            if path == DEFAULT_CHECKPOINT
            else "no such checkpoint"
        )
        raise FileNotFoundError(f"{path}: {hint}")
    # A training work directory has a config.json too, but no generator item beside it.
    if (path / "config.json").is_file() and (path / "generator").is_dir():
        config = config_from_json(json.loads((path / "config.json").read_text()))
        with ocp.StandardCheckpointer() as checkpointer:
            generator = _restore_into(
                config, lambda target: checkpointer.restore(path / "generator", target)
            )
        return generator, config
    for candidate in (path / "checkpoints" / "best", path / "checkpoints" / "latest", path):
        if not candidate.is_dir():
            continue
        manager = ocp.CheckpointManager(candidate)
        step = manager.latest_step()
        if step is None:
            continue
        config = config_from_json(
            manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config
        )

        def restore(target, manager=manager, step=step):
            args = ocp.args.Composite(generator=ocp.args.StandardRestore(target))
            return manager.restore(step, args=args).generator

        return _restore_into(config, restore), config
    raise FileNotFoundError(f"{path}: no mp3gan checkpoint found (no config.json, no steps)")
