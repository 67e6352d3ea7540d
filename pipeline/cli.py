"""`podcast-mtl`: generate logs, run the pipeline, run the ablation study, convert KuaiRand, score logs
with a pushed model. `podcast-mtl run --help` explains the model presets."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines go nowhere useful
import pipeline  # noqa: F401,E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)



class UsageError(Exception):
    """Bad arguments or input: one line on stderr, exit code 2."""






def _int_in(name: str, low: int, high: Optional[int] = None, high_text: Optional[str] = None):
    """An argparse type: an integer in [low, high) (high None: no upper bound), errors naming the flag
    (and the bound as `high_text` when given, e.g. "2**32")."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if value < low or (high is not None and value >= high):
            bound = f"in [{low}, {high_text or high})" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {value}")
        return value
    return parse


def _positive(name: str):
    return _int_in(name, 1)


_seed = _int_in("--seed", 0, 2 ** 32, "2**32")


def _fraction(name: str):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not 0 <= value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a number in [0, 1), got {text!r}")
        return value
    return parse


def _scale(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"--traffic-scale must be a number in (0, 100], got {text!r}")
    return value


def _floor(text):
    from core.fields import SOURCES

    source, _, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if source not in SOURCES or number is None or not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"expected SOURCE=AP with SOURCE in {SOURCES} and AP in [0, 1], got {text!r}")
    return source, number


def _out_folder(text):
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return text


def cmd_generate(args) -> int:
    from datagen.synthetic import GeneratorConfig
    from datagen.generate import generate_logs

    cfg = GeneratorConfig(seed=args.seed, days=args.days, users=args.users, podcasts=args.podcasts,
                          impressions_per_day=args.impressions_per_day)
    t0 = time.time()
    try:
        cfg.validate()
        summary = generate_logs(cfg, args.out, verbose=True, overwrite=args.overwrite)
    except ValueError as e:  # bad sizes, or --out holds files this tool did not write
        raise UsageError(str(e))
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot write ({e.strerror or e})")
    print(f"wrote {summary['rows']:,} impressions to {args.out} in {time.time() - t0:.1f} s")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _pipeline_config(args, root: str):
    """The config from the arguments; without --data, the default synthetic logs under the root."""
    from datagen.generate import ensure_logs
    from datagen.synthetic import GeneratorConfig
    from pipeline.configs import PipelineConfig

    data = args.data
    if data is None:
        data = os.path.join(root, "data")
        ensure_logs(GeneratorConfig(seed=args.seed), data)
    elif not os.path.isdir(data) and "://" not in data:
        raise UsageError(f"--data {data}: no such folder")
    baseline = getattr(args, "baseline_model", None)
    if baseline and "://" not in baseline and not os.path.isdir(baseline):
        raise UsageError(f"--baseline-model {baseline}: no such folder")
    try:
        return PipelineConfig.from_args(args, data=data, root=root)
    except ValueError as e:
        raise UsageError(str(e))


def _writable_root(root: str) -> None:
    """A clear error instead of a traceback when the root cannot be created or written."""
    try:
        os.makedirs(root, exist_ok=True)
        probe = os.path.join(root, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"--root {root}: cannot write there ({e.strerror or e})")


def cmd_run(args) -> int:
    from pipeline.local_runner import RootBusy, format_summary, run_pipeline

    _writable_root(args.root)
    config = _pipeline_config(args, args.root)
    print(f"running {config.name} (preset {config.preset_name}) on {config.data}; outputs in {config.root}",
          flush=True)
    try:
        summary = run_pipeline(config)
    except (RootBusy, ValueError) as e:  # a busy root; a baseline model that is not a SavedModel
        raise UsageError(str(e))
    print(format_summary(summary))
    print(f"summary: {os.path.join(config.root, 'summary.json')}")
    stats_page = os.path.join(config.root, "statistics.html")
    print(f"report: {os.path.join(config.root, 'report.md')}" +
          (f" (feature statistics: {stats_page})" if os.path.exists(stats_page) else ""))
    return 1 if summary["failed"] else 0


def cmd_ablate(args) -> int:
    from study.ablation import run_ablation
    from models.config import PRESETS

    presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else list(PRESETS)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise UsageError(f"--presets: unknown {', '.join(unknown)}; presets are {', '.join(PRESETS)}")
    from pipeline.local_runner import run_data_pipeline

    _writable_root(os.path.join(args.out, "work"))
    config = _pipeline_config(args, os.path.join(args.out, "work"))
    t0 = time.time()
    print(f"ablation: {len(presets)} presets x {args.seeds} seeds on {config.data}; reports in {args.out}", flush=True)
    print(f"ExampleGen .. Transform on {config.data} (cached when unchanged) ...", flush=True)
    from pipeline.local_runner import PipelineFailed, RootBusy

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
    from study.tables import ablation_markdown

    print(ablation_markdown(table))
    print(f"wrote ablation.* and cold_start.* to {args.out} in {time.time() - t0:.0f} s")
    return 0


def cmd_score(args) -> int:
    from models.batch_score import ScoreInputError, score_logs

    try:
        score_logs(args.model, args.data, args.out, signature=args.signature, batch_size=args.batch_size,
                   progress=lambda line: print(line, flush=True))
    except ScoreInputError as e:
        raise UsageError(str(e))
    return 0


BASELINE_NODE = "baseline_trainer"  # the in-run promotions_baseline Trainer (pipeline/pipeline.py)


def _ab_models(args):
    """(control SavedModel, treatment SavedModel, GeneratorConfig of the world) from the arguments."""
    import dataclasses
    import glob

    from core.logs import read_manifest
    from core.versions import newest_version
    from datagen.world import GeneratorConfig

    root = args.root
    if root is None and not (args.control and args.treatment):
        raise UsageError("give --root ROOT (a `podcast-mtl run` root), or both --control and --treatment")
    if root is not None and not os.path.isdir(root):
        raise UsageError(f"--root {root}: no such folder")
    control, treatment = args.control, args.treatment
    if control is None:
        found = sorted(glob.glob(os.path.join(root, "pipeline", BASELINE_NODE, "model", "*", "Format-Serving")),
                       key=lambda p: int(p.split(os.sep)[-2]) if p.split(os.sep)[-2].isdigit() else -1)
        found = [p for p in found if os.path.exists(os.path.join(p, "saved_model.pb"))]
        if not found:
            imported = os.path.isdir(os.path.join(root, "pipeline", "baseline_importer"))
            raise UsageError(f"--root {root}: no in-run promotions_baseline model "
                             f"(pipeline/{BASELINE_NODE}/model/*/Format-Serving)"
                             + ("; the run imported an incumbent baseline instead: pass it as --control" if imported
                                else "; pass --control MODEL_DIR"))
        control = found[-1]
    if treatment is None:
        treatment = newest_version(os.path.join(root, "serving"))  # the model a server would load
        if treatment is None:
            raise UsageError(f"--root {root}: no pushed model in {os.path.join(root, 'serving')} (the candidate was "
                             f"not blessed?); pass --treatment MODEL_DIR")
    for flag, path in (("--control", control), ("--treatment", treatment)):
        if not os.path.isdir(path):
            raise UsageError(f"{flag} {path}: no such folder")
    world = GeneratorConfig()
    data = args.data or (os.path.join(root, "data") if root else None)
    manifest = read_manifest(data) if data else None
    if args.data and manifest is None:
        raise UsageError(f"--data {args.data}: no logs written by podcast-mtl (no manifest.json)")
    if manifest is not None:
        if manifest.get("generator") != "synthetic":
            raise UsageError(f"--data {data}: the logs are {manifest.get('generator')!r}, not the synthetic world; the "
                             f"A/B simulation needs the world's counterfactual truth (synthetic logs only)")
        world = GeneratorConfig(**manifest["config"])
    if args.world_seed is not None:
        world = dataclasses.replace(world, seed=args.world_seed)
    return control, treatment, world


def cmd_simulate_ab(args) -> int:
    """Budget-split A/B test of two pushed models on the synthetic world (study/ab_test.py)."""
    from core.tasks import TASKS, stream_head
    from datagen.world import World
    from models.batch_score import SavedModelScorer, ScoreInputError
    from models.export import read_model_config
    from study.ab_test import ABConfig, markdown, run_ab

    control, treatment, world_cfg = _ab_models(args)
    cfg = ABConfig(days=args.days, repeats=args.repeats, candidates=args.candidates, traffic_scale=args.traffic_scale)
    try:
        cfg.validate(world_cfg.days)
    except ValueError as e:
        raise UsageError(str(e))
    _writable_root(args.out)
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
        scorers[arm] = (lambda s: lambda c: s(c.feature_rows()))(scorer)
        scorers[arm + "_model"] = scorer
        print(f"{arm}: {models[arm]}, head {head} via {args.signature}", flush=True)
    print(f"world: seed {world_cfg.seed}, {world_cfg.days} days, {world_cfg.users:,} users, {world_cfg.podcasts:,} "
          f"podcasts; simulating the last {cfg.days} days x {cfg.repeats} repeats ...", flush=True)
    world = World(world_cfg)
    report = run_ab(world, {arm: scorers[arm] for arm in ("control", "treatment")}, cfg, out=args.out,
                    models=models, progress=lambda line: print(line, flush=True))
    rows = sum(scorers[a + "_model"].rows_scored for a in ("control", "treatment"))
    secs = sum(scorers[a + "_model"].seconds for a in ("control", "treatment"))
    print(markdown(report))
    per_day = report["seconds_per_day"]
    print(f"scored {rows:,} candidates in {secs:.1f} s ({rows / max(secs, 1e-9):,.0f} rows/s); "
          f"{sum(per_day) / len(per_day):.1f} s per simulated day (both arms)")
    print(f"wrote ab.json, ab.md, ab.png to {args.out} in {time.time() - t0:.0f} s")
    return 0


def cmd_compile(args) -> int:
    """The PipelineJob spec for Vertex AI / Kubeflow Pipelines v2 (needs the kfp extra)."""
    if not args.data:
        raise UsageError("--data is required: the logs' path as the pipeline's containers see it (gs://...)")
    try:
        from kfp.pipeline_spec import pipeline_spec_pb2  # noqa: F401  (TFX's v2 compiler needs it)
        from pipeline.kubeflow_v2_runner import compile_pipeline, step_images
    except ImportError as e:
        raise UsageError(f"compiling for {args.target} needs the kfp extra "
                         f"(pip install -c constraints-kfp.txt -e '.[kfp]'): {e}")
    config = _pipeline_config(args, args.root)
    job = compile_pipeline(config, args.image, args.out, schema_file=args.schema_file)
    steps = step_images(job)
    print(f"wrote {args.out}: {len(steps)} container steps, image {args.image}; pipeline root {config.pipeline_root}")
    return 0


def cmd_schedule(args) -> int:
    """D consecutive daily runs as the logs arrive one day at a time (LocalDagRunner)."""
    from pipeline.schedule import run_schedule

    if not args.data:
        raise UsageError("--data is required: the folder the daily partitions arrive from")
    config = _pipeline_config(args, args.root)
    print(f"schedule: {args.days} daily runs of {config.name} on {config.data} "
          f"(window {config.split.window_days or 'all'} days); outputs in {config.root}", flush=True)
    try:
        report = run_schedule(config, args.days, warm_start=args.warm_start, warm_start_steps=args.warm_start_steps)
    except ValueError as e:
        raise UsageError(str(e))
    print(f"schedule: {os.path.join(config.root, 'schedule.json')}")
    return 0 if report and not report[-1]["failed"] else 1


def _tabs(text):
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated tab numbers, got {text!r}")


def cmd_convert_kuairand(args) -> int:
    from datagen.kuairand import InputError, convert_to_logs
    from core.logs import NotOurFolder, read_logs
    from datagen.summary import format_summary, summarize

    t0 = time.time()
    try:
        stats = convert_to_logs(args.src, args.out, args.promotions_tabs, args.ads_tabs, overwrite=args.overwrite)
    except (InputError, NotOurFolder) as e:
        raise UsageError(str(e))
    print(json.dumps(stats, indent=1))
    print(format_summary(summarize(read_logs(args.out))))
    print(f"wrote {stats['rows']:,} impressions to {args.out} in {time.time() - t0:.1f} s "
          f"(KuaiRand, CC BY-SA 4.0: derived logs carry the same licence)")
    return 0


def _add_data_args(p, root_help: str) -> None:
    """Arguments shared by the commands that run the DAG: logs, split, window, seed."""
    from core.split import TemporalSplit
    from datagen.synthetic import GeneratorConfig
    from pipeline.configs import PipelineConfig, default

    p.add_argument("--data", help=f"day-partitioned impression logs, local or any Beam filesystem path "
                                  f"(default: the synthetic logs, generated under {root_help}/data)")
    p.add_argument("--test-days", type=_positive("--test-days"), default=default(TemporalSplit, "test_days"),
                   help="newest days of the window that form the test split (default %(default)s)")
    p.add_argument("--eval-days", type=_positive("--eval-days"), default=default(TemporalSplit, "eval_days"),
                   help="days before the test days that form the eval split (default %(default)s)")
    p.add_argument("--window-days", type=_positive("--window-days"), default=None,
                   help="read only the newest N day partitions (a rolling window; default: every day)")
    p.add_argument("--end-day", metavar="YYYY-MM-DD", help="ignore partitions after this day (default: none)")
    p.add_argument("--train-steps", type=_positive("--train-steps"),
                   help="training steps (batches) per model (default: the preset's)")
    p.add_argument("--seed", type=_seed, default=default(GeneratorConfig, "seed"),
                   help="seed of the default synthetic logs and of training (default %(default)s)")
    p.add_argument("--max-rejected-rows", type=_int_in("--max-rejected-rows", 0),
                   default=default(PipelineConfig, "max_rejected_rows"),
                   help="rows ExampleGen may reject (event_time outside its day partition, a field of the other "
                        "source, NaN) before the gate stops the run (default %(default)s)")


def _add_tuning_args(p, trials_help: str) -> None:
    from models.config import TuningConfig
    from pipeline.configs import default

    p.add_argument("--tune-trials", type=_int_in("--tune-trials", 0), default=default(TuningConfig, "trials"),
                   help=trials_help)
    p.add_argument("--tune-steps", type=_positive("--tune-steps"), default=default(TuningConfig, "steps"),
                   help="training steps per tuning trial (default %(default)s)")


def _add_pipeline_args(p) -> None:
    """Options of the commands that build the whole DAG: run, compile, schedule."""
    from models.config import PRESETS
    from pipeline.configs import DEFAULT_AP_FLOORS, DEFAULT_PRESET, PipelineConfig, default

    floors = ", ".join(f"{s}={v}" for s, v in DEFAULT_AP_FLOORS)
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help="model variant to train and push (default %(default)s; see below)")
    p.add_argument("--beam-arg", action="append", metavar="ARG",
                   help="passed to Beam unchanged (repeat), e.g. --beam-arg=--runner=DataflowRunner; "
                        "without a --runner, the local DirectRunner in memory")
    p.add_argument("--serving-dir", help="where blessed models are pushed (default ROOT/serving)")
    p.add_argument("--ap-floor", type=_floor, action="append", metavar="SOURCE=AP",
                   help=f"blessing floor of a source's test stream AP (repeat; default {floors})")
    p.add_argument("--ap-tolerance", type=_fraction("--ap-tolerance"), default=default(PipelineConfig, "ap_tolerance"),
                   help="relative stream AP a candidate may lose against the baseline on each source "
                        "(default %(default)s)")
    _add_tuning_args(p, "trials of the Tuner's search on validation AP (default %(default)s; 0: no Tuner, the "
                        "preset's own hyperparameters)")
    p.add_argument("--baseline-model", metavar="DIR",
                   help="the incumbent SavedModel the candidate must match on every source (default: the latest "
                        "model in the serving folder; with none, a promotions baseline trained in the same run)")
    p.add_argument("--bulk-inference", action="store_true",
                   help="also score the test split with the blessed model (TFX BulkInferrer; PredictionLogs "
                        "under ROOT/pipeline/BulkInferrer)")


def build_parser() -> argparse.ArgumentParser:
    from datagen.synthetic import GeneratorConfig
    from models.config import PRESET_HELP, PRESETS
    from pipeline.configs import DEFAULT_ROOT, default

    presets_help = "presets:\n" + "\n".join(f"  {name:<24}{PRESET_HELP[name]}" for name in PRESETS)
    parser = _Parser(prog="podcast-mtl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="write synthetic impression logs with known true probabilities")
    g.add_argument("--out", required=True, type=_out_folder,
                   help="output folder (replaced atomically; an existing folder only if podcast-mtl wrote it)")
    g.add_argument("--overwrite", action="store_true", help="replace --out even if podcast-mtl did not write it")
    g.add_argument("--seed", type=_seed, default=default(GeneratorConfig, "seed"), help="generator seed (default %(default)s)")
    for name, flag in (("days", "--days"), ("users", "--users"), ("podcasts", "--podcasts"),
                       ("impressions_per_day", "--impressions-per-day")):
        g.add_argument(flag, type=_positive(flag), default=default(GeneratorConfig, name),
                       help=f"{name.replace('_', ' ')} (default %(default)s)")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run the TFX pipeline locally (generates the default logs if --data is not given)",
                       epilog=presets_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(r, "ROOT")
    r.add_argument("--root", default=DEFAULT_ROOT, help="pipeline outputs, MLMD and serving folder (default %(default)s)")
    _add_pipeline_args(r)
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("ablate", help="train every preset on the same data and report per-source AP",
                       epilog=presets_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(a, "OUT/work")
    a.add_argument("--out", default="runs/ablation", help="reports and the shared pipeline outputs (default %(default)s)")
    a.add_argument("--seeds", type=_positive("--seeds"), default=3, help="training seeds per preset (default %(default)s)")
    a.add_argument("--presets", help=f"comma-separated subset of: {', '.join(PRESETS)} (default: all)")
    _add_tuning_args(a, "tuning trials per preset, the same budget for each (default %(default)s; 0: the "
                        "presets' own hyperparameters, no untuned row)")
    a.set_defaults(func=cmd_ablate)

    c = sub.add_parser("compile", help="write the Vertex AI / Kubeflow Pipelines v2 spec of the same pipeline",
                       epilog=presets_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(c, "ROOT")
    c.add_argument("--target", choices=["vertex", "kubeflow"], default="vertex",
                   help="Vertex AI Pipelines or Kubeflow Pipelines v2: the same PipelineJob spec (default %(default)s)")
    c.add_argument("--image", required=True, help="the project image (built from Dockerfile) that runs every step")
    c.add_argument("--root", required=True, help="pipeline root, serving folder (gs://BUCKET/ROOT)")
    c.add_argument("--out", default="pipeline.json", help="spec file, .json or .yaml (default %(default)s)")
    c.add_argument("--schema-file", help="schema path as the containers see it (default: the copy in the image)")
    _add_pipeline_args(c)
    c.set_defaults(func=cmd_compile)

    s = sub.add_parser("schedule", help="simulate D daily runs as logs arrive one day at a time",
                       epilog=presets_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(s, "ROOT")
    s.add_argument("--days", type=_positive("--days"), required=True, help="daily runs: the newest D days of --data")
    s.add_argument("--root", default="runs/schedule", help="pipeline root, MLMD, landing and serving folders (default %(default)s)")
    _add_pipeline_args(s)
    s.add_argument("--warm-start", action="store_true",
                   help="a day with a pushed model trains from its weights (vocabulary rows matched by token)")
    s.add_argument("--warm-start-steps", type=_positive("--warm-start-steps"),
                   help="training steps of a warm-started day (default: --train-steps or the preset's)")
    s.set_defaults(func=cmd_schedule)

    k = sub.add_parser("convert-kuairand", help="convert KuaiRand-Pure logs to this project's log format")
    k.add_argument("--src", required=True, help="folder with the KuaiRand-Pure log and feature files")
    k.add_argument("--out", required=True, type=_out_folder,
                   help="output folder of the converted logs (an existing folder only if podcast-mtl wrote it)")
    k.add_argument("--overwrite", action="store_true", help="replace --out even if podcast-mtl did not write it")
    k.add_argument("--promotions-tabs", type=_tabs, default=(1,), help="tabs mapped to promotions (default 1)")
    k.add_argument("--ads-tabs", type=_tabs, help="tabs mapped to ads (default: every other tab)")
    k.set_defaults(func=cmd_convert_kuairand)

    from models.batch_score import DEFAULT_BATCH, SIGNATURES
    from study.ab_test import ABConfig

    ab = sub.add_parser("simulate-ab", help="budget-split A/B test of two pushed models on the synthetic world "
                                            "(i2s, eCPS, streams; overall, emerging creators, by popularity)")
    ab.add_argument("--root", help="a `podcast-mtl run` root: control = its in-run promotions_baseline, treatment = "
                                   "its newest pushed model, world = its synthetic logs' generator config")
    ab.add_argument("--control", help="control SavedModel (or serving folder; newest version) (default: from --root)")
    ab.add_argument("--treatment", help="treatment SavedModel (or serving folder) (default: from --root)")
    ab.add_argument("--out", default="runs/ab", type=_out_folder,
                    help="writes ab.json, ab.md, ab.png (default %(default)s)")
    ab.add_argument("--data", help="the synthetic logs the models were trained on: their manifest gives the world's "
                                   "config (default: ROOT/data, else the default world)")
    ab.add_argument("--world-seed", type=_int_in("--world-seed", 0, 2 ** 32, "2**32"),
                    help="world seed (default: the logs' generator seed, else 7); the models must have been "
                         "trained on that world's logs")
    ab.add_argument("--days", type=_positive("--days"), default=default(ABConfig, "days"),
                    help="simulated days: the last D days of the world's window (default %(default)s)")
    ab.add_argument("--repeats", type=_positive("--repeats"), default=default(ABConfig, "repeats"),
                    help="repeats with different user splits, requests and outcomes (default %(default)s)")
    ab.add_argument("--candidates", type=_positive("--candidates"), default=default(ABConfig, "candidates"),
                    help="campaigns retrieved per ad request; all their creatives are scored (default %(default)s)")
    ab.add_argument("--traffic-scale", type=_scale, default=default(ABConfig, "traffic_scale"),
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
    sc.add_argument("--batch-size", type=_positive("--batch-size"), default=DEFAULT_BATCH,
                    help="rows per model call (default %(default)s)")
    sc.set_defaults(func=cmd_score)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pipeline.import_tensorflow_quietly()  # after parsing: --help stays fast
    try:
        return args.func(args)
    except UsageError as e:
        print(f"podcast-mtl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
