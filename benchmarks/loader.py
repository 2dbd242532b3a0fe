"""Throughput of the training loader, with and without the pair cache, beside the train step.

    python benchmarks/loader.py                    # embedded corpus, base-config crops
    python benchmarks/loader.py --path data/corpus --cache-dir data/pair-cache --workers 0,2

An example is one row of a batch: one channel of ``crop_samples`` (a stereo crop fills
two rows). Each setting starts a fresh loader; the first batch (worker start-up) is timed
apart, then ``--batches`` batches are timed. Without ``--cache-dir`` the cache is built
first into a temporary folder (and that time reported); with it, the prepared cache is
used as it is (its coverage is printed). The train step's consumption is printed for
comparison: ``--batch`` examples per step at ``--step-seconds`` (the base config's
warm-up and GAN steps on a 2-core CPU, measured with benchmarks/train_step.py). Prints
figures; not a test.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from mp3gan.data import loader as data_loader
from mp3gan.data.pairs import PairMaker, build_pair_cache


def measure(config, batch: int, batches: int) -> tuple[float, float, float]:
    """(seconds to the first batch, examples per second after it, CPU ms per example).

    The CPU figure counts this process only, so it is the full cost with 0 workers (the
    batches are made by a thread here) and does not depend on other load on the machine.
    """
    loader = data_loader.make_train_loader(
        config, num_devices=1, per_device_batch=batch, seed=0, process_index=0, process_count=1
    )
    with loader:
        start = time.perf_counter()
        next(loader)
        first = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(loader)
        examples = batches * batch
        cpu_ms = (time.process_time() - cpu) / examples * 1e3
        return first, examples / (time.perf_counter() - start), cpu_ms


def _consumption(batch: int, step_seconds: list[float]) -> float:
    """Print what the train step eats; returns the hungriest rate (examples/s)."""
    rates = [batch / s for s in step_seconds]
    names = ["warm-up", "GAN"] + [f"step {i}" for i in range(2, len(rates))]
    parts = [f"{n} step {s:.1f} s: {r:.1f} examples/s" for n, s, r in
             zip(names, step_seconds, rates, strict=False)]  # fmt: skip
    print(f"train step consumes {batch} examples per step; " + "; ".join(parts))
    print(f"the loader should deliver >= 3x the hungriest: {3 * max(rates):.1f} examples/s")
    return max(rates)


def _prepare_cache(config, cache_dir: str, given: bool) -> None:
    root, train = data_loader.load_split(config, "train")
    if not given:
        start = time.perf_counter()
        summary = build_pair_cache(root, cache_dir, config.degradations, progress=False)
        took = time.perf_counter() - start
        print(f"cache built: {sum(summary.encoded.values())} whole-file encodes in {took:.1f} s")
    pairs = PairMaker(root, train, data_loader.pair_settings(config))
    cached, total = pairs.cache_coverage()
    print(f"cache {cache_dir}: {cached} of {total} (file, degradation) encodes present")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--path", default="", help="corpus folder ('' = the embedded corpus)")
    p.add_argument("--crop", type=int, default=32768, help="crop_samples (base config: 32768)")
    p.add_argument("--batch", type=int, default=16, help="rows per batch (base config: 16)")
    p.add_argument("--batches", type=int, default=20, help="batches timed per setting")
    p.add_argument("--workers", default="0,1,2", help="worker counts to try (0 = in-process)")
    p.add_argument("--cache-dir", default="", help="a prepared pair cache (default: build one)")
    p.add_argument("--degradations", default="",
                   help="comma-separated specs (default: the base config's)")  # fmt: skip
    p.add_argument("--step-seconds", default="1.0,2.3",
                   help="train step seconds to compare with (base config, 2-core CPU: "
                   "warm-up, GAN)")  # fmt: skip
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = data_loader.default_data_config()
    config.path = args.path
    config.crop_samples = args.crop
    if args.degradations:
        config.degradations = tuple(d.strip() for d in args.degradations.split(","))
    root = data_loader.corpus_root(config)
    print(
        f"corpus {root}; crop {args.crop}; batch {args.batch}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f} (other processes compete for the CPUs)"
    )
    print(f"degradations {', '.join(config.degradations)}; mix {', '.join(config.mix)}")
    need = _consumption(args.batch, [float(s) for s in args.step_seconds.split(",")])

    with tempfile.TemporaryDirectory(prefix="mp3gan-bench-cache-") as tmp:
        for cache in (False, True):
            config.cache_dir = (args.cache_dir or tmp) if cache else ""
            if cache:
                _prepare_cache(config, config.cache_dir, bool(args.cache_dir))
            for workers in [int(w) for w in args.workers.split(",")]:
                config.workers = workers
                first, rate, cpu_ms = measure(config, args.batch, args.batches)
                cost = f"  {cpu_ms:6.1f} CPU ms/example" if workers == 0 else ""
                print(
                    f"workers {workers}  cache {'on ' if cache else 'off'}  "
                    f"first batch {first:5.1f} s  {rate:7.1f} examples/s  "
                    f"({rate / need:5.1f}x the train step's need){cost}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
