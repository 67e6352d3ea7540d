"""The ads-volume knob of the generator, the listening-volume buckets and the ads-volume sweep."""
import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest

from core.days import DAY
from core.fields import LISTENING_BUCKETS, OPTIONAL_NAMES, listening_bucket
from core.logs import add_popularity
from datagen.synthetic import GeneratorConfig, generate
from study.tables import cold_start_markdown, cold_start_table
from tests.conftest import REPO, run_python

TINY = GeneratorConfig(seed=3, days=9, users=500, podcasts=120, impressions_per_day=700)
# sha256 of generate(TINY).to_csv(index=False, float_format="%.12g"), computed with the generator
# before `ads_scale` existed (ab7f9ce^). Floats to 12 significant digits: numpy's exp/log differ in
# the last bit between CPUs (with and without AVX-512: the true_p_* columns, 1 ulp; the labels and
# every other column are identical), so a hash of full-precision text is a hash of the CPU.
TINY_BEFORE_ADS_SCALE = "d5dc02b866cd25c475ee77f911d66be272190c166ca0da288bfc99f9dca1bfd8"
POPULARITY = ["podcast_prior_impressions", "podcast_recent_streams", "popularity_bucket"]


@pytest.fixture(scope="module")
def base():
    return generate(TINY)


def test_ads_scale_1_is_the_world_of_before(base):
    # the columns of world version 2 (version 3 only added the optional attributes): the same bytes
    text = base.drop(columns=list(OPTIONAL_NAMES)).to_csv(index=False, float_format="%.12g")
    assert hashlib.sha256(text.encode()).hexdigest() == TINY_BEFORE_ADS_SCALE
    assert "ads_scale" not in TINY.manifest_config()  # manifests of older logs still match ensure_logs
    assert GeneratorConfig(ads_scale=2.0).manifest_config()["ads_scale"] == 2.0


@pytest.mark.parametrize("scale", [0.5, 2.0, 4.0])
def test_ads_scale_scales_ads_and_leaves_promotions_alone(base, scale):
    df = generate(GeneratorConfig(**{**TINY.manifest_config(), "ads_scale": scale}))
    ads0, ads = (base.source == "ads").sum(), (df.source == "ads").sum()
    assert ads / ads0 == pytest.approx(scale, rel=0.12)
    # the promotions are the same rows (only the podcasts' counters, which count ads too, move)
    pd.testing.assert_frame_equal(base[base.source == "promotions"].drop(columns=POPULARITY).reset_index(drop=True),
                                  df[df.source == "promotions"].drop(columns=POPULARITY).reset_index(drop=True))
    assert df.impression_id.is_unique
    # the extra ads follow the world's truth: the stream rate stays the world's ad rate
    a = df[df.source == "ads"]
    assert abs(a.stream.sum() - a.true_p_stream.sum()) < 4 * np.sqrt((a.true_p_stream * (1 - a.true_p_stream)).sum())
    days = df.event_time // DAY
    assert (np.diff(days.to_numpy()) >= 0).all()  # rows of a day together (day partitions)
    if scale < 1:
        assert set(df.impression_id[df.source == "ads"]) <= set(base.impression_id[base.source == "ads"])


def test_bad_ads_scale_is_a_usage_error(tmp_path):
    r = run_python(["-m", "cli", "generate", "--out", str(tmp_path / "x"), "--ads-scale", "0"])
    assert r.returncode == 2 and "--ads-scale must be a number in (0, 64]" in r.stderr
    with pytest.raises(ValueError, match="ads-scale"):
        GeneratorConfig(ads_scale=-1).validate()


def _rows(events):
    """Hand-made log rows: (podcast, event_time, stream)."""
    df = pd.DataFrame(events, columns=["podcast_id", "event_time", "stream"])
    return add_popularity(df)


def test_listening_volume_counts_only_earlier_streams_of_the_last_7_days():
    t0 = 100 * DAY
    out = _rows([("a", t0 - 8 * DAY, 1),      # outside the 7-day window of the row at t0
                 ("a", t0 - 6 * DAY, 1),      # inside
                 ("a", t0 - 1, 1),            # inside, one second before
                 ("a", t0, 1),                # the row itself: its own label is never counted
                 ("a", t0, 1),                # same second: not earlier, not counted
                 ("a", t0 + 1, 0),            # later: sees the two at t0
                 ("b", t0 - DAY, 1),          # another podcast
                 ("a", t0 + 30 * DAY, 1)])    # far future: only the window before it
    recent = out["podcast_recent_streams"].tolist()
    assert recent == [0, 1, 1, 2, 2, 4, 0, 0]  # row 2 sees row 1 (2 days before it); row 3 does not (7 days + 1 s)
    # the bucket of a row is the same whatever happens after it (no look-ahead): drop the future rows
    past = _rows([("a", t0 - 8 * DAY, 1), ("a", t0 - 6 * DAY, 1), ("a", t0 - 1, 1), ("a", t0, 1)])
    assert past["podcast_recent_streams"].tolist() == recent[:4]
    # and flipping a future label changes nothing before it
    flipped = _rows([("a", t0 - 8 * DAY, 1), ("a", t0 - 6 * DAY, 1), ("a", t0 - 1, 1), ("a", t0, 0),
                     ("a", t0, 0), ("a", t0 + 1, 0), ("b", t0 - DAY, 1), ("a", t0 + 30 * DAY, 0)])
    assert flipped["podcast_recent_streams"].tolist()[:4] == recent[:4]


def test_listening_buckets():
    assert [listening_bucket(n) for n in (0, 1, 4, 5, 19, 20, 10**6)] == [
        "L0_no_streams_7d", "L1_1_4_streams_7d", "L1_1_4_streams_7d", "L2_5_19_streams_7d", "L2_5_19_streams_7d",
        "L3_20plus_streams_7d", "L3_20plus_streams_7d"]
    assert [b for b, _ in LISTENING_BUCKETS] == sorted(b for b, _ in LISTENING_BUCKETS)


def test_cold_start_table_has_both_bucketings_with_counts_and_seed_intervals():
    rng = np.random.default_rng(0)
    n = 3000
    prior = rng.choice([0, 50, 5000], n)
    recent = rng.choice([0, 3, 10, 50], n)
    labels = (rng.random(n) < 0.1).astype(int)

    def run(noise, seed):
        r = np.random.default_rng(seed)
        return {"ads": {"labels": labels, "scores": labels + r.normal(0, noise, n), "prior": prior, "recent": recent}}

    scored = {"promotions_baseline": [run(2.0, s) for s in range(3)], "unified": [run(0.5, 10 + s) for s in range(3)]}
    rows = cold_start_table(scored, ["ads"], ["promotions_baseline", "unified"])
    by = {b: [r for r in rows if r["bucketing"] == b] for b in ("earlier_impressions", "recent_streams")}
    assert [r["bucket"] for r in by["recent_streams"]] == [b for b, _ in LISTENING_BUCKETS]
    for rs in by.values():
        assert sum(r["impressions"] for r in rs) == n and sum(r["positives"] for r in rs) == labels.sum()
    r = by["recent_streams"][0]
    assert r["impressions"] == int((recent == 0).sum()) and r["positives"] == int(labels[recent == 0].sum())
    assert len(r["ap_runs"]["unified"]) == 3 and r["ap_std"]["unified"] > 0
    assert all(g > 0 for g in r["unified_gain_runs"]["promotions_baseline"])
    md = cold_start_markdown(rows, ["promotions_baseline", "unified"])
    assert "recent streams" in md and "L0_no_streams_7d" in md and " ± " in md


def test_sweep_table_crossover_and_unified_gain():
    from bench.ads_sweep import crossover, sweep_table

    def table(scale, base, ads_only, unified):
        runs = lambda m: {"promotions_ap": {"runs": [0.2, 0.2]}, "ads_ap": {"runs": [m - 0.001, m + 0.001]}}  # noqa: E731
        return {"variants": {"promotions_baseline": runs(base), "ads_only": runs(ads_only), "unified": runs(unified)},
                "meta": {"counts": {"train": {"ads_impressions": int(1000 * scale), "promotions_impressions": 6000}}}}

    sweep = sweep_table({1: table(1, 0.10, 0.06, 0.13), 2: table(2, 0.10, 0.09, 0.12), 4: table(4, 0.10, 0.12, 0.125)})
    c = sweep["crossover"]["ads_only"]
    assert c["between"] == [2000, 4000] and 2000 < c["estimate"] < 4000
    gains = [r["unified_vs_best_single_ads"] for r in sweep["rows"]]
    assert gains[0] == pytest.approx(0.3) and gains[2] == pytest.approx(0.125 / 0.12 - 1)
    assert sweep["unified_gain_slope_per_log_volume"] < 0
    assert crossover([1, 2], [0.01, 0.02]) == {"at_or_below": 1}
    assert crossover([1, 2], [-0.01, -0.02]) is None


@pytest.mark.slow
def test_ads_sweep_runs_end_to_end_on_tiny_logs(tmp_path):
    """Without tuning (the ablation's tuning is tested in tests/test_study.py; here it cost ~50 s)."""
    out = tmp_path / "sweep"
    args = [os.path.join(REPO, "bench", "ads_sweep.py"), "--out", str(out), "--scales", "0.5,2", "--seeds", "1",
            "--presets", "promotions_baseline,ads_only,unified", "--tune-trials", "0", "--train-steps", "10",
            "--days", "10", "--users", "400", "--podcasts", "80", "--impressions-per-day", "500"]
    r = run_python(args)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    sweep = json.loads((out / "ads_sweep.json").read_text())
    rows = sweep["rows"]
    assert [x["ads_scale"] for x in rows] == [0.5, 2.0]
    assert rows[1]["train_ads"] > 3 * rows[0]["train_ads"]
    assert rows[0]["train_promotions"] == rows[1]["train_promotions"]
    for x in rows:
        assert set(x["ads_ap"]) == {"promotions_baseline", "ads_only", "unified"}  # no untuned row
        assert "unified_vs_best_single_ads" in x
    assert (out / "ads_sweep.png").stat().st_size > 0 and "ads scale" in (out / "ads_sweep.md").read_text()
    cold = json.loads((out / "scale-2" / "cold_start.json").read_text())
    assert {r["bucketing"] for r in cold["rows"]} == {"earlier_impressions", "recent_streams"}
    # a second run reuses every scale
    r = run_python(args)
    assert r.returncode == 0 and r.stdout.count("reusing") == 2
    assert os.path.exists(out / "ads_sweep.md")


def test_report_only_merges_presets_measured_in_earlier_sweeps(tmp_path):
    """`--report-only --with DIR`: a preset measured later (ads_only_ancillary) joins the presets an
    earlier sweep measured, per scale, without training anything; a scale measured nowhere is an error."""
    from bench.ads_sweep import main

    def write(folder, scale, variants, counts=True):
        runs = lambda ads: {"promotions_ap": {"runs": [0.2, 0.21]}, "ads_ap": {"runs": [ads, ads + 0.002]}}  # noqa: E731
        meta = {"counts": {"train": {"ads_impressions": int(1000 * scale), "promotions_impressions": 6000}}} \
            if counts else {}
        path = tmp_path / folder / f"scale-{scale:g}"
        path.mkdir(parents=True)
        (path / "ablation.json").write_text(json.dumps({"variants": {v: runs(a) for v, a in variants.items()},
                                                       "meta": meta}))

    for scale in (1, 2):
        write("later", scale, {"ads_only_ancillary": 0.05 * scale})
        write("earlier", scale, {"promotions_baseline": 0.1, "ads_only": 0.04 * scale, "unified": 0.12,
                                 "ads_only_ancillary": 0.9}, counts=False)
    out = tmp_path / "later"
    assert main(["--out", str(out), "--scales", "1,2", "--presets", "ads_only_ancillary", "--report-only",
                 "--with", str(tmp_path / "earlier")]) == 0
    sweep = json.loads((out / "ads_sweep.json").read_text())
    rows = {r["ads_scale"]: r for r in sweep["rows"]}
    assert set(rows[1]["ads_ap"]) == {"promotions_baseline", "ads_only", "ads_only_ancillary", "unified"}
    assert rows[2]["ads_ap"]["ads_only_ancillary"]["mean"] == pytest.approx(0.101)  # this run's, not the earlier 0.9
    assert rows[2]["train_ads"] == 2000  # the scale's meta is this run's
    three = ["promotions_baseline", "ads_only", "unified"]
    assert sweep["meta"]["merged_from"] == {str(tmp_path / "earlier"): {"1": three, "2": three}}
    assert "ads_only_ancillary" in (out / "ads_sweep.md").read_text()
    with pytest.raises(SystemExit, match="scale 4 was measured in none"):
        main(["--out", str(out), "--scales", "1,4", "--report-only"])
