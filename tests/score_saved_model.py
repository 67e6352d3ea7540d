"""Run in a fresh process: load a SavedModel with tf.saved_model.load and score raw tf.Examples
through both signatures. Prints JSON {signature: {head: [probabilities]}}.

    python tests/score_saved_model.py MODEL_DIR EXAMPLES_GLOB N
"""
import json
import os
import sys
from typing import Dict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)
import tensorflow as tf  # noqa: E402

from core.serving import SERVING_DEFAULT, SERVING_RAW  # noqa: E402


def raw_inputs_from_examples(records, input_specs: Dict[str, tf.TensorSpec]) -> Dict[str, tf.Tensor]:
    """Builds `serving_raw` inputs from serialized tf.Examples, as a JSON client would send them:
    scalars, lists padded with "", and "" / 0 where a field is absent."""
    parsed = [tf.train.Example.FromString(r).features.feature for r in records]

    def values(feature):
        kind = feature.WhichOneof("kind")
        return list(getattr(feature, kind).value) if kind else []

    out = {}
    for name, spec in input_specs.items():
        pad = b"" if spec.dtype == tf.string else 0
        rows = [values(p[name]) if name in p else [] for p in parsed]
        if spec.shape.rank == 2:
            width = max([len(r) for r in rows] + [1])
            out[name] = tf.constant([r + [pad] * (width - len(r)) for r in rows], spec.dtype)
        else:
            out[name] = tf.constant([r[0] if r else pad for r in rows], spec.dtype)
    return out


def main(model_dir, pattern, n):
    records = [r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP").take(n)]
    loaded = tf.saved_model.load(model_dir)
    by_examples = loaded.signatures[SERVING_DEFAULT](examples=tf.constant(records))
    raw_sig = loaded.signatures[SERVING_RAW]
    raw = raw_inputs_from_examples(records, raw_sig.structured_input_signature[1])
    by_raw = raw_sig(**raw)
    print(json.dumps({
        SERVING_DEFAULT: {k: v.numpy().ravel().tolist() for k, v in by_examples.items()},
        SERVING_RAW: {k: v.numpy().ravel().tolist() for k, v in by_raw.items()},
        "raw_inputs": sorted(raw),
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
