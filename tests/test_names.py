"""The homes of names: the run-root layout (`RunRoot`), the run summary's one JSON form
(`RunSummary`) and the config enums. No pipeline run: folders and values made here."""
import json
import math

import pytest

from models.config import Mix, ModelConfig, Strategy
from pipeline.run_root import MODEL_SERVING_DIR, Node, RunRoot
from pipeline.run_summary import FAILED, RunSummary


def _model(root, node, execution, with_saved_model=True):
    folder = root / "pipeline" / node / "model" / str(execution) / MODEL_SERVING_DIR
    folder.mkdir(parents=True)
    if with_saved_model:
        (folder / "saved_model.pb").write_bytes(b"")
    return str(folder)


def test_run_root_finds_the_newest_artifact_by_execution_number(tmp_path):
    root = RunRoot(str(tmp_path))
    assert root.newest_artifact(Node.TRAINER, "model") is None
    with pytest.raises(LookupError) as e:
        root.artifact(Node.TRAINER, "model")
    assert "Trainer/model" in str(e.value) and f"--root {tmp_path}" in str(e.value)
    nine = _model(tmp_path, Node.TRAINER, 9)
    twelve = _model(tmp_path, Node.TRAINER, 12)  # "12" < "9" as text: order must be numeric
    _model(tmp_path, Node.TRAINER, 15, with_saved_model=False)  # a half-written artifact
    assert root.artifacts(Node.TRAINER, "model", inside=MODEL_SERVING_DIR) == [
        nine, twelve, str(tmp_path / "pipeline" / Node.TRAINER / "model" / "15" / MODEL_SERVING_DIR)]
    assert root.newest_artifact(Node.TRAINER, "model", inside=MODEL_SERVING_DIR, holding="saved_model.pb") == twelve
    assert root.artifact(Node.TRAINER, "model") == str(tmp_path / "pipeline" / Node.TRAINER / "model" / "15")


def test_run_root_paths_and_overrides(tmp_path):
    root = RunRoot("r")
    assert (root.summary, root.serving, root.metadata, root.data) == (
        "r/summary.json", "r/serving", "r/metadata.sqlite", "r/data")
    moved = RunRoot("r", serving_dir="/srv/models", metadata_path="/db/m.sqlite")
    assert (moved.serving, moved.metadata) == ("/srv/models", "/db/m.sqlite")


def test_run_summary_json_is_strict_and_round_trips():
    summary = RunSummary(state=FAILED, failed=True, ap={"ads": {"click": float("nan"), "ad_stream": 0.25}},
                         baseline={"model": "m", "kind": "k", "ap": {"ads": {"ad_stream": float("inf")}}},
                         components=[{"component": Node.TRAINER, "state": "done", "seconds": 1.5}])
    text = summary.to_json()

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    raw = json.loads(text, parse_constant=refuse)  # no NaN / Infinity tokens
    assert raw["ap"]["ads"] == {"click": None, "ad_stream": 0.25}
    assert raw["baseline"]["ap"]["ads"]["ad_stream"] is None
    back = RunSummary.from_json(text)
    assert back.ap["ads"]["click"] is None and back.component_states() == {Node.TRAINER: "done"}
    assert RunSummary.from_json(json.dumps({**raw, "from_a_newer_version": 1})).failed is True
    assert not math.isnan(back.ap["ads"]["ad_stream"])


def test_config_enums_keep_their_json_form():
    cfg = ModelConfig(mix="natural", strategy="mirrored")
    assert cfg.mix is Mix.NATURAL and cfg.strategy is Strategy.MIRRORED and cfg.mix == "natural"
    assert json.loads(cfg.to_json())["mix"] == "natural"
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError) as e:
        ModelConfig(strategy="tpu")
    assert "strategy must be one of ['default', 'mirrored', 'multi_worker'], got 'tpu'" in str(e.value)
