"""Training logs: the writer. It writes what it is given and computes nothing.

Every scalar goes to ``<workdir>/metrics.jsonl`` as well as to wandb (offline by default,
never required), so a run can be read without an account. Evaluation media (audio and
figures, computed by :mod:`mp3gan.evaluate`) go to wandb and to
``<workdir>/media/step_<N>/`` as FLAC and PNG files, so they can be heard and seen
without wandb too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import ml_collections
import numpy as np
import soundfile as sf

from mp3gan.files import atomic_path


@dataclasses.dataclass
class Media:
    """One clip's media: audio by kind (``[C, T]`` arrays) and a matplotlib figure."""

    name: str
    sample_rate: int
    audio: dict[str, np.ndarray]
    figure: object


def safe_name(name: str) -> str:
    """``name`` as a file and wandb key: letters, digits, ``.``, ``_`` and ``-`` only
    (wandb media keys and several filesystems refuse ``:``, ``@``, ``/``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "clip"


class Logger:
    """Scalars and evaluation media for one run; a no-op on processes other than 0."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: Path, is_main: bool = True):
        self.is_main = is_main
        self.workdir = Path(workdir)
        self.run = None
        if not is_main:
            return
        mode = os.environ.get("WANDB_MODE") or config.wandb.mode
        if mode != "disabled":
            import wandb

            self.run = wandb.init(
                project=config.wandb.project,
                name=config.wandb.name or self.workdir.name,
                dir=str(self.workdir),
                mode=mode,
                config=config.to_dict(),
                resume="allow",
                id=config.wandb.name or self.workdir.name,
            )

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if not self.is_main:
            return
        with open(self.workdir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **scalars}) + "\n")
        if self.run is not None:
            self.run.log(scalars, step=step)

    def log_media(self, step: int, media: list[Media]) -> None:
        """Write each clip's audio (FLAC) and figure (PNG) to the work directory, and to
        wandb when it runs."""
        if not self.is_main:
            return
        folder = self.workdir / "media" / f"step_{step:07d}"
        folder.mkdir(parents=True, exist_ok=True)
        logged = {}
        for item in media:
            name = safe_name(item.name)
            for kind, audio in item.audio.items():
                # FLAC holds [-1, 1]: clip what a restoration overshoots (listening copy).
                clipped = np.clip(np.asarray(audio, np.float32), -1.0, 1.0).T
                with atomic_path(folder / f"{name}.{kind}.flac") as tmp:
                    sf.write(tmp, clipped, item.sample_rate, format="FLAC", subtype="PCM_24")
                if self.run is not None:
                    import wandb

                    audio_t = np.asarray(audio).T
                    logged[f"audio/{name}/{kind}"] = wandb.Audio(
                        audio_t, sample_rate=item.sample_rate
                    )
            png = folder / f"{name}.png"
            with atomic_path(png) as tmp:
                item.figure.savefig(tmp, format="png", dpi=item.figure.dpi)
            if self.run is not None:
                import wandb

                logged[f"figure/{name}"] = wandb.Image(str(png))
        if logged:
            self.run.log(logged, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
