"""Calibration of the served probabilities, per head and source.

Source-balanced batches (`models/sampling.py`: each source drawn with its share, from 50/50 to the
natural mix by `source_alpha`) and the directional loss mask change the base rate each head sees
in training, so a head can rank well on a source and still predict a stream rate off by a factor
there. Podcast ads are bought per stream and budgets are paced on predicted streams: a factor
moves money even when the ranking is right.

The correction is an intercept per (head, source) in logit space, fitted on the eval split after
training so that the mean served probability equals the observed rate on that source (the prior
correction a sampling share calls for, measured instead of derived, so it also covers what the
mask and early stopping did). It is monotone within a source, so no per-source AP (the gate's
metric) changes. `models/export.py` applies it inside the SavedModel, in both signatures.

`calibration_report` gives what the Evaluator's TFMA metrics give (mean prediction / mean label,
and an expected calibration error over equal-width prediction buckets) for the training logs.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from core.fields import SOURCES
from core.tasks import Task

MIN_POSITIVES = 5  # fewer positives on a source: no correction for that head there
ECE_BUCKETS = 10


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def fit_offset(predictions: np.ndarray, labels: np.ndarray, iterations: int = 50) -> float:
    """b with mean(sigmoid(logit(p) + b)) == mean(labels) (Newton's method; monotone in b)."""
    z, target, b = _logit(np.asarray(predictions).reshape(-1)), float(np.mean(labels)), 0.0
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-(z + b)))
        gap, slope = q.mean() - target, (q * (1 - q)).mean()
        if abs(gap) < 1e-9 or slope <= 0:
            break
        b -= gap / slope
    return float(b)


def apply_offset(predictions: np.ndarray, offset: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(_logit(np.asarray(predictions)) + offset)))


def expected_calibration_error(labels: np.ndarray, predictions: np.ndarray, buckets: int = ECE_BUCKETS) -> float:
    """sum over equal-width prediction buckets of (examples in bucket / all) * |mean pred - mean label|."""
    p, y = np.asarray(predictions, np.float64).reshape(-1), np.asarray(labels, np.float64).reshape(-1)
    if not len(p):
        return float("nan")
    index = np.minimum((p * buckets).astype(int), buckets - 1)
    total = 0.0
    for b in range(buckets):
        rows = index == b
        if rows.any():
            total += abs(p[rows].sum() - y[rows].sum())
    return float(total / len(p))


def fit_offsets(scored, tasks: Sequence[Task], sources: Sequence[str] = SOURCES) -> Dict[str, Dict[str, float]]:
    """{head: {source: logit offset}} for every head on every source it has enough positives on,
    from a `models.evaluate.Scored` of the eval split."""
    out: Dict[str, Dict[str, float]] = {}
    for t in tasks:
        if t.name not in scored.predictions or t.label not in scored.labels:
            continue
        for source in sources:
            rows = scored.rows_of(source)
            y = scored.labels[t.label][rows].reshape(-1)
            if y.sum() >= MIN_POSITIVES and y.sum() < len(y):
                out.setdefault(t.name, {})[source] = fit_offset(scored.predictions[t.name][rows], y)
    return out


def calibration_report(scored, tasks: Sequence[Task], offsets: Dict[str, Dict[str, float]],
                       sources: Sequence[str] = SOURCES) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{source: {stream head: {calibration, ece, calibration_corrected, ece_corrected}}} on `scored`."""
    from core.tasks import stream_head

    out = {}
    for source in sources:
        head = stream_head(tasks, source)
        if head not in scored.predictions:
            continue
        rows = scored.rows_of(source)
        y = scored.labels["stream"][rows].reshape(-1)
        p = scored.predictions[head][rows].reshape(-1)
        q = apply_offset(p, offsets.get(head, {}).get(source, 0.0))
        out[source] = {"head": head, "mean_label": float(y.mean()) if len(y) else float("nan"),
                       "calibration": float(p.mean() / y.mean()) if y.sum() else float("nan"),
                       "ece": expected_calibration_error(y, p),
                       "calibration_corrected": float(q.mean() / y.mean()) if y.sum() else float("nan"),
                       "ece_corrected": expected_calibration_error(y, q)}
    return out
