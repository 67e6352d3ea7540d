"""The Trainer's `run_fn`: builds the multi-task model in a tf.distribute scope, trains it with
early stopping on exact eval stream AP, and exports the serving SavedModel."""
from __future__ import annotations

import json
import math
import os
import time
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.config import MODEL_CONFIG_KEY, ModelConfig
from models.evaluate import score_dataset, stream_ap_by_source
from models import warm_start
from models.export import export
from models.model import MultiTaskModel, build_model, dummy_features
from models.preprocessing import cardinalities
from models.sampling import eval_dataset, train_dataset
from core.tasks import TASKS, Task

MONITOR = "val_stream_ap"


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":  # every GPU; on a CPU-only host, every logical CPU device
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
    if name == "multi_worker":  # cluster from TF_CONFIG, as on Vertex / Kubeflow training jobs
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


class StreamAPCallback(tf.keras.callbacks.Callback):
    """After each evaluation interval: exact stream AP per source on the eval split, put in the logs
    as `val_stream_ap_<source>` and their mean over the training sources as `val_stream_ap`."""

    def __init__(self, dataset, tasks: Sequence[Task], sources: Sequence[str], interval: int, total: int,
                 verbose: bool = True):
        super().__init__()
        self.dataset, self.tasks, self.sources = dataset, tuple(tasks), tuple(sources)
        self._batches = None  # the eval split, read and parsed once, then scored from memory
        self.interval, self.total, self.verbose = interval, total, verbose
        self._t0 = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        took = time.time() - self._t0
        if self._batches is None:
            self._batches = list(self.dataset)
        ap = stream_ap_by_source(self.tasks, score_dataset(self.model, self._batches))
        for source, value in ap.items():
            logs[f"{MONITOR}_{source}"] = value
        logs[MONITOR] = float(np.nanmean([ap[s] for s in self.sources]))
        if self.verbose:
            print(f"  step {min((epoch + 1) * self.interval, self.total)}/{self.total}: "
                  f"loss {logs.get('loss', float('nan')):.4f}, eval stream AP " +
                  " ".join(f"{s}={v:.4f}" for s, v in ap.items()) + f" ({took:.0f} s)", flush=True)


def train(cfg: ModelConfig, tf_transform_output, train_files, eval_files, log_dir: Optional[str] = None,
          table: Sequence[Task] = TASKS, verbose: bool = True) -> MultiTaskModel:
    tf.keras.utils.set_random_seed(cfg.seed)
    tasks = cfg.tasks(tuple(table))
    spec = tf_transform_output.transformed_feature_spec()
    strategy = make_strategy(cfg.strategy)
    with strategy.scope():
        model = build_model(cfg, cardinalities(tf_transform_output), tasks)
        model(dummy_features(), training=False)
        if cfg.warm_start_dir:  # models/warm_start.py: weights of the latest pushed model, rows by token
            print(f"  warm start: {json.dumps(warm_start.restore(model, tf_transform_output, cfg.warm_start_dir))}")
    interval = max(1, min(cfg.eval_every_steps, cfg.train_steps))
    callbacks = [StreamAPCallback(eval_dataset(eval_files, spec, max_examples=cfg.max_eval_examples),
                                  tasks, cfg.train_sources, interval, cfg.train_steps, verbose),
                 tf.keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=cfg.early_stopping_patience,
                                                  restore_best_weights=True)]
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    model.fit(train_dataset(train_files, spec, cfg), steps_per_epoch=interval,
              epochs=math.ceil(cfg.train_steps / interval), callbacks=callbacks, verbose=0)
    return model


def config_from_custom(custom_config: Optional[Dict], train_steps: Optional[int] = None) -> ModelConfig:
    cfg = ModelConfig.from_json(custom_config[MODEL_CONFIG_KEY]) if custom_config and \
        MODEL_CONFIG_KEY in custom_config else ModelConfig()
    if train_steps:
        cfg = cfg.replace(train_steps=int(train_steps))
    return cfg


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor)."""
    cfg = config_from_custom(fn_args.custom_config, fn_args.train_steps)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = train(cfg, tf_transform_output, fn_args.train_files, fn_args.eval_files,
                  log_dir=os.path.join(fn_args.model_run_dir, "logs"))
    export(model, tf_transform_output, fn_args.serving_model_dir)
    warm_start.save(model, tf_transform_output, fn_args.serving_model_dir)  # travels with the pushed model
