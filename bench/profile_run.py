"""Where a pipeline run's time goes: wall and CPU seconds per component, optionally a cProfile each.

    python bench/profile_run.py --data LOGS --root runs/prof-1 [--profile DIR] [--beam-arg ...]

Runs the whole DAG (`run_pipeline`) like `podcast-mtl run`, and beside it records, per
component, the wall seconds and the process CPU seconds (user + system of every thread of this
process, `resource.getrusage`; with the in-memory DirectRunner all Beam work happens in this
process). With --profile, a cProfile of the main thread (its CPU time) per component goes to
DIR/<component>.prof
and its top functions by cumulative time to DIR/<component>.txt. Prints the table and the load
averages at start and end (the machine is shared: compare CPU seconds, not wall seconds).
"""
import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import re
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)  # multi_processing workers, once reaped
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


class ComponentClock(logging.Handler):
    def __init__(self, profile_dir=None):
        super().__init__(logging.INFO)
        self.rows, self.open, self.profile_dir, self.prof = {}, {}, profile_dir, None

    def emit(self, record):
        msg = record.getMessage()
        if m := _RUNNING.match(msg):
            self.open[m.group(1)] = (time.time(), cpu_seconds())
            if self.profile_dir:
                self.prof = cProfile.Profile(time.thread_time)  # CPU of the main thread, not wall
                self.prof.enable()
        elif m := _FINISHED.match(msg):
            name = m.group(1)
            if self.prof is not None:
                self.prof.disable()
                self.prof.dump_stats(os.path.join(self.profile_dir, f"{name}.prof"))
                s = io.StringIO()
                pstats.Stats(self.prof, stream=s).sort_stats("cumulative").print_stats(60)
                pstats.Stats(self.prof, stream=s).sort_stats("tottime").print_stats(40)
                with open(os.path.join(self.profile_dir, f"{name}.txt"), "w") as f:
                    f.write(s.getvalue())
                self.prof = None
            w0, c0 = self.open.pop(name, (time.time(), cpu_seconds()))
            self.rows[name] = {"wall_s": round(time.time() - w0, 1), "cpu_s": round(cpu_seconds() - c0, 1)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--profile", default=None, help="folder for one cProfile per component")
    p.add_argument("--beam-arg", action="append", default=[])
    p.add_argument("--train-steps", type=int, default=None)
    p.add_argument("run_args", nargs=argparse.REMAINDER,
                   help="after --: more `podcast-mtl run` options (e.g. -- --tune-trials 0)")
    args = p.parse_args()

    from cli import build_parser
    from cli.common import pipeline_config
    from pipeline.local_runner import run_pipeline

    cli = ["run", "--data", args.data, "--root", args.root] + [f"--beam-arg={a}" for a in args.beam_arg]
    if args.train_steps:
        cli += ["--train-steps", str(args.train_steps)]
    cli += [a for a in args.run_args if a != "--"]
    ns = build_parser().parse_args(cli)
    config = pipeline_config(ns, args.root)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    clock = ComponentClock(args.profile)
    load0 = os.getloadavg()
    t0, c0 = time.time(), cpu_seconds()
    import pipeline.local_runner as lr
    orig = lr.log_to_file

    def log_and_clock(root):  # run_dag resets the root logger's handlers: add ours after it
        path = orig(root)
        logging.getLogger().addHandler(clock)
        return path

    lr.log_to_file = log_and_clock
    summary = run_pipeline(config)
    wall, cpu = time.time() - t0, cpu_seconds() - c0
    load1 = os.getloadavg()
    print(f"\n{'component':<32}{'wall s':>10}{'cpu s':>10}")
    for name, r in clock.rows.items():
        print(f"{name:<32}{r['wall_s']:>10.1f}{r['cpu_s']:>10.1f}")
    print(f"{'total':<32}{wall:>10.1f}{cpu:>10.1f}")
    print(f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"blessed={summary.blessed} ap={json.dumps(summary.ap)}")
    with open(os.path.join(args.root, "profile.json"), "w") as f:
        json.dump({"components": clock.rows, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                   "load_start": load0, "load_end": load1, "beam_args": args.beam_arg,
                   "summary_components": summary.components, "ap": summary.ap,
                   "blessed": summary.blessed}, f, indent=1)
    return 0 if not summary.failed else 1


if __name__ == "__main__":
    sys.exit(main())
