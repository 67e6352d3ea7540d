"""TensorBoard logs of a training worth opening (`tensorboard --logdir <run root>`).

`TrainingBoard` replaces Keras' own TensorBoard callback, whose x axis counted evaluations (0..8)
and whose validation run held only the stream APs. At every evaluation it writes, with the
**training step** as the x axis:

- run `train`: `loss/<head>` (each head's masked loss, mean over the interval) and `loss/total`;
- run `validation`: `loss/<head>` (binary cross-entropy of each head on the eval examples of the
  sources that train it, the same mask as training), `ap/<head>/<source>` (exact AP of every head
  on each source's eval impressions) and `stream_ap/<source>` (the AP the checkpoint choice and
  early stopping read);
- at the end, `selected_step` (the restored checkpoint: the console's "restored step N") and the
  hyperparameters through the HParams plugin (with the selected eval stream APs as its metrics).

The eval pass is not repeated: the predictions come from the checkpoint-selection callback's own
scoring (`last_scored`, a `models.evaluate.Scored`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from core.ap import average_precision
from core.fields import SOURCES
from core.tasks import Task

TRAIN_RUN, VALIDATION_RUN = "train", "validation"
_EPS = 1e-7


def hparam_values(cfg) -> Dict[str, object]:
    """The ModelConfig's fields as HParams values (bool, int, float or str; tuples joined)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or f.name in ("warm_start_dir", "seed"):
            continue
        if isinstance(value, tuple):
            value = ",".join(str(v if not isinstance(v, tuple) else ":".join(map(str, v))) for v in value)
        elif hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # str enums
            value = value.value
        out[f.name] = value
    return out


def head_losses(tasks: Sequence[Task], scored) -> Dict[str, float]:
    """Mean binary cross-entropy of each head on the examples of the sources that train it."""
    out = {}
    for t in tasks:
        if t.name not in scored.predictions or t.label not in scored.labels:
            continue
        rows = np.isin(scored.source, [SOURCES.index(s) for s in t.trained_by])
        if not rows.any():
            continue
        p = np.clip(scored.predictions[t.name][rows].astype(np.float64), _EPS, 1 - _EPS)
        y = scored.labels[t.label][rows].astype(np.float64)
        out[t.name] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return out


def head_ap(tasks: Sequence[Task], scored) -> Dict[str, Dict[str, float]]:
    """{head: {source: exact AP of the head on that source's eval impressions}} (no positives: left out)."""
    out = {}
    for t in tasks:
        if t.name not in scored.predictions or t.label not in scored.labels:
            continue
        for i, source in enumerate(SOURCES):
            rows = scored.source == i
            y = scored.labels[t.label][rows]
            if rows.any() and y.sum() > 0:
                out.setdefault(t.name, {})[source] = float(average_precision(y, scored.predictions[t.name][rows]))
    return out


class TrainingBoard(tf.keras.callbacks.Callback):
    """Writes the scalars above at each evaluation. `selection` is the trainer's checkpoint-selection
    callback (it must run first: it scores the eval split and keeps `last_scored`, `selected`)."""

    def __init__(self, log_dir: str, selection, cfg, tasks: Sequence[Task], interval: int, total: int):
        super().__init__()
        self.log_dir, self.selection, self.cfg, self.tasks = log_dir, selection, cfg, tuple(tasks)
        self.interval, self.total = interval, total
        self._writers: Dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, run: str) -> tf.summary.SummaryWriter:
        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(os.path.join(self.log_dir, run))
        return self._writers[run]

    def step(self, epoch: int) -> int:
        return min((epoch + 1) * self.interval, self.total)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = self.step(epoch)
        with self._writer(TRAIN_RUN).as_default(step=step):
            for t in self.tasks:
                if f"loss_{t.name}" in logs:
                    tf.summary.scalar(f"loss/{t.name}", float(logs[f"loss_{t.name}"]))
            if "loss" in logs:
                tf.summary.scalar("loss/total", float(logs["loss"]))
        scored = getattr(self.selection, "last_scored", None)
        with self._writer(VALIDATION_RUN).as_default(step=step):
            if scored is not None:
                for head, value in head_losses(self.tasks, scored).items():
                    tf.summary.scalar(f"loss/{head}", value)
                for head, by_source in head_ap(self.tasks, scored).items():
                    for source, value in by_source.items():
                        tf.summary.scalar(f"ap/{head}/{source}", value)
            for source in SOURCES:
                key = f"val_stream_ap_{source}"
                if key in logs and logs[key] == logs[key]:
                    tf.summary.scalar(f"stream_ap/{source}", float(logs[key]))
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        selected: Optional[Dict] = getattr(self.selection, "selected", None)
        with self._writer(VALIDATION_RUN).as_default(step=selected["step"] if selected else 0):
            if selected:
                tf.summary.scalar("selected_step", selected["step"])
                tf.summary.text("selected_checkpoint", f"restored step {selected['step']} of {self.total}: eval "
                                "stream AP " + ", ".join(f"{s}={v:.4f}" for s, v in selected["eval_ap"].items()))
        # HParams: the run's values, with the selected checkpoint's eval stream AP per source as metrics
        with self._writer("").as_default(step=selected["step"] if selected else 0):
            hp.hparams(hparam_values(self.cfg))
            if selected:
                for source, value in selected.get("eval_ap_all_sources", selected["eval_ap"]).items():
                    if value == value:
                        tf.summary.scalar(f"hparams/eval_stream_ap_{source}", float(value))
        for w in self._writers.values():
            w.close()
        self._writers = {}


def write_trial(log_dir: str, trial_id: str, values: Dict[str, object], metrics: Dict[str, float]) -> str:
    """One Tuner trial as an HParams run `<log_dir>/trial_<id>`: its values and its metrics (score,
    eval stream AP per source), so TensorBoard's HParams tab compares the trials."""
    from tensorboard.plugins.hparams import api as hp

    path = os.path.join(log_dir, f"trial_{trial_id}")
    writer = tf.summary.create_file_writer(path)
    with writer.as_default(step=0):
        hp.hparams({k: v for k, v in values.items() if isinstance(v, (bool, int, float, str))}, trial_id=str(trial_id))
        for name, value in metrics.items():
            if value is not None and value == value:
                tf.summary.scalar(f"hparams/{name}", float(value))
    writer.close()
    return path
