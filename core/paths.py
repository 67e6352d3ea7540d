"""Where a command may write: never over what it reads."""
from __future__ import annotations

import os
from typing import Dict, Optional


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def inside(path: str, folder: str) -> bool:
    """`path` is `folder` or lies under it (symlinks resolved)."""
    p, f = _real(path), _real(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def overlap(out_flag: str, out: str, inputs: Dict[str, Optional[str]], replaces: bool = False) -> Optional[str]:
    """A one-line reason when the output `out` is, or is inside, one of `inputs` ({flag: path}); with
    `replaces` (the output folder is replaced whole) also when an input lies inside it. None when
    they are apart. Remote paths (gs://...) are compared as text."""
    for flag, path in inputs.items():
        if not path:
            continue
        if "://" in out or "://" in path:
            same = out.rstrip("/") == path.rstrip("/") or out.startswith(path.rstrip("/") + "/")
            within = replaces and path.startswith(out.rstrip("/") + "/")
        else:
            same, within = inside(out, path), replaces and inside(path, out)
        if same:
            return (f"{out_flag} {out} is {'' if _real(out) == _real(path) else 'inside '}{flag} {path}, "
                    f"which it reads: refusing to write over an input")
        if within:
            return (f"{out_flag} {out} holds {flag} {path}, which it reads; replacing it would delete the "
                    f"input: choose another {out_flag}")
    return None


def write_whole(path: str, data) -> None:
    """Writes `data` (str or bytes) to `path` through a temporary file beside it and a rename: a reader
    sees the old file or the new one, never half of one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)
