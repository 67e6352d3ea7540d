"""`RowReport`: what TemporalExampleGen did with every row it read, in one JSON form.

Written by TemporalExampleGen into its Examples artifact (`core.logs.EXAMPLE_GEN_REPORT`), merged
over a window's days by TemporalWindow, read by the ValidationGate, the run summary (`rows`) and
the terminal summary. Every row read is kept in one split or rejected for one reason:
rows_read = rows_kept + rows_rejected.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterable, List, Optional

from core.logs import EXAMPLE_GEN_REPORT, PARTITION_PREFIX

# the keys `summary.json`'s `rows` holds (the per-split counts are in its `splits`)
SUMMARY_KEYS = ("rows_read", "rows_kept", "rows_rejected", "rejected", "rejected_by_file", "duplicate_rows",
                "duplicates_by_file", "days", "splits", "positives")
COUNTS = ("rows_read", "rows_kept", "rows_rejected", "duplicate_rows")


def file_day(path: str) -> Optional[str]:
    """YYYY-MM-DD of the `date=` partition holding `path`, or None."""
    folder = os.path.basename(os.path.dirname(path.rstrip("/")))
    return folder[len(PARTITION_PREFIX):] if folder.startswith(PARTITION_PREFIX) else None


def _add(into: Dict[str, int], counts: Dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


@dataclasses.dataclass
class RowReport:
    rows_read: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    rejected: Dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> rows
    rejected_by_file: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)  # file -> reason -> rows
    splits: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)  # split -> source -> rows kept
    positives: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)  # split -> source -> stream=1
    duplicate_rows: int = 0  # rows whose impression_id occurs more than once in the read
    duplicates_by_file: Dict[str, int] = dataclasses.field(default_factory=dict)
    files: Dict[str, int] = dataclasses.field(default_factory=dict)  # file -> rows read
    # a window's days (TemporalWindow): YYYY-MM-DD -> split, span, rows_kept, the Examples artifact
    days: Dict[str, Dict] = dataclasses.field(default_factory=dict)

    # --- the one JSON form

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Dict) -> "RowReport":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> "RowReport":
        return cls.from_dict(json.loads(text))

    def write(self, examples_uri: str) -> str:
        import tensorflow as tf  # gfile: gs:// and the other Beam filesystems

        path = os.path.join(examples_uri, EXAMPLE_GEN_REPORT)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(self.to_json())
        return path

    @classmethod
    def read(cls, examples_uri: str) -> Optional["RowReport"]:
        """The report in an Examples artifact folder, or None when there is none."""
        import tensorflow as tf

        path = os.path.join(examples_uri, EXAMPLE_GEN_REPORT)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            return cls.from_json(f.read())

    # --- building

    @classmethod
    def of_file(cls, path: str, rows: int, rejected: Dict[str, int], splits: Dict[str, Dict[str, int]],
                positives: Dict[str, Dict[str, int]]) -> "RowReport":
        """One file's report (duplicates across files are added by `merge`)."""
        n_rejected = sum(rejected.values())
        return cls(rows_read=rows, rows_kept=sum(sum(v.values()) for v in splits.values()), rows_rejected=n_rejected,
                   rejected=dict(rejected), rejected_by_file={path: dict(rejected)} if rejected else {},
                   splits=splits, positives=positives, files={path: rows})

    @classmethod
    def merge(cls, reports: Iterable["RowReport"], duplicates: Iterable = (), splits: Iterable[str] = ()) -> "RowReport":
        """The sum of `reports`, with every split of `splits` present, and `duplicates`:
        [(file, rows whose impression_id occurs more than once overall)]."""
        out = cls(splits={s: {} for s in splits}, positives={s: {} for s in splits})
        for r in reports:
            for key in COUNTS:
                setattr(out, key, getattr(out, key) + getattr(r, key))
            _add(out.rejected, r.rejected)
            out.rejected_by_file.update(r.rejected_by_file)
            out.duplicates_by_file.update(r.duplicates_by_file)
            out.files.update(r.files)
            out.days.update(r.days)
            for key in ("splits", "positives"):
                for split, by_source in getattr(r, key).items():
                    _add(getattr(out, key).setdefault(split, {}), by_source)
        for path, n in sorted(duplicates):
            out.duplicate_rows += n
            out.duplicates_by_file[path] = out.duplicates_by_file.get(path, 0) + n
        return out

    def as_split(self, split: str) -> "RowReport":
        """The same report with every kept row counted in `split` (a day of a window)."""
        moved = {}
        for key in ("splits", "positives"):
            by_source: Dict[str, int] = {}
            for counts in getattr(self, key).values():
                _add(by_source, counts)
            moved[key] = {split: by_source}
        return dataclasses.replace(self, **moved)

    # --- reading

    def summary(self) -> Dict:
        """The `rows` of `summary.json`."""
        d = self.to_dict()
        return {k: d[k] for k in SUMMARY_KEYS}

    def line(self) -> str:
        """One line for the terminal."""
        return (f"rows: {self.rows_read:,} read, {self.rows_kept:,} in splits, {self.rows_rejected:,} rejected"
                + (f" {self.rejected}" if self.rejected else "")
                + (f", {self.duplicate_rows:,} with a repeated impression_id" if self.duplicate_rows else ""))

    def bad_days(self) -> List[str]:
        """The days (YYYY-MM-DD) of the files with rejected or repeated rows."""
        files = set(self.rejected_by_file) | set(self.duplicates_by_file)
        return sorted({d for d in map(file_day, files) if d})

    def files_of_day(self, day: str) -> List[str]:
        return sorted(f for f in self.files if file_day(f) == day)
