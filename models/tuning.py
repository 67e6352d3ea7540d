"""Hyperparameter tuning on validation AP, for the TFX Tuner component (`tuner_fn`) and the study.

The search space (each default is the pipeline's ModelConfig, and the first trial is exactly
that config, so tuning can only keep or improve the eval objective; the next ones are that config
with another source mix and with the optional attributes flipped, `_DefaultsFirst`):
- `source_alpha`: each source's share of a batch is proportional to n_source ** alpha, from 0
  (the seed's 50/50) to 1 (the natural mix, the `unified` preset's); only for models trained on both sources;
- `learning_rate`, `embedding_dim`, `list_embedding_dim`, `encoder_units`, `dropout`;
- the encoder family (`encoder_family`: shared-bottom, MMoE, PLE) and the interaction options
  (`target_interactions`, `dot_interaction`, `cross_layers`), and `embedding_l2`.
The search is KerasTuner's Bayesian optimisation (a Gaussian-process oracle) after its starting
points; every trial is reported (values, eval AP per source, score, restored step, seconds).
The objective is `models.selection.tuning_score`: eval stream AP per source relative to a
`promotions_baseline` reference at the trials' step budget, never preferring a model that loses a
source beyond the tolerance. Under the pipeline's `ReferenceTuner` (`models/tuner_executor.py`) the
reference is trained once at the baseline's full budget and exported for `baseline_trainer`, and the
trials compare with the evaluation a training of their budget would have restored from it (its
evaluations alone: the trials then choose their checkpoint without refinement too). Trials are short (`steps`), stop
early, and read the train and eval splits from memory (read once per tuning run).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Dict, Optional, Sequence

import keras_tuner
import tensorflow as tf

from core.fields import SOURCES
from core.tasks import TASKS, Task
from models.config import (BALANCED, ENCODER_FAMILIES, REFERENCE_DIR_KEY, REFERENCE_FILE, TUNING_KEY, EncoderFamily,
                           ModelConfig, TuningConfig, preset)
from models.sampling import MemoryExamples, eval_dataset, examples_decoder, load_examples
from models.selection import choose_checkpoint, relative_ap, tuning_score
from models.tuning_log import CondensedTunerOutput, tensorboard_dir

REFERENCE_PRESET = "promotions_baseline"
OBJECTIVE = "score"


def search_space(cfg: ModelConfig) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    if set(cfg.train_sources) == set(SOURCES) and cfg.mix == BALANCED and cfg.source_shares is None:
        hp.Float("source_alpha", 0.0, 1.0, step=0.25, default=cfg.source_alpha)
    hp.Choice("learning_rate", sorted({3e-4, 1e-3, 3e-3, cfg.learning_rate}), default=cfg.learning_rate)
    hp.Choice("embedding_dim", sorted({8, 16, 32, cfg.embedding_dim}), default=cfg.embedding_dim)
    hp.Choice("list_embedding_dim", sorted({8, 16, 32, cfg.list_embedding_dim}), default=cfg.list_embedding_dim)
    units = ",".join(str(u) for u in cfg.encoder_units)
    hp.Choice("encoder_units", sorted({"128,64", "256,128", "512,256", units}), default=units)
    hp.Choice("dropout", sorted({0.0, 0.1, 0.3, cfg.dropout}), default=cfg.dropout)
    hp.Choice("encoder_family", list(ENCODER_FAMILIES), default=EncoderFamily(cfg.encoder_family).value)
    hp.Boolean("target_interactions", default=cfg.target_interactions)
    hp.Boolean("optional_inputs", default=cfg.optional_inputs)
    hp.Choice("cross_layers", sorted({0, 1, 2, cfg.cross_layers}), default=cfg.cross_layers)
    hp.Boolean("dot_interaction", default=cfg.dot_interaction)
    hp.Choice("embedding_l2", sorted({0.0, 1e-6, 1e-5, cfg.embedding_l2}), default=cfg.embedding_l2)
    return hp


class _DefaultsFirst(keras_tuner.oracles.BayesianOptimizationOracle):
    """Bayesian optimisation whose first trials are the space's defaults (the untuned config); then,
    when the source mix is searched, the defaults with another mix: the natural mix (source_alpha 1)
    when the defaults are not natural, else the midpoint of the range (0.5, half way to the seed's
    50/50), so even a short search weighs the majority source against the minority one (measured on
    rare-ads KuaiRand: 50/50 batches lost 4-5% promotions eval AP; on the default logs 14.9% test ads
    AP); then the defaults with the optional attributes as inputs flipped (real attributes on KuaiRand,
    noise in the synthetic world: a feature set is chosen on eval AP, not assumed)."""

    def _starting_points(self):
        defaults = self.hyperparameters.copy().values
        points = [defaults]
        if "source_alpha" in defaults:
            points.append(dict(defaults, source_alpha=1.0 if defaults["source_alpha"] != 1.0 else 0.5))
        if "optional_inputs" in defaults:
            points.append(dict(defaults, optional_inputs=not defaults["optional_inputs"]))
        return points

    def populate_space(self, trial_id):
        points = self._starting_points()
        if len(self.trials) < len(points):
            return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": points[len(self.trials)]}
        return super().populate_space(trial_id)


def _selected(model) -> Dict:
    """{"step", "eval_ap_all_sources"} of the checkpoint a finished training restored, as plain numbers."""
    return {"step": int(model.selected["step"]),
            "eval_ap_all_sources": {s: float(v) for s, v in model.selected["eval_ap_all_sources"].items()}}


class SourceTuner(CondensedTunerOutput, keras_tuner.engine.base_tuner.BaseTuner):
    """Each trial trains `base` with the trial's values for `tuning.steps` steps (early-stopped, the
    checkpoint chosen per source) and scores its eval stream AP per source against the reference."""

    def __init__(self, base: ModelConfig, tuning: TuningConfig, data: "TrialData", table: Sequence[Task],
                 directory: str, progress=print, reference: Optional[Dict[str, float]] = None,
                 reference_export: Optional["ReferenceExport"] = None):
        oracle = _DefaultsFirst(objective=keras_tuner.Objective(OBJECTIVE, "max"), max_trials=tuning.trials,
                                hyperparameters=search_space(base), seed=tuning.seed,
                                num_initial_points=max(3, tuning.trials // 4))
        super().__init__(oracle, directory=directory, project_name="podcast_mtl", overwrite=True)
        self.base, self.tuning, self.data, self.table, self.progress = base, tuning, data, tuple(table), progress
        self.reference = reference  # the reference model's eval AP per source, trained on first use
        self.reference_export = reference_export
        # whether the trials refine their checkpoint choice (`checkpoint_refine_steps`): as their reference
        # did; one read off a longer training's evaluations did not, so neither do they (a choice among more
        # checkpoints would favour them, and refinement costs each trial its scorings)
        self.refine_trials = True
        self.trial_log = []

    def _train(self, cfg: ModelConfig):
        from models.trainer import train

        model = train(cfg, self.data.tft_output, None, None, table=self.table, verbose=False,
                      examples=self.data.examples, counts=self.data.counts, eval_data=self.data.eval_batches)
        selected = dict(_selected(model), refined=[int(r["step"]) for r in model.selected["refined"]])
        tf.keras.backend.clear_session()
        return selected

    def reference_ap(self) -> Dict[str, float]:
        if self.reference is None:
            t0 = time.time()
            if self.reference_export is not None:
                self.reference = self._train_exported_reference()
            else:
                cfg = preset(REFERENCE_PRESET, base=self.base).replace(train_steps=self.tuning.steps)
                self.reference = self._train(cfg)["eval_ap_all_sources"]
            self.progress(f"  tuning reference {REFERENCE_PRESET}: eval stream AP " +
                          " ".join(f"{s}={v:.4f}" for s, v in self.reference.items()) + f" ({time.time() - t0:.0f} s)")
        return self.reference

    def _train_exported_reference(self):
        """The reference trained once at the promotions baseline's full budget and exported (the
        pipeline's baseline Trainer serves it instead of training it again, `models/trainer.py`);
        its AP for the trials is that of the evaluation a training of the trials' budget would have
        restored: `choose_checkpoint` over its evaluations up to `tuning.steps` (the training is the
        same up to there: same seed, batches and learning rate; early stopping and the moving average
        look only backwards). Refinement's extra scorings are not among them. When the trials'
        budget is the baseline's, the reference is this training's own choice, refinement included;
        else, when that budget is no multiple of the evaluation interval (their evaluations fall
        elsewhere), a reference of their budget is trained as well."""
        from models.trainer import export_trained, train

        cfg = preset(REFERENCE_PRESET, base=self.base)
        out = self.reference_export
        model = train(cfg, self.data.tft_output, None, None, table=self.table, verbose=True,
                      examples=self.data.examples, counts=self.data.counts, eval_data=self.data.eval_batches,
                      log_dir=os.path.join(out.folder, "logs"))
        export_trained(model, cfg, self.data.tft_output, out.eval_files, os.path.join(out.folder, "Format-Serving"))
        early = [e for e in model.evaluations if e["step"] <= self.tuning.steps]
        short = False  # whether a reference of the trials' budget had to be trained as well
        if cfg.train_steps == self.tuning.steps:  # the trials' budget: this very training is their reference
            pick = _selected(model)
        elif early and self.tuning.steps % cfg.eval_every_steps == 0:
            pick = early[choose_checkpoint([{s: e["eval_ap_all_sources"][s] for s in cfg.train_sources}
                                            for e in early], cfg.checkpoint_tolerance)]
            self.refine_trials = False  # read off its evaluations alone
        else:  # the trials evaluate at other steps than this training did: a reference of their budget
            tf.keras.backend.clear_session()
            short = True
            pick = self._train(cfg.replace(train_steps=self.tuning.steps))  # {"step", "eval_ap_all_sources"}
        with tf.io.gfile.GFile(os.path.join(out.folder, REFERENCE_FILE), "w") as f:
            f.write(json.dumps({"transform_graph": out.transform_graph, "model_config": cfg.to_json(),
                                "restored_step": int(model.selected["step"]), "tuning_steps": self.tuning.steps,
                                "tuning_reference_step": pick["step"],
                                "tuning_reference_eval_ap": pick["eval_ap_all_sources"]}, indent=1))
        self.progress(f"  tuning reference: trained at the baseline's budget (restored step {model.selected['step']}, "
                      "exported for the baseline Trainer); the trials compare with " +
                      (f"a reference of their budget ({self.tuning.steps} steps), trained too" if short else
                       f"its step {pick['step']}"))
        tf.keras.backend.clear_session()
        return {s: float(v) for s, v in pick["eval_ap_all_sources"].items()}

    def run_trial(self, trial, *args, **kwargs):
        reference = self.reference_ap()
        t0 = time.time()
        cfg = self.base.with_hyperparameters(trial.hyperparameters.values).replace(train_steps=self.tuning.steps)
        if not self.refine_trials:
            cfg = cfg.replace(checkpoint_refine_steps=0)
        selected = self._train(cfg)
        ap = selected["eval_ap_all_sources"]
        score = tuning_score(ap, reference, self.tuning.tolerance)
        rel = relative_ap(ap, reference)
        self.trial_log.append({"trial": trial.trial_id, "values": dict(trial.hyperparameters.values), "score": score,
                               "eval_ap": ap, "relative_ap": rel, "step": selected["step"],
                               "refined_steps": selected["refined"]})
        self.progress(f"  trial {len(self.trial_log)}/{self.tuning.trials}: score {score:.4f}, eval stream AP " +
                      " ".join(f"{s}={ap[s]:.4f} ({rel[s] - 1:+.1%})" for s in SOURCES) +
                      f", {json.dumps(trial.hyperparameters.values)} ({time.time() - t0:.0f} s)")
        return {OBJECTIVE: score, **{f"eval_ap_{s}": ap[s] for s in SOURCES}}

    def save_model(self, trial_id, model, step=0):  # trials keep no model: the Trainer trains the best
        pass

    def load_model(self, trial):
        raise NotImplementedError("trials keep no model")


@dataclasses.dataclass(frozen=True)
class ReferenceExport:
    """Where the Tuner exports its reference (`<folder>/Format-Serving`, its logs and record beside)
    and what it was trained on, so that the baseline Trainer can tell it is its own training."""
    folder: str
    transform_graph: str
    eval_files: Sequence[str]


@dataclasses.dataclass
class TrialData:
    """The train and eval splits in memory, shared by every trial of one tuning run."""
    tft_output: object
    examples: MemoryExamples
    counts: Dict[str, int]
    eval_batches: list

    @classmethod
    def load(cls, tft_output, train_files, eval_files, max_eval_examples: int) -> "TrialData":
        examples, counts = load_examples(train_files, examples_decoder(tft_output, train_files))
        eval_data = eval_dataset(eval_files, examples_decoder(tft_output, eval_files), max_examples=max_eval_examples)
        return cls(tft_output, examples, counts, list(eval_data))


def tune(base: ModelConfig, tuning: TuningConfig, data: TrialData, directory: str, table: Sequence[Task] = TASKS,
         progress=print, reference: Optional[Dict[str, float]] = None) -> Dict:
    """Runs the search in-process; returns {"values": best values, "trials": [...], "reference": {...}}.
    `reference`: the reference model's eval AP per source when already known (same data and budget)."""
    tuner = SourceTuner(base, tuning, data, table, directory, progress, reference)
    tuner.search(verbose=0)
    best = tuner.get_best_hyperparameters()[0]
    return {"values": dict(best.values), "trials": tuner.trial_log, "reference": tuner.reference,
            "hyperparameters": best.get_config()}


def tuner_fn(fn_args):
    """TFX Tuner entry point: the base config and the tuning budget come in custom_config."""
    import tensorflow_transform as tft
    from tfx.components.tuner.component import TunerFnResult

    from models.trainer import config_from_custom

    base = config_from_custom(fn_args.custom_config)
    tuning = TuningConfig.from_json(fn_args.custom_config[TUNING_KEY]) if fn_args.custom_config and \
        TUNING_KEY in fn_args.custom_config else TuningConfig()
    if fn_args.train_steps:
        tuning = dataclasses.replace(tuning, steps=int(fn_args.train_steps))
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    t0 = time.time()
    data = TrialData.load(tft_output, fn_args.train_files, fn_args.eval_files, base.max_eval_examples)
    print(f"tuning: {tuning.trials} trials of {tuning.steps} steps; data in memory in {time.time() - t0:.0f} s "
          f"({sum(data.counts.values()):,} training examples: " +
          ", ".join(f"{s} {n:,}" for s, n in data.counts.items()) + ")", flush=True)
    folder = (fn_args.custom_config or {}).get(REFERENCE_DIR_KEY)
    export = ReferenceExport(folder, fn_args.transform_graph_path, fn_args.eval_files) if folder else None
    tuner = SourceTuner(base, tuning, data, TASKS, os.path.join(fn_args.working_dir or ".", "tuner"),
                        progress=lambda line: print(line, flush=True), reference_export=export)
    tuner.tensorboard_dir = tensorboard_dir(fn_args.working_dir or ".")
    return TunerFnResult(tuner=tuner, fit_kwargs={"verbose": 0})

