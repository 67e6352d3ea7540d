"""Scores a dataset with a trained model and computes exact stream AP per source."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from evaluation.ap import average_precision
from models.features import LABELS, SOURCES
from models.preprocessing import PRIOR_IMPRESSIONS_RAW
from models.tasks import Task, stream_head


def score_dataset(model, dataset) -> Dict[str, np.ndarray]:
    """{head: probabilities, label: values, "source": source ids} over one pass of `dataset`."""
    import tensorflow as tf

    chunks = {}
    for batch in dataset:
        logits = model(batch, training=False)
        for name, value in logits.items():
            chunks.setdefault(name, []).append(tf.sigmoid(value).numpy())
        for key in LABELS + ("source", PRIOR_IMPRESSIONS_RAW):
            if key in batch:
                chunks.setdefault(key, []).append(batch[key].numpy())
    return {k: np.concatenate(v) for k, v in chunks.items()}


def stream_ap_by_source(tasks: Sequence[Task], scored: Dict[str, np.ndarray],
                        sources: Sequence[str] = SOURCES) -> Dict[str, float]:
    """Exact AP of each source's stream head on that source's impressions."""
    out = {}
    for source in sources:
        rows = scored["source"] == SOURCES.index(source)
        head = stream_head(tasks, source)
        out[source] = average_precision(scored["stream"][rows], scored[head][rows])
    return out
