"""Someone hears about a retrain: failures, crashes, cancellations and promotions go to the
services named in ``$DCGAN_NOTIFY`` (Apprise URLs, space- or comma-separated: ``slack://...``,
``mailto://...``, ``json://host/path`` for any webhook); and the sample grids are pictures a
browser opens from the Prefect UI.

The URLs hold tokens, so they come from the environment (a deployment's job variables, a
worker's secret), never from flow parameters, and are never logged: a failed delivery names the
service's scheme only."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path

ENV = "DCGAN_NOTIFY"


def targets(env: dict[str, str] | None = None) -> list[str]:
    raw = (env if env is not None else os.environ).get(ENV, "")
    return [u for u in re.split(r"[\s,]+", raw) if u]


def send(title: str, body: str, kind: str = "info", log: Callable[[str], None] | None = None,
         env: dict[str, str] | None = None) -> int:
    """Send one message to every target; returns how many took it. A target that fails is named
    by its scheme alone in ``log`` (its URL may hold a token); a notification never fails a run."""
    urls = targets(env)
    if not urls:
        return 0
    import apprise

    sent = 0
    for url in urls:
        box = apprise.Apprise()
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        if not box.add(url):
            if log:
                log(f"notification: a {scheme}:// target in ${ENV} is not a URL Apprise knows; skipped")
            continue
        notify_type = {"failure": apprise.NotifyType.FAILURE, "success": apprise.NotifyType.SUCCESS}.get(
            kind, apprise.NotifyType.INFO)
        if box.notify(title=title, body=body, notify_type=notify_type):
            sent += 1
        elif log:
            log(f"notification: the {scheme}:// target in ${ENV} did not take the message")
    return sent


def image_markdown(pictures: list[tuple[str, Path]], title: str) -> str:
    """Markdown that shows PNG files side by side wherever markdown is rendered, the Prefect UI
    included: each picture inline as a ``data:`` URI (a sample grid is tens of kB), never a
    ``file://`` link to a worker's disk."""
    head = "| " + " | ".join(label for label, _ in pictures) + " |"
    rule = "|" + "---|" * len(pictures)
    cells = []
    for label, path in pictures:
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            cells.append(f"![{label}](data:image/png;base64,{data})")
        else:
            cells.append(f"({label}: no picture)")
    return f"### {title}\n\n{head}\n{rule}\n| " + " | ".join(cells) + " |\n"
