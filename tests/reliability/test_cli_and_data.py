"""Fault matrix, commands and data checks that need no pipeline run: --out folders, bad sizes and
seeds, unwritable roots, numeric strings, and a clean read that rejects nothing."""
import os

import pandas as pd
import pyarrow as pa
import pytest

from core.log_reader import check_types
from tests.reliability.conftest import cli, day_files


def test_generate_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    r = cli("generate", "--out", str(out), "--days", "2", "--impressions-per-day", "50", "--users", "20",
            "--podcasts", "10")
    assert r.returncode == 2 and "holds no manifest.json" in r.stderr and "--overwrite" in r.stderr, r.stderr
    assert os.listdir(out) == ["thesis.tex"] and (out / "thesis.tex").read_text() == "years of work"
    r = cli("convert-kuairand", "--src", str(tmp_path / "nowhere"), "--out", str(out))
    assert r.returncode == 2 and "holds no manifest.json" in r.stderr, r.stderr
    assert os.listdir(out) == ["thesis.tex"]


def test_generate_replaces_its_own_folder_and_a_foreign_one_with_overwrite(tmp_path):
    out = str(tmp_path / "logs")
    small = ["--days", "2", "--impressions-per-day", "50", "--users", "20", "--podcasts", "10"]
    assert cli("generate", "--out", out, *small).returncode == 0
    r = cli("generate", "--out", out, "--seed", "9", *small)  # ours: replaced
    assert r.returncode == 0, r.stderr[-2000:]
    open(os.path.join(out, "manifest.json"), "w").write("{}")  # not our manifest any more
    assert cli("generate", "--out", out, *small).returncode == 2
    assert cli("generate", "--out", out, "--overwrite", *small).returncode == 0
    assert len(day_files(out)) == 2


@pytest.mark.parametrize("args, message", [
    (["generate", "--seed", "-1"], "--seed must be in [0, 2**32)"),
    (["generate", "--days", "100000", "--users", "1"], "--days must be at most"),
    (["generate", "--days", "3000", "--impressions-per-day", "100000"], "impressions"),
    (["run", "--seed", "-1"], "--seed must be in [0, 2**32)"),
    (["run", "--max-rejected-rows", "-3"], "--max-rejected-rows must be >= 0"),
    (["run", "--calibration-band", "1.2,2"], "expected 0 < LO <= 1 <= HI, got '1.2,2'"),
    (["run", "--calibration-band", "0.8"], "expected LO,HI (e.g. 0.8,1.25) or none"),
])
def test_bad_numbers_are_one_line_errors(args, message, tmp_path):
    if args[0] == "generate":
        args = args + ["--out", str(tmp_path / "g")]
    r = cli(*args, "--root", str(tmp_path / "r")) if args[0] == "run" else cli(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not os.path.exists(tmp_path / "g")


def test_calibration_band_reaches_the_config_and_none_turns_the_gate_off(tmp_path, tiny_logs):
    from cli import build_parser
    from cli.common import pipeline_config

    def band(*extra):
        args = build_parser().parse_args(["schedule", "--data", tiny_logs, "--root", str(tmp_path / "r"), "--days", "1",
                                          *extra])
        return pipeline_config(args, str(tmp_path / "r")).calibration_band

    assert band() == (0.8, 1.25)
    assert band("--calibration-band", "0.5,2") == (0.5, 2.0)
    assert band("--calibration-band", "none") is None


def test_unwritable_root_is_a_one_line_error(tmp_path, tiny_logs):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = cli("run", "--data", tiny_logs, "--root", str(blocker / "root"))
    assert r.returncode == 2 and "cannot write there" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def _table(**columns):
    return pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)


def test_numeric_strings_in_an_int_column_are_rejected_not_cast():
    with pytest.raises(ValueError, match=r"x.parquet: field 'stream' has type string, expected int64"):
        check_types(_table(stream=["1", "0"]), "x.parquet")
    with pytest.raises(ValueError, match=r"x.parquet: field 'source' has type int64, expected string"):
        check_types(_table(source=[1, 2]), "x.parquet")


def test_nan_in_a_required_int_field_is_recorded_as_nan():
    nan_rows = {}
    table = check_types(_table(stream=[1.0, float("nan"), 0.0], promo_slot=[1.0, float("nan"), 2.0]),
                        "x.parquet", nan_rows)
    assert table.column("stream").to_pylist() == [1, None, 0]
    assert list(nan_rows) == ["stream"] and nan_rows["stream"].tolist() == [False, True, False]
