"""The unified multi-task model: an encoder, one tower per task row, masked per-head losses.

Inputs: an embedding per categorical input (lists mean-pooled over their non-padding ids), the
numeric and Transform-derived inputs (core.fields.DERIVED: the candidate in the user's history /
follows, the history's share of the candidate's genre), and with `target_interactions` the
candidate podcast's embedding against the history and follows embeddings: masked mean and max of
their dot products, and DIN-style target attention over the history (keras Attention, the
candidate as query); optionally DLRM's pairwise dot products of all categorical embeddings
(`tfrs.layers.feature_interaction.DotInteraction`) and DCN-v2 cross layers (`tfrs.layers.dcn.Cross`)
on that input.
Encoder families (`ModelConfig.encoder_family`): shared-bottom (one MLP under every head), MMoE
(experts with a softmax gate per head) and PLE (one CGC level: shared experts plus each head's
own, a gate per head over both). A head's gate and own experts feed only that head, so the mask
keeps them out of reach of the sources that do not train it, as it does its tower.

Built on TensorFlow Recommenders: `compute_loss` sums the `tfrs.tasks.Ranking` loss of every
head, each weighted by that head's mask (the task table's `trained_by`). A masked-out example
contributes exactly zero loss and zero gradient to its head; each head's loss is the mean over
its unmasked examples in the batch, and zero (never NaN) when the batch has none.
"""
from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.config import PLE, SHARED_BOTTOM, ModelConfig
from core.fields import DERIVED_NAMES, FEATURES, LIST_LENGTH, OPTIONAL_NAMES, SOURCES, Transform
from core.tasks import Task
from models.preprocessing import PODCAST_VOCAB, model_inputs

CATEGORICAL_INPUTS = tuple((name, table) for name, table in model_inputs() if table)  # podcast table shared
NUMERIC_INPUTS = tuple(name for name, table in model_inputs() if not table)
LIST_INPUTS = tuple(f.name for f in FEATURES if f.transform == Transform.LIST)
CANDIDATE, HISTORY = "podcast_id", "user_history"  # the target and the list attended over


class MultiTaskModel(tfrs.Model):
    def __init__(self, cfg: ModelConfig, cardinalities: Dict[str, int], tasks: Sequence[Task]):
        super().__init__()
        self.cfg = cfg
        self.task_rows = tuple(tasks)
        self.embeddings = {}
        left_out = set(() if cfg.derived_inputs else DERIVED_NAMES) | set(() if cfg.optional_inputs else OPTIONAL_NAMES)
        self.categorical = tuple((n, t) for n, t in CATEGORICAL_INPUTS if n not in left_out)
        self.numeric = tuple(n for n in NUMERIC_INPUTS if n not in left_out)
        for name, table in self.categorical:
            if table not in self.embeddings:
                dim = cfg.list_embedding_dim if table == PODCAST_VOCAB else cfg.embedding_dim
                reg = tf.keras.regularizers.l2(cfg.embedding_l2) if cfg.embedding_l2 else None
                self.embeddings[table] = tf.keras.layers.Embedding(cardinalities[table], dim, name=f"emb_{table}",
                                                                   embeddings_regularizer=reg)
        def mlp(name):
            return tf.keras.Sequential(
                [layer for units in cfg.encoder_units
                 for layer in (tf.keras.layers.Dense(units, activation="relu"), tf.keras.layers.Dropout(cfg.dropout))],
                name=name)

        self.family = cfg.encoder_family
        self.crosses = [tfrs.layers.dcn.Cross(name=f"cross_{i}") for i in range(cfg.cross_layers)]
        self.dots = tfrs.layers.feature_interaction.DotInteraction(name="dot_interaction") \
            if cfg.dot_interaction else None
        # DotInteraction needs one width: podcast-table embeddings projected when theirs differs
        self.dot_projection = tf.keras.layers.Dense(cfg.embedding_dim, use_bias=False, name="dot_projection") \
            if cfg.dot_interaction and cfg.list_embedding_dim != cfg.embedding_dim else None
        self.attention = tf.keras.layers.Attention(use_scale=True, name="target_attention") \
            if cfg.target_interactions else None
        if self.family == SHARED_BOTTOM:
            self.encoder = mlp("shared_encoder")
        else:
            self.experts = [mlp(f"expert_{i}") for i in range(cfg.experts)]
            own = cfg.task_experts if self.family == PLE else 0
            self.task_experts = {t.name: [mlp(f"expert_{t.name}_{i}") for i in range(own)] for t in tasks}
            self.gates = {t.name: tf.keras.layers.Dense(cfg.experts + own, activation="softmax",
                                                        name=f"gate_{t.name}") for t in tasks}
        self.towers = {
            t.name: tf.keras.Sequential([tf.keras.layers.Dense(u, activation="relu") for u in cfg.tower_units]
                                        + [tf.keras.layers.Dense(1)], name=f"tower_{t.name}")
            for t in self.task_rows}
        self.ranking = {
            t.name: tfrs.tasks.Ranking(
                loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.SUM),
                metrics=[])
            for t in self.task_rows}
        # mask[task][source index] = 1.0 when that source trains that head
        self.masks = {t.name: tf.constant([1.0 if s in t.trained_by else 0.0 for s in SOURCES], tf.float32)
                      for t in self.task_rows}
        self.head_losses = {t.name: tf.keras.metrics.Mean(name=f"loss_{t.name}") for t in self.task_rows}

    def encoder_input(self, features: Dict[str, tf.Tensor]) -> tf.Tensor:
        """The concatenated input every encoder family reads."""
        parts, lists = [], {}
        for name, table in self.categorical:
            ids = features[name]
            emb = self.embeddings[table](ids)
            if name in LIST_INPUTS:  # masked mean over the padded list (id 0 = padding)
                present = tf.cast(tf.not_equal(ids, 0), tf.float32)[..., None]
                lists[name] = (emb, present)
                emb = tf.reduce_sum(emb * present, axis=1) / tf.maximum(tf.reduce_sum(present, axis=1), 1.0)
            parts.append(emb)
        if self.dots is not None:  # pairwise dots of the (pooled) categorical embeddings, DLRM-style
            tables = [table for _, table in self.categorical]
            same = [p if self.dot_projection is None or t != PODCAST_VOCAB else self.dot_projection(p)
                    for p, t in zip(parts, tables)]
            parts.append(self.dots(same))
        parts.append(tf.stack([tf.cast(features[n], tf.float32) for n in self.numeric], axis=-1))
        if self.attention is not None:
            parts.extend(self.target_interactions(self.embeddings[PODCAST_VOCAB](features[CANDIDATE]), lists))
        x = tf.concat(parts, axis=-1)
        x0 = x
        for cross in self.crosses:
            x = cross(x0, x)
        return x

    def target_interactions(self, candidate: tf.Tensor, lists) -> list:
        """The candidate's [batch, d] embedding against each list's [batch, L, d] embeddings."""
        out = []
        for name in LIST_INPUTS:
            emb, present = lists[name]
            dots = tf.reduce_sum(emb * candidate[:, None, :], axis=-1)  # [batch, L]
            present = present[..., 0]
            n = tf.reduce_sum(present, axis=1)
            mean = tf.reduce_sum(dots * present, axis=1) / tf.maximum(n, 1.0)
            best = tf.reduce_max(tf.where(present > 0, dots, -1e9), axis=1) * tf.cast(n > 0, tf.float32)
            out.append(tf.stack([mean, best], axis=-1))
        emb, present = lists[HISTORY]
        attended = self.attention([candidate[:, None, :], emb], mask=[None, present[..., 0] > 0])[:, 0, :]
        has_history = tf.cast(tf.reduce_sum(present, axis=[1, 2]) > 0, tf.float32)[:, None]
        out.append(attended * has_history)  # an empty history attends to nothing
        return out

    def encode(self, features: Dict[str, tf.Tensor], training: bool = False) -> Dict[str, tf.Tensor]:
        """Each head's representation: {task name: [batch, units]}."""
        x = self.encoder_input(features)
        if self.family == SHARED_BOTTOM:
            shared = self.encoder(x, training=training)
            return {name: shared for name in self.towers}
        experts = [e(x, training=training) for e in self.experts]
        out = {}
        for name in self.towers:
            stack = tf.stack(experts + [e(x, training=training) for e in self.task_experts[name]], axis=1)
            out[name] = tf.reduce_sum(stack * self.gates[name](x)[..., None], axis=1)  # [batch, units]
        return out

    # The model's Python has no control flow on tensors, so AutoGraph has nothing to convert: left
    # on, it transpiled some 4,000 functions (every layer, loss and metric call) while tracing the
    # training step, 45 s of each training's first step on 2 cores (bench: 9 s without, with the
    # optimizer built before the first step, models/trainer.py). The graph is the same.
    @tf.autograph.experimental.do_not_convert
    def call(self, features: Dict[str, tf.Tensor], training: bool = False) -> Dict[str, tf.Tensor]:
        """Logits, one [batch] tensor per head."""
        encoded = self.encode(features, training=training)
        return {name: tf.squeeze(tower(encoded[name], training=training), -1) for name, tower in self.towers.items()}

    def head_weights(self, source: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Per-head example weights: mask / number of unmasked examples in the batch."""
        out = {}
        for t in self.task_rows:
            mask = tf.gather(self.masks[t.name], source)
            out[t.name] = mask / tf.maximum(tf.reduce_sum(mask), 1.0)
        return out

    @tf.autograph.experimental.do_not_convert
    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        logits = self(features, training=training)
        weights = self.head_weights(features["source"])
        total = tf.constant(0.0)
        for t in self.task_rows:
            labels = tf.cast(features[t.label], tf.float32)
            loss = self.ranking[t.name](labels=labels[:, None], predictions=logits[t.name][:, None],
                                        sample_weight=weights[t.name][:, None], training=training)
            self.head_losses[t.name].update_state(loss)
            total += t.weight * loss
        # Gradients are summed across replicas: scale so a replica's loss is its share of the mean.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / replicas


def build_model(cfg: ModelConfig, cardinalities: Dict[str, int], tasks: Sequence[Task]) -> MultiTaskModel:
    model = MultiTaskModel(cfg, cardinalities, tasks)
    average = dict(use_ema=True, ema_momentum=cfg.weight_average) if cfg.weight_average else {}
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate, **average))
    return model


def dummy_features(batch: int = 2) -> Dict[str, tf.Tensor]:
    """A zero batch of every transformed input, to build the model's weights."""
    out = {name: tf.zeros([batch], tf.int64) for name, _ in CATEGORICAL_INPUTS}
    out.update({name: tf.zeros([batch, LIST_LENGTH], tf.int64) for name in LIST_INPUTS})
    out.update({name: tf.zeros([batch], tf.float32) for name in NUMERIC_INPUTS})
    return out
