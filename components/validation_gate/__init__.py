"""ValidationGate: stops the run before Transform when the read was not clean or a split has anomalies."""
from components.validation_gate.component import ValidationGate  # noqa: F401
from components.validation_gate.executor import DataValidationError, describe_anomalies, describe_report  # noqa: F401
