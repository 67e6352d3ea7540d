"""TemporalWindow's keys and spec: day spans in, one Examples artifact split by day out."""
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

DAYS_KEY = "days"  # daily Examples of TemporalExampleGen (one artifact per span), from a span resolver
EXAMPLES_KEY = "examples"  # the window: train / eval / test by day
TEMPORAL_SPLIT_KEY = "temporal_split"  # core.split.TemporalSplit as JSON


class TemporalWindowSpec(ComponentSpec):
    PARAMETERS = {TEMPORAL_SPLIT_KEY: ExecutionParameter(type=str)}
    INPUTS = {DAYS_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
