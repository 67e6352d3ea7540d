"""Strict JSON for the files other tools read (`summary.json`, `schedule.json`): NaN and infinity are
not JSON, so they are written as null and the path of each is listed with the reason."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional


def strict_json(obj: Any, nulls: Optional[Dict[str, str]] = None, reason: str = "not a number (NaN)",
                path: str = "") -> Any:
    """`obj` with every float NaN / inf replaced by None; `nulls` gets {dotted path: reason} for each."""
    if isinstance(obj, float) and not math.isfinite(obj):
        if nulls is not None:
            nulls[path] = reason if math.isnan(obj) else f"infinite ({obj})"
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v, nulls, reason, f"{path}.{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v, nulls, reason, f"{path}[{i}]") for i, v in enumerate(obj)]
    return obj
