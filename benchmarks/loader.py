"""Throughput of the training loader: examples (rows) per second, by workers and cache.

    python benchmarks/loader.py                    # embedded corpus, base-config crops
    python benchmarks/loader.py --path data/corpus --workers 1,2,4,8 --batches 40

An example is one row of a batch: one channel of ``crop_samples`` (a stereo crop fills
two rows). Each setting starts a fresh loader; the first batch (worker start-up) is timed
apart, then ``--batches`` batches are timed. "cache on" first fills the encode cache for
every (file, degradation) of the training split and reports how long that took.
Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

from mp3gan.data import loader as data_loader
from mp3gan.data.pairs import PairMaker


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--path", default="", help="corpus folder ('' = the embedded corpus)")
    p.add_argument("--crop", type=int, default=32768, help="crop_samples (base config: 32768)")
    p.add_argument("--batch", type=int, default=16, help="rows per batch")
    p.add_argument("--batches", type=int, default=20, help="batches timed per setting")
    p.add_argument("--workers", default="0,1,2,4", help="worker counts to try (0 = in-process)")
    p.add_argument("--cache-dir", default="", help="encode cache (default: a temporary folder)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = data_loader.default_data_config()
    config.path = args.path
    config.crop_samples = args.crop
    root = data_loader.corpus_root(config)
    print(
        f"corpus {root}; crop {args.crop}; batch {args.batch}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f} (other processes compete for the CPUs)"
    )
    print(f"degradations {', '.join(config.degradations)}")

    with tempfile.TemporaryDirectory(prefix="mp3gan-bench-cache-") as tmp:
        cache_dir = args.cache_dir or tmp
        for cache in (False, True):
            config.cache_dir = cache_dir if cache else ""
            if cache:
                root, train = data_loader.load_split(config, "train")
                start = time.perf_counter()
                pairs = PairMaker(root, train, data_loader.pair_settings(config))
                n = pairs.fill_cache()
                print(
                    f"cache fill: {n} whole-file encodes in {time.perf_counter() - start:.1f} s"
                    " (one process; a reused --cache-dir is already full)"
                )
            for workers in [int(w) for w in args.workers.split(",")]:
                config.workers = workers
                first, rate, cpu_ms = measure(config, args.batch, args.batches)
                cost = f"  {cpu_ms:5.1f} CPU ms/example" if workers == 0 else ""
                print(
                    f"workers {workers}  cache {'on ' if cache else 'off'}  "
                    f"first batch {first:5.1f} s  {rate:7.1f} examples/s  "
                    f"({rate * args.crop / config.sample_rate:6.1f} s of audio per s){cost}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
