"""ValidationGate's executor: passes the schema on only when the read was clean and no split has
anomalies.

Before the TFDV anomalies, it reads TemporalExampleGen's report (`core.logs.EXAMPLE_GEN_REPORT`)
and stops the run when more rows were rejected than allowed (naming each file, reason and count),
when any impression_id occurs more than once (naming the files), when a split is empty or lacks a
source, or when the eval or test split has no positive `stream` label on a source (AP undefined).

Transform reads the schema from this gate, so nothing downstream (Transform, Trainer,
Evaluator, Pusher) runs on logs that failed validation. The error names every split, feature
and anomaly, every file with its day, and, when the schema check failed, each day's own anomalies
(each day's records checked alone); its first line, `bad days: ...`, lists the days at fault (the
schedule quarantines them). Earlier artifacts and pushed models are left as they were.
"""

import json
import os
import re
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.validation_gate import spec
from core.fields import SOURCES
from core.logs import EXAMPLE_GEN_REPORT
from core.row_report import RowReport, file_day
from core.split import SPLITS

ANOMALIES_FILE = "SchemaDiff.pb"
BAD_DAYS = "bad days: "  # the gate's first line: the days whose files have the problems (the schedule reads it)
_RECORD_DAY = re.compile(r"data_tfrecord-(\d{4}-\d{2}-\d{2})-")


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


def read_report(examples_uri: str) -> RowReport:
    report = RowReport.read(examples_uri)
    if report is None:
        raise DataValidationError(f"validation gate: {os.path.join(examples_uri, EXAMPLE_GEN_REPORT)} is missing: "
                                  f"the examples were not made by TemporalExampleGen, so no row can be accounted for")
    return report


def _where(path: str) -> str:
    day = file_day(path)
    return f"file {path}" + (f" (day {day})" if day else "")


def describe_report(report: RowReport, max_rejected_rows: int = 0) -> List[str]:
    """One line per problem in TemporalExampleGen's report, each file named with its day; empty
    when the read was clean."""
    lines = []
    if report.rows_rejected > max_rejected_rows:
        lines.append(f"{report.rows_rejected:,} of {report.rows_read:,} rows rejected "
                     f"(allowed: {max_rejected_rows:,}):")
        for path, reasons in sorted(report.rejected_by_file.items()):
            for reason, n in sorted(reasons.items()):
                lines.append(f"  {_where(path)}: {n:,} rows: {reason}")
    if report.duplicate_rows:
        lines.append(f"{report.duplicate_rows:,} rows share an impression_id with another row "
                     f"(a day written twice?):")
        for path, n in sorted(report.duplicates_by_file.items()):
            lines.append(f"  {_where(path)}: {n:,} rows with a repeated impression_id")
    for split in SPLITS:
        by_source = report.splits.get(split, {})
        if not sum(by_source.values()):
            lines.append(f"split {split!r} is empty: no accepted row has an event_time in its days")
            continue
        for source in SOURCES:
            if not by_source.get(source):
                lines.append(f"split {split!r} has no {source!r} rows (it has {by_source}); every split "
                             f"needs both sources")
            elif split != "train" and not report.positives.get(split, {}).get(source):
                lines.append(f"split {split!r} has no positive 'stream' label on {source!r}: "
                             f"its AP is undefined")
    return lines


def _day_of_record_file(name: str) -> Optional[str]:
    """The day of a split's record file, `data_tfrecord-<YYYY-MM-DD>-<file>.gz` (both ExampleGen modes
    and TemporalWindow name them so)."""
    m = _RECORD_DAY.match(name)
    return m.group(1) if m else None


def anomaly_features(anomalies_uri: str, split_names: List[str]) -> set:
    """The features with an anomaly in any split."""
    out = set()
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        if tf.io.gfile.exists(path):
            anomalies = anomalies_pb2.Anomalies()
            anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
            out |= set(anomalies.anomaly_info)
    return out


def day_anomalies(examples_uri: str, split_names: List[str], schema_uri: str, report: RowReport,
                  features: Optional[set] = None) -> Dict[str, List[str]]:
    """{YYYY-MM-DD: one line per anomaly of that day alone}: each day's records of the splits checked
    against the schema on their own, so a gate that found anomalies names the day (and its files)
    that has them. With `features`, only anomalies of those features (the ones the splits have)
    count: a day is never blamed for what only a day-sized sample shows."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl
    from tfx_bsl.coders import example_coder

    schema_files = tf.io.gfile.glob(os.path.join(schema_uri, "*.pbtxt"))
    if not schema_files:
        return {}
    schema = tfdv.load_schema_text(schema_files[0])
    by_day: Dict[str, List[str]] = {}
    for split in split_names:
        for path in tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz")):
            day = _day_of_record_file(os.path.basename(path))
            if day:
                by_day.setdefault(day, []).append(path)
    out = {}
    for day, paths in sorted(by_day.items()):
        records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(paths), compression_type="GZIP")]
        if not records:
            continue
        batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
        stats = stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())
        anomalies = tfdv.validate_statistics(stats, schema)
        lines = [f"{feature!r}: " + ("; ".join(f"{r.short_description}: {r.description}" for r in info.reason)
                                     or info.description)
                 for feature, info in sorted(anomalies.anomaly_info.items())
                 if features is None or feature in features]
        if lines:
            files = report.files_of_day(day)
            out[day] = [f"day {day}" + (f" ({', '.join(files)})" if files else "") + f": feature {line}"
                        for line in lines]
    return out


def bad_days_line(days: List[str]) -> str:
    return BAD_DAYS + ", ".join(days)


def bad_days_in(message: str) -> List[str]:
    """The days a gate's message names as failing (its `bad days:` line), else []."""
    for line in (message or "").splitlines():
        line = line.strip()
        if line.startswith(BAD_DAYS):
            return [d.strip() for d in line[len(BAD_DAYS):].split(",") if d.strip()]
    return []


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
        report = read_report(examples.uri)
        rows = describe_report(report, max_rejected_rows)
        schema_problems = describe_anomalies(anomalies.uri, splits)
        problems = rows + schema_problems
        if problems:
            bad = set(report.bad_days()) if rows else set()
            if schema_problems:
                by_day = day_anomalies(examples.uri, splits, schema.uri, report,
                                       anomaly_features(anomalies.uri, splits))
                problems += [line for lines in by_day.values() for line in lines]
                bad |= set(by_day)
            if bad:  # first, so that a cut message still names them
                problems.insert(0, bad_days_line(sorted(bad)))
            raise DataValidationError(
                "validation gate: the logs do not match the schema; nothing is trained or pushed.\n  "
                + "\n  ".join(problems))
        for name in tf.io.gfile.listdir(schema.uri):
            tf.io.gfile.copy(os.path.join(schema.uri, name), os.path.join(validated.uri, name), overwrite=True)
        evaluation = artifact_utils.get_single_instance(output_dict[spec.EVALUATION_SCHEMA_KEY])
        write_projected_schema(schema.uri, evaluation.uri,
                               json.loads(exec_properties.get(spec.EVALUATION_FEATURES_KEY) or "[]"))


def write_projected_schema(schema_uri: str, out_uri: str, features: List[str]) -> None:
    """The schema under `schema_uri` with only `features` (every feature when empty) as
    `out_uri/schema.pbtxt`; a feature the schema lacks is an error naming it."""
    import tensorflow_data_validation as tfdv

    files = tf.io.gfile.glob(os.path.join(schema_uri, "*.pbtxt"))
    if len(files) != 1:
        raise DataValidationError(f"validation gate: expected one schema .pbtxt under {schema_uri}, found {files}")
    schema = tfdv.load_schema_text(files[0])
    wanted = set(features)
    if wanted:
        missing = sorted(wanted - {f.name for f in schema.feature})
        if missing:
            raise DataValidationError(f"validation gate: {files[0]} has no feature {', '.join(map(repr, missing))} "
                                      f"that the Evaluator slices or labels by")
        kept = [f for f in schema.feature if f.name in wanted]
        del schema.feature[:]
        schema.feature.extend(kept)
    tf.io.gfile.makedirs(out_uri)
    tfdv.write_schema_text(schema, os.path.join(out_uri, "schema.pbtxt"))
