"""The synthetic world's domain facts (datagen/README.md), each checked on the world's truth."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from datagen import world as W
from datagen.summary import summarize
from datagen.synthetic import GeneratorConfig, World, generate
from core.days import DAY
from core.fields import FEATURE_NAMES, LABELS, TRUTH_PREFIX

# the default config's ratios (podcasts and users per daily impression, 28 days) at a fifth of the volume
CFG = GeneratorConfig(seed=11, days=28, users=4000, podcasts=600, impressions_per_day=3600)


@pytest.fixture(scope="module")
def world():
    return World(CFG)


@pytest.fixture(scope="module")
def df(world):
    return generate(CFG, world)


@pytest.fixture(scope="module")
def summary(df, world):
    return summarize(df, world)


@pytest.fixture(scope="module")
def ads(df, world):
    rows = df[df.source == "ads"]
    return rows, world.logit_parts(**world.indices(rows))


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _random_pairs(world, n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, world.cfg.users, n), rng.integers(0, world.cfg.podcasts, n), rng.integers(0, 24, n)


def _assert_same_logs(a, b):
    """Column by column (pandas' assert_frame_equal takes seconds per object column)."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        x, y = a[col], b[col]
        assert x.dtype == y.dtype, col
        if x.dtype == object:
            assert x.map(lambda v: tuple(v) if isinstance(v, (list, np.ndarray)) else v).tolist() == \
                y.map(lambda v: tuple(v) if isinstance(v, (list, np.ndarray)) else v).tolist(), col
        else:
            assert x.equals(y), col


# ---------------------------------------------------------------- determinism and counterfactual truth
def test_world_is_deterministic_for_a_seed(world, df):
    again = World(CFG)
    for name in ("pod_vec", "user_vec", "launch_day", "pod_weight", "campaign_podcast", "campaign_daily_budget",
                 "creative_quality", "user_receptivity", "emerging_creator"):
        np.testing.assert_array_equal(getattr(world, name), getattr(again, name), err_msg=name)
    assert world.user_history == again.user_history
    _assert_same_logs(df, generate(CFG))  # built from the config alone: the same logs
    other = World(GeneratorConfig(**{**CFG.__dict__, "seed": 12}))
    assert not np.array_equal(world.creative_quality[:50], other.creative_quality[:50])


def test_counterfactual_truth_agrees_with_logged_truth(df, world):
    p = world.true_probabilities(**world.indices(df))
    for label in LABELS:
        np.testing.assert_allclose(p[label], df[TRUTH_PREFIX + label], rtol=0, atol=1e-12, err_msg=label)
    parts = world.logit_parts(**world.indices(df))
    np.testing.assert_allclose(sum(parts.values()), _logit(df[TRUTH_PREFIX + "stream"].to_numpy()), atol=1e-9)


def test_any_combination_can_be_asked(world):
    users = np.arange(40)[:, None]
    podcasts = np.arange(30)[None, :]
    promo = world.true_probabilities(users, podcasts, "promotions", hour=20, promo_slot=1, promo_layout="hero")
    assert promo["stream"].shape == (40, 30) and all(0 < v.min() and v.max() < 1 for v in promo.values())
    # every creative shown to every one of a few users, at two hours
    cr = np.arange(world.n_creatives)
    pods = world.campaign_podcast[world.creative_campaign[cr]]
    ad = world.true_probabilities(np.arange(5)[:, None], pods[None, :], "ads", hour=np.array([[8], [20]])[:, None],
                                  creative=cr[None, :])
    assert ad["stream"].shape == (2, 5, world.n_creatives)
    assert np.all(ad["stream"][1] > ad["stream"][0])  # the evening peak
    # creatives by id, and the campaign and format they imply, are accepted
    named = world.true_probabilities(0, pods[:3], "ads", hour=9, creative=world.creative_ids[:3],
                                     ad_format=np.array(W.AD_FORMATS)[world.creative_format[:3]],
                                     campaign=world.creative_campaign[:3])
    np.testing.assert_allclose(named["stream"], world.true_probabilities(0, pods[:3], "ads", hour=9,
                                                                         creative=[0, 1, 2])["stream"])
    with pytest.raises(ValueError, match="podcast"):
        world.true_probabilities(0, (pods[0] + 1) % world.cfg.podcasts, "ads", hour=9, creative=0)
    with pytest.raises(ValueError, match="creative"):
        world.true_probabilities(0, pods[0], "ads", hour=9)
    with pytest.raises(ValueError, match="promo_slot"):
        world.true_probabilities(0, 0, "promotions", hour=9, promo_slot=0, promo_layout="card")


# ---------------------------------------------------------------- one shared preference
def test_one_preference_drives_streams_on_both_channels(world):
    """Stream logit minus the shared preference depends on nothing of the user x podcast pair
    except, on ads, the user's receptivity and the campaign's targeting."""
    u, _, _ = _random_pairs(world)
    k = world.eligible_campaigns(CFG.days - 1)[0]
    p = np.full(u.size, world.campaign_podcast[k])
    cr = world.campaign_first_creative[k]
    pref = world.preference(u, p)
    promo = _logit(world.true_probabilities(u, p, "promotions", hour=12, promo_slot=2, promo_layout=1)["stream"])
    ad = _logit(world.true_probabilities(u, p, "ads", hour=12, creative=cr)["stream"])
    rest_promo = promo - W.SHARED_WEIGHT["stream"] * pref
    assert np.ptp(rest_promo) < 1e-9
    on_target = world.user_market[u] == world.campaign_target_market[k]
    rest_ad = ad - W.SHARED_WEIGHT["stream"] * pref - world.user_receptivity[u] - W.TARGET_GAIN * on_target
    assert np.ptp(rest_ad) < 1e-9
    # the preference is standardised over random pairs, and the same function on both channels
    uu, pp, _ = _random_pairs(world, 20000, seed=1)
    pr = world.preference(uu, pp)
    assert abs(pr.mean()) < 0.05 and abs(pr.std() - 1) < 0.05


def test_clicks_likes_follows_share_the_preference(world):
    u, p, h = _random_pairs(world)
    pref = world.preference(u, p)
    promo = world.true_probabilities(u, p, "promotions", hour=h, promo_slot=3, promo_layout="card")
    for label in ("click", "like", "follow"):
        rest = _logit(promo[label]) - W.SHARED_WEIGHT[label] * pref
        assert np.ptp(rest) < 1e-9, label  # given the context, the preference is all that varies
        assert np.corrcoef(_logit(promo[label]), _logit(promo["stream"]))[0, 1] > 0.95, label
    k = np.flatnonzero(world.campaign_podcast >= 0)
    cr = world.campaign_first_creative[k[np.arange(u.size) % k.size]]
    ads = world.true_probabilities(u, world.campaign_podcast[world.creative_campaign[cr]], "ads", hour=h, creative=cr)
    for label in ("click", "like", "follow"):
        assert np.corrcoef(_logit(ads[label]), _logit(ads["stream"]))[0, 1] > 0.5, label


# ---------------------------------------------------------------- channel-specific effects
def test_ad_specific_effects_explain_a_stated_share_of_the_ad_stream_logit(summary):
    share = summary["ad_stream_logit_variance_share"]
    assert 0.33 <= share["ad_specific"] <= 0.5, share  # stated: about 40%
    assert 0.5 <= share["shared"] <= 0.7, share
    for part in W.AD_PARTS:
        assert share[part] >= 0.04, (part, share)


def test_ad_effects_are_visible_in_logged_ad_features(ads):
    rows, parts = ads
    frame = pd.DataFrame({"part_" + k: parts[k] for k in W.AD_PARTS}).assign(
        ad_format=rows.ad_format.to_numpy(), creative_id=rows.creative_id.to_numpy(),
        campaign_id=rows.campaign_id.to_numpy(), market=rows.market.to_numpy(), user_id=rows.user_id.to_numpy())
    # each part is a function of logged columns
    for part, keys in (("ad_format", ["ad_format"]), ("creative", ["creative_id"]),
                       ("campaign", ["campaign_id", "market"]), ("receptivity", ["user_id"])):
        g = frame.groupby(keys)["part_" + part]
        spread = g.max() - g.min()
        assert spread.max() < 1e-12, part
    # receptivity is mostly learnable from user features: tenure and platform explain most of it
    seg = rows.user_tenure_bucket + "/" + rows.platform
    recept = pd.Series(parts["receptivity"], index=rows.index)
    explained = recept.groupby(seg).transform("mean").var() / recept.var()
    assert explained > 0.5
    # formats differ: audio > video > display
    by_format = frame.groupby("ad_format")["ad_format"].size()
    assert set(by_format.index) == set(W.AD_FORMATS)
    eff = dict(zip(W.AD_FORMATS, W.AD_FORMAT_STREAM))
    assert eff["audio"] > eff["video"] > eff["display"]


def test_promotion_metadata_affects_promotions_only(world):
    u, p, h = _random_pairs(world, 2000)
    base = world.true_probabilities(u, p, "promotions", hour=h, promo_slot=1, promo_layout="shelf")
    later = world.true_probabilities(u, p, "promotions", hour=h, promo_slot=5, promo_layout="hero")
    assert not np.allclose(base["stream"], later["stream"])
    # an ad's truth ignores promotion metadata, a promotion's ignores ad metadata
    cr = np.arange(u.size) % world.n_creatives
    ap = world.campaign_podcast[world.creative_campaign[cr]]
    a1 = world.true_probabilities(u, ap, "ads", hour=h, creative=cr, promo_slot=1, promo_layout="shelf")
    a2 = world.true_probabilities(u, ap, "ads", hour=h, creative=cr, promo_slot=9, promo_layout="hero")
    a3 = world.true_probabilities(u, ap, "ads", hour=h, creative=cr)
    for label in LABELS:
        np.testing.assert_array_equal(a1[label], a2[label])
        np.testing.assert_array_equal(a1[label], a3[label])
    p1 = world.true_probabilities(u, p, "promotions", hour=h, promo_slot=1, promo_layout="shelf", creative=cr)
    for label in LABELS:
        np.testing.assert_array_equal(p1[label], base[label])
    parts = world.logit_parts(u, p, "promotions", hour=h, promo_slot=1, promo_layout="shelf")
    assert all(np.all(parts[k] == 0) for k in W.AD_PARTS)


# ---------------------------------------------------------------- scarcity, cold start, long tail
def test_ads_are_scarce_and_cold_start_is_a_large_part_of_ads(summary):
    assert summary["promotions_per_ad"] >= 5
    cold = summary["cold_start_share_last_days_per_source"]
    assert 0.08 <= cold["ads"] <= 0.25, cold  # stated: 10-15% on the default logs
    assert cold["ads"] > 3 * cold["promotions"]


def test_new_podcasts_launch_with_campaigns_and_get_ads_in_their_first_days(df, world):
    launches = np.flatnonzero(world.is_new & (world.launch_day < CFG.days - 3))
    assert launches.size > 0.3 * CFG.podcasts
    with_campaign = np.isin(launches, world.campaign_podcast)
    assert with_campaign.mean() > 0.7
    day = (df.event_time // DAY - world.start_day).to_numpy()
    pod = df.podcast_id.str[1:].astype(int).to_numpy()
    ad = (df.source == "ads").to_numpy()
    early = ad & (day - world.launch_day[pod] < 3) & world.is_new[pod]
    reached = np.isin(launches[with_campaign], pod[early])
    assert reached.mean() > 0.8  # launch campaigns serve ads from the first days
    # for a podcast with a launch campaign, ads are most of its first impressions
    cold = (df.podcast_prior_impressions < 10).to_numpy() & np.isin(pod, launches[with_campaign])
    assert ad[cold].mean() > 0.5


def test_every_logged_ad_comes_from_a_campaign_eligible_that_day(df, world):
    rows = df[df.source == "ads"]
    day = (rows.event_time // DAY - world.start_day).to_numpy()
    camp = pd.Index(world.campaign_ids).get_indexer(rows.campaign_id)
    assert (camp >= 0).all()
    for d in range(CFG.days):
        assert np.isin(camp[day == d], world.eligible_campaigns(d)).all(), d
        assert world.eligible_campaigns(d).size > 0
    table = world.campaigns()
    assert (table.daily_budget > 0).all() and (table.bid_cpm > 0).all() and (table.n_creatives >= 1).all()
    # budgets are sized to the logged ad volume: the live campaigns plan about a day's ads
    planned = (table.daily_budget / table.bid_cpm * 1000).to_numpy()
    mean_live = np.mean([planned[world.eligible_campaigns(d)].sum() for d in range(CFG.days)])
    assert mean_live == pytest.approx(CFG.impressions_per_day * CFG.ads_share, rel=1e-3)
    creatives = world.creatives()
    assert set(creatives.ad_format) == set(W.AD_FORMATS)
    assert list(world.campaign_creatives(0)) == list(np.flatnonzero(creatives.campaign == 0))


def test_popularity_is_long_tailed_and_emerging_creators_are_defined(df, world, summary):
    per_podcast = df.podcast_id.value_counts()
    assert per_podcast.iloc[: max(1, len(per_podcast) // 10)].sum() / len(df) > 0.3
    w = np.sort(world.pod_weight)[::-1]
    assert w[: w.size // 10].sum() / w.sum() > 0.4
    # emerging: every creator whose podcasts all launched in the window, plus the bottom popularity half
    assert world.emerging_creator[world.creator_launched_in_window].all()
    has_pod = np.bincount(world.pod_creator, minlength=world.n_creators) > 0
    assert 0.4 <= world.emerging_creator[has_pod].mean() <= 0.9
    assert world.pod_weight[world.emerging_podcast & ~world.is_new].mean() < world.pod_weight[~world.emerging_podcast].mean()
    assert 0.08 <= summary["emerging_creator_share_of_ads"] <= 0.6
    assert world.campaigns().emerging.any()


# ---------------------------------------------------------------- what is learnable, label rates
def test_label_rates_and_learnable_bounds(summary):
    rates = summary["label_rates"]
    assert 0.05 <= rates["promotions"]["stream"] <= 0.075
    assert 0.025 <= rates["ads"]["stream"] <= 0.05
    for source in rates:
        assert rates[source]["follow"] < rates[source]["like"] < rates[source]["stream"] < rates[source]["click"]
    b = summary["learnable_stream_ap_last_days"]
    for source, x in b.items():
        assert x["oracle"] > x["shared_only"] > x["base_rate"], source
        assert x["oracle"] > x["channel_only"] > x["base_rate"], source
    # on ads the shared preference alone misses much of what the truth ranks; on promotions little
    assert b["ads"]["shared_only"] / b["ads"]["oracle"] < b["promotions"]["shared_only"] / b["promotions"]["oracle"]
    assert b["ads"]["channel_only"] > 2 * b["ads"]["base_rate"]


# ---------------------------------------------------------------- feature rows for scoring; the schema
def test_feature_rows_reproduce_the_logged_columns(df, world):
    rows = df.sample(300, random_state=0)
    idx = world.indices(rows)
    got = world.feature_rows(idx["users"], idx["podcasts"], idx["source"], rows.event_time.to_numpy(),
                             creative=idx["creative"], promo_slot=idx["promo_slot"], promo_layout=idx["promo_layout"],
                             surface=rows.surface.to_numpy(), prior_impressions=rows.podcast_prior_impressions,
                             recent_streams=rows.podcast_recent_streams, impression_ids=rows.impression_id)
    assert set(FEATURE_NAMES) <= set(got)
    for name, values in got.items():
        logged = rows[name].tolist()
        if name == "promo_slot":
            logged = [None if pd.isna(v) else int(v) for v in logged]
        assert [list(v) if isinstance(v, (list, np.ndarray)) else v for v in logged] == list(values), name
    with pytest.raises(ValueError, match="creative"):
        world.feature_rows(0, 0, "ads", rows.event_time.iloc[0])


def _as_list_array(arr):
    if pa.types.is_list(arr.type):
        return arr
    offsets = pa.array(np.arange(len(arr) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, arr, mask=arr.is_null())


def test_logs_pass_the_curated_schema(tmp_path):
    import os

    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl

    from core.logs import arrow_schema, read_logs, write_logs
    from schemas import SCHEMA_DIR

    small = GeneratorConfig(seed=4, days=4, users=500, podcasts=120, impressions_per_day=800)
    write_logs(generate(small), str(tmp_path / "logs"), {}, with_truth=True)
    table = pa.Table.from_pandas(read_logs(str(tmp_path / "logs")), schema=arrow_schema(with_truth=True),
                                 preserve_index=False)
    batch = pa.RecordBatch.from_arrays([_as_list_array(c.combine_chunks()) for c in table.columns],
                                       names=table.column_names)
    stats = stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())
    schema = tfdv.load_schema_text(os.path.join(SCHEMA_DIR, "impressions.pbtxt"))
    anomalies = tfdv.validate_statistics(stats, schema)
    assert not anomalies.anomaly_info, dict(anomalies.anomaly_info)
