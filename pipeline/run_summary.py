"""What one pipeline run did, read back from MLMD and its artifacts: splits, per-source AP,
blessing, pushed model, and each component's wall time. `RunSummary` is that record, and its JSON
form is `<root>/summary.json`."""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any, Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from core.strict_json import strict_json
from core.row_report import RowReport

from core.split import SPLITS
from core.tasks import TASKS, stream_head
from evaluation.tfma_metrics import EXACT_AP_NAME
from core.fields import SOURCES
from models.config import INCUMBENT_FILE, REFERENCE_FILE
from pipeline.run_root import Node

_STATE = {metadata_store_pb2.Execution.COMPLETE: "done", metadata_store_pb2.Execution.CACHED: "cached",
          metadata_store_pb2.Execution.FAILED: "failed", metadata_store_pb2.Execution.RUNNING: "running",
          metadata_store_pb2.Execution.CANCELED: "canceled"}


def _store(metadata_path: str, writable: bool = False) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = (metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE if writable else
                                     metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)
    return metadata_store.MetadataStore(config)


def cancel_interrupted(metadata_path: str) -> List[Dict]:
    """Marks executions left RUNNING (by a run that was killed; the caller holds the root's lock, so
    none is really running) as CANCELED with a note, and returns them."""
    if not os.path.exists(metadata_path):
        return []
    store = _store(metadata_path, writable=True)
    types = {t.id: t.name for t in store.get_execution_types()}
    stale = [e for e in store.get_executions() if e.last_known_state == metadata_store_pb2.Execution.RUNNING]
    for e in stale:
        e.last_known_state = metadata_store_pb2.Execution.CANCELED
        e.custom_properties["interrupted"].string_value = "left RUNNING by a killed run; canceled by the next run"
    if stale:
        store.put_executions(stale)
    return [{"component": types[e.type_id].rsplit(".", 1)[-1], "id": e.id} for e in stale]


def executions_since(metadata_path: str, since_ms: int) -> List[Dict]:
    """Executions created at or after `since_ms`, oldest first, with their output artifacts."""
    if not os.path.exists(metadata_path):
        return []
    store = _store(metadata_path)
    types = {t.id: t.name for t in store.get_execution_types()}
    context_types = {t.id: t.name for t in store.get_context_types()}
    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    rows = []
    for e in sorted(store.get_executions(), key=lambda e: (e.create_time_since_epoch, e.id)):
        if e.create_time_since_epoch < since_ms:
            continue
        events = store.get_events_by_execution_ids([e.id])
        out_ids = [ev.artifact_id for ev in events if ev.type == metadata_store_pb2.Event.OUTPUT]
        outputs = {}
        for a in store.get_artifacts_by_id(out_ids):
            outputs.setdefault(artifact_types[a.type_id], []).append(a)
        # the node id (e.g. "Trainer", "baseline_trainer"); the execution type for older records
        nodes = [c.name.split(".", 1)[-1] for c in store.get_contexts_by_execution(e.id)
                 if context_types.get(c.type_id) == "node"]
        component = nodes[0] if nodes else types[e.type_id].rsplit(".", 1)[-1]
        rows.append({"id": e.id, "component": component, "state": _STATE.get(e.last_known_state, "?"),
                     "seconds": (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0,
                     "outputs": outputs})
    return rows


def _latest_output(rows: List[Dict], artifact_type: str, component: str):
    for row in reversed(rows):
        if row["component"] == component and artifact_type in row["outputs"]:
            return row["outputs"][artifact_type][-1]
    return None


def _best_values(uri: str) -> Optional[Dict]:
    """The Tuner's best hyperparameter values."""
    files = glob.glob(os.path.join(uri, "*"))
    if not files:
        return None
    with open(files[0]) as f:
        return json.load(f).get("values")


def split_counts(stats_uri: str) -> Dict[str, int]:
    import tensorflow_data_validation as tfdv

    counts = {}
    for split in SPLITS:
        files = glob.glob(os.path.join(stats_uri, f"Split-{split}", "FeatureStats.pb"))
        if files:
            counts[split] = int(tfdv.load_stats_binary(files[0]).datasets[0].num_examples)
    return counts


def per_source_ap(evaluation_uri: str, model_name: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """{source: {head: exact AP on that source's test impressions}} of one evaluated model
    ("candidate" or "baseline" when the Evaluator compared two; None when it evaluated one)."""
    import tensorflow_model_analysis as tfma

    out = {s: {} for s in SOURCES}
    for slice_key, metrics in tfma.load_eval_result(evaluation_uri, model_name=model_name).slicing_metrics:
        if len(slice_key) != 1 or slice_key[0][0] != "source":
            continue
        source = slice_key[0][1]
        source = source.decode() if isinstance(source, bytes) else source
        for head, by_sub_key in metrics.items():
            for values in by_sub_key.values():
                if EXACT_AP_NAME in values:
                    value = values[EXACT_AP_NAME].get("doubleValue")  # TFMA writes NaN as the string "NaN"
                    out.setdefault(source, {})[head] = None if value is None else float(value)
    return out


def validation_failures(evaluation_uri: str) -> List[str]:
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    lines = []
    for per_slice in result.metric_validations_per_slice:
        where = ", ".join(f"{k.column}={k.bytes_value.decode() or k.int64_value}"
                          for k in per_slice.slice_key.single_slice_keys) or "overall"
        for f in per_slice.failures:
            t = f.metric_threshold
            if f.metric_key.is_diff:  # TFMA reports the absolute difference; the bound is relative
                lines.append(f"{where}: {f.metric_key.output_name} {f.metric_key.name} is "
                             f"{-f.metric_value.double_value.value:.4f} below the baseline's, more than the "
                             f"{-t.change_threshold.relative.value:.0%} relative tolerance")
            elif f.metric_key.name == "calibration":  # mean prediction / mean label, a band
                lines.append(f"{where}: {f.metric_key.output_name} calibration (mean prediction / mean label) "
                             f"{f.metric_value.double_value.value:.3f} outside "
                             f"[{t.value_threshold.lower_bound.value:.2f}, {t.value_threshold.upper_bound.value:.2f}]")
            else:
                lines.append(f"{where}: {f.metric_key.output_name} {f.metric_key.name} value "
                             f"{f.metric_value.double_value.value:.4f} below {t.value_threshold.lower_bound.value:.4f}")
    return lines


def _model_ap(evaluation_uri: str, model_name: str) -> Dict[str, Dict[str, float]]:
    try:
        return per_source_ap(evaluation_uri, model_name)
    except Exception:  # an evaluation of a single model (no baseline) has no model names
        return per_source_ap(evaluation_uri) if model_name == "candidate" else {}


def _value(v) -> Optional[float]:
    if isinstance(v, dict):
        v = v.get("doubleValue", v.get("value"))
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def ece_from_buckets(buckets: List[Dict]) -> Optional[float]:
    """Expected calibration error from TFMA CalibrationPlot buckets (TFMA has no ECE metric):
    sum over buckets of |sum of predictions - sum of labels| / all examples (weighted)."""
    total, gap = 0.0, 0.0
    for b in buckets:
        n = _value(b.get("numWeightedExamples")) or 0.0
        total += n
        gap += abs((_value(b.get("totalWeightedRefinedPrediction")) or 0.0) - (_value(b.get("totalWeightedLabel")) or 0.0))
    return gap / total if total else None


def per_source_calibration(evaluation_uri: str, model_name: Optional[str] = None) -> Dict[str, Dict[str, Dict]]:
    """{source: {head: {calibration, mean_prediction, mean_label, ece, buckets}}} of one evaluated
    model, on each source's slice, for the heads the Evaluator measured calibration of (the stream
    heads on the source each is judged on; `evaluation/eval_config.py`)."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri, model_name=model_name)

    def source_of(slice_key):
        if len(slice_key) != 1 or slice_key[0][0] != "source":
            return None
        value = slice_key[0][1]
        return value.decode() if isinstance(value, bytes) else value

    out: Dict[str, Dict[str, Dict]] = {}
    for slice_key, metrics in result.slicing_metrics:
        source = source_of(slice_key)
        for head, by_sub_key in (metrics.items() if source else ()):
            for values in by_sub_key.values():
                if "calibration" in values:
                    out.setdefault(source, {})[head] = {k: _value(values.get(k)) for k in
                                                        ("calibration", "mean_prediction", "mean_label")}
    for slice_key, plots in result.plots:
        source = source_of(slice_key)
        for head, by_sub_key in (plots.items() if source else ()):
            for plot in by_sub_key.values():
                buckets = (plot.get("calibrationHistogramBuckets") or {}).get("buckets") or []
                if buckets and head in out.get(source, {}):
                    out[source][head]["ece"] = ece_from_buckets(buckets)
                    out[source][head]["buckets"] = [
                        [_value(b.get("lowerThresholdInclusive")), _value(b.get("numWeightedExamples")) or 0.0,
                         _value(b.get("totalWeightedRefinedPrediction")) or 0.0,
                         _value(b.get("totalWeightedLabel")) or 0.0] for b in buckets]
    # TFMA computes a head's metrics on every slice: keep, per source, the head that source is judged on
    # (the task table's stream head) when it was measured, as the gate does
    for source, heads in out.items():
        judged = stream_head(TASKS, source)
        if judged in heads:
            out[source] = {judged: heads[judged]}
    return out


def _calibration(evaluation_uri: str) -> Dict:
    try:
        return per_source_calibration(evaluation_uri, "candidate")
    except Exception:  # an evaluation of a single model (no baseline) has no model names
        try:
            return per_source_calibration(evaluation_uri)
        except Exception:
            return {}


def _baseline(rows: List[Dict], evaluation_uri: str) -> Optional[Dict]:
    """Which model the candidate was compared with, and its AP per source and head."""
    trained = _latest_output(rows, "Model", Node.BASELINE_TRAINER)
    imported = _latest_output(rows, "Model", Node.BASELINE_IMPORTER)
    if not (trained or imported):
        return None
    ap = _model_ap(evaluation_uri, "baseline")
    if imported:
        return {"model": imported.uri, "kind": "incumbent (imported)", "ap": ap}
    incumbent = os.path.join(trained.uri, INCUMBENT_FILE)  # baseline_trainer served the resolved incumbent
    if os.path.exists(incumbent):
        with open(incumbent) as f:
            source = json.load(f)["incumbent"]
        return {"model": source, "kind": "incumbent (latest pushed model, resolved in the DAG)", "ap": ap,
                "baseline_artifact": trained.uri}
    if os.path.exists(os.path.join(trained.uri, REFERENCE_FILE)):  # baseline_trainer served the Tuner's reference
        return {"model": trained.uri, "kind": "promotions_baseline trained in this run (by the Tuner, as its reference)",
                "ap": ap}
    return {"model": trained.uri, "kind": "promotions_baseline trained in this run", "ap": ap}


def rows_report(examples_uri: str) -> Dict:
    """What TemporalExampleGen did with every row read (its `RowReport`, `core/row_report.py`); with
    daily spans, merged over the window's days by TemporalWindow, with `days`: each day's split, span
    and the Examples artifact it came from; `splits` and `positives`: {split: {source: rows / stream
    positives}}."""
    report = RowReport.read(examples_uri)
    return report.summary() if report else {}


RUNNING, FINISHED, FAILED = "running", "finished", "failed"


@dataclasses.dataclass
class RunSummary:
    """What one run did; `to_json` / `from_json` are its one JSON form (`summary.json`)."""
    state: str = RUNNING  # RUNNING while the run goes on (or after it was killed), then FINISHED or FAILED
    started: str = ""
    pid: Optional[int] = None
    log: Optional[str] = None  # the run's full log file
    preset: Optional[str] = None
    data: Optional[str] = None  # the logs the run read (PipelineConfig.data)
    failed: Optional[bool] = None  # None while running
    blessed: Optional[bool] = None
    pushed_model: Optional[str] = None  # the pushed version folder
    not_pushed_reason: Optional[str] = "the run has not finished (or was killed)"
    splits: Dict[str, int] = dataclasses.field(default_factory=dict)  # examples per split
    rows: Dict[str, Any] = dataclasses.field(default_factory=dict)  # ExampleGen's row report
    tuned_hyperparameters: Optional[Dict[str, Any]] = None
    # {source: {head: exact test AP}} of the candidate; None where undefined (no positive label)
    ap: Dict[str, Dict[str, Optional[float]]] = dataclasses.field(default_factory=dict)
    # {source: {head: mean prediction / mean label, ECE and the reliability buckets}} of the candidate
    calibration: Dict[str, Dict[str, Dict[str, Any]]] = dataclasses.field(default_factory=dict)
    baseline: Optional[Dict[str, Any]] = None  # {"model", "kind", "ap"}: what the candidate was compared with
    components: List[Dict[str, Any]] = dataclasses.field(default_factory=list)  # component, state, seconds
    # the newest output artifact of each type, per component: {component: {artifact type: uri}}
    artifacts: Dict[str, Dict[str, str]] = dataclasses.field(default_factory=dict)
    wall_seconds: float = 0.0
    interrupted_executions: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    # {dotted path: why}: each value JSON cannot hold (NaN, infinity) written as null
    null_values: Dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        """Strict JSON: a NaN (an AP with no positive label, a loss that diverged) is written as null,
        and `null_values` says where and why."""
        nulls: Dict[str, str] = {}
        out = strict_json(dataclasses.asdict(self), nulls,
                          reason="NaN: undefined (e.g. an AP on a split with no positive label)")
        out["null_values"] = {**self.null_values, **nulls}
        return json.dumps(out, indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "RunSummary":
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def load(cls, path: str) -> "RunSummary":
        with open(path) as f:
            return cls.from_json(f.read())

    def component_states(self) -> Dict[str, str]:
        """{node id: state} of the components that ran."""
        return {c["component"]: c["state"] for c in self.components}


def summarize_run(metadata_path: str, since_ms: int, error: Optional[str] = None) -> RunSummary:
    rows = executions_since(metadata_path, since_ms)
    hyperparameters = _latest_output(rows, "HyperParameters", Node.TUNER)
    examples = _latest_output(rows, "Examples", Node.WINDOW) or _latest_output(rows, "Examples", Node.EXAMPLE_GEN)
    stats = _latest_output(rows, "ExampleStatistics", Node.STATISTICS)
    evaluation = _latest_output(rows, "ModelEvaluation", Node.EVALUATOR)
    blessing = _latest_output(rows, "ModelBlessing", Node.EVALUATOR)
    pushed = _latest_output(rows, "PushedModel", Node.PUSHER)
    blessed = bool(blessing and blessing.custom_properties["blessed"].int_value == 1)
    pushed_path = None
    if pushed and pushed.custom_properties["pushed"].int_value == 1:
        pushed_path = pushed.custom_properties["pushed_destination"].string_value
    reason = None
    if error:
        reason = error
    elif not blessed and evaluation:
        reason = "not blessed: " + ("; ".join(validation_failures(evaluation.uri)) or "see the Evaluator output")
    elif not pushed_path:
        reason = "the run ended before the Pusher"
    return RunSummary(
        state=FAILED if error else FINISHED,
        failed=error is not None,
        blessed=blessed,
        pushed_model=pushed_path,
        not_pushed_reason=reason,
        splits=split_counts(stats.uri) if stats else {},
        rows=rows_report(examples.uri) if examples else {},
        tuned_hyperparameters=_best_values(hyperparameters.uri) if hyperparameters else None,
        ap=_model_ap(evaluation.uri, "candidate") if evaluation else {},
        calibration=_calibration(evaluation.uri) if evaluation else {},
        baseline=_baseline(rows, evaluation.uri) if evaluation else None,
        components=[{"component": r["component"], "state": r["state"], "seconds": round(r["seconds"], 1)}
                    for r in rows],
        artifacts={r["component"]: {kind: arts[-1].uri for kind, arts in r["outputs"].items()} for r in rows},
    )
