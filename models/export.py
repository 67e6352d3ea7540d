"""SavedModel export with two signatures, both applying the Transform graph inside the model.

- `serving_default`: serialized tf.Example of raw impression features -> one probability per head;
- `serving_raw`: raw features as named dense tensors (for JSON clients) -> the same outputs.
  Scalars are [batch]; list features are [batch, n] padded with ""; a field absent on an
  impression (promotion metadata on ads, ad metadata on promotions) is "" (strings) or 0 (ints).
Neither takes labels or true probabilities.
"""
from __future__ import annotations

import os
from typing import Dict

import tensorflow as tf

from core.fields import FEATURE_NAMES, FEATURES

SERVING_DEFAULT = "serving_default"
SERVING_RAW = "serving_raw"


def serving_feature_spec(tf_transform_output) -> Dict:
    spec = tf_transform_output.raw_feature_spec()
    return {k: v for k, v in spec.items() if k in FEATURE_NAMES}


def _raw_input_spec(feature_spec: Dict) -> Dict[str, tf.TensorSpec]:
    specs = {}
    for name, f in feature_spec.items():
        list_like = isinstance(f, tf.io.VarLenFeature) and name in _LIST_FEATURES
        specs[name] = tf.TensorSpec([None, None] if list_like else [None], f.dtype, name=name)
    return specs


_LIST_FEATURES = {f.name for f in FEATURES if f.is_list}


def _to_raw(inputs: Dict[str, tf.Tensor], feature_spec: Dict) -> Dict:
    raw = {}
    for name, f in feature_spec.items():
        x = inputs[name]
        if isinstance(f, tf.io.VarLenFeature):
            raw[name] = tf.sparse.from_dense(x if x.shape.rank == 2 else x[:, None])  # drops "" / 0
        else:
            raw[name] = tf.reshape(x, [-1, 1])
    return raw


def add_signatures(model, tf_transform_output) -> Dict:
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is saved
    feature_spec = serving_feature_spec(tf_transform_output)

    def predict(raw):
        transformed = model.tft_layer(raw)
        logits = model(transformed, training=False)
        return {name: tf.sigmoid(value) for name, value in logits.items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return predict(tf.io.parse_example(serialized, feature_spec))

    raw_specs = _raw_input_spec(feature_spec)
    names = sorted(raw_specs)

    @tf.function(input_signature=[raw_specs[n] for n in names])
    def serve_raw(*tensors):
        return predict(_to_raw(dict(zip(names, tensors)), feature_spec))

    return {SERVING_DEFAULT: serve_examples.get_concrete_function(),
            SERVING_RAW: serve_raw.get_concrete_function()}


def export(model, tf_transform_output, out_dir: str) -> None:
    signatures = add_signatures(model, tf_transform_output)
    model.save(out_dir, save_format="tf", signatures=signatures)
    write_warmup_requests(out_dir, warmup_examples(tf_transform_output))


WARMUP_FILE = "tf_serving_warmup_requests"  # TF Serving replays these at load: <model>/assets.extra/<WARMUP_FILE>
_WARMUP_TIME = 1_700_000_000  # 2023-11-14 22:13 UTC


def warmup_examples(tf_transform_output, n_per_source: int = 4):
    """Real-looking raw tf.Examples for serving warm-up: values taken from Transform's vocabularies
    (the most frequent training values), a one-source field only on its own source, no labels."""
    from core.fields import SOURCES, Transform

    def vocab(name):
        try:
            return [v for v in tf_transform_output.vocabulary_by_name(name) if v] or [b"unknown"]
        except (ValueError, KeyError, tf.errors.NotFoundError):  # a field without a vocabulary
            return [b"unknown"]

    spec = serving_feature_spec(tf_transform_output)
    examples = []
    for source in SOURCES:
        for i in range(n_per_source):
            ex = tf.train.Example()
            for f in FEATURES:
                if f.name not in spec or (f.only_on and f.only_on != source):
                    continue
                feature = ex.features.feature[f.name]
                if f.transform == Transform.SOURCE:
                    feature.bytes_list.value.append(source.encode())
                elif f.transform == Transform.TIME:
                    feature.int64_list.value.append(_WARMUP_TIME + 3600 * i)
                elif f.transform == Transform.NUMERIC:
                    feature.int64_list.value.append(10 ** (i % 4))
                elif f.transform == Transform.LIST:
                    values = vocab(f.vocab_name)
                    feature.bytes_list.value.extend(values[i: i + 3])
                elif f.transform == Transform.HASH:
                    feature.bytes_list.value.append(f"{f.name}-{i}".encode())
                else:  # vocabulary fields
                    values = vocab(f.vocab_name)
                    value = values[i % len(values)]
                    if spec[f.name].dtype == tf.int64:
                        feature.int64_list.value.append(int(value))
                    else:
                        feature.bytes_list.value.append(value)
            examples.append(ex.SerializeToString())
    return examples


def write_warmup_requests(model_dir: str, examples, batch_sizes=(1, 4)) -> str:
    """Writes `<model_dir>/assets.extra/tf_serving_warmup_requests`: one PredictionLog per batch size
    (a PredictRequest to serving_default with that many of `examples`). Returns the file's path."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    folder = os.path.join(model_dir, "assets.extra")
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for n in batch_sizes:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=SERVING_DEFAULT))
            batch = [examples[(k * 7) % len(examples)] for k in range(n)] if n < len(examples) else list(examples)
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
