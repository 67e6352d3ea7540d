"""The Trainer's `run_fn`: builds the multi-task model in a tf.distribute scope, trains it with
early stopping on exact eval stream AP, and exports the serving SavedModel."""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from models.config import (INCUMBENT_FILE, INCUMBENT_KEY, MODEL_CONFIG_KEY, REFERENCE_FILE, REFERENCE_MODEL_KEY,
                           ModelConfig, Strategy)
from models.evaluate import TracedScorer, score_dataset, stream_ap_by_source
from models import warm_start
from models.export import export
from models.model import MultiTaskModel, build_model, dummy_features
from models.preprocessing import cardinalities
from models.sampling import eval_dataset, examples_decoder, load_examples, source_counts, train_dataset
from models.selection import choose_checkpoint, should_stop
from models.tensorboard import TrainingBoard
from core.tasks import TASKS, Task

MONITOR = "val_stream_ap"


def is_chief(tf_config: Optional[str] = None) -> bool:
    """Whether this process writes the Trainer's outputs: True without `TF_CONFIG` (one process) and
    for the `chief` (Vertex Training names the first worker pool so) or, in a cluster of `worker`s
    only, for worker 0; the other workers export into a temporary folder that is then deleted, as the
    TensorFlow multi-worker guide prescribes (saving reads every variable: all workers take part)."""
    config = json.loads((tf_config if tf_config is not None else os.environ.get("TF_CONFIG")) or "{}")
    task, cluster = config.get("task") or {}, config.get("cluster") or {}
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind in (None, "chief", "master"):
        return True
    return kind == "worker" and index == 0 and not ({"chief", "master"} & set(cluster))


def make_strategy(name: Strategy) -> tf.distribute.Strategy:
    if name == Strategy.MIRRORED:  # every GPU; on a CPU-only host, every logical CPU device
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
    if name == Strategy.MULTI_WORKER:  # cluster from TF_CONFIG, as on Vertex / Kubeflow training jobs
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


class StreamAPCallback(tf.keras.callbacks.Callback):
    """After each evaluation interval: exact stream AP per source on the eval split (put in the logs
    as `val_stream_ap_<source>`), early stopping once no source improves (`should_stop`), and at
    the end the weights of the evaluation `choose_checkpoint` picks, so that no source is traded
    for the other. `selected` holds that evaluation's step and APs.

    With `refine` steps (a divisor of `interval` below it), the weights are also kept every `refine`
    steps between two evaluations, only those within one interval of the best evaluation so far (at
    most three intervals' worth in memory); at the end the ones within one interval of the chosen
    evaluation are scored as well and the choice is made again among all scored checkpoints. Early
    stopping still looks at the evaluations every `interval` steps only, so the training itself
    (its batches, its length) is the same with or without refinement."""

    def __init__(self, dataset, tasks: Sequence[Task], sources: Sequence[str], interval: int, total: int,
                 patience: int, tolerance: float, verbose: bool = True, refine: int = 0, min_delta: float = 0.0):
        super().__init__()
        self.dataset, self.tasks, self.sources = dataset, tuple(tasks), tuple(sources)
        self._batches = None  # the eval split, read and parsed once, then scored from memory
        self._scorer = None  # from the second evaluation on, the traced forward pass (models/evaluate.py)
        self.interval, self.total, self.patience, self.tolerance = interval, total, patience, tolerance
        self.min_delta = min_delta
        self.refine = refine if 0 < refine < interval and interval % refine == 0 else 0
        self._supports_tf_logs = True  # the batch hook reads no logs: no host sync per step for them
        self.verbose = verbose
        self.history: List[Dict[str, float]] = []  # eval AP of the training sources, per evaluation
        self._all_ap: List[Dict[str, float]] = []  # eval AP of every source (a promotions model on ads too)
        self._weights: List[list] = []
        self._between: Dict[int, list] = {}  # step -> weights kept between evaluations (refinement)
        self.selected: Optional[Dict] = None
        self._t0 = time.time()
        self._epoch = 0
        self.train_seconds: List[float] = []  # per evaluation interval: the training steps alone

    def on_epoch_begin(self, epoch, logs=None):
        self._t0, self._epoch = time.time(), epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.refine and (batch + 1) % self.refine == 0 and batch + 1 < self.interval:
            with self._judged():
                self._between[self._epoch * self.interval + batch + 1] = self.model.get_weights()

    def _averaging(self) -> bool:
        return bool(getattr(self.model.optimizer, "use_ema", False))

    def on_train_begin(self, logs=None):
        # the moving average starts at the weights as they are now (Adam's slots are built before fit)
        self._initial = [v.numpy() for v in self.model.trainable_variables] if self._averaging() else None

    def _swap_in_average(self) -> list:
        """Puts the moving average of the trained weights into the model and returns the trained weights
        (to put back). The average starts at the initial weights: after t steps they weigh m ** t in it,
        so it is corrected as Adam corrects its moments, (average - m ** t * initial) / (1 - m ** t),
        and the average of a short training is not mostly its initial weights."""
        trained = self.model.get_weights()
        optimizer = self.model.optimizer
        optimizer.finalize_variable_values(self.model.trainable_variables)
        start = float(optimizer.ema_momentum) ** int(optimizer.iterations.numpy())
        if 0 < start < 1:
            for variable, initial in zip(self.model.trainable_variables, self._initial):
                variable.assign((variable - start * initial) / (1.0 - start))
        return trained

    @contextlib.contextmanager
    def _judged(self):
        """Inside, the model holds the weights this training is scored, kept and restored by: with
        `ModelConfig.weight_average` the (corrected) moving average of the trained weights, put back after,
        so that training goes on from its own; else the weights as they are."""
        trained = self._swap_in_average() if self._averaging() else None
        try:
            yield
        finally:
            if trained is not None:
                self.model.set_weights(trained)

    def _score(self) -> Dict[str, float]:
        if self._batches is None:
            self._batches = list(self.dataset)
        if self.history and self._scorer is None:  # a model scored once does not pay for a trace
            self._scorer = TracedScorer(self.model)
        self.last_scored = score_dataset(self.model, self._batches, self._scorer)  # also read by models/tensorboard.py
        return stream_ap_by_source(self.tasks, self.last_scored)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        took = time.time() - self._t0
        self.train_seconds.append(took)
        with self._judged():
            ap = self._score()
            self._weights.append(self.model.get_weights())
        for source, value in ap.items():
            logs[f"{MONITOR}_{source}"] = value
        self.history.append({s: ap[s] for s in self.sources})
        self._all_ap.append(dict(ap))
        if self._between:  # keep only the weights next to the best evaluation so far
            near = (choose_checkpoint(self.history, self.tolerance) + 1) * self.interval
            self._between = {s: w for s, w in self._between.items() if abs(s - near) < self.interval}
        if self.verbose:
            print(f"  step {self._step(epoch)}/{self.total}: "
                  f"loss {logs.get('loss', float('nan')):.4f}, eval stream AP " +
                  " ".join(f"{s}={v:.4f}" for s, v in ap.items()) + f" ({took:.0f} s)", flush=True)
        if should_stop(self.history, self.patience, self.min_delta):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if not self.history:
            return
        # candidates: (step, eval AP of the training sources, of every source, weights), by step
        candidates = [((i + 1) * self.interval, h, a, w)
                      for i, (h, a, w) in enumerate(zip(self.history, self._all_ap, self._weights))]
        chosen = candidates[choose_checkpoint(self.history, self.tolerance)][0]
        near = [s for s in sorted(self._between) if abs(s - chosen) < self.interval]
        refined = []
        if near:  # refinement: score the kept weights around the chosen evaluation, choose again
            t0 = time.time()
            for step in near:
                self.model.set_weights(self._between[step])
                ap = self._score()
                refined.append({"step": step, "eval_ap": {s: ap[s] for s in self.sources}})
                candidates.append((step, refined[-1]["eval_ap"], dict(ap), self._between[step]))
            candidates.sort(key=lambda c: c[0])
            if self.verbose:
                print(f"  refinement: scored steps {near} ({time.time() - t0:.0f} s)", flush=True)
        history = [c[1] for c in candidates]
        step, eval_ap, all_ap, weights = candidates[choose_checkpoint(history, self.tolerance)]
        self.model.set_weights(weights)
        self._weights, self._between, self._scorer = [], {}, None
        self.selected = {"step": min(step, self.total), "eval_ap": dict(eval_ap), "eval_ap_all_sources": dict(all_ap),
                         "best_eval_ap": {s: max(h[s] for h in history) for s in self.sources},
                         "refined": refined}
        if self.verbose:
            print(f"  restored step {self.selected['step']}: eval stream AP " +
                  " ".join(f"{s}={v:.4f}" for s, v in self.selected["eval_ap"].items()) + " (best seen: " +
                  " ".join(f"{s}={v:.4f}" for s, v in self.selected["best_eval_ap"].items()) + ")", flush=True)

    def _step(self, index: int) -> int:
        return min((index + 1) * self.interval, self.total)


def train(cfg: ModelConfig, tf_transform_output, train_files, eval_files, log_dir: Optional[str] = None,
          table: Sequence[Task] = TASKS, verbose: bool = True, examples=None, counts=None,
          eval_data=None) -> MultiTaskModel:
    """Trains `cfg` and returns the model with the selected checkpoint's weights (`model.selected`).

    `examples`, `counts` and `eval_data` let repeated trainings (tuning trials) share data already
    read into memory: the training examples, their counts per source, and the eval dataset.
    Without `examples`, a training split of at most `cfg.memory_max_examples` examples is read
    into memory here; a larger one streams from the files."""
    if cfg.strategy == Strategy.MULTI_WORKER and (examples is not None or not train_files):
        # trainings on data already in memory (tuning trials, the study) run in this one process:
        # only the Trainer's run_fn is started once per worker
        cfg = cfg.replace(strategy=Strategy.DEFAULT)
    tf.keras.utils.set_random_seed(cfg.seed)
    tasks = cfg.tasks(tuple(table))
    strategy = make_strategy(cfg.strategy)
    with strategy.scope():
        model = build_model(cfg, cardinalities(tf_transform_output), tasks)
        model(dummy_features(), training=False)
        if cfg.warm_start_dir:  # models/warm_start.py: weights of the latest pushed model, rows by token
            print(f"  warm start: {json.dumps(warm_start.restore(model, tf_transform_output, cfg.warm_start_dir))}")
        # Adam's slots made now, not inside the first step: a tf.function that creates variables
        # is traced twice, and tracing the training step is most of a short training's cost
        model.optimizer.build(model.trainable_variables)
    multi_worker = cfg.strategy == Strategy.MULTI_WORKER
    if examples is None and cfg.memory_max_examples and not multi_worker:  # workers read their shards
        counts = counts or source_counts(train_files)
        if sum(counts.values()) <= cfg.memory_max_examples:
            t0 = time.time()
            examples, counts = load_examples(train_files, examples_decoder(tf_transform_output, train_files))
            if verbose:
                print(f"  training split in memory: {len(examples):,} examples in {time.time() - t0:.0f} s", flush=True)
    interval = max(1, min(cfg.eval_every_steps, cfg.train_steps))
    if eval_data is None:
        eval_data = eval_dataset(eval_files, examples_decoder(tf_transform_output, eval_files),
                                 max_examples=cfg.max_eval_examples)
    selection = StreamAPCallback(eval_data, tasks, cfg.train_sources, interval, cfg.train_steps,
                                 cfg.early_stopping_patience, cfg.checkpoint_tolerance, verbose,
                                 refine=cfg.checkpoint_refine_steps, min_delta=cfg.early_stopping_min_delta)
    callbacks = [selection]
    if log_dir:
        callbacks.append(TrainingBoard(log_dir, selection, cfg, tasks, interval, cfg.train_steps))
    decoder = examples_decoder(tf_transform_output, train_files) if examples is None else None
    data = (sharded_input(train_files, decoder, cfg, verbose) if multi_worker else
            train_dataset(train_files, decoder, cfg, examples=examples, counts=counts))
    model.fit(data, steps_per_epoch=interval, epochs=math.ceil(cfg.train_steps / interval), callbacks=callbacks,
              verbose=0)
    model.selected = selection.selected
    # every evaluation (every `interval` steps; refinement's extra scorings not included): its step and the
    # eval stream AP of every source, so a shorter budget's choice can be read off this training
    # (`models/tuning.py`: the Tuner's reference at the trials' budget)
    model.evaluations = [{"step": selection._step(i), "eval_ap_all_sources": dict(a)}
                         for i, a in enumerate(selection._all_ap)]
    model.throughput = throughput(selection, interval, cfg, strategy)
    if verbose and multi_worker:
        print(f"  worker {'chief' if is_chief() else 'non-chief'}: {model.throughput['steps']} steps in "
              f"{model.throughput['seconds']:.1f} s, {model.throughput['examples_per_second_per_worker']:,.0f} "
              f"examples/s on this worker ({model.throughput['workers']} workers, global batch {cfg.batch_size})",
              flush=True)
    return model


def throughput(selection: StreamAPCallback, interval: int, cfg: ModelConfig, strategy) -> Dict:
    """Training steps, their seconds (evaluations excluded) and examples per second: global, and per
    worker (one replica each: the global batch is split across them). `steady_*`: without the
    first interval, which traces the training step."""
    seconds = selection.train_seconds
    steps = [min((k + 1) * interval, cfg.train_steps) - k * interval for k in range(len(seconds))]
    replicas = strategy.num_replicas_in_sync
    out = {"steps": int(sum(steps)), "seconds": float(sum(seconds)), "replicas": int(replicas),
           "workers": workers(strategy)}
    out["examples_per_second"] = out["steps"] * cfg.batch_size / max(out["seconds"], 1e-9)
    out["examples_per_second_per_worker"] = out["examples_per_second"] / out["workers"]
    if len(seconds) > 1:
        out["steady_examples_per_second"] = sum(steps[1:]) * cfg.batch_size / max(sum(seconds[1:]), 1e-9)
    return out


def workers(strategy) -> int:
    """Worker processes training together (the chief counts as one): 1 without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec() if resolver is not None else None
    if not spec or not spec.jobs:
        return 1
    return sum(spec.num_tasks(job) for job in ("chief", "master", "worker") if job in spec.jobs)


def sharded_input(train_files, decoder, cfg: ModelConfig, verbose: bool = True):
    """The training input of multi-worker training, for `model.fit` (a Keras `DatasetCreator`: the
    strategy calls it once per worker with a `tf.distribute.InputContext`). Each worker reads only its
    shard (n, i) of the training split (`sampling._records`: its files, or every n-th record), into
    memory when the shard fits `memory_max_examples`, else streamed from the files; batches of the
    per-replica size (the global `batch_size` split across replicas) drawn with the whole split's
    source shares and a seed of its own (the same sampling law on every worker, different rows)."""
    counts = source_counts(train_files)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        batch = context.get_per_replica_batch_size(cfg.batch_size)
        worker_cfg = cfg.replace(seed=cfg.seed + 1_000 * shard[1])
        if cfg.memory_max_examples and sum(counts.values()) <= cfg.memory_max_examples * shard[0]:
            t0 = time.time()
            examples, shard_counts = load_examples(train_files, decoder, shard=shard)
            if verbose:
                print(f"  worker {shard[1]} of {shard[0]}: its training shard in memory, {len(examples):,} examples "
                      f"({json.dumps(shard_counts)}) in {time.time() - t0:.0f} s, batches of {batch}", flush=True)
            return examples.batches(worker_cfg, batch, counts)
        if verbose:
            print(f"  worker {shard[1]} of {shard[0]}: streaming its training shard, batches of {batch}", flush=True)
        return train_dataset(train_files, decoder, worker_cfg, batch_size=batch, counts=counts, shard=shard)

    return tf.keras.utils.experimental.DatasetCreator(dataset_fn)


def fit_calibration(model, cfg: ModelConfig, tf_transform_output, eval_files):
    """The per-(head, source) logit offsets served with the model (`models/calibration.py`), fitted
    on the eval split, and the eval split's calibration before / after per source."""
    from models.calibration import calibration_report, fit_offsets

    decoder = examples_decoder(tf_transform_output, eval_files)
    scored = score_dataset(model, eval_dataset(eval_files, decoder, max_examples=cfg.max_eval_examples))
    offsets = fit_offsets(scored, model.task_rows)
    report = calibration_report(scored, model.task_rows, offsets)
    print("  calibration on eval (mean prediction / mean label, ECE): " + "; ".join(
        f"{s} {r['head']}: {r['calibration']:.3f} -> {r['calibration_corrected']:.3f}, "
        f"ECE {r['ece']:.4f} -> {r['ece_corrected']:.4f}" for s, r in report.items()), flush=True)
    return offsets, report


def config_from_custom(custom_config: Optional[Dict], train_steps: Optional[int] = None,
                       hyperparameters: Optional[Dict] = None) -> ModelConfig:
    """The Trainer's ModelConfig: the pipeline's config, the Tuner's best values (a KerasTuner
    HyperParameters config) applied on top, and the Trainer's step count."""
    cfg = ModelConfig.from_json(custom_config[MODEL_CONFIG_KEY]) if custom_config and \
        MODEL_CONFIG_KEY in custom_config else ModelConfig()
    if hyperparameters:
        cfg = cfg.with_hyperparameters(hyperparameter_values(hyperparameters))
    if train_steps:
        cfg = cfg.replace(train_steps=int(train_steps))
    return cfg


def hyperparameter_values(config: Dict) -> Dict:
    """{name: value} of a KerasTuner HyperParameters config (the Tuner's best_hyperparameters)."""
    return dict(config.get("values", {})) if "values" in config else dict(config)


def copy_tree(src: str, dst: str) -> None:
    """Every file under `src` to the same place under `dst` (any tf.io.gfile paths)."""
    for dirpath, _, files in tf.io.gfile.walk(src):
        rel = dirpath[len(src.rstrip("/")):].lstrip("/")
        tf.io.gfile.makedirs(os.path.join(dst, rel))
        for name in files:
            tf.io.gfile.copy(os.path.join(dirpath, name), os.path.join(dst, rel, name), overwrite=True)


def serve_incumbent(base_model: str, serving_model_dir: str) -> None:
    """The baseline Trainer's output when the DAG resolved an incumbent: its SavedModel, copied
    unchanged, and `incumbent.json` naming where it came from."""
    copy_tree(base_model, serving_model_dir)
    with tf.io.gfile.GFile(os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), INCUMBENT_FILE), "w") as f:
        f.write(json.dumps({"incumbent": base_model}))


def export_trained(model, cfg: ModelConfig, tf_transform_output, eval_files, serving_dir: str) -> None:
    """A trained model's export: the per-source calibration fitted on the eval split, the serving
    SavedModel, and the warm-start rows that travel with a pushed model."""
    offsets, report = fit_calibration(model, cfg, tf_transform_output, eval_files)
    export(model, tf_transform_output, serving_dir, cfg, offsets=offsets, calibration=report)
    warm_start.save(model, tf_transform_output, serving_dir)


def tuner_reference(hyperparameters: Optional[Dict], transform_output: str, cfg: ModelConfig) -> Optional[str]:
    """The model folder of the Tuner's reference when the baseline Trainer may serve it instead of
    training: the Tuner of this run trained it (the same Transform output) with this very config
    (the promotions baseline at the full budget); else None."""
    path = (hyperparameters or {}).get(REFERENCE_MODEL_KEY)
    record_file = os.path.join(os.path.dirname(path.rstrip("/")), REFERENCE_FILE) if path else None
    if not record_file or not tf.io.gfile.exists(record_file):
        return None
    with tf.io.gfile.GFile(record_file) as f:
        record = json.loads(f.read())
    same_data = os.path.normpath(record.get("transform_graph", "")) == os.path.normpath(transform_output)
    same_model = ModelConfig.from_json(record["model_config"]) == cfg if "model_config" in record else False
    if not (same_data and same_model):
        print(f"baseline: the Tuner's reference {path} was trained on other data or with another config; "
              "training here", flush=True)
        return None
    return path


def serve_reference(reference: str, serving_model_dir: str, model_run_dir: str) -> None:
    """The baseline Trainer's output when the Tuner of this run trained the same promotions baseline
    as its reference: that SavedModel and its TensorBoard logs, copied, and its record beside."""
    folder = os.path.dirname(reference.rstrip("/"))  # the Tuner's export: Format-Serving/, logs/, the record
    copy_tree(reference, serving_model_dir)
    if tf.io.gfile.isdir(os.path.join(folder, "logs")):
        copy_tree(os.path.join(folder, "logs"), os.path.join(model_run_dir, "logs"))
    tf.io.gfile.copy(os.path.join(folder, REFERENCE_FILE),
                     os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), REFERENCE_FILE), overwrite=True)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor). The baseline Trainer (`INCUMBENT_KEY`) given a
    base model serves that incumbent as is; without one it serves the Tuner's reference of this run
    when that is the same training (`tuner_reference`), else it trains like any Trainer. The
    baseline never takes the Tuner's values: its hyperparameters input only names the reference."""
    baseline = bool((fn_args.custom_config or {}).get(INCUMBENT_KEY))
    if baseline and fn_args.base_model:
        print(f"baseline: the incumbent {fn_args.base_model}, served as is (no training)", flush=True)
        serve_incumbent(fn_args.base_model, fn_args.serving_model_dir)
        return
    cfg = config_from_custom(fn_args.custom_config, fn_args.train_steps,
                             None if baseline else fn_args.hyperparameters)
    if baseline and (reference := tuner_reference(fn_args.hyperparameters, fn_args.transform_output, cfg)):
        print(f"baseline: the Tuner's reference {reference}, the same training, served as is", flush=True)
        serve_reference(reference, fn_args.serving_model_dir, fn_args.model_run_dir)
        return
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    # multi-worker training: every worker runs all of this (saving takes part in collectives), only
    # the chief into the Trainer's outputs
    chief = cfg.strategy != Strategy.MULTI_WORKER or is_chief()
    serving_dir = fn_args.serving_model_dir if chief else tempfile.mkdtemp(prefix="podcast-mtl-worker-export-")
    print(f"training ({cfg.mix_description()}) with {cfg.to_json()}", flush=True)
    model = train(cfg, tf_transform_output, fn_args.train_files, fn_args.eval_files,
                  log_dir=os.path.join(fn_args.model_run_dir, "logs") if chief else None)
    export_trained(model, cfg, tf_transform_output, fn_args.eval_files, serving_dir)
    if not chief:
        shutil.rmtree(serving_dir, ignore_errors=True)
