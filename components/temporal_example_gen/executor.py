"""Reads day-partitioned Parquet logs and writes train / eval / test splits of tf.Examples by event time."""
from __future__ import annotations

import json
import os
from typing import Any, Dict

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

from components.temporal_example_gen.split import SPLITS, TemporalSplit, split_of
from datagen.logs import FILE_NAME, PARTITION_PREFIX, partition_days

TEMPORAL_SPLIT_KEY = "temporal_split"
TIME_FIELD = "event_time"


def _feature(value) -> tf.train.Feature:
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
    else:
        values = [value]
    values = [v for v in values if v is not None]
    if not values:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[]))
    first = values[0]
    if isinstance(first, (bool, np.bool_, int, np.integer)):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if isinstance(first, (float, np.floating)):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    if isinstance(first, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in values]))


def row_to_example(row: Dict[str, Any]) -> tf.train.Example:
    """One log row as a tf.Example; null scalars are left out (a missing feature), lists kept."""
    features = {}
    for key, value in row.items():
        if value is None:
            continue
        features[key] = _feature(value)
    return tf.train.Example(features=tf.train.Features(feature=features))


class _AssignSplit(beam.DoFn):
    def __init__(self, bounds):
        self._bounds = bounds

    def process(self, row):
        t = row.get(TIME_FIELD)
        if t is None:
            raise ValueError(f"impression {row.get('impression_id')!r}: field {TIME_FIELD!r} is missing")
        i = split_of(int(t), self._bounds)
        if i >= 0:
            yield beam.pvalue.TaggedOutput(SPLITS[i], row_to_example(row))


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor that splits by `event_time` instead of hashing."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # pragma: no cover - not used
        raise NotImplementedError("TemporalExampleGen builds its splits in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: Dict[str, Any]):
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        split = TemporalSplit.from_json(exec_properties[TEMPORAL_SPLIT_KEY])
        days, bounds = split.resolve(partition_days(input_base))
        files = []
        for day in days:
            pattern = os.path.join(input_base, PARTITION_PREFIX + day, "*.parquet")
            matched = tf.io.gfile.glob(pattern)
            if not matched:
                raise ValueError(f"{os.path.join(input_base, PARTITION_PREFIX + day)}: no {FILE_NAME}")
            files.extend(sorted(matched))
        logging.info("TemporalExampleGen: %d day partitions %s..%s, split bounds %s",
                     len(days), days[0], days[-1], json.dumps(bounds))
        rows = (pipeline
                | "Files" >> beam.Create(files)
                | "ReadParquet" >> beam.io.ReadAllFromParquet()
                | "AssignSplit" >> beam.ParDo(_AssignSplit(bounds)).with_outputs(*SPLITS))
        return {name: rows[name] for name in SPLITS}
