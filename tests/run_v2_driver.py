"""Runs TFX's Kubeflow v2 / Vertex file-based ExampleGen driver (the step's pre-cache-check command) on
TemporalExampleGen's own execution properties, as the container would; prints its ExecutorOutput.

Run with the kfp extra's interpreter: `python tests/run_v2_driver.py LOGS OUT_DIR`."""
import json
import subprocess
import sys

from tfx.utils import proto_utils

from components.temporal_example_gen import TemporalExampleGen

logs, out = sys.argv[1], sys.argv[2]
props = {k: v if isinstance(v, (str, int)) else proto_utils.proto_to_json(v)
         for k, v in TemporalExampleGen(input_base=logs).exec_properties.items() if v is not None}
invocation = {
    "inputs": {"parameters": {k: {"stringValue": v} if isinstance(v, str) else {"intValue": str(v)}
                              for k, v in props.items()}},
    "outputs": {"artifacts": {"examples": {"artifacts": [
        {"name": "examples", "type": {"schemaTitle": "tfx.Examples"}, "uri": out + "/examples"}]}},
                "outputFile": out + "/executor_output.json"}}
r = subprocess.run([sys.executable, "-m", "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver",
                    "--json_serialized_invocation_args", json.dumps(invocation)], capture_output=True, text=True)
if r.returncode:
    sys.exit(r.stderr[-3000:])
print(json.dumps(json.load(open(out + "/executor_output.json"))))
