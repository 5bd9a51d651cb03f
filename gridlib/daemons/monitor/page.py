"""The web monitor's page (docs/monitor.md): one self-contained HTML document.

The page lives in package data, ``daemons/monitor/assets/``: ``index.html`` (the
document, with ``{css}``, ``{js}`` and ``{poll}`` to fill in),
``monitor.css`` and ``monitor.js``.  Each file's text goes between its
``<style>``/``<script>`` tags exactly as it is (leading newline included),
and the Content-Security-Policy allows exactly that text by its SHA-256, so
editing a file needs nothing else here.

No CDN, no web fonts, no images: it works offline and behind any proxy.  The
script polls ``/api/summary`` (``Authorization: Bearer`` with the token from
the page's own ``?token=``), updates the page in place (rows keyed by node
and job id, so an armed button or a half-typed CPU count survives a
refresh), draws each cluster's progress bar, the task stream (SVG) and the
throughput chart (``<canvas>``) itself, fetches a job's detail
(``/api/jobs/<job_id>``) when it is clicked, and posts the operator's
actions.  Destructive actions (cancel a job, close a node) take two taps.
Below 760 px wide the tables reflow into cards and the job detail fills the
screen.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources

__all__ = ["render_page", "page_headers"]


def _read(name: str) -> str:
    return (resources.files("gridlib.daemons.monitor") / "assets" / name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def _page() -> tuple[str, str]:
    """The document with its style and script in place (``{poll}`` left open), and its CSP."""
    css, js = _read("monitor.css"), _read("monitor.js")
    html = _read("index.html").replace("{css}", css).replace("{js}", js)
    csp = ("default-src 'none'; script-src " + _digest(js) + "; style-src " + _digest(css)
           + "; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'")
    return html, csp


def render_page(poll_sec: float = 1.0) -> str:
    """The page; it refreshes every ``poll_sec`` seconds."""
    return _page()[0].replace("{poll}", str(int(poll_sec * 1000)))


def page_headers() -> dict[str, str]:
    """Headers the page is served with: only its own script and style may run."""
    return {"Content-Security-Policy": _page()[1], "X-Frame-Options": "DENY"}
