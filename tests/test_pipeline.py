"""The TFX pipeline end to end on small generated logs, with the real components, Beam and MLMD."""
import glob
import json
import os
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.fields import LABELS, SOURCES
from pipeline.pipeline import create_pipeline
from pipeline.run_root import Node, RunRoot
from tests.conftest import corrupt_day_file, run_python, score_in_fresh_process, tree_digest_of

pytestmark = pytest.mark.slow
COMPONENTS = {"TemporalExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate",
              "Transform", "Tuner", "Trainer", "incumbent_resolver", "baseline_trainer", "Evaluator", "Pusher",
              "BulkInferrer"}


def test_end_to_end_run_blesses_and_pushes(pipeline_run, small_logs):
    s = pipeline_run["summary"]
    assert not s.failed, s.not_pushed_reason
    ran = [c["component"] for c in s.components]
    assert sorted(ran) == sorted(COMPONENTS) and len(ran) == len(create_pipeline(pipeline_run["config"]).components)  # each exactly once
    assert all(c["state"] == "done" for c in s.components)  # incumbent_resolver too: it resolved nothing
    for source in SOURCES:  # TFMA calibration of the stream head on its source, inside the shared run's band
        (c,) = s.calibration[source].values()
        assert 0.5 <= c["calibration"] <= 2.0 and 0 <= c["ece"] < 0.1 and len(c["buckets"]) >= 10
    report = open(os.path.join(pipeline_run["root"], "report.md")).read()  # the gate's calibration, in the report
    assert all(f"{source}, " in report and "expected calibration error" in report for source in SOURCES)
    assert s.blessed is True and s.not_pushed_reason is None
    assert os.path.isdir(s.pushed_model)
    assert s.pushed_model.startswith(pipeline_run["config"].serving)
    rows = len(pd.concat([pq.read_table(f).to_pandas() for f in glob.glob(f"{small_logs}/date=*/*.parquet")]))
    assert sum(s.splits.values()) == rows and all(s.splits[k] > 0 for k in ("train", "eval", "test"))
    for source in SOURCES:
        assert set(s.ap[source]) == set(pipeline_run["config"].model.heads)
        assert all(0 < v < 1 for v in s.ap[source].values())
    on_disk = json.load(open(os.path.join(pipeline_run["root"], "summary.json")))
    assert {k: on_disk[k] for k in ("blessed", "pushed_model", "splits", "ap")} == \
           {k: getattr(s, k) for k in ("blessed", "pushed_model", "splits", "ap")}


def test_the_evaluator_decodes_only_the_gates_evaluation_schema_and_slices_by_source(pipeline_run):
    import tensorflow_data_validation as tfdv
    import tensorflow_model_analysis as tfma
    from ml_metadata.proto import metadata_store_pb2

    from evaluation.eval_config import evaluation_features
    from pipeline.run_summary import _store

    root = RunRoot(pipeline_run["root"])
    projected = root.artifact(Node.GATE, "evaluation_schema")
    names = {f.name for f in tfdv.load_schema_text(os.path.join(projected, "schema.pbtxt")).feature}
    assert names == set(evaluation_features(pipeline_run["config"].model.tasks()))
    store = _store(pipeline_run["config"].metadata)  # the schema the Evaluator's execution read (MLMD)
    (execution,) = store.get_executions_by_type("tfx.components.evaluator.component.Evaluator")
    inputs = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
              if e.type == metadata_store_pb2.Event.INPUT]
    schemas = [a.uri for a in store.get_artifacts_by_id(inputs) if a.type_id == store.get_artifact_type("Schema").id]
    assert [os.path.realpath(u) for u in schemas] == [os.path.realpath(projected)]
    evaluation = root.artifact(Node.EVALUATOR, "evaluation")
    keys = {tuple(k for k, _ in key) for key, _ in tfma.load_eval_result(evaluation, model_name="candidate").slicing_metrics}
    assert keys == {("source",), ("popularity_bucket", "source")}  # no overall slice


def test_pushed_model_scores_raw_examples_in_a_fresh_process(pipeline_run):
    pattern = os.path.join(RunRoot(pipeline_run["root"]).artifact(Node.EXAMPLE_GEN, "examples"), "Split-test", "*.gz")
    scored = score_in_fresh_process(pipeline_run["summary"].pushed_model, pattern, 8)
    heads = set(pipeline_run["config"].model.heads)
    assert set(scored["serving_default"]) == heads == set(scored["serving_raw"])
    for head in heads:
        a, b = scored["serving_default"][head], scored["serving_raw"][head]
        assert len(a) == 8 and all(0 < p < 1 for p in a)
        assert a == pytest.approx(b, abs=1e-6)
    assert not set(scored["raw_inputs"]) & set(LABELS)


def test_transform_output_holds_no_true_probability(transformed):
    tft_out, _, _ = transformed
    assert not [k for k in tft_out.transformed_feature_spec() if k.startswith("true_p_")]
    from models.export import serving_feature_spec

    serving = serving_feature_spec(tft_out)
    assert not [k for k in serving if k.startswith("true_p_") or k in LABELS]
    assert "source" in serving and "user_history" in serving


def test_rerun_reuses_cache_then_a_worse_model_is_not_blessed(pipeline_run, tmp_path):
    from pipeline.local_runner import run_pipeline

    config = pipeline_run["config"]
    pushed = pipeline_run["summary"].pushed_model
    again = run_pipeline(config, quiet=True)
    states = {c["component"]: c["state"] for c in again.components}
    for name in ("TemporalExampleGen", "StatisticsGen", "Transform", "Tuner", "Trainer"):
        assert states[name] == "cached", states
    # with a pushed model, the DAG's incumbent_resolver resolves it and baseline_trainer serves it as is
    assert states["baseline_trainer"] == "done"
    assert again.baseline["kind"] == "incumbent (latest pushed model, resolved in the DAG)"
    assert tree_digest_of(again.baseline["model"]) == tree_digest_of(pushed)
    for source in SOURCES:
        assert again.baseline["ap"][source]  # the incumbent's AP per source is reported

    # an imported incumbent better on every source than a 1-step candidate: not blessed, nothing pushed
    # (no Tuner: the new model config would re-run it, and the gate is what this checks)
    from models.config import TuningConfig

    serving = str(tmp_path / "serving")
    worse = run_pipeline(config.replace(model=config.model.replace(train_steps=1, eval_every_steps=1),
                                        tuning=TuningConfig(trials=0),
                                        baseline_model=pushed, serving_dir=serving, ap_tolerance=0.01), quiet=True)
    states = {c["component"]: c["state"] for c in worse.components}
    assert states["Trainer"] == "done" and states["Transform"] == "cached"
    assert worse.blessed is False and worse.pushed_model is None
    assert "below the baseline's" in worse.not_pushed_reason, worse.not_pushed_reason
    assert "exact_average_precision" in worse.not_pushed_reason
    assert not os.path.exists(serving) or not os.listdir(serving)


def test_tuned_hyperparameters_reach_the_pushed_model(pipeline_run):
    from models.export import read_model_config

    s = pipeline_run["summary"]
    states = {c["component"]: c["state"] for c in s.components}
    assert states["Tuner"] == "done" and states["baseline_trainer"] == "done"
    tuned = s.tuned_hyperparameters
    assert set(tuned) >= {"source_alpha", "learning_rate", "embedding_dim", "encoder_units", "dropout"}
    served = read_model_config(s.pushed_model)
    assert served == pipeline_run["config"].model.with_hyperparameters(tuned)
    # the first run had no incumbent: a promotions baseline trained in the same run, compared per source
    assert s.baseline["kind"].startswith("promotions_baseline")
    assert set(s.baseline["ap"]["ads"]) >= {"promo_stream", "ad_stream"}  # ad_stream: its promotions head


def test_the_promotions_baseline_is_trained_once_as_the_tuners_reference(pipeline_run):
    """With a Tuner and nothing pushed yet, the Tuner trains the promotions baseline at the baseline's
    full budget as its reference, scores its trials against the evaluation a trial's budget reaches
    in it, and baseline_trainer serves that very model instead of training it again. Read off its
    evaluations, that reference had no checkpoint refinement, and so neither have the trials."""
    from models.config import REFERENCE_FILE, REFERENCE_MODEL_KEY
    from models.tuning_log import read_trials

    root, s = RunRoot(pipeline_run["root"]), pipeline_run["summary"]
    results = s.artifacts[Node.TUNER]["TunerResults"]  # this run's (later tests run on the same root)
    reference = os.path.join(results, "reference")
    with open(os.path.join(reference, REFERENCE_FILE)) as f:
        record = json.load(f)
    assert record["transform_graph"] == s.artifacts[Node.TRANSFORM]["TransformGraph"]
    # the baseline's budget, not the trials' (the shared run: 120 steps, trials of 40, an evaluation every 40)
    assert json.loads(record["model_config"])["train_steps"] == 120 and record["tuning_steps"] == 40
    assert record["tuning_reference_step"] == 40 and record["restored_step"] <= 120
    with open(glob.glob(os.path.join(s.artifacts[Node.TUNER]["HyperParameters"], "*"))[0]) as f:
        assert json.load(f)[REFERENCE_MODEL_KEY] == os.path.join(reference, "Format-Serving")
    assert "by the Tuner" in s.baseline["kind"]
    baseline = s.baseline["model"]
    assert os.path.exists(os.path.join(baseline, REFERENCE_FILE))
    assert tree_digest_of(baseline) == tree_digest_of(reference)  # served as is, not trained again
    run_dir = os.path.join(root.node(Node.BASELINE_TRAINER), "model_run", os.path.basename(baseline))
    assert os.listdir(os.path.join(run_dir, "logs"))  # its training curves too
    trials = read_trials(os.path.join(root.node(Node.TUNER), "tensorboard",
                                      os.path.basename(results.rstrip("/"))))
    assert trials
    for t in trials:  # every trial's relative AP is against the reference's AP at the trials' budget
        for source, ref in record["tuning_reference_eval_ap"].items():
            assert t["relative_ap"][source] == pytest.approx(t["eval_ap"][source] / ref)
        # refinement every 20 steps in this run (tests/test_study.py: trials against a refined reference refine)
        assert t["refined_steps"] == [] and t["step"] % 40 == 0


def test_the_baseline_trainer_serves_only_a_reference_of_its_own_data_and_config(tmp_path):
    """`tuner_reference` names the Tuner's reference only when it was trained on the same Transform
    output with the baseline's very config; otherwise the baseline Trainer trains (None)."""
    from models.config import REFERENCE_FILE, REFERENCE_MODEL_KEY, preset
    from models.trainer import tuner_reference

    cfg = preset("promotions_baseline")
    folder = tmp_path / "reference"
    (folder / "Format-Serving").mkdir(parents=True)
    (folder / REFERENCE_FILE).write_text(json.dumps({"transform_graph": "/root/Transform/transform_graph/7",
                                                     "model_config": cfg.to_json()}))
    hp = {"values": {}, REFERENCE_MODEL_KEY: str(folder / "Format-Serving")}
    assert tuner_reference(hp, "/root/Transform/transform_graph/7", cfg) == str(folder / "Format-Serving")
    assert tuner_reference(hp, "/root/Transform/transform_graph/8", cfg) is None  # another Transform output
    assert tuner_reference(hp, "/root/Transform/transform_graph/7", cfg.replace(train_steps=7)) is None
    assert tuner_reference({"values": {}}, "/root/Transform/transform_graph/7", cfg) is None  # none named
    (folder / REFERENCE_FILE).unlink()
    assert tuner_reference(hp, "/root/Transform/transform_graph/7", cfg) is None  # named but not there


def test_without_tuning_the_trainer_takes_the_config_as_is(pipeline_run):
    from models.config import TuningConfig

    config = pipeline_run["config"].replace(tuning=TuningConfig(trials=0))
    ids = [c.id for c in create_pipeline(config).components]
    assert "Tuner" not in ids and "latest_hyperparameters_resolver" not in ids
    trainer = next(c for c in create_pipeline(config).components if c.id == "Trainer")
    assert "hyperparameters" not in trainer.inputs or not trainer.inputs["hyperparameters"]
    assert trainer.exec_properties["custom_config"]
    scheduled = config.replace(reuse_hyperparameters=True)
    assert "latest_hyperparameters_resolver" in [c.id for c in create_pipeline(scheduled).components]


def _corrupt(src, dst):
    shutil.copytree(src, dst)
    day = sorted(glob.glob(os.path.join(dst, "date=*", "*.parquet")))[4]
    corrupt_day_file(day)
    return os.path.basename(os.path.dirname(day))


def test_corrupted_day_stops_at_the_gate_and_pushes_nothing(pipeline_run, small_logs, tmp_path):
    data = str(tmp_path / "logs")
    _corrupt(small_logs, data)
    root = str(tmp_path / "run")
    serving = pipeline_run["config"].serving
    serving_before = sorted(os.listdir(serving))
    r = run_python(["-m", "cli", "run", "--data", data, "--root", root, "--serving-dir", serving,
                    "--test-days", "3", "--eval-days", "2", "--train-steps", "5"])
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    summary = json.load(open(os.path.join(root, "summary.json")))
    reason = summary["not_pushed_reason"]
    assert "ValidationGate" in reason
    # the strict reader refuses the unknown source and the label out of range (file and day named),
    # TFDV the dropped column
    for needle in ("field 'source' not one of", "field 'stream' not 0 or 1", "feature 'podcast_id'",
                   "impressions.parquet (day "):
        assert needle in reason, reason
    assert "field 'source' not one of" in r.stdout
    assert summary["pushed_model"] is None and summary["blessed"] is False
    ran = {c["component"] for c in summary["components"]}
    assert not ran & {"Transform", "Trainer", "Evaluator", "Pusher"}
    assert not os.path.exists(os.path.join(root, "pipeline", "Transform"))
    assert sorted(os.listdir(serving)) == serving_before


def test_in_process_scoring_equals_the_evaluator(pipeline_run, transformed):
    """The ablation scores Keras models in-process on Transform's test split; its per-source AP of the
    Trainer's model must be the Evaluator's (TFMA on raw examples through serving_default)."""
    import tensorflow as tf

    from core.tasks import stream_head
    from models.evaluate import score_dataset, stream_ap_by_source
    from models.export import read_model_config
    from models.model import build_model, dummy_features
    from models.preprocessing import cardinalities
    from models.sampling import eval_dataset, examples_decoder

    tft_out, files, _ = transformed
    model_dir = os.path.join(pipeline_run["summary"].artifacts["Trainer"]["Model"], "Format-Serving")
    # exports carry no Keras layer traces (models/export.py): the model is rebuilt from the config it
    # exported with and restored from the export's variables, every one of its own matched
    cfg = read_model_config(model_dir)
    model = build_model(cfg, cardinalities(tft_out), cfg.tasks())
    model(dummy_features(), training=False)
    tf.train.Checkpoint(model).read(os.path.join(model_dir, "variables", "variables")).assert_existing_objects_matched()

    tasks = pipeline_run["config"].model.tasks()
    ap = stream_ap_by_source(tasks, score_dataset(model, eval_dataset(files["test"],
                                                                      examples_decoder(tft_out, files["test"]))))
    evaluator = pipeline_run["summary"].ap
    for source in SOURCES:
        assert ap[source] == pytest.approx(evaluator[source][stream_head(tasks, source)], abs=1e-6)

def test_served_probabilities_are_calibrated_per_source_on_the_eval_split(pipeline_run):
    """The pushed SavedModel, loaded in a fresh process, through both signatures: on the eval split
    each source's stream head predicts the observed stream rate within the default band."""
    import tensorflow as tf

    from core.tasks import stream_head
    from evaluation.eval_config import DEFAULT_CALIBRATION_BAND

    pattern = os.path.join(RunRoot(pipeline_run["root"]).artifact(Node.EXAMPLE_GEN, "examples"), "Split-eval", "*.gz")
    records = [tf.train.Example.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP")]
    scored = score_in_fresh_process(pipeline_run["summary"].pushed_model, pattern, len(records))
    tasks = pipeline_run["config"].model.tasks()
    lo, hi = DEFAULT_CALIBRATION_BAND
    for signature in ("serving_default", "serving_raw"):
        for source in SOURCES:
            rows = [i for i, e in enumerate(records) if e.features.feature["source"].bytes_list.value[0].decode() == source]
            predicted = sum(scored[signature][stream_head(tasks, source)][i] for i in rows) / len(rows)
            observed = sum(records[i].features.feature["stream"].int64_list.value[0] for i in rows) / len(rows)
            assert lo <= predicted / observed <= hi, (signature, source, predicted, observed)
    report = json.load(open(os.path.join(pipeline_run["summary"].pushed_model, "assets.extra", "calibration.json")))
    assert set(report["eval"]) == set(SOURCES) and report["offsets"]


def test_the_curated_schema_is_imported_by_content_so_an_edited_schema_is_not_served_from_the_cache(tmp_path):
    """ImportSchemaGen's only input is a path, and TFX reuses an execution whose inputs match: the
    pipeline hands it a copy named by the schema's content, so the same schema is the same path (reruns
    reuse every step) and an edited one a new path (imported anew)."""
    from pipeline.pipeline import schema_snapshot
    from schemas import SCHEMA_FILE

    root = str(tmp_path / "root")
    schema = tmp_path / "impressions.pbtxt"
    schema.write_text(open(SCHEMA_FILE).read())
    first = schema_snapshot(str(schema), root)
    assert first.startswith(RunRoot(root).curated_schema) and open(first).read() == schema.read_text()
    assert schema_snapshot(str(schema), root) == first
    schema.write_text(schema.read_text() + "\n# an edit\n")
    second = schema_snapshot(str(schema), root)
    assert second != first and open(second).read().endswith("# an edit\n") and os.path.isfile(first)
    assert schema_snapshot(str(schema), "gs://bucket/root") == str(schema)  # remote root: as it is
    assert schema_snapshot("/image/schemas/impressions.pbtxt", root) == "/image/schemas/impressions.pbtxt"
