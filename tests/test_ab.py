"""The budget-split A/B simulator (study/ab_simulation.py) on a small world, with scorers that need no
TensorFlow; one slow test runs `podcast-mtl simulate-ab` on the shared pipeline run's SavedModels."""
import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest

from datagen.synthetic import generate
from datagen.world import World
from study.ab_simulation import (ABConfig, Candidates, SEGMENTS, check_budgets, markdown, oracle_scorer, random_scorer,
                                 run_ab, simulate, summarize)
from tests.conftest import SMALL

CFG = ABConfig(days=3, repeats=2, bootstrap=400)


@pytest.fixture(scope="module")
def world():
    return World(SMALL)


@pytest.fixture(scope="module")
def history(world):
    return generate(SMALL, world)


def noisy_model(seed):
    """A fixed imperfect model: the truth times deterministic per-row noise (same in both arms)."""
    def score(c: Candidates):
        noise = np.random.default_rng([seed, int(c.users.sum() % 1000003), len(c)]).lognormal(0, 1.0, len(c))
        return c.true_stream() * noise
    return score


def rel(report, segment, metric):
    return report["summary"]["segments"][segment]["relative"][metric]


def test_equal_models_differ_by_nothing_but_noise(world, history):
    report = run_ab(world, {"control": noisy_model(1), "treatment": noisy_model(1)}, CFG, history=history)
    for segment in ("overall", "emerging"):
        for metric in ("impressions", "streams", "spend", "i2s", "ecps"):
            r = rel(report, segment, metric)
            lo, hi = r["ci95"]
            assert lo < 0 < hi, (segment, metric, r)
            assert r["p_value"] > 0.05, (segment, metric, r)


def test_true_probability_beats_random_on_every_metric(world, history):
    report = run_ab(world, {"control": random_scorer(5), "treatment": oracle_scorer}, CFG, history=history)
    seg = report["summary"]["segments"]
    for segment in ("overall", "emerging"):
        i2s, ecps, streams = (rel(report, segment, m) for m in ("i2s", "ecps", "streams"))
        assert i2s["estimate"] > 0 and ecps["estimate"] < 0 and streams["estimate"] > 0, (segment, seg[segment])
        arms = seg[segment]["arms"]
        assert arms["treatment"]["i2s"] > arms["control"]["i2s"]
        assert arms["treatment"]["ecps"] < arms["control"]["ecps"]
    overall = seg["overall"]["relative"]
    assert overall["i2s"]["ci95"][0] > 0 and overall["streams"]["ci95"][0] > 0 and overall["ecps"]["ci95"][1] < 0
    assert overall["i2s"]["p_value"] < 0.01 and overall["ecps"]["p_value"] < 0.01


def test_budgets_are_never_overspent_even_when_they_bind(world, history):
    tight = World(SMALL)
    tight.campaign_daily_budget = world.campaign_daily_budget * 0.2  # far fewer impressions than requests
    sim = simulate(tight, {"control": random_scorer(2), "treatment": oracle_scorer}, CFG, history=history)
    ledger = check_budgets(sim)
    assert len(ledger) > 30
    assert (ledger["spend"] <= ledger["budget"]).all()
    price = sim["budgets"]["price"].to_numpy()[ledger["campaign"]]
    exhausted = ledger["budget"] - ledger["spend"] < price
    assert exhausted.mean() > 0.5  # the budgets really bound
    reqs, imps = sim["requests"], sim["impressions"]
    assert len(imps) < 0.6 * len(reqs)  # unfilled requests once the money is gone
    # the default budgets: every campaign within its arm's share too
    ledger = check_budgets(simulate(world, {"control": random_scorer(2), "treatment": oracle_scorer},
                                    dataclasses.replace(CFG, days=1), history=history))
    assert (ledger["spend"] <= ledger["budget"]).all()


def test_results_are_deterministic_for_a_seed(world, history):
    cfg = dataclasses.replace(CFG, days=2, repeats=2, traffic_scale=2.0)
    scorers = {"control": noisy_model(3), "treatment": oracle_scorer}
    a = simulate(world, {"control": noisy_model(3), "treatment": oracle_scorer}, cfg, history=history)
    b = simulate(world, scorers, cfg, history=history)
    pd.testing.assert_frame_equal(a["impressions"], b["impressions"])
    pd.testing.assert_frame_equal(a["requests"], b["requests"])
    assert json.dumps(summarize(a, cfg), sort_keys=True) == json.dumps(summarize(b, cfg), sort_keys=True)
    c = simulate(world, scorers, dataclasses.replace(cfg, seed=1), history=history)
    assert not c["impressions"].equals(a["impressions"])


def test_report_files(world, history, tmp_path):
    report = run_ab(world, {"control": random_scorer(5), "treatment": oracle_scorer},
                    dataclasses.replace(CFG, days=1, repeats=1, bootstrap=100), out=str(tmp_path), history=history)
    assert {"ab.json", "ab.md", "ab.png"} <= set(os.listdir(tmp_path))
    saved = json.load(open(tmp_path / "ab.json"))
    assert set(saved["summary"]["segments"]) == set(SEGMENTS)
    assert saved["days"] == [SMALL.days - 1]
    assert "| overall |" in open(tmp_path / "ab.md").read()
    assert report["summary"]["segments"]["overall"]["arms"]["control"]["requests"] > 0


def test_cli_argument_errors(capsys):
    from cli import build_parser

    parser = build_parser()
    for argv in (["simulate-ab", "--days", "0"], ["simulate-ab", "--repeats", "x"],
                 ["simulate-ab", "--world-seed", "-1"], ["simulate-ab", "--traffic-scale", "0"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("podcast-mtl simulate-ab: error: ") for line in err), err


@pytest.mark.slow
def test_simulate_ab_cli_scores_the_run_models(pipeline_run, small_logs, tmp_path):
    """The pipeline run's promotions_baseline vs its pushed model through serving_raw on one day; the two
    signatures give the same ad-stream probabilities on simulated candidates."""
    from core.tasks import TASKS, stream_head
    from models.batch_score import SavedModelScorer
    from cli import main
    from pipeline.local_runner import latest_pushed

    root = pipeline_run["root"]
    out = str(tmp_path / "ab")
    assert main(["simulate-ab", "--root", root, "--data", small_logs, "--out", out, "--days", "1",
                 "--repeats", "1"]) == 0
    report = json.load(open(os.path.join(out, "ab.json")))
    assert "promo_stream" in report["models"]["control"] and report["models"]["treatment"].startswith(
        latest_pushed(os.path.join(root, "serving")))
    assert report["summary"]["segments"]["overall"]["arms"]["treatment"]["impressions"] > 0

    world = World(SMALL)
    model = latest_pushed(os.path.join(root, "serving"))
    head = stream_head(TASKS, "ads")
    cr = np.arange(0, world.n_creatives, max(1, world.n_creatives // 40))
    pods = world.campaign_podcast[world.creative_campaign[cr]]
    rows = Candidates(world, np.arange(cr.size) % SMALL.users, pods, cr,
                      np.full(cr.size, (world.start_day + SMALL.days - 1) * 86400 + 20 * 3600),
                      np.arange(cr.size) * 37, np.arange(cr.size) % 5).feature_rows()
    raw = SavedModelScorer(model, head, "serving_raw")(rows)
    default = SavedModelScorer(model, head, "serving_default")(rows)
    np.testing.assert_allclose(raw, default, rtol=1e-5, atol=1e-7)


def test_cli_model_and_world_errors(tmp_path):
    """--root / --control / --treatment / --data resolution, without TensorFlow: one-line errors."""
    from cli import UsageError, build_parser
    from cli.study_commands import ab_models
    from core.logs import write_logs

    parser = build_parser()
    root = tmp_path / "root"
    baseline = root / "pipeline" / "baseline_trainer" / "model" / "12" / "Format-Serving"
    older = root / "pipeline" / "baseline_trainer" / "model" / "9" / "Format-Serving"
    pushed = root / "serving" / "1700000000"

    def error(*argv):
        with pytest.raises(UsageError) as e:
            ab_models(parser.parse_args(["simulate-ab", *argv]))
        return str(e.value)

    assert "give --root ROOT" in error()
    assert "no such folder" in error("--root", str(tmp_path / "missing"))
    root.mkdir()
    assert "no in-run promotions_baseline" in error("--root", str(root))
    (root / "pipeline" / "baseline_importer").mkdir(parents=True)
    assert "imported an incumbent baseline" in error("--root", str(root))
    for d in (baseline, older):
        d.mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"")
    assert "no pushed model" in error("--root", str(root))
    pushed.mkdir(parents=True)
    (pushed / "saved_model.pb").write_bytes(b"")
    # logs not generated in the root: the world the models were trained on is unknown, refused
    assert "no manifest.json" in error("--root", str(root), "--world-seed", "5")
    logs = tmp_path / "logs"
    write_logs(pd.DataFrame({"impression_id": ["a"], "event_time": [1767600000]}), str(logs),
               {"generator": "kuairand"}, with_truth=False)
    assert "not the synthetic world" in error("--root", str(root), "--data", str(logs))
    write_logs(pd.DataFrame({"impression_id": ["a"], "event_time": [1767600000]}), str(logs),
               {"generator": "synthetic", "config": dataclasses.asdict(SMALL)}, with_truth=False)
    assert ab_models(parser.parse_args(["simulate-ab", "--root", str(root), "--data", str(logs)]))[2] == SMALL
    control, treatment, world = ab_models(parser.parse_args(["simulate-ab", "--root", str(root), "--data", str(logs),
                                                             "--world-seed", "5"]))
    assert (control, treatment, world.seed) == (str(baseline), str(pushed), 5)


def test_listening_segments_partition_the_impressions(world, history):
    from study.ab_simulation import BUCKETS, LISTENING

    report = run_ab(world, {"control": random_scorer(5), "treatment": oracle_scorer}, CFG, history=history)
    seg = report["summary"]["segments"]
    imps = report["_sim"]["impressions"]
    for arm in ("control", "treatment"):
        total = seg["overall"]["arms"][arm]["impressions"]
        assert sum(seg[b]["arms"][arm]["impressions"] for b in LISTENING) == pytest.approx(total)
        assert sum(seg[b]["arms"][arm]["impressions"] for b in BUCKETS) == pytest.approx(total)
    assert (imps["listening"] == "L0_no_streams_7d").sum() == (imps["recent"] == 0).sum()
    assert LISTENING[0] in markdown(report)


def test_counters_see_only_streams_before_the_hour(world):
    """The A/B's 7-day streams (and so its listening buckets) on hand-made history: nothing at or after the
    top of the hour, nothing older than 7 days."""
    from core.days import DAY
    from study.ab_simulation import _Counters

    w = world
    first_day = SMALL.days - 2
    t0 = (w.start_day + first_day) * DAY
    rows = [(5, t0 - 8 * DAY, 1, "ads"),         # older than 7 days
            (5, t0 - 3 * DAY, 1, "promotions"),  # in the window
            (5, t0 - 1, 1, "ads"),               # the last second before the test
            (5, t0, 1, "promotions"),            # the test's first second: seen from hour 1 on
            (5, t0 + 90 * 60, 1, "promotions"),  # in hour 1: seen from hour 2 on
            (5, t0 + 30, 1, "ads")]              # a logged ad during the test: the simulation's own, ignored
    history = pd.DataFrame(rows, columns=["pod", "event_time", "stream", "source"])
    history["podcast_id"] = "p" + history.pop("pod").astype(str)
    c = _Counters(w, history, first_day, 2)
    c.start()
    assert c.at(0)[1][5] == 2
    assert c.at(1)[1][5] == 3
    assert c.at(2)[1][5] == 4
    assert int(c.at(0)[1].sum() - c.at(0)[1][5]) == 0
