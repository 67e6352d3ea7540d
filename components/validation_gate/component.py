"""ValidationGate: stops the run before Transform unless the read was clean and no split has anomalies."""
import json
from typing import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.validation_gate import executor, spec


class ValidationGate(base_component.BaseComponent):
    """Transform reads the schema from this gate's `validated_schema`, so nothing downstream runs on
    logs that failed validation (`executor.py` says what is checked). `evaluation_schema`: the same
    schema with only `evaluation_features` (all when empty), for an Evaluator that decodes no more."""

    SPEC_CLASS = spec.ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, anomalies: types.BaseChannel, schema: types.BaseChannel,
                 max_rejected_rows: int = 0, evaluation_features: Sequence[str] = ()):
        super().__init__(spec=spec.ValidationGateSpec(
            examples=examples, anomalies=anomalies, schema=schema, max_rejected_rows=max_rejected_rows,
            evaluation_features=json.dumps(sorted(evaluation_features)),
            validated_schema=types.Channel(type=standard_artifacts.Schema),
            evaluation_schema=types.Channel(type=standard_artifacts.Schema)))
