"""A model card next to a pushed model: `<serving>/<version>.model_card.md` (for people) and
`<serving>/<version>.model_card.json` (the same fields, for tools), written by
`write_model_card(version_dir, card)`. Beside the version folder, not in it: a pushed version's files
are exactly the ones the Pusher verified and recorded in its completion marker, and TF Serving
ignores names that are not numbers.

The Model Card Toolkit does not install beside the pinned stack (model-card-toolkit 2.0.0 requires
absl-py<1.1, jsonschema<4 and tensorflow-model-analysis<0.42; constraints.txt pins absl-py 1.4.0,
jsonschema 4.26.0 and TFMA 0.47), so the project writes the card itself, grouped as the toolkit's
schema groups it: `model_details` (name, version, code version, created), `model_parameters`
(preset, model config, tuned values, data window and row counts), `quantitative_analysis` (test AP
per source, head and slice; calibration when evaluated), and `considerations` (the baseline and
the gate's decision). The fields are built from a run by `pipeline/reports.py` (`model_card_fields`).
"""
from __future__ import annotations

import json
from typing import Dict, List, Tuple

MODEL_CARD_MD = "model_card.md"
MODEL_CARD_JSON = "model_card.json"


def model_card_paths(version_dir: str) -> Tuple[str, str]:
    """(`<serving>/<version>.model_card.md`, `... .json`) of the pushed version folder `version_dir`."""
    base = version_dir.rstrip("/")
    return f"{base}.{MODEL_CARD_MD}", f"{base}.{MODEL_CARD_JSON}"
GROUPS = ("model_details", "model_parameters", "quantitative_analysis", "considerations")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "-"
    return str(value)


def _table(rows: List[Dict]) -> List[str]:
    if not rows:
        return ["(none)"]
    header = list(rows[0])
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(_fmt(r.get(h)) for h in header) + " |" for r in rows])


def model_card_markdown(card: Dict) -> str:
    d, p, q, c = (card.get(g, {}) for g in GROUPS)
    lines = [f"# Model card: {d.get('name', 'model')} version {d.get('version', '-')}", "",
             "## Model details", "",
             f"- code version: {d.get('code_version', '-')}",
             f"- created: {d.get('created', '-')}",
             f"- pushed to: `{d.get('path', '-')}`",
             f"- signatures: {', '.join(d.get('signatures', [])) or '-'}", "",
             "## Model parameters", "",
             f"- preset: `{p.get('preset', '-')}` ({p.get('mix', '-')})",
             f"- heads: {', '.join(p.get('heads', [])) or '-'}; trained by sources {', '.join(p.get('train_sources', []))}",
             f"- tuned values: {json.dumps(p.get('tuned_values')) if p.get('tuned_values') else 'none (no Tuner)'}",
             "", "### Data", "",
             f"- logs: `{p.get('data', {}).get('location', '-')}`"]
    data = p.get("data", {})
    lines += [f"- window: {data.get('window', {}).get('first', '-')} .. {data.get('window', {}).get('last', '-')}",
              f"- rows: {data.get('rows_read', '-')} read, {data.get('rows_kept', '-')} kept, "
              f"{data.get('rows_rejected', '-')} rejected", ""]
    lines += _table(data.get("splits", []))
    lines += ["", "## Quantitative analysis", "", "Test exact AP per source and head:", ""]
    lines += _table(q.get("ap", []))
    lines += ["", "Per slice (source x popularity bucket):", ""] + _table(q.get("slices", []))
    lines += ["", "Calibration:", ""]
    lines += _table(q["calibration"]) if q.get("calibration") else [q.get("calibration_note", "not computed")]
    lines += ["", "## Considerations: baseline and decision", "",
              f"- baseline: {c.get('baseline', '-')}",
              f"- blessed: {c.get('blessed')}; floors {c.get('floors')}; relative tolerance {c.get('tolerance')}", ""]
    lines += _table(c.get("gate", []))
    for failure in c.get("failures", []):
        lines.append(f"- failed: {failure}")
    return "\n".join(lines) + "\n"


def _strict(value):
    """NaN and infinities as None (JSON has none)."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_model_card(version_dir: str, card: Dict) -> Tuple[str, str]:
    """Writes the `.model_card.md` and `.model_card.json` of `card` (a dict of GROUPS) beside the
    version folder `version_dir` (`model_card_paths`); returns their paths. Works on any TensorFlow
    filesystem (gfile)."""
    import tensorflow as tf

    unknown = set(card) - set(GROUPS)
    if unknown:
        raise ValueError(f"model card: unknown groups {sorted(unknown)}; expected {GROUPS}")
    md, js = model_card_paths(version_dir)
    with tf.io.gfile.GFile(js, "w") as f:
        f.write(json.dumps(_strict(card), indent=1, sort_keys=True, default=str, allow_nan=False))
    with tf.io.gfile.GFile(md, "w") as f:
        f.write(model_card_markdown(_strict(card)))
    return md, js
