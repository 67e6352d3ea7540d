"""Transform's `preprocessing_fn`, driven by the field table in `core/fields.py`.

One spec per `Transform` kind says, for a field, which model inputs it yields, which embedding
table each one uses and how big that table is, and how to compute it; `preprocessing_fn`, the
model's inputs (`model_inputs`) and the embedding sizes (`cardinalities`) are all read from it.
Analysed on the train split only (Transform's default with a train split). Outputs, all [batch]
or [batch, LIST_LENGTH]:
- vocab features: ids from a vocabulary with OOV buckets (podcast ids share one vocabulary with
  the listening-history and follows lists; their ids start at 1, 0 is list padding; the other
  vocabulary fields (`vocab=CATEGORIES` in the field table) share one vocabulary of "field=value"
  keys, and so one embedding table whose rows are disjoint per field);
- hash features: hash buckets (high-cardinality ids);
- numeric features: z-score of log1p(value);
- event_time: `hour` and `weekday`;
- source: its index in SOURCES; labels: passed through as int64;
- prior_impressions_raw: the raw podcast_prior_impressions, for cold-start reports only;
- derived inputs (`core.fields.DERIVED`, float32 [batch], unscaled): the candidate podcast against
  the user's history and follows (in-list indicator and count) and the share of the history in the
  candidate's genre (a history podcast's genre from a vocabulary of the train split's
  "podcast_id|genre" pairs), computed on the raw strings in `derived_features`.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import tensorflow as tf
import tensorflow_transform as tft

from core.days import DAY, EPOCH_WEEKDAY, HOUR
from core.fields import CATEGORIES, DERIVED_NAMES, FEATURES, LABELS, LIST_LENGTH, SOURCES, Field, Transform

PODCAST_VOCAB = "podcast_id"
# Raw earlier-impression count, carried through for cold-start reports; not a model input.
PRIOR_IMPRESSIONS_RAW = "prior_impressions_raw"
PODCAST_GENRE_VOCAB = "podcast_genre"  # "podcast_id|genre" pairs of the train split
PAIR_SEPARATOR = "|"
RECENT_STREAMS_RAW = "recent_streams_raw"  # the podcast's 7-day streams before the impression, untransformed
PODCAST_OOV = max(f.buckets for f in FEATURES if f.vocab_name == PODCAST_VOCAB)
CATEGORY_FIELDS = tuple(f for f in FEATURES if f.vocab_name == CATEGORIES)
# OOV buckets of the shared categories vocabulary: one per field's declared bucket, so that the
# unseen values of different fields rarely share a row
CATEGORY_OOV = sum(f.buckets for f in CATEGORY_FIELDS)
CATEGORY_SEPARATOR = "="


def _dense(x, default):
    """[batch] tensor from a [batch, 1] dense or a [batch, <=1] sparse feature, missing -> default."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default)
    return tf.reshape(x, [-1])


def _as_string(x):
    return x if x.dtype == tf.string else tf.strings.as_string(x)


def _vocab_string(x) -> tf.Tensor:
    """[batch] strings of a vocabulary field's values (missing -> "" or "0")."""
    return _as_string(_dense(x, "" if x.dtype == tf.string else 0))


def category_keys(f: Field, x) -> tf.Tensor:
    """[batch] "field=value" keys of a `CATEGORIES` field (missing -> "field=" or "field=0")."""
    value = _vocab_string(x)
    return tf.strings.join([tf.fill(tf.shape(value), f.name + CATEGORY_SEPARATOR), value])


def field_values(tft_output, f: Field) -> List[bytes]:
    """The training values of a vocabulary field, most frequent first (a `CATEGORIES` field's
    keys without their "field=" prefix)."""
    tokens = tft_output.vocabulary_by_name(f.vocab_name)
    if f.vocab_name != CATEGORIES:
        return list(tokens)
    prefix = (f.name + CATEGORY_SEPARATOR).encode()
    return [t[len(prefix):] for t in tokens if t.startswith(prefix)]


def _pad_list(ids: tf.sparse.SparseTensor) -> tf.Tensor:
    batch = ids.dense_shape[0]
    ids = tf.sparse.slice(ids, [0, 0], [batch, LIST_LENGTH])
    ids = tf.sparse.reset_shape(ids, [batch, LIST_LENGTH])
    return tf.reshape(tf.sparse.to_dense(ids, default_value=0), [-1, LIST_LENGTH])


class _Spec:
    """A transform kind. `inputs(f)`: (model input, embedding table or None for a dense input)."""

    def inputs(self, f: Field) -> Tuple[Tuple[str, str], ...]:
        return ((f.name, f.name),)

    def sizes(self, f: Field, tft_output) -> Dict[str, int]:
        raise NotImplementedError

    def apply(self, f: Field, x, vocabs) -> Dict[str, tf.Tensor]:
        """`vocabs`: the shared vocabularies, {PODCAST_VOCAB: ..., CATEGORIES: ...}."""
        raise NotImplementedError


class _Time(_Spec):
    def inputs(self, f):
        return (("hour", "hour"), ("weekday", "weekday"))

    def sizes(self, f, tft_output):
        return {"hour": 24, "weekday": 7}

    def apply(self, f, x, vocabs):
        t = _dense(x, 0)
        return {"hour": (t // HOUR) % 24, "weekday": (t // DAY + EPOCH_WEEKDAY) % 7}


def source_index(names: tf.Tensor) -> tf.Tensor:
    """Each source name's index in SOURCES (int64; a name outside them reads as 0): the transformed
    `source`, and what `models.sampling` filters raw examples by."""
    return tf.add_n([tf.cast(tf.equal(names, name), tf.int64) * i for i, name in enumerate(SOURCES)])


class _Source(_Spec):
    def sizes(self, f, tft_output):
        return {f.name: len(SOURCES)}

    def apply(self, f, x, vocabs):
        return {f.name: source_index(_dense(x, ""))}


def _podcast_table_size(tft_output) -> int:
    return tft_output.vocabulary_size_by_name(PODCAST_VOCAB) + PODCAST_OOV + 1  # id 0 = list padding


class _List(_Spec):
    def inputs(self, f):
        return ((f.name, PODCAST_VOCAB),)

    def sizes(self, f, tft_output):
        return {PODCAST_VOCAB: _podcast_table_size(tft_output)}

    def apply(self, f, x, vocabs):
        ids = tft.apply_vocabulary(x, vocabs[PODCAST_VOCAB], num_oov_buckets=f.buckets)
        return {f.name: _pad_list(tf.SparseTensor(ids.indices, ids.values + 1, ids.dense_shape))}


class _Vocab(_Spec):
    def inputs(self, f):
        return ((f.name, f.vocab_name),)

    def sizes(self, f, tft_output):
        if f.vocab_name == PODCAST_VOCAB:
            return {PODCAST_VOCAB: _podcast_table_size(tft_output)}
        if f.vocab_name == CATEGORIES:
            return {CATEGORIES: tft_output.vocabulary_size_by_name(CATEGORIES) + CATEGORY_OOV}
        return {f.name: tft_output.vocabulary_size_by_name(f.name) + f.buckets}

    def apply(self, f, x, vocabs):
        if f.vocab_name == PODCAST_VOCAB:
            return {f.name: tft.apply_vocabulary(_dense(x, ""), vocabs[PODCAST_VOCAB], num_oov_buckets=f.buckets) + 1}
        if f.vocab_name == CATEGORIES:
            return {f.name: tft.apply_vocabulary(category_keys(f, x), vocabs[CATEGORIES], num_oov_buckets=CATEGORY_OOV)}
        return {f.name: tft.compute_and_apply_vocabulary(_vocab_string(x), num_oov_buckets=f.buckets,
                                                         vocab_filename=f.name)}


class _Hash(_Spec):
    def sizes(self, f, tft_output):
        return {f.name: f.buckets}

    def apply(self, f, x, vocabs):
        return {f.name: tf.strings.to_hash_bucket_fast(_as_string(_dense(x, "")), f.buckets)}


class _Numeric(_Spec):
    def inputs(self, f):
        return ((f.name, None),)

    def sizes(self, f, tft_output):
        return {}

    def apply(self, f, x, vocabs):
        return {f.name: tft.scale_to_z_score(tf.math.log1p(tf.maximum(tf.cast(_dense(x, 0), tf.float32), 0.0)))}


SPECS: Dict[Transform, _Spec] = {Transform.TIME: _Time(), Transform.SOURCE: _Source(), Transform.LIST: _List(),
                                 Transform.VOCAB: _Vocab(), Transform.HASH: _Hash(), Transform.NUMERIC: _Numeric()}


def model_inputs() -> List[Tuple[str, str]]:
    """Every model input as (transformed name, embedding table; None for a dense numeric input)."""
    return [pair for f in FEATURES for pair in SPECS[f.transform].inputs(f)] + [(n, None) for n in DERIVED_NAMES]


def _as_sparse(x) -> tf.sparse.SparseTensor:
    return x if isinstance(x, tf.sparse.SparseTensor) else tf.sparse.from_dense(x)


def _per_row_sum(values, rows, batch) -> tf.Tensor:
    return tf.math.unsorted_segment_sum(tf.cast(values, tf.float32), rows, batch)


def derived_features(inputs, pair_vocab) -> Dict[str, tf.Tensor]:
    """The inputs of `core.fields.DERIVED` from raw features; `pair_vocab`: the vocabulary of
    "podcast_id|genre" pairs (a tft.vocabulary, or a tf.lookup table's name for tests)."""
    candidate = _dense(inputs["podcast_id"], "")
    genre = _dense(inputs["genre"], "")
    batch = tf.shape(candidate, out_type=tf.int64)[0]
    out = {}
    history = _as_sparse(inputs["user_history"])
    rows = history.indices[:, 0]
    hits = _per_row_sum(tf.equal(history.values, tf.gather(candidate, rows)), rows, batch)
    length = _per_row_sum(tf.ones_like(rows), rows, batch)
    out["history_hits"] = hits
    out["in_history"] = tf.cast(hits > 0, tf.float32)
    follows = _as_sparse(inputs["user_follows"])
    frows = follows.indices[:, 0]
    out["in_follows"] = tf.cast(_per_row_sum(tf.equal(follows.values, tf.gather(candidate, frows)), frows, batch) > 0,
                                tf.float32)
    keys = tf.strings.join([history.values, tf.gather(genre, rows)], separator=PAIR_SEPARATOR)
    same_genre = tft.apply_vocabulary(keys, pair_vocab, default_value=-1, num_oov_buckets=0) >= 0
    out["genre_share"] = _per_row_sum(same_genre, rows, batch) / tf.maximum(length, 1.0)
    out["history_length"] = tf.math.log1p(length)
    assert set(out) == set(DERIVED_NAMES), "derived_features must compute exactly core.fields.DERIVED"
    return out


def preprocessing_fn(inputs):
    podcast_vocab = tft.vocabulary(_dense(inputs[PODCAST_VOCAB], ""), vocab_filename=PODCAST_VOCAB)
    pair_vocab = tft.vocabulary(tf.strings.join([_dense(inputs["podcast_id"], ""), _dense(inputs["genre"], "")],
                                                separator=PAIR_SEPARATOR), vocab_filename=PODCAST_GENRE_VOCAB)
    # one analyzer for every CATEGORIES field (their "field=value" keys side by side)
    category_vocab = tft.vocabulary(tf.concat([category_keys(f, inputs[f.name]) for f in CATEGORY_FIELDS], axis=0),
                                    vocab_filename=CATEGORIES)
    vocabs = {PODCAST_VOCAB: podcast_vocab, CATEGORIES: category_vocab}
    outputs = {}
    for f in FEATURES:
        outputs.update(SPECS[f.transform].apply(f, inputs[f.name], vocabs))
    outputs.update(derived_features(inputs, pair_vocab))
    for label in LABELS:
        outputs[label] = _dense(inputs[label], 0)
    outputs[PRIOR_IMPRESSIONS_RAW] = _dense(inputs["podcast_prior_impressions"], 0)
    outputs[RECENT_STREAMS_RAW] = _dense(inputs["podcast_recent_streams"], 0)
    return outputs


def cardinalities(tf_transform_output) -> Dict[str, int]:
    """Embedding-table size of every table (table name -> rows)."""
    sizes = {}
    for f in FEATURES:
        sizes.update(SPECS[f.transform].sizes(f, tf_transform_output))
    return sizes
