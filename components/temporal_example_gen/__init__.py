"""ExampleGen over day-partitioned impression logs with a temporal train / eval / test split."""
from components.temporal_example_gen.component import TemporalExampleGen  # noqa: F401
