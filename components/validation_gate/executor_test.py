"""The gate's message, from real TFDV anomalies on corrupted logs."""
import os

import pytest
import tensorflow_data_validation as tfdv

from components.validation_gate.executor import ANOMALIES_FILE, describe_anomalies
from schemas import SCHEMA_DIR


def _anomalies(df):
    schema = tfdv.load_schema_text(os.path.join(SCHEMA_DIR, "impressions.pbtxt"))
    stats = tfdv.generate_statistics_from_dataframe(df)
    return tfdv.validate_statistics(stats, schema)


@pytest.fixture(scope="module")
def good():
    from datagen.synthetic import GeneratorConfig, generate

    df = generate(GeneratorConfig(seed=2, days=3, users=200, podcasts=40, impressions_per_day=300))
    return df.drop(columns=["user_history", "user_follows"])  # dataframes cannot hold list features


def test_clean_logs_have_no_anomalies_on_scalar_fields(good, tmp_path):
    found = _anomalies(good)
    # list columns were dropped from the frame; they are the only expected complaint
    assert set(found.anomaly_info) <= {"user_history", "user_follows"}


def test_message_names_each_split_feature_and_problem(good, tmp_path):
    bad = good.copy()
    bad.loc[bad.index[0], "source"] = "radio"
    bad.loc[bad.index[1], "stream"] = 2
    bad = bad.drop(columns=["podcast_id"])
    anomalies = _anomalies(bad)
    split_dir = tmp_path / "Split-train"
    split_dir.mkdir()
    (split_dir / ANOMALIES_FILE).write_bytes(anomalies.SerializeToString())
    (tmp_path / "Split-eval").mkdir()
    (tmp_path / "Split-eval" / ANOMALIES_FILE).write_bytes(type(anomalies)().SerializeToString())
    lines = describe_anomalies(str(tmp_path), ["train", "eval"])
    text = "\n".join(lines)
    assert "feature 'source'" in text and "radio" in text
    assert "feature 'stream'" in text
    assert "feature 'podcast_id'" in text
    assert all(line.startswith("split 'train'") for line in lines)
    assert describe_anomalies(str(tmp_path), ["eval"]) == []


def test_the_evaluation_schema_keeps_only_the_evaluation_features_as_validated(tmp_path):
    import shutil

    from core.tasks import TASKS
    from components.validation_gate.executor import DataValidationError, write_projected_schema

    src = tmp_path / "schema"
    src.mkdir()
    shutil.copy(os.path.join(SCHEMA_DIR, "impressions.pbtxt"), src / "schema.pbtxt")
    whole = tfdv.load_schema_text(str(src / "schema.pbtxt"))
    features = sorted({"source", "popularity_bucket"} | {t.label for t in TASKS})  # what the DAG passes
    assert set(features) < {f.name for f in whole.feature}
    write_projected_schema(str(src), str(tmp_path / "eval"), list(features))
    projected = tfdv.load_schema_text(str(tmp_path / "eval" / "schema.pbtxt"))
    assert sorted(f.name for f in projected.feature) == sorted(features)
    by_name = {f.name: f for f in whole.feature}
    assert all(f == by_name[f.name] for f in projected.feature)  # types, domains, environments as validated
    assert list(projected.default_environment) == list(whole.default_environment)
    write_projected_schema(str(src), str(tmp_path / "all"), [])  # no list: the whole schema
    assert tfdv.load_schema_text(str(tmp_path / "all" / "schema.pbtxt")) == whole
    with pytest.raises(DataValidationError, match="no feature 'region'"):
        write_projected_schema(str(src), str(tmp_path / "bad"), ["source", "region"])
