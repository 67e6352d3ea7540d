"""TemporalSplit: which days each split gets, and refusals."""
import pytest

from core.days import DAY
from core.split import SPLITS, TemporalSplit

DAYS = [f"2026-01-{d:02d}" for d in range(1, 15)]  # 14 days


def split_of(event_time, bounds):
    """Index in SPLITS of the split holding `event_time`; -1 when outside every split."""
    for i, name in enumerate(SPLITS):
        lo, hi = bounds[name]
        if lo <= event_time < hi:
            return i
    return -1


def day(name):
    import datetime as dt
    return (dt.date.fromisoformat(name) - dt.date(1970, 1, 1)).days * DAY


def test_relative_split_takes_newest_days_for_test_then_eval():
    days, b = TemporalSplit(test_days=3, eval_days=2).resolve(DAYS)
    assert days == DAYS
    assert b["test"] == (day("2026-01-12"), day("2026-01-14") + DAY)
    assert b["eval"] == (day("2026-01-10"), day("2026-01-12"))
    assert b["train"] == (day("2026-01-01"), day("2026-01-10"))


def test_absolute_split_and_every_second_in_exactly_one_split():
    _, b = TemporalSplit(eval_start="2026-01-08", test_start="2026-01-11").resolve(DAYS)
    for t in range(day("2026-01-01"), day("2026-01-14") + DAY, 3599):
        assert sum(b[s][0] <= t < b[s][1] for s in SPLITS) == 1
    assert split_of(day("2026-01-08") - 1, b) == 0 and split_of(day("2026-01-08"), b) == 1
    assert split_of(day("2026-01-11"), b) == 2 and split_of(day("2026-01-15"), b) == -1


def test_rolling_window_reads_only_newest_days():
    days, b = TemporalSplit(test_days=2, eval_days=2, window_days=7).resolve(DAYS)
    assert days == DAYS[-7:] and b["train"][0] == day(DAYS[-7])
    days, _ = TemporalSplit(test_days=2, eval_days=2, end_day="2026-01-10").resolve(DAYS)
    assert days[-1] == "2026-01-10"


@pytest.mark.parametrize("kwargs,message", [
    (dict(test_days=0), "positive"), (dict(eval_start="2026-01-05"), "both"),
    (dict(eval_start="2026-01-09", test_start="2026-01-05"), "before"), (dict(window_days=-1), "window")])
def test_bad_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemporalSplit(**kwargs)


def test_a_split_without_days_is_refused():
    with pytest.raises(ValueError, match="'train' gets no day"):
        TemporalSplit(test_days=10, eval_days=4).resolve(DAYS)
    with pytest.raises(ValueError, match="no day partitions"):
        TemporalSplit().resolve([])


def test_json_round_trip():
    s = TemporalSplit(eval_start="2026-01-08", test_start="2026-01-11", window_days=9)
    assert TemporalSplit.from_json(s.to_json()) == s
