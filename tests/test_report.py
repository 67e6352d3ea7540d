"""What a user sees after a run: report.html (self-contained, every section, read by a real headless
Chromium offline), report.md, the model card, the TensorBoard logs, the console's progress lines."""
import io
import json
import os
import re
import time

import pytest

from core.fields import SOURCES

URL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|https?://|url\(\s*["']?https?:""", re.I)


def _summary(**kw):
    from pipeline.run_summary import RunSummary

    return RunSummary(**dict(dict(state="failed", failed=True, blessed=False, started="2026-01-01T00:00:00",
                                  not_pushed_reason="stopped at TemporalExampleGen: no logs"), **kw))


def _assert_self_contained(page: str):
    assert page.startswith("<!DOCTYPE html>")
    assert not URL.search(page), URL.search(page).group(0)  # no http(s):// or protocol-relative resource
    assert "<script" not in page and "<link" not in page and "<iframe" not in page


def test_report_of_a_run_that_stopped_early_has_every_section_and_says_what_is_missing(tmp_path):
    from pipeline.reports import SECTIONS, write_reports

    (tmp_path / "statistics.html").write_text("an earlier run's Facets page")
    written = write_reports(str(tmp_path), _summary())
    assert set(written) == {"report", "html"} and not (tmp_path / "statistics.html").exists()
    page = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    _assert_self_contained(page)
    for anchor, heading in SECTIONS:
        assert f'<section id="{anchor}"><h2>{heading}</h2>' in page and f'href="#{anchor}"' in page
        assert f"## {heading}\n" in md
    for text in ("No statistics (the run stopped before StatisticsGen).", "ExampleValidator did not run.",
                 "No Tuner ran", "No training logs", "Not pushed: stopped at TemporalExampleGen: no logs"):
        assert text in md and text in page.replace("&#x27;", "'"), text
    assert "data:image/png" not in page  # nothing to draw


def test_report_with_a_baseline_names_it_and_compares_per_source(tmp_path):
    from pipeline.reports import report_html, report_markdown

    s = _summary(state="finished", failed=False, not_pushed_reason="not blessed: x",
                 ap={"ads": {"ad_stream": 0.25}, "promotions": {"promo_stream": 0.1}},
                 baseline={"kind": "incumbent (imported)", "model": "/m/1", "ap": {"ads": {"ad_stream": 0.3}}},
                 tuned_hyperparameters={"source_alpha": 1.0, "learning_rate": 0.001})
    md = report_markdown(s, str(tmp_path))
    assert "| ads | ad_stream | 0.2500 | 0.3000 |" in md and "| promotions | promo_stream | 0.1000 | - |" in md
    assert "Baseline: incumbent (imported) (`/m/1`)." in md
    assert "Tuned hyperparameters (natural mix): source_alpha=1.0, learning_rate=0.001." in md
    page = report_html(s, str(tmp_path))
    _assert_self_contained(page)
    assert '<td class="text">ads</td><td class="text">ad_stream</td><td>0.2500</td><td>0.3000</td>' in page


def test_drift_distances_of_statistics_protos():
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from pipeline.report_facts import drift

    def categorical(shares):
        f = statistics_pb2.FeatureNameStatistics(name="c")
        f.string_stats.common_stats.num_non_missing = 100
        f.string_stats.common_stats.avg_num_values = 1
        for v, n in shares.items():
            f.string_stats.rank_histogram.buckets.add(label=v, sample_count=n)
        return f

    def numeric(quantiles):
        f = statistics_pb2.FeatureNameStatistics(name="x")
        h = f.num_stats.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
        for lo, hi in zip(quantiles, quantiles[1:]):
            h.buckets.add(low_value=lo, high_value=hi, sample_count=10)
        return f

    assert drift(categorical({"a": 50, "b": 50}), categorical({"a": 80, "b": 20})) == pytest.approx(("L-inf", 0.3))
    assert drift(categorical({"a": 100}), categorical({"a": 100}))[1] == 0
    same = drift(numeric([0, 1, 2, 3, 4]), numeric([0, 1, 2, 3, 4]))
    shifted = drift(numeric([0, 1, 2, 3, 4]), numeric([2, 3, 4, 5, 6]))
    assert same == ("KS", 0) and shifted[0] == "KS" and shifted[1] == pytest.approx(0.5)


def test_progress_prints_a_heartbeat_while_a_component_runs_and_stops_with_it():
    import logging

    from pipeline.local_runner import _Progress

    out = io.StringIO()
    progress = _Progress(3, out, heartbeat=0.2).start()
    log = logging.getLogger("test-progress")
    log.addHandler(progress)
    log.setLevel(logging.INFO)
    try:
        log.info("TemporalExampleGen: 24000 rows read, 23973 kept, 27 rejected {}, 0 with a repeated impression_id")
        log.info("Component Transform is running.")
        time.sleep(0.9)
        log.info("Component Transform is finished.")
        time.sleep(0.5)  # finished: no more heartbeats
    finally:
        log.removeHandler(progress)
        progress.stop()
    lines = out.getvalue().splitlines()
    beats = [line for line in lines if "Transform still running" in line]
    assert len(beats) >= 2 and all("(23,973 rows in the run)" in b for b in beats), lines
    assert lines[-1].strip().startswith("Transform done in") and not progress._timer.is_alive()


def test_the_config_line_says_natural_mix_when_it_is_one():
    from models.config import ModelConfig, preset

    assert ModelConfig(source_alpha=1.0).mix_description() == "natural mix"  # balanced with alpha 1
    assert preset("unified").mix_description() == "natural mix"
    assert preset("promotions_baseline").mix_description() == "natural mix"
    assert ModelConfig().mix_description() == "equal shares per source"
    assert ModelConfig(source_alpha=0.5).mix_description() == "balanced mix (source_alpha 0.5)"


def test_model_card_is_written_as_markdown_and_strict_json(tmp_path):
    from models.model_card import write_model_card

    card = {"model_details": {"name": "m", "version": "7", "code_version": "git abc"},
            "model_parameters": {"preset": "unified", "data": {"window": {"first": "a", "last": "b"}}},
            "quantitative_analysis": {"ap": [{"source": "ads", "head": "ad_stream", "candidate": float("nan")}]},
            "considerations": {"baseline": "none", "blessed": True}}
    md, js = write_model_card(str(tmp_path), card)
    loaded = json.load(open(js))
    assert loaded["quantitative_analysis"]["ap"][0]["candidate"] is None  # NaN is not JSON
    text = open(md).read()
    assert text.startswith("# Model card: m version 7") and "code version: git abc" in text and "window: a .. b" in text
    with pytest.raises(ValueError, match="unknown groups"):
        write_model_card(str(tmp_path), {"metrics": {}})


# --- on the session's real DAG run ------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(pipeline_run):
    from pipeline.run_root import RunRoot

    root = RunRoot(pipeline_run["root"])
    # the run's own report, as written at its end (pipeline_run keeps a copy: other tests rerun in that root)
    html, md = (os.path.join(pipeline_run["reports"], os.path.basename(p)) for p in (root.report_html, root.report_md))
    return {"root": root, "html_path": html, "html": open(html).read(), "md": open(md).read(),
            "summary": pipeline_run["summary"], "config": pipeline_run["config"]}


@pytest.mark.slow
def test_report_html_of_a_real_run_holds_every_fact_and_embeds_its_figures(report):
    from pipeline.reports import SECTIONS

    page, md, s, config = report["html"], report["md"], report["summary"], report["config"]
    _assert_self_contained(page)
    for anchor, heading in SECTIONS:
        assert f'<section id="{anchor}"><h2>{heading}</h2>' in page and f"## {heading}\n" in md
    assert "Could not read everything" not in page, re.findall(r"Could not read everything[^<]*", page)
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 10 and all(len(i) > 2000 for i in images)  # curves, slices, missing rates, features
    # splits with counts per source: ExampleGen's own counts
    for split, by_source in s.rows["splits"].items():
        assert f"| {split} | {s.splits[split]:,} | " + " | ".join(f"{by_source[x]:,}" for x in SOURCES) in md
    # the gate: floors, tolerance, relative change per source
    for source, floor in config.floors.items():
        assert re.search(rf"\| {source} \| \w+ \| {floor:.4f} \| ", md), source
    assert f"at most {config.ap_tolerance:.0%} (relative) below the baseline" in md
    assert s.baseline["kind"] in md
    # tuning: every trial with its score and eval AP
    rows = [line for line in md.split("## Tuning trials")[1].split("##")[0].splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + config.tuning.trials and "(best)" in md.split("## Tuning trials")[1].split("##")[0]
    # AP per source x popularity bucket with counts, candidate and baseline
    sliced = md.split("## AP per source and popularity bucket")[1].split("##")[0]
    buckets = {line.split(" | ")[1] for line in sliced.splitlines()[2:] if line.startswith("| ")}
    assert {"all"} < buckets and len(buckets) >= 3, buckets
    assert "## Calibration" in md
    assert "train/loss/" in md and "validation/ap/" in md  # curves from the Trainer's TensorBoard logs
    for split in ("train", "eval", "test"):
        assert f"train -> {split}" in md or split == "train"
        assert f"missing {split}" in md


@pytest.mark.slow
def test_report_html_renders_in_headless_chromium_offline(report, tmp_path):
    from bench.report_screenshot import chromium, dump_dom, headings, ink, screenshot
    from pipeline.reports import SECTIONS

    if not chromium():
        pytest.skip("chromium is not installed (apt-get install -y chromium): the page was not opened in a browser")
    page = report["html_path"]
    dom = dump_dom(page)
    assert headings(dom) == [h for _, h in SECTIONS]
    assert len(re.findall(r'<img src="data:image/png', dom)) >= 10
    png = screenshot(page, str(tmp_path / "report.png"), height=3000)
    seen = ink(png)
    assert seen["size"] == (1280, 3000)
    assert seen["ink"] > 0.03 and seen["colors"] > 100, seen  # a blank page: ink ~0, a few colours


@pytest.mark.slow
def test_pushed_model_has_a_model_card(report):
    from components.atomic_pusher.executor import tree_digest
    from models.model_card import MODEL_CARD_JSON, MODEL_CARD_MD, model_card_paths

    s = report["summary"]
    assert s.pushed_model, s.not_pushed_reason
    md, js = model_card_paths(s.pushed_model)
    assert md == s.pushed_model + "." + MODEL_CARD_MD and js == s.pushed_model + "." + MODEL_CARD_JSON
    # beside the version, not in it: the version holds exactly the files the Pusher verified
    assert not set(tree_digest(s.pushed_model)) & {MODEL_CARD_MD, MODEL_CARD_JSON}
    card = json.load(open(js))
    d, p, q, c = (card[g] for g in ("model_details", "model_parameters", "quantitative_analysis", "considerations"))
    assert d["version"] == os.path.basename(s.pushed_model) and re.match(r"(git [0-9a-f]{40}|podcast-mtl )", d["code_version"])
    assert set(d["signatures"]) == {"serving_default", "serving_raw"}
    assert p["preset"] == "unified" and p["tuned_values"] == s.tuned_hyperparameters
    assert p["data"]["rows_kept"] == s.rows["rows_kept"] and p["data"]["window"]["first"] < p["data"]["window"]["last"]
    assert {(r["source"], r["head"]) for r in q["ap"]} == {(x, h) for x in SOURCES for h in s.ap[x]}
    assert any(r["bucket"] != "all" for r in q["slices"]) and q["calibration_note"]
    assert c["blessed"] is True and c["baseline"].startswith(s.baseline["kind"])
    assert {r["source"] for r in c["gate"]} == set(SOURCES)
    assert "## Quantitative analysis" in open(md).read()
    assert md in report["md"]


@pytest.mark.slow
def test_tensorboard_logs_use_training_steps_and_hold_every_head(report):
    from tensorboard.backend.event_processing import event_accumulator as ea

    s, config = report["summary"], report["config"]
    logs = os.path.join(s.artifacts["Trainer"]["ModelRun"], "logs")
    tags = {}
    for run in ("train", "validation"):
        acc = ea.EventAccumulator(os.path.join(logs, run), size_guidance={ea.TENSORS: 0})
        acc.Reload()
        tags[run] = {t: [e.step for e in acc.Tensors(t)] for t in acc.Tags()["tensors"]}
    heads = config.model.heads
    assert {f"loss/{h}" for h in heads} | {"loss/total"} <= set(tags["train"])
    assert {f"loss/{h}" for h in heads} <= set(tags["validation"])
    assert {f"stream_ap/{x}" for x in SOURCES} <= set(tags["validation"])
    assert {t.split("/")[1] for t in tags["validation"] if t.startswith("ap/")} == set(heads)
    steps = tags["train"]["loss/total"]
    every = config.model.eval_every_steps
    assert steps[0] == every and all(b - a == every for a, b in zip(steps, steps[1:]) if b < config.model.train_steps)
    assert "selected_step" in tags["validation"]
    # the Tuner's trials: HParams runs beside the Tuner's outputs
    trials = os.path.join(os.path.dirname(os.path.dirname(s.artifacts["Tuner"]["TunerResults"])), "tensorboard",
                          os.path.basename(s.artifacts["Tuner"]["TunerResults"]))
    assert len([d for d in os.listdir(trials) if d.startswith("trial_")]) == config.tuning.trials
