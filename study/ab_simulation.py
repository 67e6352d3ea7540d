"""`podcast-mtl simulate-ab`: a budget-split A/B test of two ad rankers on the synthetic world.

The synthetic world (`datagen/world.py`) knows the true stream probability of any impression, so
an online test can be simulated: users are split at random into a control and a treatment arm,
every campaign's daily budget is split in the same proportion, and each arm serves the ad
requests of its own users with its own model and its own share of the money. The outcome of
every served impression is drawn from the world's truth. Design (also in docs/studies.md):

- Days: the last `days` days of the world's window (the newest days: the pipeline's test split
  with the default split, so the models never trained on them). Budgets are daily; no rollover.
- Requests: the world's own request process, as `datagen.synthetic.generate` draws ad impressions
  (Poisson day volume with weekly seasonality, hour from the daily curve, user by activity),
  drawn afresh per repeat, times `traffic_scale`; every campaign's budget is scaled alike. (The
  world sizes budgets to the logged ad volume: ~2,600 ads a day for ~1,400 live campaigns, under
  one impression per campaign and arm; scaled by 4, a campaign serves a few.) A user stays in one
  arm for the whole test.
- Candidates: per request, `candidates` campaigns are retrieved among the campaigns eligible that
  day whose budget in the arm still affords an impression at the top of the hour, with
  probability proportional to their planned daily impressions (as the logging auction does);
  every creative of every retrieved campaign is scored for the user and the context.
- Ranking (the same rule in both arms): the arm's predicted ad-stream probability times the
  campaign's bid (expected value per impression); the best creative whose campaign still has
  budget in the arm wins; no budget left in any candidate: the request goes unfilled.
- Price: first price, the campaign's CPM bid / 1000 per impression, in integer micro-units so
  that a budget is never overspent. Pacing: by the end of hour h a campaign may have spent its
  arm's daily budget times the day's traffic share up to h (all of it by the last hour).
- Features: `world.feature_rows` with the podcast's earlier impressions and 7-day streams as a
  feature store would hold them, refreshed at the top of every hour: the logged history before
  the test, the logged promotion impressions during it, and the ad impressions of both arms
  (each counted 1 / traffic_scale, so that the counters grow at the logged rate).
- Outcome: stream ~ Bernoulli(the world's true stream probability of the served creative).
- Metrics per arm (overall, emerging creators, popularity bucket of the impression by the podcast's earlier
  impressions, and by its streams in the 7 days before the hour, the seed's listening volume): requests,
  impressions, streams (= total streams), spend, i2s = streams / impressions, eCPS = spend /
  streams. Counts are compared per unit of budget share (treatment / share vs control / (1 -
  share)). 95% intervals and two-sided p-values from a Poisson bootstrap over users (a user in
  one repeat is one unit; repeats pooled).

Scorers are callables `Candidates -> probabilities`, so tests can use the truth or noise without
TensorFlow; `models.batch_score.SavedModelScorer` scores a pushed SavedModel.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import pandas as pd

from core.days import DAY, HOUR
from core.fields import LISTENING_BUCKETS, POPULARITY_BUCKETS, listening_bucket, popularity_bucket
from core.logs import RECENT_WINDOW_S
from datagen.world import HOURLY, WEEKLY, World

ARMS = ("control", "treatment")
BUCKETS = tuple(name for name, _ in POPULARITY_BUCKETS)  # by the podcast's earlier impressions
# by the podcast's streams in the 7 days before the hour of the impression (the seed's "recent
# listening volume"), as the feature store holds them (`_Counters.at`: nothing after the hour's start)
LISTENING = tuple(name for name, _ in LISTENING_BUCKETS)
SEGMENTS = ("overall", "emerging") + BUCKETS + LISTENING
COUNTS = ("requests", "impressions", "streams", "spend")
METRICS = ("impressions", "streams", "spend", "i2s", "ecps")
METRIC_LABEL = {"requests": "requests", "impressions": "impressions", "streams": "streams (total)",
                "spend": "spend", "i2s": "i2s", "ecps": "eCPS"}
SHORT = {"0_new_lt10": "new\n<10", "1_tail_10_99": "tail\n10-99", "2_torso_100_999": "torso\n100-999",
         "3_head_1000plus": "head\n1000+", "L0_no_streams_7d": "7d streams\n0", "L1_1_4_streams_7d": "7d streams\n1-4",
         "L2_5_19_streams_7d": "7d streams\n5-19", "L3_20plus_streams_7d": "7d streams\n20+"}  # chart labels
MICRO = 1_000_000  # budgets and prices in integer micro-units of the bid's currency
RECENT_HOURS = RECENT_WINDOW_S // HOUR

# The seed's online budget-split test (unified model vs the promotions model for ad cold start).
SEED_RESULT = {
    "overall": {"i2s": 0.18, "ecps": -0.20, "streams": 0.18},
    "emerging": {"i2s": 0.24, "ecps": -0.22, "streams": 0.27},
    "least_listened_bucket": {"i2s": 0.60},
}


@dataclasses.dataclass(frozen=True)
class ABConfig:
    days: int = 3  # the last `days` days of the world's window
    repeats: int = 3  # independent repeats (user split, requests, retrieval, outcomes)
    candidates: int = 16  # campaigns retrieved per request; all their creatives are scored
    traffic_scale: float = 4.0  # requests and budgets x this (the feature counters keep the logged rate)
    pacing: bool = True  # a campaign may spend by the end of hour h its budget x the day's traffic share to h
    treatment_share: float = 0.5  # share of users, and of every campaign's budget, in the treatment arm
    seed: int = 0  # simulation seed (repeat r draws from [seed, r, ...])
    bootstrap: int = 1000  # bootstrap replicates for the intervals

    def validate(self, world_days: int) -> None:
        if not 1 <= self.days <= world_days:
            raise ValueError(f"--days must be in [1, {world_days}] (the world's window), got {self.days}")
        if self.repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {self.repeats}")
        if self.candidates < 1:
            raise ValueError(f"--candidates must be >= 1, got {self.candidates}")
        if not 0 < self.traffic_scale <= 100:
            raise ValueError(f"--traffic-scale must be in (0, 100], got {self.traffic_scale}")
        if not 0 < self.treatment_share < 1:
            raise ValueError(f"treatment share must be in (0, 1), got {self.treatment_share}")
        if self.bootstrap < 100:
            raise ValueError(f"bootstrap replicates must be >= 100, got {self.bootstrap}")


class Candidates:
    """Candidate impressions of one scoring call: world indices, context and podcast counters."""

    def __init__(self, world: World, users, podcasts, creatives, event_time, prior, recent):
        self.world = world
        self.users, self.podcasts, self.creatives = users, podcasts, creatives
        self.event_time, self.prior, self.recent = event_time, prior, recent
        self.hour = (event_time // HOUR) % 24

    def __len__(self) -> int:
        return int(self.users.size)

    def feature_rows(self) -> Dict[str, list]:
        """The logged columns of these impressions, for a SavedModel (`World.feature_rows`)."""
        return self.world.feature_rows(self.users, self.podcasts, "ads", self.event_time, creative=self.creatives,
                                       prior_impressions=self.prior, recent_streams=self.recent)

    def true_stream(self) -> np.ndarray:
        return self.world.true_probabilities(self.users, self.podcasts, "ads", hour=self.hour,
                                             creative=self.creatives)["stream"]


Scorer = Callable[[Candidates], np.ndarray]


def oracle_scorer(c: Candidates) -> np.ndarray:
    """The world's true stream probability (an upper bound for any model)."""
    return c.true_stream()


def random_scorer(seed: int = 0) -> Scorer:
    rng = np.random.default_rng([seed, 99])
    return lambda c: rng.random(len(c))


# ---------------------------------------------------------------------------------------------- simulation
class _Counters:
    """The podcasts' impression and 7-day stream counters as a feature store holds them, by hour."""

    def __init__(self, world: World, history: pd.DataFrame, first_day: int, days: int, weight: float = 1.0):
        self.weight = weight  # of a simulated impression (1 / traffic scale): counts keep the logged rate
        n_pod = world.cfg.podcasts
        self.sim_hours = days * 24
        t0 = (world.start_day + first_day) * DAY
        pod = history["podcast_id"].str.slice(1).astype(np.int64).to_numpy()
        t = history["event_time"].to_numpy(np.int64)
        stream = history["stream"].to_numpy(np.int64)
        before = t < t0
        self.prior0 = np.bincount(pod[before], minlength=n_pod).astype(float)
        # hourly streams from 7 days before the test to its end; hourly impressions during it
        h = (t - t0) // HOUR + RECENT_HOURS
        keep = (h >= 0) & (~before | (h < RECENT_HOURS))
        during = ~before & (history["source"].to_numpy(str) == "promotions")  # ads are the simulation's
        keep &= before | during
        self.base_streams = np.zeros((RECENT_HOURS + self.sim_hours, n_pod))
        np.add.at(self.base_streams, (h[keep], pod[keep]), stream[keep])
        self.base_imps = np.zeros((self.sim_hours, n_pod))
        np.add.at(self.base_imps, (h[during] - RECENT_HOURS, pod[during]), 1)

    def start(self):
        self.streams = self.base_streams.copy()
        self.imps = self.base_imps.copy()
        self.prior = self.prior0.copy()

    def at(self, i: int):
        """(prior impressions, 7-day streams) per podcast at the top of simulated hour i."""
        if i > 0:
            self.prior += self.imps[i - 1]
        return (np.rint(self.prior).astype(np.int64),
                np.rint(self.streams[i: i + RECENT_HOURS].sum(0)).astype(np.int64))

    def add(self, i: int, podcasts: np.ndarray, streams: np.ndarray):
        np.add.at(self.imps[i], podcasts, self.weight)
        np.add.at(self.streams[RECENT_HOURS + i], podcasts, streams * self.weight)


def _requests(world: World, day: int, rng, scale: float = 1.0) -> Dict[str, np.ndarray]:
    """One day's ad requests by the world's request process (see `datagen.synthetic.generate`)."""
    cfg = world.cfg
    weekday = (world.start_day + np.arange(cfg.days) + 3) % 7
    mean = WEEKLY[weekday[day]] / WEEKLY[weekday].mean() * cfg.impressions_per_day * cfg.ads_share * scale
    n = int(rng.poisson(mean))
    hour = rng.choice(24, n, p=HOURLY / HOURLY.sum())
    t = (world.start_day + day) * DAY + hour * HOUR + rng.integers(0, 3600, n)
    user = rng.choice(cfg.users, n, p=world.user_activity / world.user_activity.sum())
    order = np.argsort(t, kind="stable")
    return {"t": t[order], "user": user[order]}


def _retrieve(rng, live: np.ndarray, weight: np.ndarray, n: int, k: int) -> np.ndarray:
    """k campaigns per request (n requests) from `live`, without replacement, in proportion to weight."""
    k = min(k, live.size)
    keys = np.log(weight)[None, :] + rng.gumbel(size=(n, live.size))
    return live[np.argpartition(-keys, k - 1, axis=1)[:, :k]]


def simulate(world: World, scorers: Dict[str, Scorer], cfg: ABConfig, history: Optional[pd.DataFrame] = None,
             progress: Optional[Callable[[str], None]] = None) -> Dict:
    """Runs the test. scorers: {"control": Scorer, "treatment": Scorer}; history: the world's logged
    impressions (`datagen.synthetic.generate`; made here when not given). Returns {"impressions":
    DataFrame of served impressions, "requests": DataFrame of requests, "budgets": DataFrame of
    per-arm daily budgets, "seconds_per_day": [...]}."""
    cfg.validate(world.cfg.days)
    if set(scorers) != set(ARMS):
        raise ValueError(f"scorers must be given for {ARMS}, got {sorted(scorers)}")
    log = progress or (lambda line: None)
    if history is None:
        from datagen.synthetic import generate

        history = generate(world.cfg, world)
    first_day = world.cfg.days - cfg.days
    counters = _Counters(world, history, first_day, cfg.days, weight=1.0 / cfg.traffic_scale)
    share = {"control": 1 - cfg.treatment_share, "treatment": cfg.treatment_share}
    budget = {arm: np.floor(world.campaign_daily_budget * cfg.traffic_scale * share[arm] * MICRO).astype(np.int64)
              for arm in ARMS}
    # pacing: spend allowed by the end of each hour, the day's traffic share up to it (the last hour: all)
    through = np.cumsum(HOURLY) / HOURLY.sum() if cfg.pacing else np.ones(24)
    through[-1] = 1.0
    price = np.round(world.campaign_bid * (MICRO // 1000)).astype(np.int64)  # CPM / 1000 per impression
    planned = world.campaign_daily_budget / world.campaign_bid
    served: List[Dict[str, np.ndarray]] = []
    requests: List[Dict[str, np.ndarray]] = []
    day_seconds = []
    for rep in range(cfg.repeats):
        counters.start()
        rng = np.random.default_rng([cfg.seed, rep])
        arm_of_user = (rng.random(world.cfg.users) < cfg.treatment_share).astype(np.int64)
        for di in range(cfg.days):
            t_day = time.time()
            day = first_day + di
            day_rng = np.random.default_rng([cfg.seed, rep, day])
            req = _requests(world, day, day_rng, cfg.traffic_scale)
            req_arm = arm_of_user[req["user"]]
            req_hour = (req["t"] // HOUR) % 24
            requests.append({"repeat": np.full(req_arm.size, rep), "day": np.full(req_arm.size, day),
                             "arm": req_arm, "user": req["user"]})
            live = world.eligible_campaigns(day)
            spent = {arm: np.zeros_like(budget[arm]) for arm in ARMS}
            for hour in range(24):
                i = di * 24 + hour
                prior, recent = counters.at(i)
                hour_pods, hour_streams = [], []
                for a, arm in enumerate(ARMS):
                    rows = np.flatnonzero((req_hour == hour) & (req_arm == a))
                    cap = np.floor(budget[arm] * through[hour]).astype(np.int64)  # <= budget
                    left = cap - spent[arm]
                    affordable = live[left[live] >= price[live]]
                    if rows.size == 0 or affordable.size == 0:
                        continue
                    cand = _retrieve(day_rng, affordable, planned[affordable], rows.size, cfg.candidates)
                    n_cr = world.campaign_n_creatives[cand]  # (rows, k)
                    req_idx = np.repeat(np.arange(rows.size), n_cr.sum(1))
                    camp = np.repeat(cand.ravel(), n_cr.ravel())
                    offset = np.arange(camp.size) - np.repeat(np.cumsum(n_cr.ravel()) - n_cr.ravel(), n_cr.ravel())
                    creative = world.campaign_first_creative[camp] + offset
                    pod = world.campaign_podcast[camp]
                    batch = Candidates(world, req["user"][rows][req_idx], pod, creative, req["t"][rows][req_idx],
                                       prior[pod], recent[pod])
                    p = np.asarray(scorers[arm](batch), dtype=np.float64).reshape(-1)
                    if p.shape != (camp.size,):
                        raise ValueError(f"{arm} scorer returned {p.shape[0]} scores for {camp.size} candidates")
                    key = p * world.campaign_bid[camp]
                    order = np.lexsort((np.arange(camp.size), -key, req_idx))  # per request, best first
                    starts = np.searchsorted(req_idx[order], np.arange(rows.size))
                    ends = np.r_[starts[1:], order.size]
                    win = np.full(rows.size, -1)
                    for r in range(rows.size):
                        for j in order[starts[r]:ends[r]]:
                            c = camp[j]
                            if left[c] >= price[c]:
                                left[c] -= price[c]
                                spent[arm][c] += price[c]
                                win[r] = j
                                break
                    ok = win >= 0
                    j = win[ok]
                    if not j.size:
                        continue
                    users, pods, crs = batch.users[j], pod[j], creative[j]
                    truth = world.true_probabilities(users, pods, "ads", hour=hour, creative=crs)["stream"]
                    stream = (day_rng.random(j.size) < truth).astype(np.int64)
                    served.append({"repeat": np.full(j.size, rep), "day": np.full(j.size, day),
                                   "arm": np.full(j.size, a), "user": users, "campaign": camp[j], "creative": crs,
                                   "podcast": pods, "prior": prior[pods], "recent": recent[pods], "predicted": p[j],
                                   "true_p": truth,
                                   "stream": stream, "price": price[camp[j]]})
                    hour_pods.append(pods)
                    hour_streams.append(stream)
                if hour_pods:
                    counters.add(i, np.concatenate(hour_pods), np.concatenate(hour_streams))
            day_seconds.append(time.time() - t_day)
            log(f"  repeat {rep + 1}/{cfg.repeats}, day {di + 1}/{cfg.days} (window day {day}): "
                f"{req_arm.size:,} requests in {day_seconds[-1]:.1f} s")
    imps = pd.DataFrame({k: np.concatenate([s[k] for s in served]) for k in served[0]}) if served else \
        pd.DataFrame(columns=["repeat", "day", "arm", "user", "campaign", "creative", "podcast", "prior", "recent",
                              "predicted", "true_p", "stream", "price"])
    if len(imps):
        imps["emerging"] = world.emerging_podcast[imps["podcast"].to_numpy(np.int64)]
        imps["bucket"] = [popularity_bucket(int(x)) for x in imps["prior"]]
        imps["listening"] = [listening_bucket(int(x)) for x in imps["recent"]]
    reqs = pd.DataFrame({k: np.concatenate([r[k] for r in requests]) for k in requests[0]})
    budgets = pd.DataFrame({"campaign": np.arange(world.n_campaigns), **{arm: budget[arm] for arm in ARMS},
                            "price": price})
    return {"impressions": imps, "requests": reqs, "budgets": budgets, "seconds_per_day": day_seconds,
            "first_day": first_day}


# ---------------------------------------------------------------------------------------------- metrics
def _unit_table(sim: Dict):
    """Per (repeat, user) unit: arm, and counts[unit, segment, count] for SEGMENTS x COUNTS."""
    reqs, imps = sim["requests"], sim["impressions"]
    key = reqs["repeat"].to_numpy(np.int64) * (1 << 32) + reqs["user"].to_numpy(np.int64)
    units, unit_of_req = np.unique(key, return_inverse=True)
    arm = np.zeros(units.size, np.int64)
    arm[unit_of_req] = reqs["arm"].to_numpy(np.int64)
    counts = np.zeros((units.size, len(SEGMENTS), len(COUNTS)))
    counts[:, 0, 0] = np.bincount(unit_of_req, minlength=units.size)
    if len(imps):
        ikey = imps["repeat"].to_numpy(np.int64) * (1 << 32) + imps["user"].to_numpy(np.int64)
        unit = np.searchsorted(units, ikey)
        values = np.stack([np.ones(len(imps)), imps["stream"].to_numpy(float),
                           imps["price"].to_numpy(float) / MICRO], 1)
        bucket = imps["bucket"].to_numpy(str)
        listening = imps["listening"].to_numpy(str)
        masks = ([np.ones(len(imps), bool), imps["emerging"].to_numpy(bool)] + [bucket == b for b in BUCKETS]
                 + [listening == b for b in LISTENING])
        for s, m in enumerate(masks):
            for c in range(3):
                counts[:, s, c + 1] = np.bincount(unit[m], weights=values[m, c], minlength=units.size)
    return arm, counts


def _metrics(sums: np.ndarray) -> Dict[str, np.ndarray]:
    """sums[..., COUNTS] -> requests, impressions, streams, spend, i2s, ecps (nan where undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {c: sums[..., k] for k, c in enumerate(COUNTS)}
        out["i2s"] = np.where(sums[..., 1] > 0, sums[..., 2] / sums[..., 1], np.nan)
        out["ecps"] = np.where(sums[..., 2] > 0, sums[..., 3] / sums[..., 2], np.nan)
    return out


def _relative(ctrl: Dict[str, np.ndarray], treat: Dict[str, np.ndarray], share: float) -> Dict[str, np.ndarray]:
    """Relative difference treatment vs control; counts per unit of budget share."""
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for m in METRICS:
            scale = (1 - share) / share if m in COUNTS else 1.0
            out[m] = treat[m] * scale / ctrl[m] - 1
    return out


def summarize(sim: Dict, cfg: ABConfig) -> Dict:
    """Per arm and segment: counts and rates; the relative difference with a 95% interval and a
    two-sided p-value from a Poisson bootstrap over users (units: a user in one repeat)."""
    arm, counts = _unit_table(sim)
    sums = np.stack([counts[arm == a].sum(0) for a in range(2)])  # [arm, segment, count]
    point = [_metrics(sums[a]) for a in range(2)]
    rel = _relative(point[0], point[1], cfg.treatment_share)
    rng = np.random.default_rng([cfg.seed, 7919])
    flat = counts.reshape(counts.shape[0], -1)
    draws = {m: [] for m in METRICS}
    chunk = 100
    for lo in range(0, cfg.bootstrap, chunk):
        w = rng.poisson(1.0, (min(chunk, cfg.bootstrap - lo), flat.shape[0])).astype(float)
        boot = [(w[:, arm == a] @ flat[arm == a]).reshape(w.shape[0], len(SEGMENTS), len(COUNTS)) for a in range(2)]
        r = _relative(_metrics(boot[0]), _metrics(boot[1]), cfg.treatment_share)
        for m in METRICS:
            draws[m].append(r[m])
    segments = {}
    for s, seg in enumerate(SEGMENTS):
        entry = {"arms": {name: {m: _num(point[a][m][s]) for m in COUNTS + ("i2s", "ecps")}
                          for a, name in enumerate(ARMS)}, "relative": {}}
        for m in METRICS:
            d = np.concatenate(draws[m])[:, s]
            d = d[np.isfinite(d)]
            est = rel[m][s]
            if not np.isfinite(est) or d.size < cfg.bootstrap // 2:
                entry["relative"][m] = {"estimate": _num(est), "ci95": None, "p_value": None}
                continue
            lo_, hi_ = np.percentile(d, [2.5, 97.5])
            p = min(1.0, (1 + 2 * min((d <= 0).sum(), (d >= 0).sum())) / (d.size + 1))
            entry["relative"][m] = {"estimate": float(est), "ci95": [float(lo_), float(hi_)], "p_value": float(p)}
        segments[seg] = entry
    reps = sim["requests"]["repeat"].to_numpy()
    return {"segments": segments, "per_repeat": per_repeat_relative(sim, cfg), "units": int(counts.shape[0]),
            "repeats": int(np.unique(reps).size)}


def per_repeat_relative(sim: Dict, cfg: ABConfig) -> List[Dict[str, Optional[float]]]:
    """The overall relative differences of each repeat on its own (how much repeats differ)."""
    out = []
    for rep in sorted(sim["requests"]["repeat"].unique()):
        part = {k: (v[v["repeat"] == rep] if isinstance(v, pd.DataFrame) and "repeat" in v else v)
                for k, v in sim.items()}
        arm, counts = _unit_table(part)
        sums = np.stack([counts[arm == a].sum(0) for a in range(2)])
        rel = _relative(_metrics(sums[0]), _metrics(sums[1]), cfg.treatment_share)
        out.append({m: _num(rel[m][0]) for m in METRICS})
    return out


def _num(x) -> Optional[float]:
    x = float(x)
    return x if np.isfinite(x) else None


def check_budgets(sim: Dict) -> pd.DataFrame:
    """Spend per (repeat, day, arm, campaign) next to the arm's daily budget (micro-units)."""
    imps, budgets = sim["impressions"], sim["budgets"]
    spend = imps.groupby(["repeat", "day", "arm", "campaign"])["price"].sum().rename("spend").reset_index()
    limit = np.where(spend["arm"].to_numpy() == 1, budgets["treatment"].to_numpy()[spend["campaign"]],
                     budgets["control"].to_numpy()[spend["campaign"]])
    return spend.assign(budget=limit)


# ---------------------------------------------------------------------------------------------- reports
def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def _ci(r: Dict) -> str:
    if r.get("ci95") is None:
        return _pct(r.get("estimate"))
    lo, hi = r["ci95"]
    return f"{r['estimate']:+.1%} [{lo:+.1%}, {hi:+.1%}]"


def _p(r: Dict) -> str:
    p = r.get("p_value")
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _seed_cell(seg: str, m: str) -> str:
    if seg == "overall" or seg == "emerging":
        v = SEED_RESULT[seg].get(m)
        return _pct(v) if v is not None else ""
    if seg == LISTENING[0] and m == "i2s":
        return f"up to {_pct(SEED_RESULT['least_listened_bucket']['i2s'])} (least-listened)"
    return ""


def markdown(report: Dict) -> str:
    seg = report["summary"]["segments"]
    lines = ["Relative difference treatment vs control (95% bootstrap interval over users; counts per unit of "
             "budget share), and the seed's online figures:", "",
             "| segment | i2s | eCPS | streams (total) | impressions | spend | seed i2s / eCPS / streams |",
             "|---|---|---|---|---|---|---|"]
    for name in SEGMENTS:
        r = seg[name]["relative"]
        seed = " / ".join(x for x in (_seed_cell(name, "i2s"), _seed_cell(name, "ecps"), _seed_cell(name, "streams"))
                          if x)
        lines.append(f"| {name} | {_ci(r['i2s'])} | {_ci(r['ecps'])} | {_ci(r['streams'])} | "
                     f"{_ci(r['impressions'])} | {_ci(r['spend'])} | {seed} |")
    lines += ["", "Per arm (all repeats together) and p-values of the relative differences:", "",
              "| segment | arm | requests | impressions | streams | spend | i2s | eCPS |",
              "|---|---|---|---|---|---|---|---|"]
    for name in SEGMENTS:
        for arm in ARMS:
            a = seg[name]["arms"][arm]
            i2s = "n/a" if a["i2s"] is None else f"{a['i2s']:.3%}"
            ecps = "n/a" if a["ecps"] is None else f"{a['ecps']:.4f}"
            req = f"{a['requests']:,.0f}" if name == "overall" else ""
            lines.append(f"| {name} | {arm} | {req} | {a['impressions']:,.0f} | {a['streams']:,.0f} | "
                         f"{a['spend']:,.2f} | {i2s} | {ecps} |")
        r = seg[name]["relative"]
        lines.append(f"| {name} | p-value | | {_p(r['impressions'])} | {_p(r['streams'])} | {_p(r['spend'])} | "
                     f"{_p(r['i2s'])} | {_p(r['ecps'])} |")
    return "\n".join(lines) + "\n"


def chart(report: Dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seg = report["summary"]["segments"]
    names = list(SEGMENTS)
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.6))
    for ax, (m, title) in zip(axes, (("i2s", "impression-to-stream rate"), ("ecps", "effective cost per stream"),
                                     ("streams", "total streams"))):
        est, lo, hi = [], [], []
        for name in names:
            r = seg[name]["relative"][m]
            e = r["estimate"] if r["estimate"] is not None else np.nan
            ci = r["ci95"] or [e, e]
            est.append(e), lo.append(e - ci[0]), hi.append(ci[1] - e)
        x = np.arange(len(names))
        ax.bar(x, np.array(est) * 100, color=["#555"] * 2 + ["#4c72b0"] * len(BUCKETS) + ["#55a868"] * len(LISTENING))
        ax.errorbar(x, np.array(est) * 100, yerr=np.array([lo, hi]) * 100, fmt="none", ecolor="k", capsize=4)
        seed = [SEED_RESULT.get(n, {}).get(m) for n in names]
        if m == "i2s":
            seed[names.index(LISTENING[0])] = SEED_RESULT["least_listened_bucket"]["i2s"]
        sx = [xi for xi, s in zip(x, seed) if s is not None]
        ax.scatter(sx, [s * 100 for s in seed if s is not None], marker="D", color="#dd8452", zorder=3,
                   label="seed (online)")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels([SHORT.get(n, n) for n in names], fontsize=8)
        ax.set_title(f"{title}: treatment vs control", fontsize=10)
        ax.set_ylabel("relative difference (%)")
        ax.legend(fontsize=8)
    fig.suptitle("Budget-split A/B simulation on the synthetic world (95% bootstrap intervals over users)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: Dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "ab.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "ab.md"), "w") as f:
        f.write(f"# Budget-split A/B simulation\n\ncontrol: `{report['models']['control']}`  \n"
                f"treatment: `{report['models']['treatment']}`  \n"
                f"world: seed {report['world']['seed']}, {report['world']['days']} days, "
                f"{report['world']['users']:,} users, {report['world']['podcasts']:,} podcasts; "
                f"days {report['config']['days']} (window days "
                f"{report['days'][0]}..{report['days'][-1]}), repeats {report['config']['repeats']}, "
                f"{report['config']['candidates']} campaigns retrieved per request\n\n" + markdown(report))
    chart(report, os.path.join(out, "ab.png"))


def run_ab(world: World, scorers: Dict[str, Scorer], cfg: ABConfig, out: Optional[str] = None,
           models: Optional[Dict[str, str]] = None, history: Optional[pd.DataFrame] = None,
           progress: Optional[Callable[[str], None]] = None) -> Dict:
    """simulate + summarize (+ write ab.json / ab.md / ab.png into `out`). Returns the report."""
    t0 = time.time()
    sim = simulate(world, scorers, cfg, history=history, progress=progress)
    report = {"config": dataclasses.asdict(cfg), "world": dataclasses.asdict(world.cfg),
              "models": models or {arm: getattr(scorers[arm], "name", repr(scorers[arm])) for arm in ARMS},
              "days": list(range(sim["first_day"], world.cfg.days)),
              "seconds_per_day": [round(s, 2) for s in sim["seconds_per_day"]],
              "summary": summarize(sim, cfg), "seed_result": SEED_RESULT}
    report["seconds"] = round(time.time() - t0, 1)
    if out is not None:
        write_report(report, out)
    report["_sim"] = sim  # for callers and tests; not written
    return report
