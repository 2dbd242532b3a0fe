"""Print what each model size costs and how fast it runs here: the issue-12 figures.

    python benchmarks/models.py                          # tiny, base, large
    python benchmarks/models.py --sizes base --restore-minutes 10

For each config (configs/tiny.py, base.py, large.py):

1. parameters, and GMAC per channel-second of the generator and of the discriminators
   (one forward pass; XLA's cost analysis of the compiled call, mp3gan.models.cost);
2. restore speed through ``launch/restore.py`` as a whole process: a 10-second file
   (start-up: imports, model build, compile; little to process) and a
   ``--restore-minutes`` 44.1 kHz stereo WAV; the difference is the processing time;
3. train-step time at batch 16 x 32768 samples (warm-up step and full GAN step) and the
   audio-seconds per second they train on, after compilation, on synthetic batches;
4. peak RSS of ``launch/train.py`` running a few steps of the config (the trainer
   process; the loader's workers are separate processes of their own).

Weights are untrained (a trained model has the same shapes and cost). Prints figures;
asserts nothing about time. The load average is printed: these are 2 shared cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SR, load_config, write_long
from train_step import time_steps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BATCH, CROP = 16, 32768


def cost(config) -> None:
    from flax import nnx

    from mp3gan import models
    from mp3gan.models.cost import gmac_per_channel_second, parameter_count

    gen = models.build_generator(config.model.generator, nnx.Rngs(0))
    disc = models.Discriminators(**config.model.discriminator, rngs=nnx.Rngs(1))
    g_cost = gmac_per_channel_second(gen, SR, 1.0)
    d_cost = gmac_per_channel_second(disc, SR, 1.0)
    print(
        f"  parameters: G {parameter_count(gen) / 1e6:.2f} M, D {parameter_count(disc) / 1e6:.2f} M"
    )
    print(
        f"  GMAC per channel-second: G {g_cost:.3f}, D {d_cost:.3f} per pass "
        f"(D judges train.disc_crop = {config.train.get('disc_crop', 0)} of {CROP} samples)"
    )
    before, after = gen.context
    print(f"  context: {before} samples before, {after} after ({after / SR * 1000:.0f} ms)")


def restore_speed(config, size: str, minutes: float, tmp: Path) -> None:
    from flax import nnx

    from mp3gan import models
    from mp3gan.checkpoint import save_generator

    generator = models.build_generator(config.model.generator, nnx.Rngs(0))
    save_generator(tmp / size, generator, config)
    short, long = tmp / "short.wav", tmp / "long.wav"
    write_long(short, 10.0)
    if not long.exists():
        write_long(long, 60 * minutes)
    walls = []
    for src in (short, long):
        cmd = [sys.executable, str(ROOT / "launch" / "restore.py"), str(src)]
        cmd += ["-o", str(tmp / "out.wav"), "-q", "--checkpoint", str(tmp / size)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        walls.append(time.perf_counter() - t0)
    seconds = 60 * minutes
    work = walls[1] - walls[0]
    print(
        f"  restore {minutes:g} min stereo 44.1 kHz through launch/restore.py: "
        f"{walls[1]:.1f} s whole process ({seconds / walls[1]:.1f}x real time); start-up "
        f"and compile {walls[0]:.1f} s (a 1 s file), processing {work:.1f} s "
        f"({seconds / max(work, 1e-9):.1f}x real time); load {os.getloadavg()[0]:.1f}"
    )


def step_speed(config, steps: int) -> None:
    config.train.batch_size = BATCH
    config.data.crop_samples = CROP
    for adversarial, name in ((False, "warm-up (reconstruction)"), (True, "GAN (G and D)")):
        compile_s, per_step = time_steps(config, adversarial, steps)
        audio = BATCH * CROP / SR / per_step
        print(
            f"  {name} step, batch {BATCH} x {CROP}: {per_step:.2f} s "
            f"({audio:.1f} audio-seconds/s; compile {compile_s:.0f} s); "
            f"load {os.getloadavg()[0]:.1f}"
        )


_LAUNCHER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def train_memory(size: str, tmp: Path, steps: int = 3) -> None:
    cmd = [sys.executable, str(ROOT / "launch" / "train.py")]
    cmd += [f"--config={ROOT / 'configs' / f'{size}.py'}", f"--workdir={tmp / f'train-{size}'}"]
    cmd += [f"--config.train.steps={steps}", "--config.wandb.mode=disabled"]
    cmd += ["--config.train.eval_every=100000", "--config.train.first_eval_minutes=0"]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  training run failed: {out.stderr.strip()[-300:]}")
        return
    mb = int(out.stdout.split()[-1]) / 1024
    print(
        f"  launch/train.py, {steps} steps: peak RSS {mb:.0f} MB (trainer process), "
        f"{time.perf_counter() - t0:.0f} s wall"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["tiny", "base", "large"])
    p.add_argument("--restore-minutes", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=3, help="timed train steps per variant")
    p.add_argument("--skip", nargs="*", default=[], choices=["restore", "step", "memory"])
    args = p.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPU cores, {sys.platform}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            config = load_config(ROOT / "configs" / f"{size}.py")
            print(f"{size} (configs/{size}.py, generator kind {config.model.generator['kind']}):")
            cost(config)
            if "restore" not in args.skip:
                restore_speed(config, size, args.restore_minutes, Path(tmp))
            if "step" not in args.skip:
                step_speed(config, args.steps)
            if "memory" not in args.skip:
                train_memory(size, Path(tmp))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
