"""Synthetic podcast impression logs sampled from a `World`, with their true probabilities.

The world (`datagen/world.py`) holds users, podcasts, creators, campaigns and creatives and the
true probability of every label; this module only decides which impressions were logged: day
volumes with weekly seasonality, hours with a daily curve, users by activity, promotions by
popularity (which a new podcast builds over its first weeks; featured launches get a push), ads
by an auction among the campaigns live that day (budget, bid), both with a light preference
targeting, creatives in rotation. Deterministic for a seed. See datagen/README.md.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from core.days import DAY, HOUR
from core.fields import LABELS, TRUTH_PREFIX
from core.logs import add_popularity
from datagen.world import (AD_FORMATS, HOURLY, LAYOUTS, MARKETS, MAX_SLOT, PLATFORMS, SURFACES, TENURE,
                           WEEKLY, GENRES, GeneratorConfig, World)

__all__ = ["GeneratorConfig", "World", "generate"]

N_CANDIDATES = 6  # promotions: candidates per impression, the most preferred (with noise) is shown
N_AD_CANDIDATES = 4  # ads: campaigns entering the auction per impression
TARGETING = 0.5  # weight of the preference in the logging policy of both channels
BID_WEIGHT = 0.3  # weight of log(bid) in the ads auction


def generate(cfg: GeneratorConfig, world: Optional[World] = None) -> pd.DataFrame:
    """Logged impressions of `world` (built from `cfg` when not given), with labels and true_p_*."""
    cfg.validate()
    world = World(cfg) if world is None else world
    rng = np.random.default_rng([cfg.seed, 1])
    n_pod, n_user = cfg.podcasts, cfg.users
    start_day = world.start_day

    # --- impressions: day volumes with weekly seasonality, hours with a daily curve
    weekday = (start_day + np.arange(cfg.days) + 3) % 7  # 1970-01-01 was a Thursday
    per_day = WEEKLY[weekday] / WEEKLY[weekday].mean() * cfg.impressions_per_day
    per_day = rng.poisson(per_day)
    day_idx = np.repeat(np.arange(cfg.days), per_day)
    n = day_idx.size
    hour = rng.choice(24, n, p=HOURLY / HOURLY.sum())
    t = (start_day + day_idx) * DAY + hour * HOUR + rng.integers(0, 3600, n)
    is_ad = rng.random(n) < cfg.ads_share
    user = rng.choice(n_user, n, p=world.user_activity / world.user_activity.sum())

    pod = np.empty(n, dtype=np.int64)
    creative = np.full(n, -1, dtype=np.int64)
    for d in range(cfg.days):
        # promotions: popularity, which a new podcast builds over its first weeks; featured launches pushed
        rows = np.flatnonzero((day_idx == d) & ~is_ad)
        if rows.size:
            w = world.promotion_weight(d)
            cand = rng.choice(n_pod, (rows.size, N_CANDIDATES), p=w / w.sum())
            score = TARGETING * world.preference(user[rows, None], cand) + rng.gumbel(size=cand.shape)
            pod[rows] = cand[np.arange(rows.size), score.argmax(1)]
        rows = np.flatnonzero((day_idx == d) & is_ad)
        if rows.size:
            pod[rows], creative[rows] = _serve_ads(world, rng, d, user[rows])

    slot = np.minimum(rng.geometric(.3, n), MAX_SLOT)
    layout = rng.choice(len(LAYOUTS), n, p=[.6, .3, .1])
    promo_surface = rng.integers(0, len(SURFACES["promotions"]), n)
    source = np.where(is_ad, "ads", "promotions")
    p = world.true_probabilities(user, pod, source, hour=hour, creative=creative,
                                 promo_slot=np.where(is_ad, -1, slot), promo_layout=np.where(is_ad, -1, layout))
    labels = {k: (rng.random(n) < p[k]).astype(np.int64) for k in LABELS}
    ids = np.array([f"i{cfg.seed}-{i}" for i in range(n)], dtype=object)

    if cfg.ads_scale != 1.0:  # the logged promotions stay exactly as they are; only ad rows are added or dropped
        cols = _scale_ads(cfg, world, WEEKLY[weekday] / WEEKLY[weekday].sum(),
                          dict(day_idx=day_idx, hour=hour, t=t, is_ad=is_ad, user=user, pod=pod, creative=creative,
                               slot=slot, layout=layout, promo_surface=promo_surface, ids=ids,
                               **{"p_" + k: v for k, v in p.items()}, **{"y_" + k: v for k, v in labels.items()}))
        day_idx, hour, t, is_ad, user, pod, creative, slot, layout, promo_surface, ids = (
            cols[k] for k in ("day_idx", "hour", "t", "is_ad", "user", "pod", "creative", "slot", "layout",
                              "promo_surface", "ids"))
        p = {k: cols["p_" + k] for k in LABELS}
        labels = {k: cols["y_" + k] for k in LABELS}
        source = np.where(is_ad, "ads", "promotions")

    crs = np.where(is_ad, creative, 0)
    fmt = world.creative_format[crs]
    camp = world.creative_campaign[crs]
    surface = np.where(is_ad, np.array(SURFACES["ads"])[fmt], np.array(SURFACES["promotions"])[promo_surface])
    age_days = (day_idx - world.launch_day[pod]).astype(np.int64)
    episode = np.maximum(age_days, 0) // 7
    df = pd.DataFrame({
        "impression_id": list(ids),
        "event_time": t.astype(np.int64),
        "source": source,
        "surface": surface,
        "market": np.array(MARKETS)[world.user_market[user]],
        "platform": np.array(PLATFORMS)[world.user_platform[user]],
        "user_id": np.char.add("u", user.astype(str)),
        "user_history": [world.user_history[u] for u in user],
        "user_follows": [world.user_follows[u] for u in user],
        "user_tenure_bucket": np.array(TENURE)[world.user_tenure[user]],
        "podcast_id": np.char.add("p", pod.astype(str)),
        "episode_id": [f"p{q}-e{e}" for q, e in zip(pod, episode)],
        "genre": np.array(GENRES)[world.pod_genre[pod]],
        "creator_id": np.char.add("c", world.pod_creator[pod].astype(str)),
        "podcast_age_days": age_days,
        "promo_slot": pd.array(np.where(is_ad, None, slot), dtype="Int64"),
        "promo_layout": np.where(is_ad, None, np.array(LAYOUTS, dtype=object)[layout]),
        "ad_format": np.where(is_ad, np.array(AD_FORMATS, dtype=object)[fmt], None),
        "campaign_id": np.where(is_ad, world.campaign_ids[camp], None),
        "creative_id": np.where(is_ad, world.creative_ids[crs], None),
        **world.attributes(user, pod, episode),
        **labels,
        **{TRUTH_PREFIX + k: p[k] for k in LABELS},
    })
    return add_popularity(df)


def _serve_ads(world: World, rng, day: int, users: np.ndarray):
    """(podcast, creative) of ad impressions on `day` for `users`: an auction among the campaigns live
    that day, entering in proportion to their planned impressions (budget / bid); creatives rotate."""
    planned = world.campaign_daily_budget / world.campaign_bid  # impressions a campaign plans per day
    live = world.eligible_campaigns(day)
    w = planned[live]
    cand = live[rng.choice(live.size, (users.size, N_AD_CANDIDATES), p=w / w.sum())]
    score = (TARGETING * world.preference(users[:, None], world.campaign_podcast[cand])
             + BID_WEIGHT * np.log(world.campaign_bid[cand]) + rng.gumbel(size=cand.shape))
    camp = cand[np.arange(users.size), score.argmax(1)]
    creative = world.campaign_first_creative[camp] + np.floor(
        rng.random(users.size) * world.campaign_n_creatives[camp]).astype(np.int64)
    return world.campaign_podcast[camp], creative


def _scale_ads(cfg: GeneratorConfig, world: World, day_share: np.ndarray, cols: dict) -> dict:
    """The logged rows with the ad volume x cfg.ads_scale; promotion rows untouched.

    Below 1: each ad row is kept with probability ads_scale. Above 1: (ads_scale - 1) x the expected
    ad volume is drawn again by the same process (day volume, hour, user by activity, auction,
    creative rotation, outcome from the truth), from its own random stream, and appended; rows of a
    day stay together. The extra rows' ids are `i<seed>-x<k>`.
    """
    rng = np.random.default_rng([cfg.seed, 2])
    n = cols["is_ad"].size
    if cfg.ads_scale < 1.0:
        keep = ~cols["is_ad"] | (rng.random(n) < cfg.ads_scale)
        return {k: v[keep] for k, v in cols.items()}
    mean = day_share * cfg.days * cfg.impressions_per_day * cfg.ads_share * (cfg.ads_scale - 1.0)
    day_idx = np.repeat(np.arange(cfg.days), rng.poisson(mean))
    m = day_idx.size
    hour = rng.choice(24, m, p=HOURLY / HOURLY.sum())
    t = (world.start_day + day_idx) * DAY + hour * HOUR + rng.integers(0, 3600, m)
    user = rng.choice(cfg.users, m, p=world.user_activity / world.user_activity.sum())
    pod = np.empty(m, dtype=np.int64)
    creative = np.empty(m, dtype=np.int64)
    for d in range(cfg.days):
        rows = np.flatnonzero(day_idx == d)
        if rows.size:
            pod[rows], creative[rows] = _serve_ads(world, rng, d, user[rows])
    p = world.true_probabilities(user, pod, "ads", hour=hour, creative=creative)
    extra = dict(day_idx=day_idx, hour=hour, t=t.astype(cols["t"].dtype), is_ad=np.ones(m, bool), user=user,
                 pod=pod, creative=creative, slot=np.ones(m, np.int64), layout=np.zeros(m, np.int64),
                 promo_surface=np.zeros(m, np.int64), ids=np.array([f"i{cfg.seed}-x{k}" for k in range(m)], object),
                 **{"p_" + k: v for k, v in p.items()},
                 **{"y_" + k: (rng.random(m) < p[k]).astype(np.int64) for k in LABELS})
    out = {k: np.concatenate([cols[k], extra[k].astype(cols[k].dtype, copy=False)]) for k in cols}
    order = np.argsort(out["day_idx"], kind="stable")
    return {k: v[order] for k, v in out.items()}
