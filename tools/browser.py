"""A page in headless Chromium, driven through the DevTools protocol over a pipe: open a file, run
JavaScript in it (click, choose, read the DOM back), time its load, take screenshots of parts of it.

Chromium's ``--remote-debugging-pipe`` reads protocol messages on its file descriptor 3 and answers
on 4, each a JSON object ended by a NUL byte: no port, no WebSocket library, nothing but Debian's
``chromium`` package. tests/test_report_browser.py drives the report with it, and

    python tools/browser.py reports/latest/index.html
    python tools/browser.py reports/latest/index.html --shots docs/img

print how long the report takes to load and how large it is (the figures docs/report.md quotes),
and take the screenshots of a plan tree and a plan diff that docs/report.md shows.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# headless, and quiet: no sandbox (root in CI), no GPU, nothing fetched in the background
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_S = 60.0


class BrowserError(RuntimeError):
    """Chromium answered with an error, died, or did not answer in time."""


def _onto(fd: int, target: int) -> None:
    """``fd`` as ``target`` in the child, kept across exec (a pipe's ends are not inherited)."""
    os.dup2(fd, target)
    os.set_inheritable(target, True)


class Page:
    """One tab of a headless Chromium of its own (``profile``: its user data directory)."""

    def __init__(self, url: str, profile: Path, width: int = 1400, height: int = 1000) -> None:
        if CHROMIUM is None:
            raise BrowserError("Chromium is not installed (apt-get install chromium)")
        to_chromium, self._out = os.pipe()
        self._in, from_chromium = os.pipe()
        # Moved above the low numbers first: dup2 onto 3 must not close the other end it needs.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chromium, from_chromium)]

        def child() -> None:
            _onto(high[0], 3)
            _onto(high[1], 4)

        self._proc = subprocess.Popen(
            [
                CHROMIUM,
                *HEADLESS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=child,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_chromium, from_chromium, *high):
            os.close(fd)
        self._buffer = b""
        self._next = 0
        target = self._call("Target.createTarget", {"url": url})["targetId"]
        self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        # the tab shows about:blank first, complete at once: wait for the page asked for
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def _write(self, message: dict[str, Any]) -> None:
        os.write(self._out, json.dumps(message).encode() + b"\0")

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise BrowserError("Chromium closed its pipe (it died)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def _call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next += 1
        request: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        self._write(request)
        deadline = time.monotonic() + TIMEOUT_S
        while True:  # events and other sessions' messages arrive in between: not what was asked
            answer = self._read(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A protocol command to the page."""
        return self._call(method, params, self._session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (an exception in it is a BrowserError)."""
        answer = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression}: {answer['exceptionDetails'].get('text')}")
        return answer["result"].get("value")

    def wait_for(self, condition: str, timeout: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(condition):
            if time.monotonic() > deadline:
                raise BrowserError(f"waited {timeout:g} s for {condition}")
            time.sleep(0.05)

    def screenshot(self, selector: str, path: Path, pad: int = 6) -> Path:
        """A PNG of the first element ``selector`` matches, scrolled into view."""
        box = self.evaluate(
            f"(function () {{ var e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
            " var r = e.getBoundingClientRect();"
            " return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}; })()"
        )
        clip = {
            "x": max(box["x"] - pad, 0),
            "y": max(box["y"] - pad, 0),
            "width": box["width"] + 2 * pad,
            "height": box["height"] + 2 * pad,
            "scale": 1,
        }
        shot = self.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self._call("Browser.close")
        except BrowserError:
            pass
        finally:
            os.close(self._out)
            os.close(self._in)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_ms(page: Page) -> dict[str, float]:
    """The page's navigation timing: when its DOM was ready and when it finished loading, ms after navigating."""
    timing: dict[str, float] = page.evaluate(
        "(function () { var n = performance.getEntriesByType('navigation')[0];"
        " return {dom_ready_ms: n.domContentLoadedEventEnd, loaded_ms: n.loadEventEnd}; })()"
    )
    return timing


def measure(html: Path, runs: int = 5) -> None:
    """Print the file's size and the median of ``runs`` loads, each in a fresh browser."""
    loads = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as profile, Page(html.resolve().as_uri(), Path(profile)) as page:
            loads.append(load_ms(page))
    for key in ("dom_ready_ms", "loaded_ms"):
        values = sorted(t[key] for t in loads)
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{key}: median {values[len(values) // 2]:.0f} ms over {runs} loads ({shown})")
    print(f"size: {html.stat().st_size:,} bytes")


def screenshots(html: Path, scenario: str, variant: str, out: Path) -> list[Path]:
    """``scenario``'s plan tree under ``variant`` and its plan diff as first shown, as PNGs in ``out``."""
    tree = f"#tree-{scenario}-{variant}"
    with tempfile.TemporaryDirectory() as profile, Page(html.resolve().as_uri(), Path(profile)) as page:
        page.evaluate(f"document.querySelector({json.dumps(tree)}).closest('details:not(.planset)').open = true")
        page.evaluate(f"document.querySelector({json.dumps(tree)}).open = true")
        return [
            page.screenshot(tree, out / "plan-tree.png"),
            page.screenshot(f"{tree} ~ .plandiff", out / "plan-diff.png"),
        ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a report's index.html")
    parser.add_argument("--shots", type=Path, help="write plan-tree.png and plan-diff.png here instead")
    parser.add_argument("--scenario", default="recent_tasks", help="whose plans the screenshots show")
    parser.add_argument("--variant", default="baseline", help="whose tree the screenshot shows")
    args = parser.parse_args()
    if args.shots:
        print("\n".join(map(str, screenshots(args.report, args.scenario, args.variant, args.shots))))
    else:
        measure(args.report)
