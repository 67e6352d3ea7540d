"""Joins day spans into one Examples artifact split by day, copying the day files byte for byte."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List

import tensorflow as tf
from absl import logging
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from core.days import DAY, day_name
from core.logs import DAY_SPLIT
from core.row_report import COUNTS, RowReport
from core.split import SPLITS, TemporalSplit

from components.temporal_window.spec import DAYS_KEY, EXAMPLES_KEY, TEMPORAL_SPLIT_KEY


def span_of(artifact) -> int:
    """The day index of a daily Examples artifact (its `span` property, else the driver's custom one)."""
    if "span" in artifact.mlmd_artifact.properties:
        return int(artifact.span)
    if artifact.has_custom_property("span"):
        return int(artifact.get_int_custom_property("span"))
    raise ValueError(f"{artifact.uri}: Examples without a span (not a daily TemporalExampleGen output)")


def merge_day_reports(day_reports: Dict[int, RowReport], split_of: Dict[int, str],
                      sources: Dict[int, Dict]) -> RowReport:
    """TemporalExampleGen's reports of single days as one report of the window: totals summed, each
    day's kept rows and positives counted in its split, per-file rejections and repeats kept, and
    `days`: {YYYY-MM-DD: split, span, rows kept, the Examples artifact it came from}."""
    days = [dataclasses.replace(day_reports[span].as_split(split_of[span]),
                                days={day_name(span): dict(sources[span], split=split_of[span], span=span,
                                                           rows_kept=day_reports[span].rows_kept)})
            for span in sorted(day_reports)]
    return RowReport.merge(days, splits=SPLITS)


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List], output_dict: Dict[str, List], exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        split = TemporalSplit.from_json(exec_properties[TEMPORAL_SPLIT_KEY])
        by_span = {}
        for a in input_dict[DAYS_KEY]:
            span = span_of(a)
            if span in by_span:  # the resolver gives the newest artifact of each span
                raise ValueError(f"TemporalWindow: two Examples for span {span} ({day_name(span)}): "
                                 f"{by_span[span].uri} and {a.uri}")
            by_span[span] = a
        if not by_span:
            raise ValueError("TemporalWindow: no day spans to read")
        days, bounds = split.resolve([day_name(s) for s in by_span])
        chosen = {s: a for s, a in by_span.items() if day_name(s) in days}
        split_of = {s: next(name for name, (lo, hi) in bounds.items() if lo <= s * DAY < hi) for s in chosen}

        out = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        out.split_names = artifact_utils.encode_split_names(list(SPLITS))
        reports, sources = {}, {}
        for span, a in sorted(chosen.items()):
            if DAY_SPLIT not in artifact_utils.decode_split_names(a.split_names):
                raise ValueError(f"TemporalWindow: {a.uri} has no split {DAY_SPLIT!r} (not a daily span)")
            target = os.path.join(out.uri, f"Split-{split_of[span]}")
            tf.io.gfile.makedirs(target)
            for path in sorted(tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([a], DAY_SPLIT), "*"))):
                name = os.path.basename(path)
                # day files are named by day already; a day's empty placeholder is not
                name = name if day_name(span) in name else f"data_tfrecord-{day_name(span)}-{name}"
                tf.io.gfile.copy(path, os.path.join(target, name), overwrite=True)
            reports[span] = RowReport.read(a.uri)
            if reports[span] is None:
                raise ValueError(f"TemporalWindow: {a.uri} holds no row report (not a TemporalExampleGen output)")
            sources[span] = {"artifact_id": a.id, "uri": a.uri,
                             "input_fingerprint": a.get_string_custom_property("input_fingerprint")
                             if a.has_custom_property("input_fingerprint") else None}
        for name in SPLITS:  # a split whose days hold no rows still gets an (empty) file
            d = os.path.join(out.uri, f"Split-{name}")
            tf.io.gfile.makedirs(d)
            if not tf.io.gfile.glob(os.path.join(d, "*.gz")):
                with tf.io.TFRecordWriter(os.path.join(d, "data_tfrecord-empty.gz"), options="GZIP"):
                    pass
        report = merge_day_reports(reports, split_of, sources)
        report.write(out.uri)

        first = chosen[min(chosen)]
        examples_utils.set_payload_format(out, examples_utils.get_payload_format(first))
        examples_utils.set_file_format(out, examples_utils.get_file_format(first))
        out.span = max(chosen)
        for key in COUNTS:
            out.set_int_custom_property(key, getattr(report, key))
        out.set_string_custom_property("window", f"{days[0]}..{days[-1]}")
        out.set_string_custom_property("day_artifacts", json.dumps({day_name(s): a.id for s, a in sorted(chosen.items())}))
        logging.info("TemporalWindow: %d days %s..%s (%s), %d rows kept, splits %s", len(days), days[0], days[-1],
                     json.dumps({day_name(s): split_of[s] for s in sorted(chosen)}), report.rows_kept,
                     json.dumps(report.splits))
