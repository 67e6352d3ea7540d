"""Runs a DAG on this machine: LocalDagRunner, the Beam DirectRunner, MLMD on SQLite.

`run_dag` is the one way every command runs a DAG (`run`, `ablate`, `schedule`): it prints one
progress line per component as it starts and ends (with cache hits), keeps the full log in
`<root>/logs/`, captures a failing component's error, and writes `<root>/summary.json` at the
end, also when the run stops. The summary names each component's output artifacts, so callers
read Transform's output (or any other) from it rather than looking it up again.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Dict

from tfx import v1 as tfx

from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_data_pipeline, create_pipeline
from pipeline.run_summary import summarize_run

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_CACHED = re.compile(r"A cached execution \d+ is used\.")


class _Progress(logging.Handler):
    def __init__(self, total: int, out=sys.stdout):
        super().__init__(logging.INFO)
        self.total, self.out, self.started, self.cached, self.current = total, out, {}, set(), None

    def emit(self, record):
        msg = record.getMessage()
        if m := _RUNNING.match(msg):
            self.current = m.group(1)
            self.started[self.current] = time.time()
            print(f"[{len(self.started)}/{self.total}] {self.current} ...", file=self.out, flush=True)
        elif _CACHED.match(msg) and self.current:
            self.cached.add(self.current)
        elif m := _FINISHED.match(msg):
            name = m.group(1)
            took = time.time() - self.started.get(name, time.time())
            print(f"      {name} {'reused from cache' if name in self.cached else 'done'} in {took:.1f} s",
                  file=self.out, flush=True)


def log_to_file(root: str) -> str:
    """Sends every log line (absl, TFX, Beam, TensorFlow) to a new file under `<root>/logs/`."""
    from absl import logging as absl_logging

    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    path = os.path.join(root, "logs", time.strftime("run-%Y%m%d-%H%M%S.log"))
    absl_logging.set_verbosity(absl_logging.INFO)
    root_logger = logging.getLogger()
    for h in list(root_logger.handlers):  # absl's stderr handler would print every INFO line
        root_logger.removeHandler(h)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.INFO)
    import tensorflow as tf

    tf_logger = tf.get_logger()  # TensorFlow's logger prints to stderr by itself: send it to the file
    for h in list(tf_logger.handlers):
        tf_logger.removeHandler(h)
    tf_logger.propagate = True
    return path


def metadata_connection(config: PipelineConfig):
    """The local runner's metadata store: MLMD on SQLite under the root."""
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata)


def run_pipeline(config: PipelineConfig, quiet: bool = False) -> Dict:
    """The whole DAG (`create_pipeline`) through `run_dag`."""
    return run_dag(config, create_pipeline(config, metadata_connection(config)), quiet=quiet)


class PipelineFailed(RuntimeError):
    """A DAG run stopped; the message is the summary's reason."""


def run_data_pipeline(config: PipelineConfig, quiet: bool = False) -> Dict:
    """ExampleGen .. Transform (`create_data_pipeline`) through `run_dag`; returns Transform's output
    as {"graph": dir, "files": {split: file pattern}}, read from the run's summary."""
    summary = run_dag(config, create_data_pipeline(config, metadata_connection(config)), quiet=quiet)
    if summary["failed"]:
        raise PipelineFailed(summary["not_pushed_reason"])
    transform = summary["artifacts"]["Transform"]
    return {"graph": transform["TransformGraph"],
            "files": {s: os.path.join(transform["Examples"], f"Split-{s}", "*.gz") for s in config.splits}}


def run_dag(config: PipelineConfig, dag: tfx.dsl.Pipeline, quiet: bool = False) -> Dict:
    """Runs `dag` with the LocalDagRunner; returns (and writes) the summary. Never raises for a
    failed run: the summary's `not_pushed_reason` and `failed` say what stopped it."""
    os.makedirs(config.root, exist_ok=True)
    log_path = log_to_file(config.root)
    progress = _Progress(len(dag.components), open(os.devnull, "w") if quiet else sys.stdout)
    logging.getLogger().addHandler(progress)
    since_ms = int(time.time() * 1000)
    error = None
    t0 = time.time()
    try:
        tfx.orchestration.LocalDagRunner().run(dag)
    except Exception as e:  # the component's own error, e.g. the validation gate's message
        logging.getLogger(__name__).exception("pipeline run failed")
        stopped_at = progress.current or "pipeline"
        error = f"stopped at {stopped_at}: {type(e).__name__}: {e}"
    finally:
        logging.getLogger().removeHandler(progress)
    summary = summarize_run(config.metadata, since_ms, error)
    summary.update(failed=error is not None, wall_seconds=round(time.time() - t0, 1), log=log_path,
                   preset=config.preset_name)
    with open(os.path.join(config.root, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    write_run_reports(config.root, summary)
    return summary


def write_run_reports(root: str, summary: Dict) -> None:
    """report.md and statistics.html in the root (`pipeline/reports.py`); a report that cannot be
    written is logged, never fails the run."""
    from pipeline.reports import write_reports

    try:
        write_reports(root, summary)
    except Exception:
        logging.getLogger(__name__).exception("writing the run reports failed")


def format_summary(summary: Dict) -> str:
    lines = ["", f"{'component':<32}{'state':>10}{'seconds':>10}"]
    for c in summary.get("components", []):
        lines.append(f"{c['component']:<32}{c['state']:>10}{c['seconds']:>10.1f}")
    if summary.get("splits"):
        lines.append("splits: " + ", ".join(f"{k}={v:,}" for k, v in summary["splits"].items()))
    for source, heads in summary.get("ap", {}).items():
        if heads:
            lines.append(f"test exact AP on {source:<11}" + "  ".join(f"{h}={v:.4f}" for h, v in heads.items()))
    lines.append(f"blessed: {summary['blessed']}   pushed: {summary['pushed_model'] or 'no'}")
    if summary.get("not_pushed_reason"):
        lines.append(f"not pushed: {summary['not_pushed_reason']}")
    lines.append(f"wall time {summary.get('wall_seconds', 0):.0f} s; full log: {summary.get('log')}")
    return "\n".join(lines)
