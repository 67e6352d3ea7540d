"""The in-memory training split's row order (models/sampling.py: canonical_order), on hand-made rows."""
import numpy as np

from models.sampling import MemoryExamples, canonical_order
from models.config import preset


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"source": rng.integers(0, 2, (n, 1)), "podcast_id": rng.integers(0, 50, (n, 1)),
            "user_history": rng.integers(0, 50, (n, 4)), "genre_share": rng.random((n, 1)).astype(np.float32),
            "tag": np.array([[b"a%d" % (i % 7)] for i in range(n)], dtype=object)}


def _sorted(arrays):
    order = canonical_order(arrays)
    return {k: a[order] for k, a in arrays.items()}


def test_the_same_rows_in_any_order_give_the_same_arrays_and_batches():
    rows = _rows(500)
    shuffled = {k: a[np.random.default_rng(1).permutation(500)] for k, a in rows.items()}
    a, b = _sorted(rows), _sorted(shuffled)
    assert all(np.array_equal(a[k], b[k]) for k in rows)
    assert not np.array_equal(rows["podcast_id"], shuffled["podcast_id"])  # the inputs did differ
    cfg = preset("unified_balanced", batch_size=32)
    first = [next(MemoryExamples(x).index_batches(cfg, 32)) for x in (a, b)]
    assert np.array_equal(*first)


def test_rows_that_differ_in_one_byte_of_one_feature_are_ordered_by_it():
    rows = {"source": np.zeros((3, 1), np.int64), "genre_share": np.array([[0.5], [0.25], [0.5]], np.float32),
            "user_history": np.array([[1, 2], [1, 2], [1, 3]])}
    order = canonical_order(rows)
    assert sorted(order.tolist()) == [0, 1, 2]
    again = canonical_order({k: a[[2, 1, 0]] for k, a in rows.items()})
    assert [[2, 1, 0][i] for i in again] == order.tolist()  # the same rows come out in the same order


def test_an_empty_split_has_an_empty_order():
    assert canonical_order({"source": np.zeros((0, 1), np.int64)}).shape == (0,)
