"""ValidationGate's executor: passes the schema on only when the read was clean and no split has
anomalies.

Before the TFDV anomalies, it reads TemporalExampleGen's report (`core.logs.EXAMPLE_GEN_REPORT`)
and stops the run when more rows were rejected than allowed (naming each file, reason and count),
when any impression_id occurs more than once (naming the files), when a split is empty or lacks a
source, or when the eval or test split has no positive `stream` label on a source (AP undefined).

Transform reads the schema from this gate, so nothing downstream (Transform, Trainer,
Evaluator, Pusher) runs on logs that failed validation. The error names every split, feature
and anomaly, and earlier artifacts and pushed models are left as they were.
"""

import json
import os
from typing import Any, Dict, List

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.validation_gate import spec
from core.fields import SOURCES
from core.logs import EXAMPLE_GEN_REPORT
from core.split import SPLITS

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


def read_report(examples_uri: str) -> Dict:
    path = os.path.join(examples_uri, EXAMPLE_GEN_REPORT)
    if not tf.io.gfile.exists(path):
        raise DataValidationError(f"validation gate: {path} is missing: the examples were not made by "
                                  f"TemporalExampleGen, so no row can be accounted for")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def describe_report(report: Dict, max_rejected_rows: int = 0) -> List[str]:
    """One line per problem in TemporalExampleGen's report; empty when the read was clean."""
    lines = []
    if report["rows_rejected"] > max_rejected_rows:
        lines.append(f"{report['rows_rejected']:,} of {report['rows_read']:,} rows rejected "
                     f"(allowed: {max_rejected_rows:,}):")
        for path, reasons in sorted(report["rejected_by_file"].items()):
            for reason, n in sorted(reasons.items()):
                lines.append(f"  file {path}: {n:,} rows: {reason}")
    if report["duplicate_rows"]:
        lines.append(f"{report['duplicate_rows']:,} rows share an impression_id with another row "
                     f"(a day written twice?):")
        for path, n in sorted(report["duplicates_by_file"].items()):
            lines.append(f"  file {path}: {n:,} rows with a repeated impression_id")
    for split in SPLITS:
        by_source = report["splits"].get(split, {})
        if not sum(by_source.values()):
            lines.append(f"split {split!r} is empty: no accepted row has an event_time in its days")
            continue
        for source in SOURCES:
            if not by_source.get(source):
                lines.append(f"split {split!r} has no {source!r} rows (it has {by_source}); every split "
                             f"needs both sources")
            elif split != "train" and not report["positives"].get(split, {}).get(source):
                lines.append(f"split {split!r} has no positive 'stream' label on {source!r}: "
                             f"its AP is undefined")
    return lines


class Executor(base_executor.BaseExecutor):
    """Raises DataValidationError listing every problem of the read and every anomaly; else copies
    the schema downstream."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        anomalies = artifact_utils.get_single_instance(input_dict[spec.ANOMALIES_KEY])
        schema = artifact_utils.get_single_instance(input_dict[spec.SCHEMA_KEY])
        validated = artifact_utils.get_single_instance(output_dict[spec.VALIDATED_SCHEMA_KEY])
        max_rejected_rows = int(exec_properties.get(spec.MAX_REJECTED_ROWS_KEY) or 0)
        splits = artifact_utils.decode_split_names(anomalies.split_names)
        problems = (describe_report(read_report(examples.uri), max_rejected_rows)
                    + describe_anomalies(anomalies.uri, splits))
        if problems:
            raise DataValidationError(
                "validation gate: the logs do not match the schema; nothing is trained or pushed.\n  "
                + "\n  ".join(problems))
        for name in tf.io.gfile.listdir(schema.uri):
            tf.io.gfile.copy(os.path.join(schema.uri, name), os.path.join(validated.uri, name), overwrite=True)
