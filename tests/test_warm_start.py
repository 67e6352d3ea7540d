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


class _Vocab:
    """The one TFTransformOutput method warm start reads: the podcast vocabulary (other tables: none)."""

    def __init__(self, tokens):
        self.tokens = tokens

    def vocabulary_by_name(self, name):
        from models.preprocessing import PODCAST_VOCAB

        if name != PODCAST_VOCAB:
            raise ValueError(name)
        return [t.encode() for t in self.tokens]


def test_a_real_model_restores_from_a_pushed_version_with_a_moved_vocabulary(tmp_path):
    from models import warm_start
    from models.config import preset
    from models.model import CATEGORICAL_INPUTS, build_model, dummy_features
    from models.preprocessing import PODCAST_VOCAB

    cfg = preset("unified")
    tables = {t for _, t in CATEGORICAL_INPUTS}

    def model_for(tokens):
        sizes = {t: 7 for t in tables}
        sizes[PODCAST_VOCAB] = 1 + len(tokens) + 3  # padding row, vocabulary, 3 OOV buckets
        m = build_model(cfg, sizes, cfg.tasks())
        m(dummy_features(), training=False)
        return m

    yesterday = model_for(["p1", "p2", "p3"])
    (tmp_path / "1700000000").mkdir()
    warm_start.save(yesterday, _Vocab(["p1", "p2", "p3"]), str(tmp_path / "1700000000"))
    today = model_for(["p3", "p9", "p1", "p2"])
    fresh = {w.name: w.numpy() for w in today.weights}
    report = warm_start.restore(today, _Vocab(["p3", "p9", "p1", "p2"]), str(tmp_path))
    assert report["warm_start"] and report["remapped_tables"] == {PODCAST_VOCAB: {"kept": 3, "new": 1}}
    assert not report["skipped"]

    def emb(m):
        return next(w for w in m.weights if f"emb_{PODCAST_VOCAB}/" in w.name).numpy()

    old, new = emb(yesterday), emb(today)
    np.testing.assert_array_equal(new[1], old[3])  # p3
    np.testing.assert_array_equal(new[3], old[1])  # p1
    np.testing.assert_array_equal(new[4], old[2])  # p2
    np.testing.assert_array_equal(new[2], fresh[next(n for n in fresh if f"emb_{PODCAST_VOCAB}/" in n)][2])  # p9: fresh
    np.testing.assert_array_equal(new[5:], old[4:])  # OOV buckets
    kernels = [(a.numpy(), b.numpy()) for a, b in zip(yesterday.weights, today.weights) if "kernel" in a.name]
    assert kernels and all(np.array_equal(a, b) for a, b in kernels)  # encoder and towers copied
    # another architecture: nothing is copied, and it says so
    other = build_model(preset("ads_only"), {t: 7 for t in tables}, preset("ads_only").tasks())
    other(dummy_features(), training=False)
    assert warm_start.restore(other, _Vocab(["p1"]), str(tmp_path))["warm_start"] is False
