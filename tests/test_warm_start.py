"""Warm start: rows follow tokens when today's vocabulary moves ids; shapes that differ are skipped."""
import numpy as np

from models.warm_start import _remap_rows, latest


def test_vocabulary_rows_follow_their_tokens_new_tokens_keep_fresh_rows():
    old_tokens, new_tokens = ["a", "b", "c"], ["c", "d", "a", "e"]
    offset, buckets = 1, 2  # the podcast table: row 0 is list padding, then vocabulary, then OOV buckets
    old = np.arange((offset + 3 + buckets) * 2, dtype=np.float32).reshape(-1, 2)
    fresh = -np.ones(((offset + 4 + buckets), 2), dtype=np.float32)
    rows, kept, new = _remap_rows(old, fresh, old_tokens, new_tokens, offset)
    assert (kept, new) == (2, 2)
    np.testing.assert_array_equal(rows[0], old[0])  # padding
    np.testing.assert_array_equal(rows[1], old[1 + 2])  # "c" was row 1+2
    np.testing.assert_array_equal(rows[3], old[1 + 0])  # "a" was row 1+0
    np.testing.assert_array_equal(rows[2], fresh[2])  # "d" is new: its fresh row
    np.testing.assert_array_equal(rows[4], fresh[4])  # "e" is new
    np.testing.assert_array_equal(rows[5:], old[4:])  # OOV buckets copied
    # a table whose OOV bucket count changed cannot be mapped
    assert _remap_rows(old, np.zeros((offset + 4 + 3, 2), np.float32), old_tokens, new_tokens, offset)[0] is None


def test_latest_takes_the_newest_version_with_weights(tmp_path):
    for v, with_weights in (("100", True), ("200", True), ("300", False)):
        d = tmp_path / v / "warm_start"
        d.mkdir(parents=True)
        if with_weights:
            (d / "weights.npz").write_bytes(b"x")
    assert latest(str(tmp_path)) == str(tmp_path / "200" / "warm_start")
    assert latest(str(tmp_path / "missing")) is None
