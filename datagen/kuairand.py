"""`podcast-mtl convert-kuairand`: KuaiRand-Pure logs -> the project's impression-log format.

Mapping (see the data's README): source = promotions for the promotions tabs (default tab 1),
ads for the ads tabs (default every other tab); stream = long_view; click / like / follow =
is_click / is_like / is_follow; podcast = video_id, creator = author_id, genre = tag, tenure =
register_days_range; the optional attributes when the tables have them: activity level =
user_active_degree, following / followers range = follow_user_num_range / fans_user_num_range,
episode duration = video_duration (ms -> s), episode format = upload_type; surface = "tab<N>";
on ads rows the placement (tab) is the ad format, the video the creative and the author the
campaign. Listening history and follows are each user's long-viewed and followed videos strictly
before the impression, newest first; popularity counts use only earlier impressions. Exact duplicate log rows are dropped and counted.
"""
from __future__ import annotations

import collections
import datetime as dt
import os
from typing import Dict, Optional, Sequence

import numpy as np
import pandas as pd

from core.log_reader import LogError, check_log_file, read_parquet
from core.logs import add_popularity, check_replaceable, write_logs
from core.paths import overlap
from core.fields import LIST_LENGTH

LOG_FILE = "log_standard_pure_20220425_20220508.parquet"
USER_FILE = "user_features_pure.csv"
VIDEO_FILE = "video_features_basic_pure.csv"
LOG_COLUMNS = ("user_id", "video_id", "time_ms", "is_click", "is_like", "is_follow", "long_view", "tab")
USER_COLUMNS = ("user_id", "register_days_range")
VIDEO_COLUMNS = ("video_id", "author_id", "upload_dt", "tag")
# The optional attributes (core.fields, `optional`), carried when the user / video table has the column:
# project field <- KuaiRand column (strings, but the duration: milliseconds -> whole seconds)
USER_ATTRIBUTES = {"user_activity_level": "user_active_degree", "user_following_range": "follow_user_num_range",
                   "user_followers_range": "fans_user_num_range"}
VIDEO_ATTRIBUTES = {"episode_duration_s": "video_duration", "episode_format": "upload_type"}


class InputError(ValueError):
    """A missing file or column, named."""


def _read(path: str, columns: Sequence[str]) -> pd.DataFrame:
    """The file's table, or InputError naming the file: missing, not readable (a truncated Parquet
    file; a CSV cut inside a quote or a value, i.e. not ending with a whole line), or lacking a column."""
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    if path.endswith(".parquet"):
        try:
            df = read_parquet(path, path).to_pandas()
        except LogError as e:
            raise InputError(str(e)) from None
    else:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(size - 1, 0))
            last = f.read(1)
        if size and last not in (b"\n", b"\r"):
            raise InputError(f"{path}: the last line is cut (no line end): the file looks truncated; "
                             f"refusing to read a partial row as data")
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{path}: not a readable CSV file ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0][:200]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _unique(df: pd.DataFrame, key: str, path: str) -> None:
    """One row per `key` (the user or video table): a repeated id would multiply log rows."""
    if df[key].isna().any():
        raise InputError(f"{path}: {int(df[key].isna().sum())} rows have no {key}")
    repeated = df[key][df[key].duplicated(keep=False)]
    if len(repeated):
        ids = sorted(set(repeated.tolist()))
        raise InputError(f"{path}: {len(repeated)} rows share a {key} ({len(ids)} ids repeated, e.g. "
                         f"{', '.join(map(str, ids[:5]))}); one row per {key} expected")


def _tabs(log: pd.DataFrame, path: str, promotions_tabs: Sequence[int], ads_tabs: Optional[Sequence[int]]) -> pd.Series:
    """The log's tab numbers, after checking every row has one and each tab flag selects rows."""
    tab = pd.to_numeric(log["tab"], errors="coerce")
    bad = tab.isna() | (tab != tab.round())
    if bad.any():
        raise InputError(f"{path}: field 'tab' is missing or not a whole number in {int(bad.sum())} rows "
                         f"(first: row {int(np.flatnonzero(bad.to_numpy())[0])})")
    tabs = tab.astype(np.int64)
    present = sorted(set(tabs.tolist()))
    for flag, chosen in (("--promotions-tabs", promotions_tabs), ("--ads-tabs", ads_tabs)):
        if chosen is None:
            continue
        if not chosen:
            raise InputError(f"{flag}: no tab given")
        absent = sorted(set(chosen) - set(present))
        if absent:
            raise InputError(f"{flag} {','.join(map(str, chosen))}: tab(s) {','.join(map(str, absent))} select no "
                             f"rows of {path} (its tabs: {','.join(map(str, present))})")
    return tabs


def _attribute_strings(col: pd.Series) -> np.ndarray:
    """An attribute column as strings, missing values (NaN, "UNKNOWN") as null: read as absent."""
    out = col.astype(object).where(col.notna(), None).map(lambda v: None if v is None else str(v))
    return out.where(out != "UNKNOWN", None).to_numpy(dtype=object)


def _seconds(milliseconds: pd.Series) -> pd.arrays.IntegerArray:
    """Milliseconds as whole seconds, missing or unreadable values as null."""
    return pd.array((pd.to_numeric(milliseconds, errors="coerce") / 1000).round().clip(lower=0), dtype="Int64")


def _histories(df: pd.DataFrame, flag: str) -> list:
    """Per row: the user's videos with `flag` == 1 strictly earlier in time, newest first."""
    out = [None] * len(df)
    recent: Dict[int, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=LIST_LENGTH))
    users, videos, times, flags = (df[c].to_numpy() for c in ("user_id", "video_id", "event_time", flag))
    order = np.lexsort((np.arange(len(df)), times))
    i = 0
    while i < len(order):  # rows at the same second see none of each other
        j = i
        while j < len(order) and times[order[j]] == times[order[i]]:
            j += 1
        for k in order[i:j]:
            out[k] = [f"v{v}" for v in reversed(recent[users[k]])]
        for k in order[i:j]:
            if flags[k] == 1:
                recent[users[k]].append(videos[k])
        i = j
    return out


def convert(src: str, promotions_tabs: Sequence[int] = (1,), ads_tabs: Optional[Sequence[int]] = None) -> (
        pd.DataFrame, Dict):
    log = _read(os.path.join(src, LOG_FILE), LOG_COLUMNS)
    users = _read(os.path.join(src, USER_FILE), USER_COLUMNS)
    videos = _read(os.path.join(src, VIDEO_FILE), VIDEO_COLUMNS)
    _unique(users, "user_id", os.path.join(src, USER_FILE))
    _unique(videos, "video_id", os.path.join(src, VIDEO_FILE))
    stats = {"log_rows": int(len(log))}
    before = len(log)
    log = log.drop_duplicates().reset_index(drop=True)
    stats["duplicates_dropped"] = int(before - len(log))
    log["tab"] = _tabs(log, os.path.join(src, LOG_FILE), promotions_tabs, ads_tabs)
    tabs = log["tab"]
    is_promo = tabs.isin(list(promotions_tabs))
    is_ads = tabs.isin(list(ads_tabs)) if ads_tabs else ~is_promo
    if ads_tabs and set(ads_tabs) & set(promotions_tabs):
        raise InputError(f"tabs {sorted(set(ads_tabs) & set(promotions_tabs))} are both promotions and ads")
    stats["rows_outside_tabs_dropped"] = int((~(is_promo | is_ads)).sum())
    log = log[is_promo | is_ads].copy()
    labels = {"stream": "long_view", "click": "is_click", "like": "is_like", "follow": "is_follow"}
    null_labels = log[list(labels.values())].isna().any(axis=1)
    stats["rows_with_null_labels_dropped"] = int(null_labels.sum())
    log = log[~null_labels]
    user_attrs = {k: c for k, c in USER_ATTRIBUTES.items() if c in users.columns}
    video_attrs = {k: c for k, c in VIDEO_ATTRIBUTES.items() if c in videos.columns}
    stats["attributes"] = sorted(user_attrs) + sorted(video_attrs)
    log = log.merge(users[list(USER_COLUMNS) + list(user_attrs.values())], on="user_id", how="left",
                    validate="many_to_one")
    log = log.merge(videos[list(VIDEO_COLUMNS) + list(video_attrs.values())], on="video_id", how="left",
                    validate="many_to_one")
    for col, name in (("register_days_range", USER_FILE), ("author_id", VIDEO_FILE)):
        if log[col].isna().any():
            raise InputError(f"{name}: no {col} for {int(log[col].isna().sum())} log rows")
    log = log.sort_values(["time_ms", "user_id", "video_id"], kind="stable").reset_index(drop=True)
    event_time = (log["time_ms"] // 1000).astype(np.int64)
    day = pd.to_datetime(event_time, unit="s").dt.normalize()
    upload = pd.to_datetime(log["upload_dt"], errors="coerce")
    ads = ~log["tab"].astype(int).isin(list(promotions_tabs))
    tab_name = "tab" + log["tab"].astype(int).astype(str)
    df = pd.DataFrame({
        "impression_id": [f"k{i}" for i in range(len(log))],
        "event_time": event_time,
        "source": np.where(ads, "ads", "promotions"),
        "surface": tab_name,
        "market": "all",
        "platform": "app",
        "user_id": "u" + log["user_id"].astype(str),
        "user_tenure_bucket": log["register_days_range"].astype(str),
        "podcast_id": "v" + log["video_id"].astype(str),
        "episode_id": "v" + log["video_id"].astype(str),
        "genre": "tag" + log["tag"].astype(str),
        "creator_id": "a" + log["author_id"].astype(np.int64).astype(str),
        "podcast_age_days": ((day - upload).dt.days.fillna(0).clip(lower=0)).astype(np.int64),
        "promo_slot": pd.array([None] * len(log), dtype="Int64"),
        "promo_layout": None,
        "ad_format": np.where(ads, tab_name, None),
        "campaign_id": np.where(ads, "a" + log["author_id"].astype(np.int64).astype(str), None),
        "creative_id": np.where(ads, "v" + log["video_id"].astype(str), None),
        **{k: log[v].astype(np.int64).to_numpy() for k, v in labels.items()},
        **{k: (_seconds if k == "episode_duration_s" else _attribute_strings)(log[c])
           for k, c in {**user_attrs, **video_attrs}.items()},
    })
    hist_src = pd.DataFrame({"user_id": log["user_id"].to_numpy(), "video_id": log["video_id"].to_numpy(),
                             "event_time": event_time.to_numpy(), "long_view": df["stream"].to_numpy(),
                             "is_follow": df["follow"].to_numpy()})
    df["user_history"] = _histories(hist_src, "long_view")
    df["user_follows"] = _histories(hist_src, "is_follow")
    df = add_popularity(df)
    stats.update(rows=int(len(df)), rows_per_source={s: int((df.source == s).sum()) for s in ("promotions", "ads")})
    return df, stats


def _check_written(path: str) -> None:
    """Each converted day file, read back by the strict reader `run` uses, before it replaces anything."""
    try:
        check_log_file(path)
    except LogError as e:
        raise InputError(f"the conversion produced a file `run` would refuse: {e}") from None


def convert_to_logs(src: str, out: str, promotions_tabs=(1,), ads_tabs=None, overwrite: bool = False) -> Dict:
    problem = overlap("--out", out, {"--src": src}, replaces=True)
    if problem:
        raise InputError(problem)
    check_replaceable(out, overwrite)  # before the work, not after
    df, stats = convert(src, promotions_tabs, ads_tabs)
    manifest = {"generator": "kuairand", "source": os.path.abspath(src), "licence": "CC BY-SA 4.0",
                "promotions_tabs": list(promotions_tabs), "ads_tabs": list(ads_tabs) if ads_tabs else "all others",
                "converted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "stats": stats}
    write_logs(df, out, manifest, with_truth=False, overwrite=overwrite, check=_check_written)
    return stats
