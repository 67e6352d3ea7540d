"""Exact (step-wise, non-interpolated) Average Precision, equal to sklearn's average_precision_score."""
from __future__ import annotations

import numpy as np


def average_precision(labels, scores, weights=None) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over distinct score thresholds, highest first.

    Tied scores form one threshold, as in sklearn. Returns NaN when there is no positive.
    """
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (y.shape == s.shape == w.shape):
        raise ValueError(f"labels, scores and weights differ in length: {y.shape}, {s.shape}, {w.shape}")
    if y.size and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    order = np.argsort(-s, kind="mergesort")
    y, s, w = y[order], s[order], w[order]
    tp = np.cumsum(y * w)
    fp = np.cumsum((1 - y) * w)
    total_pos = tp[-1] if tp.size else 0.0
    if total_pos <= 0:
        return float("nan")
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # end index of each distinct score
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    precision = tp / np.maximum(tp + fp, 1e-300)
    recall = tp / total_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
