"""Model selection without trading one source for the other (pure functions, no TensorFlow).

- `choose_checkpoint`: which evaluation of one training to restore. Among the evaluations where
  every source's eval stream AP is within `tolerance` (relative) of that source's best AP in the
  training, the one with the best mean relative AP; when none is, the one whose worst source is
  closest to its best.
- `should_stop`: early stopping that waits while any source is still improving (by more than
  `min_delta`, relative, over its best before the last `patience` evaluations).
- `tuning_score`: the tuner's objective. Relative AP per source against a reference model (the
  promotions baseline trained with the same budget); a candidate within `tolerance` of the
  reference on every source scores its mean relative AP (>= 1 - tolerance), any other scores its
  worst relative AP minus 1 (< 0), so a model that loses a source beyond the tolerance is never
  preferred to one that does not.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Sequence


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def choose_checkpoint(history: Sequence[Mapping[str, float]], tolerance: float) -> int:
    """Index into `history` (one {source: eval AP} per evaluation) of the evaluation to restore."""
    if not history:
        raise ValueError("no evaluation to choose from")
    sources = [s for s in history[0] if any(_finite(h.get(s)) for h in history)]
    if not sources:
        return len(history) - 1
    best = {s: max(h[s] for h in history if _finite(h.get(s))) for s in sources}

    def ratios(h):
        return [h[s] / best[s] if _finite(h.get(s)) and best[s] > 0 else 0.0 for s in sources]

    qualified = [i for i, h in enumerate(history) if min(ratios(h)) >= 1.0 - tolerance]
    if qualified:
        return max(qualified, key=lambda i: (sum(ratios(history[i])) / len(sources), -i))
    return max(range(len(history)), key=lambda i: (min(ratios(history[i])), -i))


def should_stop(history: Sequence[Mapping[str, float]], patience: int, min_delta: float = 0.0) -> bool:
    """True when no source has reached a new best AP in the last `patience` evaluations, a new best
    being more than `min_delta` (relative) above that source's best before them. Every evaluation
    a stop leaves out has each source below (1 + min_delta) x its best so far, so the checkpoint
    restored loses at most about `min_delta` of eval AP per source to a longer training."""
    if patience <= 0 or len(history) <= patience:
        return False
    earlier, recent = history[:-patience], history[-patience:]
    for s in history[0]:
        before = [h[s] for h in earlier if _finite(h.get(s))]
        after = [h[s] for h in recent if _finite(h.get(s))]
        if after and (not before or max(after) > max(before) * (1.0 + min_delta)):
            return False
    return True


def tuning_score(ap: Mapping[str, float], reference: Mapping[str, float], tolerance: float) -> float:
    """The tuner's objective (higher is better); see the module doc."""
    rel = relative_ap(ap, reference)
    worst = min(rel.values())
    return sum(rel.values()) / len(rel) if worst >= 1.0 - tolerance else worst - 1.0


def relative_ap(ap: Mapping[str, float], reference: Mapping[str, float]) -> Dict[str, float]:
    """{source: AP / reference AP}; a missing or NaN AP counts as 0, a reference of 0 as no limit."""
    out = {}
    for s, ref in reference.items():
        value = ap.get(s)
        value = value if _finite(value) else 0.0
        out[s] = value / ref if _finite(ref) and ref > 0 else 1.0
    return out
