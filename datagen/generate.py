"""`podcast-mtl generate`: synthetic logs written to a folder, with the summary printed."""
from __future__ import annotations

from typing import Dict

from core.logs import check_replaceable, read_manifest, write_logs
from datagen.summary import format_summary, summarize
from datagen.synthetic import GeneratorConfig, generate
from datagen.world import WORLD_VERSION, World


def generate_logs(cfg: GeneratorConfig, out_dir: str, verbose: bool = True, overwrite: bool = False) -> Dict:
    cfg.validate()
    check_replaceable(out_dir, overwrite)  # before the work, not after
    if verbose:
        print(f"generating {cfg.days} days x ~{cfg.impressions_per_day:,} impressions (seed {cfg.seed}) ...",
              flush=True)
    world = World(cfg)
    df = generate(cfg, world)
    summary = summarize(df, world)
    manifest = {"generator": "synthetic", "world_version": WORLD_VERSION, "config": cfg.manifest_config(),
                "summary": summary}
    write_logs(df, out_dir, manifest, with_truth=True, overwrite=overwrite)
    if verbose:
        print(format_summary(summary), flush=True)
    return summary


def ensure_logs(cfg: GeneratorConfig, out_dir: str, verbose: bool = True) -> Dict:
    """Generates logs unless `out_dir` already holds logs made with this exact config and world version.

    Reusing them keeps file fingerprints stable, so the pipeline's ExampleGen cache stays valid.
    """
    manifest = read_manifest(out_dir)
    same = manifest and manifest.get("config") == cfg.manifest_config()
    if same and manifest.get("world_version") == WORLD_VERSION:
        if verbose:
            print(f"reusing synthetic logs in {out_dir} (same generator config)", flush=True)
        return manifest["summary"]
    return generate_logs(cfg, out_dir, verbose)
