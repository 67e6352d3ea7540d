"""Loads a compiled PipelineJob JSON with kfp's own pipeline-spec parser; prints facts as JSON.

Run with the kfp extra's interpreter: `python tests/check_pipeline_spec.py pipeline.json`."""
import importlib
import json
import sys

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

job = pipeline_spec_pb2.PipelineJob()
with open(sys.argv[1]) as f:
    json_format.Parse(f.read(), job)  # strict: unknown fields raise
spec = pipeline_spec_pb2.PipelineSpec()
json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec), spec)  # the Struct is a valid PipelineSpec
deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec), deployment)

steps, importable = {}, {}
for label, executor in deployment.executors.items():
    if not executor.HasField("container"):
        continue
    c = executor.container
    args = list(c.args)
    steps[label] = {"image": c.image, "command": list(c.command), "args": args,
                    "pre_cache_check": list(c.lifecycle.pre_cache_check.command)}
    modules = [c.command[-1]] if c.command else []
    if c.lifecycle.pre_cache_check.command:
        modules.append(c.lifecycle.pre_cache_check.command[-1])
    if "--executor_class_path" in args:
        modules.append(args[args.index("--executor_class_path") + 1].rsplit(".", 1)[0])
    for m in modules:  # every entry point the spec names must import in this environment
        try:
            importlib.import_module(m)
            importable[m] = True
        except Exception as e:  # noqa: BLE001
            importable[m] = f"{type(e).__name__}: {e}"
resolvers = {label: {k: q.filter for k, q in e.resolver.output_artifact_queries.items()}
             for label, e in deployment.executors.items() if e.HasField("resolver")}
task_inputs = {name: {k: a.task_output_artifact.producer_task for k, a in t.inputs.artifacts.items()}
               for name, t in spec.root.dag.tasks.items()}
tasks = list(spec.root.dag.tasks)
print(json.dumps({"name": spec.pipeline_info.name, "schema_version": spec.schema_version, "tasks": tasks,
                  "steps": steps, "importable": importable, "resolvers": resolvers, "task_inputs": task_inputs,
                  "pipeline_root": job.runtime_config.gcs_output_directory,
                  "spec_text": json.dumps(json_format.MessageToDict(spec))}))
