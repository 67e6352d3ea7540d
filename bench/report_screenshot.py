"""A screenshot of a run's report.html in a headless Chromium, offline.

    python bench/report_screenshot.py [--root runs/default] [--out report.png] [--height 9000]

Opens `ROOT/report.html` with every network request refused (`--host-resolver-rules` maps every
host to nothing, and a proxy that does not exist), writes a full-width PNG of the top `--height`
pixels, and prints the page's section headings as the browser's DOM holds them. Needs the Debian
package `chromium` (`apt-get install -y chromium`). The test `tests/test_report.py` uses the same
functions.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

# every host resolves to nothing and every request goes to a proxy that is not there: offline
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
          "--no-first-run", "--disable-extensions", "--disable-background-networking"]


def chromium() -> Optional[str]:
    """The Chromium executable, or None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: List[str], timeout: int = 120) -> subprocess.CompletedProcess:
    exe = chromium()
    if not exe:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *_FLAGS, *OFFLINE, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def screenshot(html_path: str, png: str, width: int = 1280, height: int = 9000) -> str:
    """Writes a PNG of the page's top `height` pixels to `png`; returns its path."""
    r = _run([f"--screenshot={os.path.abspath(png)}", f"--window-size={width},{height}",
              "file://" + os.path.abspath(html_path)])
    if not os.path.exists(png):
        raise RuntimeError(f"chromium wrote no screenshot (exit {r.returncode}): {r.stderr[-2000:]}")
    return png


def dump_dom(html_path: str) -> str:
    """The page's DOM after Chromium loaded it, serialized."""
    r = _run(["--dump-dom", "file://" + os.path.abspath(html_path)])
    if r.returncode != 0 or "<html" not in r.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (exit {r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def headings(dom: str) -> List[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<h2[^>]*>(.*?)</h2>", dom, flags=re.S)]


def ink(png: str) -> dict:
    """How much of the screenshot is not white: {"ink": share of non-white pixels, "colors": distinct
    colours, "size": (width, height)} (a blank page has ink ~0 and a handful of colours)."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    small = image.resize((image.width // 4, image.height // 4))
    pixels = list(small.getdata())
    inked = sum(1 for p in pixels if min(p) < 235)
    return {"ink": inked / len(pixels), "colors": len(set(pixels)), "size": image.size}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="runs/default", help="the run root holding report.html (default %(default)s)")
    p.add_argument("--out", default="report.png", help="the screenshot PNG (default %(default)s)")
    p.add_argument("--width", type=int, default=1280, help="window width in pixels (default %(default)s)")
    p.add_argument("--height", type=int, default=9000, help="pixels of the page captured (default %(default)s)")
    args = p.parse_args(argv)
    page = os.path.join(args.root, "report.html")
    if not os.path.exists(page):
        print(f"{page}: no report.html (run `podcast-mtl run --root {args.root}` first)", file=sys.stderr)
        return 2
    if not chromium():
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    screenshot(page, args.out, args.width, args.height)
    print(f"screenshot: {args.out} {ink(args.out)}")
    print("sections in the DOM: " + "; ".join(headings(dump_dom(page))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
