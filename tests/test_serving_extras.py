"""Serving conveniences and run reports, on the shared pipeline run: batch scoring (`podcast-mtl
score`), BulkInferrer, TF Serving warm-up requests, a serving_raw JSON request as a client sends it
(the example of docs/serving.md), the report files and a quiet console."""
import glob
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.fields import FEATURE_NAMES, LABELS, SOURCES
from tests.conftest import run_python


@pytest.fixture(scope="session")
def pushed(pipeline_run):
    """The pushed model, loaded in this process: (model dir, loaded SavedModel)."""
    import tensorflow as tf

    path = pipeline_run["summary"].pushed_model
    assert path and os.path.isdir(path), pipeline_run["summary"].not_pushed_reason
    return path, tf.saved_model.load(path)


def _raw_specs(loaded):
    return loaded.signatures["serving_raw"].structured_input_signature[1]


def _two_days(small_logs, tmp_path):
    data = tmp_path / "logs"
    for day in sorted(glob.glob(os.path.join(small_logs, "date=*")))[-2:]:
        shutil.copytree(day, data / os.path.basename(day))
    return str(data)


# --- podcast-mtl score ----------------------------------------------------------------------------

def test_resolve_model_dir_takes_the_newest_numbered_version(tmp_path):
    from models.batch_score import ScoreInputError, resolve_model_dir

    for v in ("9", "10", "2", "notes"):
        (tmp_path / v).mkdir()
        (tmp_path / v / "saved_model.pb").write_bytes(b"")
    assert resolve_model_dir(str(tmp_path)) == str(tmp_path / "10")  # numerically, not as text
    assert resolve_model_dir(str(tmp_path / "2")) == str(tmp_path / "2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoreInputError, match="empty.*neither a SavedModel"):
        resolve_model_dir(str(tmp_path / "empty"))


@pytest.mark.slow
def test_score_cli_writes_one_column_per_head_for_every_impression(pipeline_run, small_logs, tmp_path):
    data = _two_days(small_logs, tmp_path)
    out = str(tmp_path / "scores.parquet")
    serving = pipeline_run["config"].serving  # a serving folder: the newest version is used
    r = run_python(["-m", "cli", "score", "--model", serving, "--data", data, "--out", out,
                    "--batch-size", "700"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert re.search(r"\[1/2\] date=\S+: [\d,]+ rows scored", r.stdout) and "[2/2]" in r.stdout, r.stdout
    assert r.stderr.strip() == "", r.stderr[-2000:]  # a quiet console: no TensorFlow / Google noise
    newest = max((d for d in os.listdir(serving) if d.isdigit()), key=int)
    assert os.path.join(serving, newest) in r.stdout
    logs = pd.concat([pq.read_table(f).to_pandas() for f in sorted(glob.glob(f"{data}/date=*/*.parquet"))])
    scores = pq.read_table(out).to_pandas()
    heads = set(pipeline_run["config"].model.heads)
    assert list(scores.columns) == ["impression_id"] + sorted(heads)
    assert scores["impression_id"].tolist() == logs["impression_id"].tolist()
    for head in heads:
        assert scores[head].between(0, 1, inclusive="neither").all()
    assert scores[sorted(heads)].std().min() > 0  # scores differ between impressions


@pytest.mark.slow
def test_score_through_serving_default_equals_serving_raw(pushed, pipeline_run, small_logs, tmp_path):
    from models.batch_score import score_logs

    data = _two_days(small_logs, tmp_path)
    lines = []
    raw = score_logs(pushed[0], data, str(tmp_path / "raw.parquet"), "serving_raw", 1000, lines.append)
    default = score_logs(pushed[0], data, str(tmp_path / "default.parquet"), "serving_default", 1000, lines.append)
    assert raw["rows"] == default["rows"] > 1000 and raw["heads"] == default["heads"]
    a = pq.read_table(tmp_path / "raw.parquet").to_pandas()
    b = pq.read_table(tmp_path / "default.parquet").to_pandas()
    assert a["impression_id"].tolist() == b["impression_id"].tolist()
    np.testing.assert_allclose(a[raw["heads"]].to_numpy(), b[raw["heads"]].to_numpy(), atol=1e-5)
    assert any("rows/s" in line for line in lines)


def _bad_copy(small_logs, tmp_path, change):
    data = tmp_path / "bad"
    day = sorted(glob.glob(os.path.join(small_logs, "date=*")))[-1]
    shutil.copytree(day, data / os.path.basename(day))
    path = glob.glob(str(data / "date=*" / "*.parquet"))[0]
    table = change(pq.read_table(path))
    pq.write_table(table, path)
    return str(data), path


@pytest.mark.slow
@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(["podcast_id"]), "field 'podcast_id' is missing"),
    (lambda t: t.set_column(t.schema.get_field_index("event_time"), "event_time",
                            pa.array([str(v) for v in t.column("event_time").to_pylist()])),
     "field 'event_time' has type string, expected int64 (strings are not parsed as numbers)"),
    (lambda t: t.set_column(t.schema.get_field_index("user_history"), "user_history",
                            pa.array(["p1"] * t.num_rows)), "field 'user_history' has type string, expected list"),
    (lambda t: t.set_column(t.schema.get_field_index("source"), "source",
                            pa.array([None] + t.column("source").to_pylist()[1:], pa.string())),
     "1 rows: null in field 'source'"),
])
def test_score_names_the_file_and_field_of_a_bad_input(pushed, small_logs, tmp_path, change, message):
    from models.batch_score import ScoreInputError, score_logs

    data, path = _bad_copy(small_logs, tmp_path, change)
    out = str(tmp_path / "scores.parquet")
    with pytest.raises(ScoreInputError) as e:
        score_logs(pushed[0], data, out, progress=None)
    assert str(e.value).startswith(path) and message in str(e.value), str(e.value)
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")


# --- BulkInferrer ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_bulk_inferrer_scores_the_test_split_with_the_blessed_model(pipeline_run):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    s = pipeline_run["summary"]
    assert pipeline_run["config"].bulk_inference
    uri = s.artifacts["BulkInferrer"]["InferenceResult"]
    files = glob.glob(os.path.join(uri, "*.gz"))
    assert files, os.listdir(uri)
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert len(logs) == s.splits["test"]
    heads = set(pipeline_run["config"].model.heads)
    first = logs[0].predict_log
    assert set(first.response.outputs) == heads
    values = [float(v) for log in logs[:200] for v in tf.make_ndarray(log.predict_log.response.outputs["ad_stream"])
              .ravel()]
    assert all(0 < v < 1 for v in values) and np.std(values) > 0


# --- warm-up requests -----------------------------------------------------------------------------

@pytest.mark.slow
def test_pushed_model_carries_warmup_requests_of_both_signatures_that_score(pushed):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from models.export import WARMUP_FILE

    path, loaded = pushed
    warmup = os.path.join(path, "assets.extra", WARMUP_FILE)
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    signatures = [r.predict_log.request.model_spec.signature_name for r in records]
    assert signatures == ["serving_default", "serving_raw"] * 2  # batch sizes 1 and 4, each signature
    sources = set()
    for default, raw in zip(records[::2], records[1::2]):
        request = default.predict_log.request
        examples = tf.make_ndarray(request.inputs["examples"])
        assert len(examples) in (1, 4)
        for e in examples:
            features = tf.train.Example.FromString(e).features.feature
            assert set(features) <= set(FEATURE_NAMES) and not set(features) & set(LABELS)
            sources.add(features["source"].bytes_list.value[0].decode())
        out = loaded.signatures["serving_default"](examples=tf.constant(examples))
        assert set(out) == set(loaded.signatures["serving_default"].structured_outputs)
        for v in out.values():
            assert v.shape[0] == len(examples) and np.all((v.numpy() > 0) & (v.numpy() < 1))
        # the serving_raw request holds the same impressions: the same scores through the other signature
        raw_inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in raw.predict_log.request.inputs.items()}
        fn = loaded.signatures["serving_raw"]
        assert set(raw_inputs) == set(fn.structured_input_signature[1])
        by_raw = fn(**raw_inputs)
        for head, v in out.items():
            np.testing.assert_allclose(by_raw[head].numpy(), v.numpy(), atol=1e-5)
    assert sources == set(SOURCES)


# --- a serving_raw request as a JSON client sends it ---------------------------------------------

# The body of `POST /v1/models/podcast_mtl:predict` for TF Serving (columnar `inputs`: one list per
# field, one entry per impression), as docs/serving.md shows it; kept here, in code, so that no test
# parses documentation.
SERVING_RAW_REQUEST = """{"signature_name": "serving_raw", "inputs": {
  "event_time": [1768521795, 1768521843],
  "source": ["promotions", "ads"],
  "surface": ["search_promo", "video_takeover"],
  "market": ["US", "IN"],
  "platform": ["ios", "ios"],
  "user_id": ["u1775", "u1512"],
  "user_history": [["p109", "p120", "p28", "p219"], ["p119", "p99", "p297", ""]],
  "user_follows": [["p109", "p120"], ["p119", ""]],
  "user_tenure_bucket": ["30d_1y", "30d_1y"],
  "user_activity_level": ["high", ""],
  "user_following_range": ["1-2", ""],
  "user_followers_range": ["0", ""],
  "podcast_id": ["p47", "p64"],
  "episode_id": ["p47-e0", "p64-e0"],
  "genre": ["true_crime", "tech"],
  "creator_id": ["c66", "c12"],
  "episode_duration_s": [2710, 0],
  "episode_format": ["full", ""],
  "podcast_age_days": [2, 3],
  "podcast_recent_streams": [0, 5],
  "podcast_prior_impressions": [88, 113],
  "promo_slot": [3, 0],
  "promo_layout": ["card", ""],
  "ad_format": ["", "video"],
  "campaign_id": ["", "cmp29"],
  "creative_id": ["", "cr64-2-1"]
}}"""


def test_serving_raw_request_follows_the_field_table():
    """What a JSON client must send, checked against `core.fields`: every feature and no label, one
    entry per impression, list fields as lists padded with "" to one width, and a field of the other
    source "" (string) or 0 (int)."""
    from core.fields import FEATURES, Dtype

    request = json.loads(SERVING_RAW_REQUEST)
    assert request["signature_name"] == "serving_raw"
    inputs = request["inputs"]
    assert set(inputs) == set(FEATURE_NAMES), set(inputs) ^ set(FEATURE_NAMES)
    n = len(inputs["source"])
    assert sorted(inputs["source"]) == sorted(SOURCES) and all(len(v) == n for v in inputs.values())
    for f in FEATURES:
        values = inputs[f.name]
        python_type = str if f.dtype == Dtype.STRING else int
        if f.is_list:
            assert len({len(row) for row in values}) == 1, f"{f.name}: lists padded to one width"
            assert all(isinstance(x, str) for row in values for x in row), f.name
            for row in values:
                ids = list(row)
                while ids and ids[-1] == "":
                    ids.pop()
                assert "" not in ids, f"{f.name}: padding only at the end"
        else:
            assert all(isinstance(x, python_type) for x in values), f.name
        for source, value in zip(inputs["source"], values):
            if f.only_on and f.only_on != source:
                assert value == ("" if f.dtype == Dtype.STRING else 0), (f.name, source, value)


@pytest.mark.slow
def test_serving_raw_json_request_scores_with_the_pushed_model(pushed):
    import tensorflow as tf

    from models.batch_score import _examples
    from core.serving import SERVING_DEFAULT, SERVING_RAW

    _, loaded = pushed
    specs = _raw_specs(loaded)
    inputs = json.loads(SERVING_RAW_REQUEST)["inputs"]
    assert set(inputs) == set(specs), set(inputs) ^ set(specs)  # every input the signature takes, no more
    n = len(inputs["source"])
    tensors = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
    by_raw = loaded.signatures[SERVING_RAW](**tensors)
    arrays = {k: np.array([x.encode() if isinstance(x, str) else x for x in v] if specs[k].shape.rank == 1 else
                          [[x.encode() for x in row] for row in v], dtype=object if specs[k].dtype == tf.string
                          else np.int64) for k, v in inputs.items()}
    by_examples = loaded.signatures[SERVING_DEFAULT](examples=tf.constant(_examples(arrays, specs)))
    for head, v in by_raw.items():
        assert v.shape[0] == n and np.all((v.numpy() > 0) & (v.numpy() < 1))
        np.testing.assert_allclose(v.numpy(), by_examples[head].numpy(), atol=1e-5)


# --- console (the run reports: tests/test_report.py) ----------------------------------------------

def test_every_cli_option_has_help_and_run_help_explains_presets():
    import argparse

    from models.config import PRESETS
    from cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "score"} <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings} has no help"
    help_text = subparsers.choices["run"].format_help()
    assert "--bulk-inference" in help_text
    for preset in PRESETS:
        assert preset in help_text.split("presets:")[1]
