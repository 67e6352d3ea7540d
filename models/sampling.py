"""Training and evaluation input pipelines over Transform's output, with source-balanced batches.

Balanced mode keeps one stream per source and samples between them with fixed shares
(`tf.data.Dataset.sample_from_datasets`), so each batch is about half ads, half promotions.
The minority streams named in `cache_sources` are filtered out of the files once and then
served from memory: the files are read once per pass over the majority source, not once per
pass over the (many more often repeated) minority source.
"""
from __future__ import annotations

from typing import Dict, List, Optional

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


def read_examples(file_pattern, feature_spec: Dict, counter: Optional[tf.Variable] = None,
                  sources=None) -> tf.data.Dataset:
    """Unbatched dicts of transformed features, in file order (deterministic). With `sources`, only
    those sources' records: each batch of serialized records is filtered on its `source` field
    (a cheap parse of one int) before the full parse, so a minority stream does not parse every
    majority record just to drop it. Same records, same order as filtering after the full parse."""
    ds = tf.data.TFRecordDataset(_files(file_pattern), compression_type="GZIP").batch(PARSE_BATCH)
    if counter is not None:  # counts records read from the files (for the benchmark)
        def count(x):
            with tf.control_dependencies([counter.assign_add(tf.shape(x, out_type=tf.int64)[0])]):
                return tf.identity(x)
        ds = ds.map(count)
    if sources is not None and set(sources) != set(SOURCES):
        ids = tf.constant([SOURCES.index(s) for s in sources], tf.int64)
        source_spec = {"source": feature_spec["source"]}

        def keep(x):
            source = tf.io.parse_example(x, source_spec)["source"]
            return tf.boolean_mask(x, tf.reduce_any(tf.equal(tf.reshape(source, [-1, 1]), ids), axis=1))
        ds = ds.map(keep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda x: tf.io.parse_example(x, feature_spec), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return ds.unbatch()


def _of_sources(file_pattern, feature_spec: Dict, sources, counter: Optional[tf.Variable] = None) -> tf.data.Dataset:
    return read_examples(file_pattern, feature_spec, counter, sources=sources)


def train_dataset(file_pattern, feature_spec: Dict, cfg: ModelConfig, batch_size: Optional[int] = None,
                  counter: Optional[tf.Variable] = None) -> tf.data.Dataset:
    """Endless batches for training (length is set in steps), reproducible for cfg.seed."""
    batch_size = batch_size or cfg.batch_size
    if cfg.mix != BALANCED or len(cfg.train_sources) == 1:
        ds = _of_sources(file_pattern, feature_spec, cfg.train_sources, counter)
        if set(cfg.train_sources) <= set(cfg.cache_sources):  # e.g. ads-only: one read, then from memory
            ds = ds.cache()
        ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed).repeat()
    else:
        shares = cfg.shares()
        streams = []
        for i, source in enumerate(shares):
            s = _of_sources(file_pattern, feature_spec, [source], counter)
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
