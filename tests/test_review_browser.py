"""review.html in a real browser: headless Chromium (the system package; `make test` installs it
where apt can) opens the page from disk, and every image on it must have loaded. Driven through
the DevTools protocol over a websocket (the ``websockets`` package Prefect already brings).

Without Chromium the test is skipped, unless DCGAN_REQUIRE_BROWSER is set (.ci/run sets it):
then it fails, so CI cannot pass it by not having a browser.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dcgan.app import cli
from tests.conftest import REPO


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def open_in_browser(page: Path, screenshot: Path | None = None, timeout: float = 60) -> list[dict]:
    """Each image of ``page`` as Chromium loaded it: ``{"src", "complete", "width"}``
    (``width`` 0: it did not load). ``screenshot``: the whole page as a PNG."""
    from websockets.sync.client import connect

    exe = chromium()
    if exe is None:
        raise RuntimeError("no chromium on PATH")
    # its own session, so that stopping it stops its renderer and GPU processes too (they write to the
    # profile folder until they are gone)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1300,900",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            url = None
            while url is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    raise RuntimeError(f"chromium exited {proc.returncode} before it listened")
                found = re.search(r"DevTools listening on (ws://\S+)", line)
                url = found.group(1) if found else None
            if url is None:
                raise RuntimeError("chromium did not say where it listens")
            with connect(url, max_size=None, open_timeout=timeout) as ws:
                ids = iter(range(1, 10**6))

                def call(method: str, params: dict | None = None, session: str | None = None) -> dict:
                    n = next(ids)
                    msg = {"id": n, "method": method, "params": params or {}}
                    if session:
                        msg["sessionId"] = session
                    ws.send(json.dumps(msg))
                    while True:
                        reply = json.loads(ws.recv(timeout=max(1.0, deadline - time.monotonic())))
                        if reply.get("id") == n:
                            if "error" in reply:
                                raise RuntimeError(f"{method}: {reply['error']}")
                            return reply["result"]

                target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
                session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
                call("Page.enable", session=session)
                call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
                expr = ("document.readyState === 'complete' ? JSON.stringify(Array.from(document.images, "
                        "i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth}))) : ''")
                images = ""
                while not images and time.monotonic() < deadline:
                    images = call("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                                  session=session)["result"].get("value", "")
                    time.sleep(0.1)
                if not images:
                    raise RuntimeError(f"{page} did not finish loading in {timeout:g} s")
                if screenshot is not None:
                    shot = call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                session=session)
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                return json.loads(images)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture
def browser() -> None:
    if chromium() is None:
        if os.environ.get("DCGAN_REQUIRE_BROWSER"):
            pytest.fail("DCGAN_REQUIRE_BROWSER is set and no chromium is on PATH (make browser installs it)")
        pytest.skip("no chromium on PATH (make browser installs it; .ci/run requires it)")


def test_every_image_of_review_html_loads_in_chromium(browser, tmp_path: Path):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True, capture_output=True)
    for path in ("reports/metrics.json", "reports/samples.png", "dvclive/plots/metrics/train/fid.tsv",
                 "dvclive/plots/metrics/train/loss_d.tsv"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    metrics = json.loads((tmp_path / "reports/metrics.json").read_text())
    (tmp_path / "reports/metrics.json").write_text(json.dumps({**metrics, "fid": metrics["fid"] + 10}))
    assert cli.main(["review", "--repo", str(tmp_path), "-o", str(tmp_path / "out/review.md"), "main"]) == 1

    shot = tmp_path / "review.png"
    images = open_in_browser(tmp_path / "out/review.html", shot)
    assert [i["src"] for i in images] == ["review_files/base_samples.png", "review_files/head_samples.png",
                                          "review_files/curves.png"]
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    # the check can fail: a picture gone from beside the page is an image that did not load
    (tmp_path / "out/review_files/curves.png").unlink()
    broken = {i["src"]: i["width"] for i in open_in_browser(tmp_path / "out/review.html")}
    assert broken["review_files/curves.png"] == 0 and broken["review_files/base_samples.png"] > 0
