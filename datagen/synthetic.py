"""Synthetic podcast impression logs with known true probabilities.

A latent user x podcast affinity drives every label on both channels; each channel adds its
own effects (promotion slot and layout; ad format and creative quality; a per-user ad
receptiveness). Promotions outnumber ads, popularity is long-tailed, new podcasts and creators
launch throughout the period, and traffic has hourly and weekly seasonality. Deterministic for
a seed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from core.fields import LABELS, TRUTH_PREFIX
from core.days import DAY
from core.logs import add_popularity

START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)  # a Monday
DIM = 8
GENRES = ("comedy", "news", "true_crime", "sports", "business", "health", "society", "tech", "history",
          "kids", "music", "education")
MARKETS = ("US", "GB", "DE", "SE", "BR", "MX", "IN", "JP")
PLATFORMS = ("ios", "android", "desktop", "web")
TENURE = ("lt30d", "30d_1y", "1y_3y", "3yplus")
SURFACES = {"promotions": ("home_shelf", "browse_banner", "now_playing_card", "search_promo"),
            "ads": ("audio_break", "video_takeover", "display_banner")}
LAYOUTS = ("shelf", "card", "hero")
AD_FORMATS = ("audio", "video", "display")
HOURLY = np.array([2, 1.5, 1, .8, .8, 1.2, 2.5, 4, 5, 4.5, 4, 4.2, 4.8, 4.5, 4, 4.2, 4.8, 5.5, 6.5, 7, 6.5, 5.5, 4, 3])
WEEKLY = np.array([1.0, .97, .98, 1.0, 1.05, 1.15, 1.12])  # Mon..Sun


MAX_DAYS = 3650
MAX_ROWS = 50_000_000


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 7
    days: int = 28
    users: int = 20000
    podcasts: int = 3000
    impressions_per_day: int = 18000
    ads_share: float = 1 / 7  # promotions : ads = 6 : 1
    new_podcast_share: float = 0.35  # podcasts launched during the period

    def validate(self) -> None:
        for name in ("days", "users", "podcasts", "impressions_per_day"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.days > MAX_DAYS:
            raise ValueError(f"--days must be at most {MAX_DAYS:,} (ten years), got {self.days:,}")
        if self.days * self.impressions_per_day > MAX_ROWS:
            raise ValueError(f"--days x --impressions-per-day = {self.days * self.impressions_per_day:,} impressions; "
                             f"the generator holds them in memory and writes at most {MAX_ROWS:,}")
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"--seed must be in [0, 2**32), got {self.seed}")
        if not 0 < self.ads_share < 1:
            raise ValueError(f"ads share must be in (0, 1), got {self.ads_share}")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gumbel_topk(rng, logw: np.ndarray, k: int) -> np.ndarray:
    """k indices per row sampled without replacement with weights exp(logw)."""
    keys = logw + rng.gumbel(size=logw.shape)
    k = min(k, logw.shape[1])
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def generate(cfg: GeneratorConfig) -> pd.DataFrame:
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    n_pod, n_user = cfg.podcasts, cfg.users
    start_day = int(START.timestamp()) // DAY

    # --- podcasts: genre -> creator -> podcast latent vectors; launches before and during the window
    centroids = rng.normal(0, 1, (len(GENRES), DIM))
    n_creators = max(1, n_pod // 3)
    creator_genre = rng.integers(0, len(GENRES), n_creators)
    creator_vec = centroids[creator_genre] + rng.normal(0, .6, (n_creators, DIM))
    creator_quality = rng.normal(0, .5, n_creators)
    pod_creator = np.minimum((rng.pareto(1.2, n_pod) * n_creators / 8).astype(int), n_creators - 1)
    pod_creator = rng.permutation(n_creators)[pod_creator] if n_creators > 1 else pod_creator
    pod_genre = creator_genre[pod_creator]
    pod_vec = creator_vec[pod_creator] + rng.normal(0, .5, (n_pod, DIM))
    pod_quality = creator_quality[pod_creator] + rng.normal(0, .3, n_pod)
    is_new = rng.random(n_pod) < cfg.new_podcast_share
    launch_day = np.where(is_new, rng.integers(0, cfg.days, n_pod), -rng.integers(30, 1500, n_pod))
    pod_weight = rng.lognormal(0, 1.3, n_pod) * np.exp(pod_quality)  # long-tailed popularity
    advertises = (rng.random(n_pod) < .35) | (is_new & (rng.random(n_pod) < .6))

    # --- users
    fav = rng.integers(0, len(GENRES), n_user)
    user_vec = centroids[fav] + rng.normal(0, .7, (n_user, DIM))
    user_bias = rng.normal(0, .4, n_user)
    user_ad_receptive = rng.normal(0, .5, n_user)  # channel-specific user effect
    user_activity = rng.lognormal(0, 1.0, n_user)
    user_market = rng.choice(len(MARKETS), n_user, p=[.35, .12, .1, .08, .12, .08, .1, .05])
    user_platform = rng.choice(len(PLATFORMS), n_user, p=[.4, .4, .15, .05])
    user_tenure = rng.choice(len(TENURE), n_user, p=[.1, .25, .35, .3])

    def raw_affinity(u, p):
        return (user_vec[u] * pod_vec[p]).sum(-1) / np.sqrt(DIM) + pod_quality[p] + user_bias[u]

    probe = raw_affinity(rng.integers(0, n_user, 20000), rng.integers(0, n_pod, 20000))
    a_mean, a_std = probe.mean(), probe.std()

    def affinity(u, p):  # standardised over random user x podcast pairs
        return (raw_affinity(u, p) - a_mean) / a_std

    # listening history and follows: sampled by affinity among podcasts launched before the window
    old = np.flatnonzero(launch_day < 0)
    history, follows = [], []
    hist_len = np.minimum(rng.poisson(8, n_user), 20)
    for lo in range(0, n_user, 2000):
        u = np.arange(lo, min(lo + 2000, n_user))
        logits = np.log(pod_weight[old])[None, :] + 2.0 * affinity(u[:, None], old[None, :])
        top = _gumbel_topk(rng, logits, 20)
        for row, uid in enumerate(u):
            picks = [f"p{old[j]}" for j in top[row, :hist_len[uid]]]
            history.append(picks)
            follows.append(picks[: int(rng.integers(0, max(1, len(picks) // 3) + 1))])

    # --- impressions: day volumes with weekly seasonality, hours with a daily curve
    weekday = (start_day + np.arange(cfg.days) + 3) % 7  # 1970-01-01 was a Thursday
    per_day = WEEKLY[weekday] / WEEKLY[weekday].mean() * cfg.impressions_per_day
    per_day = rng.poisson(per_day)
    day_idx = np.repeat(np.arange(cfg.days), per_day)
    n = day_idx.size
    hour = rng.choice(24, n, p=HOURLY / HOURLY.sum())
    t = (start_day + day_idx) * DAY + hour * 3600 + rng.integers(0, 3600, n)
    is_ad = rng.random(n) < cfg.ads_share
    user = rng.choice(n_user, n, p=user_activity / user_activity.sum())

    # candidate podcasts per impression, chosen with a light affinity targeting
    n_cand = 6
    pod = np.empty(n, dtype=np.int64)
    for d in range(cfg.days):
        live = launch_day <= d
        age = d - launch_day
        for ad_flag in (False, True):
            rows = np.flatnonzero((day_idx == d) & (is_ad == ad_flag))
            if rows.size == 0:
                continue
            if ad_flag:  # ads: campaigns bought by advertising podcasts, new ones push hardest
                w = np.where(live & advertises, 1.0 + 6.0 * (age < 14), 0.0) * np.sqrt(pod_weight)
            else:  # promotions: popularity, with an editorial push for new launches
                w = np.where(live, pod_weight * (1.0 + 4.0 * (age < 7)), 0.0)
            if w.sum() == 0:
                w = live.astype(float)
            cand = rng.choice(n_pod, (rows.size, n_cand), p=w / w.sum())
            score = 0.5 * affinity(user[rows, None], cand) + rng.gumbel(size=cand.shape)
            pod[rows] = cand[np.arange(rows.size), score.argmax(1)]

    a = affinity(user, pod)
    hour_eff = 0.15 * np.cos((hour - 20) / 24 * 2 * np.pi)
    # channel metadata
    slot = np.minimum(rng.geometric(.3, n), 10)
    layout = rng.choice(len(LAYOUTS), n, p=[.6, .3, .1])
    fmt = rng.choice(len(AD_FORMATS), n, p=[.5, .2, .3])
    campaign_of_pod = np.cumsum(advertises) - 1
    creative_k = rng.integers(0, 4, n)
    creative_quality = rng.normal(0, .5, (n_pod, 4, len(AD_FORMATS)))[pod, creative_k, fmt]
    slot_eff = 0.45 - 0.1 * (slot - 1)
    layout_eff = np.array([-.15, 0.0, .35])[layout]
    fmt_stream = np.array([.25, .1, -.45])[fmt]
    fmt_click = np.array([-.3, .3, .2])[fmt]

    promo_logit = -3.9 + 1.0 * a + slot_eff + layout_eff + hour_eff
    ad_logit = -4.7 + 1.0 * a + fmt_stream + creative_quality + user_ad_receptive[user] + hour_eff
    p = {
        "stream": _sigmoid(np.where(is_ad, ad_logit, promo_logit)),
        "click": _sigmoid(np.where(is_ad, -3.0 + .8 * a + fmt_click, -2.5 + .8 * a + slot_eff)),
        "like": _sigmoid(np.where(is_ad, -5.6, -5.1) + 1.0 * a),
        "follow": _sigmoid(np.where(is_ad, -6.2, -5.8) + 1.0 * a),
    }
    labels = {k: (rng.random(n) < v).astype(np.int64) for k, v in p.items()}

    source = np.where(is_ad, "ads", "promotions")
    surface = np.where(is_ad, np.array(SURFACES["ads"])[fmt],
                       np.array(SURFACES["promotions"])[rng.integers(0, 4, n)])
    age_days = (day_idx - launch_day[pod]).astype(np.int64)
    episode = np.maximum(age_days, 0) // 7
    df = pd.DataFrame({
        "impression_id": [f"i{cfg.seed}-{i}" for i in range(n)],
        "event_time": t.astype(np.int64),
        "source": source,
        "surface": surface,
        "market": np.array(MARKETS)[user_market[user]],
        "platform": np.array(PLATFORMS)[user_platform[user]],
        "user_id": np.char.add("u", user.astype(str)),
        "user_history": [history[u] for u in user],
        "user_follows": [follows[u] for u in user],
        "user_tenure_bucket": np.array(TENURE)[user_tenure[user]],
        "podcast_id": np.char.add("p", pod.astype(str)),
        "episode_id": [f"p{q}-e{e}" for q, e in zip(pod, episode)],
        "genre": np.array(GENRES)[pod_genre[pod]],
        "creator_id": np.char.add("c", pod_creator[pod].astype(str)),
        "podcast_age_days": age_days,
        "promo_slot": pd.array(np.where(is_ad, None, slot), dtype="Int64"),
        "promo_layout": np.where(is_ad, None, np.array(LAYOUTS, dtype=object)[layout]),
        "ad_format": np.where(is_ad, np.array(AD_FORMATS, dtype=object)[fmt], None),
        "campaign_id": np.where(is_ad, np.char.add("cmp", campaign_of_pod[pod].astype(str)).astype(object), None),
        "creative_id": np.where(is_ad, [f"cr{q}-{k}-{f}" for q, k, f in zip(pod, creative_k, fmt)], None),
        **labels,
        **{TRUTH_PREFIX + k: v for k, v in p.items()},
    })
    assert set(labels) == set(LABELS)
    return add_popularity(df)
