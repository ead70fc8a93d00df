"""The operations console in a real headless Chromium (Debian's, through selenium),
against the app served over real HTTP, with a helpline stand-in that is down (503) and
comes back. The delivery engine's own drain delivers, as a worker would.

Screenshots of every page are saved under the test's tmp dir; with
``CONSOLE_SCREENSHOTS=docs/operations`` they are copied there too (how the pictures in
docs/operations.md are made)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from adapter.models import DeliveryStatus
from tests.console.support import (
    PASSWORD,
    TEXT,
    audit_actions,
    create_operator,
    deliveries,
    drain_all,
    start,
    write_sites,
)
from tests.support.browser import chromium

WAIT = 20  # seconds: the most any page may take


@pytest.fixture
def console_app(app_factory, tmp_path, helpline):
    folder = tmp_path / "countries-console"
    write_sites(folder, helpline.url)
    return app_factory(folder, RETRY_SCHEDULE=[])


@pytest.fixture
def served(console_app):
    server = make_server("127.0.0.1", 0, console_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()


@pytest.fixture
def shoot(tmp_path):
    """``shoot(browser, name)``: a PNG of the page, kept as a test artifact."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    copy_to = os.environ.get("CONSOLE_SCREENSHOTS")

    def save(browser, name: str) -> Path:
        path = folder / f"{name}.png"
        assert browser.save_screenshot(str(path)), name
        assert path.stat().st_size > 1000
        if copy_to:
            Path(copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy_to) / path.name)
        return path

    return save


def wait_for(browser, css: str):
    return WebDriverWait(browser, WAIT).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))


def log_in(browser, served: str, name: str) -> None:
    browser.get(f"{served}/console/login")
    wait_for(browser, "#name")[0].send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    assert name in wait_for(browser, "#who")[0].text


def log_out(browser) -> None:
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, "#login")


def cookie_header(browser) -> dict:
    """The browser's session cookie (HttpOnly: scripts cannot read it, the driver can),
    and its User-Agent (a session moved to another browser is over: Flask-Login's
    "strong" session protection)."""
    cookie = next(c for c in browser.get_cookies() if c["name"] == "hla_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
    return {"Cookie": f"hla_console={cookie['value']}",
            "User-Agent": browser.execute_script("return navigator.userAgent")}


def test_an_operator_sees_a_failing_helpline_retries_and_a_supervisor_reads_text(
        console_app, served, switch, helpline, shoot):
    for name, role in (("ops", "operator"), ("watcher", "viewer"), ("sup", "supervisor")):
        create_operator(console_app, name, role)
    conversation_id = start(console_app)
    start(console_app, "Kampala")  # ug: its token is unset, so held
    drain_all(console_app)
    rows = deliveries(console_app)
    failed_open = next(d for d in rows if d.site == "ke" and d.action == "open")
    failed_message = next(d for d in rows if d.site == "ke" and d.action == "message")
    assert failed_open.status == failed_message.status == DeliveryStatus.FAILED

    with chromium(offline=True) as browser:
        # An operator: the helpline is down.
        log_in(browser, served, "ops")
        site = wait_for(browser, "#site-ke")[0]
        assert "failing" in site.text and "loopback: HTTP 503" in site.text
        assert "CONSOLE_TEST_UNSET_TOKEN" in browser.find_element(By.ID, "site-ug").text
        shoot(browser, "sites")

        browser.find_element(By.LINK_TEXT, "Deliveries").click()
        row = wait_for(browser, f"#delivery-{failed_open.id}")[0]
        assert "failed" in row.text and "503" in row.text and TEXT not in browser.page_source
        shoot(browser, "deliveries")

        # The helpline is back: Retry, and the engine delivers it.
        switch.down = False
        row.find_element(By.CSS_SELECTOR, "button.retry").click()
        assert "Requeued 1 delivery" in wait_for(browser, ".flash")[0].text
        assert not browser.find_elements(By.ID, f"delivery-{failed_open.id}")
        drain_all(console_app)
        assert next(d for d in deliveries(console_app)
                    if d.id == failed_open.id).status == DeliveryStatus.DONE
        assert any(r["json"]["action"] == "open" for r in helpline.received
                   if r["json"] and r["json"].get("session_id") == conversation_id)

        browser.get(f"{served}/console/conversations/{conversation_id}")
        timeline = wait_for(browser, "#timeline")[0].text
        assert "waiting" in timeline and "console_retry by console:ops" in timeline
        done = browser.find_element(By.ID, "conversation-deliveries").text
        assert f"{failed_open.id} helpline/open done" in done
        assert TEXT not in browser.page_source and not browser.find_elements(By.ID, "show-text")
        shoot(browser, "conversation")

        browser.find_element(By.LINK_TEXT, "Waiting").click()
        waiting = wait_for(browser, f"#waiting-{conversation_id}")[0]
        assert "waiting" in waiting.text and "not yet" in waiting.text
        shoot(browser, "waiting")
        log_out(browser)

        # A viewer: no Retry button, and its forged POSTs are refused.
        log_in(browser, served, "watcher")
        browser.find_element(By.LINK_TEXT, "Deliveries").click()
        wait_for(browser, f"#delivery-{failed_message.id}")
        assert not browser.find_elements(By.CSS_SELECTOR, "button.retry, button.retry-site")
        token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
        cookie = cookie_header(browser)
        retry = f"{served}/console/deliveries/{failed_message.id}/retry"
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token}):
            refused = requests.post(retry, data=data, headers=cookie, timeout=WAIT,
                                    allow_redirects=False)
            assert refused.status_code == 403, (data, refused.status_code)
        # The same forgery from the page itself (a script's form), as a browser sends it.
        browser.execute_script(
            "const f = document.createElement('form'); f.method = 'post';"
            "f.action = arguments[0]; const i = document.createElement('input');"
            "i.name = 'csrf_token'; i.value = arguments[1]; f.appendChild(i);"
            "document.body.appendChild(f); f.submit();", retry, token)
        assert "Your role may not do this" in wait_for(browser, "#refused")[0].text
        shoot(browser, "refused")
        assert next(d for d in deliveries(console_app)
                    if d.id == failed_message.id).status == DeliveryStatus.FAILED
        browser.get(f"{served}/console/deliveries")
        log_out(browser)

        # A supervisor reads the text; the audit trail shows it.
        log_in(browser, served, "sup")
        browser.get(f"{served}/console/conversations/{conversation_id}")
        assert TEXT not in browser.page_source
        wait_for(browser, "#show-text")[0].click()
        assert TEXT in wait_for(browser, "blockquote.text")[0].text
        wait_for(browser, "#text-shown")
        shoot(browser, "conversation-text")
        browser.get(f"{served}/console/conversations/{conversation_id}")
        assert "console_text_viewed by console:sup" in wait_for(browser, "#timeline")[0].text
        assert TEXT not in browser.page_source

        # On a phone's width, the pages still fit.
        browser.set_window_size(390, 844)
        browser.get(f"{served}/console/sites")
        wait_for(browser, "#site-ke")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, width
        shoot(browser, "sites-phone")

        browser.get(f"{served}/console/login")
        page = browser.page_source
        assert "http://" not in page.replace(served, "") and "https://" not in page

    assert ("console:sup", "console_text_viewed", conversation_id) in audit_actions(console_app)
    assert ("console:ops", "console_retry", conversation_id) in audit_actions(console_app)
