"""One config object for the pipeline: where data and outputs live, the split, the model, the gate.

Every default lives here (or in the dataclass it refers to: `TemporalSplit`, `ModelConfig`,
`GeneratorConfig`); the CLI reads its defaults from these classes and builds a config with their
plain constructors (`cli/common.py`).
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Dict, Optional, Tuple

from core.fields import ADS, PROMOTIONS
from core.split import SPLITS, TemporalSplit
from models.config import ModelConfig, TuningConfig, preset
from pipeline.run_root import RunRoot
from schemas import SCHEMA_FILE

DEFAULT_ROOT = "runs/default"
DEFAULT_PRESET = "unified"
BASELINE_PRESET = "promotions_baseline"  # trained in the same run when there is no incumbent
# Beam's DirectRunner on one machine, used only when the user names no runner of their own.
# `--extra_packages=` (none): without a dependency flag, every TFX Beam executor first copies the
# installed tfx package and builds an sdist of it for remote workers (`make_beam_dependency_flags`),
# 5-10 s per component that the DirectRunner, running in this process, never reads.
LOCAL_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1", "--extra_packages=")
# The DirectRunner's `multi_processing` mode, one worker process a core (at most 4), on local logs of
# MULTI_PROCESSING_MIN_ROWS rows or more, unless the user names a mode or a worker count;
# PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS=N sets the threshold (0: always, "off": never). Its worker
# processes cost a fixed start-up per Beam step, so small logs (the tests') stay in memory. It writes
# each split as one file per worker, in another order: the training reads a split into memory in a
# canonical row order (models/sampling.py: canonical_order), so the model does not depend on the mode
# (measured on the default logs: docs/results/performance.md).
MULTI_PROCESSING_MIN_ROWS = 200_000
MULTI_PROCESSING_MIN_ROWS_ENV = "PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS"
MULTI_PROCESSING_MAX_WORKERS = 4
# blessing floors of each source's test stream AP, set for the synthetic logs' base rates
DEFAULT_AP_FLOORS = ((PROMOTIONS, 0.08), (ADS, 0.04))


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    data: str  # day-partitioned logs: local folder or Beam filesystem path
    root: str = DEFAULT_ROOT  # pipeline outputs, MLMD database, serving folder
    name: str = "podcast-mtl"
    split: TemporalSplit = TemporalSplit()
    preset_name: str = DEFAULT_PRESET
    model: ModelConfig = dataclasses.field(default_factory=lambda: preset(DEFAULT_PRESET))
    schema_file: str = SCHEMA_FILE
    # blessing: exact stream AP per source on the test split
    ap_floor: Tuple[Tuple[str, float], ...] = DEFAULT_AP_FLOORS
    ap_tolerance: float = 0.01  # relative AP a candidate may lose against the baseline, per source
    # blessing: mean prediction / mean label of each source's stream head on that source's test
    # impressions must lie in this band (TFMA Calibration; evaluation/eval_config.py); None: not gated
    calibration_band: Optional[Tuple[float, float]] = (0.8, 1.25)
    tuning: TuningConfig = TuningConfig()  # trials=0: no Tuner, the model config's own values
    reuse_hyperparameters: bool = False  # without a Tuner: the latest earlier Tuner's best values
    # the incumbent model the candidate is compared with (a Model artifact folder holding
    # Format-Serving/); None: a promotions baseline trained in the same run
    baseline_model: Optional[str] = None
    # rows ExampleGen may reject (outside their day, wrong-source fields, NaN) before the gate stops the run
    max_rejected_rows: int = 0
    beam_args: Tuple[str, ...] = ()  # the user's own; LOCAL_BEAM_ARGS apply when they name no runner
    serving_dir: Optional[str] = None  # default <root>/serving
    metadata_path: Optional[str] = None  # default <root>/metadata.sqlite (MLMD)
    # ingest each day partition as a TFX span and train on a window of the latest spans (scheduled
    # runs; `pipeline/pipeline.py`); False: one ExampleGen over the whole folder (`podcast-mtl run`)
    daily_spans: bool = False
    bulk_inference: bool = False  # TFX BulkInferrer on the test split with the blessed model (`--bulk-inference`)

    @property
    def run_root(self) -> RunRoot:
        return RunRoot(self.root, serving_dir=self.serving_dir, metadata_path=self.metadata_path)

    @property
    def pipeline_root(self) -> str:
        return self.run_root.pipeline

    @property
    def serving(self) -> str:
        return self.run_root.serving

    @property
    def metadata(self) -> str:
        return self.run_root.metadata

    @property
    def floors(self) -> Dict[str, float]:
        return dict(self.ap_floor)

    @property
    def splits(self) -> Tuple[str, ...]:
        return SPLITS

    def beam_pipeline_args(self) -> Tuple[str, ...]:
        """The user's Beam args; the local DirectRunner defaults only when they name no runner (its
        mode by the logs' size, `direct_mode_args`; the user's own arguments come last and win)."""
        if any(a.startswith("--runner") for a in self.beam_args):
            return tuple(self.beam_args)
        return LOCAL_BEAM_ARGS + direct_mode_args(self.data, self.beam_args) + tuple(self.beam_args)

    def replace(self, **changes) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)

    def with_preset(self, name: str, **model_overrides) -> "PipelineConfig":
        return self.replace(preset_name=name, model=preset(name, **model_overrides))


def parse_calibration_band(text: str) -> Optional[Tuple[float, float]]:
    """`PipelineConfig.calibration_band` from "LO,HI" (0 < LO <= 1 <= HI) or "none" (measured, not
    gated), as the CLI's --calibration-band and Airflow's PODCAST_MTL_CALIBRATION_BAND give it."""
    if text.strip().lower() == "none":
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"expected LO,HI (e.g. 0.8,1.25) or none, got {text!r}") from None
    if not 0 < lo <= 1 <= hi:
        raise ValueError(f"expected 0 < LO <= 1 <= HI, got {text!r}")
    return lo, hi


def local_rows(data: str) -> Optional[int]:
    """Rows of the day partitions of local logs (Parquet footers only); None for a remote path or
    when a file cannot be read (ExampleGen then names it)."""
    if "://" in data:
        return None
    import pyarrow.parquet as pq

    try:
        return sum(pq.read_metadata(f).num_rows for f in glob.glob(os.path.join(data, "date=*", "*.parquet")))
    except Exception:  # noqa: BLE001 (any unreadable file: the strict reader reports it)
        return None


def multi_processing_min_rows(environ=os.environ) -> Optional[int]:
    """The rows from which local logs run Beam in `multi_processing` mode: MULTI_PROCESSING_MIN_ROWS, or
    MULTI_PROCESSING_MIN_ROWS_ENV's value (a row count; "off": never, None)."""
    setting = environ.get(MULTI_PROCESSING_MIN_ROWS_ENV, "").strip()
    if not setting:
        return MULTI_PROCESSING_MIN_ROWS
    if setting.lower() == "off":
        return None
    if not setting.isdigit():
        raise ValueError(f"{MULTI_PROCESSING_MIN_ROWS_ENV}={setting!r}: expected a row count or 'off'")
    return int(setting)


def direct_mode_args(data: str, user_args: Tuple[str, ...] = (), environ=os.environ) -> Tuple[str, ...]:
    """The DirectRunner's mode for these logs: `multi_processing` with one worker a core (at most
    MULTI_PROCESSING_MAX_WORKERS) on local logs of at least `multi_processing_min_rows()` rows, else
    nothing (the in-memory mode of LOCAL_BEAM_ARGS); nothing when the user names a mode or a worker count."""
    if any(a.startswith(("--direct_running_mode", "--direct_num_workers")) for a in user_args):
        return ()
    threshold = multi_processing_min_rows(environ)
    workers = min(os.cpu_count() or 1, MULTI_PROCESSING_MAX_WORKERS)
    if threshold is None or workers < 2:
        return ()
    rows = local_rows(data)
    if rows is None or rows < threshold:
        return ()
    return ("--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


def default(cls, field: str):
    """The default of a dataclass field, for CLI help and defaults."""
    f = {f.name: f for f in dataclasses.fields(cls)}[field]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default
