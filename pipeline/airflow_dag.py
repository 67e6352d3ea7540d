"""Airflow DAG file: the same `create_pipeline`, run daily by Airflow's scheduler (TFX's AirflowDagRunner).

Put this file (or a one-line file importing it) in Airflow's dags folder, with this project
importable by the scheduler and workers, and set:

  PODCAST_MTL_DATA         day-partitioned logs (local folder or gs://), required
  PODCAST_MTL_ROOT         pipeline root, serving folder (default runs/airflow)
  PODCAST_MTL_WINDOW_DAYS  rolling window of the newest N day partitions (default: every day)
  PODCAST_MTL_SCHEDULE     Airflow schedule (default @daily)
  MLMD_MYSQL_HOST, MLMD_MYSQL_DATABASE, MLMD_MYSQL_USER, MLMD_MYSQL_PASSWORD, MLMD_MYSQL_PORT:
                           a shared MLMD on MySQL; without them, SQLite under the root
                           (one scheduler, one machine: `pipeline/metadata.py`)

One DAG run per day; each component is an Airflow task; caching, the validation gate and the
latest-blessed-model baseline work as in local runs, since the DAG is the same.
"""
from __future__ import annotations

import datetime
import os
from typing import Mapping, Optional

import core.env  # noqa: F401  (the Keras switch, before TensorFlow loads)
from core.split import TemporalSplit
from pipeline.configs import PipelineConfig
from pipeline.metadata import metadata_from_env
from pipeline.pipeline import create_pipeline


def config_from_env(env: Optional[Mapping[str, str]] = None) -> PipelineConfig:
    env = os.environ if env is None else env
    data = env.get("PODCAST_MTL_DATA")
    if not data:
        raise ValueError("PODCAST_MTL_DATA must name the day-partitioned logs")
    split = TemporalSplit(window_days=int(env.get("PODCAST_MTL_WINDOW_DAYS", "0") or 0))
    return PipelineConfig(data=data, root=env.get("PODCAST_MTL_ROOT", "runs/airflow"), split=split)


def build_dag(env: Optional[Mapping[str, str]] = None):
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    env = os.environ if env is None else env
    config = config_from_env(env)
    airflow_config = {"schedule": env.get("PODCAST_MTL_SCHEDULE", "@daily"),
                      "start_date": datetime.datetime(2026, 1, 1), "catchup": False, "max_active_runs": 1}
    return AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=airflow_config)).run(
        create_pipeline(config, metadata_from_env(config.metadata, env)))


if os.environ.get("PODCAST_MTL_DATA"):  # Airflow's DagBag finds the DAG object at module level
    DAG = build_dag()
