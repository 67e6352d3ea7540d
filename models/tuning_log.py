"""What a tuning run shows: one console line per trial, and TensorBoard HParams runs of the trials.

`CondensedTunerOutput` is a mixin for a KerasTuner tuner (before the tuner class in the bases). The
TFX Tuner executor calls `search_space_summary()` and `results_summary()`, which print about 50
lines of KerasTuner's own layout into an otherwise tidy console; here they print one line each (the
trials' own lines come from the tuner's `run_trial`). At the end of each trial its values and metrics
are written as a TensorBoard HParams run and appended to `trials.json` in `tensorboard_dir(...)`,
which outlives the Tuner's temporary working folder, so the run report lists every trial's eval AP.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

TRIALS_FILE = "trials.json"
_SYSTEM = os.sep + os.path.join(".system", "executor_execution") + os.sep


def tensorboard_dir(working_dir: str) -> str:
    """Where a tuning run's trial logs go. Under a TFX Tuner, whose working folder is temporary
    (`<node>/.system/executor_execution/<execution>/.temp/...`, removed after the execution), that is
    `<node>/tensorboard/<execution>/` beside the Tuner's outputs; elsewhere `<working_dir>/tensorboard`."""
    if _SYSTEM in working_dir:
        node, rest = working_dir.split(_SYSTEM, 1)
        return os.path.join(node, "tensorboard", rest.split(os.sep, 1)[0])
    return os.path.join(working_dir, "tensorboard")


def trial_number(trial_id) -> str:
    """A trial as the console numbers it, from 1 (KerasTuner's ids count from 0)."""
    return str(int(trial_id) + 1) if str(trial_id).isdigit() else str(trial_id)


def read_trials(folder: str) -> List[Dict]:
    """The trials written by `CondensedTunerOutput` into `folder` (a `tensorboard_dir`); [] if none."""
    path = os.path.join(folder, TRIALS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


class CondensedTunerOutput:
    """Mixin for a KerasTuner tuner: one-line summaries, trials logged for TensorBoard and the report.
    Set `self.tensorboard_dir` (None: no logs)."""

    tensorboard_dir: Optional[str] = None

    def search_space_summary(self, extended=False):
        hp = self.oracle.get_space()
        print(f"tuning: {len(hp.space)} hyperparameters searched: " + ", ".join(p.name for p in hp.space), flush=True)

    def results_summary(self, num_trials=10):
        best = self.oracle.get_best_trials(1)
        if not best:
            print("tuning: no trial completed", flush=True)
            return
        t = best[0]
        where = f"; trials in TensorBoard: {self.tensorboard_dir}" if self.tensorboard_dir else ""
        score = "n/a" if t.score is None else f"{t.score:.4f}"
        print(f"tuning: best trial {trial_number(t.trial_id)} of {len(self.oracle.trials)}, score {score}: "
              f"{json.dumps(t.hyperparameters.values)}{where}", flush=True)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if not self.tensorboard_dir:
            return
        from models.tensorboard import write_trial

        metrics = {name: h.get_last_value() for name, h in trial.metrics.metrics.items()}
        entry = {"trial": trial.trial_id, "status": str(getattr(trial.status, "value", trial.status)),
                 "score": trial.score, "values": dict(trial.hyperparameters.values), "metrics": metrics}
        extra = next((t for t in reversed(getattr(self, "trial_log", [])) if t.get("trial") == trial.trial_id), None)
        if extra:  # the tuner's own record: eval AP and relative AP per source, selected step, refined steps
            entry.update({k: extra[k] for k in ("eval_ap", "relative_ap", "step", "refined_steps") if k in extra})
        os.makedirs(self.tensorboard_dir, exist_ok=True)
        write_trial(self.tensorboard_dir, trial.trial_id, entry["values"], metrics)
        trials = read_trials(self.tensorboard_dir) + [entry]
        tmp = os.path.join(self.tensorboard_dir, TRIALS_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(trials, f, indent=1, default=float)
        os.replace(tmp, os.path.join(self.tensorboard_dir, TRIALS_FILE))
