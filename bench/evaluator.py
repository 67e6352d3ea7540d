"""The Evaluator alone, on a finished run's artifacts: wall and CPU seconds, optionally a cProfile.

    python bench/evaluator.py --root runs/default [--schema DIR [--project]] [--overall-slice] [--profile DIR] [--beam-arg ...]

Runs TFX's own Evaluator executor (the component's `Do`, what the DAG runs) on the run root's
test split, the Trainer's model and `baseline_trainer`'s model, with the eval config the DAG
builds today (`evaluation.eval_config.make_eval_config` from the run's model config), writing to
a temporary folder (the run root is only read). Prints wall seconds, process CPU seconds, the
test split's example count, and each source's exact stream AP for both models, so two configs
can be compared on the same numbers. Measured figures: docs/results/performance.md.
"""
import argparse
import cProfile
import glob
import json
import os
import pstats
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def latest(root: str, node: str, key: str) -> str:
    paths = sorted(glob.glob(os.path.join(root, "pipeline", node, key, "*")), key=lambda p: int(os.path.basename(p)))
    if not paths:
        raise SystemExit(f"{root}: no {node} {key} output (run `podcast-mtl run` first)")
    return paths[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="a finished run root (podcast-mtl run --root)")
    ap.add_argument("--profile", help="write a cProfile of the main thread's CPU here")
    ap.add_argument("--beam-arg", action="append", default=[], help="extra Beam pipeline argument")
    ap.add_argument("--schema", help="a folder with schema.pbtxt, given to the Evaluator as its schema input")
    ap.add_argument("--project", action="store_true",
                    help="give the Evaluator --schema with only the evaluation features, as the DAG's gate does")
    ap.add_argument("--overall-slice", action="store_true", help="add the overall slice (the DAG has none)")
    args = ap.parse_args(argv)
    if args.project and not args.schema:
        ap.error("--project projects the --schema folder: give --schema DIR")

    from tfx.components.evaluator.executor import Executor
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils
    import tensorflow_model_analysis as tfma

    from evaluation.eval_config import make_eval_config
    from pipeline.configs import PipelineConfig

    config = PipelineConfig(data="", root=args.root)  # the defaults `podcast-mtl run` evaluates with
    eval_config = make_eval_config(config.model.tasks(), config.floors, config.ap_tolerance,
                                   calibration_band=config.calibration_band)
    if args.overall_slice:
        eval_config.slicing_specs.insert(0, tfma.SlicingSpec())

    def artifact(cls, uri, **props):
        a = cls()
        a.uri = uri
        for k, v in props.items():
            setattr(a, k, v)
        return a

    examples = artifact(standard_artifacts.Examples, latest(args.root, "TemporalExampleGen", "examples"),
                        split_names=json.dumps(["train", "eval", "test"]))
    model = artifact(standard_artifacts.Model, latest(args.root, "Trainer", "model"))
    baseline = artifact(standard_artifacts.Model, latest(args.root, "baseline_trainer", "model"))
    out = tempfile.mkdtemp(prefix="bench-evaluator-")
    evaluation = artifact(standard_artifacts.ModelEvaluation, os.path.join(out, "evaluation"))
    blessing = artifact(standard_artifacts.ModelBlessing, os.path.join(out, "blessing"))
    os.makedirs(evaluation.uri)
    os.makedirs(blessing.uri)
    n_test = sum(1 for _ in __import__("tensorflow").data.TFRecordDataset(
        glob.glob(os.path.join(examples.uri, "Split-test", "*")), compression_type="GZIP"))
    print(f"test split: {n_test:,} examples; {len(eval_config.slicing_specs)} slicing specs, schema "
          f"{args.schema or 'none'}{' (projected)' if args.project else ''}, "
          f"{len(eval_config.metrics_specs)} metrics specs", flush=True)

    executor = Executor(Executor.Context(beam_pipeline_args=list(config.beam_pipeline_args()) + args.beam_arg,
                                         tmp_dir=out))
    exec_properties = {"eval_config": proto_utils.proto_to_json(eval_config), "example_splits": json.dumps(["test"])}
    prof = cProfile.Profile(time.thread_time) if args.profile else None
    t0, c0 = time.time(), cpu_seconds()
    if prof:
        prof.enable()
    inputs = {"examples": [examples], "model": [model], "baseline_model": [baseline]}
    if args.schema:
        schema = args.schema
        if args.project:
            from components.validation_gate.executor import write_projected_schema
            from evaluation.eval_config import evaluation_features

            schema = os.path.join(out, "evaluation_schema")
            write_projected_schema(args.schema, schema, list(evaluation_features(config.model.tasks())))
        inputs["schema"] = [artifact(standard_artifacts.Schema, schema)]
    executor.Do(inputs,
                {"evaluation": [evaluation], "blessing": [blessing]}, exec_properties)
    if prof:
        prof.disable()
        os.makedirs(args.profile, exist_ok=True)
        prof.dump_stats(os.path.join(args.profile, "Evaluator.prof"))
        with open(os.path.join(args.profile, "Evaluator.txt"), "w") as f:
            pstats.Stats(prof, stream=f).sort_stats("cumulative").print_stats(60)
            pstats.Stats(prof, stream=f).sort_stats("tottime").print_stats(40)
    wall, cpu = time.time() - t0, cpu_seconds() - c0
    result = tfma.load_metrics(evaluation.uri)
    aps = {}
    for m in result:
        sk = tfma.slicer.deserialize_slice_key(m.slice_key)
        if len(sk) != 1 or sk[0][0] != "source":
            continue
        for kv in m.metric_keys_and_values:
            k = kv.key
            if k.name == "exact_average_precision" and not k.is_diff:
                aps[(k.model_name, sk[0][1], k.output_name)] = kv.value.double_value.value
    print(f"Evaluator: {wall:.1f} s wall, {cpu:.1f} s CPU ({n_test / wall:,.0f} examples/s); "
          f"blessed: {os.path.exists(os.path.join(blessing.uri, 'BLESSED'))}")
    for (model_name, source, head), v in sorted(aps.items()):
        if head.endswith("_stream"):
            print(f"  {model_name:9s} {source!s:10s} {head:12s} AP {v:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
