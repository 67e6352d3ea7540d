"""`podcast-mtl`, the command line of this pipeline: generate logs, run the pipeline, run the ablation
study, convert KuaiRand, score logs with a pushed model. `podcast-mtl run --help` explains the
model presets.

One module per command group: `pipeline_commands` (run, compile, schedule), `data_commands`
(generate, convert-kuairand), `study_commands` (ablate, simulate-ab, score); `common` holds the
argument types and builds the pipeline's config from the arguments.
"""
from __future__ import annotations

import contextlib
import sys
from typing import List, Optional

import core.env  # noqa: F401  (the Keras switch, before TensorFlow loads)
from cli import data_commands, pipeline_commands, study_commands
from cli.common import Parser, UsageError

__all__ = ["build_parser", "main", "UsageError"]
BEAM_COMMANDS = {"run", "schedule", "ablate"}


def build_parser() -> Parser:
    parser = Parser(prog="podcast-mtl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    data_commands.add_parsers(sub)
    pipeline_commands.add_parsers(sub)
    study_commands.add_parsers(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    core.env.import_tensorflow_quietly()  # after parsing: --help stays fast
    # the commands that run Beam pipelines: the DirectRunner's worker processes (multi_processing, on
    # large logs) print their own TensorFlow import noise; every other line of stderr passes as it comes
    quiet = core.env.streaming_filtered_stderr() if args.command in BEAM_COMMANDS else contextlib.nullcontext()
    with quiet:
        try:
            return args.func(args)
        except UsageError as e:
            print(f"podcast-mtl {args.command}: error: {e}", file=sys.stderr)
            return 2
