"""A synthetic podcast world with counterfactual truth: users, podcasts, creators, campaigns, creatives.

`World(cfg)` draws everything that does not depend on which impressions were logged, and answers
the true probability of every label for ANY (user, podcast, source, context, ad or promotion)
combination (`true_probabilities`), vectorised. `datagen.synthetic.generate` samples logged
impressions from it; an A/B simulator can ask it for counterfactual outcomes, the campaigns
eligible on a day, their budgets and bids, the emerging-creator segment, and the logged feature
row of any impression (`feature_rows`). The domain facts and their numbers are stated in
`datagen/README.md`; `tests/test_world.py` checks each of them on this truth.

Stream logit of an impression (the other labels: see `true_probabilities`):

    promotions: INTERCEPT + SHARED_WEIGHT * preference(u, p) + hour + slot + layout
    ads:        INTERCEPT + SHARED_WEIGHT * preference(u, p) + hour
                + ad_format + creative + campaign (quality + targeting) + receptivity(u)

`preference` is one latent user x podcast affinity (standardised over random pairs), the signal
promotions carry to ads. Promotion metadata affects promotions only; the ad terms are ads only.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Dict, Sequence

import numpy as np
import pandas as pd

from core.days import DAY
from core.fields import bucket_name, popularity_bucket

WORLD_VERSION = 3  # bump when the world or the sampling changes: cached logs of an older version are remade
START = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)  # a Monday
DIM = 8
GENRES = ("comedy", "news", "true_crime", "sports", "business", "health", "society", "tech", "history",
          "kids", "music", "education")
MARKETS = ("US", "GB", "DE", "SE", "BR", "MX", "IN", "JP")
MARKET_P = (.35, .12, .1, .08, .12, .08, .1, .05)
PLATFORMS = ("ios", "android", "desktop", "web")
TENURE = ("lt30d", "30d_1y", "1y_3y", "3yplus")
SURFACES = {"promotions": ("home_shelf", "browse_banner", "now_playing_card", "search_promo"),
            "ads": ("audio_break", "video_takeover", "display_banner")}
LAYOUTS = ("shelf", "card", "hero")
AD_FORMATS = ("audio", "video", "display")
HOURLY = np.array([2, 1.5, 1, .8, .8, 1.2, 2.5, 4, 5, 4.5, 4, 4.2, 4.8, 4.5, 4, 4.2, 4.8, 5.5, 6.5, 7, 6.5, 5.5, 4, 3])
WEEKLY = np.array([1.0, .97, .98, 1.0, 1.05, 1.15, 1.12])  # Mon..Sun

# ---- the domain's numbers (stated in datagen/README.md before any model was trained on them)
SHARED_WEIGHT = {"stream": 1.0, "click": 0.8, "like": 1.0, "follow": 1.0}  # on the standardised preference
INTERCEPT = {  # per label and source
    "stream": {"promotions": -3.9, "ads": -4.6},
    "click": {"promotions": -2.5, "ads": -3.2},
    "like": {"promotions": -5.1, "ads": -5.6},
    "follow": {"promotions": -5.8, "ads": -6.2},
}
HOUR_AMPLITUDE = 0.15  # evening peak at 20:00 UTC
LAYOUT_EFFECT = np.array([-.15, 0.0, .35])  # shelf, card, hero (promotions only)
MAX_SLOT = 10
AD_FORMAT_STREAM = np.array([.30, .10, -.50])  # audio, video, display (ads only)
AD_FORMAT_CLICK = np.array([-.30, .30, .20])
AD_FORMAT_P = (.5, .2, .3)  # share of creatives per format
CREATIVE_SD = 0.55  # creative quality, per creative_id
CAMPAIGN_SD = 0.4  # campaign quality, per campaign_id
TARGET_GAIN = 0.5  # a campaign's audience fit: users in its target market
RECEPTIVITY_TENURE = np.array([.50, .15, -.05, -.25])  # newer listeners are more receptive to ads
RECEPTIVITY_PLATFORM = np.array([.15, .20, -.35, -.45])  # ios, android, desktop, web
RECEPTIVITY_SD = 0.20  # individual part of a user's ad receptivity
CLICK_CREATIVE, CLICK_RECEPTIVITY = 0.5, 0.5  # ad clicks respond to the creative and the user's receptivity

OLD_ADVERTISER_SHARE = 0.35  # podcasts launched before the window that buy ads
NEW_ADVERTISER_SHARE = 0.85  # podcasts launching in the window that buy a launch campaign
RAMP_DAYS = 28  # a new podcast's organic popularity builds linearly over four weeks
FEATURED_SHARE, FEATURE_PUSH = 0.1, 4.0  # share of launches featured editorially, and their first-week push
EMERGING_BOTTOM_SHARE = 0.5  # emerging creators: launched in the window or in the bottom half by popularity

# Optional attributes real logs carry (core.fields, `optional`). None of them enters the truth: activity
# sets how often a user is logged (`user_activity`), the following range is read from the user's follows,
# the rest are drawn from their own random stream, so the labels and every other column are those of a
# world without them.
ACTIVITY_LEVELS = ("low", "middle", "high", "full")  # by quantile of user_activity
ACTIVITY_QUANTILES = (.25, .6, .9)
FOLLOWING_RANGES = (("0", 0), ("1-2", 1), ("3-5", 3), ("6+", 6))  # (name, lower bound inclusive)
FOLLOWER_RANGES = (("0", 0), ("1-9", 1), ("10-99", 10), ("100+", 100))
EPISODE_FORMATS = ("full", "trailer", "bonus", "clip")
EPISODE_FORMAT_P = (.8, .07, .08, .05)
EPISODE_SLOTS = 64  # per podcast, episode k has the duration and format of slot k % 64


AD_PARTS = ("ad_format", "creative", "campaign", "receptivity")
PROMO_PARTS = ("promo_slot", "promo_layout")


MAX_DAYS = 3650
MAX_ROWS = 50_000_000
MAX_ADS_SCALE = 64.0


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 7
    days: int = 28
    users: int = 20000
    podcasts: int = 3000
    impressions_per_day: int = 18000
    ads_share: float = 1 / 7  # promotions : ads = 6 : 1
    new_podcast_share: float = 0.5  # podcasts launched during the period
    # Logged ad volume x this, the world (users, podcasts, campaigns, budgets, truth) and the logged
    # promotions unchanged: 1.0 is the default world exactly; above 1 more ad impressions are drawn
    # by the same process, below 1 a random share of them is kept (datagen.synthetic.generate).
    ads_scale: float = 1.0

    def manifest_config(self) -> dict:
        """The config as written into a log manifest; ads_scale only when not 1 (older manifests match)."""
        out = dataclasses.asdict(self)
        if self.ads_scale == 1.0:
            del out["ads_scale"]
        return out

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
        if not 0 <= self.new_podcast_share < 1:
            raise ValueError(f"new podcast share must be in [0, 1), got {self.new_podcast_share}")
        if not 0 < self.ads_scale <= MAX_ADS_SCALE:
            raise ValueError(f"--ads-scale must be in (0, {MAX_ADS_SCALE:g}], got {self.ads_scale}")
        expected = self.days * self.impressions_per_day * (1 + self.ads_share * max(self.ads_scale - 1, 0))
        if expected > MAX_ROWS:
            raise ValueError(f"--days x --impressions-per-day with --ads-scale {self.ads_scale:g} = about "
                             f"{expected:,.0f} impressions; the generator writes at most {MAX_ROWS:,}")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def slot_effect(slot):
    return 0.45 - 0.1 * (np.asarray(slot) - 1)


def hour_effect(hour):
    return HOUR_AMPLITUDE * np.cos((np.asarray(hour) - 20) / 24 * 2 * np.pi)


def _gumbel_topk(rng, logw: np.ndarray, k: int) -> np.ndarray:
    """k indices per row sampled without replacement with weights exp(logw)."""
    keys = logw + rng.gumbel(size=logw.shape)
    k = min(k, logw.shape[1])
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def _codes(values, names: Sequence[str]) -> np.ndarray:
    """Indices into `names` from indices or names; None / NaN / -1 -> -1."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        return np.where(np.isnan(arr), -1, arr).astype(np.int64)
    lookup = {n: i for i, n in enumerate(names)}
    out = np.empty(arr.shape, dtype=np.int64)
    flat = arr.astype(object).ravel()
    for i, v in enumerate(flat):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out.flat[i] = -1
        elif isinstance(v, str):
            if v not in lookup:
                raise ValueError(f"unknown value {v!r}; expected one of {', '.join(map(str, names[:5]))}"
                                 + (", ..." if len(names) > 5 else ""))
            out.flat[i] = lookup[v]
        else:
            out.flat[i] = int(v)
    return out


class World:
    """Everything of the synthetic podcast world that impressions are sampled from.

    Indices are positions: user u is `user_id` "u{u}", podcast p is "p{p}", creator c is "c{c}",
    campaign k is "cmp{k}", creative j is `creative_ids[j]`. Days are counted from the window's
    first day (0 .. cfg.days - 1); podcasts launched before the window have negative launch days.
    """

    def __init__(self, cfg: GeneratorConfig):
        cfg.validate()
        self.cfg = cfg
        self.start_day = int(START.timestamp()) // DAY  # epoch day of the window's first day
        rng = np.random.default_rng([cfg.seed, 0])
        self._build_podcasts(rng)
        self._build_users(rng)
        self._build_campaigns(rng)
        self._build_segments()
        self._build_history(rng)
        self._build_attributes(np.random.default_rng([cfg.seed, 3]))

    # ------------------------------------------------------------------ construction
    def _build_podcasts(self, rng):
        cfg = self.cfg
        n_pod = cfg.podcasts
        self.centroids = rng.normal(0, 1, (len(GENRES), DIM))
        n_creators = max(1, n_pod // 3)
        self.creator_genre = rng.integers(0, len(GENRES), n_creators)
        self.creator_vec = self.centroids[self.creator_genre] + rng.normal(0, .6, (n_creators, DIM))
        self.creator_quality = rng.normal(0, .5, n_creators)
        pod_creator = np.minimum((rng.pareto(1.2, n_pod) * n_creators / 8).astype(int), n_creators - 1)
        self.pod_creator = rng.permutation(n_creators)[pod_creator] if n_creators > 1 else pod_creator
        self.pod_genre = self.creator_genre[self.pod_creator]
        self.pod_vec = self.creator_vec[self.pod_creator] + rng.normal(0, .5, (n_pod, DIM))
        self.pod_quality = self.creator_quality[self.pod_creator] + rng.normal(0, .3, n_pod)
        is_new = rng.random(n_pod) < cfg.new_podcast_share
        if is_new.all():
            is_new[0] = False  # at least one podcast is live on the first day
        self.is_new = is_new
        self.launch_day = np.where(is_new, rng.integers(0, cfg.days, n_pod), -rng.integers(30, 1500, n_pod))
        self.pod_weight = rng.lognormal(0, 1.3, n_pod) * np.exp(self.pod_quality)  # long-tailed popularity
        self.featured_launch = is_new & (rng.random(n_pod) < FEATURED_SHARE)
        self.n_creators = n_creators

    def _build_users(self, rng):
        cfg = self.cfg
        n_user = cfg.users
        fav = rng.integers(0, len(GENRES), n_user)
        self.user_vec = self.centroids[fav] + rng.normal(0, .7, (n_user, DIM))
        self.user_bias = rng.normal(0, .4, n_user)
        self.user_activity = rng.lognormal(0, 1.0, n_user)
        self.user_market = rng.choice(len(MARKETS), n_user, p=MARKET_P)
        self.user_platform = rng.choice(len(PLATFORMS), n_user, p=[.4, .4, .15, .05])
        self.user_tenure = rng.choice(len(TENURE), n_user, p=[.1, .25, .35, .3])
        # a user's receptivity to ads: mostly from observable segments, partly individual
        self.user_receptivity = (RECEPTIVITY_TENURE[self.user_tenure] + RECEPTIVITY_PLATFORM[self.user_platform]
                                 + rng.normal(0, RECEPTIVITY_SD, n_user))
        # the preference is standardised over random user x podcast pairs
        probe_u = rng.integers(0, n_user, 20000)
        probe_p = rng.integers(0, cfg.podcasts, 20000)
        raw = self._raw_preference(probe_u, probe_p)
        self._pref_norm = (raw.mean(), raw.std())

    def _build_campaigns(self, rng):
        """Campaigns: podcast, active days [start, end), daily budget, CPM bid, target market, creatives."""
        cfg = self.cfg
        n_pod, days = cfg.podcasts, cfg.days
        old = ~self.is_new
        advertises = np.where(self.is_new, rng.random(n_pod) < NEW_ADVERTISER_SHARE,
                              rng.random(n_pod) < OLD_ADVERTISER_SHARE)
        if not advertises[old].any():  # every day needs a live campaign: the most popular old podcast advertises
            advertises[np.flatnonzero(old)[np.argmax(self.pod_weight[old])]] = True
        pods, starts, ends = [], [], []
        for p in np.flatnonzero(advertises):
            if self.is_new[p]:  # launch campaign from the launch day
                s = int(self.launch_day[p])
                pods.append(p), starts.append(s), ends.append(s + int(rng.integers(14, 36)))
            elif rng.random() < .4:  # evergreen campaign spanning the window
                pods.append(p), starts.append(-int(rng.integers(1, 60))), ends.append(days + int(rng.integers(1, 60)))
            else:
                s = int(rng.integers(-20, max(days - 2, -19)))
                pods.append(p), starts.append(s), ends.append(s + int(rng.integers(7, 29)))
                if rng.random() < .3:  # a second flight later in the window
                    s2 = int(rng.integers(0, days))
                    pods.append(p), starts.append(s2), ends.append(s2 + int(rng.integers(7, 29)))
        # the most popular old advertiser's campaign is always on, so every day has a live campaign
        top = max(range(len(pods)), key=lambda i: (not self.is_new[pods[i]], self.pod_weight[pods[i]]))
        starts[top], ends[top] = min(starts[top], 0), max(ends[top], days)
        self.campaign_podcast = np.array(pods, dtype=np.int64)
        self.campaign_start = np.array(starts, dtype=np.int64)
        self.campaign_end = np.array(ends, dtype=np.int64)
        n_camp = self.campaign_podcast.size
        self.campaign_bid = np.round(rng.lognormal(np.log(8.0), .4, n_camp), 2)  # CPM, currency per 1000 impressions
        budget = rng.lognormal(0, 1.0, n_camp)
        self.campaign_quality = rng.normal(0, CAMPAIGN_SD, n_camp)
        self.campaign_target_market = rng.choice(len(MARKETS), n_camp, p=MARKET_P)
        # creatives: 1-4 per campaign, each in one format
        n_cr = np.minimum(1 + rng.poisson(1.5, n_camp), 4)
        self.campaign_first_creative = np.r_[0, np.cumsum(n_cr)[:-1]].astype(np.int64)
        self.campaign_n_creatives = n_cr.astype(np.int64)
        self.creative_campaign = np.repeat(np.arange(n_camp), n_cr)
        self.creative_format = rng.choice(len(AD_FORMATS), self.creative_campaign.size, p=AD_FORMAT_P)
        self.creative_quality = rng.normal(0, CREATIVE_SD, self.creative_campaign.size)
        k = np.arange(self.creative_campaign.size) - self.campaign_first_creative[self.creative_campaign]
        self.creative_ids = np.array([f"cr{c}-{j}" for c, j in zip(self.creative_campaign, k)], dtype=object)
        self.campaign_ids = np.array([f"cmp{c}" for c in range(n_camp)], dtype=object)
        # budgets scaled so that the live campaigns' planned impressions match the logged ad volume
        planned = budget / self.campaign_bid * 1000
        live_planned = np.mean([planned[self.eligible_campaigns(d)].sum() for d in range(days)])
        ads_per_day = cfg.impressions_per_day * cfg.ads_share
        self.campaign_daily_budget = np.round(budget * ads_per_day / live_planned, 4)  # currency per day

    def _build_segments(self):
        """Emerging creators: every podcast launched in the window, or in the bottom popularity tier."""
        has_pod = np.bincount(self.pod_creator, minlength=self.n_creators) > 0
        first_launch = np.full(self.n_creators, np.iinfo(np.int64).max)
        np.minimum.at(first_launch, self.pod_creator, self.launch_day)
        weight = np.bincount(self.pod_creator, weights=self.pod_weight, minlength=self.n_creators)
        cut = np.quantile(weight[has_pod], EMERGING_BOTTOM_SHARE) if has_pod.any() else 0.0
        self.creator_launched_in_window = has_pod & (first_launch >= 0)
        self.emerging_creator = has_pod & ((first_launch >= 0) | (weight <= cut))
        self.emerging_podcast = self.emerging_creator[self.pod_creator]

    def _build_history(self, rng):
        """Listening history and follows, sampled by preference among podcasts launched before the window."""
        n_user = self.cfg.users
        old = np.flatnonzero(self.launch_day < 0)
        history, follows = [], []
        hist_len = np.minimum(rng.poisson(8, n_user), 20)
        for lo in range(0, n_user, 2000):
            u = np.arange(lo, min(lo + 2000, n_user))
            logits = np.log(self.pod_weight[old])[None, :] + 2.0 * self.preference(u[:, None], old[None, :])
            top = _gumbel_topk(rng, logits, 20)
            for row, uid in enumerate(u):
                picks = [f"p{old[j]}" for j in top[row, :hist_len[uid]]]
                history.append(picks)
                follows.append(picks[: int(rng.integers(0, max(1, len(picks) // 3) + 1))])
        self.user_history, self.user_follows = history, follows

    def _build_attributes(self, rng):
        """The optional attributes (ACTIVITY_LEVELS above): none of them enters the truth."""
        n_user, n_pod = self.cfg.users, self.cfg.podcasts
        cuts = np.quantile(self.user_activity, ACTIVITY_QUANTILES)
        self.user_activity_level = np.searchsorted(cuts, self.user_activity, side="right")
        self.user_following_range = np.array([bucket_name(len(f), FOLLOWING_RANGES) for f in self.user_follows],
                                             dtype=object)
        followers = np.floor(rng.pareto(1.1, n_user) * 2).astype(np.int64)
        self.user_followers_range = np.array([bucket_name(int(x), FOLLOWER_RANGES) for x in followers], dtype=object)
        typical = rng.lognormal(np.log(2400), .5, n_pod)  # seconds; a podcast's typical episode
        self.episode_duration = np.maximum(
            60, typical[:, None] * rng.lognormal(0, .25, (n_pod, EPISODE_SLOTS))).astype(np.int64)
        self.episode_format = rng.choice(len(EPISODE_FORMATS), (n_pod, EPISODE_SLOTS), p=EPISODE_FORMAT_P)

    def attributes(self, users, podcasts, episodes) -> dict:
        """The optional attribute columns for rows of (user, podcast, episode number) index arrays."""
        users, podcasts = np.asarray(users), np.asarray(podcasts)
        slot = np.asarray(episodes) % EPISODE_SLOTS
        return {
            "user_activity_level": np.array(ACTIVITY_LEVELS, dtype=object)[self.user_activity_level[users]],
            "user_following_range": self.user_following_range[users],
            "user_followers_range": self.user_followers_range[users],
            "episode_duration_s": self.episode_duration[podcasts, slot],
            "episode_format": np.array(EPISODE_FORMATS, dtype=object)[self.episode_format[podcasts, slot]],
        }

    # ------------------------------------------------------------------ the truth
    def _raw_preference(self, users, podcasts):
        u, p = np.asarray(users), np.asarray(podcasts)
        return (self.user_vec[u] * self.pod_vec[p]).sum(-1) / np.sqrt(DIM) + self.pod_quality[p] + self.user_bias[u]

    def preference(self, users, podcasts) -> np.ndarray:
        """The latent user x podcast preference, standardised over random pairs (mean 0, sd 1)."""
        mean, sd = self._pref_norm
        return (self._raw_preference(users, podcasts) - mean) / sd

    @property
    def n_campaigns(self) -> int:
        return int(self.campaign_podcast.size)

    @property
    def n_creatives(self) -> int:
        return int(self.creative_campaign.size)

    def _inputs(self, users, podcasts, source, hour, ad_format, creative, campaign, promo_slot, promo_layout):
        users = np.asarray(users, dtype=np.int64)
        podcasts = np.asarray(podcasts, dtype=np.int64)
        given = [x for x in (ad_format, creative, campaign, promo_slot, promo_layout) if x is not None]
        shape = np.broadcast_shapes(users.shape, podcasts.shape, np.shape(hour), np.shape(source),
                                    *(np.shape(x) for x in given))
        users, podcasts = np.broadcast_to(users, shape), np.broadcast_to(podcasts, shape)
        src = np.asarray(source)
        if not np.isin(src, ("ads", "promotions")).all():
            raise ValueError(f"source must be 'ads' or 'promotions', got {np.unique(src)}")
        is_ad = np.broadcast_to(src == "ads", shape)
        hour = np.broadcast_to(np.asarray(hour, dtype=np.int64), shape)

        def arr(x):
            return np.broadcast_to(np.full(shape, -1, np.int64) if x is None else x, shape)

        cr = arr(None if creative is None else _codes(creative, self.creative_ids))
        fmt = arr(None if ad_format is None else _codes(ad_format, AD_FORMATS))
        cmp_ = arr(None if campaign is None else _codes(campaign, self.campaign_ids))
        slot = arr(None if promo_slot is None else _codes(promo_slot, ()))
        layout = arr(None if promo_layout is None else _codes(promo_layout, LAYOUTS))
        if is_ad.any():
            c = cr[is_ad]
            if ((c < 0) | (c >= self.n_creatives)).any():
                raise ValueError("ads need a creative (index into world.creative_ids) on every row")
            camp = self.creative_campaign[c]
            f = fmt[is_ad]
            if ((f >= 0) & (f != self.creative_format[c])).any():
                raise ValueError("ad_format differs from the creative's format")
            k = cmp_[is_ad]
            if ((k >= 0) & (k != camp)).any():
                raise ValueError("campaign differs from the creative's campaign")
            if (podcasts[is_ad] != self.campaign_podcast[camp]).any():
                raise ValueError("podcast differs from the podcast the creative's campaign promotes")
        if (~is_ad).any():
            s, l_ = slot[~is_ad], layout[~is_ad]
            if ((s < 1) | (s > MAX_SLOT)).any() or ((l_ < 0) | (l_ >= len(LAYOUTS))).any():
                raise ValueError(f"promotions need promo_slot in 1..{MAX_SLOT} and a promo_layout on every row")
        return users, podcasts, is_ad, hour, cr, slot, layout

    def logit_parts(self, users, podcasts, source, *, hour, ad_format=None, creative=None, campaign=None,
                    promo_slot=None, promo_layout=None) -> Dict[str, np.ndarray]:
        """Additive parts of the stream logit: intercept, shared, hour, the ad parts, the promotion parts.

        Parts of the other channel are 0. Their sum is the stream logit.
        """
        users, podcasts, is_ad, hour, cr, slot, layout = self._inputs(
            users, podcasts, source, hour, ad_format, creative, campaign, promo_slot, promo_layout)
        return self._parts(users, podcasts, is_ad, hour, cr, slot, layout)

    def _parts(self, users, podcasts, is_ad, hour, cr, slot, layout):
        zero = np.zeros(users.shape)
        crs = np.where(is_ad, cr, 0)
        camp = self.creative_campaign[crs]
        on_target = self.user_market[users] == self.campaign_target_market[camp]
        return {
            "intercept": np.where(is_ad, INTERCEPT["stream"]["ads"], INTERCEPT["stream"]["promotions"]) + zero,
            "shared": SHARED_WEIGHT["stream"] * self.preference(users, podcasts),
            "hour": hour_effect(hour) + zero,
            "ad_format": np.where(is_ad, AD_FORMAT_STREAM[self.creative_format[crs]], 0.0),
            "creative": np.where(is_ad, self.creative_quality[crs], 0.0),
            "campaign": np.where(is_ad, self.campaign_quality[camp] + TARGET_GAIN * on_target, 0.0),
            "receptivity": np.where(is_ad, self.user_receptivity[users], 0.0),
            "promo_slot": np.where(is_ad, 0.0, slot_effect(np.where(is_ad, 1, slot))),
            "promo_layout": np.where(is_ad, 0.0, LAYOUT_EFFECT[np.where(is_ad, 0, layout)]),
        }

    def true_probabilities(self, users, podcasts, source, *, hour, ad_format=None, creative=None, campaign=None,
                           promo_slot=None, promo_layout=None) -> Dict[str, np.ndarray]:
        """True probability of each label (stream, click, like, follow) for any combination.

        users, podcasts: indices; source: "ads" / "promotions" (scalar or per row); hour: 0..23 UTC.
        Ads rows need `creative` (index into `creative_ids`); its campaign and format follow from it
        (`campaign` and `ad_format`, if given, must agree) and the podcast must be the campaign's.
        Promotion rows need `promo_slot` (1..10) and `promo_layout` (index or name). Arguments of
        the other channel are ignored (pass None or -1). Everything broadcasts.
        """
        users, podcasts, is_ad, hour, cr, slot, layout = self._inputs(
            users, podcasts, source, hour, ad_format, creative, campaign, promo_slot, promo_layout)
        parts = self._parts(users, podcasts, is_ad, hour, cr, slot, layout)
        fmt_click = np.where(is_ad, AD_FORMAT_CLICK[self.creative_format[np.where(is_ad, cr, 0)]], 0.0)
        pref = parts["shared"] / SHARED_WEIGHT["stream"]
        logits = {
            "stream": sum(parts.values()),
            "click": (np.where(is_ad, INTERCEPT["click"]["ads"], INTERCEPT["click"]["promotions"])
                      + SHARED_WEIGHT["click"] * pref + parts["promo_slot"] + fmt_click
                      + CLICK_CREATIVE * parts["creative"] + CLICK_RECEPTIVITY * parts["receptivity"]),
        }
        for label in ("like", "follow"):
            logits[label] = np.where(is_ad, INTERCEPT[label]["ads"], INTERCEPT[label]["promotions"]) \
                + SHARED_WEIGHT[label] * pref
        return {k: sigmoid(v) for k, v in logits.items()}

    # ------------------------------------------------------------------ what a simulator needs
    def promotion_weight(self, day: int) -> np.ndarray:
        """How often the promotion system considers each podcast on `day` (0 before launch).

        Organic popularity, which a new podcast builds over its first RAMP_DAYS days; editorially
        featured launches get a push in their first week.
        """
        age = day - self.launch_day
        ramp = np.clip((age + 1) / RAMP_DAYS, 0.0, 1.0)
        push = 1.0 + FEATURE_PUSH * (self.featured_launch & (age < 7))
        return np.where(age >= 0, self.pod_weight * ramp * push, 0.0)

    def eligible_campaigns(self, day: int) -> np.ndarray:
        """Campaigns that may serve on `day` (window day index): flight running and podcast launched."""
        live = (self.campaign_start <= day) & (day < self.campaign_end)
        return np.flatnonzero(live & (self.launch_day[self.campaign_podcast] <= day))

    def campaign_creatives(self, campaign: int) -> np.ndarray:
        first = self.campaign_first_creative[campaign]
        return np.arange(first, first + self.campaign_n_creatives[campaign])

    def campaigns(self) -> pd.DataFrame:
        """One row per campaign: id, podcast, flight days [start_day, end_day), daily budget, CPM bid, ..."""
        return pd.DataFrame({
            "campaign_id": self.campaign_ids,
            "podcast": self.campaign_podcast,
            "podcast_id": np.char.add("p", self.campaign_podcast.astype(str)),
            "start_day": self.campaign_start,
            "end_day": self.campaign_end,
            "daily_budget": self.campaign_daily_budget,
            "bid_cpm": self.campaign_bid,
            "target_market": np.array(MARKETS)[self.campaign_target_market],
            "first_creative": self.campaign_first_creative,
            "n_creatives": self.campaign_n_creatives,
            "emerging": self.emerging_podcast[self.campaign_podcast],
            "launch_campaign": self.campaign_start == self.launch_day[self.campaign_podcast],
        })

    def creatives(self) -> pd.DataFrame:
        return pd.DataFrame({"creative_id": self.creative_ids, "campaign": self.creative_campaign,
                             "ad_format": np.array(AD_FORMATS)[self.creative_format]})

    def indices(self, df: pd.DataFrame) -> Dict[str, np.ndarray]:
        """Keyword arguments of `true_probabilities` / `logit_parts` for logged rows."""
        def ids(col, prefix):
            return df[col].str.slice(len(prefix)).astype(np.int64).to_numpy()

        cr = pd.Index(self.creative_ids).get_indexer(df["creative_id"].where(df["creative_id"].notna(), ""))
        slot = pd.array(df["promo_slot"], dtype="Int64").fillna(-1).to_numpy(np.int64)
        return {
            "users": ids("user_id", "u"),
            "podcasts": ids("podcast_id", "p"),
            "source": df["source"].to_numpy(str),
            "hour": (df["event_time"].to_numpy(np.int64) // 3600) % 24,
            "creative": cr.astype(np.int64),
            "promo_slot": slot,
            "promo_layout": _codes(df["promo_layout"].to_numpy(object), LAYOUTS),
        }

    def feature_rows(self, users, podcasts, source, event_time, *, creative=None, promo_slot=None,
                     promo_layout=None, surface=None, prior_impressions=0, recent_streams=0,
                     impression_ids=None) -> Dict[str, list]:
        """The logged columns (features and key; no labels, no truth) of impressions, for scoring.

        `prior_impressions` and `recent_streams` are the podcast's counts before the impression
        (the log's `podcast_prior_impressions` / `podcast_recent_streams`); the caller keeps them.
        """
        shape = np.broadcast_shapes(np.shape(users), np.shape(podcasts), np.shape(event_time), np.shape(source))
        n = int(np.prod(shape))

        def flat(x, dtype=np.int64, names=None):
            if x is None:
                return np.full(n, -1, np.int64)
            x = _codes(x, names) if names is not None else np.asarray(x, dtype=dtype)
            return np.broadcast_to(x, shape).ravel()

        users, pods, t = flat(users), flat(podcasts), flat(event_time)
        is_ad = flat(np.asarray(source) == "ads", dtype=bool)
        cr = flat(creative, names=self.creative_ids)
        crs = np.where(is_ad, cr, 0)
        fmt = self.creative_format[crs]
        slot, layout = flat(promo_slot, names=()), flat(promo_layout, names=LAYOUTS)
        if ((cr < 0) | (cr >= self.n_creatives))[is_ad].any():
            raise ValueError("ads need a creative on every row")
        if ((slot < 1) | (slot > MAX_SLOT) | (layout < 0) | (layout >= len(LAYOUTS)))[~is_ad].any():
            raise ValueError(f"promotions need promo_slot in 1..{MAX_SLOT} and a promo_layout on every row")
        if surface is None:
            surface = np.where(is_ad, np.array(SURFACES["ads"])[fmt], SURFACES["promotions"][0])
        surface = np.broadcast_to(np.asarray(surface, dtype=object), shape).ravel()
        age = (t // DAY - self.start_day - self.launch_day[pods]).astype(np.int64)
        prior, recent = flat(prior_impressions), flat(recent_streams)
        camp = self.creative_campaign[crs]
        extra = {k: v.tolist() for k, v in self.attributes(users, pods, np.maximum(age, 0) // 7).items()}
        return {
            "impression_id": list(impression_ids) if impression_ids is not None else [f"q{i}" for i in range(n)],
            "event_time": t.tolist(),
            "source": np.where(is_ad, "ads", "promotions").tolist(),
            "surface": list(surface),
            "market": np.array(MARKETS)[self.user_market[users]].tolist(),
            "platform": np.array(PLATFORMS)[self.user_platform[users]].tolist(),
            "user_id": [f"u{u}" for u in users],
            "user_history": [self.user_history[u] for u in users],
            "user_follows": [self.user_follows[u] for u in users],
            "user_tenure_bucket": np.array(TENURE)[self.user_tenure[users]].tolist(),
            "podcast_id": [f"p{p}" for p in pods],
            "episode_id": [f"p{p}-e{e}" for p, e in zip(pods, np.maximum(age, 0) // 7)],
            "genre": np.array(GENRES)[self.pod_genre[pods]].tolist(),
            "creator_id": [f"c{c}" for c in self.pod_creator[pods]],
            "podcast_age_days": age.tolist(),
            "podcast_recent_streams": recent.tolist(),
            "podcast_prior_impressions": prior.tolist(),
            "promo_slot": [None if a else int(s) for a, s in zip(is_ad, slot)],
            "promo_layout": [None if a else LAYOUTS[l_] for a, l_ in zip(is_ad, layout)],
            "ad_format": [AD_FORMATS[f] if a else None for a, f in zip(is_ad, fmt)],
            "campaign_id": [self.campaign_ids[k] if a else None for a, k in zip(is_ad, camp)],
            "creative_id": [self.creative_ids[c] if a else None for a, c in zip(is_ad, crs)],
            "popularity_bucket": [popularity_bucket(int(x)) for x in prior],
            **extra,
        }
