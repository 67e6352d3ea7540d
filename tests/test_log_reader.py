"""The strict log reader (`core/log_reader.py`) and the RowReport (`core/row_report.py`): pure
pyarrow, no pipeline. What a file may hold, what is refused whole, what rows are rejected and why."""
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.days import DAY, day_index
from core.log_reader import (OUTSIDE_DAY, UNKNOWN_SOURCE, LogError, check_file, check_log_file, check_types,
                             read_log_file, reject_rows, repeated_ids)
from core.row_report import RowReport

DAY_NAME = "2026-01-05"
T0 = day_index(DAY_NAME) * DAY + 3600


def _table(**columns):
    return pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)


def _rows(n=4, **over):
    base = dict(impression_id=[f"i{i}" for i in range(n)], event_time=[T0 + i for i in range(n)],
                source=["ads", "promotions"] * (n // 2), stream=[0, 1] * (n // 2), click=[0] * n)
    base.update(over)
    return base


def _write(tmp_path, table, day=DAY_NAME):
    folder = tmp_path / f"date={day}"
    folder.mkdir(exist_ok=True)
    path = str(folder / "impressions.parquet")
    pq.write_table(table, path)
    return path


def test_strings_for_numbers_are_refused_naming_file_and_field():
    with pytest.raises(LogError, match=r"x.parquet: field 'stream' has type string, expected int64 \(strings are not parsed"):
        check_types(_table(stream=["1", "0"]), "x.parquet")
    with pytest.raises(LogError, match=r"x.parquet: field 'source' has type int64, expected string"):
        check_types(_table(source=[1, 2]), "x.parquet")


def test_whole_floats_are_cast_and_nan_recorded():
    nan_rows = {}
    t = check_types(_table(stream=[1.0, np.nan, 0.0], promo_slot=[1.0, np.nan, 2.0]), "x.parquet", nan_rows)
    assert t.column("stream").to_pylist() == [1, None, 0] and t.column("stream").type == pa.int64()
    assert list(nan_rows) == ["stream"]  # promo_slot is not required


@pytest.mark.parametrize("values, message", [
    ([1.0, float("inf")], "found infinity in 1 row"),
    ([1.0, 2.0 ** 63], "beyond int64 in 1 row"),
    ([1.0, 1.5], "fractional values in 1 row"),
])
def test_floats_that_are_not_int64_are_refused_by_field(values, message):
    with pytest.raises(LogError, match=f"x.parquet: field 'podcast_age_days'.*{message}"):
        check_types(_table(podcast_age_days=values), "x.parquet")


def test_uint64_above_int64_is_refused_not_wrapped():
    table = pa.table({"podcast_recent_streams": pa.array([1, 2 ** 63 + 5], pa.uint64())})
    with pytest.raises(LogError, match=r"x.parquet: field 'podcast_recent_streams' \(uint64\) holds values above 2\^63-1"):
        check_types(table, "x.parquet")
    ok = check_types(pa.table({"podcast_recent_streams": pa.array([1, 7], pa.uint64())}), "x.parquet")
    assert ok.column("podcast_recent_streams").to_pylist() == [1, 7]


def test_dictionary_columns_are_decoded_and_a_category_of_strings_for_a_number_says_so():
    t = check_types(pa.Table.from_pandas(pd.DataFrame({"genre": pd.Categorical(["a", "b", "a"])})), "x.parquet")
    assert t.column("genre").type == pa.string() and t.column("genre").to_pylist() == ["a", "b", "a"]
    with pytest.raises(LogError, match="field 'stream' has type string, expected int64 .strings are not parsed"):
        check_types(pa.Table.from_pandas(pd.DataFrame({"stream": pd.Categorical(["1", "0"])})), "x.parquet")


def test_rows_are_rejected_for_their_first_reason():
    day = day_index(DAY_NAME)
    table = _table(**_rows(8, event_time=[T0, T0 - DAY, T0, T0, T0, T0, T0, T0],
                           source=["ads", "ads", "video", None, "promotions", "promotions", "ads", "ads"],
                           stream=[0, 0, 0, 0, 2, 0, -1, 0],
                           ad_format=[None, None, None, None, None, "audio", None, None]))
    table, nan_rows = check_file(table, "f")
    keep, reasons = reject_rows(table, day, nan_rows)
    assert keep.tolist() == [True, False, False, False, False, False, False, True]
    assert reasons == {OUTSIDE_DAY: 1, UNKNOWN_SOURCE: 1, "null in field 'source'": 1,
                       "field 'stream' not 0 or 1": 1, "field 'stream' negative": 1,
                       "field 'ad_format' (only on ads) set on a promotions row": 1}


def test_a_null_inside_a_list_is_accepted_as_run_accepts_it(tmp_path):
    table = _table(**_rows(2), user_history=[["p1", None], None])
    path = _write(tmp_path, table)
    table, keep, rejected = read_log_file(path)
    assert keep.all() and rejected == {}


def test_unreadable_and_truncated_files_are_named(tmp_path):
    path = _write(tmp_path, _table(**_rows()))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(LogError, match=f"{path}: not a readable Parquet file"):
        read_log_file(path)


def test_check_log_file_refuses_any_row_run_would_reject_and_repeated_ids(tmp_path):
    path = _write(tmp_path, _table(**_rows(4, impression_id=["a", "a", "b", "c"])))
    assert repeated_ids(pq.read_table(path)) == 2
    with pytest.raises(LogError, match=r"impressions.parquet: 2 of 4 rows refused.*2 rows share an impression_id"):
        check_log_file(path)
    path = _write(tmp_path, _table(**_rows(4, source=["ads", "radio", "ads", "ads"])))
    with pytest.raises(LogError, match=r"1 of 4 rows refused .`run` would reject them.: 1 rows: field 'source' not one of"):
        check_log_file(path)
    with pytest.raises(LogError, match="event_time' is missing"):
        check_file(_table(stream=[1]), "f")


def test_row_report_has_one_json_form_and_merges_days():
    a = RowReport.of_file("L/date=2026-01-05/a.parquet", 10, {"why": 2}, {"day": {"ads": 5, "promotions": 3}},
                          {"day": {"ads": 1}})
    b = RowReport.of_file("L/date=2026-01-06/b.parquet", 4, {}, {"day": {"ads": 4}}, {"day": {}})
    window = RowReport.merge([a.as_split("train"), b.as_split("test")], [("L/date=2026-01-06/b.parquet", 2)],
                             splits=("train", "eval", "test"))
    assert (window.rows_read, window.rows_kept, window.rows_rejected, window.duplicate_rows) == (14, 12, 2, 2)
    assert window.splits == {"train": {"ads": 5, "promotions": 3}, "eval": {}, "test": {"ads": 4}}
    assert window.bad_days() == ["2026-01-05", "2026-01-06"]
    assert window.files_of_day("2026-01-06") == ["L/date=2026-01-06/b.parquet"]
    assert RowReport.from_json(window.to_json()) == window
    assert set(json.loads(window.to_json())) >= set(window.summary())
    assert "14 read, 12 in splits, 2 rejected" in window.line()


def test_row_report_written_and_read_from_an_artifact_folder(tmp_path):
    report = RowReport(rows_read=3, rows_kept=3, files={"f": 3})
    report.write(str(tmp_path))
    assert RowReport.read(str(tmp_path)) == report
    assert RowReport.read(str(tmp_path / "none")) is None
    assert os.path.exists(tmp_path / "example_gen_report.json")
