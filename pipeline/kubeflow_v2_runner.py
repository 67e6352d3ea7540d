"""Compiles `create_pipeline(config)` for Vertex AI Pipelines / Kubeflow Pipelines v2.

The same DAG as the local runs, no fork. What differs is what the runner owns:

* no metadata connection: Vertex (and KFP v2) record lineage in their own metadata store;
* every step runs in the project image (`Dockerfile`), which holds this project's modules,
  tensorflow-recommenders and the curated schema at `IMAGE_SCHEMA_FILE`;
* Beam steps run in that container with the in-memory DirectRunner, or on Dataflow when the
  Beam args name `--runner=DataflowRunner`: then workers get the project through
  `--setup_file` (the copy inside the image) unless `--sdk_container_image` is given.

Needs the `kfp` extra (`pip install -c constraints-kfp.txt -e .[kfp]`): TFX's KubeflowV2DagRunner
imports kfp's pipeline-spec protos.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline

# The Dockerfile copies the repository here and installs it; these paths hold inside the image.
IMAGE_WORKDIR = "/pipeline"
IMAGE_SCHEMA_FILE = IMAGE_WORKDIR + "/schemas/impressions.pbtxt"
IMAGE_SETUP_FILE = IMAGE_WORKDIR + "/setup.py"
TARGETS = ("vertex", "kubeflow")


def _has(args, flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def production_beam_args(config: PipelineConfig) -> tuple:
    """The user's Beam args, plus what Dataflow workers need to import this project."""
    args = list(config.beam_args)
    if any(a in ("--runner=DataflowRunner", "--runner=dataflow") for a in args):
        if not _has(args, "--setup_file") and not _has(args, "--sdk_container_image"):
            args.append(f"--setup_file={IMAGE_SETUP_FILE}")
        if not _has(args, "--temp_location"):
            args.append(f"--temp_location={config.root.rstrip('/')}/tmp")
    return tuple(args)


def production_config(config: PipelineConfig, schema_file: Optional[str] = None) -> PipelineConfig:
    """The config as the containers see it: schema inside the image (or a given gs:// copy),
    Dataflow args completed."""
    return config.replace(schema_file=schema_file or IMAGE_SCHEMA_FILE, beam_args=production_beam_args(config))


def compile_pipeline(config: PipelineConfig, image: str, out: str, schema_file: Optional[str] = None,
                     display_name: Optional[str] = None) -> Dict:
    """Writes the PipelineJob JSON for Vertex AI / KFP v2 to `out` and returns it as a dict.

    `image` runs every step (the project image built from `Dockerfile`). The folder shape only:
    the daily-span window is resolved by TFX's `rolling_range` resolver function, and the Kubeflow
    V2 compiler of tfx 1.16 takes only plain channels (and Latest* resolver strategies), so a
    Vertex schedule reads the newest `window_days` partitions with one ExampleGen instead."""
    if config.daily_spans:
        raise ValueError("compile: daily spans are not supported for Vertex / Kubeflow v2 (TFX's Kubeflow V2 "
                         "compiler does not compile the rolling_range span resolver); compile without them and "
                         "use --window-days for a rolling window")
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kv2

    dag = create_pipeline(production_config(config, schema_file), metadata_connection_config=None)
    runner = kv2.KubeflowV2DagRunner(
        config=kv2.KubeflowV2DagRunnerConfig(default_image=image, display_name=display_name or config.name),
        output_dir=os.path.dirname(os.path.abspath(out)), output_filename=os.path.basename(out))
    return runner.run(dag, write_out=True)


def step_images(job: Dict) -> Dict[str, str]:
    """{executor label: container image} of a compiled PipelineJob (importers have no image)."""
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    return {name: spec["container"]["image"] for name, spec in executors.items() if "container" in spec}
