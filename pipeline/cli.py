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

DEFAULT_ROOT = "runs/default"


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
    from models.features import SOURCES

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


def _pipeline_config(args):
    from components.temporal_example_gen import TemporalSplit
    from datagen.generate import ensure_logs
    from datagen.synthetic import GeneratorConfig
    from pipeline.configs import DEFAULT_BEAM_ARGS, PipelineConfig

    data = args.data
    if data is None:
        data = os.path.join(args.root, "data")
        ensure_logs(GeneratorConfig(seed=args.seed), data)
    elif not os.path.isdir(data) and "://" not in data:
        raise UsageError(f"--data {data}: no such folder")
    config = PipelineConfig(data=data, root=args.root, serving_dir=args.serving_dir,
                            split=TemporalSplit(test_days=args.test_days, eval_days=args.eval_days),
                            beam_args=tuple(DEFAULT_BEAM_ARGS) + tuple(args.beam_arg or ()))
    if getattr(args, "ap_floor", None):
        config = config.replace(ap_floor=tuple({**config.floors, **dict(args.ap_floor)}.items()))
    overrides = {"seed": args.seed}
    if args.train_steps:
        overrides["train_steps"] = args.train_steps
    return config.with_preset(args.preset, **overrides)


def cmd_run(args) -> int:
    from pipeline.local_runner import format_summary, run_pipeline

    config = _pipeline_config(args)
    print(f"running {config.name} (preset {config.preset_name}) on {config.data}; outputs in {config.root}",
          flush=True)
    summary = run_pipeline(config)
    print(format_summary(summary))
    print(f"summary: {os.path.join(config.root, 'summary.json')}")
    return 1 if summary["failed"] else 0


def cmd_ablate(args) -> int:
    from evaluation.ablation import run_ablation
    from models.config import PRESETS

    presets = [p.strip() for p in args.presets.split(",") if p.strip()] if args.presets else list(PRESETS)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise UsageError(f"--presets: unknown {', '.join(unknown)}; presets are {', '.join(PRESETS)}")
    args.root = os.path.join(args.out, "work")
    config = _pipeline_config(args)
    overrides = {}
    if args.train_steps:
        overrides["train_steps"] = args.train_steps
    t0 = time.time()
    print(f"ablation: {len(presets)} presets x {args.seeds} seeds on {config.data}; reports in {args.out}", flush=True)
    table = run_ablation(config, presets, args.seeds, args.out, overrides)
    from evaluation.tables import ablation_markdown

    print(ablation_markdown(table))
    print(f"wrote ablation.* and cold_start.* to {args.out} in {time.time() - t0:.0f} s")
    return 0


def _tabs(text):
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated tab numbers, got {text!r}")


def cmd_convert_kuairand(args) -> int:
    from datagen.kuairand import InputError, convert_to_logs
    from datagen.logs import read_logs
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="podcast-mtl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="write synthetic impression logs with known true probabilities")
    g.add_argument("--out", required=True, type=_out_folder, help="output folder (replaced atomically)")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--days", type=_positive("--days"), default=28)
    g.add_argument("--users", type=_positive("--users"), default=20000)
    g.add_argument("--podcasts", type=_positive("--podcasts"), default=3000)
    g.add_argument("--impressions-per-day", type=_positive("--impressions-per-day"), default=18000)
    g.set_defaults(func=cmd_generate)

    from models.config import PRESETS

    r = sub.add_parser("run", help="run the TFX pipeline locally (generates the default logs if --data is not given)")
    r.add_argument("--data", help="day-partitioned impression logs (default: synthetic logs under ROOT/data)")
    r.add_argument("--root", default=DEFAULT_ROOT, help=f"pipeline outputs, MLMD and serving folder ({DEFAULT_ROOT})")
    r.add_argument("--preset", default="unified", choices=sorted(PRESETS))
    r.add_argument("--beam-arg", action="append", metavar="ARG",
                   help="passed to Beam unchanged (repeat), e.g. --beam-arg=--runner=DataflowRunner")
    r.add_argument("--serving-dir", help="where blessed models are pushed (default ROOT/serving)")
    r.add_argument("--ap-floor", type=_floor, action="append", metavar="SOURCE=AP",
                   help="blessing floor of a source's test stream AP (default promotions=0.08, ads=0.04)")
    r.add_argument("--train-steps", type=_positive("--train-steps"))
    r.add_argument("--test-days", type=_positive("--test-days"), default=5)
    r.add_argument("--eval-days", type=_positive("--eval-days"), default=3)
    r.add_argument("--seed", type=int, default=7, help="seed of the default logs and of training")
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("ablate", help="train every preset on the same data and report per-source AP")
    a.add_argument("--data", help="day-partitioned impression logs (default: synthetic logs under OUT/work/data)")
    a.add_argument("--out", default="runs/ablation", help="reports and the shared pipeline outputs")
    a.add_argument("--seeds", type=_positive("--seeds"), default=3)
    a.add_argument("--presets", help=f"comma-separated subset of: {', '.join(PRESETS)}")
    a.add_argument("--train-steps", type=_positive("--train-steps"))
    a.add_argument("--test-days", type=_positive("--test-days"), default=5)
    a.add_argument("--eval-days", type=_positive("--eval-days"), default=3)
    a.add_argument("--seed", type=int, default=7, help="seed of the default synthetic logs")
    a.set_defaults(func=cmd_ablate, beam_arg=None, serving_dir=None, preset="unified")

    k = sub.add_parser("convert-kuairand", help="convert KuaiRand-Pure logs to this project's log format")
    k.add_argument("--src", required=True, help="folder with the KuaiRand-Pure log and feature files")
    k.add_argument("--out", required=True, type=_out_folder)
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
