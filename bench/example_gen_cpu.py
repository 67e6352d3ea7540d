"""CPU seconds of TemporalExampleGen's executor alone: its own `Do` (rows written by the reading step)
against the base ExampleGen `Do` (GenerateExamplesByBeam + Reshuffle + WriteToTFRecord), same logs.

    python bench/example_gen_cpu.py --data LOGS --out DIR
"""
import argparse
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from components.temporal_example_gen.component import executor_properties  # noqa: E402
from components.temporal_example_gen.executor import Executor  # noqa: E402
from core.split import TemporalSplit  # noqa: E402


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(data, uri, do):
    examples = standard_artifacts.Examples()
    examples.uri = uri
    props = executor_properties(data, TemporalSplit())
    t0, c0 = time.perf_counter(), cpu()
    do(Executor(), {}, {"examples": [examples]}, props)
    return time.perf_counter() - t0, cpu() - c0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    for name, do in (("base Do (Reshuffle + WriteToTFRecord)", BaseExampleGenExecutor.Do),
                     ("TemporalExampleGen Do (written by the reading step)", Executor.Do)):
        load = os.getloadavg()
        wall, used = run(args.data, os.path.join(args.out, name.split()[0]), do)
        print(f"{name}: {wall:.1f} s wall, {used:.1f} s CPU (load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
              flush=True)


if __name__ == "__main__":
    main()
