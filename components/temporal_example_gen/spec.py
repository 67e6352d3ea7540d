"""TemporalExampleGen's component spec: FileBasedExampleGen's channels and parameters, plus the
temporal split. The keys every module of the component uses are named here once."""
from __future__ import annotations

from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter

# FileBasedExampleGen's keys, as TFX names them
INPUT_BASE_KEY = standard_component_specs.INPUT_BASE_KEY
INPUT_CONFIG_KEY = standard_component_specs.INPUT_CONFIG_KEY
OUTPUT_CONFIG_KEY = standard_component_specs.OUTPUT_CONFIG_KEY
RANGE_CONFIG_KEY = standard_component_specs.RANGE_CONFIG_KEY
OUTPUT_DATA_FORMAT_KEY = standard_component_specs.OUTPUT_DATA_FORMAT_KEY
OUTPUT_FILE_FORMAT_KEY = standard_component_specs.OUTPUT_FILE_FORMAT_KEY
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
# set by TFX's FileBasedDriver for a daily span
SPAN_KEY = "span"
VERSION_KEY = "version"
FINGERPRINT_KEY = "input_fingerprint"
# ours: the temporal split (`core.split.TemporalSplit.to_json`)
TEMPORAL_SPLIT_KEY = "temporal_split"


class TemporalExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS = dict(standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
                      **{TEMPORAL_SPLIT_KEY: ExecutionParameter(type=str)})
