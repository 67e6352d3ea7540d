"""Day arithmetic on UTC epoch seconds: the one place for the length of a day and day names."""
from __future__ import annotations

import datetime as dt

import numpy as np

DAY = 86400  # seconds
HOUR = 3600
EPOCH = dt.date(1970, 1, 1)
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0


def day_of(epoch_s) -> np.ndarray:
    """Day index (days since 1970-01-01) of each epoch second."""
    return (np.asarray(epoch_s, dtype=np.int64) // DAY).astype(np.int64)


def day_name(day_index: int) -> str:
    """YYYY-MM-DD of a day index."""
    return (EPOCH + dt.timedelta(days=int(day_index))).isoformat()


def day_index(name: str) -> int:
    """Day index of YYYY-MM-DD; ValueError naming the text otherwise."""
    try:
        return (dt.date.fromisoformat(name) - EPOCH).days
    except ValueError:
        raise ValueError(f"bad day {name!r}: expected YYYY-MM-DD") from None
