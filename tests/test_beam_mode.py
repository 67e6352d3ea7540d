"""The local DirectRunner's mode (in memory; worker processes from a threshold size), the user's Beam
arguments winning over it, and the worker processes' import noise kept off the console."""
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.configs import LOCAL_BEAM_ARGS, MULTI_PROCESSING_MIN_ROWS, PipelineConfig, direct_mode_args, local_rows


def _logs(tmp_path, rows_per_day, days=3):
    for d in range(days):
        folder = tmp_path / "logs" / f"date=2026-01-0{d + 1}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": list(range(rows_per_day))}), str(folder / "impressions.parquet"))
    return str(tmp_path / "logs")


def _mode(args):
    """The mode and worker count Beam's argument parser would take (the last value wins)."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    opts = PipelineOptions(list(args)).view_as(DirectOptions)
    return opts.direct_running_mode, opts.direct_num_workers


def test_worker_processes_from_the_threshold_rows_and_in_memory_below(tmp_path, monkeypatch):
    monkeypatch.delenv("PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS", raising=False)
    data = _logs(tmp_path, 100)
    assert local_rows(data) == 300
    workers = min(os.cpu_count(), 4)
    many = ("multi_processing", workers) if workers >= 2 else ("in_memory", 1)
    assert MULTI_PROCESSING_MIN_ROWS > 300  # small logs (the tests') stay in memory by default
    assert _mode(PipelineConfig(data=data).beam_pipeline_args()) == ("in_memory", 1)
    monkeypatch.setattr("pipeline.configs.MULTI_PROCESSING_MIN_ROWS", 300)  # the default threshold, reached
    assert _mode(PipelineConfig(data=data).beam_pipeline_args()) == many
    monkeypatch.setenv("PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS", "301")  # the environment's threshold wins
    assert _mode(PipelineConfig(data=data).beam_pipeline_args()) == ("in_memory", 1)
    monkeypatch.setenv("PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS", "off")
    assert _mode(PipelineConfig(data=data).beam_pipeline_args()) == ("in_memory", 1)
    monkeypatch.setenv("PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS", "300")
    assert _mode(PipelineConfig(data=data).beam_pipeline_args()) == many
    # the user's own mode or worker count wins; a runner of their own takes none of the local defaults
    mine = ("--direct_running_mode=multi_threading",)
    assert _mode(PipelineConfig(data=data, beam_args=mine).beam_pipeline_args()) == ("multi_threading", 1)
    assert direct_mode_args(data, ("--direct_num_workers=3",)) == ()
    dataflow = ("--runner=DataflowRunner", "--project=p")
    assert PipelineConfig(data=data, beam_args=dataflow).beam_pipeline_args() == dataflow
    assert PipelineConfig(data=data).beam_pipeline_args()[:len(LOCAL_BEAM_ARGS)] == LOCAL_BEAM_ARGS


def test_a_bad_threshold_is_a_usage_error_naming_the_variable(tmp_path, monkeypatch, capsys):
    """`podcast-mtl run` refuses it before any work (the CLI's own entry point, in this process)."""
    from cli import main

    data = _logs(tmp_path, 10, days=1)
    monkeypatch.setenv("PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS", "lots")
    assert main(["run", "--data", data, "--root", str(tmp_path / "root")]) == 2
    err = capsys.readouterr().err
    assert "PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS='lots'" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "root")


@pytest.mark.parametrize("data", ["gs://bucket/logs", "UNREADABLE"])
def test_remote_or_unreadable_logs_keep_the_in_memory_mode(tmp_path, data):
    if data == "UNREADABLE":
        data = _logs(tmp_path, 10, days=1)
        path = os.path.join(data, "date=2026-01-01", "impressions.parquet")
        with open(path, "wb") as f:
            f.write(b"not parquet")
    assert local_rows(data) is None
    assert direct_mode_args(data, (), environ={"PODCAST_MTL_MULTI_PROCESSING_MIN_ROWS": "0"}) == ()


CHILD = r"""
import sys
sys.stderr.write("2026-12-03 E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:479] Unable to register cuFFT factory: x\n")
sys.stderr.write("a real error from a worker\n")
sys.stderr.write("/v/google/api_core/x.py:246: FutureWarning: You are using a non-supported Python version (3.10.13)\n")
sys.stderr.write("  warnings.warn(message, FutureWarning)\n")
sys.stderr.write("  warnings.warn(another)\n")
"""


def test_worker_import_noise_is_dropped_and_every_other_line_passes_in_order():
    """What the DirectRunner's worker processes print on start, through `streaming_filtered_stderr` in a
    fresh process whose stderr is a pipe (as a console or a log file would be)."""
    from tests.conftest import run_python

    script = ("import subprocess, sys\nimport core.env\nwith core.env.streaming_filtered_stderr():\n"
              "    print('parent line', file=sys.stderr, flush=True)\n"
              f"    subprocess.run([sys.executable, '-c', {CHILD!r}], check=True)\n"
              "print('after the block', file=sys.stderr)\n")
    r = run_python(["-c", script])
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["parent line", "a real error from a worker", "  warnings.warn(another)",
                                     "after the block"]
