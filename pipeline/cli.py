"""`podcast-mtl`: generate logs, run the pipeline, run the ablation study, convert KuaiRand."""
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


def _positive(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {value}")
        return value
    return parse


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
    summary = generate_logs(cfg, args.out, verbose=True)
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
    try:
        return PipelineConfig.from_args(args, data=data, root=root)
    except ValueError as e:
        raise UsageError(str(e))


def cmd_run(args) -> int:
    from pipeline.local_runner import format_summary, run_pipeline

    config = _pipeline_config(args, args.root)
    print(f"running {config.name} (preset {config.preset_name}) on {config.data}; outputs in {config.root}",
          flush=True)
    summary = run_pipeline(config)
    print(format_summary(summary))
    print(f"summary: {os.path.join(config.root, 'summary.json')}")
    return 1 if summary["failed"] else 0


def cmd_ablate(args) -> int:
    from study.ablation import run_ablation
    from models.config import PRESETS

    presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else list(PRESETS)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise UsageError(f"--presets: unknown {', '.join(unknown)}; presets are {', '.join(PRESETS)}")
    from pipeline.local_runner import run_data_pipeline

    config = _pipeline_config(args, os.path.join(args.out, "work"))
    t0 = time.time()
    print(f"ablation: {len(presets)} presets x {args.seeds} seeds on {config.data}; reports in {args.out}", flush=True)
    print(f"ExampleGen .. Transform on {config.data} (cached when unchanged) ...", flush=True)
    data = run_data_pipeline(config)
    overrides = {"train_steps": args.train_steps} if args.train_steps else {}
    table = run_ablation(data, config.data, config.split, presets, args.seeds, args.out, overrides)
    from study.tables import ablation_markdown

    print(ablation_markdown(table))
    print(f"wrote ablation.* and cold_start.* to {args.out} in {time.time() - t0:.0f} s")
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
    from core.logs import read_logs
    from datagen.summary import format_summary, summarize

    t0 = time.time()
    try:
        stats = convert_to_logs(args.src, args.out, args.promotions_tabs, args.ads_tabs)
    except InputError as e:
        raise UsageError(str(e))
    print(json.dumps(stats, indent=1))
    print(format_summary(summarize(read_logs(args.out))))
    print(f"wrote {stats['rows']:,} impressions to {args.out} in {time.time() - t0:.1f} s "
          f"(KuaiRand, CC BY-SA 4.0: derived logs carry the same licence)")
    return 0


def _seed(text):
    value = _integer("--seed")(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"--seed must be in [0, 2**32), got {value}")
    return value


def _integer(name):
    def parse(text):
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
    return parse


def _add_data_args(p, root_help: str) -> None:
    """Arguments shared by the commands that run the DAG: logs, split, window, seed."""
    from core.split import TemporalSplit
    from datagen.synthetic import GeneratorConfig
    from pipeline.configs import default

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


def build_parser() -> argparse.ArgumentParser:
    from datagen.synthetic import GeneratorConfig
    from models.config import PRESET_HELP, PRESETS
    from pipeline.configs import DEFAULT_AP_FLOORS, DEFAULT_PRESET, DEFAULT_ROOT, default

    presets_help = "presets:\n" + "\n".join(f"  {name:<24}{PRESET_HELP[name]}" for name in PRESETS)
    parser = _Parser(prog="podcast-mtl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="write synthetic impression logs with known true probabilities")
    g.add_argument("--out", required=True, type=_out_folder, help="output folder (replaced atomically)")
    g.add_argument("--seed", type=_seed, default=default(GeneratorConfig, "seed"), help="generator seed (default %(default)s)")
    for name, flag in (("days", "--days"), ("users", "--users"), ("podcasts", "--podcasts"),
                       ("impressions_per_day", "--impressions-per-day")):
        g.add_argument(flag, type=_positive(flag), default=default(GeneratorConfig, name),
                       help=f"{name.replace('_', ' ')} (default %(default)s)")
    g.set_defaults(func=cmd_generate)

    floors = ", ".join(f"{s}={v}" for s, v in DEFAULT_AP_FLOORS)
    r = sub.add_parser("run", help="run the TFX pipeline locally (generates the default logs if --data is not given)",
                       epilog=presets_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(r, "ROOT")
    r.add_argument("--root", default=DEFAULT_ROOT, help="pipeline outputs, MLMD and serving folder (default %(default)s)")
    r.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help="model variant to train and push (default %(default)s; see below)")
    r.add_argument("--beam-arg", action="append", metavar="ARG",
                   help="passed to Beam unchanged (repeat), e.g. --beam-arg=--runner=DataflowRunner; "
                        "without a --runner, the local DirectRunner in memory")
    r.add_argument("--serving-dir", help="where blessed models are pushed (default ROOT/serving)")
    r.add_argument("--ap-floor", type=_floor, action="append", metavar="SOURCE=AP",
                   help=f"blessing floor of a source's test stream AP (repeat; default {floors})")
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("ablate", help="train every preset on the same data and report per-source AP",
                       epilog=presets_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(a, "OUT/work")
    a.add_argument("--out", default="runs/ablation", help="reports and the shared pipeline outputs (default %(default)s)")
    a.add_argument("--seeds", type=_positive("--seeds"), default=3, help="training seeds per preset (default %(default)s)")
    a.add_argument("--presets", help=f"comma-separated subset of: {', '.join(PRESETS)} (default: all)")
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
    c.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="model variant (default %(default)s)")
    c.add_argument("--beam-arg", action="append", metavar="ARG",
                   help="passed to Beam (repeat); with --runner=DataflowRunner, --setup_file of the image is added")
    c.add_argument("--serving-dir", help="where blessed models are pushed (default ROOT/serving)")
    c.add_argument("--ap-floor", type=_floor, action="append", metavar="SOURCE=AP", help="blessing floor (repeat)")
    c.set_defaults(func=cmd_compile)

    s = sub.add_parser("schedule", help="simulate D daily runs as logs arrive one day at a time",
                       epilog=presets_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(s, "ROOT")
    s.add_argument("--days", type=_positive("--days"), required=True, help="daily runs: the newest D days of --data")
    s.add_argument("--root", default="runs/schedule", help="pipeline root, MLMD, landing and serving folders (default %(default)s)")
    s.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="model variant (default %(default)s)")
    s.add_argument("--beam-arg", action="append", metavar="ARG", help="passed to Beam unchanged (repeat)")
    s.add_argument("--serving-dir", help="where blessed models are pushed (default ROOT/serving)")
    s.add_argument("--ap-floor", type=_floor, action="append", metavar="SOURCE=AP", help="blessing floor (repeat)")
    s.add_argument("--warm-start", action="store_true",
                   help="a day with a pushed model trains from its weights (vocabulary rows matched by token)")
    s.add_argument("--warm-start-steps", type=_positive("--warm-start-steps"),
                   help="training steps of a warm-started day (default: --train-steps or the preset's)")
    s.set_defaults(func=cmd_schedule)

    k = sub.add_parser("convert-kuairand", help="convert KuaiRand-Pure logs to this project's log format")
    k.add_argument("--src", required=True, help="folder with the KuaiRand-Pure log and feature files")
    k.add_argument("--out", required=True, type=_out_folder, help="output folder of the converted logs")
    k.add_argument("--promotions-tabs", type=_tabs, default=(1,), help="tabs mapped to promotions (default 1)")
    k.add_argument("--ads-tabs", type=_tabs, help="tabs mapped to ads (default: every other tab)")
    k.set_defaults(func=cmd_convert_kuairand)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"podcast-mtl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
