"""TemporalExampleGen: the FileBased ExampleGen driver and outputs, with a temporal split executor."""
from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.components.example_gen import driver
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts

from components.temporal_example_gen import executor
from components.temporal_example_gen.spec import (FINGERPRINT_KEY, INPUT_CONFIG_KEY, RANGE_CONFIG_KEY, SPAN_KEY,
                                                  TEMPORAL_SPLIT_KEY, VERSION_KEY, TemporalExampleGenSpec)
from core.days import day_index
from core.split import SPLITS, TemporalSplit
from core.logs import DAY_PATTERN, DAY_SPLIT, FILE_PATTERN


def parameters(input_base: str, split: TemporalSplit, daily: bool = False, day: Optional[str] = None) -> dict:
    """The component's execution parameters (protos); `executor_properties` gives them as the
    executor receives them, for running the executor on its own (tests, benches).

    `daily`: one day partition per execution, as a TFX span (date spec `DAY_PATTERN`): the newest
    day, or `day` (YYYY-MM-DD, a static span range) to backfill or re-ingest that day; every row of
    the day goes to the one split `DAY_SPLIT` (the TemporalWindow component splits the days)."""
    if daily:
        span = day_index(day) if day else None
        return dict(
            input_base=input_base,
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=DAY_SPLIT,
                                                                                   pattern=DAY_PATTERN)]),
            output_config=example_gen_pb2.Output(),
            range_config=range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
                start_span_number=span, end_span_number=span)) if span is not None else None,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            # a day's rows do not depend on the window's split: the same value for every day, so
            # changing the split never re-ingests a day
            **{TEMPORAL_SPLIT_KEY: TemporalSplit().to_json()})
    return dict(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="logs", pattern=FILE_PATTERN)]),
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=1) for name in SPLITS])),
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        **{TEMPORAL_SPLIT_KEY: split.to_json()})


def executor_properties(input_base: str, split: TemporalSplit, daily: bool = False, day: Optional[str] = None) -> dict:
    """As the executor receives them; a daily span's pattern and span resolved as TFX's driver would."""
    from tfx.utils import proto_utils

    params = parameters(input_base, split, daily, day)
    props = {k: proto_utils.proto_to_json(v) if hasattr(v, "DESCRIPTOR") else v
             for k, v in params.items() if v is not None}
    if daily:
        from tfx.components.example_gen import utils

        input_config = params[INPUT_CONFIG_KEY]  # the pattern is resolved in place, as the driver does
        fingerprint, span, version = utils.calculate_splits_fingerprint_span_and_version(
            input_base, input_config.splits, params[RANGE_CONFIG_KEY])
        props.update({INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config), SPAN_KEY: span,
                      VERSION_KEY: version, FINGERPRINT_KEY: fingerprint})
    return props


class TemporalExampleGen(FileBasedExampleGen):
    """Day-partitioned Parquet logs in; `train` / `eval` / `test` Examples out, split by event time.

    `input_base` may be a local folder or any Beam filesystem path (gs://, s3://, hdfs://).
    The driver fingerprints the matched files, so unchanged logs reuse the cached result.
    With `daily`, each execution reads one day partition as a TFX span (see `parameters`).
    A FileBasedExampleGen to the orchestrators: the Kubeflow v2 / Vertex compiler then runs TFX's
    file-based driver before its cache check, so new or changed log files are never served from
    the cache there either. Only the spec and executor differ from FileBasedExampleGen.
    """

    SPEC_CLASS = TemporalExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(self, input_base: str, split: Optional[TemporalSplit] = None, daily: bool = False,
                 day: Optional[str] = None):
        params = {k: v for k, v in parameters(input_base, split or TemporalSplit(), daily, day).items()
                  if v is not None}
        spec = TemporalExampleGenSpec(examples=types.Channel(type=standard_artifacts.Examples), **params)
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)  # not FileBasedExampleGen's arguments
