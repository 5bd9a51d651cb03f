"""The web monitor in a real headless browser (Debian ``chromium`` + ``chromedriver``, selenium).

A JobCluster on a ``gridlib node`` process, its monitor, and the page as a
user sees it at 1280x800 and on a phone (390x844): the node appears; jobs
finish and one fails; each cluster's progress bar and counts match the API;
the task stream draws a bar per job on its node; one click on the failed
job shows its traceback and stdout; long jobs show 2 running on the 2-CPU
node and the one sent ahead as "Sent to node" / "waiting on node", not
running; a running job is cancelled with the page's own button; the phone
layout does not scroll sideways and its buttons are tappable; and without
the token nothing answers.  Screenshots go to the test's ``tmp_path``; with
``GRIDLIB_MONITOR_SCREENSHOTS=DIR`` the desktop, phone and job-detail ones
are also copied there as ``monitor.png``, ``monitor-phone.png`` and
``monitor-job.png`` (how docs/monitor*.png are made, after a longer
workload so the charts have a story).

The browser is required: the test skips only when chromium, chromedriver or
selenium are missing *and* it is not running under CI (``CI`` set), where
``.ci/run`` installs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import gridlib
from gridlib import JobStatus
from gridlib.httpd import HTTPServer
from tests.helpers import NodeProcess, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DESKTOP, PHONE = (1280, 800), (390, 844)
WAIT = 45.0  # generous: a loaded 2-core machine runs chromium, a node and the test
SHOTS = os.environ.get("GRIDLIB_MONITOR_SCREENSHOTS")


def work(seconds):  # type: ignore[no-untyped-def]
    import time
    print(f"sleeping {seconds} s")
    time.sleep(seconds)  # a negative time raises ValueError: a failed job
    return seconds


def _missing() -> list[str]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    return missing


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    missing = _missing()
    if missing:
        message = (f"the browser test needs {', '.join(missing)} "
                   "(apt-get install chromium chromium-driver; pip install -e '.[dev]')")
        if os.environ.get("CI"):
            pytest.fail(message + ": under CI it must run (.ci/run installs them)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--window-size=1280,800"):
        options.add_argument(arg)
    service = Service(CHROMEDRIVER)
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_page_load_timeout(WAIT)
    browser.set_script_timeout(WAIT)
    spawned: dict[int, psutil.Process] = {}
    try:
        yield browser
    finally:
        try:  # the browser's processes, to be sure none outlives the test
            root = psutil.Process(service.process.pid)
            spawned = {p.pid: p for p in [root, *root.children(recursive=True)]}
        except (psutil.NoSuchProcess, AttributeError):
            pass
        browser.quit()
        wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                 for p in spawned.values()), 10, interval=0.05)
        for proc in spawned.values():
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture(scope="module")
def monitored(node_daemon: NodeProcess) -> Iterator[tuple[gridlib.JobCluster, HTTPServer]]:
    cluster = gridlib.JobCluster(work, nodes=[f"127.0.0.1:{node_daemon.port}"])
    server = HTTPServer(cluster, port=0)
    try:
        assert wait_for(lambda: cluster.status().nodes, 30), "the node did not join"
        yield cluster, server
    finally:
        server.shutdown()
        cluster.close(terminate=True)


def viewport(browser: Any, size: tuple[int, int], mobile: bool = False) -> None:
    width, height = size
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def until(browser: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(browser, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, f"the page never showed {what}")


def row_status(browser: Any, table: str, job: gridlib.Job) -> str | None:
    """The status badge of ``job``'s row in table ``#table`` (None: no such row)."""
    return browser.execute_script(
        "var r = document.querySelector('#' + arguments[0] + ' tr[data-job-id=\"' + arguments[1]"
        " + '\"] .badge'); return r ? r.textContent : null;", table, job.uid)


def shoot(browser: Any, path: Path, docs_name: str | None = None) -> None:
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 1000
    if SHOTS and docs_name:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(SHOTS) / docs_name)


def js(browser: Any, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


def api(server: HTTPServer, path: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}",
                                     headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def page_counts(browser: Any) -> dict[str, str]:
    """The first cluster's legend under its progress bar: state -> the count shown."""
    return js(browser, "var out = {}; document.querySelectorAll('#progress .cluster:first-child "
                       "[data-count]').forEach(function (i) { if (!i.hidden) out["
                       "i.getAttribute('data-count')] = i.querySelector('b').textContent; });"
                       " return out;")


def counts_match(browser: Any, server: HTTPServer, keys: tuple[str, ...]) -> bool:
    shown, known = page_counts(browser), api(server, "/api/clusters")[0]["progress"]
    return all(shown.get(k) == str(known[k]) for k in keys)


def detail_text(browser: Any, part: str) -> str | None:
    return js(browser, "var d = document.getElementById('detail'), p = document.getElementById("
                       "'detail-' + arguments[0]); return d.hidden || !p ? null : p.textContent;", part)


def workload(cluster: gridlib.JobCluster) -> list[gridlib.Job]:
    """Jobs that finish (for the docs' screenshots, about 40 s of them, a few failing)."""
    if not SHOTS:
        return [cluster.submit(0.05 * (i % 4)) for i in range(12)]
    rng = random.Random(7)
    return [cluster.submit(-1 if i % 80 == 40 else round(rng.uniform(0.05, 0.6), 2))
            for i in range(240)]


@pytest.mark.slow  # a real browser
def test_the_page_in_a_browser(driver, monitored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    cluster, server = monitored
    browser = driver
    viewport(browser, DESKTOP)
    browser.get(server.url)
    (node,) = cluster.status().nodes
    until(browser, lambda b: js(b, "var n = document.querySelector('#nodes tbody.node .name');"
                                   " return n && n.textContent;") == node.name, "the node")
    assert browser.find_element(By.ID, "conn").text == "live"

    # -- jobs that finish, and one that fails --------------------------------------------
    ended = workload(cluster)
    failing = cluster.submit(-1)  # submitted last: among the latest to end
    for job in [*ended, failing]:
        job(timeout=240)
    assert failing.status == JobStatus.Terminated
    until(browser, lambda b: row_status(b, "finished", failing) == "Failed", "the failed job")
    until(browser, lambda b: counts_match(b, server, ("finished", "failed", "queued", "running")),
          "the counts of the API under the progress bar")

    def bar_drawn(b: Any) -> bool:
        widths = js(b, "var w = {}; document.querySelectorAll('#progress .cluster:first-child "
                       ".pbar span').forEach(function (s) { w[s.getAttribute('data-seg')] ="
                       " s.getBoundingClientRect().width; }); return w;")
        return (3 <= widths["failed"] < widths["finished"]
                and widths["running"] == widths["dispatched"] == 0)
    until(browser, bar_drawn, "the progress bar: finished and failed")
    # the task stream: a bar per job, on its node's lanes
    until(browser, lambda b: js(b, "var r = document.querySelector('#stream rect.job[data-job=\"'"
                                   " + arguments[0] + '\"]'); return r && r.getAttribute('data-state');",
                                failing.uid) == "failed", "the failed job in the task stream")
    bars = js(browser, "return document.querySelectorAll('#stream rect.job').length")
    assert bars >= min(len(ended), 10), bars
    assert js(browser, "var t = document.querySelector('#stream svg text.node');"
                       " return t && t.getAttribute('data-node');") == node.name

    # -- one click on the failed job: its traceback and its stdout -------------------------
    row = browser.find_element(By.CSS_SELECTOR, f'#finished tr[data-job-id="{failing.uid}"]')
    row.click()
    until(browser, lambda b: "ValueError" in (detail_text(b, "traceback") or ""), "the traceback")
    assert "sleeping -1 s" in (detail_text(browser, "stdout") or "")
    assert browser.find_element(By.ID, "detail-title").text == f"Job #{failing.id}"
    assert browser.find_element(By.CSS_SELECTOR, "#detail-state .badge").text == "Failed"
    browser.find_element(By.ID, "detail-close").click()
    until(browser, lambda b: not b.find_element(By.ID, "detail").is_displayed(), "the detail closed")
    browser.find_element(By.ID, "filter-failed").click()  # only the failed ones
    until(browser, lambda b: js(b, "var s = [].map.call(document.querySelectorAll('#finished tbody "
                                   ".badge'), function (x) { return x.textContent; }); return s.length"
                                   " > 0 && s.every(function (x) { return x === 'Failed'; });"),
          "only failed jobs")
    browser.find_element(By.CSS_SELECTOR, "[data-filter=all]").click()

    # -- long jobs: 2 run on the 2-CPU node, the prefetch sends more ahead, the rest queue -----
    long_jobs = [cluster.submit(120) for _ in range(6)]
    try:
        until(browser, lambda b: counts_match(b, server, ("running", "dispatched", "queued"))
              and page_counts(b).get("running") == "2" and page_counts(b).get("dispatched", "0") != "0",
              "2 running and jobs sent to the node")
        placed = {j["job_id"]: j["state"] for j in api(server, "/api/summary")["running"]}
        running = [j for j in long_jobs if placed.get(j.uid) == "running"]
        sent = [j for j in long_jobs if placed.get(j.uid) == "dispatched"]
        assert len(running) == 2 and sent, placed
        until(browser, lambda b: all(row_status(b, "active", j) == "Running" for j in running)
              and all(row_status(b, "active", j) == "Sent to node" for j in sent), "the job states")
        until(browser, lambda b: js(b, "return document.querySelector('#total-running b').textContent")
              == "2" and js(b, "return document.querySelector('#total-dispatched b').textContent")
              == str(len(sent)), "the totals")
        busy = browser.find_element(By.CSS_SELECTOR, "#nodes tbody.node .busyval")
        until(browser, lambda b: busy.text.split() == ["2", "running", "+", str(len(sent)), "waiting",
                                                     "on", "node"], "2 running + waiting on node")
        waiting = busy.find_element(By.CSS_SELECTOR, ".waiting").get_attribute("title")
        assert "no CPU waits" in waiting, waiting
        until(browser, lambda b: js(b, "return document.querySelectorAll('#stream rect.job"
                                       "[data-state=running]').length") == 2, "the running bars")
        bar = browser.find_element(By.CSS_SELECTOR, f'#stream rect.job[data-job="{running[0].uid}"]')
        bar.click()  # a bar in the task stream opens its job too
        until(browser, lambda b: b.find_element(By.ID, "detail-title").text == f"Job #{running[0].id}"
              and "with its result" in b.find_element(By.ID, "detail-body").text, "the running job")
        browser.find_element(By.ID, "detail-close").click()
        until(browser, lambda b: not b.find_element(By.ID, "detail").is_displayed(), "closed")
        if SHOTS:  # jobs that have been running a little while
            until(browser, lambda b: js(b, "var c = document.querySelector('#active tbody tr td:nth-child(5)');"
                                           "return c && / s$/.test(c.textContent) && parseFloat(c.textContent) >= 4;"),
                  "jobs running for a few seconds")
        toggle = browser.find_element(By.CSS_SELECTOR, "#nodes [data-action=toggle]")
        toggle.click()
        until(browser, lambda b: js(b, "return document.querySelectorAll('#nodes tr.detail:not([hidden])"
                                       " li[data-job-id]').length") == 2 + len(sent), "the node's jobs")
        toggle.click()
        browser.execute_script("window.scrollTo(0, 0)")
        shoot(browser, tmp_path / "monitor-desktop.png", "monitor.png")
        browser.find_element(By.CSS_SELECTOR, f'#finished tr[data-job-id="{failing.uid}"] button.link').click()
        until(browser, lambda b: "ValueError" in (detail_text(b, "traceback") or ""), "the traceback")
        shoot(browser, tmp_path / "monitor-detail.png", "monitor-job.png")
        browser.find_element(By.ID, "detail-close").click()

        # -- the phone: cards, no sideways scrolling, tappable buttons ------------------------
        viewport(browser, PHONE, mobile=True)
        until(browser, lambda b: js(b, "return getComputedStyle(document.querySelector('#active thead'))"
                                       ".display") == "none", "the phone layout")
        until(browser, lambda b: js(b, "var s = document.querySelector('#stream svg');"
                                       " return s && s.getBoundingClientRect().right;") <= PHONE[0],
              "the task stream at the phone's width")
        browser.execute_script("window.scrollTo(0, 0)")
        shoot(browser, tmp_path / "monitor-phone.png", "monitor-phone.png")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= PHONE[0] + 2, f"the phone layout scrolls sideways: {width} px wide"
        bar = js(browser, "return document.querySelector('#progress .pbar').getBoundingClientRect().width")
        assert 200 <= bar <= PHONE[0], bar

        row = browser.find_element(By.CSS_SELECTOR, f'#finished tr[data-job-id="{failing.uid}"]')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
        row.click()
        until(browser, lambda b: "ValueError" in (detail_text(b, "traceback") or ""), "the traceback")
        drawer = js(browser, "var r = document.getElementById('detail').getBoundingClientRect(),"
                             " c = document.getElementById('detail-close').getBoundingClientRect();"
                             " return [r.left, r.width, c.height, c.right];")
        assert drawer[0] == 0 and drawer[1] == PHONE[0] and drawer[2] >= 44 and drawer[3] <= PHONE[0], drawer
        shoot(browser, tmp_path / "monitor-phone-detail.png")
        browser.find_element(By.ID, "detail-close").click()
        until(browser, lambda b: not b.find_element(By.ID, "detail").is_displayed(), "closed")

        target = running[0]
        cancel = browser.find_element(
            By.CSS_SELECTOR, f'#active tr[data-job-id="{target.uid}"] button.cancel')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cancel)
        assert cancel.is_displayed() and cancel.is_enabled()
        box = browser.execute_script(
            "var r = arguments[0].getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom];",
            cancel)
        left, right, top, bottom = box
        assert left >= 0 and right <= PHONE[0] and top >= 0 and bottom <= PHONE[1], box
        assert bottom - top >= 40, f"the cancel button is too small to tap: {box}"
        shoot(browser, tmp_path / "monitor-phone-jobs.png")

        # -- cancel with the page's button (two taps) ------------------------------------------
        cancel.click()
        until(browser, lambda b: cancel.get_attribute("data-armed") == "1", "the armed cancel button")
        assert cancel.text == "Confirm cancel"
        cancel.click()
        until(browser, lambda b: f"Cancelling job #{target.id}" in b.find_element(By.ID, "toast").text,
              "feedback")
        target(timeout=30)
        assert target.status == JobStatus.Cancelled
        until(browser, lambda b: row_status(b, "finished", target) == "Cancelled", "the cancelled job")
        assert running[1].status == JobStatus.Running  # the other one runs on
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= PHONE[0] + 2, width
    finally:
        for job in long_jobs:
            cluster.cancel(job)
    for job in long_jobs:
        job(timeout=60)

    # -- without the token: the API answers 401, to the browser and to anyone else ----------
    viewport(browser, DESKTOP)
    status = browser.execute_async_script(
        "var done = arguments[0]; fetch('/api/summary').then(function (r) { done(r.status); },"
        " function (e) { done(String(e)); });")
    assert status == 401
    base = f"http://127.0.0.1:{server.port}"
    for path in ("/api/summary", "/api/nodes", f"/api/jobs/{failing.uid}", "/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=10)
        assert refused.value.code == 401
    browser.get(base + "/")
    assert "401" in browser.find_element(By.TAG_NAME, "body").text
