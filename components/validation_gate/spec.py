"""ValidationGate's keys and spec: the examples and their anomalies in, the schema out only when
the logs passed."""
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

EXAMPLES_KEY = "examples"  # TemporalExampleGen's (or TemporalWindow's) Examples, with the row report
ANOMALIES_KEY = "anomalies"  # ExampleValidator's ExampleAnomalies
SCHEMA_KEY = "schema"  # the curated schema (ImportSchemaGen)
VALIDATED_SCHEMA_KEY = "validated_schema"  # the same schema, written only when the gate passes
EVALUATION_SCHEMA_KEY = "evaluation_schema"  # the validated schema of only `evaluation_features`
MAX_REJECTED_ROWS_KEY = "max_rejected_rows"  # rows ExampleGen may reject before the gate stops the run
# the features the Evaluator decodes (JSON list; empty: all): a model whose signature parses the
# serialized example itself needs only the slicing features and labels decoded for TFMA
EVALUATION_FEATURES_KEY = "evaluation_features"


class ValidationGateSpec(ComponentSpec):
    PARAMETERS = {MAX_REJECTED_ROWS_KEY: ExecutionParameter(type=int),
                  EVALUATION_FEATURES_KEY: ExecutionParameter(type=str, optional=True)}
    INPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
              ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
              SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}
    OUTPUTS = {VALIDATED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
               EVALUATION_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}
