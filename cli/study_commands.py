"""`ablate` (every preset on the same data), `simulate-ab` (budget-split A/B test of two pushed
models on the synthetic world) and `score` (batch scoring of logs with a pushed model)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from cli.common import (UsageError, add_data_args, add_tuning_args, number_in, out_folder, pipeline_config, positive,
                        presets_help, refuse_overlap, seed_type, writable_root)


def cmd_ablate(args) -> int:
    from models.config import PRESETS
    from pipeline.local_runner import PipelineFailed, RootBusy, run_data_pipeline
    from study.ablation import run_ablation
    from study.tables import ablation_markdown

    presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets is not None else list(PRESETS)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise UsageError(f"--presets: unknown {', '.join(unknown)}; presets are {', '.join(PRESETS)}")
    if not presets:
        raise UsageError(f"--presets {args.presets!r} selects no preset; presets are {', '.join(PRESETS)}")
    refuse_overlap("--out", args.out, {"--data": args.data})
    work = os.path.join(args.out, "work")
    writable_root(work)
    config = pipeline_config(args, work)
    t0 = time.time()
    print(f"ablation: {len(presets)} presets x {args.seeds} seeds on {config.data}; reports in {args.out}", flush=True)
    print(f"ExampleGen .. Transform on {config.data} (cached when unchanged) ...", flush=True)
    try:
        data = run_data_pipeline(config)
    except RootBusy as e:
        raise UsageError(str(e))
    except PipelineFailed as e:
        print(f"podcast-mtl ablate: {e}", file=sys.stderr)
        return 1
    overrides = {"train_steps": args.train_steps} if args.train_steps else {}
    table = run_ablation(data, config.data, config.split, presets, args.seeds, args.out, overrides,
                         tuning=config.tuning)
    print(ablation_markdown(table))
    print(f"wrote ablation.* and cold_start.* to {args.out} in {time.time() - t0:.0f} s")
    return 0


def cmd_score(args) -> int:
    from core.env import GRAPPLER_NOISE, filtered_stderr
    from models.batch_score import ScoreInputError, score_logs

    try:
        with filtered_stderr(GRAPPLER_NOISE):  # a quiet console: what else C++ prints is passed on
            score_logs(args.model, args.data, args.out, signature=args.signature, batch_size=args.batch_size,
                       progress=lambda line: print(line, flush=True))
    except ScoreInputError as e:
        raise UsageError(str(e))
    return 0


def ab_models(args):
    """(control SavedModel, treatment SavedModel, GeneratorConfig of the world) from the arguments."""
    from core.logs import read_manifest
    from core.versions import newest_version
    from datagen.world import GeneratorConfig
    from pipeline.run_root import MODEL_SERVING_DIR, Node, RunRoot

    if args.root is None and not (args.control and args.treatment):
        raise UsageError("give --root ROOT (a `podcast-mtl run` root), or both --control and --treatment")
    if args.root is not None and not os.path.isdir(args.root):
        raise UsageError(f"--root {args.root}: no such folder")
    root = RunRoot(args.root) if args.root is not None else None
    control, treatment = args.control, args.treatment
    if control is None:
        control = root.newest_artifact(Node.BASELINE_TRAINER, "model", inside=MODEL_SERVING_DIR,
                                       holding="saved_model.pb")
        if control is None:
            imported = os.path.isdir(root.node(Node.BASELINE_IMPORTER))
            raise UsageError(f"--root {args.root}: no in-run promotions_baseline model "
                             f"(pipeline/{Node.BASELINE_TRAINER}/model/*/{MODEL_SERVING_DIR})"
                             + ("; the run imported an incumbent baseline instead: pass it as --control" if imported
                                else "; pass --control MODEL_DIR"))
    if treatment is None:
        treatment = newest_version(root.serving)  # the model a server would load
        if treatment is None:
            raise UsageError(f"--root {args.root}: no pushed model in {root.serving} (the candidate was "
                             f"not blessed?); pass --treatment MODEL_DIR")
    for flag, path in (("--control", control), ("--treatment", treatment)):
        if not os.path.isdir(path):
            raise UsageError(f"{flag} {path}: no such folder")
    data = args.data or (run_data(root) if root else None)
    if data is None:
        raise UsageError("give --data: the synthetic logs the models were trained on (their manifest.json gives "
                         "the world to simulate)")
    manifest = read_manifest(data)
    if manifest is None:
        how = "--data" if args.data else f"--root {args.root}: the run read"
        raise UsageError(f"{how} {data}: no logs written by podcast-mtl (no manifest.json), so the world the "
                         f"models were trained on is unknown; pass --data with the synthetic logs they were trained on")
    if manifest.get("generator") != "synthetic" or not isinstance(manifest.get("config"), dict):
        raise UsageError(f"--data {data}: the logs are {manifest.get('generator')!r}, not the synthetic world; the "
                         f"A/B simulation needs the world's counterfactual truth (synthetic logs only)")
    try:
        world = GeneratorConfig(**manifest["config"])
    except TypeError as e:
        raise UsageError(f"--data {data}: manifest.json's generator config is not this version's ({e})")
    if args.world_seed is not None:
        world = dataclasses.replace(world, seed=args.world_seed)
    refuse_overlap("--out", args.out, {"--control": control, "--treatment": treatment, "--data": data,
                                       "--root": args.root})
    return control, treatment, world


def run_data(root) -> str:
    """The logs a run root's pipeline read: its ExampleGen's `input_base` in MLMD, else ROOT/data."""
    from pipeline.run_summary import _store

    if os.path.exists(root.metadata):
        try:
            store = _store(root.metadata)
            gens = [e for e in store.get_executions() if "input_base" in e.properties or
                    "input_base" in e.custom_properties]
            if gens:
                newest = max(gens, key=lambda e: (e.create_time_since_epoch, e.id))
                props = newest.custom_properties if "input_base" in newest.custom_properties else newest.properties
                if props["input_base"].string_value:
                    return props["input_base"].string_value
        except Exception:  # an unreadable store: fall back to the default place
            pass
    return root.data


def cmd_simulate_ab(args) -> int:
    """Budget-split A/B test of two pushed models on the synthetic world (study/ab_simulation.py)."""
    from core.env import GRAPPLER_NOISE, streaming_filtered_stderr
    from core.tasks import TASKS, stream_head
    from datagen.world import World
    from models.batch_score import SavedModelScorer, ScoreInputError
    from models.export import read_model_config
    from study.ab_simulation import ABConfig, markdown, run_ab

    control, treatment, world_cfg = ab_models(args)
    cfg = ABConfig(days=args.days, repeats=args.repeats, candidates=args.candidates, traffic_scale=args.traffic_scale)
    try:
        cfg.validate(world_cfg.days)
    except ValueError as e:
        raise UsageError(str(e))
    writable_root(args.out)
    t0 = time.time()
    head = stream_head(TASKS, "ads")
    scorers, models = {}, {}
    for arm, path in (("control", control), ("treatment", treatment)):
        try:
            scorer = SavedModelScorer(path, head, signature=args.signature)
        except ScoreInputError as e:
            raise UsageError(f"--{arm}: {e}")
        model_cfg = read_model_config(scorer.model_dir)
        what = (f"heads {'+'.join(model_cfg.heads)}, trained on {'+'.join(model_cfg.train_sources)}"
                if model_cfg is not None else "no model_config.json")
        models[arm] = f"{scorer.model_dir} ({what})"
        scorers[arm] = scorer
        print(f"{arm}: {models[arm]}, head {head} via {args.signature}", flush=True)
    print(f"world: seed {world_cfg.seed}, {world_cfg.days} days, {world_cfg.users:,} users, {world_cfg.podcasts:,} "
          f"podcasts; simulating the last {cfg.days} days x {cfg.repeats} repeats ...", flush=True)
    world = World(world_cfg)
    arms = {arm: (lambda s: lambda candidates: s(candidates.feature_rows()))(scorer) for arm, scorer in scorers.items()}
    with streaming_filtered_stderr(GRAPPLER_NOISE):  # Grappler's lines on each model's first call; the rest passes
        report = run_ab(world, arms, cfg, out=args.out, models=models, progress=lambda line: print(line, flush=True))
    rows = sum(s.rows_scored for s in scorers.values())
    secs = sum(s.seconds for s in scorers.values())
    print(markdown(report))
    per_day = report["seconds_per_day"]
    print(f"scored {rows:,} candidates in {secs:.1f} s ({rows / max(secs, 1e-9):,.0f} rows/s); "
          f"{sum(per_day) / len(per_day):.1f} s per simulated day (both arms)")
    print(f"wrote ab.json, ab.md, ab.png to {args.out} in {time.time() - t0:.0f} s")
    return 0


def add_parsers(sub) -> None:
    from models.batch_score import DEFAULT_BATCH, SIGNATURES
    from models.config import PRESETS
    from pipeline.configs import default
    from study.ab_simulation import ABConfig

    a = sub.add_parser("ablate", help="train every preset on the same data and report per-source AP",
                       epilog=presets_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(a, "OUT/work")
    a.add_argument("--out", default="runs/ablation", help="reports and the shared pipeline outputs (default %(default)s)")
    a.add_argument("--seeds", type=positive("--seeds"), default=3, help="training seeds per preset (default %(default)s)")
    a.add_argument("--presets", help=f"comma-separated subset of: {', '.join(PRESETS)} (default: all)")
    add_tuning_args(a, "tuning trials per preset, the same budget for each (default %(default)s; 0: the "
                       "presets' own hyperparameters, no untuned row)")
    a.set_defaults(func=cmd_ablate)

    ab = sub.add_parser("simulate-ab", help="budget-split A/B test of two pushed models on the synthetic world "
                                            "(i2s, eCPS, streams; overall, emerging creators, by popularity)")
    ab.add_argument("--root", help="a `podcast-mtl run` root: control = its in-run promotions_baseline, treatment = "
                                   "its newest pushed model, world = its synthetic logs' generator config")
    ab.add_argument("--control", help="control SavedModel (or serving folder; newest version) (default: from --root)")
    ab.add_argument("--treatment", help="treatment SavedModel (or serving folder) (default: from --root)")
    ab.add_argument("--out", default="runs/ab", type=out_folder,
                    help="writes ab.json, ab.md, ab.png (default %(default)s)")
    ab.add_argument("--data", help="the synthetic logs the models were trained on: their manifest gives the world's "
                                   "config (default: ROOT/data, else the default world)")
    ab.add_argument("--world-seed", type=seed_type("--world-seed"),
                    help="world seed (default: the logs' generator seed, else 7); the models must have been "
                         "trained on that world's logs")
    ab.add_argument("--days", type=positive("--days"), default=default(ABConfig, "days"),
                    help="simulated days: the last D days of the world's window (default %(default)s)")
    ab.add_argument("--repeats", type=positive("--repeats"), default=default(ABConfig, "repeats"),
                    help="repeats with different user splits, requests and outcomes (default %(default)s)")
    ab.add_argument("--candidates", type=positive("--candidates"), default=default(ABConfig, "candidates"),
                    help="campaigns retrieved per ad request; all their creatives are scored (default %(default)s)")
    ab.add_argument("--traffic-scale", type=number_in("--traffic-scale", 0, 100, low_open=True), default=default(ABConfig, "traffic_scale"),
                    help="ad requests and every campaign's budget x this, so that a campaign serves several "
                         "impressions per arm and day (default %(default)s)")
    ab.add_argument("--signature", default=SIGNATURES[0], choices=SIGNATURES,
                    help="serving_raw (named tensors, faster) or serving_default (serialized tf.Examples); the "
                         "same outputs (default %(default)s)")
    ab.set_defaults(func=cmd_simulate_ab)

    sc = sub.add_parser("score", help="score day-partitioned logs with a pushed SavedModel into one Parquet file")
    sc.add_argument("--model", required=True,
                    help="a SavedModel folder, or a serving folder with numbered versions (the newest is used)")
    sc.add_argument("--data", required=True, help="day-partitioned impression logs (DIR/date=YYYY-MM-DD/*.parquet)")
    sc.add_argument("--out", required=True, help="output Parquet file: impression_id and one probability per head")
    sc.add_argument("--signature", default=SIGNATURES[0], choices=SIGNATURES,
                    help="serving_raw (named tensors, faster) or serving_default (serialized tf.Examples) "
                         "(default %(default)s)")
    sc.add_argument("--batch-size", type=positive("--batch-size"), default=DEFAULT_BATCH,
                    help="rows per model call (default %(default)s)")
    sc.set_defaults(func=cmd_score)

