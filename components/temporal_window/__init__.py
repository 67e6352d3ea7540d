"""The latest N day spans (Examples of TemporalExampleGen, one day each) as one train / eval / test Examples."""
from components.temporal_window.component import TemporalWindow  # noqa: F401
