"""`podcast-mtl`: generate logs, run the pipeline, run the ablation study, convert KuaiRand."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional

import pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)


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
