"""The synthetic log generator: determinism, fields per source, rates, popularity, cold start, errors."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core.logs import add_popularity, read_logs, read_manifest
from datagen.synthetic import GeneratorConfig, generate
from core.fields import FEATURE_NAMES, FIELDS, LABELS, OPTIONAL_NAMES, TRUTH_FIELDS

CFG = GeneratorConfig(seed=11, days=14, users=4000, podcasts=800, impressions_per_day=5000)


@pytest.fixture(scope="module")
def df():
    return generate(CFG)


def test_deterministic_for_a_seed(df):
    again = generate(CFG)
    pd.testing.assert_frame_equal(df, again)
    other = generate(GeneratorConfig(**{**CFG.__dict__, "seed": 12}))
    assert not df["stream"].equals(other["stream"].iloc[: len(df)].reset_index(drop=True))


def test_every_field_is_written(df):
    for f in FIELDS:
        assert f.name in df.columns, f.name
    for name in TRUTH_FIELDS:
        assert df[name].between(0, 1).all()


def test_channel_metadata_only_on_its_source(df):
    ads, promos = df[df.source == "ads"], df[df.source == "promotions"]
    for f in FIELDS:
        if f.only_on == "ads":
            assert ads[f.name].notna().all() and promos[f.name].isna().all(), f.name
        elif f.only_on == "promotions":
            assert promos[f.name].notna().all() and ads[f.name].isna().all(), f.name
        elif f.required:
            assert df[f.name].notna().all(), f.name


def test_optional_attributes_follow_the_world(df):
    from datagen.world import ACTIVITY_LEVELS, World

    optional = list(OPTIONAL_NAMES)
    assert optional and df[optional].notna().all().all()
    world = World(CFG)
    user = df.user_id.str[1:].astype(int).to_numpy()
    activity = world.user_activity[user]
    level = df.user_activity_level.map(ACTIVITY_LEVELS.index).to_numpy()
    for k in range(len(ACTIVITY_LEVELS) - 1):  # a higher level: a more active user, never less
        assert activity[level == k].max() <= activity[level == k + 1].min()
    n_follows = df.user_follows.map(len)
    assert (n_follows[df.user_following_range == "0"] == 0).all()
    assert (n_follows[df.user_following_range == "6+"] >= 6).all()
    same_episode = df.groupby("episode_id")[["episode_duration_s", "episode_format"]].nunique()
    assert (same_episode == 1).all().all() and df.episode_duration_s.min() >= 60
    # the rows the world builds for scoring (the A/B simulation) carry the same attributes
    promos = df[df.source == "promotions"].iloc[:200]
    rows = world.feature_rows(promos.user_id.str[1:].astype(int).to_numpy(), promos.podcast_id.str[1:].astype(int).to_numpy(),
                              "promotions", promos.event_time.to_numpy(), promo_slot=promos.promo_slot.to_numpy(int),
                              promo_layout=promos.promo_layout.to_numpy())
    for name in optional:
        assert rows[name] == promos[name].tolist(), name


def test_rates_and_mix(df):
    counts = df.source.value_counts()
    assert counts["promotions"] >= 5 * counts["ads"]
    for source, g in df.groupby("source"):
        assert 0.01 <= g.stream.mean() <= 0.08, (source, g.stream.mean())
        assert g.like.mean() < g.stream.mean() and g.follow.mean() < g.stream.mean()
        assert g.follow.mean() > 0 and g.like.mean() > 0


def test_labels_share_the_affinity(df):
    # click, like and follow correlate with the stream probability through the shared affinity
    for label in ("click", "like", "follow"):
        assert np.corrcoef(df.true_p_stream, df[f"true_p_{label}"])[0, 1] > 0.3, label


def test_popularity_is_long_tailed_and_seasonal(df):
    per_podcast = df.podcast_id.value_counts()
    top = per_podcast.iloc[: max(1, len(per_podcast) // 10)].sum()
    assert top / len(df) > 0.3  # top 10% of podcasts hold more than 30% of impressions
    hours = (df.event_time // 3600 % 24).value_counts()
    assert hours.max() > 3 * hours.min()


def test_true_probabilities_are_never_features():
    assert not set(TRUTH_FIELDS) & set(FEATURE_NAMES)
    assert not set(LABELS) & set(FEATURE_NAMES)


def _brute_force_popularity(df):
    prior, recent = [], []
    for t, pod in zip(df.event_time, df.podcast_id):
        same = df[(df.podcast_id == pod) & (df.event_time < t)]
        prior.append(len(same))
        recent.append(int(same[same.event_time >= t - 7 * 86400].stream.sum()))
    return prior, recent


def test_popularity_has_no_look_ahead():
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"podcast_id": rng.choice(["a", "b", "c"], n),
                       "event_time": rng.integers(0, 20 * 86400, n) // 3600 * 3600,  # ties on purpose
                       "stream": rng.integers(0, 2, n)})
    out = add_popularity(df)
    prior, recent = _brute_force_popularity(df)
    assert out.podcast_prior_impressions.tolist() == prior
    assert out.podcast_recent_streams.tolist() == recent
    # changing the future changes nothing in the past
    future = df.event_time > 10 * 86400
    changed = df.copy()
    changed.loc[future, "stream"] = 1 - changed.loc[future, "stream"]
    again = add_popularity(changed)
    past = ~future
    assert (again.loc[past, "podcast_recent_streams"] == out.loc[past, "podcast_recent_streams"]).all()


def test_cold_start_podcasts_in_newest_days(df):
    last = df.event_time >= df.event_time.max() - 5 * 86400
    first_seen = df.groupby("podcast_id").event_time.min()
    new_in_last = first_seen[first_seen >= df.event_time.max() - 5 * 86400]
    assert len(new_in_last) > 0
    assert (df.loc[last, "podcast_prior_impressions"] < 10).mean() > 0.005


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True)


def test_generate_command_writes_partitions_and_summary(tmp_path):
    out = tmp_path / "logs"
    r = _cli("generate", "--out", str(out), "--days", "3", "--users", "300", "--podcasts", "60",
             "--impressions-per-day", "500")
    assert r.returncode == 0, r.stderr
    assert "oracle stream AP" in r.stdout and "label rate" in r.stdout
    assert len(list(out.glob("date=*/impressions.parquet"))) == 3
    assert read_manifest(str(out))["rows"] == len(read_logs(str(out)))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("args,needle", [
    (["--days", "0"], "--days"), (["--users", "-1"], "--users"), (["--podcasts", "x"], "--podcasts"),
    (["--impressions-per-day", "0"], "--impressions-per-day")])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, needle):
    out = tmp_path / "never"
    r = _cli("generate", "--out", str(out), *args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    r = _cli("generate", "--out", str(target))
    assert r.returncode == 2 and "not a folder" in r.stderr
    assert target.read_text() == "keep me"
