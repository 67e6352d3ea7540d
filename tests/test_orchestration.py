"""Production orchestration: the Vertex / Kubeflow v2 spec, the project image, runner-owned metadata.

The kfp extra cannot live in the main venv (kfp 2.5 needs urllib3<2, see constraints-kfp.txt), so
the `kfp_python` fixture uses an overlay venv under /tmp that sees the main venv's packages and
installs `-c constraints-kfp.txt -e .[kfp]` into it (about a minute, once per constraints); it
skips, saying why, when pip cannot reach an index.
"""
import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

IMAGE = "europe-west4-docker.pkg.dev/acme/ml/podcast-mtl:2026-11-29"


def _kfp_overlay() -> str:
    """The overlay built by the README's command, `make setup-kfp` (`-o setup`: the main venv, this
    interpreter's, is taken as set up), into a venv under /tmp keyed by the Makefile and the pins."""
    h = hashlib.sha256(sys.executable.encode())
    for name in ("constraints-kfp.txt", "Makefile"):
        with open(os.path.join(REPO, name), "rb") as f:
            h.update(f.read())
    venv = f"/tmp/podcast-mtl-kfp-{h.hexdigest()[:12]}"
    python = os.path.join(venv, "bin", "python")
    if os.path.exists(os.path.join(venv, "ready")):
        return venv
    main_venv = os.path.dirname(os.path.dirname(sys.executable))
    r = subprocess.run(["make", "-o", "setup", "setup-kfp", f"VENV={main_venv}", f"KFP_VENV={venv}"],
                       cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        if "Could not find a version" in r.stderr or "No matching distribution" in r.stderr:
            pytest.skip(f"could not install the kfp extra (no package index?): {r.stderr.strip()[-500:]}")
        raise AssertionError(f"make setup-kfp failed: {r.stdout[-1500:]}{r.stderr[-3000:]}")
    assert os.path.exists(python)
    open(os.path.join(venv, "ready"), "w").close()
    return venv


@pytest.fixture(scope="session")
def kfp_venv():
    return _kfp_overlay()


@pytest.fixture(scope="session")
def kfp_python(kfp_venv):
    return os.path.join(kfp_venv, "bin", "python")


def _run(python, args, **kw):
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([python, *args], capture_output=True, text=True, env=env, **kw)


@pytest.fixture(scope="session")
def vertex_spec(kfp_venv, kfp_python, tmp_path_factory):
    """README's command as written: the overlay's own console script (`.venv-kfp/bin/podcast-mtl`)."""
    out = str(tmp_path_factory.mktemp("vertex") / "pipeline.json")
    r = _run(os.path.join(kfp_venv, "bin", "podcast-mtl"), ["compile", "--image", IMAGE,
                          "--root", "gs://acme-ml/podcast-mtl", "--data", "gs://acme-logs/impressions",
                          "--window-days", "28", "--out", out,
                          "--beam-arg=--runner=DataflowRunner", "--beam-arg=--project=acme", "--beam-arg=--region=europe-west4"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "wrote" in r.stdout
    p = _run(kfp_python, [os.path.join(REPO, "tests", "check_pipeline_spec.py"), out])
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_vertex_spec_loads_with_kfp_parser_and_runs_every_step_in_the_project_image(vertex_spec):
    from pipeline.kubeflow_v2_runner import IMAGE_SCHEMA_FILE, IMAGE_SETUP_FILE

    steps = vertex_spec["steps"]
    expected = {"TemporalExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate",
                "Transform", "Tuner", "Trainer", "baseline_trainer", "Evaluator", "Pusher"}
    assert expected <= set(vertex_spec["tasks"])
    assert {label.replace("_executor", "") for label in steps} == expected
    assert {s["image"] for s in steps.values()} == {IMAGE}
    # every module the containers are told to run imports here (project + TFX entry points)
    assert all(v is True for v in vertex_spec["importable"].values()), vertex_spec["importable"]
    assert "components.temporal_example_gen.executor" in vertex_spec["importable"]
    # TFX's file-based driver runs before the cache check: new log files are never served from cache
    assert steps["TemporalExampleGen_executor"]["pre_cache_check"][-1] == \
        "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"
    # Dataflow workers get the project; the schema is the copy inside the image; paths are gs://
    beam_steps = [s for s in steps.values() if "--runner=DataflowRunner" in s["args"]]
    assert len(beam_steps) >= 4
    assert all(f"--setup_file={IMAGE_SETUP_FILE}" in s["args"] for s in beam_steps)
    assert not any(a.startswith("--direct_") for s in steps.values() for a in s["args"])
    text = vertex_spec["spec_text"]
    assert IMAGE_SCHEMA_FILE in text and REPO not in text
    assert "gs://acme-logs/impressions" in text and "metadata.sqlite" not in text
    assert vertex_spec["pipeline_root"] == "gs://acme-ml/podcast-mtl/pipeline"


def test_vertex_spec_resolves_the_incumbent_in_the_dag(vertex_spec):
    """The compiled spec holds the DAG's incumbent resolver (TFX's LatestBlessedModelStrategy, as
    the Kubeflow V2 compiler writes it: a ModelBlessing query, then the Model it names), feeding
    baseline_trainer's base_model; the Evaluator's baseline is baseline_trainer's model."""
    resolvers = vertex_spec["resolvers"]
    blessing = resolvers["incumbent_resolver-model-blessing-resolver_executor"]["model_blessing"]
    assert 'schema_title="tfx.ModelBlessing"' in blessing and "metadata.blessed.number_value=1" in blessing
    model = resolvers["incumbent_resolver-model-resolver_executor"]["model"]
    assert 'schema_title="tfx.Model"' in model and "current_model_id" in model
    inputs = vertex_spec["task_inputs"]
    assert inputs["baseline_trainer"]["base_model"] == "incumbent_resolver-model-resolver"
    assert inputs["Evaluator"]["baseline_model"] == "baseline_trainer"
    assert inputs["Pusher"]["model"] == "Trainer"


def test_vertex_driver_fingerprints_the_logs_so_a_new_day_is_not_served_from_cache(kfp_python, small_logs, tmp_path):
    """TFX's v2 file-based driver, the ExampleGen step's pre-cache-check, on TemporalExampleGen's properties."""
    import shutil

    logs = str(tmp_path / "logs")
    shutil.copytree(small_logs, logs)

    def fingerprint(out):
        r = _run(kfp_python, [os.path.join(REPO, "tests", "run_v2_driver.py"), logs, str(tmp_path / out)])
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1])["parameterValues"]["input_fingerprint"]

    first, again = fingerprint("a"), fingerprint("b")
    assert first == again and "num_files:12," in first
    newest = sorted(d for d in os.listdir(logs) if d.startswith("date="))[-1]
    shutil.copytree(os.path.join(logs, newest), os.path.join(logs, "date=2099-01-01"))  # a day arrives
    assert "num_files:13," in fingerprint("c")


def test_compile_without_the_kfp_extra_is_a_usage_error():
    from tests.conftest import run_python

    r = run_python(["-c", "import sys, builtins\n"
                          "real = builtins.__import__\n"
                          "def no_kfp(name, *a, **k):\n"
                          "    if name.startswith('kfp'): raise ImportError('No module named kfp')\n"
                          "    return real(name, *a, **k)\n"
                          "builtins.__import__ = no_kfp\n"
                          "from cli import main\n"
                          "sys.exit(main(['compile', '--image', 'i', '--root', 'gs://b/r', '--data', 'gs://b/l']))"])
    assert r.returncode == 2 and "kfp extra" in r.stderr


def test_daily_span_dag_compiles_for_the_local_runner_and_is_refused_for_vertex(tmp_path):
    """One create_pipeline, two input shapes: with daily spans, TemporalWindow reads TFX's
    rolling_range over TemporalExampleGen's spans in every run (no pipeline-run context)."""
    from tfx.dsl.compiler.compiler import Compiler

    from core.split import TemporalSplit
    from pipeline.configs import PipelineConfig
    from pipeline.kubeflow_v2_runner import compile_pipeline
    from pipeline.pipeline import create_pipeline

    config = PipelineConfig(data=str(tmp_path / "logs"), root=str(tmp_path / "root"), daily_spans=True,
                            split=TemporalSplit(test_days=2, eval_days=2, window_days=9))
    folder = [c.id for c in create_pipeline(config.replace(daily_spans=False)).components]
    spans = [c.id for c in create_pipeline(config).components]
    assert set(spans) == set(folder) | {"TemporalWindow"} and len(spans) == len(folder) + 1
    assert spans.index("TemporalExampleGen") < spans.index("TemporalWindow") < spans.index("StatisticsGen")
    ir = Compiler().compile(create_pipeline(config))
    window = next(n.pipeline_node for n in ir.nodes if n.pipeline_node.node_info.id == "TemporalWindow")
    assert "TemporalExampleGen" in window.upstream_nodes and window.inputs.input_graphs
    channels = [ch for spec in window.inputs.inputs.values() for ch in spec.channels]
    assert channels and all(q.type.name != "pipeline_run" for ch in channels for q in ch.context_queries)
    with pytest.raises(ValueError, match="daily spans are not supported"):
        compile_pipeline(config, IMAGE, str(tmp_path / "p.json"))


def test_metadata_connection_belongs_to_the_runner(tmp_path):
    from pipeline.configs import PipelineConfig
    from pipeline.local_runner import metadata_connection
    from pipeline.metadata import metadata_from_env, mysql_connection
    from pipeline.pipeline import create_pipeline

    config = PipelineConfig(data=str(tmp_path / "logs"), root=str(tmp_path / "root"))
    assert create_pipeline(config).metadata_connection_config is None  # Vertex: the service's own store
    local = create_pipeline(config, metadata_connection(config)).metadata_connection_config
    assert local.sqlite.filename_uri == config.metadata
    mysql = mysql_connection("mlmd.internal", "podcast_mlmd", "tfx", "secret", port=3307)
    assert (mysql.mysql.host, mysql.mysql.port, mysql.mysql.database, mysql.mysql.user) == \
        ("mlmd.internal", 3307, "podcast_mlmd", "tfx")
    assert create_pipeline(config, mysql).metadata_connection_config.mysql.database == "podcast_mlmd"
    from_env = metadata_from_env("x.sqlite", {"MLMD_MYSQL_HOST": "db", "MLMD_MYSQL_DATABASE": "m"})
    assert from_env.mysql.host == "db" and from_env.mysql.database == "m"
    assert metadata_from_env(str(tmp_path / "m.sqlite"), {}).sqlite.filename_uri == str(tmp_path / "m.sqlite")


def test_dataflow_args_ship_the_project_unless_an_image_is_given():
    from pipeline.configs import PipelineConfig
    from pipeline.kubeflow_v2_runner import IMAGE_SETUP_FILE, production_beam_args

    base = PipelineConfig(data="gs://b/l", root="gs://b/r")
    assert production_beam_args(base) == ()  # DirectRunner inside the step's container
    df = production_beam_args(base.replace(beam_args=("--runner=DataflowRunner",)))
    assert f"--setup_file={IMAGE_SETUP_FILE}" in df and "--temp_location=gs://b/r/tmp" in df
    own = production_beam_args(base.replace(beam_args=("--runner=DataflowRunner", "--sdk_container_image=x",
                                                       "--temp_location=gs://t")))
    assert not any(a.startswith("--setup_file") for a in own) and own.count("--temp_location=gs://t") == 1


def test_dockerfile_builds_on_the_matching_tfx_image_and_copies_what_the_spec_names():
    import tfx

    from pipeline.kubeflow_v2_runner import IMAGE_SCHEMA_FILE, IMAGE_SETUP_FILE, IMAGE_WORKDIR

    text = open(os.path.join(REPO, "Dockerfile")).read()
    assert re.search(rf"^FROM gcr.io/tfx-oss-public/tfx:{re.escape(tfx.__version__)}$", text, re.M)
    assert re.search(rf"^WORKDIR {IMAGE_WORKDIR}$", text, re.M)
    assert "-c constraints.txt ." in text and "TF_USE_LEGACY_KERAS=1" in text
    copied = set(re.findall(r"^COPY (\S+) \1$", text, re.M))
    packages = re.search(r"^PACKAGES = (\[.*\])$", open(os.path.join(REPO, "setup.py")).read(), re.M).group(1)
    assert set(json.loads(packages)) <= copied
    assert os.path.relpath(IMAGE_SCHEMA_FILE, IMAGE_WORKDIR).split("/")[0] in copied
    assert os.path.exists(os.path.join(REPO, os.path.relpath(IMAGE_SCHEMA_FILE, IMAGE_WORKDIR)))
    assert os.path.exists(os.path.join(REPO, os.path.relpath(IMAGE_SETUP_FILE, IMAGE_WORKDIR)))


@pytest.mark.slow
def test_the_image_install_command_resolves_against_the_constraints():
    """The Dockerfile's `pip install -c constraints.txt .`, as a dry run in this Python (not in the image)."""
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-build-isolation",
                        "-c", "constraints.txt", "."], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
