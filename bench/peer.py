"""How far the pipeline is from plain Keras: a training-rate ratio and an end-to-end floor.

    python bench/peer.py --root runs/default [--data LOGS] [--steps 300] [--skip-floor]

(a) Training rate: the project's TFRS model and a plain Keras functional model with the same layers
    (same embeddings, masked mean-pooled lists, shared encoder, towers, masked per-head losses as
    per-head sample weights; no TFRS, no TFX) train on the same batches of the run's Transform
    output (balanced batches of the configured size, read once into memory so only the training
    step is timed). Prints both examples/second and their ratio.
(b) End-to-end floor: read the Parquet logs with pyarrow, the same features computed in numpy
    (vocabularies with OOV ids, hashing, z-scored log numerics, padded lists, hour and weekday) on
    the same temporal split, balanced batches with tf.data, the same plain model with the same
    early stopping on exact eval stream AP every 100 steps, then exact AP of the test split per
    source. Prints the floor's seconds per stage and the ratio of the pipeline run's wall time
    (ROOT/summary.json, or ROOT/profile.json from bench/profile_run.py, which also gives CPU) to it.
Records the load averages: the machine is shared.
"""
import argparse
import glob
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.ap import average_precision  # noqa: E402
from core.days import DAY, EPOCH_WEEKDAY, HOUR  # noqa: E402
from core.fields import CATEGORIES, FEATURES, LABELS, LIST_LENGTH, SOURCES, Transform  # noqa: E402
from core.split import TemporalSplit  # noqa: E402
from core.tasks import stream_head  # noqa: E402
from models.config import preset  # noqa: E402
from models.model import CATEGORICAL_INPUTS, LIST_INPUTS, NUMERIC_INPUTS, build_model, dummy_features  # noqa: E402
from models.preprocessing import CATEGORY_OOV, CATEGORY_SEPARATOR, PODCAST_VOCAB, cardinalities  # noqa: E402
from pipeline.configs import DEFAULT_ROOT  # noqa: E402
from pipeline.run_root import Node, RunRoot  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def model_inputs(root):
    try:
        return RunRoot(root).model_inputs()[1]
    except LookupError as e:
        sys.exit(str(e))


def latest(root, component, output):
    try:
        return RunRoot(root).artifact(component, output)
    except LookupError as e:
        sys.exit(str(e))


# ---------------------------------------------------------------- the plain Keras model
def plain_model(cfg, sizes, tasks) -> tf.keras.Model:
    """The project's layers as a Keras functional model: inputs -> logits per head."""
    inputs, parts, tables = {}, [], {}
    for name, table in CATEGORICAL_INPUTS:
        shape = (LIST_LENGTH,) if name in LIST_INPUTS else ()
        inputs[name] = tf.keras.Input(shape=shape, dtype=tf.int64, name=name)
        if table not in tables:
            dim = cfg.list_embedding_dim if table == PODCAST_VOCAB else cfg.embedding_dim
            tables[table] = tf.keras.layers.Embedding(sizes[table], dim, name=f"emb_{table}")
        emb = tables[table](inputs[name])
        if name in LIST_INPUTS:
            present = tf.cast(tf.not_equal(inputs[name], 0), tf.float32)[..., None]
            emb = tf.reduce_sum(emb * present, axis=1) / tf.maximum(tf.reduce_sum(present, axis=1), 1.0)
        parts.append(emb)
    for name in NUMERIC_INPUTS:
        inputs[name] = tf.keras.Input(shape=(), dtype=tf.float32, name=name)
    parts.append(tf.stack([inputs[n] for n in NUMERIC_INPUTS], axis=-1))
    x = tf.concat(parts, axis=-1)
    for units in cfg.encoder_units:
        x = tf.keras.layers.Dropout(cfg.dropout)(tf.keras.layers.Dense(units, activation="relu")(x))
    outputs = {}
    for t in tasks:
        h = x
        for u in cfg.tower_units:
            h = tf.keras.layers.Dense(u, activation="relu")(h)
        outputs[t.name] = tf.keras.layers.Dense(1, name=t.name)(h)  # [batch, 1] logits
    model = tf.keras.Model(inputs, outputs)
    bce = tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.SUM)
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate),
                  loss={t.name: bce for t in tasks}, loss_weights={t.name: t.weight for t in tasks})
    return model


def plain_batches(ds, tasks):
    """(features, labels, per-head weights = mask / unmasked examples in the batch), as the TFRS model."""
    masks = {t.name: tf.constant([1.0 if s in t.trained_by else 0.0 for s in SOURCES]) for t in tasks}
    keys = [n for n, _ in CATEGORICAL_INPUTS] + list(NUMERIC_INPUTS)

    def split(b):
        w = {}
        for t in tasks:
            m = tf.gather(masks[t.name], b["source"])
            w[t.name] = m / tf.maximum(tf.reduce_sum(m), 1.0)
        y = {t.name: tf.cast(b[t.label], tf.float32)[:, None] for t in tasks}
        return {k: b[k] for k in keys}, y, w
    return ds.map(split)


def timed_fit(model, ds, steps, warmup):
    model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    t0, c0 = time.perf_counter(), cpu()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - t0, cpu() - c0


def training_ratio(root, cfg, steps, warmup=20):
    import tensorflow_transform as tft

    from models.sampling import examples_decoder, train_dataset

    tft_out = tft.TFTransformOutput(latest(root, Node.TRANSFORM, "transform_graph"))
    files = model_inputs(root)["train"]
    tasks, sizes = cfg.tasks(), cardinalities(tft_out)
    n = steps + warmup
    data = train_dataset(files, examples_decoder(tft_out, files), cfg).take(n).cache()
    for _ in data:  # into memory: only the training step is timed below
        pass
    tfrs_model = build_model(cfg, sizes, tasks)
    tfrs_model(dummy_features(), training=False)
    tfrs_wall, tfrs_cpu = timed_fit(tfrs_model, data.repeat(), steps, warmup)
    keras_model = plain_model(cfg, sizes, tasks)
    keras_wall, keras_cpu = timed_fit(keras_model, plain_batches(data, tasks).repeat(), steps, warmup)
    ex = steps * cfg.batch_size
    print(f"(a) training, batch {cfg.batch_size}, {steps} timed steps on the same in-memory batches of "
          f"Transform's output:")
    print(f"    TFRS model (project): {ex / tfrs_wall:,.0f} examples/s wall, {ex / tfrs_cpu:,.0f} per CPU second")
    print(f"    plain Keras model:    {ex / keras_wall:,.0f} examples/s wall, {ex / keras_cpu:,.0f} per CPU second")
    print(f"    ratio project / plain: {keras_wall / tfrs_wall:.2f} wall, {keras_cpu / tfrs_cpu:.2f} CPU "
          f"(1.00 = same speed)", flush=True)


# ---------------------------------------------------------------- the end-to-end floor
def add_split_args(p) -> None:
    """`--test-days` / `--eval-days`: the run's temporal split, as `podcast-mtl run` takes it (KuaiRand
    runs use 3 / 2); `split_of(args)` turns them into the TemporalSplit `read_logs` takes."""
    p.add_argument("--test-days", type=int, default=TemporalSplit.test_days,
                   help="newest days that form the test split, as `podcast-mtl run` (default %(default)s)")
    p.add_argument("--eval-days", type=int, default=TemporalSplit.eval_days,
                   help="days before them that form the eval split (default %(default)s)")


def split_of(args) -> TemporalSplit:
    return TemporalSplit(test_days=args.test_days, eval_days=args.eval_days)


def read_logs(data, split=None):
    """The logs' table and {split: row indices}, split as `podcast-mtl run` splits them (`split`: a
    core.split.TemporalSplit, default its defaults; `--test-days` / `--eval-days` of the scripts)."""
    import pyarrow.parquet as pq

    from core.logs import partition_days

    days, bounds = (split or TemporalSplit()).resolve(partition_days(data))
    tables = [pq.read_table(f) for d in days for f in sorted(glob.glob(os.path.join(data, f"date={d}", "*.parquet")))]
    import pyarrow as pa

    table = pa.concat_tables(tables, promote=True)
    t = table.column("event_time").combine_chunks().to_numpy()
    return table, {s: np.flatnonzero((t >= lo) & (t < hi)) for s, (lo, hi) in bounds.items()}


def _strings(col):
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return np.asarray(col.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False), dtype=object).astype(str)


def featurize(table, splits):
    """{split: {input: numpy array}} and table sizes, as Transform computes them (vocabularies on train)."""
    import pandas as pd

    train = splits["train"]
    cols, sizes = {}, {}
    pod_vocab = pd.Index(pd.unique(_strings(table.column("podcast_id"))[train]))
    pod_oov = max(f.buckets for f in FEATURES if f.vocab_name == PODCAST_VOCAB)
    sizes[PODCAST_VOCAB] = len(pod_vocab) + pod_oov + 1
    cat_keys = {}

    def lookup(index, values, oov):
        ids = index.get_indexer(values)
        return np.where(ids < 0, len(index) + (pd.util.hash_array(values) % max(oov, 1)).astype(np.int64), ids)

    for f in FEATURES:
        col = table.column(f.name)
        if f.transform == Transform.TIME:
            t = col.combine_chunks().to_numpy().astype(np.int64)
            cols["hour"], cols["weekday"] = (t // HOUR) % 24, (t // DAY + EPOCH_WEEKDAY) % 7
        elif f.transform == Transform.SOURCE:
            cols[f.name] = pd.Index(SOURCES).get_indexer(_strings(col)).astype(np.int64)
        elif f.transform == Transform.HASH:
            cols[f.name] = tf.strings.to_hash_bucket_fast(_strings(col), f.buckets).numpy()
        elif f.transform == Transform.NUMERIC:
            x = np.log1p(np.maximum(col.combine_chunks().fill_null(0).to_numpy(zero_copy_only=False).astype(np.float32), 0))
            cols[f.name] = ((x - x[train].mean()) / (x[train].std() or 1.0)).astype(np.float32)
        elif f.transform == Transform.LIST:
            col = col.combine_chunks()
            offsets = col.offsets.to_numpy()
            values = _strings(col.values)
            ids = lookup(pod_vocab, values, f.buckets) + 1
            n, lengths = len(col), np.minimum(np.diff(offsets), LIST_LENGTH)
            rows = np.repeat(np.arange(n), lengths)
            pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            out = np.zeros((n, LIST_LENGTH), np.int64)
            out[rows, pos] = ids[np.repeat(offsets[:-1], lengths) + pos]
            cols[f.name] = out
        elif f.transform == Transform.VOCAB:
            values = _strings(col)
            if f.vocab_name == PODCAST_VOCAB:
                cols[f.name] = lookup(pod_vocab, values, f.buckets) + 1
            elif f.vocab_name == CATEGORIES:  # "field=value" keys, one index for every such field
                cat_keys[f.name] = np.char.add(f"{f.name}{CATEGORY_SEPARATOR}", values)
            else:
                index = pd.Index(pd.unique(values[train]))
                cols[f.name] = lookup(index, values, f.buckets)
                sizes[f.name] = len(index) + f.buckets
    cat_index = pd.Index(pd.unique(np.concatenate([k[train] for k in cat_keys.values()])))
    for name, keys in cat_keys.items():
        cols[name] = lookup(cat_index, keys, CATEGORY_OOV)
    sizes[CATEGORIES] = len(cat_index) + CATEGORY_OOV
    cols.update(derived_numpy(table, train))
    for f in FEATURES:
        if f.transform == Transform.HASH:
            sizes[f.name] = f.buckets
    sizes.update(hour=24, weekday=7, source=len(SOURCES))
    for label in LABELS:
        cols[label] = table.column(label).combine_chunks().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return {s: {k: v[rows] for k, v in cols.items()} for s, rows in splits.items()}, sizes


def derived_numpy(table, train_rows) -> dict:
    """core.fields.DERIVED in numpy, as models/preprocessing.py computes them in the Transform graph
    (the genre of a history podcast from the (podcast_id, genre) pairs of the `train_rows`)."""
    from core.fields import DERIVED_NAMES

    pods, genres = _strings(table.column("podcast_id")), _strings(table.column("genre"))
    pairs = set(zip(pods[train_rows], genres[train_rows]))
    out = {name: np.zeros(len(pods), np.float32) for name in DERIVED_NAMES}
    lists = {name: table.column(name).combine_chunks() for name in ("user_history", "user_follows")}
    offsets = {name: col.offsets.to_numpy() for name, col in lists.items()}
    values = {name: _strings(col.values) for name, col in lists.items()}
    lengths = np.diff(offsets["user_history"])
    rows = np.repeat(np.arange(len(pods)), lengths)
    hist = values["user_history"][offsets["user_history"][0]:offsets["user_history"][-1]]
    hits = np.bincount(rows, weights=hist == pods[rows], minlength=len(pods))
    same = np.fromiter(((h, g) in pairs for h, g in zip(hist, genres[rows])), bool, len(hist))
    out["history_hits"] = hits.astype(np.float32)
    out["in_history"] = (hits > 0).astype(np.float32)
    out["genre_share"] = (np.bincount(rows, weights=same, minlength=len(pods)) / np.maximum(lengths, 1)).astype(np.float32)
    out["history_length"] = np.log1p(lengths).astype(np.float32)
    flen = np.diff(offsets["user_follows"])
    frows = np.repeat(np.arange(len(pods)), flen)
    fol = values["user_follows"][offsets["user_follows"][0]:offsets["user_follows"][-1]]
    out["in_follows"] = (np.bincount(frows, weights=fol == pods[frows], minlength=len(pods)) > 0).astype(np.float32)
    return out


def floor_train(cfg, tasks, sizes, data):
    """Balanced batches from memory, the plain model, early stopping on exact eval stream AP."""
    train = data["train"]
    # each source's share from the training split's counts (the `unified` preset draws the natural mix)
    shares = cfg.shares({s: int(np.sum(train["source"] == i)) for i, s in enumerate(SOURCES)})
    streams = []
    for i, source in enumerate(shares):
        rows = np.flatnonzero(train["source"] == SOURCES.index(source))
        ds = tf.data.Dataset.from_tensor_slices({k: v[rows] for k, v in train.items()})
        streams.append(ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed + i).repeat())
    ds = tf.data.Dataset.sample_from_datasets(streams, weights=list(shares.values()), seed=cfg.seed)
    ds = plain_batches(ds.batch(cfg.batch_size, drop_remainder=True), tasks).prefetch(tf.data.AUTOTUNE)
    model = plain_model(cfg, sizes, tasks)
    ev = data["eval"]
    n_eval = min(len(ev["source"]), cfg.max_eval_examples)
    ev = {k: v[:n_eval] for k, v in ev.items()}
    best, best_weights, bad, steps = -1.0, None, 0, 0
    it = iter(ds)
    while steps < cfg.train_steps:
        model.fit(it, steps_per_epoch=cfg.eval_every_steps, epochs=1, verbose=0)
        steps += cfg.eval_every_steps
        ap = source_ap(model, ev, tasks)
        value = float(np.nanmean([ap[s] for s in cfg.train_sources]))
        if value > best:
            best, best_weights, bad = value, model.get_weights(), 0
        else:
            bad += 1
            if bad >= cfg.early_stopping_patience:
                break
    model.set_weights(best_weights)
    return model, steps


def source_ap(model, split, tasks):
    keys = [n for n, _ in CATEGORICAL_INPUTS] + list(NUMERIC_INPUTS)
    pred = model.predict({k: split[k] for k in keys}, batch_size=4096, verbose=0)
    return {s: average_precision(split["stream"][split["source"] == i],
                                 np.ravel(pred[stream_head(tasks, s)])[split["source"] == i])
            for i, s in enumerate(SOURCES)}


def floor(data_dir, cfg, split=None):
    tasks = cfg.tasks()
    stages, t0, c0 = {}, time.perf_counter(), cpu()

    def mark(name):
        nonlocal t0, c0
        stages[name] = (time.perf_counter() - t0, cpu() - c0)
        t0, c0 = time.perf_counter(), cpu()

    table, splits = read_logs(data_dir, split)
    mark("read Parquet (pyarrow)")
    data, sizes = featurize(table, splits)
    mark("features (numpy)")
    model, steps = floor_train(cfg, tasks, sizes, data)
    mark(f"fit ({steps} steps, early stopping)")
    ap = source_ap(model, data["test"], tasks)
    mark("score test split")
    return stages, ap, {s: len(r) for s, r in splits.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=DEFAULT_ROOT, help="a finished pipeline run (Transform output, summary.json)")
    p.add_argument("--data", default=None, help="the run's logs (default ROOT/data)")
    p.add_argument("--preset", default="unified")
    p.add_argument("--steps", type=int, default=300, help="timed training steps for (a)")
    p.add_argument("--skip-floor", action="store_true")
    add_split_args(p)
    p.add_argument("--skip-training", action="store_true")
    args = p.parse_args()
    cfg = preset(args.preset)
    load0 = os.getloadavg()
    print(f"{os.cpu_count()} CPUs; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
    if not args.skip_training:
        training_ratio(args.root, cfg, args.steps)
    if not args.skip_floor:
        stages, ap, rows = floor(args.data or os.path.join(args.root, "data"), cfg, split_of(args))
        wall, cpu_s = sum(w for w, _ in stages.values()), sum(c for _, c in stages.values())
        print(f"(b) end-to-end floor on {sum(rows.values()):,} impressions ({rows}):")
        for name, (w, c) in stages.items():
            print(f"    {name:<34}{w:8.1f} s wall {c:8.1f} s CPU")
        print(f"    total {wall:.1f} s wall, {cpu_s:.1f} s CPU; test stream AP " +
              " ".join(f"{s}={v:.4f}" for s, v in ap.items()))
        prof, summ = os.path.join(args.root, "profile.json"), os.path.join(args.root, "summary.json")
        if os.path.exists(prof):
            run = json.load(open(prof))
            print(f"    pipeline run ({prof}): {run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} s CPU -> ratio "
                  f"{run['wall_s'] / wall:.1f}x wall, {run['cpu_s'] / cpu_s:.1f}x CPU")
        elif os.path.exists(summ):
            run = json.load(open(summ))
            print(f"    pipeline run ({summ}): {run['wall_seconds']:.0f} s wall -> ratio {run['wall_seconds'] / wall:.1f}x")
    load1 = os.getloadavg()
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    main()
