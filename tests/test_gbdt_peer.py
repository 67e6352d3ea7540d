"""The GBDT peer (bench/gbdt_peer.py) on the small logs: pooled and per-source LightGBM, early-stopped
on eval AP, scored on the test split of the run's temporal split."""
import json
import math
import os
import subprocess
import sys

import pytest

from core.fields import DERIVED_NAMES, SOURCES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gbdt_peer_runs_on_small_logs_with_the_engineered_features(small_logs, tmp_path):
    pytest.importorskip("lightgbm")
    out = tmp_path / "gbdt.json"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "gbdt_peer.py"), "--data", small_logs,
                           "--rounds", "60", "--patience", "10", "--json", str(out),
                           "--against", "promotions=0.2,ads=0.1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(DERIVED_NAMES) <= set(result["inputs"]) and "user_id" in result["inputs"] and "source" in result["inputs"]
    for variant in ("pooled", "per_source"):
        for source in SOURCES:
            ap = result[variant][source]
            assert not math.isnan(ap) and 0.0 < ap <= 1.0
    assert 1 <= result["rounds"]["pooled"] <= 60
    assert "pooled: model / GBDT AP ratio promotions=" in proc.stdout


def test_gbdt_peer_refuses_a_missing_folder(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "gbdt_peer.py"), "--data",
                           str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--data" in proc.stderr and "nope" in proc.stderr


def test_the_plain_keras_floor_trains_the_unified_presets_mix_on_small_logs(small_logs):
    """bench/peer.py's end-to-end floor (the plain Keras peer) with the `unified` preset, whose natural mix
    needs the training split's counts per source, and with the seed's 50/50: both train and score."""
    import numpy as np

    from bench.peer import floor
    from models.config import preset
    from tests.conftest import SMALL_SPLIT

    for name in ("unified", "unified_balanced"):
        cfg = preset(name, train_steps=20, eval_every_steps=10, batch_size=64, shuffle_buffer=500)
        stages, ap, rows = floor(small_logs, cfg, SMALL_SPLIT)
        assert set(ap) == {"promotions", "ads"} and all(np.isfinite(v) and v > 0 for v in ap.values()), ap
        assert rows["train"] > 0 and any(k.startswith("fit (") for k in stages)
