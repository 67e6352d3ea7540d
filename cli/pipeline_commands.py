"""`run` (the DAG on this machine), `compile` (the same DAG for Vertex AI / Kubeflow Pipelines v2)
and `schedule` (daily runs as the logs arrive)."""
from __future__ import annotations

import argparse
import os

from cli.common import (UsageError, add_data_args, add_pipeline_args, pipeline_config, positive, presets_help,
                        refuse_overlap, writable_root)


def cmd_run(args) -> int:
    from pipeline.local_runner import RootBusy, format_summary, run_pipeline
    from pipeline.run_root import RunRoot

    writable_root(args.root)
    config = pipeline_config(args, args.root)
    print(f"running {config.name} (preset {config.preset_name}, {config.model.mix_description()}) on {config.data}; "
          f"outputs in {config.root}", flush=True)
    try:
        summary = run_pipeline(config)
    except (RootBusy, ValueError) as e:  # a busy root; a baseline model that is not a SavedModel
        raise UsageError(str(e))
    print(format_summary(summary))
    root = RunRoot(config.root)
    print(f"summary: {root.summary}")
    if os.path.exists(root.report_html):
        print(f"report: {root.report_html} (self-contained; plain text: {root.report_md})")
    else:
        print(f"report: {root.report_md}")
    print(f"TensorBoard: tensorboard --logdir {root.path}")
    return 1 if summary.failed else 0


def cmd_compile(args) -> int:
    """The PipelineJob spec for Vertex AI / Kubeflow Pipelines v2 (needs the kfp extra)."""
    if not args.data:
        raise UsageError("--data is required: the logs' path as the pipeline's containers see it (gs://...)")
    try:
        from kfp.pipeline_spec import pipeline_spec_pb2  # noqa: F401  (TFX's v2 compiler needs it)

        from pipeline.kubeflow_v2_runner import compile_pipeline, step_images
    except ImportError as e:
        raise UsageError(f"compiling needs the kfp extra (make setup-kfp, or "
                         f"pip install -c constraints-kfp.txt -e '.[kfp]'): {e}")
    refuse_overlap("--out", args.out, {"--data": args.data, "--schema-file": args.schema_file})
    config = pipeline_config(args, args.root)
    job = compile_pipeline(config, args.image, args.out, schema_file=args.schema_file)
    steps = step_images(job)
    print(f"wrote {args.out}: {len(steps)} container steps, image {args.image}; pipeline root {config.pipeline_root}")
    return 0


def cmd_schedule(args) -> int:
    """D consecutive daily runs as the logs arrive one day at a time (LocalDagRunner)."""
    from pipeline.local_runner import RootBusy
    from pipeline.run_root import RunRoot
    from pipeline.schedule import run_schedule

    if not args.data:
        raise UsageError("--data is required: the folder the daily partitions arrive from")
    config = pipeline_config(args, args.root)
    print(f"schedule: {args.days} daily runs of {config.name} on {config.data} "
          f"(window {config.split.window_days or 'all'} days); outputs in {config.root}", flush=True)
    try:
        report = run_schedule(config, args.days, warm_start=args.warm_start, warm_start_steps=args.warm_start_steps)
    except (RootBusy, ValueError) as e:
        raise UsageError(str(e))
    print(f"schedule: {RunRoot(config.root).schedule}")
    return 0 if report and not report[-1]["failed"] else 1


def add_parsers(sub) -> None:
    from pipeline.configs import DEFAULT_ROOT

    epilog = dict(epilog=presets_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    r = sub.add_parser("run", help="run the TFX pipeline locally (generates the default logs if --data is not given)",
                       **epilog)
    add_data_args(r, "ROOT")
    r.add_argument("--root", default=DEFAULT_ROOT, help="pipeline outputs, MLMD and serving folder (default %(default)s)")
    add_pipeline_args(r)
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("compile", help="write the PipelineJob spec of the same pipeline for Vertex AI Pipelines or "
                                       "Kubeflow Pipelines v2 (one spec serves both)", **epilog)
    add_data_args(c, "ROOT")
    c.add_argument("--image", required=True, help="the project image (built from Dockerfile) that runs every step")
    c.add_argument("--root", required=True, help="pipeline root, serving folder (gs://BUCKET/ROOT)")
    c.add_argument("--out", default="pipeline.json", help="spec file, .json or .yaml (default %(default)s)")
    c.add_argument("--schema-file", help="schema path as the containers see it (default: the copy in the image)")
    add_pipeline_args(c)
    c.set_defaults(func=cmd_compile)

    s = sub.add_parser("schedule", help="simulate D daily runs as logs arrive one day at a time", **epilog)
    add_data_args(s, "ROOT")
    s.add_argument("--days", type=positive("--days"), required=True, help="daily runs: the newest D days of --data")
    s.add_argument("--root", default="runs/schedule",
                   help="pipeline root, MLMD, landing and serving folders (default %(default)s)")
    add_pipeline_args(s)
    s.add_argument("--warm-start", action="store_true",
                   help="a day with a pushed model trains from its weights (vocabulary rows matched by token)")
    s.add_argument("--warm-start-steps", type=positive("--warm-start-steps"),
                   help="training steps of a warm-started day (default: --train-steps or the preset's)")
    s.set_defaults(func=cmd_schedule)
