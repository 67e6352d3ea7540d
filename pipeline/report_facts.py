"""The facts of a run's report, read from its summary and artifacts: each function returns plain
data (dicts and lists) that `pipeline/reports.py` writes as report.md and report.html.

- splits and positives per source: ExampleGen's row report (`RunSummary.rows`);
- the gate: floors and tolerance from the Evaluator's own eval config (`eval_config.json`), the
  gating head of each source, candidate and baseline AP and the relative change;
- slices: every metric TFMA computed per slice (source, source x popularity bucket) for
  the candidate and the baseline: exact AP and example count per head, mean label (positives) and
  calibration metrics where the eval config asks for them, calibration plots where present;
- tuning: the Tuner's `tuner_results.json` (TFX: every completed trial's values and score) and the
  trial log `models/tuning_log.py` keeps beside the Tuner's outputs (eval AP per source);
- training curves: the Trainers' TensorBoard event files (`models/tensorboard.py`);
- feature statistics of train / eval / test: TFDV's statistics protos (`FeatureStats.pb`).
"""
from __future__ import annotations

import glob
import json
import logging
import math
import os
from typing import Dict, List, Optional, Tuple

from core.fields import FEATURES, SOURCES, Transform
from core.split import SPLITS
from core.tasks import TASKS, stream_head
from evaluation.tfma_metrics import EXACT_AP_NAME
from pipeline.run_root import Node
from pipeline.run_summary import RunSummary

CANDIDATE, BASELINE = "candidate", "baseline"
SLICE_FEATURES = ("source", "popularity_bucket")


def artifact(summary: RunSummary, component: str, kind: str) -> Optional[str]:
    return summary.artifacts.get(component, {}).get(kind)


def _finite(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------- splits


def split_table(summary: RunSummary) -> List[Dict]:
    """One row per split: examples and stream positives per source (ExampleGen's row report), else
    the split's example count from the statistics."""
    by_source, positives = summary.rows.get("splits") or {}, summary.rows.get("positives") or {}
    rows = []
    for split in SPLITS:
        if split not in by_source and split not in summary.splits:
            continue
        counts = by_source.get(split, {})
        rows.append({"split": split, "examples": summary.splits.get(split, sum(counts.values())),
                     "by_source": {s: counts.get(s) for s in SOURCES},
                     "positives": {s: (positives.get(split) or {}).get(s) for s in SOURCES}})
    return rows


# ---------------------------------------------------------------- the gate


def _eval_config(evaluation_uri: str):
    from tensorflow_model_analysis.writers.eval_config_writer import load_eval_run

    return load_eval_run(evaluation_uri)[0]


def gate(summary: RunSummary) -> Optional[Dict]:
    """{"heads": {source: head}, "floors": {source: floor}, "tolerance": t, "rows": [...], "blessed",
    "failures"}: each source's gating head, its floor and the relative tolerance (from the eval config
    the Evaluator ran with), and candidate / baseline AP with the relative change; None without an
    evaluation."""
    uri = artifact(summary, Node.EVALUATOR, "ModelEvaluation")
    if not uri or not os.path.isdir(uri):
        return None
    heads, floors, tolerance = {}, {}, None
    try:
        config = _eval_config(uri)
        for spec in config.metrics_specs:
            # the AP gate only (the calibration band is a threshold on the same slices)
            for metric in (m for m in spec.metrics if m.class_name == "ExactAveragePrecision"):
                for t in metric.per_slice_thresholds:
                    for s in t.slicing_specs:
                        source = s.feature_values.get("source")
                        if not source:
                            continue
                        heads[source] = spec.output_names[0] if spec.output_names else ""
                        if t.threshold.value_threshold.HasField("lower_bound"):
                            floors[source] = t.threshold.value_threshold.lower_bound.value
                        if t.threshold.change_threshold.HasField("relative"):
                            tolerance = -t.threshold.change_threshold.relative.value
    except Exception:  # an evaluation without its config: the task table's stream heads
        heads = {s: stream_head(TASKS, s) for s in SOURCES}
    base = (summary.baseline or {}).get("ap") or {}
    rows = []
    for source in SOURCES:
        head = heads.get(source)
        c = (summary.ap.get(source) or {}).get(head)
        b = (base.get(source) or {}).get(head)
        rel = (c / b - 1) if c is not None and b else None
        floor = floors.get(source)
        rows.append({"source": source, "head": head, "floor": floor, "candidate": c, "baseline": b,
                     "relative_change": rel,
                     "passes_floor": None if c is None or floor is None else c >= floor,
                     "passes_tolerance": None if rel is None or tolerance is None else rel >= -tolerance})
    failures = []
    try:
        from pipeline.run_summary import validation_failures

        failures = validation_failures(uri)
    except Exception:
        pass
    return {"heads": heads, "floors": floors, "tolerance": tolerance, "rows": rows, "blessed": summary.blessed,
            "failures": failures}


# ---------------------------------------------------------------- slices and calibration


def _slice_name(slice_key) -> Tuple[str, ...]:
    """The slice's values in SLICE_FEATURES order (TFMA orders a slice key's columns by name)."""
    values = {column: value.decode() if isinstance(value, bytes) else str(value) for column, value in slice_key}
    return tuple(values[c] for c in SLICE_FEATURES if c in values) + tuple(
        v for c, v in sorted(values.items()) if c not in SLICE_FEATURES)


def _metric_value(value) -> Optional[float]:
    if isinstance(value, dict):
        for key in ("doubleValue", "double_value"):
            if key in value:
                return _finite(value[key])
        return None
    return _finite(value)


def slice_metrics(evaluation_uri: str, model_name: Optional[str]) -> Dict[Tuple[str, ...], Dict[str, Dict[str, float]]]:
    """{slice (() overall, (source,), (source, bucket)): {head ("" for model-wide metrics): {metric:
    value}}} of one model, every numeric metric TFMA wrote (diffs against the baseline left out)."""
    import tensorflow_model_analysis as tfma

    try:
        result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
    except Exception:
        if model_name != CANDIDATE:
            return {}
        result = tfma.load_eval_result(evaluation_uri)
    out = {}
    for slice_key, metrics in result.slicing_metrics:
        columns = {k for k, _ in slice_key}
        if columns not in (set(), {"source"}, set(SLICE_FEATURES)):
            continue
        name = _slice_name(slice_key)
        for head, by_sub_key in metrics.items():
            for values in by_sub_key.values():
                for metric, value in values.items():
                    if metric.endswith("_diff"):
                        continue
                    v = _metric_value(value)
                    if v is not None or metric == EXACT_AP_NAME:
                        out.setdefault(name, {}).setdefault(head, {})[metric] = v
    return out


def _is_calibration(metric: str) -> bool:
    m = metric.lower()
    return "calibration" in m or m in ("mean_prediction", "expected_calibration_error", "ece")


def slices(summary: RunSummary) -> Optional[Dict]:
    """{"heads", "rows": [{source, bucket, head, n, candidate, baseline, positives}], "calibration":
    [{slice, head, model, metric, value}]}; None without an evaluation."""
    uri = artifact(summary, Node.EVALUATOR, "ModelEvaluation")
    if not uri or not os.path.isdir(uri):
        return None
    by_model = {CANDIDATE: slice_metrics(uri, CANDIDATE)}
    if summary.baseline:
        by_model[BASELINE] = slice_metrics(uri, BASELINE)
    candidate = by_model[CANDIDATE]
    heads = sorted({h for per_head in candidate.values() for h, m in per_head.items() if EXACT_AP_NAME in m},
                   key=lambda h: [t.name for t in TASKS].index(h) if h in [t.name for t in TASKS] else 99)
    rows, calibration = [], []
    names = sorted(candidate, key=lambda k: (len(k), k))
    for name in names:
        n = None
        for per_head in candidate[name].values():
            count = _finite(per_head.get("example_count"))
            n = n if n is not None or count is None else int(round(count))
        for head in heads:
            c = candidate[name].get(head, {})
            b = by_model.get(BASELINE, {}).get(name, {}).get(head, {})
            if EXACT_AP_NAME not in c and EXACT_AP_NAME not in b:
                continue
            mean_label = c.get("mean_label")
            rows.append({"slice": name, "source": name[0] if name else "all", "bucket": name[1] if len(name) > 1 else
                         ("all" if name else "all"), "head": head, "n": n,
                         "positives": None if mean_label is None or n is None else round(mean_label * n),
                         "candidate": c.get(EXACT_AP_NAME), "baseline": b.get(EXACT_AP_NAME) if b else None})
        for model, metrics in by_model.items():
            for head, values in metrics.get(name, {}).items():
                computed = any(_is_calibration(m) for m in values)  # mean_label alone only counts positives
                for metric, value in values.items():
                    if computed and (_is_calibration(metric) or metric == "mean_label"):
                        calibration.append({"slice": name, "head": head, "model": model, "metric": metric,
                                            "value": value})
    try:
        plots = calibration_plots(uri)
    except Exception:  # the metrics stand without the diagrams
        logging.getLogger(__name__).exception("reading TFMA's plots of %s", uri)
        plots = []
    return {"heads": heads, "rows": rows, "calibration": calibration, "plots": plots}


def calibration_plots(evaluation_uri: str) -> List[Dict]:
    """Reliability diagrams TFMA wrote (a CalibrationPlot metric): [{slice, head, model, buckets:
    [(mean prediction, mean label, weight)]}]; [] when the eval config asks for none."""
    import tensorflow_model_analysis as tfma

    out = []
    for model in (CANDIDATE, None):
        try:
            result = tfma.load_eval_result(evaluation_uri, model_name=model)
        except Exception:
            continue
        for slice_key, plots in result.plots or []:
            if {k for k, _ in slice_key} not in (set(), {"source"}):
                continue
            for head, by_sub_key in (plots or {}).items():
                for values in by_sub_key.values():
                    for plot_name, plot in values.items():
                        buckets = plot.get("buckets") if isinstance(plot, dict) else None
                        if not buckets or "calibration" not in plot_name.lower():
                            continue
                        points = []
                        for b in buckets:
                            w = _finite(b.get("numWeightedExamples", {}).get("value"))
                            pred = _finite(b.get("totalWeightedRefinedPrediction", {}).get("value"))
                            label = _finite(b.get("totalWeightedLabel", {}).get("value"))
                            if w:
                                points.append((pred / w if pred is not None else None,
                                               label / w if label is not None else None, w))
                        out.append({"slice": _slice_name(slice_key), "head": head, "model": model or CANDIDATE,
                                    "points": [p for p in points if None not in p]})
            return out
    return out


# ---------------------------------------------------------------- tuning


def tuning(summary: RunSummary) -> Optional[Dict]:
    """{"trials": [{trial, score, values, eval_ap, relative_ap, step}], "best": values, "tensorboard": dir}
    from the Tuner's outputs; None when no Tuner ran."""
    uri = artifact(summary, Node.TUNER, "TunerResults")
    if not uri:
        return None
    from models.tuning_log import read_trials

    trials = []
    path = os.path.join(uri, "tuner_results.json")
    if os.path.exists(path):
        with open(path) as f:
            for r in json.load(f):
                values = {k: v for k, v in r.items() if k not in ("trial_id", "score")}
                trials.append({"trial": str(r.get("trial_id")), "score": _finite(r.get("score")), "values": values})
    board = os.path.join(os.path.dirname(os.path.dirname(uri.rstrip("/"))), "tensorboard",
                         os.path.basename(uri.rstrip("/")))
    logged = {t["trial"]: t for t in read_trials(board)}
    for t in trials:
        extra = logged.pop(t["trial"], {})
        t.update({k: extra[k] for k in ("eval_ap", "relative_ap", "step") if k in extra})
    trials += [dict(t, score=_finite(t.get("score"))) for t in logged.values()]  # trials TFX left out
    trials.sort(key=lambda t: t["trial"])
    return {"trials": trials, "best": summary.tuned_hyperparameters,
            "tensorboard": board if os.path.isdir(board) else None}


# ---------------------------------------------------------------- training curves


def _scalars(folder: str) -> Dict[str, List[Tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(folder, size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
    acc.Reload()
    out = {}
    tags = acc.Tags()
    for tag in tags.get("tensors", []):
        try:
            import tensorflow as tf

            events = acc.Tensors(tag)
            values = [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events]
        except (TypeError, ValueError):
            continue  # text and hparams summaries
        out[tag] = values
    for tag in tags.get("scalars", []):
        out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


def training_curves(summary: RunSummary) -> Dict[str, Dict[str, Dict[str, List[Tuple[int, float]]]]]:
    """{trainer node: {run ("train", "validation"): {tag: [(step, value)]}}} from the TensorBoard logs
    of the Trainer and the in-run baseline Trainer."""
    out = {}
    for node in (Node.TRAINER, Node.BASELINE_TRAINER):
        uri = artifact(summary, node, "ModelRun")
        logs = os.path.join(uri, "logs") if uri else None
        if not logs or not os.path.isdir(logs):
            continue
        runs = {}
        for run in ("train", "validation"):
            if os.path.isdir(os.path.join(logs, run)):
                runs[run] = {k: v for k, v in _scalars(os.path.join(logs, run)).items() if v}
        if any(runs.values()):
            out[node] = runs
    return out


def tensorboard_logdirs(summary: RunSummary) -> List[str]:
    """The TensorBoard log folders of this run (Trainers' logs, the Tuner's trials)."""
    dirs = []
    for node in (Node.TRAINER, Node.BASELINE_TRAINER):
        uri = artifact(summary, node, "ModelRun")
        if uri and os.path.isdir(os.path.join(uri, "logs")):
            dirs.append(os.path.join(uri, "logs"))
    t = tuning(summary)
    if t and t["tensorboard"]:
        dirs.append(t["tensorboard"])
    return dirs


# ---------------------------------------------------------------- feature statistics


def load_statistics(summary: RunSummary) -> Dict[str, object]:
    """{split: DatasetFeatureStatistics} of StatisticsGen's output."""
    uri = artifact(summary, Node.STATISTICS, "ExampleStatistics")
    if not uri:
        return {}
    import tensorflow_data_validation as tfdv

    out = {}
    for split in SPLITS:
        files = glob.glob(os.path.join(uri, f"Split-{split}", "FeatureStats.pb"))
        if files:
            out[split] = tfdv.load_stats_binary(files[0]).datasets[0]
    return out


def _name(feature) -> str:
    return feature.path.step[0] if feature.path.step else feature.name


def _common(feature):
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind) if kind else None
    if stats is None:
        return None
    return stats.common_stats if hasattr(stats, "common_stats") else None


def feature_table(stats: Dict[str, object]) -> List[Dict]:
    """One row per feature: its kind and, per split, missing rate, and a summary (mean / top value)."""
    rows = {}
    for split, ds in stats.items():
        n = ds.num_examples or 1
        for f in ds.features:
            name = _name(f)
            kind = f.WhichOneof("stats")
            row = rows.setdefault(name, {"feature": name, "kind": "numeric" if kind == "num_stats" else
                                         "categorical" if kind == "string_stats" else kind, "splits": {}})
            common = _common(f)
            missing = (common.num_missing / n) if common is not None else None
            entry = {"missing": missing}
            if kind == "num_stats":
                entry.update(mean=f.num_stats.mean, std=f.num_stats.std_dev, min=f.num_stats.min, max=f.num_stats.max,
                             zeros=f.num_stats.num_zeros / n)
            elif kind == "string_stats":
                entry.update(unique=f.string_stats.unique,
                             top=f.string_stats.top_values[0].value if f.string_stats.top_values else None)
            row["splits"][split] = entry
    return sorted(rows.values(), key=lambda r: r["feature"])


def categorical_distribution(feature, top: int = 0) -> Dict[str, float]:
    """{value: share} of a string feature's top values (ranked histogram, else top values)."""
    s = feature.string_stats
    buckets = [(b.label, b.sample_count) for b in s.rank_histogram.buckets] or \
              [(t.value, t.frequency) for t in s.top_values]
    total = (s.common_stats.num_non_missing * max(s.common_stats.avg_num_values, 1.0)) or sum(c for _, c in buckets) or 1
    items = buckets[:top] if top else buckets
    return {label: count / total for label, count in items}


def numeric_quantiles(feature) -> List[float]:
    """The quantile boundaries (low value of each equal-mass bucket, then the last high value)."""
    for h in feature.num_stats.histograms:
        if h.type == h.QUANTILES and h.buckets:
            return [b.low_value for b in h.buckets] + [h.buckets[-1].high_value]
    return []


def numeric_histogram(feature) -> List[Tuple[float, float, float]]:
    """(low, high, count) of the standard (equal-width) histogram."""
    for h in feature.num_stats.histograms:
        if h.type == h.STANDARD and h.buckets:
            return [(b.low_value, b.high_value, b.sample_count) for b in h.buckets]
    return []


def _cdf_at(quantiles: List[float], x: float) -> float:
    """The CDF at x of a distribution given by equally spaced quantiles (linear in between)."""
    k = len(quantiles) - 1
    if k < 1 or x < quantiles[0]:
        return 0.0
    if x >= quantiles[-1]:
        return 1.0
    for i in range(k):
        lo, hi = quantiles[i], quantiles[i + 1]
        if lo <= x < hi:
            return (i + (x - lo) / (hi - lo if hi > lo else 1.0)) / k
    return 1.0


def drift(a, b) -> Optional[Tuple[str, float]]:
    """(measure, distance) between one feature's statistics in two splits: the L-infinity distance of
    the value shares (categorical, as TFDV's drift comparator) or the Kolmogorov-Smirnov distance of
    the quantile functions (numeric, approximated at the quantiles of both)."""
    kind = a.WhichOneof("stats")
    if kind != b.WhichOneof("stats"):
        return None
    if kind == "string_stats":
        pa, pb = categorical_distribution(a), categorical_distribution(b)
        if not pa and not pb:
            return None
        return "L-inf", max(abs(pa.get(v, 0.0) - pb.get(v, 0.0)) for v in set(pa) | set(pb))
    if kind == "num_stats":
        qa, qb = numeric_quantiles(a), numeric_quantiles(b)
        if len(qa) < 2 or len(qb) < 2:
            return None
        points = sorted(set(qa) | set(qb))
        return "KS", max(abs(_cdf_at(qa, x) - _cdf_at(qb, x)) for x in points)
    return None


# features left out of the drift ranking: the splits are cut by event time, so it always moves
NO_DRIFT = tuple(f.name for f in FEATURES if f.transform == Transform.TIME)


def drifts(stats: Dict[str, object], reference: str = "train", top: int = 10) -> List[Dict]:
    """The `top` features whose distribution moves most from `reference` to another split (the
    time feature, which the split is cut by, left out)."""
    if reference not in stats:
        return []
    ref = {_name(f): f for f in stats[reference].features if _name(f) not in NO_DRIFT}
    rows = []
    for name, f in ref.items():
        row = {"feature": name, "measure": None, "to": {}}
        for split, ds in stats.items():
            if split == reference:
                continue
            other = next((g for g in ds.features if _name(g) == name), None)
            d = drift(f, other) if other is not None else None
            if d:
                row["measure"], row["to"][split] = d
        if row["to"]:
            row["max"] = max(row["to"].values())
            rows.append(row)
    return sorted(rows, key=lambda r: -r["max"])[:top]
