"""The DAG's node ids and the layout of a run root: the one home of these names.

A run root (`podcast-mtl run --root ROOT`) holds:

    ROOT/data/                      the default synthetic logs (when --data is not given)
    ROOT/pipeline/<node>/<output>/<execution id>/   every TFX artifact (TFX's own layout)
    ROOT/metadata.sqlite            MLMD
    ROOT/serving/<version>/         pushed models (core/versions.py: the newest wins)
    ROOT/logs/run-*.log             the full log of each run
    ROOT/summary.json, report.md, report.html, schedule.json, .lock
    (statistics.html: TFDV's Facets page of older versions, removed by the next run's reports)

The CLI, the runners, the tests and the bench scripts find artifacts through `RunRoot` instead of
globbing TFX's layout themselves.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Dict, List, Optional, Sequence, Tuple


class Node:
    """Node ids of the DAG (`pipeline/pipeline.py`); TFX's default id (the class name) where the
    component appears once."""
    EXAMPLE_GEN = "TemporalExampleGen"
    WINDOW = "TemporalWindow"  # daily spans joined into the training window
    STATISTICS = "StatisticsGen"
    SCHEMA = "ImportSchemaGen"
    VALIDATOR = "ExampleValidator"
    GATE = "ValidationGate"
    TRANSFORM = "Transform"
    TUNER = "Tuner"
    HYPERPARAMETERS_RESOLVER = "latest_hyperparameters_resolver"  # scheduled runs without a Tuner
    TRAINER = "Trainer"
    INCUMBENT_RESOLVER = "incumbent_resolver"  # the latest model whose push was verified (LatestBlessedModelStrategy)
    BASELINE_TRAINER = "baseline_trainer"  # serves the incumbent as is, or trains the promotions baseline
    BASELINE_IMPORTER = "baseline_importer"  # the incumbent model, brought in with an Importer
    EVALUATOR = "Evaluator"
    PUSHER = "Pusher"
    BULK_INFERRER = "BulkInferrer"


MODEL_SERVING_DIR = "Format-Serving"  # where a TFX Model artifact keeps its SavedModel


def _glob(pattern: str) -> List[str]:
    if "://" in pattern:
        import tensorflow as tf

        return [p.rstrip("/") for p in tf.io.gfile.glob(pattern)]
    return glob.glob(pattern)


def _execution_order(path: str) -> int:
    name = os.path.basename(path.rstrip("/"))
    return int(name) if name.isdigit() else -1


def _in_root(name: str, doc: str) -> property:
    return property(lambda self: os.path.join(self.path, name), doc=f"ROOT/{name}: {doc}")


@dataclasses.dataclass(frozen=True)
class RunRoot:
    """A run root's paths. `serving_dir` and `metadata_path` override their defaults inside the root."""
    path: str
    serving_dir: Optional[str] = None
    metadata_path: Optional[str] = None

    data = _in_root("data", "the default synthetic logs")
    pipeline = _in_root("pipeline", "TFX's artifacts, <node>/<output>/<execution id>/")
    logs = _in_root("logs", "one full log per run")
    summary = _in_root("summary.json", "RunSummary of the latest run")
    report_md = _in_root("report.md", "the latest run's report")
    report_html = _in_root("report.html", "the latest run's self-contained report")
    statistics_html = _in_root("statistics.html", "an earlier version's feature statistics page (removed)")
    schedule = _in_root("schedule.json", "the daily runs of `podcast-mtl schedule`")
    lock = _in_root(".lock", "held by the run using the root")
    curated_schema = _in_root("curated_schema", "the curated schemas imported, each named by its content's hash")

    @property
    def serving(self) -> str:
        """Pushed model versions (default ROOT/serving)."""
        return self.serving_dir or os.path.join(self.path, "serving")

    @property
    def metadata(self) -> str:
        """MLMD's SQLite file (default ROOT/metadata.sqlite)."""
        return self.metadata_path or os.path.join(self.path, "metadata.sqlite")

    def node(self, node: str) -> str:
        """The folder of one node's artifacts."""
        return os.path.join(self.pipeline, node)

    def artifacts(self, node: str, output: str, inside: str = "") -> List[str]:
        """Every artifact folder of `node`'s output `output` (joined with `inside`, e.g.
        "Format-Serving"), oldest execution first (by execution id, numerically)."""
        found = _glob(os.path.join(self.node(node), output, "*", inside))
        return sorted((p.rstrip("/") for p in found), key=lambda p: _execution_order(p[:-len(inside)] if inside else p))

    def newest_artifact(self, node: str, output: str, inside: str = "", holding: str = "") -> Optional[str]:
        """The newest artifact folder of `node`'s `output` (joined with `inside`), optionally only one
        that holds the file `holding` (e.g. "saved_model.pb"); None when there is none."""
        found = self.artifacts(node, output, inside)
        if holding:
            found = [p for p in found if _glob(os.path.join(p, holding))]
        return found[-1] if found else None

    def model_inputs(self, splits: Sequence[str] = ("train", "eval", "test")) -> Tuple[str, Dict[str, str]]:
        """What the models of the newest run read: (Transform's graph, {split: file pattern} of the raw
        examples it applies to), the TemporalWindow's examples in a root of daily spans, else
        ExampleGen's (Transform does not materialize; `models.sampling.Decoder` applies the graph).
        LookupError naming what is missing."""
        graph = self.artifact(Node.TRANSFORM, "transform_graph")
        examples = self.newest_artifact(Node.WINDOW, "examples") or self.artifact(Node.EXAMPLE_GEN, "examples")
        return graph, {s: os.path.join(examples, f"Split-{s}", "*.gz") for s in splits}

    def artifact(self, node: str, output: str) -> str:
        """The newest artifact folder of `node`'s `output`; LookupError naming what is missing."""
        found = self.newest_artifact(node, output)
        if found is None:
            raise LookupError(f"no {node}/{output} artifact under {self.pipeline}: run "
                              f"`podcast-mtl run --root {self.path}` first")
        return found
