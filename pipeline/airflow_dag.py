"""Airflow DAG file: the same `create_pipeline`, run daily by Airflow's scheduler (TFX's AirflowDagRunner).

Put this file (or a one-line file importing it) in Airflow's dags folder, with this project
importable by the scheduler and workers, and set:

  PODCAST_MTL_DATA         day-partitioned logs (local folder or gs://), required
  PODCAST_MTL_ROOT         pipeline root, serving folder (default runs/airflow)
  PODCAST_MTL_WINDOW_DAYS  rolling window of the newest N day partitions (default: every day)
  PODCAST_MTL_SCHEDULE     Airflow schedule (default @daily)
  PODCAST_MTL_SERVING_DIR  serving folder (default <root>/serving; gs:// works, `components/atomic_pusher`)
  PODCAST_MTL_TEST_DAYS, PODCAST_MTL_EVAL_DAYS   the split's test / eval days
  PODCAST_MTL_TUNE_TRIALS  Tuner trials (default: the TuningConfig default; 0: no Tuner)
  PODCAST_MTL_MODEL        JSON overrides of the model preset, e.g. {"train_steps": 120}
  PODCAST_MTL_AP_FLOOR     blessing floors per source, e.g. promotions=0.07,ads=0.02
  PODCAST_MTL_AP_TOLERANCE relative AP a candidate may lose against the baseline, per source
  PODCAST_MTL_CALIBRATION_BAND  mean prediction / mean label band per source (default 0.8,1.25; none)
  MLMD_MYSQL_HOST, MLMD_MYSQL_DATABASE, MLMD_MYSQL_USER, MLMD_MYSQL_PASSWORD, MLMD_MYSQL_PORT:
                           a shared MLMD on MySQL; without them, SQLite under the root
                           (one scheduler, one machine: `pipeline/metadata.py`)

One DAG run per day; each component is an Airflow task (TFX's AirflowDagRunner, its launchers and
drivers). Caching, the validation gate and the baseline work as in local runs, since the DAG is the
same: the baseline is resolved by the DAG's `incumbent_resolver` at run time, from MLMD (the latest
model this pipeline pushed and verified), not when the scheduler parses this file. Executed end to
end by tests/test_airflow.py (`airflow dags test`, two days, MLMD on MariaDB); docs/production.md.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Mapping, Optional

import core.env  # noqa: F401  (the Keras switch, before TensorFlow loads)
from core.split import TemporalSplit
from pipeline.configs import PipelineConfig, parse_calibration_band
from pipeline.metadata import metadata_from_env
from pipeline.pipeline import create_pipeline


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    try:
        return default if value in (None, "") else int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: not an integer") from None


def config_from_env(env: Optional[Mapping[str, str]] = None) -> PipelineConfig:
    env = os.environ if env is None else env
    data = env.get("PODCAST_MTL_DATA")
    if not data:
        raise ValueError("PODCAST_MTL_DATA must name the day-partitioned logs")
    defaults = TemporalSplit()
    split = TemporalSplit(window_days=_int(env, "PODCAST_MTL_WINDOW_DAYS", 0),
                          test_days=_int(env, "PODCAST_MTL_TEST_DAYS", defaults.test_days),
                          eval_days=_int(env, "PODCAST_MTL_EVAL_DAYS", defaults.eval_days))
    config = PipelineConfig(data=data, root=env.get("PODCAST_MTL_ROOT", "runs/airflow"), split=split,
                            serving_dir=env.get("PODCAST_MTL_SERVING_DIR") or None)
    if env.get("PODCAST_MTL_TUNE_TRIALS"):
        config = config.replace(tuning=dataclasses.replace(config.tuning, trials=_int(env, "PODCAST_MTL_TUNE_TRIALS", 0)))
    if env.get("PODCAST_MTL_AP_FLOOR"):
        try:
            floors = {k.strip(): float(v) for k, v in (p.split("=") for p in env["PODCAST_MTL_AP_FLOOR"].split(","))}
        except ValueError:
            raise ValueError(f"PODCAST_MTL_AP_FLOOR={env['PODCAST_MTL_AP_FLOOR']!r}: expected source=value,...") from None
        config = config.replace(ap_floor=tuple({**config.floors, **floors}.items()))
    if env.get("PODCAST_MTL_AP_TOLERANCE"):
        config = config.replace(ap_tolerance=float(env["PODCAST_MTL_AP_TOLERANCE"]))
    if env.get("PODCAST_MTL_CALIBRATION_BAND"):  # "lo,hi", or "none" to measure without gating
        try:
            config = config.replace(calibration_band=parse_calibration_band(env["PODCAST_MTL_CALIBRATION_BAND"]))
        except ValueError as e:
            raise ValueError(f"PODCAST_MTL_CALIBRATION_BAND: {e}") from None
    if env.get("PODCAST_MTL_MODEL"):
        try:
            overrides = json.loads(env["PODCAST_MTL_MODEL"])
        except json.JSONDecodeError as e:
            raise ValueError(f"PODCAST_MTL_MODEL: not JSON ({e})") from None
        config = config.with_preset(config.preset_name, **overrides)
    return config


def _component_scoped_driver():
    """TFX's legacy BaseDriver (the one Airflow's launchers use) with output artifacts named
    `<component id>.<output key>:<run id>` instead of `<output key>:<run id>`.

    MLMD keeps artifact names unique per type: with TFX's names the Trainer's and baseline_trainer's
    `model` of one run are both `model:<run id>`, and the second is refused (`AlreadyExistsError:
    Given node already exists`, measured on MariaDB). The IR-based runners (local, Vertex) name
    artifacts themselves and do not use drivers."""
    from tfx.dsl.components.base import base_driver

    class ComponentScopedNames(base_driver.BaseDriver):
        def _prepare_output_artifacts(self, input_artifacts, output_dict, exec_properties, execution_id,
                                      pipeline_info, component_info):
            result = super()._prepare_output_artifacts(input_artifacts, output_dict, exec_properties, execution_id,
                                                       pipeline_info, component_info)
            for artifacts in result.values():
                for artifact in artifacts:
                    artifact.name = f"{component_info.component_id}.{artifact.name}"
            return result

    return base_driver.BaseDriver, ComponentScopedNames


def build_dag(env: Optional[Mapping[str, str]] = None):
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    env = os.environ if env is None else env
    config = config_from_env(env)
    airflow_config = {"schedule": env.get("PODCAST_MTL_SCHEDULE", "@daily"),
                      "start_date": datetime.datetime(2026, 1, 1), "catchup": False, "max_active_runs": 1}
    pipeline = create_pipeline(config, metadata_from_env(config.metadata, env))
    plain, scoped = _component_scoped_driver()
    for component in pipeline.components:
        if getattr(component, "driver_class", None) is plain:  # custom drivers (ExampleGen, resolvers) keep theirs
            component.driver_class = scoped
    return AirflowDagRunner(AirflowPipelineConfig(airflow_dag_config=airflow_config)).run(pipeline)


if os.environ.get("PODCAST_MTL_DATA"):  # Airflow's DagBag finds the DAG object at module level
    DAG = build_dag()
