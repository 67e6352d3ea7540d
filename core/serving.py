"""The serving contract's names: the SavedModel signatures every pushed model has (models/export.py
builds them; batch scoring, the Evaluator, BulkInferrer and serving clients call them by these
names)."""

SERVING_DEFAULT = "serving_default"  # serialized tf.Examples of raw impression features
SERVING_RAW = "serving_raw"  # the same fields as named tensors (JSON clients)
