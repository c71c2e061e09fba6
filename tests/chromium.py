"""Open a page in headless Chromium over the DevTools protocol (websocket-client): the HTML report's
browser tests and the screenshot in docs/ use it.

    python -m tests.chromium screenshot   # docs/report.png from the sample logs (make screenshot)

Chromium is the system's (Debian package `chromium`; .ci/run installs it). Each browser gets its own
temporary profile and a DevTools port it picks itself, so parallel runs cannot meet.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def find() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Visit:
    """What the browser saw while loading a page."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for (the page's own first)


class Browser:
    def __init__(self, binary: str):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="llm-cost-chromium-")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.05)
        port, path = port_file.read_text().split("\n")[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=60, suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method: str, **params) -> dict:
        return self.call(method, self.session, **params)

    def wait_for(self, event: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == event:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(event)

    def open(self, path: Path, width: int = 1200, height: int = 900, media: str = "") -> Visit:
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        if media:
            self.page("Emulation.setEmulatedMedia", media=media)
        self.events.clear()
        self.page("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        time.sleep(0.2)  # late console messages
        self.page("Runtime.evaluate", expression="1")  # drains events sent before it
        visit = Visit()
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Network.requestWillBeSent":
                visit.requests.append(p["request"]["url"])
            elif e.get("method") == "Runtime.exceptionThrown":
                visit.console_errors.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                visit.console_errors.append(json.dumps(p.get("args", []))[:500])
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                visit.console_errors.append(p["entry"].get("text", ""))
        self.events.clear()
        return visit

    def js(self, expression: str):
        r = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, out: Path, width: int = 1100) -> None:
        h = int(self.js("document.documentElement.scrollHeight"))
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=h, deviceScaleFactor=1, mobile=False)
        data = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        out.write_bytes(base64.b64decode(data))

    def pdf(self, paper: tuple[float, float]) -> bytes:
        """The page printed on paper (width, height) in inches, with the page's own @page margins."""
        data = self.page("Page.printToPDF", paperWidth=paper[0], paperHeight=paper[1], preferCSSPageSize=False,
                         printBackground=False)["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def browser():
    binary = find()
    if binary is None:
        raise RuntimeError("no chromium on PATH (apt-get install chromium)")
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()


SCREENSHOT = REPO / "docs" / "report.png"


def screenshot() -> None:
    """docs/report.png: the sample logs' HTML report, as Chromium shows it."""
    with tempfile.TemporaryDirectory() as d:
        page = Path(d) / "report.html"
        # The report's default quarantine file, as in the docs' examples (and removed the same way):
        # the page names it, and a temporary path would change the picture on every run.
        quarantine = REPO / "llm-cost-quarantine.jsonl"
        existed = quarantine.exists()
        try:
            subprocess.run([str(Path(sys.executable).parent / "llm-cost"), "report", "fixtures/sample", "--by",
                            "month,model", "-o", str(page), "--quiet"], cwd=REPO, check=True,
                           env={**os.environ, "TZ": "UTC"})
        finally:
            if not existed:
                quarantine.unlink(missing_ok=True)
        with browser() as b:
            b.open(page, width=1100)
            b.screenshot(SCREENSHOT)
    print(f"wrote {SCREENSHOT}")


if __name__ == "__main__":
    if sys.argv[1:] != ["screenshot"]:
        sys.exit("usage: python -m tests.chromium screenshot")
    screenshot()
