"""Fault matrix, third round (issue 23): the day that failed is the day quarantined, no command
writes over what it reads, every input refused by name, `score` and `convert-kuairand` as strict
as `run`. Cheap: no pipeline run (the ExampleGen executor, the CLI's argument checks, small
SavedModels); the two pipeline-level cases are in test_runs.py and tests/test_schedule.py."""
import glob
import json
import math
import os
import shutil
import stat

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli import main
from core.split import SPLITS, TemporalSplit
from tests.reliability.conftest import cli, cli_background, day_files, kill_group, wait_for


def _run_main(capsys, *argv):
    rc = main(list(argv))
    err = capsys.readouterr().err
    return rc, err


def _one_line(err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def _tiny_model(path, input_name="source", dtype=None, variables=True):
    """A real SavedModel with a `serving_raw` signature taking one input."""
    import tensorflow as tf

    class M(tf.Module):
        def __init__(self):
            self.v = tf.Variable(tf.ones([2000]))

        @tf.function(input_signature=[tf.TensorSpec([None], dtype or tf.string, name=input_name)])
        def raw(self, x):
            return {"p": tf.zeros(tf.shape(x)[:1]) + self.v[0]}

    m = M()
    tf.saved_model.save(m, path, signatures={"serving_raw": m.raw.get_concrete_function()})
    if not variables:
        shutil.rmtree(os.path.join(path, "variables"))
    return path


# --- case 1: the gate names the day; the schedule quarantines exactly that day

def test_an_older_day_breaking_the_schema_is_the_day_named(tiny_logs, tmp_path):
    from tfx.types import standard_artifacts

    from components.temporal_example_gen.component import executor_properties
    from components.temporal_example_gen.executor import Executor
    from components.validation_gate.executor import bad_days_in, bad_days_line, day_anomalies
    from core.row_report import RowReport
    from schemas import SCHEMA_DIR

    data = str(tmp_path / "logs")
    shutil.copytree(tiny_logs, data)
    victim = day_files(data)[1]  # an old (train) day, not the newest
    bad_day = os.path.basename(os.path.dirname(victim))[len("date="):]
    pq.write_table(pq.read_table(victim).drop(["podcast_id"]), victim)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    Executor().Do({}, {"examples": [examples]}, executor_properties(data, TemporalSplit(test_days=2, eval_days=2)))
    report = RowReport.read(examples.uri)
    assert report.rows_rejected == 0  # a schema problem, not a row problem: only TFDV sees it
    by_day = day_anomalies(examples.uri, list(SPLITS), SCHEMA_DIR, report, features={"podcast_id"})
    assert list(by_day) == [bad_day], by_day
    assert victim in by_day[bad_day][0] and "feature 'podcast_id'" in by_day[bad_day][0]
    assert bad_days_in("validation gate: ...\n  x\n  " + bad_days_line([bad_day])) == [bad_day]


def test_the_schedule_quarantines_the_days_the_gate_names_not_today():
    from components.validation_gate.executor import bad_days_line
    from pipeline.schedule import days_to_quarantine

    landed = ["2026-01-05", "2026-01-06", "2026-01-07"]
    gate = ("stopped at ValidationGate: DataValidationError: validation gate: ...\n  day 2026-01-05 (...): feature "
            "'podcast_id': Column dropped\n  " + bad_days_line(["2026-01-05"]))
    assert days_to_quarantine(gate, None, landed) == ["2026-01-05"]  # today (01-07) was good: kept
    # a gate failure that names no day (e.g. no positive label in a split) quarantines nothing
    assert days_to_quarantine("stopped at ValidationGate: split 'test' has no positive", None, landed) == []
    assert days_to_quarantine("stopped at TemporalExampleGen ingesting 2026-01-06: ...", "2026-01-06",
                              landed) == ["2026-01-06"]


def test_gate_lines_name_file_and_day():
    from components.validation_gate.executor import describe_report
    from core.row_report import RowReport

    report = RowReport(rows_read=10, rows_rejected=2, rejected={"r": 2},
                       rejected_by_file={"/l/date=2026-01-05/impressions.parquet": {"r": 2}},
                       duplicate_rows=4, duplicates_by_file={"/l/date=2026-01-06/impressions.parquet": 4})
    text = "\n".join(describe_report(report))
    assert "file /l/date=2026-01-05/impressions.parquet (day 2026-01-05): 2 rows: r" in text
    assert "file /l/date=2026-01-06/impressions.parquet (day 2026-01-06): 4 rows with a repeated" in text


# --- case 2 and every writing command: an output is never one of its inputs

def test_score_out_naming_its_own_input_is_refused_and_the_input_kept(tiny_logs, tmp_path, capsys):
    data = str(tmp_path / "logs")
    shutil.copytree(tiny_logs, data)
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    victim = day_files(data)[0]
    before = open(victim, "rb").read()
    rc, err = _run_main(capsys, "score", "--model", str(model), "--data", data, "--out", victim)
    assert rc == 2 and "is inside --data" in _one_line(err) and "refusing to write over an input" in err
    assert open(victim, "rb").read() == before
    rc, err = _run_main(capsys, "score", "--model", str(model), "--data", data, "--out", str(model / "s.parquet"))
    assert rc == 2 and "is inside --model" in _one_line(err)


@pytest.mark.parametrize("argv, message", [
    (["run", "--data", "{logs}", "--root", "{logs}/root"], "--root {logs}/root is inside --data {logs}"),
    (["run", "--data", "{logs}", "--root", "{tmp}/r", "--serving-dir", "{logs}"], "--serving-dir {logs} is --data"),
    (["convert-kuairand", "--src", "{tmp}/k/src", "--out", "{tmp}/k"], "--out {tmp}/k holds --src {tmp}/k/src"),
    (["ablate", "--data", "{logs}", "--out", "{logs}/abl"], "--out {logs}/abl is inside --data"),
])
def test_every_writing_command_refuses_an_output_inside_an_input(argv, message, tiny_logs, tmp_path, capsys):
    fill = dict(logs=tiny_logs, tmp=str(tmp_path))
    os.makedirs(tmp_path / "k" / "src")
    rc, err = _run_main(capsys, *[a.format(**fill) for a in argv])
    assert rc == 2 and message.format(**fill) in _one_line(err)
    assert not os.path.exists(os.path.join(tiny_logs, "root")) and not os.path.exists(os.path.join(tiny_logs, "abl"))


# --- case 3: simulate-ab's world comes from the logs' manifest, or the command refuses

def test_simulate_ab_refuses_logs_it_cannot_tie_to_a_world(tmp_path, tiny_logs):
    from cli import UsageError, build_parser
    from cli.study_commands import ab_models

    control, treatment = tmp_path / "c", tmp_path / "t"
    control.mkdir()
    treatment.mkdir()
    parse = build_parser().parse_args

    def error(*argv):
        with pytest.raises(UsageError) as e:
            ab_models(parse(["simulate-ab", "--control", str(control), "--treatment", str(treatment), *argv]))
        return str(e.value)

    assert "give --data" in error()
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_logs, foreign)
    os.remove(foreign / "manifest.json")
    assert "no manifest.json" in error("--data", str(foreign))
    _, _, world = ab_models(parse(["simulate-ab", "--control", str(control), "--treatment", str(treatment),
                                   "--data", tiny_logs]))
    assert (world.seed, world.podcasts) == (5, 60)  # the tiny logs' world, not the default (7, 3000)
    assert "--out" in error("--data", tiny_logs, "--out", str(control))


# --- case 4: a folder is replaced only when it holds exactly what the tool wrote

def test_generate_keeps_files_the_user_added_to_its_folder(tmp_path, capsys):
    out = str(tmp_path / "logs")
    small = ["--days", "2", "--impressions-per-day", "50", "--users", "20", "--podcasts", "10"]
    assert _run_main(capsys, "generate", "--out", out, *small)[0] == 0
    day = sorted(glob.glob(os.path.join(out, "date=*")))[0]
    for note in (os.path.join(out, "notes.txt"), os.path.join(day, "mine.csv")):
        open(note, "w").write("mine")
        rc, err = _run_main(capsys, "generate", "--out", out, *small)
        assert rc == 2 and os.path.relpath(note, out) in _one_line(err) and "--overwrite" in err
        assert open(note).read() == "mine"
        os.remove(note)
    with open(day_files(out)[0], "ab") as f:  # ours, but changed since
        f.write(b"x")
    rc, err = _run_main(capsys, "generate", "--out", out, *small)
    assert rc == 2 and "changed since" in err
    assert _run_main(capsys, "generate", "--out", out, "--overwrite", *small)[0] == 0


# --- cases 5 and 8: convert-kuairand refuses damaged or mismatched input by name

@pytest.fixture
def kuairand_src(tmp_path):
    from datagen.kuairand import LOG_FILE, USER_FILE, VIDEO_FILE

    src = tmp_path / "src"
    src.mkdir()
    n = 40
    t0 = 1_650_844_800_000
    pd.DataFrame({"user_id": np.arange(n) % 5, "video_id": np.arange(n) % 7, "time_ms": t0 + np.arange(n) * 3_600_000,
                  "is_click": np.arange(n) % 2, "is_like": 0, "is_follow": 0, "long_view": (np.arange(n) % 3 == 0) * 1,
                  "tab": np.arange(n) % 3}).to_parquet(src / LOG_FILE, index=False)
    pd.DataFrame({"user_id": range(5), "register_days_range": ["31-60", "61-90", "91-180", "181-365", "366+"]}
                 ).to_csv(src / USER_FILE, index=False)
    pd.DataFrame({"video_id": range(7), "author_id": range(7), "upload_dt": "2022-01-01", "tag": 1}
                 ).to_csv(src / VIDEO_FILE, index=False)
    return src


def test_convert_kuairand_is_strict_about_its_input(kuairand_src, tmp_path, capsys):
    from datagen.kuairand import LOG_FILE, USER_FILE

    src, out = str(kuairand_src), str(tmp_path / "out")

    def convert(*extra):
        return _run_main(capsys, "convert-kuairand", "--src", src, "--out", out, *extra)

    rc, err = convert("--promotions-tabs", "7")
    assert rc == 2 and "--promotions-tabs 7: tab(s) 7 select no rows" in _one_line(err)
    rc, err = convert("--ads-tabs", "2,9")
    assert rc == 2 and "tab(s) 9 select no rows" in _one_line(err)
    users = os.path.join(src, USER_FILE)
    good = open(users).read()
    open(users, "w").write(good[:-4])  # cut inside the last value: "366+" -> "3"
    rc, err = convert()
    assert rc == 2 and f"{users}: the last line is cut" in _one_line(err)
    open(users, "w").write(good + good.splitlines()[1] + "\n")  # a user twice
    rc, err = convert()
    assert rc == 2 and f"{users}: 2 rows share a user_id" in _one_line(err)
    open(users, "w").write(good.replace('31-60', '"31-60'))  # cut inside a quote
    rc, err = convert()
    assert rc == 2 and users in _one_line(err)
    open(users, "w").write(good)
    log = os.path.join(src, LOG_FILE)
    df = pd.read_parquet(log)
    df["tab"] = df["tab"].astype("Int64")
    df.loc[3, "tab"] = pd.NA
    df.to_parquet(log, index=False)
    rc, err = convert()
    assert rc == 2 and f"{log}: field 'tab' is missing or not a whole number in 1 rows" in _one_line(err)
    data = open(log, "rb").read()
    open(log, "wb").write(data[: len(data) // 2])
    rc, err = convert()
    assert rc == 2 and f"{log}: not a readable Parquet file" in _one_line(err)
    assert not os.path.exists(out)


def test_convert_kuairand_output_is_read_back_by_the_strict_reader(kuairand_src, tmp_path):
    from core.log_reader import check_log_file
    from datagen.kuairand import convert_to_logs

    stats = convert_to_logs(str(kuairand_src), str(tmp_path / "out"))
    files = day_files(str(tmp_path / "out"))
    assert stats["rows"] == 40 and sum(check_log_file(f) for f in files) == 40


# --- case 6: summary.json is strict JSON

def test_summary_json_writes_nan_as_null_with_a_reason(tmp_path):
    from pipeline.local_runner import write_summary
    from pipeline.run_summary import RunSummary

    write_summary(str(tmp_path), RunSummary(ap={"ads": {"click": float("nan"), "stream": 0.5}}, blessed=False))

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    summary = json.loads(open(tmp_path / "summary.json").read(), parse_constant=refuse)
    assert summary["ap"]["ads"] == {"click": None, "stream": 0.5}
    assert "no positive label" in summary["null_values"]["ap.ads.click"]


# --- cases 7, 9, 12: score reads with run's reader

def _score_input(tmp_path, **columns):
    from core.logs import arrow_schema

    n = 4
    day = "2026-01-05"
    t = 1_767_571_200 + 3600
    base = {f.name: pa.array([None] * n, f.type) for f in arrow_schema(with_truth=False)}
    base.update(impression_id=pa.array([f"i{i}" for i in range(n)]), event_time=pa.array([t] * n, pa.int64()),
                source=pa.array(["ads", "promotions"] * 2), **{name: pa.array(["x"] * n) for name in (
                    "surface", "market", "platform", "user_id", "user_tenure_bucket", "podcast_id", "episode_id",
                    "genre", "creator_id", "popularity_bucket")})
    for name in ("podcast_age_days", "podcast_recent_streams", "podcast_prior_impressions", "stream", "click",
                 "like", "follow"):
        base[name] = pa.array([0] * n, pa.int64())
    base.update(columns)
    folder = tmp_path / "logs" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "impressions.parquet")
    pq.write_table(pa.table(base), path)
    return path


def test_score_refuses_what_run_refuses_and_accepts_what_run_accepts(tmp_path):
    from models.batch_score import ScoreInputError, _raw_batch, read_file

    specs = {}
    path = _score_input(tmp_path, podcast_recent_streams=pa.array([1, 2, 3, 2 ** 63 + 1], pa.uint64()))
    with pytest.raises(ScoreInputError, match=r"field 'podcast_recent_streams' \(uint64\) holds values above"):
        read_file(path, specs)
    path = _score_input(tmp_path, source=pa.array(["ads", "radio", "ads", "ads"]))
    with pytest.raises(ScoreInputError, match=r"impressions.parquet: 1 of 4 rows refused .*field 'source' not one of"):
        read_file(path, specs)
    path = _score_input(tmp_path, podcast_age_days=pa.array([1.0, 2.0, 3.0, 4.0]),  # whole floats: accepted
                        user_history=pa.array([["a", None], None, [], ["b"]], pa.list_(pa.string())))
    table = read_file(path, specs)
    assert table.num_rows == 4

    class Spec:
        def __init__(self, dtype, rank):
            import tensorflow as tf
            self.dtype = getattr(tf, dtype)
            self.shape = tf.TensorShape([None] * rank)

    specs = {"user_history": Spec("string", 2)}
    raw = _raw_batch(path, read_file(path, specs).to_batches()[0], specs)
    assert raw["user_history"][0].tolist() == [b"a", b""]  # a null inside a list: "" (run's encoder too)


def test_score_checks_out_and_the_model_before_scoring(tmp_path, tiny_logs):
    from models.batch_score import ScoreInputError, score_logs

    model = _tiny_model(str(tmp_path / "m"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    (tmp_path / "folder").mkdir()
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
    for out, message in ((str(tmp_path / "folder"), "is a folder"), (str(blocker / "s.parquet"), "is a file"),
                         (str(readonly / "s.parquet"), "permission denied")):
        if message == "permission denied" and os.access(readonly, os.W_OK):
            continue  # running as root: every folder is writable
        with pytest.raises(ScoreInputError, match=message):
            score_logs(model, tiny_logs, out, progress=None)
    variables = glob.glob(os.path.join(model, "variables", "variables.data*"))[0]
    data = open(variables, "rb").read()
    open(variables, "wb").write(data[: len(data) // 3])
    with pytest.raises(ScoreInputError, match=f"--model {model}: cannot load the SavedModel"):
        score_logs(model, tiny_logs, str(tmp_path / "s.parquet"), progress=None)
    assert not os.path.exists(tmp_path / "s.parquet")


# --- cases 10, 11: the incumbent is a whole model with inputs the logs have

def test_a_half_copied_serving_version_is_skipped_and_a_foreign_baseline_named(tmp_path):
    from pipeline.configs import PipelineConfig
    from pipeline.local_runner import latest_pushed, short_error, with_incumbent

    serving = tmp_path / "serving"
    whole = _tiny_model(str(serving / "100"))
    _tiny_model(str(serving / "200"), variables=False)  # copied by something else, not finished
    assert latest_pushed(str(serving)) == whole
    # without --baseline-model the runner stages nothing: the DAG's incumbent_resolver finds the incumbent
    config = with_incumbent(PipelineConfig(data=str(tmp_path), root=str(tmp_path / "root"), serving_dir=str(serving)))
    assert config.baseline_model is None
    foreign = _tiny_model(str(tmp_path / "foreign"), input_name="song_id")
    with pytest.raises(ValueError, match=f"--baseline-model {foreign}: its inputs do not fit .*'song_id' is no field"):
        with_incumbent(PipelineConfig(data=str(tmp_path), root=str(tmp_path / "root"), baseline_model=foreign))
    typed = _tiny_model(str(tmp_path / "typed"), input_name="podcast_age_days")  # a string where logs have int
    with pytest.raises(ValueError, match="'podcast_age_days' has dtype"):
        with_incumbent(PipelineConfig(data=str(tmp_path), root=str(tmp_path / "root"), baseline_model=typed))
    half = _tiny_model(str(tmp_path / "half"), variables=False)
    with pytest.raises(ValueError, match=f"--baseline-model {half}: not a whole SavedModel: no variables/"):
        with_incumbent(PipelineConfig(data=str(tmp_path), root=str(tmp_path / "root"), baseline_model=half))
    long = short_error("stopped at Evaluator: " + "\\x0a\\x12" * 5000)
    assert len(long) < 1000 and "characters cut" in long


# --- case 13: one schedule per root

def test_a_second_schedule_on_a_busy_root_is_a_one_line_error(tiny_logs, tmp_path):
    from pipeline.local_runner import RootBusy, lock_root

    root = str(tmp_path / "root")
    os.makedirs(root)
    first = lock_root(root)
    assert lock_root(root) is first  # re-entrant in one process: the schedule's runs take it again
    first.close()
    first.close()

    def busy():
        try:
            lock_root(root).close()
            return False
        except RootBusy:
            return True

    holder = cli_background(["-c", f"import time; from pipeline.local_runner import lock_root; "
                                   f"f = lock_root({root!r}); time.sleep(600)"], str(tmp_path / "holder.out"),
                            module=False)
    try:
        wait_for(lambda: busy() or holder.poll() is not None, 120, "the holder to take the root's lock")
        r = cli("schedule", "--data", tiny_logs, "--root", root, "--days", "1")
    finally:
        kill_group(holder)
    assert r.returncode == 2 and "another run is using this root" in _one_line(r.stderr)
    assert not os.path.exists(os.path.join(root, "landing"))


# --- case 14: serving_default takes an empty batch

def test_serialized_examples_check_takes_an_empty_batch():
    import tensorflow as tf

    from models.export import check_serialized_examples

    out = check_serialized_examples(tf.constant([], dtype=tf.string))
    assert out.shape == (0,)
    one = tf.train.Example()
    one.features.feature["source"].bytes_list.value.append(b"ads")
    assert check_serialized_examples(tf.constant([one.SerializeToString()])).shape == (1,)


# --- case 15 and the argument checks: nothing left behind, dates and selections strict

def test_run_on_missing_data_leaves_no_root(tmp_path, capsys):
    root = tmp_path / "a" / "R"
    rc, err = _run_main(capsys, "run", "--data", str(tmp_path / "nonexistent"), "--root", str(root))
    assert rc == 2 and "no such folder" in _one_line(err)
    assert not os.path.exists(tmp_path / "a")


@pytest.mark.parametrize("value, message", [
    ("2026-1-5", "--end-day must be a day written YYYY-MM-DD, got '2026-1-5'"),
    ("2026-02-30", "--end-day 2026-02-30: no such day"),
    ("20260105", "written YYYY-MM-DD"),
    ("2001-01-01", "--end-day 2001-01-01 selects no day partition"),
])
def test_dates_are_strict_and_must_select_days(value, message, tiny_logs, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # argparse exits 2 itself; a UsageError returns 2
        raise SystemExit(main(["run", "--data", tiny_logs, "--root", str(tmp_path / "r"), "--end-day", value]))
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in _one_line(err)
    assert not os.path.exists(tmp_path / "r")


def test_presets_that_select_nothing_are_refused(tmp_path, capsys, tiny_logs):
    rc, err = _run_main(capsys, "ablate", "--data", tiny_logs, "--out", str(tmp_path / "a"), "--presets", ",")
    assert rc == 2 and "--presets ',' selects no preset" in _one_line(err)


def test_strict_json_helper_lists_every_non_finite_value():
    from core.strict_json import strict_json

    nulls = {}
    out = strict_json({"a": [1.0, float("inf")], "b": {"c": math.nan}}, nulls)
    assert out == {"a": [1.0, None], "b": {"c": None}}
    assert set(nulls) == {"a[1]", "b.c"}
