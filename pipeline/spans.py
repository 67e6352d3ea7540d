"""Daily spans in MLMD: which days have an up-to-date Examples artifact, ingesting the others, and
retiring a quarantined day's artifacts.

With `PipelineConfig.daily_spans` every TemporalExampleGen execution ingests one day partition as a
TFX span (span = days since 1970-01-01, the date spec's number), recording on its Examples artifact
the span and the FileBasedDriver's `input_fingerprint` of the day's files (count, bytes, mtimes).
A day is up to date when its newest LIVE artifact has the fingerprint its files have now; a new
or re-delivered day is not, and `ingest_window` runs TemporalExampleGen for it alone (a static span
range start = end), so the window's resolver, which takes the newest artifact of each span, never
sees a stale one. The DAG's own TemporalExampleGen ingests the newest day (latest span).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from core.days import day_index, day_name
from core.logs import DAY_PATTERN, DAY_SPLIT, partition_days
from pipeline.configs import PipelineConfig
from pipeline.run_root import Node

FINGERPRINT = "input_fingerprint"
LIVE = metadata_store_pb2.Artifact.LIVE


def _store(config: PipelineConfig, writable: bool = False):
    from pipeline.run_summary import _store as store

    return store(config.metadata, writable) if os.path.exists(config.metadata) else None


def _span(a: metadata_store_pb2.Artifact) -> Optional[int]:
    if "span" in a.properties:
        return a.properties["span"].int_value
    if "span" in a.custom_properties:
        return a.custom_properties["span"].int_value
    return None


def day_artifacts(config: PipelineConfig, live_only: bool = True) -> Dict[str, List[metadata_store_pb2.Artifact]]:
    """{YYYY-MM-DD: the day's Examples artifacts from TemporalExampleGen, oldest first} in this
    pipeline's MLMD (LIVE ones only unless `live_only` is False)."""
    store = _store(config)
    if store is None:
        return {}
    context = store.get_context_by_type_and_name("node", f"{config.name}.{Node.EXAMPLE_GEN}")
    if context is None:
        return {}
    out: Dict[str, List] = {}
    for a in sorted(store.get_artifacts_by_context(context.id), key=lambda a: (a.create_time_since_epoch, a.id)):
        span = _span(a)
        if span is None or span == 0 or (live_only and a.state != LIVE):  # span 0: a whole-folder read
            continue
        out.setdefault(day_name(span), []).append(a)
    return out


def fingerprint(data: str, day: str) -> str:
    """The FileBasedDriver's fingerprint of one day partition's files, as it records it."""
    from tfx.components.example_gen import utils
    from tfx.proto import example_gen_pb2, range_config_pb2

    span = day_index(day)
    fp, _, _ = utils.calculate_splits_fingerprint_span_and_version(
        data, [example_gen_pb2.Input.Split(name=DAY_SPLIT, pattern=DAY_PATTERN)],
        range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
            start_span_number=span, end_span_number=span)))
    return fp


def stale_days(config: PipelineConfig, days: List[str]) -> List[str]:
    """The days among `days` without a LIVE artifact of their current files (new or re-delivered)."""
    ingested = day_artifacts(config)
    out = []
    for day in days:
        newest = ingested.get(day, [])[-1:]
        if not newest or newest[0].custom_properties[FINGERPRINT].string_value != fingerprint(config.data, day):
            out.append(day)
    return out


def window_candidates(config: PipelineConfig) -> List[str]:
    """The day partitions of `config.data` the window can hold: the newest `window_days` (all if 0)."""
    days = sorted(partition_days(config.data))
    return days[-config.split.window_days:] if config.split.window_days else days


def ingest_dag(config: PipelineConfig, day: str) -> tfx.dsl.Pipeline:
    """TemporalExampleGen alone, for one day (a static span range), as the same pipeline node the
    DAG's own (same pipeline name and node id), so its artifact is one of that node's spans."""
    from components.temporal_example_gen import TemporalExampleGen
    from pipeline.local_runner import metadata_connection
    from pipeline.pipeline import _pipeline

    gen = TemporalExampleGen(input_base=config.data, daily=True, day=day).with_id(Node.EXAMPLE_GEN)
    return _pipeline(config, [gen], metadata_connection(config))


class IngestFailed(RuntimeError):
    """TemporalExampleGen failed on `day` (after ingesting `ingested`)."""

    def __init__(self, day: str, ingested: List[str], reason: str):
        super().__init__(f"stopped at TemporalExampleGen ingesting {day}: {reason}")
        self.day, self.ingested = day, ingested


def ingest_window(config: PipelineConfig, run_dag=None) -> List[str]:
    """Ingests every day of the coming window that is not up to date, but the newest (the DAG's own
    TemporalExampleGen reads the latest span); returns the days ingested. Raises IngestFailed
    naming the day when one fails."""
    from pipeline.local_runner import run_dag as default_run_dag

    run_dag = run_dag or default_run_dag
    days = window_candidates(config)[:-1]
    todo = stale_days(config, days)
    for i, day in enumerate(todo):
        summary = run_dag(config, ingest_dag(config, day), quiet=True, reports=False)
        if summary.failed:
            reason = summary.not_pushed_reason.replace(f"stopped at {Node.EXAMPLE_GEN}: ", "")
            raise IngestFailed(day, todo[:i], reason)
    return todo


def retire_days(config: PipelineConfig, days: List[str]) -> int:
    """Marks the LIVE Examples artifacts of `days` MARKED_FOR_DELETION in MLMD, so no span resolver
    picks them again (a quarantined day); returns how many. A day re-delivered later is ingested
    anew (its files' fingerprint has no LIVE artifact)."""
    marked = [a for day in days for a in day_artifacts(config).get(day, [])]
    if marked:
        for a in marked:
            a.state = metadata_store_pb2.Artifact.MARKED_FOR_DELETION
        _store(config, writable=True).put_artifacts(marked)
    return len(marked)
