"""What could make a unified ads + promotions model pay, measured on a log folder (no training).

    python bench/mtl_mechanisms.py LOGS [LOGS ...] [--test-days 5] [--eval-days 3] [--out FILE.json]

Per log folder, with the pipeline's temporal split (last `test-days` days test, `eval-days` before
them eval, the rest train):
- ads volume: ad and promotion impressions (and streams) in the training split;
- promotion history of the test ads: share of test ad impressions whose podcast had a promotion
  impression strictly before the impression, and share whose podcast had one in the training
  split; share of the podcasts advertised in the test days whose first ad impression in the log
  came after a promotion impression of theirs;
- user overlap: share of test ad impressions whose user had a promotion impression in training;
- where the logs carry the world's truth (synthetic logs): the ad-specific share of the variance of
  the ad-stream logit, from the manifest's summary (`datagen.summary`).
Counts use only the logs' own event times (nothing after an impression for "before").
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def mechanisms(logs: str, test_days: int, eval_days: int) -> dict:
    from core.logs import partition_days, read_logs, read_manifest
    from core.split import TemporalSplit

    df = read_logs(logs, columns=["event_time", "source", "podcast_id", "user_id", "stream"])
    _, bounds = TemporalSplit(test_days=test_days, eval_days=eval_days).resolve(partition_days(logs))
    t = df.event_time.to_numpy(np.int64)
    ads = (df.source == "ads").to_numpy()
    train = (t >= bounds["train"][0]) & (t < bounds["train"][1])
    test = (t >= bounds["test"][0]) & (t < bounds["test"][1])
    out = {"logs": logs, "split": {k: list(v) for k, v in bounds.items()},
           "train_ads": int((train & ads).sum()), "train_promotions": int((train & ~ads).sum()),
           "train_ad_streams": int(df.stream[train & ads].sum()),
           "train_promotion_streams": int(df.stream[train & ~ads].sum()),
           "test_ads": int((test & ads).sum())}
    # first promotion impression per podcast, first ad per podcast
    first_promo = df[~ads].groupby("podcast_id").event_time.min()
    first_ad = df[ads].groupby("podcast_id").event_time.min()
    test_ads = df[test & ads]
    fp = test_ads.podcast_id.map(first_promo)
    out["test_ads_with_promotion_before"] = float((fp.notna() & (fp < test_ads.event_time)).mean())
    promo_train_pods = set(df.podcast_id[train & ~ads])
    out["test_ads_with_promotion_in_train"] = float(test_ads.podcast_id.isin(promo_train_pods).mean())
    pods = test_ads.podcast_id.unique()
    fa, fpp = first_ad.reindex(pods), first_promo.reindex(pods)
    out["test_ad_podcasts"] = int(len(pods))
    out["test_ad_podcasts_promoted_before_first_ad"] = float((fpp.notna() & (fpp < fa)).mean())
    promo_train_users = set(df.user_id[train & ~ads])
    out["test_ads_user_with_promotions_in_train"] = float(test_ads.user_id.isin(promo_train_users).mean())
    ads_train_pods = set(df.podcast_id[train & ads])
    out["test_ads_podcast_with_ads_in_train"] = float(test_ads.podcast_id.isin(ads_train_pods).mean())
    summary = (read_manifest(logs) or {}).get("summary", {})
    if "ad_stream_logit_variance_share" in summary:
        out["ad_specific_share_of_ad_stream_logit"] = summary["ad_stream_logit_variance_share"]["ad_specific"]
        out["learnable_stream_ap_last_days"] = summary.get("learnable_stream_ap_last_days")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("logs", nargs="+")
    p.add_argument("--test-days", type=int, default=5)
    p.add_argument("--eval-days", type=int, default=3)
    p.add_argument("--out")
    args = p.parse_args(argv)
    rows = [mechanisms(logs, args.test_days, args.eval_days) for logs in args.logs]
    for r in rows:
        print(json.dumps(r, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
