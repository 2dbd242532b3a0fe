"""Training logs: wandb (offline by default, never required), a JSONL file, eval media.

Every scalar goes to ``<workdir>/metrics.jsonl`` as well as to wandb, so a run can be
read without an account. At evaluation the held-out clips are scored for the MP3 input
and for the restoration (lesson 2), and a few clips are logged as audio with a
spectrogram / pre-echo / coherence figure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections
import numpy as np

from mp3gan import evaluate, plots


class Logger:
    """Scalars and evaluation media for one run; a no-op on processes other than 0."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: Path, is_main: bool = True):
        self.is_main = is_main
        self.config = config
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

    def log_evaluation(self, step: int, predict, clips: list[dict]) -> dict[str, float]:
        """Score ``predict`` on ``clips``; returns the model's mean output metrics."""
        records = evaluate.evaluate_clips({"model": predict}, clips)
        summary = evaluate.summarize(records)
        flat: dict[str, float] = {}
        for row in summary:
            if row["method"] != "model":
                continue
            for metric, stats in row["metrics"].items():
                for part in ("input", "output", "improvement"):
                    # None marks an undefined metric (e.g. pre-echo without onsets).
                    if stats[part]["mean"] is not None:
                        flat[f"eval/{row['degradation']}/{metric}/{part}"] = stats[part]["mean"]
        means: dict[str, list[float]] = {}
        for record in records:
            for metric, value in record["output"].items():
                if value is not None:
                    means.setdefault(metric, []).append(value)
        best = {k: float(np.mean(v)) for k, v in means.items()}
        if self.is_main:
            self.log_scalars(step, flat)
            self._log_media(step, predict, clips)
        return best

    def _log_media(self, step: int, predict, clips: list[dict]) -> None:
        if self.run is None:
            return
        import matplotlib.pyplot as plt
        import wandb

        media = {}
        for clip in clips[: self.config.wandb.media_clips]:
            sr = clip["sample_rate"]
            restored = predict(clip["degraded"], sr)
            name = f"{clip['name']}@{clip['degradation']}"
            for kind, audio in (
                ("reference", clip["reference"]),
                ("mp3", clip["degraded"]),
                ("restored", restored),
            ):
                media[f"audio/{name}/{kind}"] = wandb.Audio(audio.T, sample_rate=sr)
            fig = plots.restoration_figure(
                clip["reference"], clip["degraded"], restored, sr, title=f"{name}, step {step}"
            )
            media[f"figure/{name}"] = wandb.Image(fig)
            plt.close(fig)
        self.run.log(media, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
