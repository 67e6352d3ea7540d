"""The real executor under Beam: split boundaries, no impression in two splits, nothing lost."""
import glob
import os

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.temporal_example_gen.component import executor_properties
from components.temporal_example_gen.executor import Executor
from core.days import DAY
from core.split import SPLITS, TemporalSplit
from datagen.generate import generate_logs
from core.logs import read_logs
from datagen.synthetic import GeneratorConfig


def _read_split(uri, split):
    files = glob.glob(os.path.join(uri, f"Split-{split}", "*.gz"))
    out = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        ex = tf.train.Example.FromString(record.numpy())
        f = ex.features.feature
        out.append((f["impression_id"].bytes_list.value[0].decode(), f["event_time"].int64_list.value[0],
                    len(f["ad_format"].bytes_list.value)))
    return out


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("eglogs") / "logs")
    generate_logs(GeneratorConfig(seed=5, days=9, users=300, podcasts=60, impressions_per_day=400), out, verbose=False)
    return out


def _run(logs, tmp_path, split):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    Executor().Do({}, {"examples": [examples]}, executor_properties(logs, split))
    return examples


def test_splits_are_ordered_in_time_and_disjoint(logs, tmp_path):
    examples = _run(logs, tmp_path, TemporalSplit(test_days=2, eval_days=3))
    assert artifact_utils.decode_split_names(examples.split_names) == list(SPLITS)
    rows = {s: _read_split(examples.uri, s) for s in SPLITS}
    times = {s: [t for _, t, _ in r] for s, r in rows.items()}
    assert max(times["train"]) < min(times["eval"]) and max(times["eval"]) < min(times["test"])
    ids = [i for r in rows.values() for i, _, _ in r]
    assert len(ids) == len(set(ids))
    df = read_logs(logs)
    assert set(ids) == set(df.impression_id)
    n_days = {s: len({t // DAY for t in times[s]}) for s in SPLITS}
    assert n_days == {"train": 4, "eval": 3, "test": 2}
    # a null field is written as a feature with no values
    ads_flags = {i: n for r in rows.values() for i, _, n in r}
    by_id = df.set_index("impression_id").source
    assert all((n == 1) == (by_id[i] == "ads") for i, n in ads_flags.items())


def test_unreadable_partition_names_the_file(logs, tmp_path):
    import shutil

    bad = str(tmp_path / "bad")
    shutil.copytree(logs, bad)
    victim = sorted(glob.glob(os.path.join(bad, "date=*", "*.parquet")))[3]
    with open(victim, "wb") as f:
        f.write(b"not parquet")
    with pytest.raises(Exception, match="not a readable Parquet file"):
        _run(bad, tmp_path, TemporalSplit(test_days=2, eval_days=3))


def test_wrong_field_type_names_file_and_field(logs, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    bad = str(tmp_path / "typed")
    shutil.copytree(logs, bad)
    victim = sorted(glob.glob(os.path.join(bad, "date=*", "*.parquet")))[2]
    df = pq.read_table(victim).to_pandas()
    df["promo_slot"] = df["promo_slot"].astype(float)  # pandas' nullable-int artifact: cast back, no error
    df.to_parquet(victim, index=False)
    _run(bad, tmp_path / "ok", TemporalSplit(test_days=2, eval_days=3))
    df["podcast_age_days"] = df["podcast_age_days"] + 0.5
    df.to_parquet(victim, index=False)
    with pytest.raises(Exception, match=r"podcast_age_days.*fractional values in \d+ rows \(first: row 0\)"):
        _run(bad, tmp_path / "bad", TemporalSplit(test_days=2, eval_days=3))
    df["podcast_age_days"] = "old"
    df.to_parquet(victim, index=False)
    with pytest.raises(Exception, match=r"impressions.parquet: field 'podcast_age_days' has type string"):
        _run(bad, tmp_path / "bad2", TemporalSplit(test_days=2, eval_days=3))


def test_a_daily_span_reads_one_day_into_one_split(logs, tmp_path):
    from core.days import day_index
    from core.logs import DAY_SPLIT
    from core.row_report import RowReport

    days = sorted(os.path.basename(d)[len("date="):] for d in glob.glob(os.path.join(logs, "date=*")))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "day")
    Executor().Do({}, {"examples": [examples]}, executor_properties(logs, TemporalSplit(), daily=True, day=days[3]))
    assert artifact_utils.decode_split_names(examples.split_names) == [DAY_SPLIT]
    assert examples.span == day_index(days[3]) and examples.version == 0
    rows = _read_split(examples.uri, DAY_SPLIT)
    assert {t // DAY for _, t, _ in rows} == {day_index(days[3])}
    df = read_logs(logs)
    assert sorted(i for i, _, _ in rows) == sorted(df[df.event_time // DAY == day_index(days[3])].impression_id)
    report = RowReport.read(examples.uri)
    assert report.rows_kept == len(rows) and set(report.splits) == {DAY_SPLIT}
    assert list(report.files) == sorted(glob.glob(os.path.join(logs, f"date={days[3]}", "*.parquet")))
