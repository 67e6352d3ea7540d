"""The task table: one row per prediction head, with its label and the sources that train it.

This table is the directional loss mask of the method: promotion impressions train promotion
and ad tasks, ad impressions train only ad tasks. Heads, losses, metrics, serving outputs and
the evaluation config are all derived from it; adding an objective is adding a row.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

from core.fields import LABELS, SOURCES


@dataclasses.dataclass(frozen=True)
class Task:
    name: str  # head / serving output name
    label: str  # label field in the logs
    trained_by: Tuple[str, ...]  # sources whose impressions contribute to this head's loss
    weight: float = 1.0  # loss weight
    stream_head_for: Tuple[str, ...] = ()  # sources whose stream AP this head is judged on

    def __post_init__(self):
        if self.label not in LABELS:
            raise ValueError(f"task {self.name!r}: unknown label {self.label!r}; labels are {LABELS}")
        unknown = set(self.trained_by) - set(SOURCES)
        if unknown:
            raise ValueError(f"task {self.name!r}: unknown sources {sorted(unknown)}")


TASKS: Tuple[Task, ...] = (
    Task("promo_stream", "stream", ("promotions",), stream_head_for=("promotions",)),
    Task("ad_stream", "stream", ("promotions", "ads"), stream_head_for=("ads",)),
    Task("click", "click", ("promotions", "ads")),
    Task("like", "like", ("promotions", "ads")),
    Task("follow", "follow", ("promotions", "ads")),
)


def stream_head(tasks: Sequence[Task], source: str) -> str:
    """The head whose stream AP is reported for `source` impressions.

    The head declared for that source if present; otherwise the only stream head
    (single-stream presets such as `ads_only` or `pooled_stream_only`).
    """
    for t in tasks:
        if source in t.stream_head_for:
            return t.name
    stream_heads = [t.name for t in tasks if t.label == "stream"]
    if len(stream_heads) != 1:
        raise ValueError(f"no stream head for {source!r} among {[t.name for t in tasks]}")
    return stream_heads[0]
