"""The Airflow DAG file loads in Airflow's own DagBag, from the same create_pipeline.

Airflow cannot live in the main venv (Werkzeug<3, see constraints-airflow.txt); the fixture makes
an overlay venv under /tmp that sees the main venv's packages and installs Airflow 2.10.5 into it
with constraints-airflow.txt (a few minutes the first time), or skips saying why."""
import hashlib
import json
import os
import site
import subprocess
import sys

import pytest

from tests.conftest import REPO

DAG_FILE = "from pipeline.airflow_dag import DAG  # noqa: F401  (airflow DAG)\n"
LOAD = """
import json
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder={folder!r}, include_examples=False)
dag = bag.dags.get("podcast-mtl")
print(json.dumps({{"errors": {{k: v[-2000:] for k, v in bag.import_errors.items()}},
                  "tasks": sorted(t.task_id for t in dag.tasks) if dag else [],
                  "upstream": {{t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}} if dag else {{}},
                  "schedule": str(dag.schedule_interval) if dag else None}}))
"""


@pytest.fixture(scope="session")
def airflow_python():
    with open(os.path.join(REPO, "constraints-airflow.txt"), "rb") as f:
        key = hashlib.sha256(f.read() + sys.executable.encode()).hexdigest()[:12]
    venv = f"/tmp/podcast-mtl-airflow-{key}"
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, "ready")):
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        with open(os.path.join(venv, "lib", "python3.10", "site-packages", "podcast_mtl_base.pth"), "w") as f:
            f.write(site.getsitepackages()[0] + "\n")
        r = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "-c", "constraints-airflow.txt", "apache-airflow==2.10.5"],
                           cwd=REPO, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"could not install Airflow (no package index?): {r.stderr.strip()[-500:]}")
        open(os.path.join(venv, "ready"), "w").close()
    return python


@pytest.mark.slow
def test_airflow_dagbag_loads_the_dag_without_errors(airflow_python, small_logs, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "podcast_mtl.py").write_text(DAG_FILE)
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", AIRFLOW_HOME=str(tmp_path / "airflow"),
               PODCAST_MTL_DATA=small_logs, PODCAST_MTL_ROOT=str(tmp_path / "root"), PODCAST_MTL_WINDOW_DAYS="9",
               # importing TensorFlow + TFX takes longer than Airflow's default 30 s on a loaded machine
               AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="600", AIRFLOW__CORE__LOAD_EXAMPLES="False")
    r = subprocess.run([airflow_python, "-c", LOAD.format(folder=str(dags))], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert out["schedule"] == "@daily"
    assert set(out["tasks"]) == {"TemporalExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                                 "ValidationGate", "Transform", "Tuner", "Trainer", "baseline_trainer",
                                 "Evaluator", "Pusher"}
    assert out["upstream"]["Transform"] == ["TemporalExampleGen", "ValidationGate"]
    assert "Tuner" in out["upstream"]["Trainer"] and "baseline_trainer" in out["upstream"]["Evaluator"]


def test_airflow_config_and_metadata_come_from_the_environment(tmp_path):
    from pipeline.airflow_dag import config_from_env
    from pipeline.metadata import metadata_from_env

    config = config_from_env({"PODCAST_MTL_DATA": "gs://logs", "PODCAST_MTL_ROOT": str(tmp_path),
                              "PODCAST_MTL_WINDOW_DAYS": "28"})
    assert (config.data, config.root, config.split.window_days) == ("gs://logs", str(tmp_path), 28)
    with pytest.raises(ValueError, match="PODCAST_MTL_DATA"):
        config_from_env({})
    assert metadata_from_env(config.metadata, {}).sqlite.filename_uri == config.metadata
