"""The training loader (grain, worker processes, resumable) and the fixed validation clips.

Stream: batch ``b`` of process ``p`` is a pure function of ``(seed, p, b)`` and of the
process's files: a numpy RNG seeded with ``[seed, p, b]`` draws the crops, degradations
and gains (:class:`mp3gan.data.pairs.PairMaker`). grain maps that function over batch
indices ``start, start + 1, ...`` and spreads the indices over worker processes
(``mp_prefetch``), which hand batches back in index order. Hence:

- the same seed gives the same batches, whatever the number of workers;
- the loader's position is one integer, the next batch index: :meth:`TrainLoader.get_state`
  returns a small JSON-serialisable dict (the position plus fingerprints used to warn
  about a changed setup), and :meth:`TrainLoader.set_state` restarts the workers at that
  index, so a resumed run continues the exact stream without replaying it (it also works
  with a different number of workers, which grain's own per-worker state would not).

Batches are shaped for ``jax.pmap``: ``{"reference", "degraded"}``, each float32
``[num_devices, per_device_batch, crop_samples]``. The model is mono per row: a stereo
crop (encoded as stereo, so joint-stereo artefacts are real) fills two rows, L and R (one
random channel when ``both_channels`` is off: half the rows per encode). The rows of a
batch are shuffled so the two channels of a crop usually land on different devices.

Several training processes (multi-host): each reads a disjoint shard of the training files
(every ``process_count``-th recording by path) and seeds its stream with its index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grain
import numpy as np
from absl import flags

from mp3gan import degrade as degrade_lib
from mp3gan.data.embedded import ensure_embedded_corpus
from mp3gan.data.pairs import (
    MAX_ATTEMPTS,
    PairMaker,
    PairSettings,
    level_db,
)
from mp3gan.data.sources import (
    DataError,
    Recording,
    scan_folder,
    shard_for_process,
    split_recordings,
)

log = logging.getLogger(__name__)

STATE_FORMAT = "mp3gan.data.loader/1"
# Batch indices run from the resume position to here: an endless stream for any run.
_LAST_INDEX = 2**62

# Defaults and one-line meanings of the ``data`` config fields: the one home of them
# (configs/base.py builds its ``data`` section from this table). The pair-making fields
# take their defaults from PairSettings, the dataclass that uses them.
_PAIRS = PairSettings()
DATA_DEFAULTS: dict[str, tuple[Any, str]] = {
    "path": ("", "folder of lossless audio (FLAC/WAV/AIFF, recursive); '' = embedded corpus"),
    "sample_rate": (
        _PAIRS.sample_rate,
        "model rate: files are resampled to it; MP3 needs an MP3 rate",
    ),
    "crop_samples": (
        _PAIRS.crop_samples,
        "training crop length in samples at sample_rate (~0.74 s)",
    ),
    "degradations": (_PAIRS.degradations, "one drawn per crop (mp3gan.degrade specs)"),
    "encode_margin": (
        _PAIRS.encode_margin,
        "samples degraded on each side of a crop, then dropped",
    ),
    "gain_db": (_PAIRS.gain_db, "random gain range (dB), capped below full scale"),
    "silence_db": (_PAIRS.silence_db, "crops quieter than this RMS (dBFS) are redrawn"),
    "both_channels": (True, "a stereo crop fills two rows (L, R); False: one random channel"),
    "validation_fraction": (0.05, "share of recordings held out for validation (by path hash)"),
    "test_fraction": (0.05, "share of recordings held out for the final test"),
    "workers": (2, "grain worker processes making batches; 0 = a thread in the trainer"),
    "prefetch": (2, "batches buffered per worker (or in-process)"),
    "cache_dir": (
        _PAIRS.cache_dir,
        "'' = encode every crop; else the prepared pair cache (whole-file "
        "encodes; launch/prepare_data.py --pair-cache)",
    ),
    "mix": (
        _PAIRS.mix,
        "share of draws per manifest kind or source (NAME=SHARE); () = by duration",
    ),
    "lead_in": (
        _PAIRS.lead_in,
        "share of crops that open with up to half a crop of silence before their "
        "file's start (attacks after silence, as songs and one-shots begin)",
    ),
}


def default_data_config():
    """The ``data`` ConfigDict with every field at its default (see DATA_DEFAULTS)."""
    import ml_collections  # only the trainer side needs it, not the workers

    return ml_collections.ConfigDict({k: v for k, (v, _) in DATA_DEFAULTS.items()})


def _field(data_config, name: str):
    """A config field, or its default when the config predates it."""
    value = data_config.get(name, None) if hasattr(data_config, "get") else None
    return DATA_DEFAULTS[name][0] if value is None else value


def corpus_root(data_config) -> Path:
    """``data_config.path``, or the embedded corpus (built on first use) when it is ''."""
    path = str(_field(data_config, "path") or "")
    if not path:
        return ensure_embedded_corpus()
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data.path is not a folder")
    return root


def load_split(data_config, split: str) -> tuple[Path, list[Recording]]:
    """The corpus root and the recordings of one split (train, validation or test)."""
    return _load_splits(data_config, (split,))[split]


def _load_splits(data_config, names) -> dict[str, tuple[Path, list[Recording]]]:
    root = corpus_root(data_config)
    splits = split_recordings(
        scan_folder(root),
        float(_field(data_config, "validation_fraction")),
        float(_field(data_config, "test_fraction")),
    )
    for split in names:
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; use one of {sorted(splits)}")
        if not splits[split]:
            raise DataError(f"{root}: the {split} split is empty (a corpus needs at least 3 files)")
    return {split: (root, splits[split]) for split in names}


def check_corpus(data_config) -> None:
    """Raise DataError (one line naming the folder) unless training can start on the
    corpus: the folder exists, holds usable audio, and gives both a training and a
    validation split. Cheap after the first time (the folder's index is cached)."""
    _load_splits(data_config, ("train", "validation"))


def pair_settings(data_config, **overrides) -> PairSettings:
    """The pair-making settings of a ``data`` config (missing fields at their defaults)."""
    fields = {
        "sample_rate": int(_field(data_config, "sample_rate")),
        "crop_samples": int(_field(data_config, "crop_samples")),
        "degradations": tuple(_field(data_config, "degradations")),
        "encode_margin": int(_field(data_config, "encode_margin")),
        "gain_db": tuple(float(g) for g in _field(data_config, "gain_db")),
        "silence_db": float(_field(data_config, "silence_db")),
        "cache_dir": str(_field(data_config, "cache_dir") or ""),
        "mix": tuple(str(m) for m in _field(data_config, "mix")),
        "lead_in": float(_field(data_config, "lead_in")),
    }
    return PairSettings(**{**fields, **overrides})


@dataclass
class _BatchMaker:
    """Batch index -> pmap-shaped batch; pickled into each grain worker."""

    pairs: PairMaker
    num_devices: int
    per_device_batch: int
    seed: int
    process_index: int
    both_channels: bool

    def __call__(self, batch_index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.process_index, int(batch_index)])
        rows = self.num_devices * self.per_device_batch
        references, degraded = [], []
        while len(references) < rows:
            pair = self.pairs.random_pair(rng)
            channels = pair.reference.shape[0]
            if self.both_channels and channels <= rows - len(references):
                picked = range(channels)
            else:
                picked = [int(rng.integers(channels))]
            references.extend(pair.reference[c] for c in picked)
            degraded.extend(pair.degraded[c] for c in picked)
        # Spread the two channels of a crop over the batch (and over devices).
        order = rng.permutation(rows)
        shape = (self.num_devices, self.per_device_batch, -1)
        return {
            "reference": np.stack(references)[order].reshape(shape),
            "degraded": np.stack(degraded)[order].reshape(shape),
        }


def _fingerprint(recordings: Sequence[Recording]) -> str:
    text = "\n".join(f"{r.path}|{r.size}|{r.mtime_ns}" for r in recordings)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _ignore_interrupts(worker_index: int, worker_count: int) -> None:
    """Workers ignore Ctrl-C and SIGTERM: a terminal or a scheduler signals the whole
    process group, and a worker dying mid-batch leaks its shared memory and starves the
    trainer's last step. The trainer stops them (close())."""
    del worker_index, worker_count
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A scheduler's SIGTERM to the whole group (scancel) is the trainer's to handle: it
    # needs one more batch to reach the agreed stop step, then stops the workers itself.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class TrainLoader:
    """Endless iterator of training batches with ``get_state()`` / ``set_state()``.

    Call :meth:`close` (or use ``with``) to stop the worker processes.
    """

    def __init__(
        self,
        batch_maker: _BatchMaker,
        workers: int,
        prefetch: int,
        files_fingerprint: str,
        process_count: int,
    ):
        self._maker = batch_maker
        self._workers = int(workers)
        self._prefetch = max(1, int(prefetch))
        self._fingerprint = files_fingerprint
        self._process_count = process_count
        self._next_batch = 0
        self._iterator = None

    def _start(self):
        dataset = grain.MapDataset.range(self._next_batch, _LAST_INDEX).map(self._maker)
        # One thread per process: the work is CPU-bound, parallelism comes from workers.
        read = grain.ReadOptions(num_threads=1, prefetch_buffer_size=self._prefetch)
        iter_dataset = dataset.to_iter_dataset(read)
        if self._workers > 0:
            # grain reads one of its absl flags when it starts workers and fails if the
            # program never parsed flags (google/grain#1355): parse-as-default then. A
            # trainer that parses its own flags later (absl.app) still can.
            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()
            iter_dataset = iter_dataset.mp_prefetch(
                grain.MultiprocessingOptions(
                    num_workers=self._workers, per_worker_buffer_size=self._prefetch
                ),
                worker_init_fn=_ignore_interrupts,
            )
        self._iterator = iter(iter_dataset)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iterator is None:
            self._start()
        shared = next(self._iterator)
        self._next_batch += 1
        # Workers hand batches over in shared memory; copy them out at once, so that a
        # stop at any moment leaves no segment alive outside grain's own queues (which
        # its close() unlinks). A few MB a step, next to a step of seconds.
        return {key: np.array(value, copy=True) for key, value in shared.items()}

    @property
    def recordings(self) -> list[Recording]:
        """The files this process reads (its shard of the training split)."""
        return list(self._maker.pairs.recordings)

    @property
    def batch_shape(self) -> tuple[int, int, int]:
        m = self._maker
        return (m.num_devices, m.per_device_batch, m.pairs.settings.crop_samples)

    def get_state(self) -> dict[str, Any]:
        """The stream position as a small JSON-serialisable dict (ints and strings).

        It is the same on every process of a multi-process run (processes step in
        lockstep, and the file fingerprint covers the whole training split, from which
        each process's shard follows), so one saved copy resumes them all.
        """
        m = self._maker
        return {
            "format": STATE_FORMAT,
            "next_batch": self._next_batch,
            "seed": m.seed,
            "process_count": self._process_count,
            "batch_shape": list(self.batch_shape),
            "files": self._fingerprint,
            "degradations": list(m.pairs.settings.degradations),
            "mix": list(m.pairs.settings.mix),
        }

    def set_state(self, state: dict[str, Any] | str | bytes) -> None:
        """Continue from a :meth:`get_state` result (the dict, or its JSON text/bytes).

        A different seed, batch shape, process layout or file list still resumes at the
        saved position, but the stream is no longer the one that was saved: we warn.
        """
        if isinstance(state, str | bytes):
            state = json.loads(state)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} loader state: {state!r:.200}")
        next_batch = state.get("next_batch")
        if not isinstance(next_batch, int) or next_batch < 0:
            raise ValueError(f"loader state has a bad next_batch: {next_batch!r}")
        current = self.get_state()
        changed = [k for k in current if k != "next_batch" and state.get(k) != current[k]]
        if changed:
            log.warning(
                "resuming the data stream at batch %d with a changed %s: the batches will "
                "differ from the saved run's",
                next_batch,
                ", ".join(changed),
            )
        self.close()
        self._next_batch = next_batch

    def close(self) -> None:
        """Stop the worker processes (a later ``next()`` restarts them)."""
        if self._iterator is not None:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
            self._iterator = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to report to
            pass


def make_train_loader(
    data_config,
    *,
    num_devices: int,
    per_device_batch: int,
    seed: int,
    process_index: int | None = None,
    process_count: int | None = None,
) -> TrainLoader:
    """The training stream for this process: batches ``[num_devices, per_device_batch, crop]``.

    ``process_index``/``process_count`` default to ``jax.process_index()`` and
    ``jax.process_count()``. Workers start on the first ``next()``.
    """
    if process_index is None or process_count is None:
        import jax  # the data workers never import jax; only the trainer asks it

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if num_devices < 1 or per_device_batch < 1:
        raise ValueError(
            f"need num_devices, per_device_batch >= 1; got {num_devices}, {per_device_batch}"
        )
    root, train = load_split(data_config, "train")
    shard = shard_for_process(train, process_index, process_count)
    pairs = PairMaker(root, shard, pair_settings(data_config))
    if pairs.settings.cache_dir:
        cached, total = pairs.cache_coverage()
        (log.info if cached == total else log.warning)(
            "pair cache %s holds %d of %d (file, degradation) encodes%s%s",
            pairs.settings.cache_dir, cached, total,
            "" if cached == total else "; the rest are encoded on the fly (slower)",
            # The cache keeps each file's span only: crops that open before it cannot use it.
            f"; the {pairs.settings.lead_in:.0%} of crops that open before their file "
            "(data.lead_in) are encoded on the fly" if pairs.settings.lead_in > 0 else "",
        )  # fmt: skip
    maker = _BatchMaker(
        pairs=pairs,
        num_devices=num_devices,
        per_device_batch=per_device_batch,
        seed=int(seed),
        process_index=process_index,
        both_channels=bool(_field(data_config, "both_channels")),
    )
    log.info(
        "training data: %s, %d of %d training recordings (process %d of %d), %.1f min",
        root,
        len(shard),
        len(train),
        process_index,
        process_count,
        sum(r.duration_s for r in shard) / 60,
    )
    return TrainLoader(
        maker,
        workers=int(_field(data_config, "workers")),
        prefetch=int(_field(data_config, "prefetch")),
        files_fingerprint=_fingerprint(train),
        process_count=process_count,
    )


def _stable_int(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def validation_clips(
    data_config,
    n_clips: int,
    clip_samples: int,
    degradations: Sequence[str] | Sequence[Any] | None,
    split: str = "validation",
) -> list[degrade_lib.Clip]:
    """Fixed evaluation clips: identical on every call, machine and worker count.

    Clip ``i`` comes from the split's file ``i mod n_files`` (sorted by path), at a crop
    position drawn from a hash of the path and the round ``i // n_files`` (redrawn while
    silent), degraded by ``degradations[(file + round) mod n_degradations]`` (spec strings or
    degradations; None = the training list), with no gain and all channels.
    Each is a :class:`mp3gan.degrade.Clip` of ``clip_samples`` samples.
    """
    root, recordings = load_split(data_config, split)
    if degradations is None:
        degradations = _field(data_config, "degradations")
    degs = [degrade_lib.parse_degradation(d) if isinstance(d, str) else d for d in degradations]
    if not degs:
        raise ValueError("validation_clips needs at least one degradation")
    # No cache: validation always reads the source, so it never depends on a cache's state.
    settings = pair_settings(
        data_config,
        crop_samples=int(clip_samples),
        degradations=tuple(d.name for d in degs),
        cache_dir="",
    )
    pairs = PairMaker(root, recordings, settings)
    clips = []
    for i in range(n_clips):
        file_index, round_ = i % len(recordings), i // len(recordings)
        recording = recordings[file_index]
        # Each file meets the degradations in turn over the rounds.
        degradation = degs[(file_index + round_) % len(degs)]
        rng = np.random.default_rng([_stable_int(recording.path), round_])
        for _ in range(MAX_ATTEMPTS):
            start = pairs.random_start(recording, rng, clip_samples)
            if (
                level_db(pairs.read_reference(recording, start, clip_samples))
                >= settings.silence_db
            ):
                break
        pair = pairs.pair_at(recording, start, degradation, length=clip_samples)
        stem = Path(recording.path).with_suffix("").as_posix().replace("/", "_")
        clips.append(
            degrade_lib.Clip(
                name=f"{i:02d}-{stem}",
                degradation=degradation.name,
                reference=pair.reference,
                degraded=pair.degraded,
                sample_rate=settings.sample_rate,
                path=recording.path,
                start=start,
            )
        )
    return clips
