"""KuaiRand adapter: mapping, duplicate drop, no look-ahead, errors; the real slice when present."""
import os

import numpy as np
import pandas as pd
import pytest

from datagen.kuairand import LOG_FILE, USER_FILE, VIDEO_FILE, InputError, convert, convert_to_logs
from core.logs import read_logs
from tests.conftest import KUAIRAND

T0 = 1_651_000_000_000  # ms


def _write_fixture(folder, drop_column=None, attributes=True):
    rows = [  # user, video, t (s after T0), click, like, follow, long_view, tab
        (1, 10, 0, 1, 0, 0, 1, 1), (1, 11, 60, 1, 0, 1, 0, 1), (1, 10, 120, 0, 0, 0, 1, 2),
        (2, 10, 30, 1, 1, 0, 1, 1), (2, 12, 90, 0, 0, 0, 0, 4), (2, 11, 86400 * 2, 1, 0, 0, 1, 1),
        (1, 12, 86400 * 3, 1, 0, 0, 0, 2),
    ]
    log = pd.DataFrame(rows, columns=["user_id", "video_id", "t", "is_click", "is_like", "is_follow", "long_view",
                                      "tab"])
    log["time_ms"] = T0 + log.pop("t") * 1000
    log["date"] = 20220427
    log = pd.concat([log, log.iloc[[0, 3]]], ignore_index=True)  # two exact duplicates
    if drop_column:
        log = log.drop(columns=[drop_column])
    log.to_parquet(os.path.join(folder, LOG_FILE), index=False)
    users = pd.DataFrame({"user_id": [1, 2], "register_days_range": ["730+", "(60,90]"]})
    videos = pd.DataFrame({"video_id": [10, 11, 12], "author_id": [100, 100, 200], "upload_dt": ["2022-04-20"] * 3,
                           "tag": [1, 2, 1]})
    if attributes:  # KuaiRand's optional attributes; UNKNOWN and an empty cell read as absent
        users = users.assign(user_active_degree=["full_active", "UNKNOWN"], follow_user_num_range=["500+", "0"],
                             fans_user_num_range=["[10,100)", "0"])
        videos = videos.assign(video_duration=[87_433.0, None, 1_500.0], upload_type=["LongImport", "Kmovie", "Web"])
    users.to_csv(os.path.join(folder, USER_FILE), index=False)
    videos.to_csv(os.path.join(folder, VIDEO_FILE), index=False)


@pytest.fixture()
def fixture_dir(tmp_path):
    _write_fixture(str(tmp_path))
    return str(tmp_path)


def test_mapping_and_duplicates(fixture_dir):
    df, stats = convert(fixture_dir)
    assert stats["duplicates_dropped"] == 2 and stats["rows"] == 7 == len(df)
    assert (df.source == np.where(df.surface == "tab1", "promotions", "ads")).all()
    first = df[(df.user_id == "u1") & (df.podcast_id == "v10") & (df.surface == "tab1")].iloc[0]
    assert first.stream == 1 and first.click == 1 and first.creator_id == "a100" and first.genre == "tag1"
    assert first.user_tenure_bucket == "730+" and pd.isna(first.ad_format)
    ad = df[df.surface == "tab4"].iloc[0]
    assert ad.ad_format == "tab4" and ad.campaign_id == "a200" and ad.creative_id == "v12"
    only_2, _ = convert(fixture_dir, promotions_tabs=(1,), ads_tabs=(2,))
    assert "tab4" not in set(only_2.surface)


def test_optional_attributes_are_carried_when_the_tables_have_them(fixture_dir, tmp_path_factory):
    df, stats = convert(fixture_dir)
    assert stats["attributes"] == ["user_activity_level", "user_followers_range", "user_following_range",
                                   "episode_duration_s", "episode_format"]
    by_user = df.groupby("user_id").first()
    assert by_user.loc["u1", "user_activity_level"] == "full_active" and by_user.loc["u1", "user_following_range"] == "500+"
    assert by_user.loc["u1", "user_followers_range"] == "[10,100)"
    assert df[df.user_id == "u2"].user_activity_level.isna().all()  # UNKNOWN: absent
    by_video = df.groupby("podcast_id")
    assert by_video.episode_duration_s.first().dropna().to_dict() == {"v10": 87, "v12": 2}  # ms -> s, rounded
    assert df[df.podcast_id == "v11"].episode_duration_s.isna().all()
    assert by_video.episode_format.first().to_dict() == {"v10": "LongImport", "v11": "Kmovie", "v12": "Web"}
    src = str(tmp_path_factory.mktemp("bare"))
    _write_fixture(src, attributes=False)  # tables without them: the columns are written empty
    bare, stats = convert(src)
    assert stats["attributes"] == [] and len(bare) == 7
    out = str(tmp_path_factory.mktemp("converted") / "logs")
    convert_to_logs(src, out)
    back = read_logs(out)
    assert back.user_activity_level.isna().all() and back.episode_duration_s.isna().all()


def test_history_follows_and_popularity_have_no_look_ahead(fixture_dir):
    df, _ = convert(fixture_dir)
    df = df.sort_values("event_time")
    u1 = df[df.user_id == "u1"]
    assert u1.user_history.tolist() == [[], ["v10"], ["v10"], ["v10", "v10"]]
    assert u1.user_follows.tolist() == [[], [], ["v11"], ["v11"]]
    v10 = df[df.podcast_id == "v10"]
    assert v10.podcast_prior_impressions.tolist() == [0, 1, 2]
    assert v10.podcast_recent_streams.tolist() == [0, 1, 2]


def test_missing_file_or_column_is_named(tmp_path):
    _write_fixture(str(tmp_path), drop_column="long_view")
    with pytest.raises(InputError, match=f"{LOG_FILE}: missing column.*long_view"):
        convert(str(tmp_path))
    _write_fixture(str(tmp_path))
    os.remove(os.path.join(str(tmp_path), USER_FILE))
    with pytest.raises(InputError, match=f"{USER_FILE}: file not found"):
        convert(str(tmp_path))


def test_written_logs_follow_the_project_format(fixture_dir, tmp_path_factory):
    with pytest.raises(InputError, match="is inside --src"):  # never written inside what it reads
        convert_to_logs(fixture_dir, os.path.join(fixture_dir, "logs"))
    out = str(tmp_path_factory.mktemp("converted") / "logs")
    convert_to_logs(fixture_dir, out)
    back = read_logs(out)
    assert len(back) == 7 and not [c for c in back.columns if c.startswith("true_p_")]


@pytest.mark.skipif(not os.path.isdir(KUAIRAND), reason="../shared/data/kuairand-pure-slice is absent")
def test_real_slice_converts():
    df, stats = convert(KUAIRAND)
    assert stats["log_rows"] == 228_329 and stats["duplicates_dropped"] == 5_460
    assert stats["rows_per_source"] == {"promotions": 173_008, "ads": 49_861}
    assert 0.3 < df[df.source == "promotions"].stream.mean() < 0.4
    assert (df.podcast_prior_impressions >= 0).all()
