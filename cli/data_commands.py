"""`generate` (synthetic logs with known true probabilities) and `convert-kuairand` (real logs)."""
from __future__ import annotations

import argparse
import json
import time

from cli.common import UsageError, number_in, out_folder, positive, seed_type


def cmd_generate(args) -> int:
    from datagen.generate import generate_logs
    from datagen.synthetic import GeneratorConfig

    cfg = GeneratorConfig(seed=args.seed, days=args.days, users=args.users, podcasts=args.podcasts,
                          impressions_per_day=args.impressions_per_day, ads_scale=args.ads_scale)
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


def ads_scale_type(text):
    from datagen.world import MAX_ADS_SCALE

    return number_in("--ads-scale", 0, MAX_ADS_SCALE, low_open=True)(text)


def tabs(text):
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated tab numbers, got {text!r}")


def cmd_convert_kuairand(args) -> int:
    from core.logs import NotOurFolder, read_logs
    from datagen.kuairand import InputError, convert_to_logs
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


def add_parsers(sub) -> None:
    from datagen.synthetic import GeneratorConfig
    from pipeline.configs import default

    g = sub.add_parser("generate", help="write synthetic impression logs with known true probabilities")
    g.add_argument("--out", required=True, type=out_folder,
                   help="output folder (replaced atomically; an existing folder only if podcast-mtl wrote it)")
    g.add_argument("--overwrite", action="store_true", help="replace --out even if podcast-mtl did not write it")
    g.add_argument("--seed", type=seed_type(), default=default(GeneratorConfig, "seed"),
                   help="generator seed (default %(default)s)")
    for name, flag in (("days", "--days"), ("users", "--users"), ("podcasts", "--podcasts"),
                       ("impressions_per_day", "--impressions-per-day")):
        g.add_argument(flag, type=positive(flag), default=default(GeneratorConfig, name),
                       help=f"{name.replace('_', ' ')} (default %(default)s)")
    g.add_argument("--ads-scale", type=ads_scale_type, default=default(GeneratorConfig, "ads_scale"),
                   help="logged ad volume x this; the world and the logged promotions unchanged (default %(default)s: "
                        "the default world exactly)")
    g.set_defaults(func=cmd_generate)

    k = sub.add_parser("convert-kuairand", help="convert KuaiRand-Pure logs to this project's log format")
    k.add_argument("--src", required=True, help="folder with the KuaiRand-Pure log and feature files")
    k.add_argument("--out", required=True, type=out_folder,
                   help="output folder of the converted logs (an existing folder only if podcast-mtl wrote it)")
    k.add_argument("--overwrite", action="store_true", help="replace --out even if podcast-mtl did not write it")
    k.add_argument("--promotions-tabs", type=tabs, default=(1,), help="tabs mapped to promotions (default 1)")
    k.add_argument("--ads-tabs", type=tabs, help="tabs mapped to ads (default: every other tab)")
    k.set_defaults(func=cmd_convert_kuairand)
