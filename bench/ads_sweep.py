"""The ads-volume sweep: how much ads data before an ads-only model matches the promotions model,
and whether the unified model's ads gain shrinks as ads data grows.

    python bench/ads_sweep.py --out runs/ads_sweep [--scales 0.5,1,2,4,8] [--seeds 3]
        [--presets promotions_baseline,ads_only,ads_only_ancillary,unified]
        [--tune-trials 3] [--tune-steps 300] [--train-steps N]
        [--world-seed 7] [--days 28] [--users 20000] [--podcasts 3000] [--impressions-per-day 18000]

For each ads scale, synthetic logs of the same world with the logged ad volume x scale
(`podcast-mtl generate --ads-scale`; the world and the logged promotions unchanged) are written to
OUT/scale-<s>/data; ExampleGen .. Transform run once on them through the pipeline layer
(`pipeline.local_runner.run_data_pipeline`, root OUT/scale-<s>/work) and every preset is tuned with
the same budget and trained with N seeds on that Transform output (`study.ablation.run_ablation`,
the `podcast-mtl ablate` code path: reports in OUT/scale-<s>/). A scale whose ablation.json was
written with the same settings is reused, so an interrupted sweep resumes. Then OUT/ads_sweep.json,
.md and .png: ads AP and promotions AP of every preset against the training split's ad volume,
where the ads-only models overtake the promotions model, and the unified model's ads gain over the
best single-source model per scale.

The defaults are the full-size study (the default world, 3 seeds, the ablation's tuning budget);
on a 2-core machine it takes hours: `--impressions-per-day`, `--users`, `--podcasts`, `--tune-*`,
`--train-steps` and `--seeds` make it smaller, and every report names the sizes it ran with.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

SCALES = (0.5, 1.0, 2.0, 4.0, 8.0)
PRESETS = ("promotions_baseline", "ads_only", "ads_only_ancillary", "unified")
ADS_ONLY = ("ads_only", "ads_only_ancillary")
BASELINE = "promotions_baseline"


def _scale_dir(out: str, scale: float) -> str:
    return os.path.join(out, f"scale-{scale:g}")


def _table_path(out: str, scale: float) -> str:
    return os.path.join(_scale_dir(out, scale), "ablation.json")


def _commit() -> str:
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def split_counts(logs: str, split) -> Dict[str, Dict[str, int]]:
    """Impressions and streams per split and source of the logs (the training volume of the sweep)."""
    from core.logs import partition_days, read_logs

    df = read_logs(logs, columns=["event_time", "source", "stream"])
    _, bounds = split.resolve(partition_days(logs))
    out = {}
    for name, (lo, hi) in bounds.items():
        part = df[(df.event_time >= lo) & (df.event_time < hi)]
        out[name] = {f"{s}_{what}": int(v) for s, g in part.groupby("source")
                     for what, v in (("impressions", len(g)), ("streams", g.stream.sum()))}
    return out


def run_scale(scale: float, args, out: str, progress=print) -> Dict:
    """Logs, ExampleGen .. Transform and the ablation of one ads scale; returns its ablation.json."""
    from core.split import TemporalSplit
    from datagen.generate import ensure_logs
    from datagen.synthetic import GeneratorConfig
    from models.config import TuningConfig
    from pipeline.configs import PipelineConfig
    from pipeline.local_runner import PipelineFailed, run_data_pipeline
    from study.ablation import run_ablation

    folder = _scale_dir(out, scale)
    gen = GeneratorConfig(seed=args.world_seed, days=args.days, users=args.users, podcasts=args.podcasts,
                          impressions_per_day=args.impressions_per_day, ads_scale=scale)
    settings = {"generator": gen.manifest_config(), "presets": list(args.presets), "seeds": args.seeds,
                "tune_trials": args.tune_trials, "tune_steps": args.tune_steps, "train_steps": args.train_steps}
    done = _table_path(out, scale)
    if os.path.exists(done):
        table = json.load(open(done))
        if table["meta"].get("sweep_settings") == settings:
            progress(f"ads scale {scale:g}: reusing {done}")
            return table
    logs = os.path.join(folder, "data")
    ensure_logs(gen, logs, verbose=False)
    split = TemporalSplit()
    tuning = TuningConfig(seed=args.world_seed, trials=args.tune_trials, steps=args.tune_steps)
    config = PipelineConfig(data=logs, root=os.path.join(folder, "work"), split=split, tuning=tuning)
    t0 = time.time()
    progress(f"ads scale {scale:g}: ExampleGen .. Transform on {logs} ...")
    try:
        data = run_data_pipeline(config, quiet=True)
    except PipelineFailed as e:
        raise SystemExit(f"ads_sweep: scale {scale:g}: the data pipeline failed: {e}")
    t_data = time.time() - t0
    progress(f"ads scale {scale:g}: ExampleGen .. Transform took {t_data:.0f} s")
    overrides = {"train_steps": args.train_steps} if args.train_steps else {}
    run_ablation(data, logs, split, list(args.presets), args.seeds, folder, overrides, tuning=tuning,
                 untuned_row=False, progress=progress)
    table = json.load(open(done))
    table["meta"].update(sweep_settings=settings, ads_scale=scale, counts=split_counts(logs, split),
                         data_pipeline_seconds=round(t_data), commit=_commit())
    with open(done, "w") as f:
        json.dump(table, f, indent=1)
    return table


# ------------------------------------------------------------------------------------------- the sweep table
def _runs(table: Dict, name: str, key: str) -> List[float]:
    v = table["variants"].get(name)
    return list(v[key]["runs"]) if v else []


def _stat(values: Sequence[float]) -> Optional[Dict]:
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    if not a.size:
        return None
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "runs": [float(x) for x in a]}


def crossover(volumes: Sequence[float], gap: Sequence[Optional[float]]) -> Optional[Dict]:
    """Where gap (ads-only ads AP minus the promotions model's) first turns >= 0, on log(volume).

    Returns {"at_or_below": volume} when ads-only is already level at the first volume,
    {"between": [v0, v1], "estimate": v} (linear in log volume) when it crosses, None when it never does.
    """
    pts = [(v, g) for v, g in zip(volumes, gap) if g is not None]
    if not pts:
        return None
    if pts[0][1] >= 0:
        return {"at_or_below": pts[0][0]}
    for (v0, g0), (v1, g1) in zip(pts, pts[1:]):
        if g0 < 0 <= g1:
            x0, x1 = np.log(v0), np.log(v1)
            x = x0 + (x1 - x0) * (-g0) / (g1 - g0)
            return {"between": [v0, v1], "estimate": float(np.exp(x))}
    return None


def sweep_table(tables: Dict[float, Dict]) -> Dict:
    """{scale: ablation.json} -> one row per scale with every preset's AP, ads-only vs the promotions
    model, and the unified model's ads gain over the best single-source model (of means; per seed)."""
    rows = []
    for scale in sorted(tables):
        t = tables[scale]
        counts = t["meta"].get("counts", {})
        row = {"ads_scale": scale, "train_ads": counts.get("train", {}).get("ads_impressions"),
               "train_promotions": counts.get("train", {}).get("promotions_impressions"),
               "test_ads": counts.get("test", {}).get("ads_impressions"), "ads_ap": {}, "promotions_ap": {}}
        for name in t["variants"]:
            row["ads_ap"][name] = _stat(_runs(t, name, "ads_ap"))
            row["promotions_ap"][name] = _stat(_runs(t, name, "promotions_ap"))
        base = row["ads_ap"].get(BASELINE)
        for m in ADS_ONLY:
            if base and row["ads_ap"].get(m):
                row[f"{m}_vs_baseline_ads"] = row["ads_ap"][m]["mean"] / base["mean"] - 1
                row[f"{m}_minus_baseline_ads"] = row["ads_ap"][m]["mean"] - base["mean"]
        singles = [m for m in (BASELINE,) + ADS_ONLY if row["ads_ap"].get(m)]
        if singles and row["ads_ap"].get("unified"):
            best = max(singles, key=lambda m: row["ads_ap"][m]["mean"])
            u = row["ads_ap"]["unified"]
            row["best_single"] = best
            row["unified_vs_best_single_ads"] = u["mean"] / row["ads_ap"][best]["mean"] - 1
            per_seed = [a / b - 1 for a, b in zip(u["runs"], row["ads_ap"][best]["runs"])]
            row["unified_vs_best_single_ads_runs"] = per_seed
        rows.append(row)
    volumes = [r["train_ads"] or r["ads_scale"] for r in rows]
    cross = {m: crossover(volumes, [r.get(f"{m}_minus_baseline_ads") for r in rows]) for m in ADS_ONLY}
    gains = [r.get("unified_vs_best_single_ads") for r in rows]
    finite = [(v, g) for v, g in zip(volumes, gains) if g is not None]
    slope = (float(np.polyfit(np.log([v for v, _ in finite]), [g for _, g in finite], 1)[0])
             if len(finite) > 1 else None)
    return {"rows": rows, "crossover": cross, "unified_gain_slope_per_log_volume": slope}


def _fmt(s: Optional[Dict]) -> str:
    return "n/a" if s is None else f"{s['mean']:.4f} ± {s['std']:.4f}"


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def sweep_markdown(sweep: Dict, presets: Sequence[str]) -> str:
    lines = ["Test-split stream AP (mean ± std over seeds) against the ads scale and the training split's ad "
             "impressions:", "",
             "| ads scale | train ads | train promotions | " + " | ".join(f"ads AP {p}" for p in presets)
             + " | ads-only vs promotions model (ads) | ads-only + ancillary vs promotions model (ads) "
               "| unified vs best single-source model (ads) [seed range] |",
             "|" + "---|" * (3 + len(presets) + 3)]
    for r in sweep["rows"]:
        runs = r.get("unified_vs_best_single_ads_runs") or []
        rng = f" [{min(runs):+.1%}, {max(runs):+.1%}]" if len(runs) > 1 else ""
        best = f" (vs `{r['best_single']}`)" if r.get("best_single") else ""
        lines.append(f"| {r['ads_scale']:g} | {r['train_ads'] or 0:,} | {r['train_promotions'] or 0:,} | "
                     + " | ".join(_fmt(r["ads_ap"].get(p)) for p in presets)
                     + f" | {_pct(r.get('ads_only_vs_baseline_ads'))} | {_pct(r.get('ads_only_ancillary_vs_baseline_ads'))}"
                     + f" | {_pct(r.get('unified_vs_best_single_ads'))}{rng}{best} |")
    lines += ["", "| ads scale | " + " | ".join(f"promotions AP {p}" for p in presets) + " |",
              "|" + "---|" * (1 + len(presets))]
    for r in sweep["rows"]:
        lines.append(f"| {r['ads_scale']:g} | " + " | ".join(_fmt(r["promotions_ap"].get(p)) for p in presets) + " |")
    lines.append("")
    for m, c in sweep["crossover"].items():
        if c is None:
            lines.append(f"- `{m}` does not reach the promotions model's ads AP at any measured ad volume.")
        elif "at_or_below" in c:
            lines.append(f"- `{m}` is level with or above the promotions model's ads AP already at "
                         f"{c['at_or_below']:,.0f} training ads.")
        else:
            lo, hi = c["between"]
            lines.append(f"- `{m}` overtakes the promotions model on ads between {lo:,.0f} and {hi:,.0f} training "
                         f"ads (about {c['estimate']:,.0f}, linear in log volume).")
    s = sweep.get("unified_gain_slope_per_log_volume")
    if s is not None:
        lines.append(f"- The unified model's ads gain over the best single-source model changes by "
                     f"{s * np.log(2):+.1%} (points of relative gain) per doubling of the training ads "
                     f"(least-squares slope on ln volume over the measured scales).")
    return "\n".join(lines) + "\n"


def sweep_chart(sweep: Dict, presets: Sequence[str], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sweep["rows"]
    x = np.array([r["train_ads"] or r["ads_scale"] for r in rows], float)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    rel = axes[2]
    for p in presets:
        if p == BASELINE:
            continue
        vals = [(r["ads_ap"].get(p), r["ads_ap"].get(BASELINE)) for r in rows]
        rel.plot(x, [100 * (a["mean"] / b["mean"] - 1) if a and b else np.nan for a, b in vals], marker="o", label=p,
                 color=f"C{list(presets).index(p)}")
    rel.axhline(0, color="k", lw=0.8)
    rel.set_xscale("log")
    rel.set_xticks(x)
    rel.set_xticklabels([f"{v:,.0f}\n(x{r['ads_scale']:g})" for v, r in zip(x, rows)], fontsize=7)
    rel.minorticks_off()
    rel.set_xlabel("ad impressions in the training split (ads scale)")
    rel.set_ylabel("ads AP vs promotions_baseline at the same scale (%)")
    rel.set_title("ads AP relative to the promotions model (same test split)", fontsize=10)
    rel.grid(alpha=0.3)
    rel.legend(fontsize=8)
    for ax, key, name in zip(axes, ("ads_ap", "promotions_ap"), ("ads", "promotions")):
        for p in presets:
            vals = [r[key].get(p) for r in rows]
            m = np.array([v["mean"] if v else np.nan for v in vals])
            e = np.array([v["std"] if v else 0.0 for v in vals])
            ax.errorbar(x, m, yerr=e, marker="o", capsize=3, label=p, color=f"C{list(presets).index(p)}")
        ax.set_xscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{v:,.0f}\n(x{r['ads_scale']:g})" for v, r in zip(x, rows)], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("ad impressions in the training split (ads scale)")
        ax.set_ylabel(f"{name} stream AP, test split (mean ± std over seeds)")
        ax.set_title(f"{name} AP against ads training volume", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_sweep(tables: Dict[float, Dict], presets: Sequence[str], out: str, meta: Dict) -> Dict:
    sweep = sweep_table(tables)
    sweep["meta"] = meta
    with open(os.path.join(out, "ads_sweep.json"), "w") as f:
        json.dump(sweep, f, indent=1)
    head = (f"# Ads-volume sweep\n\ncommit `{meta['commit']}`; command: `{meta['command']}`  \n"
            f"world seed {meta['world_seed']}, {meta['days']} days, {meta['users']:,} users, {meta['podcasts']:,} "
            f"podcasts, {meta['impressions_per_day']:,} impressions a day at ads scale 1; {meta['seeds']} seeds; "
            f"tuning {meta['tune_trials']} trials x {meta['tune_steps']} steps per preset; train steps "
            f"{meta['train_steps'] or 'the presets own'}; {meta['seconds']:,} s\n\n")
    with open(os.path.join(out, "ads_sweep.md"), "w") as f:
        f.write(head + sweep_markdown(sweep, presets))
    sweep_chart(sweep, presets, os.path.join(out, "ads_sweep.png"),
                f"ads-volume sweep at {meta['commit']}: {meta['impressions_per_day']:,} impressions/day at x1, "
                f"{meta['seeds']} seeds, tuning {meta['tune_trials']}x{meta['tune_steps']}")
    return sweep


def _scales(text: str):
    try:
        values = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        values = ()
    if not values or any(not 0 < v <= 64 for v in values):
        raise argparse.ArgumentTypeError(f"--scales: comma-separated numbers in (0, 64] expected, got {text!r}")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"--scales: each scale once, got {text!r}")
    return values  # run in the order given (the reports sort them)


def _presets(text: str):
    from models.config import PRESETS as KNOWN

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in KNOWN]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"--presets: unknown {', '.join(unknown) or '(none given)'}; "
                                         f"presets are {', '.join(KNOWN)}")
    return names


def measured_scale(scale: float, folders: Sequence[str]) -> Dict:
    """The first of the folders' scale-<s>/ablation.json (its meta: counts, commit, settings)."""
    for folder in folders:
        path = _table_path(folder, scale)
        if os.path.exists(path):
            return json.load(open(path))
    raise SystemExit(f"ads_sweep: --report-only: scale {scale:g} was measured in none of {', '.join(folders)}")


def merge_earlier(tables: Dict[float, Dict], folders: Sequence[str], presets: Sequence[str]):
    """Adds to each scale's table the variants that earlier sweeps (their folders) measured at that
    scale and the table lacks. Returns every preset now in the tables (PRESETS order) and, per folder,
    {scale: [presets taken from it]}. Each added variant keeps its runs as measured (and names its
    file); the scale's meta stays the table's own."""
    taken: Dict[str, Dict[str, List[str]]] = {}
    for folder in folders:
        for scale, table in tables.items():
            path = _table_path(folder, scale)
            if not os.path.exists(path):
                continue
            for name, variant in json.load(open(path))["variants"].items():
                if name not in table["variants"]:
                    table["variants"][name] = dict(variant, measured_in=path)
                    taken.setdefault(folder, {}).setdefault(f"{scale:g}", []).append(name)
    present = {name for t in tables.values() for name in t["variants"]}
    return [p for p in PRESETS if p in present] + [p for p in presets if p not in PRESETS], taken


def main(argv=None) -> int:
    from datagen.world import GeneratorConfig
    from models.config import TuningConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "runs", "ads_sweep"))
    p.add_argument("--scales", type=_scales, default=SCALES, help="ads scales (default 0.5,1,2,4,8)")
    p.add_argument("--presets", type=_presets, default=PRESETS, help=f"default {','.join(PRESETS)}")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per preset and scale (default 3)")
    p.add_argument("--tune-trials", type=int, default=TuningConfig.trials,
                   help="tuning trials per preset and scale, the same for each (default %(default)s; 0: none)")
    p.add_argument("--tune-steps", type=int, default=TuningConfig.steps, help="steps per trial (default %(default)s)")
    p.add_argument("--train-steps", type=int, default=None, help="training steps cap (default: the presets')")
    for name in ("days", "users", "podcasts", "impressions_per_day"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(GeneratorConfig, name),
                       help="generator size at ads scale 1 (default %(default)s)")
    p.add_argument("--world-seed", type=int, default=GeneratorConfig.seed, help="generator seed (default 7)")
    p.add_argument("--with", dest="merge", action="append", default=[], metavar="SWEEP_DIR",
                   help="an earlier sweep's folder (repeatable): the presets its scale-<s>/ablation.json measured "
                        "and this run did not are added to this run's report, as measured there")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: the report from the scales already measured in OUT and the --with folders")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.tune_trials < 0 or args.tune_steps < 1 or (args.train_steps or 1) < 1:
        p.error("--seeds, --tune-steps and --train-steps must be positive and --tune-trials >= 0")
    try:
        GeneratorConfig(seed=args.world_seed, days=args.days, users=args.users, podcasts=args.podcasts,
                        impressions_per_day=args.impressions_per_day, ads_scale=max(args.scales)).validate()
    except ValueError as e:
        p.error(str(e))
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    tables = {}
    for scale in args.scales:
        if args.report_only:
            tables[scale] = measured_scale(scale, [args.out] + args.merge)
            continue
        tables[scale] = run_scale(scale, args, args.out, progress=lambda line: print(line, flush=True))
        print(f"ads scale {scale:g} done ({time.time() - t0:.0f} s so far)", flush=True)
    presets, taken = merge_earlier(tables, args.merge, args.presets)
    meta = {"commit": _commit(), "command": "python bench/ads_sweep.py " + " ".join(argv or sys.argv[1:]),
            "scales": sorted(args.scales), "presets": list(args.presets), "seeds": args.seeds,
            "tune_trials": args.tune_trials, "tune_steps": args.tune_steps, "train_steps": args.train_steps,
            "world_seed": args.world_seed, "days": args.days, "users": args.users, "podcasts": args.podcasts,
            "impressions_per_day": args.impressions_per_day, "seconds": round(time.time() - t0),
            "merged_from": taken}
    sweep = write_sweep(tables, presets, args.out, meta)
    print(sweep_markdown(sweep, presets))
    print(f"wrote ads_sweep.json, .md, .png to {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
