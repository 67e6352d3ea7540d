"""One config object for the pipeline: where data and outputs live, the split, the model, the gate."""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Tuple

from components.temporal_example_gen import TemporalSplit
from models.config import ModelConfig, preset

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas")
DEFAULT_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    data: str  # day-partitioned logs: local folder or Beam filesystem path
    root: str = "runs/default"  # pipeline outputs, MLMD database, serving folder
    name: str = "podcast-mtl"
    split: TemporalSplit = TemporalSplit(test_days=5, eval_days=3)
    preset_name: str = "unified"
    model: ModelConfig = dataclasses.field(default_factory=lambda: preset("unified"))
    schema_dir: str = SCHEMA_DIR
    # blessing: exact stream AP per source on the test split
    ap_floor: Tuple[Tuple[str, float], ...] = (("promotions", 0.08), ("ads", 0.04))
    ap_tolerance: float = 0.01  # how far below the latest blessed model's AP a candidate may be
    beam_args: Tuple[str, ...] = DEFAULT_BEAM_ARGS
    serving_dir: Optional[str] = None  # default <root>/serving
    metadata_path: Optional[str] = None  # default <root>/metadata.sqlite (MLMD)

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.root, "pipeline")

    @property
    def serving(self) -> str:
        return self.serving_dir or os.path.join(self.root, "serving")

    @property
    def metadata(self) -> str:
        return self.metadata_path or os.path.join(self.root, "metadata.sqlite")

    @property
    def floors(self) -> Dict[str, float]:
        return dict(self.ap_floor)

    def replace(self, **changes) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)

    def with_preset(self, name: str, **model_overrides) -> "PipelineConfig":
        return self.replace(preset_name=name, model=preset(name, **model_overrides))
