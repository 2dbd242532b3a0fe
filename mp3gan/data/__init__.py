"""Training data: lossless corpora, on-the-fly aligned MP3 pairs, and the grain loader.

- :mod:`mp3gan.data.sources`: folder scan -> manifest (cached JSONL), split by recording;
- :mod:`mp3gan.data.embedded`: the synthetic default corpus, built on first use;
- :mod:`mp3gan.data.pairs`: aligned (reference, degraded) crops, optional encode cache;
- :mod:`mp3gan.data.loader`: the resumable pmap-shaped training loader and the fixed
  validation clips.
"""

from mp3gan.data.loader import (
    DATA_DEFAULTS,
    TrainLoader,
    corpus_root,
    default_data_config,
    make_train_loader,
    validation_clips,
)
from mp3gan.data.sources import DataError, Recording, scan_folder, split_recordings

__all__ = [
    "DATA_DEFAULTS",
    "DataError",
    "Recording",
    "TrainLoader",
    "corpus_root",
    "default_data_config",
    "make_train_loader",
    "scan_folder",
    "split_recordings",
    "validation_clips",
]
