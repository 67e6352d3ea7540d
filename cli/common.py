"""What every command shares: the usage error, argument types that name their flag, the argument
groups of the commands that run the DAG, and building a `PipelineConfig` from parsed arguments
with plain constructors."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from typing import Dict, Optional


class UsageError(Exception):
    """Bad arguments or input: one line on stderr, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_in(name: str, low: int, high: Optional[int] = None, high_text: Optional[str] = None):
    """An argparse type: an integer in [low, high) (high None: no upper bound), errors naming the flag
    (and the bound as `high_text` when given, e.g. "2**32")."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if value < low or (high is not None and value >= high):
            bound = f"in [{low}, {high_text or high})" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {value}")
        return value
    return parse


def day_arg(name: str):
    """An argparse type: a calendar day written YYYY-MM-DD exactly (no 2026-1-5, no 2026-02-30)."""
    def parse(text):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise argparse.ArgumentTypeError(f"{name} must be a day written YYYY-MM-DD, got {text!r}")
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text}: no such day")
        return text
    return parse


def refuse_overlap(out_flag: str, out: Optional[str], inputs: Dict[str, Optional[str]], replaces: bool = False) -> None:
    """UsageError when an output is, or is inside, one of the command's inputs (`core.paths.overlap`)."""
    from core.paths import overlap

    problem = overlap(out_flag, out, inputs, replaces) if out else None
    if problem:
        raise UsageError(problem)


def positive(name: str):
    return int_in(name, 1)


def seed_type(name: str = "--seed"):
    return int_in(name, 0, 2 ** 32, "2**32")


def number_in(name: str, low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argparse type: a number between `low` and `high` (each bound included unless open), errors
    naming the flag and the interval, e.g. "--traffic-scale must be a number in (0, 100]"."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")  # compares false with every bound: refused below
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"{name} must be a number in {'(' if low_open else '['}{low:g}, "
                                             f"{high:g}{')' if high_open else ']'}, got {text!r}")
        return value
    return parse


def fraction(name: str):
    return number_in(name, 0, 1, high_open=True)


def source_floor(text):
    """SOURCE=AP, a blessing floor."""
    from core.fields import SOURCES

    source, _, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if source not in SOURCES or number is None or not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"expected SOURCE=AP with SOURCE in {SOURCES} and AP in [0, 1], got {text!r}")
    return source, number


def calibration_band(text):
    """LO,HI or none: checked here, parsed by pipeline_config."""
    from pipeline.configs import parse_calibration_band

    try:
        parse_calibration_band(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    return text


def out_folder(text):
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return text


def writable_root(root: str, flag: str = "--root") -> None:
    """A clear error instead of a traceback when the root cannot be created or written. Folders it
    creates to find out are removed again: a command refused later leaves nothing behind."""
    created = []
    try:
        parent = os.path.abspath(root)
        while not os.path.exists(parent):
            created.append(parent)
            parent = os.path.dirname(parent)
        os.makedirs(root, exist_ok=True)
        probe = os.path.join(root, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"{flag} {root}: cannot write there ({e.strerror or e})")
    finally:
        for folder in created:  # deepest first
            try:
                os.rmdir(folder)
            except OSError:
                pass


def presets_help() -> str:
    from models.config import PRESET_HELP, PRESETS

    return "presets:\n" + "\n".join(f"  {name:<24}{PRESET_HELP[name]}" for name in PRESETS)


def add_data_args(p, root_help: str) -> None:
    """Arguments shared by the commands that run the DAG: logs, split, window, seed."""
    from core.split import TemporalSplit
    from datagen.synthetic import GeneratorConfig
    from pipeline.configs import PipelineConfig, default

    p.add_argument("--data", help=f"day-partitioned impression logs, local or any Beam filesystem path "
                                  f"(default: the synthetic logs, generated under {root_help}/data)")
    p.add_argument("--test-days", type=positive("--test-days"), default=default(TemporalSplit, "test_days"),
                   help="newest days of the window that form the test split (default %(default)s)")
    p.add_argument("--eval-days", type=positive("--eval-days"), default=default(TemporalSplit, "eval_days"),
                   help="days before the test days that form the eval split (default %(default)s)")
    p.add_argument("--window-days", type=positive("--window-days"), default=None,
                   help="read only the newest N day partitions (a rolling window; default: every day)")
    p.add_argument("--end-day", metavar="YYYY-MM-DD", type=day_arg("--end-day"),
                   help="ignore partitions after this day (default: none)")
    p.add_argument("--train-steps", type=positive("--train-steps"),
                   help="training steps (batches) per model (default: the preset's)")
    p.add_argument("--weight-average", type=fraction("--weight-average"),
                   help="momentum of the moving average of the weights that is evaluated and served (Polyak "
                        "averaging; 0: off, e.g. for trainings of a few dozen steps; default: the preset's)")
    p.add_argument("--seed", type=seed_type(), default=default(GeneratorConfig, "seed"),
                   help="seed of the default synthetic logs and of training (default %(default)s)")
    p.add_argument("--max-rejected-rows", type=int_in("--max-rejected-rows", 0),
                   default=default(PipelineConfig, "max_rejected_rows"),
                   help="rows ExampleGen may reject (event_time outside its day partition, a field of the other "
                        "source, NaN) before the gate stops the run (default %(default)s)")


def add_tuning_args(p, trials_help: str) -> None:
    from models.config import TuningConfig
    from pipeline.configs import default

    p.add_argument("--tune-trials", type=int_in("--tune-trials", 0), default=default(TuningConfig, "trials"),
                   help=trials_help)
    p.add_argument("--tune-steps", type=positive("--tune-steps"), default=default(TuningConfig, "steps"),
                   help="training steps per tuning trial (default %(default)s)")


def add_pipeline_args(p) -> None:
    """Options of the commands that build the whole DAG: run, compile, schedule."""
    from models.config import PRESETS
    from pipeline.configs import DEFAULT_AP_FLOORS, DEFAULT_PRESET, PipelineConfig, default

    floors = ", ".join(f"{s}={v}" for s, v in DEFAULT_AP_FLOORS)
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help="model variant to train and push (default %(default)s; see below)")
    p.add_argument("--beam-arg", action="append", metavar="ARG",
                   help="passed to Beam unchanged (repeat), e.g. --beam-arg=--runner=DataflowRunner; "
                        "without a --runner, the local DirectRunner in memory")
    p.add_argument("--serving-dir", help="where blessed models are pushed (default ROOT/serving)")
    p.add_argument("--ap-floor", type=source_floor, action="append", metavar="SOURCE=AP",
                   help=f"blessing floor of a source's test stream AP (repeat; default {floors})")
    p.add_argument("--ap-tolerance", type=fraction("--ap-tolerance"), default=default(PipelineConfig, "ap_tolerance"),
                   help="relative stream AP a candidate may lose against the baseline on each source "
                        "(default %(default)s)")
    p.add_argument("--calibration-band", type=calibration_band, metavar="LO,HI",
                   help="blessing band of each source's mean prediction / mean label on the test split "
                        "(default %s; none: measured, not gated)" % ",".join(
                            str(v) for v in default(PipelineConfig, "calibration_band")))
    add_tuning_args(p, "trials of the Tuner's search on validation AP (default %(default)s; 0: no Tuner, the "
                       "preset's own hyperparameters)")
    p.add_argument("--baseline-model", metavar="DIR",
                   help="the incumbent SavedModel the candidate must match on every source (default: the latest "
                        "model in the serving folder; with none, a promotions baseline trained in the same run)")
    p.add_argument("--bulk-inference", action="store_true",
                   help="also score the test split with the blessed model (TFX BulkInferrer; PredictionLogs "
                        "under ROOT/pipeline/BulkInferrer)")


def pipeline_config(args, root: str):
    """The `PipelineConfig` of a command that runs the DAG, from its parsed arguments (the commands
    have different subsets of the options above: an option a command lacks keeps its default).
    Without --data, the default synthetic logs are generated under the root."""
    from core.split import TemporalSplit
    from datagen.generate import ensure_logs
    from datagen.synthetic import GeneratorConfig
    from models.config import TuningConfig
    from pipeline.configs import DEFAULT_AP_FLOORS, DEFAULT_PRESET, PipelineConfig, multi_processing_min_rows
    from pipeline.run_root import RunRoot

    opts = vars(args)
    data = opts.get("data")
    if data is None:
        data = RunRoot(root).data
        ensure_logs(GeneratorConfig(seed=args.seed), data)
    elif not os.path.isdir(data) and "://" not in data:
        raise UsageError(f"--data {data}: no such folder")
    baseline = opts.get("baseline_model")
    if baseline and "://" not in baseline and not os.path.isdir(baseline):
        raise UsageError(f"--baseline-model {baseline}: no such folder")
    inputs = {"--data": opts.get("data"), "--baseline-model": baseline}
    refuse_overlap("--root", root, inputs)
    refuse_overlap("--serving-dir", opts.get("serving_dir"), inputs)
    end_day = opts.get("end_day")
    if end_day and "://" not in data:
        from core.logs import partition_days

        days = sorted(partition_days(data))
        if days and end_day < days[0]:
            raise UsageError(f"--end-day {end_day} selects no day partition of {data} (the first is {days[0]})")
    given = {name: opts[name] for name in ("ap_tolerance", "max_rejected_rows", "serving_dir", "baseline_model")
             if opts.get(name) is not None}
    if opts.get("calibration_band"):
        from pipeline.configs import parse_calibration_band

        given["calibration_band"] = parse_calibration_band(opts["calibration_band"])
    try:
        multi_processing_min_rows()  # a bad environment setting is a usage error before any work
        split = TemporalSplit(test_days=args.test_days, eval_days=args.eval_days,
                              window_days=opts.get("window_days") or 0, end_day=opts.get("end_day"))
        tuning = TuningConfig(seed=args.seed,
                              **({"trials": opts["tune_trials"]} if opts.get("tune_trials") is not None else {}),
                              **({"steps": opts["tune_steps"]} if opts.get("tune_steps") else {}))
        config = PipelineConfig(data=data, root=root, split=split, tuning=tuning,
                                ap_floor=tuple({**dict(DEFAULT_AP_FLOORS), **dict(opts.get("ap_floor") or ())}.items()),
                                beam_args=tuple(opts.get("beam_arg") or ()),
                                bulk_inference=bool(opts.get("bulk_inference")), **given)
        model_overrides = {"seed": args.seed, **({"train_steps": args.train_steps} if opts.get("train_steps") else {}),
                           **({"weight_average": opts["weight_average"]}
                              if opts.get("weight_average") is not None else {})}
        return config.with_preset(opts.get("preset") or DEFAULT_PRESET, **model_overrides)
    except ValueError as e:
        raise UsageError(str(e))
