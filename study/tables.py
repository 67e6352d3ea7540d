"""Pure table assembly for the ablation and cold-start reports (unit-tested; no TensorFlow)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from core.ap import average_precision
from core.fields import LISTENING_BUCKETS, POPULARITY_BUCKETS, listening_bucket, popularity_bucket
from models.config import PRESET_HELP

BASELINE = "promotions_baseline"


def row_label(name: str) -> str:
    """A readable row name: the preset's description; `<preset>_untuned` is that preset with its own
    (the seed's) hyperparameters when the other rows are tuned."""
    if name.endswith("_untuned") and name[:-len("_untuned")] in PRESET_HELP:
        return PRESET_HELP[name[:-len("_untuned")]] + ", untuned (the seed's fixed recipe)"
    return PRESET_HELP.get(name, name)
TOP_FRACTION = 0.10


def _stats(values: Sequence[float]) -> Dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(np.nanmean(arr)), "std": float(np.nanstd(arr, ddof=1)) if arr.size > 1 else 0.0,
            "runs": [float(v) for v in arr]}


def _rel(value: float, base: Optional[float]) -> Optional[float]:
    if base is None or not np.isfinite(base) or base == 0:
        return None
    return float(value / base - 1.0)


def ablation_table(runs: Dict[str, List[Dict[str, float]]], oracle: Optional[Dict[str, float]] = None) -> Dict:
    """runs: {preset: [{"promotions": ap, "ads": ap} per seed]} -> the ablation.json structure."""
    variants = {}
    for name, per_seed in runs.items():
        variants[name] = {"promotions_ap": _stats([r["promotions"] for r in per_seed]),
                          "ads_ap": _stats([r["ads"] for r in per_seed])}
    base = variants.get(BASELINE)
    for v in variants.values():
        v["rel_promotions"] = _rel(v["promotions_ap"]["mean"], base and base["promotions_ap"]["mean"])
        v["rel_ads"] = _rel(v["ads_ap"]["mean"], base and base["ads_ap"]["mean"])
    oracle = oracle or {}
    return {"variants": variants,
            "oracle": {"promotions_ap": oracle.get("promotions"), "ads_ap": oracle.get("ads")}}


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def ablation_markdown(table: Dict) -> str:
    lines = ["| model | promotions AP | vs baseline | ads AP | vs baseline |", "|---|---|---|---|---|"]
    for name, v in table["variants"].items():
        p, a = v["promotions_ap"], v["ads_ap"]
        lines.append(f"| {row_label(name)} (`{name}`) | {p['mean']:.4f} ± {p['std']:.4f} | "
                     f"{_pct(v['rel_promotions'])} | {a['mean']:.4f} ± {a['std']:.4f} | {_pct(v['rel_ads'])} |")
    o = table["oracle"]
    if o.get("promotions_ap") is not None:
        lines.append(f"| oracle (true probability) | {o['promotions_ap']:.4f} | | {o['ads_ap']:.4f} | |")
    return "\n".join(lines) + "\n"


def top_fraction_rate(labels, scores, fraction: float = TOP_FRACTION) -> float:
    """Stream rate among the `fraction` highest-scored impressions."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.size == 0:
        return float("nan")
    k = max(1, int(round(fraction * labels.size)))
    top = np.argsort(-scores, kind="mergesort")[:k]
    return float(labels[top].mean())


# How the cold-start rows bucket the test impressions: (key of the scored arrays, buckets, function).
BUCKETINGS = {
    "earlier_impressions": ("prior", POPULARITY_BUCKETS, popularity_bucket),
    "recent_streams": ("recent", LISTENING_BUCKETS, listening_bucket),
}


def cold_start_table(scored: Dict[str, List[Dict]], sources: Sequence[str], models: Sequence[str]) -> List[Dict]:
    """scored: {preset: [{source: {"labels", "scores", "prior"[, "recent"]} arrays} per seed]}.

    One row per (bucketing, source, bucket): the podcast's earlier impressions ("prior"), and, where
    given, its streams in the 7 days before the impression ("recent", the seed's listening volume).
    Each row: impressions, positives, AP per model (mean over seeds, its std and the per-seed
    values), unified's relative gain over each other model (of the means, and per seed), and each
    model's top-10% stream rate.
    """
    rows = []
    any_model = next(iter(scored.values()))[0]
    for bucketing, (key, bucket_list, assign) in BUCKETINGS.items():
        for source in sources:
            if any_model[source].get(key) is None or len(any_model[source][key]) != len(any_model[source]["labels"]):
                continue
            values = np.asarray(any_model[source][key])
            labels = np.asarray(any_model[source]["labels"])
            buckets = np.array([assign(int(v)) for v in values])
            for bucket, _ in bucket_list:
                rows_in = buckets == bucket
                if not rows_in.any():
                    continue
                row = {"bucketing": bucketing, "source": source, "bucket": bucket, "impressions": int(rows_in.sum()),
                       "positives": int(labels[rows_in].sum()), "ap": {}, "ap_std": {}, "ap_runs": {},
                       "top10_stream_rate": {}}
                for m in models:
                    if m not in scored:
                        continue
                    aps, rates = [], []
                    for seed_run in scored[m]:
                        sel = np.asarray(seed_run[source]["scores"])[rows_in]
                        aps.append(average_precision(labels[rows_in], sel) if labels[rows_in].any() else float("nan"))
                        rates.append(top_fraction_rate(labels[rows_in], sel))
                    finite = np.isfinite(aps)
                    row["ap"][m] = float(np.nanmean(aps)) if finite.any() else None
                    row["ap_std"][m] = float(np.nanstd(aps, ddof=1)) if finite.sum() > 1 else None
                    row["ap_runs"][m] = [float(a) if np.isfinite(a) else None for a in aps]
                    row["top10_stream_rate"][m] = float(np.mean(rates))
                if "unified" in row["ap"]:
                    u = row["ap"]["unified"]
                    row["unified_gain"] = {m: _rel(u, v) if u is not None else None
                                           for m, v in row["ap"].items() if m != "unified"}
                    row["unified_gain_runs"] = {
                        m: [_rel(a, b) if a is not None else None
                            for a, b in zip(row["ap_runs"]["unified"], row["ap_runs"][m])]
                        for m in row["ap"] if m != "unified"}
                rows.append(row)
    return rows


def _gain_cell(r: Dict, m: str) -> str:
    cell = _pct(r.get("unified_gain", {}).get(m))
    runs = [g for g in r.get("unified_gain_runs", {}).get(m, []) if g is not None]
    if len(runs) > 1:
        cell += f" [{min(runs):+.1%}, {max(runs):+.1%}]"
    return cell


def cold_start_markdown(rows: List[Dict], models: Sequence[str]) -> str:
    present = [m for m in models if rows and m in rows[0]["ap"]]
    head = (["bucketed by", "source", "bucket", "impressions", "positives"] + [f"AP {m}" for m in present]
            + [f"unified vs {m} [seed range]" for m in present if m != "unified"]
            + [f"top-10% stream rate {m}" for m in present])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.get("bucketing", "earlier_impressions").replace("_", " "), r["source"], r["bucket"],
                 f"{r['impressions']:,}", f"{r['positives']:,}"]
        cells += ["n/a" if r["ap"][m] is None else f"{r['ap'][m]:.4f}"
                  + ("" if r.get("ap_std", {}).get(m) is None else f" ± {r['ap_std'][m]:.4f}") for m in present]
        cells += [_gain_cell(r, m) for m in present if m != "unified"]
        cells += [f"{r['top10_stream_rate'][m]:.2%}" for m in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
