"""Model and training configuration, and the named presets of the ablation study."""
from __future__ import annotations

import dataclasses
import enum
import json
from typing import Dict, Optional, Tuple

from core.fields import SOURCES
from core.tasks import TASKS, Task

MODEL_CONFIG_KEY = "model_config"  # the Trainer's custom_config key holding ModelConfig.to_json()
# the baseline Trainer's custom_config key: given a base_model (the incumbent resolved in the DAG),
# serve it as is instead of training (`models/trainer.run_fn`, `pipeline/pipeline.py`)
INCUMBENT_KEY = "serve_incumbent"
# beside Format-Serving/ in the baseline Trainer's Model: what it served as is, when it did not train
INCUMBENT_FILE = "incumbent.json"  # the incumbent resolved in the DAG
REFERENCE_FILE = "tuner_reference.json"  # the Tuner's reference of the same run (models/tuning.py)
TUNING_KEY = "tuning"  # the Tuner's custom_config key holding TuningConfig.to_json()
# the Tuner's custom_config key, set by `models.tuner_executor.ReferenceTunerExecutor`: the folder to
# export the Tuner's reference to (`models/tuning.py`)
REFERENCE_DIR_KEY = "reference_dir"
# the key of the Tuner's best hyperparameters naming that exported reference (`models/trainer.py:run_fn`)
REFERENCE_MODEL_KEY = "reference_model"


class Mix(str, enum.Enum):
    """How a training batch mixes the sources."""
    BALANCED = "balanced"  # one stream per source, shares from `source_alpha` / `source_shares`
    NATURAL = "natural"  # the logged mix


class Strategy(str, enum.Enum):
    """The `tf.distribute` strategy of training (models/trainer.py)."""
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi_worker"  # reads TF_CONFIG


class EncoderFamily(str, enum.Enum):
    """The encoder under the heads (models/model.py): one encoder under every head, or task-gated experts."""
    SHARED_BOTTOM = "shared_bottom"
    MMOE = "mmoe"
    PLE = "ple"


BALANCED = Mix.BALANCED
NATURAL = Mix.NATURAL
SHARED_BOTTOM, MMOE, PLE = EncoderFamily.SHARED_BOTTOM, EncoderFamily.MMOE, EncoderFamily.PLE
ENCODER_FAMILIES = tuple(f.value for f in EncoderFamily)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    # what is trained
    heads: Tuple[str, ...] = tuple(t.name for t in TASKS)  # subset of the task table, in its order
    train_sources: Tuple[str, ...] = SOURCES
    use_mask: bool = True  # False: every head is trained by every training source
    mix: Mix = Mix.BALANCED  # BALANCED (one stream per source, shares below) or NATURAL (the logged mix)
    # BALANCED shares: each source's share of a batch is proportional to n_source ** source_alpha
    # (temperature sampling over the training split's counts): 0 = equal shares (the seed's 50/50),
    # 1 = the natural mix. Explicit `source_shares` override it.
    source_alpha: float = 0.0
    source_shares: Optional[Tuple[Tuple[str, float], ...]] = None
    cache_sources: Tuple[str, ...] = ("ads",)  # minority streams kept in memory after one read
    # sizes
    embedding_dim: int = 16
    list_embedding_dim: int = 16
    encoder_units: Tuple[int, ...] = (256, 128)
    tower_units: Tuple[int, ...] = (64,)
    dropout: float = 0.1
    # encoder family: SHARED_BOTTOM (one MLP of `encoder_units` under every head), MMOE (`experts`
    # MLPs of `encoder_units`, a softmax gate per head over them) or PLE (one CGC level: `experts`
    # shared MLPs plus `task_experts` of each head's own, a gate per head over the shared and its own)
    encoder_family: EncoderFamily = EncoderFamily.SHARED_BOTTOM
    experts: int = 3
    task_experts: int = 1
    # target-aware interactions in the model (the Transform-derived inputs of core.fields.DERIVED
    # are always inputs): dot products of the candidate podcast's embedding with the history and
    # follows embeddings (masked mean and max) and DIN-style target attention over the history
    target_interactions: bool = True
    derived_inputs: bool = True  # False: the Transform-derived inputs are left out (the seed's inputs)
    # the optional attributes (core.fields.OPTIONAL_NAMES: activity level, following / follower ranges,
    # episode duration and format) as inputs. The Tuner tries both (models/tuning.py): on KuaiRand they
    # are real and help; in the synthetic world they are noise (datagen/README.md) and cost AP
    optional_inputs: bool = True
    cross_layers: int = 0  # DCN-v2 cross layers (tfrs.layers.dcn.Cross) on the encoder's input
    # DLRM's dot interaction (tfrs.layers.feature_interaction.DotInteraction): every pairwise dot
    # product of the categorical embeddings (user x candidate podcast among them) as encoder inputs;
    # podcast-table embeddings are projected to embedding_dim when list_embedding_dim differs. On by
    # default: default logs, 3 seeds, test AP unified (natural mix) 0.2186 -> 0.2223 promotions,
    # 0.1499 -> 0.1526 ads; promotions_baseline 0.2191 -> 0.2231 (docs/results/model-peers.md)
    dot_interaction: bool = True
    embedding_l2: float = 0.0  # L2 penalty on embedding rows used in a batch
    # optimisation; training length is in steps (batches), so variants do equal work
    learning_rate: float = 1e-3
    # Polyak averaging: with a momentum m in (0, 1), Adam keeps an exponential moving average of the
    # weights (`use_ema`), and every evaluation, the checkpoint choice and the exported model use the
    # average while training goes on from the trained weights. 0: off
    weight_average: float = 0.0
    batch_size: int = 1024
    train_steps: int = 1500
    eval_every_steps: int = 100  # ads overfit within a few hundred balanced steps: check often
    # stop when no source's eval stream AP has reached a new best for this many evaluations. Not 2:
    # ads peak within a few hundred steps and promotions later, and with 2 the training ended before
    # promotions peaked in 2 of 3 seeds (default logs, unified, natural mix, 3 seeds: test AP
    # promotions 0.2160 -> 0.2186, ads 0.1467 -> 0.1499; docs/results/model-peers.md). 3, not 4:
    # the same restored checkpoint in 9 of 9 seeds (default logs, KuaiRand default and rare-ads
    # pairings), 100 steps less of every full training (docs/results/performance.md)
    early_stopping_patience: int = 3
    # a new best must beat the source's earlier best by more than this (relative) to extend the
    # training: in two of four reference trainings of 2026-12-08's `make run`s the promotions eval AP
    # "improved" by 0.0001 (0.04%) at step 600 over step 400 and trained 200 steps more (45 s) for
    # an equal checkpoint (docs/results/performance.md); 0.2% is far below the seeds' spread (~1%)
    early_stopping_min_delta: float = 0.002
    # restored checkpoint: the best mean relative AP among evaluations where every source is within
    # this fraction of its own best eval AP in the training (else the best worst-source ratio)
    checkpoint_tolerance: float = 0.01
    # checkpoint refinement: between two evaluations the weights are kept every this many steps
    # (only near the best evaluation so far), and at the end of the training those within one
    # interval of the chosen evaluation are scored too and the choice above is made among all of
    # them. The early-stopping decisions stay at `eval_every_steps`. 0 (or a value that does not
    # divide `eval_every_steps`): off
    checkpoint_refine_steps: int = 25
    max_eval_examples: int = 100_000
    shuffle_buffer: int = 20_000  # file path only; in memory every pass is fully shuffled
    # a training split of at most this many examples is read once into memory (about 0.5 KB an
    # example with the default features: 1 GB at 2 M) and batched with numpy (models/sampling.py,
    # MemoryExamples); a larger one streams from the files. 0 = always from the files
    memory_max_examples: int = 2_000_000
    seed: int = 0
    strategy: Strategy = Strategy.DEFAULT  # tf.distribute

    # warm start from the newest pushed model under this folder (the serving folder); "" = cold start
    warm_start_dir: str = ""

    def __post_init__(self):
        # the enums from their JSON form (plain strings); a str enum compares equal to its value
        for name, kind in (("mix", Mix), ("strategy", Strategy), ("encoder_family", EncoderFamily)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                raise ValueError(f"{name} must be one of {[k.value for k in kind]}, got {value!r}") from None
        unknown = set(self.train_sources) - set(SOURCES)
        if unknown or not self.train_sources:
            raise ValueError(f"train_sources must be a non-empty subset of {SOURCES}, got {self.train_sources}")
        if not self.heads:
            raise ValueError("a model needs at least one head")
        if self.experts < 1 or self.task_experts < 0 or self.cross_layers < 0:
            raise ValueError(f"experts >= 1, task_experts >= 0 and cross_layers >= 0 expected, got "
                             f"{self.experts}, {self.task_experts}, {self.cross_layers}")
        if not 0.0 <= self.source_alpha <= 1.0:
            raise ValueError(f"source_alpha must be in [0, 1], got {self.source_alpha}")
        if not 0.0 <= self.weight_average < 1.0:
            raise ValueError(f"weight_average must be in [0, 1), got {self.weight_average}")

    def tasks(self, table: Tuple[Task, ...] = TASKS) -> Tuple[Task, ...]:
        """The task rows this config trains, with the mask applied or lifted."""
        names = {t.name for t in table}
        missing = [h for h in self.heads if h not in names]
        if missing:
            raise ValueError(f"heads {missing} are not in the task table {sorted(names)}")
        rows = tuple(t for t in table if t.name in self.heads)
        if not self.use_mask:
            rows = tuple(dataclasses.replace(t, trained_by=SOURCES) for t in rows)
        return rows

    def shares(self, counts: Optional[Dict[str, int]] = None) -> Dict[str, float]:
        """Each training source's share of a balanced batch; `counts` (training examples per source)
        are needed only for 0 < source_alpha."""
        if self.source_shares is not None:
            weights = {s: w for s, w in self.source_shares if s in self.train_sources}
        elif self.source_alpha == 0.0:
            weights = {s: 1.0 for s in self.train_sources}
        else:
            if counts is None:
                raise ValueError("source_alpha > 0 needs the training split's counts per source")
            weights = {s: float(max(counts.get(s, 0), 1)) ** self.source_alpha for s in self.train_sources}
        total = sum(weights.values())
        return {s: w / total for s, w in weights.items()}

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @property
    def natural_mix(self) -> bool:
        """True when batches follow the logged mix: NATURAL, one training source, or BALANCED with
        source_alpha 1 (shares proportional to the counts) and no explicit shares."""
        return (self.mix == Mix.NATURAL or len(self.train_sources) == 1
                or (self.source_shares is None and self.source_alpha == 1.0))

    def mix_description(self) -> str:
        """The source mix in words, for console lines: "natural mix", "equal shares per source",
        "balanced mix (source_alpha 0.5)" or the explicit shares."""
        if self.natural_mix:
            return "natural mix"
        if self.source_shares is not None:
            return "shares " + ", ".join(f"{s} {w:g}" for s, w in self.source_shares)
        if self.source_alpha == 0.0:
            return "equal shares per source"
        return f"balanced mix (source_alpha {self.source_alpha:g})"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        raw = json.loads(text)
        return cls(**{k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                      for k, v in raw.items()})

    def with_hyperparameters(self, values: Optional[Dict]) -> "ModelConfig":
        """This config with tuned values (a KerasTuner HyperParameters' `values`) applied; names
        that are not ModelConfig fields are ignored, "a,b" strings become int tuples."""
        if not values:
            return self
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for name, value in values.items():
            if name not in fields:
                continue
            if isinstance(value, str) and name.endswith("_units"):
                value = tuple(int(v) for v in value.split(","))
            changes[name] = value
        return self.replace(**changes)


@dataclasses.dataclass(frozen=True)
class TuningConfig:
    """The budget of a hyperparameter search on validation AP (models/tuning.py)."""
    trials: int = 3  # trials of the search, the first being the model config's own values
    steps: int = 300  # training steps per trial (and for the reference model), early-stopped
    # relative eval AP a source may lose against the reference: none, stricter than the gate's 1%,
    # so that test-split noise does not turn a tuned model's small eval loss into a refused push
    tolerance: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.trials < 0 or self.steps <= 0 or not 0 <= self.tolerance < 1:
            raise ValueError(f"tuning: trials >= 0, steps > 0 and tolerance in [0, 1) expected, got {self}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TuningConfig":
        return cls(**json.loads(text))


_ANCILLARY = ("click", "like", "follow")

PRESET_HELP: Dict[str, str] = {
    "promotions_baseline": "Promotions baseline (stream + ancillary heads)",
    "promotions_stream_only": "Promotions stream-head only",
    "ads_only": "Ads-only model",
    "ads_only_ancillary": "Ads-only model + ancillary heads",
    "unified": "Unified promotions + ads 5-task MTL",
    "unified_no_mask": "Unified, no loss mask",
    "unified_balanced": "Unified, the seed's 50/50 source-balanced batches",
    "pooled_stream_only": "Pooled data, one stream head (control)",
}

# MMoE (3 experts of 256-128), DCN-v2 cross layers, 8-d history/follows embeddings and a higher
# learning rate: the best of 16 trials of the Tuner's search space (trial 8 of docs/results/model-peers.md's
# tuning-budget table) with MMoE instead of its PLE (3 shared experts + 1 per head). 3 seeds in memory:
# the same test AP with the Tuner's usual mix (source_alpha 1: 0.2243 / 0.1579 against PLE's 0.2239 / 0.1593),
# 1.2% / 2.7% below it with the natural mix; training ~35% faster (a training step 66 against 102 ms), which
# keeps `make run` within issue 21's time limit (PLE: +32%). The Tuner starts here and can choose PLE.
# Polyak averaging (momentum 0.99): at this learning rate the eval AP jumps by 1-2% between
# evaluations and falls at each new pass over the split; the average is smooth. Default logs, 3
# seeds in memory: test AP 0.2203 / 0.1587 -> 0.2269 / 0.1614 (the promotions baseline built on it
# 0.2242 / 0.1352 -> 0.2269 / 0.1376); KuaiRand default pairing 0.5003 / 0.5527 -> 0.5000 / 0.5531
# (docs/results/model-peers.md, "Weight averaging").
# The natural source mix (source_alpha 1: each batch draws a source in proportion to its training
# examples, one stream per source): what every Tuner run chose, on synthetic and KuaiRand logs; the
# seed's 50/50 batches (source_alpha 0, the preset `unified_balanced`) at full budget on `make run`'s
# Transform output, 3 seeds: 0.2183 / 0.1393 against 0.2260 / 0.1600 (docs/results/ablation-default.md).
UNIFIED = dict(encoder_family=EncoderFamily.MMOE, learning_rate=3e-3, list_embedding_dim=8, cross_layers=2,
               weight_average=0.99, source_alpha=1.0)

PRESETS: Dict[str, Dict] = {
    # promotions-only production baseline: stream + ancillary heads on promotion impressions
    "promotions_baseline": dict(heads=("promo_stream",) + _ANCILLARY, train_sources=("promotions",), mix=NATURAL),
    "promotions_stream_only": dict(heads=("promo_stream",), train_sources=("promotions",), mix=NATURAL),
    "ads_only": dict(heads=("ad_stream",), train_sources=("ads",), mix=NATURAL),
    "ads_only_ancillary": dict(heads=("ad_stream",) + _ANCILLARY, train_sources=("ads",), mix=NATURAL),
    # the task table, masked, with UNIFIED's values (above): one stream per source, the natural mix
    "unified": dict(UNIFIED),
    "unified_no_mask": dict(UNIFIED, use_mask=False),
    "unified_balanced": dict(UNIFIED, source_alpha=0.0),  # the seed's source-balanced sampling
    # control: all impressions pooled into one stream head, no ancillary heads, no mask, natural mix
    "pooled_stream_only": dict(heads=("ad_stream",), use_mask=False, mix=NATURAL),
}


def preset(name: str, base: Optional[ModelConfig] = None, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return (base or ModelConfig()).replace(**{**PRESETS[name], **overrides})  # overrides win
