"""Runs a DAG on this machine: LocalDagRunner, the Beam DirectRunner, MLMD on SQLite.

`run_dag` is the one way every command runs a DAG (`run`, `ablate`, `schedule`): it prints one
progress line per component as it starts and ends (with cache hits), keeps the full log in
`<root>/logs/`, captures a failing component's error, and writes `<root>/summary.json` at the
end, also when the run stops. The summary names each component's output artifacts, so callers
read Transform's output (or any other) from it rather than looking it up again.

One run per root at a time: `run_dag` holds an exclusive `fcntl.flock` on `<root>/.lock` for the
whole run (the kernel releases it when the process dies, so a killed run leaves nothing stuck); a
second run on the same root refuses at once with `RootBusy`, naming the process that holds it.
`summary.json` is written atomically (temporary file + rename) with `"state": "running"` when a
run starts and replaced when it ends, so after a killed run it never describes an earlier run;
the next run reports executions a killed run left RUNNING in MLMD (`interrupted_executions`).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from typing import Dict, Optional

from tfx import v1 as tfx

from core.versions import newest_version
from core.tasks import TASKS, stream_head
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_data_pipeline, create_pipeline
from pipeline.run_summary import cancel_interrupted, summarize_run

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
    """The whole DAG (`create_pipeline`) through `run_dag`. The DAG resolves the incumbent itself
    (`pipeline.pipeline.incumbent_resolver`); an explicit `baseline_model` is staged as a Model
    artifact first (`with_incumbent`)."""
    config = with_incumbent(config)
    return run_dag(config, create_pipeline(config, metadata_connection(config)), quiet=quiet)


SERVING_SUBDIR = "Format-Serving"  # where a Model artifact keeps its SavedModel (TFX's layout)


def latest_pushed(serving_dir: str) -> Optional[str]:
    """The newest model version in a serving folder (numbered subfolders with a saved_model.pb)."""
    return newest_version(serving_dir)


def as_model_artifact(model_dir: str, root: str) -> str:
    """A folder the Evaluator reads as a Model artifact: `model_dir` itself when it holds
    Format-Serving/, else a copy of the SavedModel `model_dir` staged under <root>/baselines/."""
    if os.path.isdir(os.path.join(model_dir, SERVING_SUBDIR)):
        return os.path.abspath(model_dir)
    if not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        raise ValueError(f"baseline model {model_dir}: neither a SavedModel (no saved_model.pb) nor a Model "
                         f"artifact folder (no {SERVING_SUBDIR}/)")
    stamp = hashlib.sha1(f"{os.path.abspath(model_dir)}:{os.path.getmtime(os.path.join(model_dir, 'saved_model.pb'))}"
                         .encode()).hexdigest()[:12]
    staged = os.path.abspath(os.path.join(root, "baselines", f"{os.path.basename(model_dir.rstrip('/'))}-{stamp}"))
    if not os.path.isdir(os.path.join(staged, SERVING_SUBDIR)):
        tmp = staged + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model_dir, os.path.join(tmp, SERVING_SUBDIR))
        os.replace(tmp, staged)
    return staged


def with_incumbent(config: PipelineConfig) -> PipelineConfig:
    """The user's `baseline_model` (`--baseline-model`, a SavedModel or a Model artifact folder) as
    a Model artifact folder the DAG's Importer reads. Without one the config is unchanged: the DAG
    resolves the latest pushed model from MLMD, as on every runner."""
    if not config.baseline_model:
        return config
    return config.replace(baseline_model=as_model_artifact(config.baseline_model, config.root))


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


class RootBusy(RuntimeError):
    """Another run holds the root's lock."""


LOCK_FILE = ".lock"
SUMMARY_FILE = "summary.json"


def lock_root(root: str):
    """Takes the root's exclusive lock without waiting; returns the open lock file (keep it open for
    the whole run). Raises RootBusy naming the holder when another run has it."""
    path = os.path.join(root, LOCK_FILE)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise RootBusy(f"{root}: another run is using this root ({holder}); wait for it to finish "
                       f"or use another --root") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    return f


def write_summary(root: str, summary: Dict) -> None:
    """Writes `<root>/summary.json` atomically: a reader sees the old or the new file, never half."""
    path = os.path.join(root, SUMMARY_FILE)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, path)


def run_dag(config: PipelineConfig, dag: tfx.dsl.Pipeline, quiet: bool = False, reports: bool = True) -> Dict:
    """Runs `dag` with the LocalDagRunner; returns (and writes) the summary. Never raises for a
    failed run: the summary's `not_pushed_reason` and `failed` say what stopped it. Raises RootBusy
    when another run holds the root. `reports`: also write report.md and statistics.html."""
    os.makedirs(config.root, exist_ok=True)
    lock = lock_root(config.root)
    try:
        return _run_locked(config, dag, quiet, reports)
    finally:
        lock.close()


def _run_locked(config: PipelineConfig, dag: tfx.dsl.Pipeline, quiet: bool, reports: bool = True) -> Dict:
    out = open(os.devnull, "w") if quiet else sys.stdout
    interrupted = cancel_interrupted(config.metadata)
    if interrupted:
        print("note: a previous run on this root was killed; marked canceled in MLMD (they were left running): "
              + ", ".join(f"{e['component']} (execution {e['id']})" for e in interrupted), file=out, flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    log_path = log_to_file(config.root)
    write_summary(config.root, {"state": "running", "started": started, "pid": os.getpid(), "log": log_path,
                                "failed": None, "blessed": None, "pushed_model": None,
                                "not_pushed_reason": "the run has not finished (or was killed)"})
    progress = _Progress(len(dag.components), out)
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
    summary.update(state="failed" if error else "finished", started=started, failed=error is not None,
                   wall_seconds=round(time.time() - t0, 1), log=log_path, preset=config.preset_name,
                   interrupted_executions=interrupted)
    write_summary(config.root, summary)
    if reports:
        write_run_reports(config.root, summary)
    return summary


def stream_head_of(heads: Dict, source: str) -> Optional[str]:
    """The head that is judged on `source` among the evaluated heads."""
    declared = stream_head(TASKS, source)
    return declared if declared in heads else None


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
    rows = summary.get("rows") or {}
    if rows:
        lines.append(f"rows: {rows['rows_read']:,} read, {rows['rows_kept']:,} in splits, {rows['rows_rejected']:,} rejected"
                     + (f" {rows['rejected']}" if rows["rejected"] else "")
                     + (f", {rows['duplicate_rows']:,} with a repeated impression_id" if rows["duplicate_rows"] else ""))
    if summary.get("splits"):
        lines.append("splits: " + ", ".join(f"{k}={v:,}" for k, v in summary["splits"].items()))
    if summary.get("tuned_hyperparameters"):
        lines.append("tuned hyperparameters: " + json.dumps(summary["tuned_hyperparameters"]))
    for source, heads in summary.get("ap", {}).items():
        if heads:
            lines.append(f"test exact AP on {source:<11}" + "  ".join(f"{h}={v:.4f}" for h, v in heads.items()))
    baseline = summary.get("baseline")
    if baseline:
        lines.append(f"baseline: {baseline['kind']} ({baseline['model']})")
        for source, heads in summary.get("ap", {}).items():
            head = stream_head_of(heads, source)
            base = (baseline.get("ap") or {}).get(source, {}).get(head)
            if head and base is not None:
                lines.append(f"  {source} stream AP ({head}): candidate {heads[head]:.4f}  baseline {base:.4f}  "
                             f"({heads[head] / base - 1:+.1%})")
    for source, heads in (summary.get("calibration") or {}).items():
        for head, c in heads.items():
            if c.get("calibration") is not None:
                lines.append(f"calibration on {source:<11}{head}: mean prediction / mean label {c['calibration']:.3f}"
                             + (f", ECE {c['ece']:.4f}" if c.get("ece") is not None else ""))
    lines.append(f"blessed: {summary['blessed']}   pushed: {summary['pushed_model'] or 'no'}")
    if summary.get("not_pushed_reason"):
        lines.append(f"not pushed: {summary['not_pushed_reason']}")
    lines.append(f"wall time {summary.get('wall_seconds', 0):.0f} s; full log: {summary.get('log')}")
    return "\n".join(lines)
