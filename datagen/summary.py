"""What a log folder holds: rows per source and day, label rates, cold-start share, oracle AP."""
from __future__ import annotations

from typing import Dict

import pandas as pd

from core.days import day_name, day_of
from core.ap import average_precision
from core.fields import COLD_START_PRIOR, LABELS, SOURCES, TRUTH_PREFIX

LAST_DAYS = 5


def summarize(df: pd.DataFrame) -> Dict:
    days = day_of(df["event_time"])
    last = days > days.max() - LAST_DAYS
    out = {
        "rows": int(len(df)),
        "rows_per_source": {s: int((df["source"] == s).sum()) for s in SOURCES},
        "rows_per_day": {day_name(d): int(n) for d, n in sorted(pd.Series(days).value_counts().items())},
        "label_rates": {s: {l: float(df.loc[df["source"] == s, l].mean()) for l in LABELS} for s in SOURCES},
        "last_days": LAST_DAYS,
        "cold_start_share_last_days": float((df.loc[last, "podcast_prior_impressions"] < COLD_START_PRIOR).mean()),
    }
    truth = TRUTH_PREFIX + "stream"
    if truth in df:
        out["oracle_stream_ap_last_days"] = {
            s: average_precision(df.loc[last & (df["source"] == s), "stream"],
                                 df.loc[last & (df["source"] == s), truth]) for s in SOURCES}
    return out


def format_summary(s: Dict) -> str:
    lines = [f"rows: {s['rows']:,}  " + "  ".join(f"{k}: {v:,}" for k, v in s["rows_per_source"].items())]
    lines.append("rows per day: " + ", ".join(f"{d[5:]}={n}" for d, n in s["rows_per_day"].items()))
    lines.append(f"{'label rate':<12}" + "".join(f"{l:>9}" for l in LABELS))
    for src, rates in s["label_rates"].items():
        lines.append(f"{src:<12}" + "".join(f"{rates[l]:>9.4f}" for l in LABELS))
    lines.append(f"last {s['last_days']} days: share of impressions on podcasts with < {COLD_START_PRIOR} "
                 f"earlier impressions: {s['cold_start_share_last_days']:.2%}")
    if "oracle_stream_ap_last_days" in s:
        lines.append(f"oracle stream AP, last {s['last_days']} days (ranking by the true probability): " +
                     "  ".join(f"{k}={v:.4f}" for k, v in s["oracle_stream_ap_last_days"].items()))
    return "\n".join(lines)
