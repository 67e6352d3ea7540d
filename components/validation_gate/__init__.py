"""ValidationGate: stops the run before Transform when ExampleValidator found anomalies."""
from components.validation_gate.component import ValidationGate, describe_anomalies, describe_report  # noqa: F401
