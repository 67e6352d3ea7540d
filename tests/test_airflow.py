"""The Airflow DAG file loads in Airflow's own DagBag, from the same create_pipeline, and runs end to
end under Airflow (`airflow dags test`) for consecutive logical dates with MLMD on a real MariaDB
server (started and stopped here on a loopback port, its own datadir under /tmp).

Airflow cannot live in the main venv (Werkzeug<3, see constraints-airflow.txt); the fixture makes
an overlay venv under /tmp that sees the main venv's packages and installs Airflow 2.10.5 into it
with constraints-airflow.txt (a few minutes the first time), or skips saying why."""
import glob
import hashlib
import json
import os
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import time

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


@pytest.fixture(scope="module")
def tiny_logs(tmp_path_factory):
    """8 days of the smallest world the runs still train and gate on (400 users, 60 podcasts)."""
    from datagen.generate import generate_logs
    from tests.conftest import TINY

    out = str(tmp_path_factory.mktemp("airflow-logs") / "tiny")
    generate_logs(TINY, out, verbose=False)
    return out


@pytest.mark.slow
def test_airflow_dagbag_loads_the_dag_without_errors(airflow_python, tiny_logs, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "podcast_mtl.py").write_text(DAG_FILE)
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", AIRFLOW_HOME=str(tmp_path / "airflow"),
               PODCAST_MTL_DATA=tiny_logs, PODCAST_MTL_ROOT=str(tmp_path / "root"), PODCAST_MTL_WINDOW_DAYS="6",
               # importing TensorFlow + TFX takes longer than Airflow's default 30 s on a loaded machine
               AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="600", AIRFLOW__CORE__LOAD_EXAMPLES="False")
    r = subprocess.run([airflow_python, "-c", LOAD.format(folder=str(dags))], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert out["schedule"] == "@daily"
    assert set(out["tasks"]) == {"TemporalExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                                 "ValidationGate", "Transform", "Tuner", "Trainer", "incumbent_resolver",
                                 "baseline_trainer", "Evaluator", "Pusher"}
    assert out["upstream"]["Transform"] == ["TemporalExampleGen", "ValidationGate"]
    assert "Tuner" in out["upstream"]["Trainer"] and "baseline_trainer" in out["upstream"]["Evaluator"]
    # the incumbent is resolved by a task of the DAG at run time, not when the file is parsed
    assert "incumbent_resolver" in out["upstream"]["baseline_trainer"]


def test_airflow_config_and_metadata_come_from_the_environment(tmp_path):
    from pipeline.airflow_dag import config_from_env
    from pipeline.metadata import metadata_from_env

    config = config_from_env({"PODCAST_MTL_DATA": "gs://logs", "PODCAST_MTL_ROOT": str(tmp_path),
                              "PODCAST_MTL_WINDOW_DAYS": "28"})
    assert (config.data, config.root, config.split.window_days) == ("gs://logs", str(tmp_path), 28)
    with pytest.raises(ValueError, match="PODCAST_MTL_DATA"):
        config_from_env({})
    env = {"PODCAST_MTL_DATA": "gs://logs"}
    assert config_from_env({**env, "PODCAST_MTL_CALIBRATION_BAND": "0.5,2"}).calibration_band == (0.5, 2.0)
    assert config_from_env({**env, "PODCAST_MTL_CALIBRATION_BAND": "none"}).calibration_band is None
    with pytest.raises(ValueError, match="PODCAST_MTL_CALIBRATION_BAND: expected 0 < LO <= 1 <= HI"):
        config_from_env({**env, "PODCAST_MTL_CALIBRATION_BAND": "2,3"})
    assert metadata_from_env(config.metadata, {}).sqlite.filename_uri == config.metadata


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mariadb():
    """A MariaDB server of the Debian package (`apt-get install mariadb-server`) on a loopback port,
    its own datadir under /tmp, no grant tables (loopback only); stopped and removed at the end."""
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    install = shutil.which("mariadb-install-db")
    if not (server and install):
        pytest.skip("MariaDB is not installed (apt-get install mariadb-server): no mariadbd / mariadb-install-db")
    base = tempfile.mkdtemp(prefix="podcast-mtl-mariadb-", dir="/tmp")  # short: the socket path has a limit
    user = ["--user=root"] if os.geteuid() == 0 else []
    r = subprocess.run([install, "--no-defaults", f"--datadir={base}/data", "--skip-test-db",
                        "--auth-root-authentication-method=normal", *user], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    port = _free_port()
    proc = subprocess.Popen([server, "--no-defaults", f"--datadir={base}/data", f"--port={port}",
                             "--bind-address=127.0.0.1", f"--socket={base}/sock", f"--pid-file={base}/pid",
                             "--skip-grant-tables", "--skip-name-resolve", f"--log-error={base}/error.log", *user])
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, open(f"{base}/error.log").read()[-2000:]
                time.sleep(0.5)
        yield {"MLMD_MYSQL_HOST": "127.0.0.1", "MLMD_MYSQL_PORT": str(port), "MLMD_MYSQL_DATABASE": "podcast_mlmd",
               "MLMD_MYSQL_USER": "root", "MLMD_MYSQL_PASSWORD": ""}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _lineage(db):
    """{execution id: {component, run, state, inputs: {key: [artifact]}, outputs: {key: [artifact]}}} of the
    MySQL-backed MLMD, as TFX's Airflow launchers recorded them."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.metadata import mysql_connection

    store = metadata_store.MetadataStore(mysql_connection(db["MLMD_MYSQL_HOST"], db["MLMD_MYSQL_DATABASE"],
                                                          db["MLMD_MYSQL_USER"], port=int(db["MLMD_MYSQL_PORT"])))
    artifacts = {a.id: a for a in store.get_artifacts()}
    out = {}
    for e in store.get_executions():
        row = {"component": e.properties["component_id"].string_value, "run": e.properties["run_id"].string_value,
               "state": e.last_known_state, "inputs": {}, "outputs": {}}
        for ev in store.get_events_by_execution_ids([e.id]):
            key = ev.path.steps[0].key if ev.path.steps else ""
            side = "inputs" if ev.type in (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT) \
                else "outputs"
            row[side].setdefault(key, []).append(artifacts[ev.artifact_id])
        out[e.id] = row
    return out


def _of(lineage, component, run):
    rows = [r for r in lineage.values() if r["component"] == component and r["run"] == run]
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PODCAST_MTL_AIRFLOW_E2E") == "0",
                    reason="PODCAST_MTL_AIRFLOW_E2E=0: the three Airflow runs of the whole DAG are skipped")
def test_airflow_runs_the_dag_on_two_days_then_stops_a_corrupted_day_with_mlmd_on_mariadb(
        airflow_python, tiny_logs, mariadb, tmp_path):
    """Airflow's own `airflow dags test` (every task of the DAG, in order, as Airflow runs them) for
    three consecutive logical dates, the logs growing by a day before each: day 1 has nothing pushed
    (promotions baseline trained in the run) and pushes; day 2's incumbent_resolver resolves day 1's
    pushed model from MLMD on MariaDB and the Evaluator gates against it; day 3's new partition is
    corrupted: the run stops at the ValidationGate and nothing is pushed."""
    from components.atomic_pusher.executor import tree_digest
    from tests.conftest import corrupt_day_file

    data = tmp_path / "logs"
    days = sorted(glob.glob(os.path.join(tiny_logs, "date=*")))
    data.mkdir()
    for d in days[:-1]:
        shutil.copytree(d, data / os.path.basename(d))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "podcast_mtl.py").write_text(DAG_FILE)
    root = tmp_path / "root"
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="2",
               AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__DAGS_FOLDER=str(dags),
               AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="600", AIRFLOW__CORE__LOAD_EXAMPLES="False",
               PODCAST_MTL_DATA=str(data), PODCAST_MTL_ROOT=str(root), PODCAST_MTL_TEST_DAYS="2",
               PODCAST_MTL_EVAL_DAYS="2", PODCAST_MTL_TUNE_TRIALS="0",
               PODCAST_MTL_MODEL=json.dumps({"train_steps": 20, "eval_every_steps": 10, "batch_size": 256,
                                             "shuffle_buffer": 5000}),
               # tiny logs, few ads positives: what is tested is Airflow and MLMD, not the model, so
               # floors far under the base rates, a lenient comparison and calibration measured, not
               # gated (20 steps on 3 days: the band 0.5-2 refused day 1 once)
               PODCAST_MTL_AP_FLOOR="promotions=0.01,ads=0.005", PODCAST_MTL_AP_TOLERANCE="0.9",
               PODCAST_MTL_CALIBRATION_BAND="none", **mariadb)
    airflow = [airflow_python, "-m", "airflow"]
    r = subprocess.run([*airflow, "db", "migrate"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

    def run_day(logical_date):
        r = subprocess.run([*airflow, "dags", "test", "podcast-mtl", logical_date], capture_output=True, text=True,
                           env=env)
        runs = {row["run"] for row in _lineage(mariadb).values()}
        return r, sorted(run for run in runs if logical_date in run)

    serving = root / "serving"
    r1, (run1,) = run_day("2026-01-02")
    lineage = _lineage(mariadb)
    pushed1 = _of(lineage, "Pusher", run1)
    assert pushed1, r1.stdout[-3000:] + r1.stderr[-5000:]
    pm1 = pushed1["outputs"]["pushed_model"][0]
    assert pm1.custom_properties["pushed"].int_value == 1, r1.stderr[-5000:]
    assert not _of(lineage, "baseline_trainer", run1)["inputs"].get("base_model")  # nothing pushed before day 1
    trainer1 = _of(lineage, "Trainer", run1)["outputs"]["model"][0]
    dest1 = pm1.custom_properties["pushed_destination"].string_value
    assert os.path.dirname(dest1) == str(serving)
    assert tree_digest(dest1) == tree_digest(os.path.join(trainer1.uri, "Format-Serving"))

    shutil.copytree(days[-1], data / os.path.basename(days[-1]))  # the next day's logs arrive
    r2, (run2,) = run_day("2026-01-03")
    assert r2.returncode == 0, r2.stderr[-5000:]
    lineage = _lineage(mariadb)
    resolved = _of(lineage, "incumbent_resolver", run2)["outputs"]["model"]
    assert [a.id for a in resolved] == [trainer1.id]  # day 1's pushed model, read back from MLMD
    baseline2 = _of(lineage, "baseline_trainer", run2)
    assert [a.id for a in baseline2["inputs"]["base_model"]] == [trainer1.id]
    evaluator2 = _of(lineage, "Evaluator", run2)
    assert [a.id for a in evaluator2["inputs"]["baseline_model"]] == [a.id for a in baseline2["outputs"]["model"]]
    assert tree_digest(os.path.join(baseline2["outputs"]["model"][0].uri, "Format-Serving")) == tree_digest(dest1)
    assert evaluator2["outputs"]["blessing"][0].custom_properties["baseline_model_id"].int_value == \
        baseline2["outputs"]["model"][0].id
    assert _of(lineage, "Trainer", run2)["outputs"]["model"][0].id != trainer1.id  # a new candidate (new day)
    served_before_day3 = sorted(os.listdir(serving))

    # the newest day is delivered again, corrupted (unknown source, label out of range, a column missing)
    corrupt_day_file(glob.glob(str(data / os.path.basename(days[-1]) / "*.parquet"))[0])
    r3, (run3,) = run_day("2026-01-04")
    lineage = _lineage(mariadb)
    gate = _of(lineage, "ValidationGate", run3)
    assert gate, r3.stdout[-3000:] + r3.stderr[-3000:]
    # TFX's Airflow launcher registers a task's outputs when it starts: the failed gate's schema stays
    # pending, never published, and the execution never completes
    from ml_metadata.proto import metadata_store_pb2
    for schema in gate["outputs"].get("validated_schema", []):
        assert schema.state != metadata_store_pb2.Artifact.LIVE
        assert "state" not in schema.custom_properties or schema.custom_properties["state"].string_value != "published"
    assert gate["state"] != metadata_store_pb2.Execution.COMPLETE
    assert "field 'source' not one of" in r3.stdout + r3.stderr
    assert _of(lineage, "Transform", run3) is None and _of(lineage, "Pusher", run3) is None
    assert sorted(os.listdir(serving)) == served_before_day3
    # the MySQL-backed MLMD holds the lineage of every day
    assert {r["run"] for r in lineage.values()} >= {run1, run2, run3}
