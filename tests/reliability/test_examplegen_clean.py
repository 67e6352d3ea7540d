"""A clean read rejects nothing and the gate finds no problem in its report (no false alarm)."""
from tfx.types import standard_artifacts

from components.temporal_example_gen.component import executor_properties
from components.temporal_example_gen.executor import Executor
from components.validation_gate import describe_report
from core.logs import read_logs
from core.row_report import RowReport
from core.split import TemporalSplit


def run_example_gen(logs, out, split):
    examples = standard_artifacts.Examples()
    examples.uri = out
    Executor().Do({}, {"examples": [examples]}, executor_properties(logs, split))
    return examples


def test_clean_logs_keep_every_row_and_pass_the_gate(tiny_logs, tmp_path):
    examples = run_example_gen(tiny_logs, str(tmp_path / "examples"), TemporalSplit(test_days=2, eval_days=2))
    report = RowReport.read(examples.uri)
    rows = len(read_logs(tiny_logs, columns=["impression_id"]))
    assert report.rows_read == report.rows_kept == rows == sum(report.files.values())
    assert report.rows_rejected == 0 and report.duplicate_rows == 0
    assert RowReport.from_json(report.to_json()) == report
    assert describe_report(report) == []
    assert examples.get_int_custom_property("rows_read") == rows
    assert examples.get_int_custom_property("rows_rejected") == 0
    # the threshold: a report with rejected rows passes when they are allowed, and names them when not
    report.rows_rejected, report.rejected = 7, {"why": 7}
    report.rejected_by_file = {"logs/date=2026-01-05/f.parquet": {"why": 7}}
    assert describe_report(report, max_rejected_rows=7) == []
    assert "file logs/date=2026-01-05/f.parquet (day 2026-01-05): 7 rows: why" in "\n".join(
        describe_report(report, max_rejected_rows=6))
    assert report.bad_days() == ["2026-01-05"]
