"""Transform's `preprocessing_fn`, driven by the field table in `models/features.py`.

Analysed on the train split only (Transform's default with a train split). Outputs, all [batch]
or [batch, LIST_LENGTH]:
- vocab features: ids from a vocabulary with OOV buckets (podcast ids share one vocabulary with
  the listening-history and follows lists; their ids start at 1, 0 is list padding);
- hash features: hash buckets (high-cardinality ids);
- numeric features: z-score of log1p(value);
- event_time: `hour` and `weekday`;
- source: its index in SOURCES; labels: passed through as int64;
- prior_impressions_raw: the raw podcast_prior_impressions, for cold-start reports only.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models.features import FEATURES, LABELS, LIST_LENGTH, SOURCES

PODCAST_VOCAB = "podcast_id"
# Raw earlier-impression count, carried through for cold-start reports; not a model input.
PRIOR_IMPRESSIONS_RAW = "prior_impressions_raw"


def shares_podcast_vocab(field) -> bool:
    return field.vocab_name == PODCAST_VOCAB


def _dense(x, default):
    """[batch] tensor from a [batch, 1] dense or a [batch, <=1] sparse feature, missing -> default."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default)
    return tf.reshape(x, [-1])


def _as_string(x):
    return x if x.dtype == tf.string else tf.strings.as_string(x)


def _pad_list(ids: tf.sparse.SparseTensor) -> tf.Tensor:
    batch = ids.dense_shape[0]
    ids = tf.sparse.slice(ids, [0, 0], [batch, LIST_LENGTH])
    ids = tf.sparse.reset_shape(ids, [batch, LIST_LENGTH])
    return tf.reshape(tf.sparse.to_dense(ids, default_value=0), [-1, LIST_LENGTH])


def preprocessing_fn(inputs):
    outputs = {}
    podcast_vocab = tft.vocabulary(_dense(inputs[PODCAST_VOCAB], ""), vocab_filename=PODCAST_VOCAB)
    for f in FEATURES:
        x = inputs[f.name]
        if f.transform == "time":
            t = _dense(x, 0)
            outputs["hour"] = (t // 3600) % 24
            outputs["weekday"] = (t // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        elif f.transform == "source":
            s = _dense(x, "")
            outputs[f.name] = tf.add_n([tf.cast(tf.equal(s, name), tf.int64) * i for i, name in enumerate(SOURCES)])
        elif f.transform == "list":
            ids = tft.apply_vocabulary(x, podcast_vocab, num_oov_buckets=f.buckets)
            outputs[f.name] = _pad_list(tf.SparseTensor(ids.indices, ids.values + 1, ids.dense_shape))
        elif f.transform == "vocab" and shares_podcast_vocab(f):
            outputs[f.name] = tft.apply_vocabulary(_dense(x, ""), podcast_vocab, num_oov_buckets=f.buckets) + 1
        elif f.transform == "vocab":
            outputs[f.name] = tft.compute_and_apply_vocabulary(
                _as_string(_dense(x, "" if x.dtype == tf.string else 0)), num_oov_buckets=f.buckets,
                vocab_filename=f.name)
        elif f.transform == "hash":
            outputs[f.name] = tf.strings.to_hash_bucket_fast(_as_string(_dense(x, "")), f.buckets)
        elif f.transform == "numeric":
            outputs[f.name] = tft.scale_to_z_score(tf.math.log1p(tf.maximum(tf.cast(_dense(x, 0), tf.float32), 0.0)))
        else:
            raise ValueError(f"feature {f.name!r}: unknown transform {f.transform!r}")
    for label in LABELS:
        outputs[label] = _dense(inputs[label], 0)
    outputs[PRIOR_IMPRESSIONS_RAW] = _dense(inputs["podcast_prior_impressions"], 0)
    return outputs


def cardinalities(tf_transform_output) -> dict:
    """Embedding-table size of every categorical model input (transformed name -> size)."""
    sizes = {}
    podcast_size = tf_transform_output.vocabulary_size_by_name(PODCAST_VOCAB)
    for f in FEATURES:
        if f.transform == "time":
            sizes.update({"hour": 24, "weekday": 7})
        elif f.transform == "source":
            sizes[f.name] = len(SOURCES)
        elif f.transform in ("list", "vocab") and shares_podcast_vocab(f):
            sizes[f.name] = podcast_size + _podcast_oov() + 1  # one table for every podcast-id input
        elif f.transform == "vocab":
            sizes[f.name] = tf_transform_output.vocabulary_size_by_name(f.name) + f.buckets
        elif f.transform == "hash":
            sizes[f.name] = f.buckets
    return sizes


def _podcast_oov() -> int:
    return max(f.buckets for f in FEATURES if shares_podcast_vocab(f))
