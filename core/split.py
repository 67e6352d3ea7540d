"""Temporal split of day partitions: oldest days train, middle days eval, newest days test."""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

from core.days import DAY, day_index

SPLITS = ("train", "eval", "test")


@dataclasses.dataclass(frozen=True)
class TemporalSplit:
    """Either relative (`test_days`, `eval_days`: the newest days are test, the ones before eval)
    or absolute (`eval_start`, `test_start`: first day, YYYY-MM-DD, of each split).

    `window_days` > 0 reads only the newest that many day partitions (a rolling window for
    scheduled runs); `end_day` (YYYY-MM-DD, inclusive) ignores partitions after it.
    """

    test_days: int = 5
    eval_days: int = 3
    eval_start: Optional[str] = None
    test_start: Optional[str] = None
    window_days: int = 0
    end_day: Optional[str] = None

    def __post_init__(self):
        absolute = (self.eval_start is not None, self.test_start is not None)
        if any(absolute) and not all(absolute):
            raise ValueError("temporal split: give both eval_start and test_start, or neither")
        if all(absolute):
            if day_index(self.eval_start) >= day_index(self.test_start):
                raise ValueError(f"temporal split: eval_start {self.eval_start} must be before "
                                 f"test_start {self.test_start}")
        elif self.test_days <= 0 or self.eval_days <= 0:
            raise ValueError("temporal split: test_days and eval_days must be positive")
        if self.window_days < 0:
            raise ValueError("temporal split: window_days must be >= 0")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TemporalSplit":
        return cls(**json.loads(text))

    def resolve(self, days: Sequence[str]) -> Tuple[List[str], Dict[str, Tuple[int, int]]]:
        """Picks the day partitions to read and each split's [start, end) in epoch seconds.

        Raises ValueError naming the problem when a split would be empty.
        """
        days = sorted(days)
        if self.end_day:
            days = [d for d in days if d <= self.end_day]
        if self.window_days:
            days = days[-self.window_days:]
        if not days:
            raise ValueError("temporal split: no day partitions to read")
        idx = [day_index(d) for d in days]
        first, last = idx[0], idx[-1]
        if self.eval_start is not None:
            eval_start, test_start = day_index(self.eval_start), day_index(self.test_start)
        else:
            test_start = last - self.test_days + 1
            eval_start = test_start - self.eval_days
        bounds = {"train": (first * DAY, eval_start * DAY), "eval": (eval_start * DAY, test_start * DAY),
                  "test": (test_start * DAY, (last + 1) * DAY)}
        for name, (lo, hi) in bounds.items():
            if not any(lo <= i * DAY < hi for i in idx):
                raise ValueError(f"temporal split: split {name!r} gets no day partition "
                                 f"(days {days[0]}..{days[-1]}, {self.to_json()})")
        return days, bounds
