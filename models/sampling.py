"""Training and evaluation input pipelines over Transform's output, with source-balanced batches.

Balanced mode keeps one stream per source and samples between them with fixed shares
(`tf.data.Dataset.sample_from_datasets`), so each batch is about half ads, half promotions.
The minority streams named in `cache_sources` are filtered out of the files once and then
served from memory: the files are read once per pass over the majority source, not once per
pass over the (many more often repeated) minority source.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from models.config import BALANCED, ModelConfig
from core.fields import SOURCES

PARSE_BATCH = 2048


def _files(file_pattern) -> List[str]:
    patterns = file_pattern if isinstance(file_pattern, (list, tuple)) else [file_pattern]
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def read_examples(file_pattern, feature_spec: Dict, counter: Optional[tf.Variable] = None) -> tf.data.Dataset:
    """Unbatched dicts of transformed features, in file order (deterministic)."""
    ds = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP")
    ds = ds.batch(PARSE_BATCH).map(lambda x: tf.io.parse_example(x, feature_spec),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if counter is not None:  # counts records read from the files (for the benchmark)
        def count(batch):
            first = next(iter(batch.values()))
            with tf.control_dependencies([counter.assign_add(tf.shape(first, out_type=tf.int64)[0])]):
                return {k: tf.identity(v) for k, v in batch.items()}
        ds = ds.map(count)
    return ds.unbatch()


def _of_sources(ds: tf.data.Dataset, sources) -> tf.data.Dataset:
    ids = tf.constant([SOURCES.index(s) for s in sources], tf.int64)
    return ds.filter(lambda x: tf.reduce_any(tf.equal(x["source"], ids)))


def source_counts(file_pattern) -> Dict[str, int]:
    """Training examples per source in the files (reads only the `source` column)."""
    spec = {"source": tf.io.FixedLenFeature([], tf.int64)}
    ds = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP").batch(PARSE_BATCH)
    ds = ds.map(lambda x: tf.io.parse_example(x, spec)["source"], num_parallel_calls=tf.data.AUTOTUNE)
    counts = np.zeros(len(SOURCES), np.int64)
    for ids in ds:
        counts += np.bincount(ids.numpy(), minlength=len(SOURCES))
    return {s: int(n) for s, n in zip(SOURCES, counts)}


def train_dataset(file_pattern, feature_spec: Dict, cfg: ModelConfig, batch_size: Optional[int] = None,
                  counter: Optional[tf.Variable] = None, examples: Optional[tf.data.Dataset] = None,
                  counts: Optional[Dict[str, int]] = None) -> tf.data.Dataset:
    """Endless batches for training (length is set in steps), reproducible for cfg.seed.

    `examples`: the training examples already read (e.g. cached in memory across tuning trials);
    `counts`: examples per source, needed by temperature shares (read from the files if absent)."""
    batch_size = batch_size or cfg.batch_size
    if examples is None:
        examples = read_examples(file_pattern, feature_spec, counter)
    if cfg.mix != BALANCED or len(cfg.train_sources) == 1:
        ds = _of_sources(examples, cfg.train_sources)
        if set(cfg.train_sources) <= set(cfg.cache_sources):  # e.g. ads-only: one read, then from memory
            ds = ds.cache()
        ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed).repeat()
    else:
        if cfg.source_shares is None and cfg.source_alpha > 0 and counts is None:
            counts = source_counts(file_pattern)
        shares = cfg.shares(counts)
        streams = []
        for i, source in enumerate(shares):
            s = _of_sources(examples, [source])
            if source in cfg.cache_sources:
                s = s.cache()
            streams.append(s.shuffle(cfg.shuffle_buffer, seed=cfg.seed + i).repeat())
        ds = tf.data.Dataset.sample_from_datasets(streams, weights=list(shares.values()), seed=cfg.seed)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(file_pattern, feature_spec: Dict, batch_size: int = 4096,
                 max_examples: Optional[int] = None) -> tf.data.Dataset:
    """One pass in file order, the logged mix, every source."""
    ds = read_examples(file_pattern, feature_spec)
    if max_examples:
        ds = ds.take(max_examples)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_examples(file_pattern, feature_spec: Dict):
    """Every example of the files read once into memory: (a dataset over them, counts per source).

    For repeated trainings on one split (tuning trials): each trial then reads memory, not files."""
    chunks: Dict[str, list] = {}
    ds = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP").batch(PARSE_BATCH)
    for batch in ds.map(lambda x: tf.io.parse_example(x, feature_spec), num_parallel_calls=tf.data.AUTOTUNE):
        for name, value in batch.items():
            chunks.setdefault(name, []).append(value.numpy())
    arrays = {name: np.concatenate(parts) for name, parts in chunks.items()}
    counts = np.bincount(arrays["source"], minlength=len(SOURCES))
    return tf.data.Dataset.from_tensor_slices(arrays), {s: int(n) for s, n in zip(SOURCES, counts)}
