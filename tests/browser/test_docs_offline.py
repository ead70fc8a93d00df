"""/docs works on a machine without internet: Swagger UI's files come from the adapter
itself. Loaded in a real headless Chromium that can reach nothing but loopback."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from tests.support.browser import chromium


@pytest.fixture
def served(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()


def test_the_docs_list_the_operations_with_the_network_cut_off(served, app, tmp_path):
    """A screenshot of the page goes to the test's folder (and, with
    ``CONSOLE_SCREENSHOTS=docs/operations``, beside the console's pictures)."""
    with chromium(offline=True) as browser:
        browser.get(f"{served}/docs")
        WebDriverWait(browser, 20).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
        paths = {e.text.replace("\u200b", "") for e in
                 browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert {"/v1/conversations", "/v1/conversations/{conversation_id}/messages",
                "/healthz"} <= paths, paths
        assert "helpline-adapter" in browser.find_element(By.CSS_SELECTOR, ".title").text
        picture = tmp_path / "api-docs.png"
        assert browser.save_screenshot(str(picture)) and picture.stat().st_size > 1000
        if os.environ.get("CONSOLE_SCREENSHOTS"):
            shutil.copy(picture, Path(os.environ["CONSOLE_SCREENSHOTS"]) / picture.name)


def test_the_licence_of_the_docs_ui_is_served_beside_it(client):
    licence = client.get("/docs/assets/LICENSE")
    assert licence.status_code == 200 and b"Apache" in licence.data
