"""What a log folder holds: rows per source and day, label rates, cold-start share, oracle AP.

Given the `World` the logs were sampled from, also what is learnable: the share of the ad-stream
logit's variance that each part explains, and the stream AP of ranking by the true probability
(oracle), by the shared preference only, and by the channel-specific part only.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import pandas as pd

from core.ap import average_precision
from core.days import day_name, day_of
from core.fields import COLD_START_PRIOR, LABELS, SOURCES, TRUTH_PREFIX
from datagen.world import AD_PARTS, PROMO_PARTS

LAST_DAYS = 5
CHANNEL_PARTS = {"ads": AD_PARTS, "promotions": PROMO_PARTS}


def summarize(df: pd.DataFrame, world=None) -> Dict:
    days = day_of(df["event_time"])
    last = days > days.max() - LAST_DAYS
    cold = df["podcast_prior_impressions"] < COLD_START_PRIOR
    rows = {s: int((df["source"] == s).sum()) for s in SOURCES}
    out = {
        "rows": int(len(df)),
        "rows_per_source": rows,
        "promotions_per_ad": float(rows["promotions"] / rows["ads"]) if rows["ads"] else float("inf"),
        "rows_per_day": {day_name(d): int(n) for d, n in sorted(pd.Series(days).value_counts().items())},
        "label_rates": {s: {label: float(df.loc[df["source"] == s, label].mean()) for label in LABELS} for s in SOURCES},
        "last_days": LAST_DAYS,
        "cold_start_share_last_days": float(cold[last].mean()),
        "cold_start_share_last_days_per_source": {s: float(cold[last & (df["source"] == s)].mean()) for s in SOURCES},
    }
    truth = TRUTH_PREFIX + "stream"
    if truth in df:
        out["oracle_stream_ap_last_days"] = {
            s: average_precision(df.loc[last & (df["source"] == s), "stream"],
                                 df.loc[last & (df["source"] == s), truth]) for s in SOURCES}
    if world is not None:
        out.update(_learnable(df, world, last))
    return out


def _learnable(df: pd.DataFrame, world, last: np.ndarray) -> Dict:
    idx = world.indices(df)
    parts = world.logit_parts(**idx)
    ads = (df["source"] == "ads").to_numpy()
    logit = sum(parts.values())
    total = float(np.var(logit[ads]))
    shares = {k: float(np.var(parts[k][ads]) / total) for k in ("shared", "hour") + AD_PARTS}
    shares["ad_specific"] = float(np.var(sum(parts[k] for k in AD_PARTS)[ads]) / total)
    bounds = {}
    for s in SOURCES:
        m = np.asarray(last) & (df["source"] == s).to_numpy()
        y = df.loc[m, "stream"]
        bounds[s] = {"oracle": average_precision(y, logit[m]),
                     "shared_only": average_precision(y, parts["shared"][m]),
                     "channel_only": average_precision(y, sum(parts[k] for k in CHANNEL_PARTS[s])[m]),
                     "base_rate": float(y.mean())}
    pods = idx["podcasts"][ads]
    return {"ad_stream_logit_variance_share": shares,
            "learnable_stream_ap_last_days": bounds,
            "emerging_creator_share_of_ads": float(world.emerging_podcast[pods].mean())}


def format_summary(s: Dict) -> str:
    lines = [f"rows: {s['rows']:,}  " + "  ".join(f"{k}: {v:,}" for k, v in s["rows_per_source"].items())
             + (f"  (promotions per ad: {s['promotions_per_ad']:.1f})" if "promotions_per_ad" in s else "")]
    lines.append("rows per day: " + ", ".join(f"{d[5:]}={n}" for d, n in s["rows_per_day"].items()))
    lines.append(f"{'label rate':<12}" + "".join(f"{label:>9}" for label in LABELS))
    for src, rates in s["label_rates"].items():
        lines.append(f"{src:<12}" + "".join(f"{rates[label]:>9.4f}" for label in LABELS))
    per_source = s.get("cold_start_share_last_days_per_source", {})
    lines.append(f"last {s['last_days']} days: share of impressions on podcasts with < {COLD_START_PRIOR} "
                 f"earlier impressions: {s['cold_start_share_last_days']:.2%}"
                 + (" (" + "  ".join(f"{k}={v:.2%}" for k, v in per_source.items()) + ")" if per_source else ""))
    if "oracle_stream_ap_last_days" in s:
        lines.append(f"oracle stream AP, last {s['last_days']} days (ranking by the true probability): " +
                     "  ".join(f"{k}={v:.4f}" for k, v in s["oracle_stream_ap_last_days"].items()))
    if "ad_stream_logit_variance_share" in s:
        v = s["ad_stream_logit_variance_share"]
        lines.append("ad-stream logit variance explained (logged ads): " + "  ".join(
            f"{k}={v[k]:.1%}" for k in ("shared", "ad_specific") + AD_PARTS + ("hour",)))
        lines.append(f"learnable stream AP, last {s['last_days']} days, ranking by: "
                     "truth / shared preference only / channel-specific part only (base rate)")
        for src, b in s["learnable_stream_ap_last_days"].items():
            lines.append(f"  {src:<11} {b['oracle']:.4f} / {b['shared_only']:.4f} / {b['channel_only']:.4f} "
                         f"({b['base_rate']:.4f})")
        lines.append(f"emerging-creator share of ad impressions: {s['emerging_creator_share_of_ads']:.1%}")
    return "\n".join(lines)
