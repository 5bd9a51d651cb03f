"""The web monitor in a real headless browser (Debian ``chromium`` + ``chromedriver``, selenium).

A JobCluster on a ``gridlib node`` process, its monitor, and the page as a
user sees it at 1280x800 and on a phone (390x844): the node appears, jobs
finish, a running job is cancelled with the page's own button, the phone
layout does not scroll sideways and its buttons are tappable, and without
the token nothing answers.  Screenshots go to the test's ``tmp_path``;
with ``GRIDLIB_MONITOR_SCREENSHOTS=DIR`` the desktop and phone ones are also
copied there as ``monitor.png`` and ``monitor-phone.png`` (how
docs/monitor*.png are made, after a longer workload so the chart has a story).

The browser is required: the test skips only when chromium, chromedriver or
selenium are missing *and* it is not running under CI (``CI`` set), where
``.ci/run`` installs them.
"""

from __future__ import annotations

import importlib.util
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
    time.sleep(seconds)
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


def busy_for_docs(browser: Any, cluster: gridlib.JobCluster) -> None:
    """Only for the docs' screenshots: a workload of about 40 s the chart can show."""
    rng = random.Random(7)
    jobs = [cluster.submit(-1 if i % 80 == 40 else round(rng.uniform(0.05, 0.6), 2))
            for i in range(240)]  # (sleep(-1) raises: a few failed jobs)
    for job in jobs:
        job(timeout=180)
    until(browser, lambda b: b.execute_script(
        "return document.querySelector('#total-done b').textContent") == str(240 + 12),
        "every job done")


@pytest.mark.slow  # a real browser, 240 jobs
def test_the_page_in_a_browser(driver, monitored, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    cluster, server = monitored
    browser = driver
    viewport(browser, DESKTOP)
    browser.get(server.url)
    (node,) = cluster.status().nodes
    until(browser, lambda b: b.execute_script(
        "var n = document.querySelector('#nodes tbody.node .name'); return n && n.textContent;")
        == node.name, "the node")
    assert browser.find_element(By.ID, "conn").text == "live"

    quick = [cluster.submit(0.05 * (i % 4)) for i in range(12)]
    for job in quick:
        job(timeout=60)
    until(browser, lambda b: all(row_status(b, "finished", j) == "Finished" for j in quick),
          "the finished jobs")
    if SHOTS:
        busy_for_docs(browser, cluster)

    running = [cluster.submit(120), cluster.submit(120)]
    until(browser, lambda b: all(row_status(b, "active", j) == "Running" for j in running),
          "the running jobs")
    if SHOTS:  # jobs that have been running a little while
        until(browser, lambda b: b.execute_script(
            "var c = document.querySelector('#active tbody tr td:nth-child(5)');"
            "return c && / s$/.test(c.textContent) && parseFloat(c.textContent) >= 4;"),
            "jobs running for a few seconds")
    toggle = browser.find_element(By.CSS_SELECTOR, "#nodes [data-action=toggle]")
    toggle.click()
    until(browser, lambda b: b.execute_script(
        "return document.querySelectorAll('#nodes tr.detail:not([hidden]) li[data-job-id]').length")
        == 2, "the node's running jobs")
    until(browser, lambda b: b.execute_script(
        "return document.querySelector('#total-running b').textContent") == "2", "2 running")
    shoot(browser, tmp_path / "monitor-desktop.png", "monitor.png")

    # -- the phone: cards, no sideways scrolling, tappable buttons ------------------------
    viewport(browser, PHONE, mobile=True)
    until(browser, lambda b: b.execute_script(
        "return getComputedStyle(document.querySelector('#active thead')).display") == "none",
        "the phone layout")
    browser.execute_script("window.scrollTo(0, 0)")
    shoot(browser, tmp_path / "monitor-phone.png", "monitor-phone.png")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0] + 2, f"the phone layout scrolls sideways: {width} px wide"
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

    # -- cancel with the page's button (two taps) ----------------------------------------------
    cancel.click()
    until(browser, lambda b: cancel.get_attribute("data-armed") == "1", "the armed cancel button")
    assert cancel.text == "Confirm cancel"
    cancel.click()
    until(browser, lambda b: "Cancelling job" in b.find_element(By.ID, "toast").text, "feedback")
    target(timeout=30)
    assert target.status == JobStatus.Cancelled
    until(browser, lambda b: row_status(b, "finished", target) == "Cancelled", "the cancelled job")
    assert running[1].status == JobStatus.Running  # the other one runs on
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0] + 2, width

    # -- without the token: the API answers 401, to the browser and to anyone else ----------
    viewport(browser, DESKTOP)
    status = browser.execute_async_script(
        "var done = arguments[0]; fetch('/api/summary').then(function (r) { done(r.status); },"
        " function (e) { done(String(e)); });")
    assert status == 401
    base = f"http://127.0.0.1:{server.port}"
    for path in ("/api/summary", "/api/nodes", "/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=10)
        assert refused.value.code == 401
    browser.get(base + "/")
    assert "401" in browser.find_element(By.TAG_NAME, "body").text
    cluster.cancel(running[1])
    running[1](timeout=30)
