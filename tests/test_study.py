"""The ablation and cold-start reports: table assembly, relative changes, and a tiny real run."""
import json

import numpy as np
import pytest

from study.tables import (ablation_markdown, ablation_table, cold_start_markdown, cold_start_table,
                               top_fraction_rate)
from core.fields import popularity_bucket
from tests.conftest import run_python



def test_ablation_table_means_stds_and_relative_changes():
    runs = {"promotions_baseline": [{"promotions": 0.20, "ads": 0.10}, {"promotions": 0.22, "ads": 0.12}],
            "unified": [{"promotions": 0.23, "ads": 0.15}, {"promotions": 0.23, "ads": 0.17}]}
    t = ablation_table(runs, {"promotions": 0.3, "ads": 0.25})
    base, uni = t["variants"]["promotions_baseline"], t["variants"]["unified"]
    assert base["promotions_ap"]["mean"] == pytest.approx(0.21)
    assert base["promotions_ap"]["std"] == pytest.approx(np.std([0.20, 0.22], ddof=1))
    assert base["promotions_ap"]["runs"] == [0.20, 0.22]
    assert base["rel_promotions"] == pytest.approx(0.0) and base["rel_ads"] == pytest.approx(0.0)
    assert uni["rel_promotions"] == pytest.approx(0.23 / 0.21 - 1)
    assert uni["rel_ads"] == pytest.approx(0.16 / 0.11 - 1)
    assert t["oracle"] == {"promotions_ap": 0.3, "ads_ap": 0.25}
    md = ablation_markdown(t)
    assert "+9.5%" in md and "+45.5%" in md and "oracle" in md


def test_without_baseline_relative_changes_are_absent():
    t = ablation_table({"unified": [{"promotions": 0.2, "ads": 0.1}]})
    assert t["variants"]["unified"]["rel_ads"] is None and t["oracle"]["ads_ap"] is None
    assert "n/a" in ablation_markdown(t)


def test_top_fraction_rate():
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    scores = np.arange(10)[::-1].astype(float)  # first is the most confident
    assert top_fraction_rate(labels, scores, 0.1) == 1.0
    assert top_fraction_rate(labels, scores, 0.5) == pytest.approx(0.2)


def test_bucket_assignment_uses_prior_impressions_only():
    assert [popularity_bucket(n) for n in (0, 9, 10, 99, 100, 999, 1000, 10**6)] == \
        ["0_new_lt10", "0_new_lt10", "1_tail_10_99", "1_tail_10_99", "2_torso_100_999", "2_torso_100_999",
         "3_head_1000plus", "3_head_1000plus"]


def test_cold_start_rows_and_gains():
    rng = np.random.default_rng(0)
    n = 4000
    prior = rng.choice([0, 5, 50, 500, 5000], n)
    labels = (rng.random(n) < 0.1).astype(int)
    good, bad = labels + rng.normal(0, 0.5, n), rng.random(n)

    def run(scores):
        return [{"ads": {"labels": labels, "scores": scores, "prior": prior}}]

    rows = cold_start_table({"promotions_baseline": run(bad), "unified": run(good)}, ["ads"],
                            ["promotions_baseline", "ads_only", "unified"])
    assert [r["bucket"] for r in rows] == ["0_new_lt10", "1_tail_10_99", "2_torso_100_999", "3_head_1000plus"]
    assert sum(r["impressions"] for r in rows) == n and sum(r["positives"] for r in rows) == labels.sum()
    for r in rows:
        assert r["ap"]["unified"] > r["ap"]["promotions_baseline"]
        assert r["unified_gain"]["promotions_baseline"] > 0
        assert r["top10_stream_rate"]["unified"] > r["top10_stream_rate"]["promotions_baseline"]
    assert "0_new_lt10" in cold_start_markdown(rows, ["promotions_baseline", "ads_only", "unified"])


@pytest.mark.slow
def test_ablation_on_the_shared_transform_output_writes_all_reports(small_logs, transformed, tmp_path):
    """`run_ablation` (what `podcast-mtl ablate` runs after ExampleGen .. Transform) on the shared run's
    Transform output: every preset tuned with the same budget, the untuned recipe beside them, reports
    written; the reference is trained at the trials' budget, checkpoint refinement included, and so
    the trials refine too. The data pipeline of `ablate` and of the sweep is run by tests/test_ads_sweep.py."""
    from models.config import TuningConfig
    from study.ablation import run_ablation
    from tests.conftest import SMALL_SPLIT

    _, files, graph = transformed
    out = tmp_path / "study"
    lines = []
    run_ablation({"graph": graph, "files": files}, small_logs, SMALL_SPLIT, ["promotions_baseline", "unified"], 1,
                 str(out), {"train_steps": 20, "eval_every_steps": 10, "checkpoint_refine_steps": 5},
                 tuning=TuningConfig(trials=2, steps=20), progress=lines.append)
    text = "\n".join(lines)
    assert "tuning unified: 2 trials" in text and "[3/3] unified seed 0" in text, text
    for name in ("ablation.json", "ablation.md", "ablation.png", "cold_start.json", "cold_start.md", "cold_start.png"):
        assert (out / name).stat().st_size > 0, name
    table = json.loads((out / "ablation.json").read_text())
    # every preset tuned with the same budget, and the unified preset's own values untuned beside them
    assert set(table["variants"]) == {"promotions_baseline", "unified", "unified_untuned"}
    assert set(table["meta"]["tuned"]) == {"promotions_baseline", "unified"}
    assert all(len(t["trials"]) == 2 for t in table["meta"]["tuned"].values())
    assert all(trial["refined_steps"] for t in table["meta"]["tuned"].values() for trial in t["trials"])
    assert "untuned" in (out / "ablation.md").read_text()
    assert table["variants"]["promotions_baseline"]["rel_ads"] == pytest.approx(0.0)
    assert table["oracle"]["ads_ap"] > 0  # synthetic logs carry the true probability
    cold = json.loads((out / "cold_start.json").read_text())
    assert {r["source"] for r in cold["rows"]} == {"promotions", "ads"}


def test_bad_preset_is_a_usage_error(tmp_path):
    r = run_python(["-m", "cli", "ablate", "--presets", "best", "--out", str(tmp_path)])
    assert r.returncode == 2 and "unknown best" in r.stderr
