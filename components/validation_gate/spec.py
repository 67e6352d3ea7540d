"""ValidationGate's keys and spec: the examples and their anomalies in, the schema out only when
the logs passed."""
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

EXAMPLES_KEY = "examples"  # TemporalExampleGen's (or TemporalWindow's) Examples, with the row report
ANOMALIES_KEY = "anomalies"  # ExampleValidator's ExampleAnomalies
SCHEMA_KEY = "schema"  # the curated schema (ImportSchemaGen)
VALIDATED_SCHEMA_KEY = "validated_schema"  # the same schema, written only when the gate passes
MAX_REJECTED_ROWS_KEY = "max_rejected_rows"  # rows ExampleGen may reject before the gate stops the run


class ValidationGateSpec(ComponentSpec):
    PARAMETERS = {MAX_REJECTED_ROWS_KEY: ExecutionParameter(type=int)}
    INPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
              ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
              SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}
    OUTPUTS = {VALIDATED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}
