"""`create_pipeline(config)`: the TFX DAG, in one place.

TemporalExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> ValidationGate
-> Transform -> Trainer -> (latest blessed model) Evaluator -> Pusher.
"""
from __future__ import annotations

from tfx import v1 as tfx

from components.temporal_example_gen import TemporalExampleGen
from components.validation_gate import ValidationGate
from evaluation.eval_config import make_eval_config
from models.config import MODEL_CONFIG_KEY
from pipeline.configs import PipelineConfig

def data_components(config: PipelineConfig) -> list:
    """ExampleGen through Transform: the part every model variant shares."""
    example_gen = TemporalExampleGen(input_base=config.data, split=config.split)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file)
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=schema_gen.outputs["schema"])
    gate = ValidationGate(anomalies=example_validator.outputs["anomalies"], schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=gate.outputs["validated_schema"],
        preprocessing_fn="models.preprocessing.preprocessing_fn",
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=list(config.splits)))
    return [example_gen, statistics_gen, schema_gen, example_validator, gate, transform]


def _pipeline(config: PipelineConfig, components: list, metadata_connection_config) -> tfx.dsl.Pipeline:
    return tfx.dsl.Pipeline(
        pipeline_name=config.name, pipeline_root=config.pipeline_root, components=components, enable_cache=True,
        metadata_connection_config=metadata_connection_config, beam_pipeline_args=list(config.beam_pipeline_args()))


def create_data_pipeline(config: PipelineConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """ExampleGen .. Transform only (the ablation study trains its variants on this output)."""
    return _pipeline(config, data_components(config), metadata_connection_config)


def create_pipeline(config: PipelineConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """The whole DAG. The metadata connection belongs to the runner: SQLite for local runs (the local
    runner passes it), none for Vertex, a MySQL config for a shared self-hosted store."""
    data = data_components(config)
    example_gen, transform = data[0], data[-1]
    trainer = tfx.components.Trainer(
        run_fn="models.trainer.run_fn",
        examples=transform.outputs["transformed_examples"], transform_graph=transform.outputs["transform_graph"],
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.model.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=0),
        custom_config={MODEL_CONFIG_KEY: config.model.to_json()})
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"], example_splits=["test"],
        eval_config=make_eval_config(config.model.tasks(), config.floors, config.ap_tolerance))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving)))
    optional = bulk_inference(config, example_gen, trainer, evaluator)
    return _pipeline(config, data + [trainer, resolver, evaluator, pusher] + optional, metadata_connection_config)


def bulk_inference(config: PipelineConfig, example_gen, trainer, evaluator) -> list:
    """With `config.bulk_inference`: TFX BulkInferrer scores the test split with the Trainer's model
    once the Evaluator blesses it (PredictionLogs through serving_default); else nothing."""
    if not config.bulk_inference:
        return []
    return [tfx.components.BulkInferrer(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        data_spec=tfx.proto.DataSpec(example_splits=["test"]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=["serving_default"]))]
