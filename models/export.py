"""SavedModel export with two signatures, both applying the Transform graph inside the model.

- `serving_default`: serialized tf.Example of raw impression features -> one probability per head;
- `serving_raw`: raw features as named dense tensors (for JSON clients) -> the same outputs.
  Scalars are [batch]; list features are [batch, n] padded with ""; a field absent on an
  impression (promotion metadata on ads, ad metadata on promotions) is "" (strings) or 0 (ints).
Neither takes labels or true probabilities. Every source's declared stream head is served: a model
without one (the promotions baseline has no `ad_stream`) serves its stream head under that name
too, as the incumbent system scores ads with its promotions model; so any two models can be
compared head by head. The model's config is written to `assets.extra/model_config.json`.

Bad requests are errors, not scores: a `source` outside its closed domain (`core.fields.SOURCES`)
raises InvalidArgumentError naming the feature and the values (as the gate does for logs), and a
record that is not a serialized tf.Example raises a TensorFlow error with a readable message
(TensorFlow's own parse error quotes the raw bytes, which Python cannot decode: UnicodeDecodeError).
"""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

import tensorflow as tf

from core.fields import FEATURE_NAMES, FEATURES, SOURCES
from core.serving import SERVING_DEFAULT, SERVING_RAW
from core.tasks import TASKS, stream_head

MODEL_CONFIG_FILE = "model_config.json"
CALIBRATION_FILE = "calibration.json"  # the served per-source offsets and their eval-split report


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


def check_source(source: tf.Tensor) -> tf.Tensor:
    """`source` unchanged, after asserting every value is in SOURCES (InvalidArgumentError otherwise)."""
    values = tf.reshape(source, [-1])
    known = tf.reduce_any(tf.equal(values[:, None], tf.constant(SOURCES)[None, :]), axis=1)
    bad = tf.strings.unicode_transcode(tf.boolean_mask(values, ~known)[:5], "UTF-8", "UTF-8", errors="replace")
    check = tf.debugging.Assert(tf.reduce_all(known), [
        f"feature source must be one of {', '.join(SOURCES)}; got", tf.reduce_sum(tf.cast(~known, tf.int32)),
        "unknown value(s), e.g.", bad], summarize=5)
    with tf.control_dependencies([check]):
        return tf.identity(source)


def check_serialized_examples(serialized: tf.Tensor) -> tf.Tensor:
    """`serialized` unchanged, after decoding each record as a tf.Example down to its values with
    decode_proto, whose errors do not quote the raw bytes (tf.io.parse_example's do)."""
    sizes = []

    def decode(msgs, message_type, fields, types):
        # one empty message more (valid for every type): decode_proto refuses an empty batch
        msgs = tf.concat([tf.reshape(msgs, [-1]), tf.constant([""])], axis=0)
        size, values = tf.io.decode_proto(msgs, message_type, fields, types)
        sizes.append(tf.reduce_sum(size))
        return values

    (features,) = decode(serialized, "tensorflow.Example", ["features"], [tf.string])
    (entries,) = decode(features, "tensorflow.Features", ["feature"], [tf.string])
    _, values = decode(entries, "tensorflow.Features.FeatureEntry", ["key", "value"], [tf.string, tf.string])
    lists = decode(values, "tensorflow.Feature", ["bytes_list", "float_list", "int64_list"], [tf.string] * 3)
    decode(lists[0], "tensorflow.BytesList", ["value"], [tf.string])
    decode(lists[1], "tensorflow.FloatList", ["value"], [tf.float32])
    decode(lists[2], "tensorflow.Int64List", ["value"], [tf.int64])
    check = tf.debugging.assert_non_negative(tf.add_n(sizes), message="serialized tf.Examples")
    with tf.control_dependencies([check]):
        return tf.identity(serialized)


def source_offsets(source: tf.Tensor, by_source: Dict[str, float]) -> tf.Tensor:
    """[batch, 1] logit offsets of one head: `by_source[s]` on rows of source s, 0 elsewhere."""
    values = tf.reshape(source, [-1])
    shift = tf.zeros(tf.shape(values), tf.float32)
    for name, offset in sorted(by_source.items()):
        shift += tf.where(tf.equal(values, name), tf.constant(offset, tf.float32), 0.0)
    return shift[:, None]


def add_signatures(model, tf_transform_output, offsets: Optional[Dict[str, Dict[str, float]]] = None) -> Dict:
    """`offsets`: {head: {source: logit offset}} added before the sigmoid, in both signatures (the
    per-source calibration, `models/calibration.py`); none: the model's own probabilities."""
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is saved
    feature_spec = serving_feature_spec(tf_transform_output)
    offsets = {h: dict(v) for h, v in (offsets or {}).items() if v}

    aliases = served_stream_aliases(model.task_rows)

    # one function for both signatures: the Transform layer and the model are traced once per export
    # when the two signatures' parsed inputs have the same specs (they do), not once per signature.
    # Without AutoGraph (nothing here branches on tensors): converting the Transform layer's Python
    # (Keras, tf.Transform) took about 14 of an export's 24 s (docs/results/performance.md)
    @tf.function(reduce_retracing=True, autograph=False)
    def predict(raw):
        raw = dict(raw, source=check_source(raw["source"]))
        transformed = model.tft_layer(raw)
        logits = model(transformed, training=False)
        out = {}
        for name, value in logits.items():
            if name in offsets:
                value = value + tf.reshape(source_offsets(raw["source"], offsets[name]), tf.shape(value))
            out[name] = tf.sigmoid(value)
        out.update({alias: tf.identity(out[head]) for alias, head in aliases.items()})
        return out

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_examples(serialized):
        return predict(tf.io.parse_example(check_serialized_examples(serialized), feature_spec))

    raw_specs = _raw_input_spec(feature_spec)
    names = sorted(raw_specs)

    @tf.function(input_signature=[raw_specs[n] for n in names], autograph=False)
    def serve_raw(*tensors):
        return predict(_to_raw(dict(zip(names, tensors)), feature_spec))

    return {SERVING_DEFAULT: serve_examples.get_concrete_function(),
            SERVING_RAW: serve_raw.get_concrete_function()}


def served_stream_aliases(tasks) -> Dict[str, str]:
    """{declared stream head a model lacks: the model's head that serves that source}."""
    have = {t.name for t in tasks}
    out = {}
    for source in SOURCES:
        declared = stream_head(TASKS, source)
        if declared not in have:
            out[declared] = stream_head(tasks, source)
    return out


def export(model, tf_transform_output, out_dir: str, cfg=None, offsets=None, calibration=None) -> None:
    """`offsets`: the per-source calibration applied inside both signatures; `calibration`: its
    report (eval split, before / after), written to `assets.extra/calibration.json`."""
    signatures = add_signatures(model, tf_transform_output, offsets)
    # Without Keras's per-layer call traces: everything that loads an export (TF Serving, TFMA with
    # `model_type` tf_generic, BulkInferrer, `score`, warm start's own rows) uses the two signatures,
    # never Keras's revived layers. Saving the traces took 7 s of an export's 8.5 and loading them 3 s
    # of 3.4 (the `unified` model on the default logs' Transform output; docs/results/performance.md).
    model.save(out_dir, save_format="tf", signatures=signatures, save_traces=False)
    extra = os.path.join(out_dir, "assets.extra")
    if cfg is not None:
        tf.io.gfile.makedirs(extra)
        with tf.io.gfile.GFile(os.path.join(extra, MODEL_CONFIG_FILE), "w") as f:
            f.write(cfg.to_json())
    if offsets or calibration:
        tf.io.gfile.makedirs(extra)
        with tf.io.gfile.GFile(os.path.join(extra, CALIBRATION_FILE), "w") as f:
            f.write(json.dumps({"offsets": offsets or {}, "eval": calibration or {}}, indent=1))
    write_warmup_requests(out_dir, warmup_examples(tf_transform_output), serving_feature_spec(tf_transform_output))


def read_model_config(model_dir: str):
    """The ModelConfig an exported model was trained with (None for a model without one)."""
    from models.config import ModelConfig

    path = os.path.join(model_dir, "assets.extra", MODEL_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return ModelConfig.from_json(f.read())

WARMUP_FILE = "tf_serving_warmup_requests"  # TF Serving replays these at load: <model>/assets.extra/<WARMUP_FILE>
_WARMUP_TIME = 1_700_000_000  # 2023-11-14 22:13 UTC


def warmup_examples(tf_transform_output, n_per_source: int = 4):
    """Real-looking raw tf.Examples for serving warm-up: values taken from Transform's vocabularies
    (the most frequent training values), a one-source field only on its own source, no labels."""
    from core.fields import SOURCES, Transform
    from models.preprocessing import field_values

    def vocab(f):
        try:
            return [v for v in field_values(tf_transform_output, f) if v] or [b"unknown"]
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
                    values = vocab(f)
                    feature.bytes_list.value.extend(values[i: i + 3])
                elif f.transform == Transform.HASH:
                    feature.bytes_list.value.append(f"{f.name}-{i}".encode())
                else:  # vocabulary fields
                    values = vocab(f)
                    value = values[i % len(values)]
                    if spec[f.name].dtype == tf.int64:
                        feature.int64_list.value.append(int(value))
                    else:
                        feature.bytes_list.value.append(value)
            examples.append(ex.SerializeToString())
    return examples


def raw_inputs(examples, feature_spec: Dict) -> Dict[str, object]:
    """serving_raw's inputs for serialized tf.Examples: one dense array per field ([batch], lists
    [batch, n] padded with ""), an absent field "" or 0, as a JSON client sends them."""
    parsed = tf.io.parse_example(tf.constant(list(examples)), feature_spec)
    out = {}
    for name, f in feature_spec.items():
        x = parsed[name]
        if isinstance(x, tf.sparse.SparseTensor):
            default = "" if f.dtype == tf.string else 0
            dense = tf.sparse.to_dense(x, default_value=tf.constant(default, f.dtype))
            if dense.shape[1] == 0:
                dense = tf.fill([len(examples), 1], tf.constant(default, f.dtype))
            x = dense if name in _LIST_FEATURES else dense[:, 0]
        else:
            x = tf.reshape(x, [-1])
        out[name] = x.numpy()
    return out


def write_warmup_requests(model_dir: str, examples, feature_spec: Optional[Dict] = None, batch_sizes=(1, 4)) -> str:
    """Writes `<model_dir>/assets.extra/tf_serving_warmup_requests`: per batch size, one PredictionLog
    with a PredictRequest to serving_default (that many of `examples`) and, given the raw
    `feature_spec`, one to serving_raw with the same impressions as named tensors (`raw_inputs`), so
    neither signature's first real call pays for loading its graph. Returns the file's path."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    folder = os.path.join(model_dir, "assets.extra")
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, WARMUP_FILE)

    def log(request):
        return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))

    with tf.io.TFRecordWriter(path) as writer:
        for n in batch_sizes:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=SERVING_DEFAULT))
            batch = [examples[(k * 7) % len(examples)] for k in range(n)] if n < len(examples) else list(examples)
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            writer.write(log(request).SerializeToString())
            if feature_spec:
                raw = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=SERVING_RAW))
                for name, value in raw_inputs(batch, feature_spec).items():
                    raw.inputs[name].CopyFrom(tf.make_tensor_proto(value))
                writer.write(log(raw).SerializeToString())
    return path
