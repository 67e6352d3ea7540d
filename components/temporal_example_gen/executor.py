"""Reads day-partitioned Parquet logs and writes train / eval / test splits of tf.Examples by event time.

Each file is read whole with pyarrow (through Beam's filesystems, so gs:// and the like work),
rows are assigned to a split by `event_time`, and each split's rows are encoded to serialized
tf.Examples in C++ (tfx_bsl's RecordBatchToExamplesEncoder). A null field becomes a feature
with no values (missing), as TFDV and tf.io.parse_example read it.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from absl import logging
from apache_beam.io.filesystems import FileSystems
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs
from tfx_bsl.coders import example_coder

from core.split import SPLITS, TemporalSplit
from core.logs import FILE_NAME, PARTITION_PREFIX, arrow_schema, partition_days

TEMPORAL_SPLIT_KEY = "temporal_split"
TIME_FIELD = "event_time"


def _as_list_array(arr: pa.Array) -> pa.Array:
    """The encoder takes list columns of binary / int64 / float32 values."""
    if pa.types.is_list(arr.type):
        value_type = arr.type.value_type
        if pa.types.is_string(value_type) or pa.types.is_large_string(value_type):
            return arr.cast(pa.list_(pa.binary()))
        if pa.types.is_floating(value_type):
            return arr.cast(pa.list_(pa.float32()))
        if pa.types.is_integer(value_type) or pa.types.is_boolean(value_type):
            return arr.cast(pa.list_(pa.int64()))
        return arr
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.binary())
    elif pa.types.is_floating(arr.type):
        arr = arr.cast(pa.float32())
    elif pa.types.is_integer(arr.type) or pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int64())
    offsets = pa.array(np.arange(len(arr) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, arr, mask=arr.is_null())


def check_types(table: pa.Table, path: str) -> pa.Table:
    """Columns of known fields must have the field table's type; a float column holding only
    whole numbers for an int field is cast (pandas writes nullable ints that way). Unknown
    columns pass through for the schema validation to report."""
    expected = arrow_schema(with_truth=True)
    for i, name in enumerate(table.column_names):
        if name not in expected.names:
            continue
        want, got = expected.field(name).type, table.schema.field(name).type
        if got == want or (pa.types.is_null(got)):
            continue
        col = table.column(i)
        if pa.types.is_integer(want) and pa.types.is_floating(got):
            values = col.combine_chunks().to_numpy(zero_copy_only=False)
            finite = values[~np.isnan(values)]
            if np.all(finite == np.round(finite)):
                table = table.set_column(i, name, pa.array(
                    [None if np.isnan(v) else int(v) for v in values], type=want))
                continue
            raise ValueError(f"{path}: field {name!r} must hold whole numbers ({want}), found fractional values")
        try:
            table = table.set_column(i, name, col.cast(want))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ValueError(f"{path}: field {name!r} has type {got}, expected {want}") from None
    return table


def table_to_examples(table: pa.Table):
    """Serialized tf.Examples, one per row of `table`."""
    if table.num_rows == 0:
        return []
    columns = [_as_list_array(col.combine_chunks()) for col in table.columns]
    batch = pa.RecordBatch.from_arrays(columns, names=table.column_names)
    return example_coder.RecordBatchToExamplesEncoder().encode(batch)


class _ReadAndSplit(beam.DoFn):
    def __init__(self, bounds):
        self._bounds = bounds

    def process(self, path):
        with FileSystems.open(path) as f:
            try:
                table = pq.read_table(f)
            except Exception as e:
                raise ValueError(f"{path}: not a readable Parquet file ({e})") from e
        table = check_types(table, path)
        if TIME_FIELD not in table.column_names:
            raise ValueError(f"{path}: required field {TIME_FIELD!r} is missing")
        times = table.column(TIME_FIELD)
        if times.null_count:
            raise ValueError(f"{path}: field {TIME_FIELD!r} is null on {times.null_count} rows")
        t = times.to_numpy().astype(np.int64)
        for name in SPLITS:
            lo, hi = self._bounds[name]
            rows = np.flatnonzero((t >= lo) & (t < hi))
            if rows.size:
                for record in table_to_examples(table.take(pa.array(rows))):
                    yield beam.pvalue.TaggedOutput(name, record)


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
            matched = tf.io.gfile.glob(os.path.join(input_base, PARTITION_PREFIX + day, "*.parquet"))
            if not matched:
                raise ValueError(f"{os.path.join(input_base, PARTITION_PREFIX + day)}: no {FILE_NAME}")
            files.extend(sorted(matched))
        logging.info("TemporalExampleGen: %d day partitions %s..%s, split bounds %s",
                     len(days), days[0], days[-1], json.dumps(bounds))
        records = (pipeline
                   | "Files" >> beam.Create(files)
                   | "ReadAndSplit" >> beam.ParDo(_ReadAndSplit(bounds)).with_outputs(*SPLITS))
        return {name: records[name] for name in SPLITS}
