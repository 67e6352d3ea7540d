"""TemporalWindow: day spans in (one Examples artifact per day, picked by a span resolver), one
Examples artifact with `train` / `eval` / `test` splits by day out."""
from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.temporal_window import executor, spec
from core.split import TemporalSplit


class TemporalWindow(base_component.BaseComponent):
    """`days`: a channel of day spans (e.g. `rolling_range(...)` over TemporalExampleGen's daily
    Examples, one artifact per span, the newest version of each); out: `examples` with the days
    split by `split` (oldest train, then eval, newest test), the day files copied as they are (no
    parse), and TemporalExampleGen's row report merged over the days, so the ValidationGate sees
    every rejection, repeated id and empty split of the window. Cached by its input artifacts:
    a re-ingested day is a new artifact, hence a new window."""

    SPEC_CLASS = spec.TemporalWindowSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, days: types.BaseChannel, split: TemporalSplit):
        super().__init__(spec=spec.TemporalWindowSpec(
            days=days, examples=types.Channel(type=standard_artifacts.Examples),
            **{spec.TEMPORAL_SPLIT_KEY: split.to_json()}))
