"""ValidationGate: passes the schema on only when no split has anomalies.

Transform reads the schema from this gate, so nothing downstream (Transform, Trainer,
Evaluator, Pusher) runs on logs that failed validation. The error names every split, feature
and anomaly, and earlier artifacts and pushed models are left as they were.
"""

import os
from typing import List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, Schema

ANOMALIES_FILE = "SchemaDiff.pb"


class DataValidationError(RuntimeError):
    """The logs do not match the curated schema."""


def describe_anomalies(anomalies_uri: str, split_names: List[str]) -> List[str]:
    """One line per (split, feature, anomaly) found under an ExampleAnomalies artifact URI."""
    lines = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        if not tf.io.gfile.exists(path):
            lines.append(f"split {split!r}: no anomalies file at {path}")
            continue
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(f"{r.short_description}: {r.description}" for r in info.reason) or info.description
            lines.append(f"split {split!r}, feature {feature!r}: {reasons}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            reasons = "; ".join(f"{r.short_description}: {r.description}" for r in info.reason)
            lines.append(f"split {split!r}, whole dataset: {reasons}")
    return lines


@component
def ValidationGate(anomalies: InputArtifact[ExampleAnomalies], schema: InputArtifact[Schema],
                   validated_schema: OutputArtifact[Schema]) -> None:
    """Raises DataValidationError listing every anomaly; else copies the schema downstream."""
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    problems = describe_anomalies(anomalies.uri, splits)
    if problems:
        raise DataValidationError(
            "validation gate: the logs do not match the schema; nothing is trained or pushed.\n  "
            + "\n  ".join(problems))
    for name in tf.io.gfile.listdir(schema.uri):
        tf.io.gfile.copy(os.path.join(schema.uri, name), os.path.join(validated_schema.uri, name), overwrite=True)
