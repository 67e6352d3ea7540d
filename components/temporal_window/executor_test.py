"""TemporalWindow's report of a window, from day reports made here (the DAG runs of
tests/test_schedule.py cover the executor on real day spans)."""
from components.temporal_window.executor import merge_day_reports
from core.days import day_index
from core.row_report import RowReport


def _day(read, kept, rejected=None, by_file=None, duplicates=0, ads=0, promotions=0, positives=0):
    return RowReport(rows_read=read, rows_kept=kept, rows_rejected=read - kept, rejected=rejected or {},
                     rejected_by_file=by_file or {}, duplicate_rows=duplicates,
                     duplicates_by_file={"f.parquet": duplicates} if duplicates else {},
                     splits={"day": {"ads": ads, "promotions": promotions}},
                     positives={"day": {"ads": positives, "promotions": positives}})


def test_window_report_sums_days_into_their_splits():
    d1, d2, d3 = (day_index(d) for d in ("2026-01-01", "2026-01-02", "2026-01-03"))
    reports = {d1: _day(10, 9, {"nan": 1}, {"a.parquet": {"nan": 1}}, ads=3, promotions=6, positives=1),
               d2: _day(5, 5, ads=2, promotions=3, positives=2, duplicates=2),
               d3: _day(4, 2, {"nan": 1, "outside_day": 1}, {"c.parquet": {"nan": 1, "outside_day": 1}}, ads=1,
                        promotions=1)}
    split_of = {d1: "train", d2: "train", d3: "test"}
    sources = {d: {"artifact": f"uri/{d}"} for d in reports}
    out = merge_day_reports(reports, split_of, sources)
    assert (out.rows_read, out.rows_kept, out.rows_rejected, out.duplicate_rows) == (19, 16, 3, 2)
    assert out.rejected == {"nan": 2, "outside_day": 1}
    assert set(out.rejected_by_file) == {"a.parquet", "c.parquet"}
    assert out.splits["train"] == {"ads": 5, "promotions": 9} and out.splits["test"] == {"ads": 1, "promotions": 1}
    assert not sum(out.splits["eval"].values()) and out.positives["train"] == {"ads": 3, "promotions": 3}
    assert out.days["2026-01-03"] == {"artifact": f"uri/{d3}", "split": "test", "span": d3, "rows_kept": 2}
