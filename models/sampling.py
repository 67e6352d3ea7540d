"""Training and evaluation input pipelines over the examples and Transform graph, with source-balanced batches.

Balanced mode keeps one stream per source and samples between them with each source's share
(`ModelConfig.shares`: from 50/50 to the natural mix by `source_alpha`, a tuned value) through
`tf.data.Dataset.sample_from_datasets`.
The minority streams named in `cache_sources` are filtered out of the files once and then
served from memory: the files are read once per pass over the majority source, not once per
pass over the (many more often repeated) minority source.

Repeated trainings on one split (tuning trials, the study's presets and seeds) read it once into
memory (`load_examples`) and draw whole batches of row indices with numpy instead (`MemoryExamples`):
the same sampling law (each row of a batch from a source with that source's share; every source
shuffled, then repeated), without tf.data's per-example work (unbatch, filter, shuffle and
interleave of a dict of tensors per example), which made a 300-step trial 2.5x slower than the
file path (measured: 28.4 s against 11.3 s for 100 batches of 1,024 on the default logs).

The files are ExampleGen's raw examples (the pipeline's Transform does not materialize its output) or
Transform's transformed examples (roots written before `Transform(materialize=False)`): a `Decoder`
(`examples_decoder`, which reads the first record to tell which) turns a batch of serialized records
into the model's transformed features either way, the raw ones through the Transform graph.
"""
from __future__ import annotations

import zlib
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from models.config import BALANCED, ModelConfig
from models.preprocessing import source_index
from core.fields import SOURCES

PARSE_BATCH = 2048


Shard = Tuple[int, int]  # (number of workers, this worker's index): multi-worker training reads 1/n


def _files(file_pattern) -> List[str]:
    patterns = file_pattern if isinstance(file_pattern, (list, tuple)) else [file_pattern]
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no examples match {patterns}")
    return files


def _records(file_pattern, shard: Optional[Shard] = None) -> tf.data.Dataset:
    """The serialized records of the files; with `shard` (n, i) only worker i's share: every n-th file
    when there are at least n files (each worker reads only its own files), else every n-th record
    from i (each worker reads every file and keeps its records; Transform writes one file per split
    at this size). The shards are disjoint and together are the split."""
    files = _files(file_pattern)
    if shard is None or shard[0] == 1:
        return tf.data.TFRecordDataset(files, compression_type="GZIP")
    n, i = shard
    if not 0 <= i < n:
        raise ValueError(f"shard index {i} outside 0..{n - 1}")
    if len(files) >= n:
        return tf.data.TFRecordDataset(files[i::n], compression_type="GZIP")
    return tf.data.TFRecordDataset(files, compression_type="GZIP").shard(n, i)


def _raw_source(file_pattern) -> bool:
    """Whether the files hold raw examples (`source` a name) rather than transformed ones (`source` its
    index in SOURCES), read off the first record; files without records read as transformed."""
    for record in tf.data.TFRecordDataset(_files(file_pattern)[:1], compression_type="GZIP").take(1):
        feature = tf.train.Example.FromString(record.numpy()).features.feature.get("source")
        return feature is not None and feature.WhichOneof("kind") == "bytes_list"
    return False


def _source_ids(serialized: tf.Tensor, raw: bool) -> tf.Tensor:
    """The SOURCES index of each serialized example (parses only `source`), as Transform maps a name."""
    if not raw:
        return tf.io.parse_example(serialized, {"source": tf.io.FixedLenFeature([], tf.int64)})["source"]
    return source_index(tf.io.parse_example(serialized, {"source": tf.io.FixedLenFeature([], tf.string)})["source"])


class Decoder:
    """Batches of serialized examples -> dicts of the model's transformed features.

    `Decoder(spec)` parses examples already in that form (Transform's materialized output, or test
    files); `Decoder(raw_spec, transform)` parses raw examples and runs them through `transform`
    (the Transform graph's `transform_features_layer`), as Transform would have when materializing."""

    def __init__(self, spec: Dict, transform: Optional[Callable] = None):
        self.spec, self.transform = spec, transform

    @property
    def raw(self) -> bool:
        return self.transform is not None

    def source_ids(self, serialized: tf.Tensor) -> tf.Tensor:
        return _source_ids(serialized, self.raw)

    # traced by tf.data without AutoGraph: converting the Transform layer's Python (Keras, tf.Transform)
    # took 9-18 s of every process's first decoded batch; the code has no data-dependent Python control flow
    @tf.autograph.experimental.do_not_convert
    def __call__(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, self.spec)
        return dict(self.transform(parsed)) if self.raw else parsed


def examples_decoder(tft_output, file_pattern) -> Decoder:
    """The Decoder of these files: raw examples through `tft_output`'s graph, or its transformed output."""
    if _raw_source(file_pattern):
        return Decoder(tft_output.raw_feature_spec(), tft_output.transform_features_layer())
    return Decoder(tft_output.transformed_feature_spec())


def read_examples(file_pattern, decoder: Decoder, counter: Optional[tf.Variable] = None,
                  sources=None, shard: Optional[Shard] = None) -> tf.data.Dataset:
    """Unbatched dicts of transformed features, in file order (deterministic). With `sources`, only
    those sources' records: each batch of serialized records is filtered on its `source` field
    (a cheap parse of one feature) before the full parse, so a minority stream does not parse every
    majority record just to drop it. Same records, same order as filtering after the full parse."""
    ds = _records(file_pattern, shard).batch(PARSE_BATCH)
    if counter is not None:  # counts records read from the files (for the benchmark)
        def count(x):
            with tf.control_dependencies([counter.assign_add(tf.shape(x, out_type=tf.int64)[0])]):
                return tf.identity(x)
        ds = ds.map(count)
    if sources is not None and set(sources) != set(SOURCES):
        ids = tf.constant([SOURCES.index(s) for s in sources], tf.int64)

        def keep(x):
            source = decoder.source_ids(x)
            return tf.boolean_mask(x, tf.reduce_any(tf.equal(tf.reshape(source, [-1, 1]), ids), axis=1))
        ds = ds.map(keep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(decoder, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.unbatch()


def source_counts(file_pattern) -> Dict[str, int]:
    """Training examples per source in the files (reads only the `source` column)."""
    raw = _raw_source(file_pattern)
    ds = _records(file_pattern).batch(PARSE_BATCH)
    ds = ds.map(lambda x: _source_ids(x, raw), num_parallel_calls=tf.data.AUTOTUNE)
    counts = np.zeros(len(SOURCES), np.int64)
    for ids in ds:
        counts += np.bincount(ids.numpy(), minlength=len(SOURCES))
    return {s: int(n) for s, n in zip(SOURCES, counts)}


def train_dataset(file_pattern, decoder: Decoder, cfg: ModelConfig, batch_size: Optional[int] = None,
                  counter: Optional[tf.Variable] = None, examples: Optional["MemoryExamples"] = None,
                  counts: Optional[Dict[str, int]] = None, shard: Optional[Shard] = None) -> tf.data.Dataset:
    """Endless batches for training (length is set in steps), reproducible for cfg.seed.

    `examples`: the training split already in memory (`load_examples`, shared by tuning trials);
    `counts`: examples per source, needed by temperature shares (read from the files if absent);
    `shard`: (n, i), read only worker i's share of the files (`_records`)."""
    batch_size = batch_size or cfg.batch_size
    if examples is not None:
        return examples.batches(cfg, batch_size, counts)

    def of_sources(sources):  # from the files, other sources dropped before the full parse
        return read_examples(file_pattern, decoder, counter, sources=sources, shard=shard)

    if cfg.mix != BALANCED or len(cfg.train_sources) == 1:
        ds = of_sources(cfg.train_sources)
        if set(cfg.train_sources) <= set(cfg.cache_sources):  # e.g. ads-only: one read, then from memory
            ds = ds.cache()
        ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed).repeat()
    else:
        if cfg.source_shares is None and cfg.source_alpha > 0 and counts is None:
            counts = source_counts(file_pattern)
        shares = cfg.shares(counts)
        streams = []
        for i, source in enumerate(shares):
            s = of_sources([source])
            if source in cfg.cache_sources:
                s = s.cache()
            streams.append(s.shuffle(cfg.shuffle_buffer, seed=cfg.seed + i).repeat())
        ds = tf.data.Dataset.sample_from_datasets(streams, weights=list(shares.values()), seed=cfg.seed)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(file_pattern, decoder: Decoder, batch_size: int = 4096,
                 max_examples: Optional[int] = None) -> tf.data.Dataset:
    """One pass in file order, the logged mix, every source."""
    ds = read_examples(file_pattern, decoder)
    if max_examples:
        ds = ds.take(max_examples)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class MemoryExamples:
    """A split held in memory as numpy arrays (one per feature), served as training batches.

    `batches(cfg)`: endless batches, reproducible for cfg.seed. Each source's rows are read in a
    fresh random order per pass (a full shuffle, where the file path shuffles in a 20,000-example
    buffer); a balanced batch takes its number of rows from each source by a multinomial draw with
    the sources' shares (as `sample_from_datasets` draws each example's source), a natural or
    single-source batch takes the next rows of one stream of the training sources."""

    def __init__(self, arrays: Dict[str, np.ndarray]):
        self.arrays = arrays
        source = arrays["source"].reshape(-1)
        self.rows = {s: np.flatnonzero(source == i) for i, s in enumerate(SOURCES)}
        self.counts = {s: int(len(r)) for s, r in self.rows.items()}

    def __len__(self) -> int:
        return len(self.arrays["source"])

    def index_batches(self, cfg: ModelConfig, batch_size: int, counts: Optional[Dict[str, int]] = None):
        """Endless arrays of `batch_size` row indices (the sampling law above)."""
        rng = np.random.default_rng(cfg.seed)
        if cfg.mix != BALANCED or len(cfg.train_sources) == 1:
            pools = {"all": np.sort(np.concatenate([self.rows[s] for s in cfg.train_sources]))}
            shares = None
        else:
            shares = cfg.shares(counts or self.counts)
            pools = {s: self.rows[s] for s in shares}
        for name, pool in pools.items():
            if not len(pool):
                raise ValueError(f"no training examples of {name} in memory")
        order = {name: rng.permutation(pool) for name, pool in pools.items()}
        pos = dict.fromkeys(pools, 0)

        def take(name, n):
            out = []
            while n:
                if pos[name] == len(order[name]):  # next pass over this stream, newly shuffled
                    order[name], pos[name] = rng.permutation(pools[name]), 0
                k = min(n, len(order[name]) - pos[name])
                out.append(order[name][pos[name]:pos[name] + k])
                pos[name], n = pos[name] + k, n - k
            return out

        while True:
            if shares is None:
                yield np.concatenate(take("all", batch_size))
                continue
            sizes = rng.multinomial(batch_size, list(shares.values()))
            idx = np.concatenate([part for s, n in zip(shares, sizes) for part in take(s, int(n))])
            yield idx[rng.permutation(batch_size)]

    def batches(self, cfg: ModelConfig, batch_size: Optional[int] = None,
                counts: Optional[Dict[str, int]] = None) -> tf.data.Dataset:
        batch_size = batch_size or cfg.batch_size
        signature = {name: tf.TensorSpec((batch_size,) + a.shape[1:], tf.as_dtype(a.dtype))
                     for name, a in self.arrays.items()}

        def generate():
            for idx in self.index_batches(cfg, batch_size, counts):
                yield {name: a[idx] for name, a in self.arrays.items()}

        return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)


def load_examples(file_pattern, decoder: Decoder, shard: Optional[Shard] = None):
    """Every example of the files (of worker i's shard, with `shard` (n, i)) read once into memory, in
    `canonical_order`: (MemoryExamples, counts per source).

    For repeated trainings on one split (tuning trials): each trial then reads memory, not files.

    Raw examples are sorted by their bytes before they are decoded: the Transform graph's float
    features of a record differ in the last bits with its place in a batch (measured: the same rows
    in two files in another order trained other weights), so the records are decoded in one order,
    whatever files and record order they came in."""
    chunks: Dict[str, list] = {}
    ds = _records(file_pattern, shard).batch(PARSE_BATCH)
    if decoder.raw:
        parts = [b.numpy() for b in ds]
        records = np.sort(np.concatenate(parts)) if parts else np.array([], dtype=object)
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(records, tf.string)).batch(PARSE_BATCH)
    for batch in ds.map(decoder, num_parallel_calls=tf.data.AUTOTUNE):
        for name, value in batch.items():
            chunks.setdefault(name, []).append(value.numpy())
    arrays = {name: np.concatenate(parts) for name, parts in chunks.items()}
    order = canonical_order(arrays)
    examples = MemoryExamples({name: a[order] for name, a in arrays.items()})
    return examples, dict(examples.counts)


def canonical_order(arrays: Dict[str, np.ndarray]) -> np.ndarray:
    """The row order that sorts the rows by their bytes (every feature, by name): the same rows give the
    same order whatever files and record order they came in, so a training on them draws the same batches.
    Transform writes one file per split in the DirectRunner's in-memory mode and one per worker, in
    another order, in its multi_processing mode; training on CPU is otherwise bit-for-bit repeatable
    (tests/test_training.py), so without this the Beam mode alone changed the model."""
    n = len(next(iter(arrays.values())))
    if n == 0:
        return np.arange(0)
    columns = []
    for name in sorted(arrays):
        a = arrays[name].reshape(n, -1)
        if a.dtype == object:  # bytes features: a stable 32-bit digest of each value
            a = np.array([[zlib.crc32(bytes(v)) for v in row] for row in a], dtype=np.uint32)
        columns.append(np.ascontiguousarray(a).view(np.uint8).reshape(n, -1))
    rows = np.ascontiguousarray(np.concatenate(columns, axis=1))
    return np.argsort(rows.view(np.dtype((np.void, rows.shape[1]))).ravel(), kind="stable")
