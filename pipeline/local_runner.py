"""Runs a DAG on this machine: LocalDagRunner, the Beam DirectRunner, MLMD on SQLite.

`run_dag` is the one way every command runs a DAG (`run`, `ablate`, `schedule`): it prints one
progress line per component as it starts and ends (with cache hits), keeps the full log in
`<root>/logs/`, captures a failing component's error, and writes `<root>/summary.json` at the
end, also when the run stops. The summary names each component's output artifacts, so callers
read Transform's graph (or any other output) from it rather than looking it up again.

One run per root at a time: `run_dag` holds an exclusive `fcntl.flock` on `<root>/.lock` for the
whole run (the kernel releases it when the process dies, so a killed run leaves nothing stuck); a
second run on the same root refuses at once with `RootBusy`, naming the process that holds it.
`summary.json` is written atomically (temporary file + rename) with `"state": "running"` when a
run starts and replaced when it ends, so after a killed run it never describes an earlier run;
the next run reports executions a killed run left RUNNING in MLMD (`interrupted_executions`).
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from typing import Dict, Optional

from tfx import v1 as tfx

from core.paths import write_whole
from core.row_report import RowReport
from core.versions import versions
from core.tasks import TASKS, stream_head
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_data_pipeline, create_pipeline
from pipeline.run_root import MODEL_SERVING_DIR, Node, RunRoot
from pipeline.run_summary import RunSummary, cancel_interrupted, summarize_run

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_CACHED = re.compile(r"A cached execution \d+ is used\.")


_ROWS_KEPT = re.compile(r"(?:TemporalExampleGen|TemporalWindow): .*?(\d+) (?:rows )?kept")
HEARTBEAT_SECONDS = 30.0  # a line at least this often while one component runs


class _Progress(logging.Handler):
    """One line per component as it starts and ends, and a heartbeat line whenever a component
    runs `heartbeat` seconds with no line of ours (Transform, StatisticsGen and the Evaluator print
    nothing of their own for minutes on large logs): elapsed seconds and the rows the run reads,
    once ExampleGen said."""

    def __init__(self, total: int, out=sys.stdout, heartbeat: float = HEARTBEAT_SECONDS):
        super().__init__(logging.INFO)
        self.total, self.out, self.started, self.cached, self.current = total, out, {}, set(), None
        self.finished, self.rows, self.heartbeat, self._last = set(), None, heartbeat, time.time()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._timer = threading.Thread(target=self._beat, name="progress-heartbeat", daemon=True)

    def start(self) -> "_Progress":
        self._timer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._timer.is_alive():
            self._timer.join(timeout=5)

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)
        self._last = time.time()

    def _beat(self):
        while not self._stop.wait(min(1.0, self.heartbeat / 4)):
            with self._lock:
                name = self.current
                if not name or name in self.finished or time.time() - self._last < self.heartbeat:
                    continue
                took = time.time() - self.started.get(name, time.time())
                rows = f" ({self.rows:,} rows in the run)" if self.rows else ""
                self._print(f"      {name} still running: {took:.0f} s{rows}")

    def emit(self, record):
        msg = record.getMessage()
        with self._lock:
            if m := _RUNNING.match(msg):
                self.current = m.group(1)
                self.started[self.current] = time.time()
                self._print(f"[{len(self.started)}/{self.total}] {self.current} ...")
            elif _CACHED.match(msg) and self.current:
                self.cached.add(self.current)
            elif m := _FINISHED.match(msg):
                name = m.group(1)
                self.finished.add(name)
                took = time.time() - self.started.get(name, time.time())
                self._print(f"      {name} {'reused from cache' if name in self.cached else 'done'} in {took:.1f} s")
            elif m := _ROWS_KEPT.match(msg):
                self.rows = int(m.group(1))


def log_to_file(root: str) -> str:
    """Sends every log line (absl, TFX, Beam, TensorFlow) to a new file under `<root>/logs/`."""
    from absl import logging as absl_logging

    logs = RunRoot(root).logs
    os.makedirs(logs, exist_ok=True)
    path = os.path.join(logs, time.strftime("run-%Y%m%d-%H%M%S.log"))
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


def run_pipeline(config: PipelineConfig, quiet: bool = False) -> RunSummary:
    """The whole DAG (`create_pipeline`) through `run_dag`. The DAG resolves the incumbent itself
    (`pipeline.pipeline.incumbent_resolver`); an explicit `baseline_model` is staged as a Model
    artifact first (`with_incumbent`)."""
    config = with_incumbent(config)
    return run_dag(config, create_pipeline(config, metadata_connection(config)), quiet=quiet)




def incomplete(model_dir: str) -> Optional[str]:
    """Why `model_dir` (a SavedModel, or a Model artifact folder holding Format-Serving/) is not a
    whole SavedModel, or None: a copy still under way or cut short lacks saved_model.pb or variables/."""
    if "://" in model_dir:  # remote: the server's own check
        return None
    serving = os.path.join(model_dir, MODEL_SERVING_DIR)
    saved = serving if os.path.isdir(serving) else model_dir
    if not os.path.exists(os.path.join(saved, "saved_model.pb")):
        return f"no saved_model.pb in {saved}"
    variables = os.path.join(saved, "variables")
    if not os.path.isdir(variables):
        return f"no variables/ in {saved} (half copied?)"
    names = os.listdir(variables)
    if any(n.startswith("variables.data") for n in names) and "variables.index" not in names:
        return f"no variables/variables.index in {saved} (half copied?)"
    return None


def latest_pushed(serving_dir: str) -> Optional[str]:
    """The newest whole model version in a serving folder (numbered subfolders with a saved_model.pb
    and variables/); a newer version that is not whole (copied by something else, not finished) is
    skipped with a warning naming it."""
    skipped = []
    for version in reversed(versions(serving_dir)):
        problem = incomplete(version)
        if problem is None:
            for v, why in skipped:
                print(f"warning: serving version {v} is not a whole SavedModel ({why}); using {version}",
                      file=sys.stderr, flush=True)
            return version
        skipped.append((version, problem))
    for v, why in skipped:
        print(f"warning: serving version {v} is not a whole SavedModel ({why}); not used", file=sys.stderr, flush=True)
    return None


_DTYPES = {"string": 7, "int": 9, "float": 1}  # DT_STRING, DT_INT64, DT_FLOAT


def feature_set_problem(model_dir: str) -> Optional[str]:
    """Why the SavedModel's raw inputs (its serving_raw signature) cannot be fed from the logs' fields:
    an input the log format has no field for, or one of another type. None when they fit (or the
    model has no serving_raw signature to tell)."""
    from tensorflow.core.protobuf import saved_model_pb2

    from core.fields import FIELDS
    from core.serving import SERVING_RAW

    serving = os.path.join(model_dir, MODEL_SERVING_DIR)
    saved = serving if os.path.isdir(serving) else model_dir
    proto = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(saved, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as e:  # unreadable or not a SavedModel proto
        return f"cannot read {os.path.join(saved, 'saved_model.pb')} ({type(e).__name__})"
    fields = {f.name: f for f in FIELDS}
    problems = []
    for graph in proto.meta_graphs[:1]:
        if SERVING_RAW not in graph.signature_def:
            return None
        for name, info in sorted(graph.signature_def[SERVING_RAW].inputs.items()):
            field = fields.get(name)
            if field is None:
                problems.append(f"input {name!r} is no field of the logs")
            elif info.dtype != _DTYPES[field.dtype]:
                problems.append(f"input {name!r} has dtype {info.dtype}, the field is {field.dtype}")
    return "; ".join(problems) or None


def as_model_artifact(model_dir: str, root: str) -> str:
    """A folder the Evaluator reads as a Model artifact: `model_dir` itself when it holds
    Format-Serving/, else a copy of the SavedModel `model_dir` staged under <root>/baselines/."""
    if os.path.isdir(os.path.join(model_dir, MODEL_SERVING_DIR)):
        return os.path.abspath(model_dir)
    if not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        raise ValueError(f"baseline model {model_dir}: neither a SavedModel (no saved_model.pb) nor a Model "
                         f"artifact folder (no {MODEL_SERVING_DIR}/)")
    stamp = hashlib.sha1(f"{os.path.abspath(model_dir)}:{os.path.getmtime(os.path.join(model_dir, 'saved_model.pb'))}"
                         .encode()).hexdigest()[:12]
    staged = os.path.abspath(os.path.join(root, "baselines", f"{os.path.basename(model_dir.rstrip('/'))}-{stamp}"))
    if not os.path.isdir(os.path.join(staged, MODEL_SERVING_DIR)):
        tmp = staged + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model_dir, os.path.join(tmp, MODEL_SERVING_DIR))
        os.replace(tmp, staged)
    return staged


def with_incumbent(config: PipelineConfig) -> PipelineConfig:
    """The user's `baseline_model` (`--baseline-model`, a SavedModel or a Model artifact folder) as
    a Model artifact folder the DAG's Importer reads. Without one the config is unchanged: the DAG
    resolves the latest pushed model from MLMD, as on every runner. ValueError naming the model
    when it is not a whole SavedModel or its inputs do not fit the logs' fields (before the run,
    not as an Evaluator traceback)."""
    source = config.baseline_model
    if not source:
        return config
    if "://" not in source:
        problem = incomplete(source)
        if problem:
            raise ValueError(f"--baseline-model {source}: not a whole SavedModel: {problem}")
        problem = feature_set_problem(source)
        if problem:
            raise ValueError(f"--baseline-model {source}: its inputs do not fit this pipeline's logs ({problem}); "
                             f"it was trained on another feature set: pass a comparable --baseline-model")
    return config.replace(baseline_model=as_model_artifact(source, config.root))


class PipelineFailed(RuntimeError):
    """A DAG run stopped; the message is the summary's reason."""


def run_data_pipeline(config: PipelineConfig, quiet: bool = False) -> Dict:
    """ExampleGen .. Transform (`create_data_pipeline`) through `run_dag`; returns Transform's graph and
    the examples it applies to as {"graph": dir, "files": {split: file pattern}}, read from the run's
    summary (ExampleGen's raw examples: Transform does not materialize; `models.sampling.Decoder`)."""
    summary = run_dag(config, create_data_pipeline(config, metadata_connection(config)), quiet=quiet)
    if summary.failed:
        raise PipelineFailed(summary.not_pushed_reason)
    examples = summary.artifacts[Node.EXAMPLE_GEN]["Examples"]
    return {"graph": summary.artifacts[Node.TRANSFORM]["TransformGraph"],
            "files": {s: os.path.join(examples, f"Split-{s}", "*.gz") for s in config.splits}}


class RootBusy(RuntimeError):
    """Another run holds the root's lock."""


class _HeldLock:
    """The root's lock, held by this process; `close` releases it when the last holder closes."""

    def __init__(self, key: str, f):
        self.key, self.file, self.count = key, f, 1

    def close(self) -> None:
        self.count -= 1
        if self.count == 0:
            _HELD.pop(self.key, None)
            self.file.close()


_HELD: Dict[str, _HeldLock] = {}


def lock_root(root: str) -> _HeldLock:
    """Takes the root's exclusive lock without waiting; returns it (`close()` it at the end of the
    run). Raises RootBusy naming the holder when another process has it. Re-entrant in one process:
    the schedule holds it for all its days and each day's runs take it again."""
    path = RunRoot(root).lock
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key].count += 1
        return _HELD[key]
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
    _HELD[key] = _HeldLock(key, f)
    return _HELD[key]


MAX_ERROR_LINE, MAX_ERROR = 600, 8000


def short_error(text: str) -> str:
    """A component's error for the terminal and summary.json: each line at most MAX_ERROR_LINE
    characters, the whole at most MAX_ERROR (TensorFlow errors can quote kilobytes of raw
    records); the full text is in the run's log."""
    lines = [line if len(line) <= MAX_ERROR_LINE else f"{line[:MAX_ERROR_LINE]} ... ({len(line) - MAX_ERROR_LINE:,} "
             f"characters cut; the full error is in the log)" for line in text.splitlines()]
    out = "\n".join(lines)
    return out if len(out) <= MAX_ERROR else out[:MAX_ERROR] + " ... (cut; the full error is in the log)"


def write_summary(root: str, summary: RunSummary) -> None:
    """Writes `<root>/summary.json` atomically: a reader sees the old or the new file, never half."""
    write_whole(RunRoot(root).summary, summary.to_json())


def run_dag(config: PipelineConfig, dag: tfx.dsl.Pipeline, quiet: bool = False, reports: bool = True) -> RunSummary:
    """Runs `dag` with the LocalDagRunner; returns (and writes) the summary. Never raises for a
    failed run: the summary's `not_pushed_reason` and `failed` say what stopped it. Raises RootBusy
    when another run holds the root. `reports`: also write report.md, report.html and the model card."""
    os.makedirs(config.root, exist_ok=True)
    lock = lock_root(config.root)
    try:
        return _run_locked(config, dag, quiet, reports)
    finally:
        lock.close()


def _run_locked(config: PipelineConfig, dag: tfx.dsl.Pipeline, quiet: bool, reports: bool = True) -> RunSummary:
    out = open(os.devnull, "w") if quiet else sys.stdout
    interrupted = cancel_interrupted(config.metadata)
    if interrupted:
        print("note: a previous run on this root was killed; marked canceled in MLMD (they were left running): "
              + ", ".join(f"{e['component']} (execution {e['id']})" for e in interrupted), file=out, flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    log_path = log_to_file(config.root)
    write_summary(config.root, RunSummary(started=started, pid=os.getpid(), log=log_path, preset=config.preset_name))
    progress = _Progress(len(dag.components), out).start()
    logging.getLogger().addHandler(progress)
    since_ms = int(time.time() * 1000)
    error = None
    t0 = time.time()
    try:
        tfx.orchestration.LocalDagRunner().run(dag)
    except Exception as e:  # the component's own error, e.g. the validation gate's message
        logging.getLogger(__name__).exception("pipeline run failed")
        stopped_at = progress.current or "pipeline"
        error = short_error(f"stopped at {stopped_at}: {type(e).__name__}: {e}")
    finally:
        logging.getLogger().removeHandler(progress)
        progress.stop()
    summary = summarize_run(config.metadata, since_ms, error)
    summary = dataclasses.replace(summary, started=started, pid=os.getpid(), wall_seconds=round(time.time() - t0, 1),
                                  log=log_path, preset=config.preset_name, data=config.data,
                                  interrupted_executions=interrupted)
    write_summary(config.root, summary)
    if reports:
        write_run_reports(config.root, summary)
    return summary


def stream_head_of(heads: Dict, source: str) -> Optional[str]:
    """The head that is judged on `source` among the evaluated heads."""
    declared = stream_head(TASKS, source)
    return declared if declared in heads else None


def write_run_reports(root: str, summary: RunSummary) -> None:
    """report.md and report.html in the root, and the pushed model's model_card.md / .json
    (`pipeline/reports.py`); a report that cannot be written is logged, never fails the run."""
    from pipeline.reports import write_reports

    try:
        write_reports(root, summary)
    except Exception:
        logging.getLogger(__name__).exception("writing the run reports failed")


def _ap(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_summary(summary: RunSummary) -> str:
    lines = ["", f"{'component':<32}{'state':>10}{'seconds':>10}"]
    for c in summary.components:
        lines.append(f"{c['component']:<32}{c['state']:>10}{c['seconds']:>10.1f}")
    if summary.rows:
        lines.append(RowReport.from_dict(summary.rows).line())
    if summary.splits:
        lines.append("splits: " + ", ".join(f"{k}={v:,}" for k, v in summary.splits.items()))
    if summary.tuned_hyperparameters:
        tuned = summary.tuned_hyperparameters
        mix = " (natural mix)" if tuned.get("source_alpha") == 1.0 else ""
        lines.append(f"tuned hyperparameters{mix}: " + json.dumps(tuned))
    for source, heads in summary.ap.items():
        if heads:
            lines.append(f"test exact AP on {source:<11}" + "  ".join(f"{h}={_ap(v)}" for h, v in heads.items()))
    baseline = summary.baseline
    if baseline:
        lines.append(f"baseline: {baseline['kind']} ({baseline['model']})")
        for source, heads in summary.ap.items():
            head = stream_head_of(heads, source)
            base = (baseline.get("ap") or {}).get(source, {}).get(head)
            if head and base and heads[head] is not None:
                lines.append(f"  {source} stream AP ({head}): candidate {heads[head]:.4f}  baseline {base:.4f}  "
                             f"({heads[head] / base - 1:+.1%})")
    for source, heads in summary.calibration.items():
        for head, c in heads.items():
            if c.get("calibration") is not None:
                lines.append(f"calibration on {source:<11}{head}: mean prediction / mean label {c['calibration']:.3f}"
                             + (f", ECE {c['ece']:.4f}" if c.get("ece") is not None else ""))
    lines.append(f"blessed: {summary.blessed}   pushed: {summary.pushed_model or 'no'}")
    if summary.not_pushed_reason:
        lines.append(f"not pushed: {summary.not_pushed_reason}")
    lines.append(f"wall time {summary.wall_seconds:.0f} s; full log: {summary.log}")
    return "\n".join(lines)
