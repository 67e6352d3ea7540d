"""Scores a dataset with a trained model and computes exact stream AP per source."""
from __future__ import annotations

import dataclasses
from typing import Dict, Sequence

import numpy as np

from core.ap import average_precision
from core.fields import LABELS, SOURCES
from core.tasks import Task, stream_head
from models.preprocessing import PRIOR_IMPRESSIONS_RAW, RECENT_STREAMS_RAW


@dataclasses.dataclass
class Scored:
    """One pass of a dataset through a model. Heads and labels are kept apart: the heads `click`,
    `like` and `follow` have their labels' names."""
    predictions: Dict[str, np.ndarray]  # head -> probability
    labels: Dict[str, np.ndarray]  # label -> 0/1
    source: np.ndarray  # index in SOURCES
    prior_impressions: np.ndarray  # the podcast's earlier impressions (cold-start buckets)
    recent_streams: np.ndarray = None  # the podcast's 7-day streams before the impression (listening buckets)

    def rows_of(self, source: str) -> np.ndarray:
        return self.source == SOURCES.index(source)


def score_dataset(model, dataset) -> Scored:
    import tensorflow as tf

    heads, labels, source, prior, recent = {}, {}, [], [], []
    for batch in dataset:
        for name, value in model(batch, training=False).items():
            heads.setdefault(name, []).append(tf.sigmoid(value).numpy())
        for key in LABELS:
            if key in batch:
                labels.setdefault(key, []).append(batch[key].numpy())
        source.append(batch["source"].numpy())
        if PRIOR_IMPRESSIONS_RAW in batch:
            prior.append(batch[PRIOR_IMPRESSIONS_RAW].numpy())
        if RECENT_STREAMS_RAW in batch:
            recent.append(batch[RECENT_STREAMS_RAW].numpy())

    def cat(chunks):
        return np.concatenate(chunks) if chunks else np.zeros(0)

    return Scored(predictions={k: cat(v) for k, v in heads.items()}, labels={k: cat(v) for k, v in labels.items()},
                  source=cat(source), prior_impressions=cat(prior), recent_streams=cat(recent))


def stream_ap_by_source(tasks: Sequence[Task], scored: Scored, sources: Sequence[str] = SOURCES) -> Dict[str, float]:
    """Exact AP of each source's stream head on that source's impressions."""
    out = {}
    for source in sources:
        rows = scored.rows_of(source)
        out[source] = average_precision(scored.labels["stream"][rows],
                                        scored.predictions[stream_head(tasks, source)][rows])
    return out
