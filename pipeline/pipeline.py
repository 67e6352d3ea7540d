"""`create_pipeline(config)`: the TFX DAG, in one place.

TemporalExampleGen [-> TemporalWindow] -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> ValidationGate
-> Transform -> [Tuner] -> Trainer -> Evaluator (candidate vs baseline) -> Pusher.

The baseline, resolved by the DAG itself at run time, the same on every runner (local, schedule,
Airflow, Vertex / Kubeflow v2):
* `baseline_model` given (`--baseline-model`): that model, brought in by an Importer;
* else `incumbent_resolver`, TFX's Resolver with `LatestBlessedModelStrategy` over this pipeline's
  Trainer models and the Pusher's `push_blessing` (blessed only when the push was verified), i.e.
  the latest model that reached the serving folder whole, feeds `baseline_trainer` as its
  `base_model`: with one, `baseline_trainer` serves it as is (no training, `models.trainer.run_fn`);
  with none (nothing pushed yet), the promotions baseline trained on the same data: with a Tuner,
  the Tuner's reference (`ReferenceTuner` trains it at the baseline's full budget, scores its trials
  against it, and `baseline_trainer` serves it as is), else trained by `baseline_trainer`. The Evaluator
  always reads `baseline_trainer`'s model. (The Kubeflow V2 compiler turns the resolver into two
  MLMD queries on `tfx.ModelBlessing` blessed=1 and its model, without the producer filter: there a
  blessed model whose push failed would be resolved too, see docs/production.md.)

Two shapes of the input, one switch (`PipelineConfig.daily_spans`):
* folder (default, `podcast-mtl run`): one TemporalExampleGen execution reads every day partition
  the split picks and writes train / eval / test;
* daily spans (`podcast-mtl schedule`): each TemporalExampleGen execution ingests one day partition
  as a TFX span (date spec `date={YYYY}-{MM}-{DD}`, span = days since 1970-01-01; the newest day,
  or a given day for backfill); TFX's `rolling_range` resolver function picks the newest version
  of each of the latest `window_days` spans from MLMD (every run's, not only this run's), and
  TemporalWindow splits those days train / eval / test. Everything after reads the window.
"""
from __future__ import annotations

import hashlib
import os

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.atomic_pusher import Pusher
from components.temporal_example_gen import TemporalExampleGen
from components.temporal_window import TemporalWindow
from components.validation_gate import ValidationGate
from core.paths import write_whole
from core.serving import SERVING_DEFAULT
from evaluation.eval_config import evaluation_features, make_eval_config
from models.config import INCUMBENT_KEY, MODEL_CONFIG_KEY, TUNING_KEY, preset
from models.tuner_executor import ReferenceTunerExecutor
from pipeline.configs import BASELINE_PRESET, PipelineConfig
from pipeline.run_root import Node, RunRoot

# Every row is read. Top values and unique counts come from sketches in C++ (Misra-Gries with 1,024
# counters, exact for every feature with fewer distinct values, as all features with a domain have;
# KMV for unique counts) instead of one Beam element per distinct value per batch, about two thirds
# of StatisticsGen's time.
STATS_OPTIONS = tfdv.StatsOptions(use_sketch_based_topk_uniques=True)


def day_spans(example_gen_id: str = Node.EXAMPLE_GEN, window_days: int = 0):
    """The newest version of each of the latest `window_days` (0: all) day spans of the ExampleGen
    node `example_gen_id` in this pipeline, over all its runs: a plain channel (pipeline and node
    contexts, no pipeline-run context) through TFX's canned `rolling_range` resolver function. Only
    LIVE artifacts resolve: a quarantined day's artifacts are marked otherwise (`pipeline/spans.py`)."""
    from tfx.dsl.input_resolution.canned_resolver_functions import rolling_range

    days = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples, producer_component_id=example_gen_id,
                           output_key="examples")
    # start_span_number=1: a whole-folder read (span 0) of the same node is never a day
    return rolling_range(days, num_spans=window_days, min_spans=1, start_span_number=1)


def example_components(config: PipelineConfig):
    """(components, the Examples channel every later step reads): TemporalExampleGen over the folder,
    or with `daily_spans` the newest day's TemporalExampleGen and the TemporalWindow of the latest spans."""
    if not config.daily_spans:
        example_gen = TemporalExampleGen(input_base=config.data, split=config.split)
        return [example_gen], example_gen.outputs["examples"]
    if config.split.end_day:
        raise ValueError("daily spans: end_day is not supported (the window is the latest spans ingested)")
    example_gen = TemporalExampleGen(input_base=config.data, daily=True).with_id(Node.EXAMPLE_GEN)
    window = TemporalWindow(days=day_spans(example_gen.id, config.split.window_days), split=config.split)
    window.add_upstream_node(example_gen)  # the resolver's channel is not an output channel of this run
    return [example_gen, window], window.outputs["examples"]


def schema_snapshot(schema_file: str, root: str) -> str:
    """The curated schema as ImportSchemaGen imports it: a copy under ROOT/curated_schema/ named by a hash
    of its content. ImportSchemaGen's only input is the file's path and TFX reuses an execution whose
    inputs match, so a schema edited in place was served from the cache: `make run` on a root of the
    code before the optional attributes refused every day for "column in data but not in schema". A new
    content is a new path and is imported; the same content is the same path, so reruns still reuse
    every step. A file this process cannot read (the container image's schema of the Vertex runner) or a
    remote root is passed as it is."""
    if "://" in root or not os.path.isfile(schema_file):
        return schema_file
    with open(schema_file, "rb") as f:
        content = f.read()
    folder = os.path.join(RunRoot(root).curated_schema, hashlib.sha256(content).hexdigest()[:16])
    path = os.path.join(folder, os.path.basename(schema_file))
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        write_whole(path, content)
    return path


def data_components(config: PipelineConfig) -> list:
    """ExampleGen through Transform: the part every model variant shares."""
    return _data(config)[0]


def _data(config: PipelineConfig):
    """(ExampleGen .. Transform, the Examples channel they read)."""
    head, examples = example_components(config)
    statistics_gen = tfx.components.StatisticsGen(examples=examples,
                                                  stats_options=STATS_OPTIONS)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_snapshot(config.schema_file, config.root))
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=schema_gen.outputs["schema"])
    gate = ValidationGate(examples=examples, anomalies=example_validator.outputs["anomalies"],
                          schema=schema_gen.outputs["schema"], max_rejected_rows=config.max_rejected_rows,
                          evaluation_features=evaluation_features(config.model.tasks()))
    transform = tfx.components.Transform(
        examples=examples, schema=gate.outputs["validated_schema"],
        preprocessing_fn="models.preprocessing.preprocessing_fn",
        # the graph only: the Tuner, the Trainer and the study read ExampleGen's examples and apply it
        # in memory (`models.sampling.Decoder`). Writing every split transformed took about half of
        # Transform's time and its readers then saved ~4 s each (docs/results/performance.md).
        materialize=False, splits_config=tfx.proto.SplitsConfig(analyze=["train"]),
        # Transform's own TFDV statistics of its input and output are read by nothing (StatisticsGen
        # and the gate validate the logs) and cost about half of Transform's time; so is its analyzer
        # cache (no run passes one in). TF1 graphs for the analysis: the TF2 path traces the
        # preprocessing_fn once per analysis phase, a fixed cost of every run (tiny logs: Transform
        # 23 -> 14.5 s; default logs: 77.6 -> 69.0 s, the Evaluator and the Trainers faster too, the
        # same AP; docs/results/performance.md).
        disable_statistics=True, disable_analyzer_cache=True, force_tf_compat_v1=True)
    return head + [statistics_gen, schema_gen, example_validator, gate, transform], examples


def _pipeline(config: PipelineConfig, components: list, metadata_connection_config) -> tfx.dsl.Pipeline:
    return tfx.dsl.Pipeline(
        pipeline_name=config.name, pipeline_root=config.pipeline_root, components=components, enable_cache=True,
        metadata_connection_config=metadata_connection_config, beam_pipeline_args=list(config.beam_pipeline_args()))


def create_data_pipeline(config: PipelineConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """ExampleGen .. Transform only (the ablation study trains its variants on this output)."""
    return _pipeline(config, data_components(config), metadata_connection_config)


def _trainer(config: PipelineConfig, examples, transform, model, hyperparameters=None, incumbent=None):
    custom_config = {MODEL_CONFIG_KEY: model.to_json()}
    if incumbent is not None:
        custom_config[INCUMBENT_KEY] = True
    return tfx.components.Trainer(
        run_fn="models.trainer.run_fn",
        examples=examples, transform_graph=transform.outputs["transform_graph"],
        hyperparameters=hyperparameters, base_model=incumbent,
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=model.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=0),
        custom_config=custom_config)


class ReferenceTuner(tfx.components.Tuner):
    """TFX's Tuner whose executor also exports the Tuner's reference, the promotions baseline trained at
    its full budget, for `baseline_trainer` to serve instead of training it again
    (`models/tuner_executor.py`)."""
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ReferenceTunerExecutor)


def model_selection_components(config: PipelineConfig, examples, transform) -> list:
    """The source of the Trainer's hyperparameters: a Tuner searching on validation AP
    (`tune_trials` > 0), the latest earlier Tuner's best values (`reuse_hyperparameters`, for
    scheduled daily runs), or none (the config's own values). Where the baseline may be trained in
    the run (no `baseline_model`), the Tuner's reference is that baseline (`ReferenceTuner`)."""
    if config.tuning.trials > 0:
        tuner = tfx.components.Tuner if config.baseline_model else ReferenceTuner
        return [tuner(
            tuner_fn="models.tuning.tuner_fn",
            examples=examples, transform_graph=transform.outputs["transform_graph"],
            train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.tuning.steps),
            eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=0),
            custom_config={MODEL_CONFIG_KEY: config.model.to_json(), TUNING_KEY: config.tuning.to_json()}).with_id(Node.TUNER)]
    if config.reuse_hyperparameters:
        return [tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
            hyperparameters=tfx.dsl.Channel(type=tfx.types.standard_artifacts.HyperParameters),
        ).with_id(Node.HYPERPARAMETERS_RESOLVER)]
    return []


def incumbent_resolver() -> tfx.dsl.Resolver:
    """The latest model of this pipeline whose push was verified: TFX's LatestBlessedModelStrategy
    over the Trainer's models and the Pusher's `push_blessing` (every run's, from MLMD)."""
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model, producer_component_id=Node.TRAINER,
                              output_key="model"),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                       producer_component_id=Node.PUSHER, output_key="push_blessing"),
    ).with_id(Node.INCUMBENT_RESOLVER)


def baseline_components(config: PipelineConfig, examples, transform, tuner=None) -> list:
    """The model the candidate must not fall behind (the last one's `model` / `result` output):
    `baseline_model` through an Importer, else the incumbent resolved from what this pipeline
    pushed, served as is by `baseline_trainer`, or, when nothing was pushed yet, a
    `promotions_baseline` trained in the same run on the same data: by the `ReferenceTuner`
    (`tuner`) as its reference, which `baseline_trainer` then serves as is, else by `baseline_trainer`."""
    if config.baseline_model:
        return [tfx.dsl.Importer(source_uri=config.baseline_model, artifact_type=tfx.types.standard_artifacts.Model,
                                 reimport=False).with_id(Node.BASELINE_IMPORTER)]
    resolver = incumbent_resolver()
    baseline = preset(BASELINE_PRESET, base=config.model)
    reference = tuner.outputs["best_hyperparameters"] if isinstance(tuner, ReferenceTuner) else None
    return [resolver, _trainer(config, examples, transform, baseline, hyperparameters=reference,
                               incumbent=resolver.outputs["model"]).with_id(Node.BASELINE_TRAINER)]


def create_pipeline(config: PipelineConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """The whole DAG. The metadata connection belongs to the runner: SQLite for local runs (the local
    runner passes it), none for Vertex, a MySQL config for a shared self-hosted store."""
    data, examples = _data(config)
    transform = data[-1]
    gate = next(c for c in data if isinstance(c, ValidationGate))
    selection = model_selection_components(config, examples, transform)
    hyperparameters = None
    if selection:
        outputs = selection[0].outputs
        hyperparameters = outputs["best_hyperparameters" if "best_hyperparameters" in outputs else "hyperparameters"]
    trainer = _trainer(config, examples, transform, config.model, hyperparameters).with_id(Node.TRAINER)
    baseline = baseline_components(config, examples, transform, selection[0] if selection else None)
    # the validated schema of only the slicing features and labels: TFMA decodes those, typed, instead of
    # inferring all 31 columns (the models parse the serialized examples themselves; Evaluator 117 ->
    # 104 s on the default logs with the whole schema, less with this one; docs/results/performance.md)
    evaluator = tfx.components.Evaluator(
        examples=examples, schema=gate.outputs["evaluation_schema"], model=trainer.outputs["model"],
        baseline_model=baseline[-1].outputs["result" if config.baseline_model else "model"], example_splits=["test"],
        eval_config=make_eval_config(config.model.tasks(), config.floors, config.ap_tolerance,
                                     calibration_band=config.calibration_band))
    pusher = Pusher(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                    serving_dir=config.serving).with_id(Node.PUSHER)
    optional = bulk_inference(config, examples, trainer, evaluator)
    return _pipeline(config, data + selection + [trainer] + baseline + [evaluator, pusher] + optional,
                     metadata_connection_config)


def bulk_inference(config: PipelineConfig, examples, trainer, evaluator) -> list:
    """With `config.bulk_inference`: TFX BulkInferrer scores the test split with the Trainer's model
    once the Evaluator blesses it (PredictionLogs through serving_default); else nothing."""
    if not config.bulk_inference:
        return []
    return [tfx.components.BulkInferrer(
        examples=examples, model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        data_spec=tfx.proto.DataSpec(example_splits=["test"]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[SERVING_DEFAULT]))]
