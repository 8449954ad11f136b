"""A real headless browser for tests: Debian's chromium, driven over the DevTools protocol.

:func:`open_page` starts chromium with a throw-away profile and the network switched off,
loads a ``file://`` page and returns what a person would see and what the page did: console
messages and exceptions, every URL it requested, the result of a script evaluated in the page,
and a full-page screenshot.

Example::

    with Chromium(tmp_path) as browser:
        page = browser.open("/tmp/report/report.html", script="document.title")
        assert not page.errors
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--remote-debugging-port=0",
]
INSTALL_HINT = "install Debian's chromium (apt-get update && apt-get install -y chromium; .ci/setup does it)"


def chromium_binary() -> str:
    """The chromium executable; fails the test (never skips) when there is none."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"no chromium on PATH: the report test needs a real headless browser; {INSTALL_HINT}")


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    value: object = None
    screenshot: bytes = b""


class Chromium:
    """One headless chromium process for the ``with`` block."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def __enter__(self):
        profile = self.folder / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.log = open(self.folder / "chromium.log", "w+")
        self.process = subprocess.Popen([chromium_binary(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            self.log.seek(0)
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", self.log.read())
            if match:
                port = int(match.group(1))
            elif self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                pytest.fail(f"chromium did not start (exit code {self.process.poll()}): {self.log.read()[-2000:]}")
            else:
                time.sleep(0.2)
        self.port = port
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    def open(self, path: str, *, script: str, width: int = 1366, timeout: float = 60.0) -> Page:
        """Load ``path`` offline, evaluate ``script`` (an expression; its JSON value is returned), screenshot."""
        import websocket

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as response:
            targets = json.load(response)
        target = next(t for t in targets if t.get("type") == "page")
        socket = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        page = Page()
        counter = iter(range(1, 1_000_000))

        def on_event(message: dict) -> None:
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                page.console.append(f"{params.get('type')}: {text}")
                if params.get("type") in ("error", "assert"):
                    page.errors.append(f"console.{params.get('type')}: {text}")
            elif method == "Runtime.exceptionThrown":
                page.errors.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                page.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
            elif method == "Network.loadingFailed":
                page.errors.append(f"failed to load: {params.get('errorText')}")

        def call(method: str, wait_for: str | None = None, **params):
            ident = next(counter)
            socket.send(json.dumps({"id": ident, "method": method, "params": params}))
            result, seen = None, wait_for is None
            while result is None or not seen:
                message = json.loads(socket.recv())
                if message.get("id") == ident:
                    if "error" in message:
                        raise AssertionError(f"DevTools {method}: {message['error']}")
                    result = message.get("result", {})
                else:
                    on_event(message)
                    seen = seen or message.get("method") == wait_for
            return result

        try:
            for domain in ("Runtime", "Log", "Network", "Page"):
                call(f"{domain}.enable")
            call("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1)
            call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
            call("Page.navigate", wait_for="Page.loadEventFired", url=Path(path).resolve().as_uri())
            evaluated = call("Runtime.evaluate", expression=f"JSON.stringify({script})", returnByValue=True)
            if "exceptionDetails" in evaluated:
                raise AssertionError(f"the test's script failed in the page: {evaluated['exceptionDetails']}")
            page.value = json.loads(evaluated["result"]["value"])
            height = call("Runtime.evaluate", expression="document.documentElement.scrollHeight", returnByValue=True)["result"]["value"]
            call("Emulation.setDeviceMetricsOverride", width=width, height=int(height), deviceScaleFactor=1, mobile=False)
            shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            page.screenshot = base64.b64decode(shot["data"])
        finally:
            socket.close()
        return page


def save_screenshot(page: Page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(page.screenshot)
    return path


def update_doc_image(source: Path, target: Path) -> None:
    """Copy a screenshot into the docs when it is not there yet, or when ``PE_UPDATE_DOC_IMAGES=1``."""
    if not target.exists() or os.environ.get("PE_UPDATE_DOC_IMAGES") == "1":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
