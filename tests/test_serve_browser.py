"""The page of ``mmrec serve`` in a real browser: headless Chromium (Debian ``chromium`` and
``chromium-driver``, installed by ``.ci/run``) driven by Selenium against a live server on
127.0.0.1. Skipped where no browser is installed, unless ``MMREC_REQUIRE_BROWSER=1`` (CI)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from mmrec.serve import ServeConfig, Service  # noqa: E402
from mmrec.serve.access import AccessPolicy  # noqa: E402
from mmrec.serve.app import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("MMREC_REQUIRE_BROWSER") == "1"


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    if not CHROMIUM or not DRIVER:
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return None


TOKEN = "page-token"


@contextlib.contextmanager
def _serving(service: Service, access: AccessPolicy | None = None):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service, access), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(served_run, demo):
    service = Service.from_paths(served_run, demo.catalog, events=demo.events,
                                 config=ServeConfig(alpha=0.8, category_column="category"))
    with _serving(service) as url:
        yield url, service


@pytest.fixture
def token_server(served_run, demo):
    service = Service.from_paths(served_run, demo.catalog, events=demo.events,
                                 config=ServeConfig(alpha=0.8, category_column="category"))
    with _serving(service, AccessPolicy.for_binding("127.0.0.1", token=TOKEN)) as url:
        yield url, service


@pytest.fixture
def browser():
    missing = _browser_missing()
    if missing:
        if REQUIRED:
            pytest.fail(f"MMREC_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_clicking_a_card_updates_the_recommendations(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, service = server
    wait = WebDriverWait(browser, 30)
    browser.get(url + "/")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#recs .card")) >= 6)
    user = browser.find_element(By.ID, "user").get_attribute("value")
    assert user  # the page picked the most active user
    cards = browser.find_elements(By.CSS_SELECTOR, "#recs .card")
    before = [card.get_attribute("data-item") for card in cards]
    assert browser.find_elements(By.CSS_SELECTOR, "#recs .card img")  # pictures are shown
    assert browser.find_elements(By.CSS_SELECTOR, "#recs .card .why .bars span")  # explanations
    # the bar shows the content modalities (the id embedding's share is said beside it)
    bar_classes = {span.get_attribute("class")
                   for span in browser.find_elements(By.CSS_SELECTOR, "#recs .card .why .bars span")}
    assert bar_classes and bar_classes <= {"m-text", "m-image", "m-audio"}
    assert "id embedding" in browser.find_element(By.CSS_SELECTOR, "#recs .card .why").text
    assert browser.find_elements(By.CSS_SELECTOR, "#history .card")
    loaded = browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
    cards[0].click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") != loaded
               and "recommendations updated" in d.find_element(By.ID, "status").text)
    after = [card.get_attribute("data-item")
             for card in browser.find_elements(By.CSS_SELECTOR, "#recs .card")]
    assert before[0] not in after  # the clicked item is seen now
    assert after != before
    newest = browser.find_element(By.CSS_SELECTOR, "#history .card").get_attribute("data-item")
    assert newest == before[0]
    assert before[0] in set(service.online.events_of(user).frame["item"])
    shot = Path(os.environ.get("MMREC_SCREENSHOT_DIR", tmp_path)) / "serve-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_the_user_parameter_opens_that_user(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, service = server
    user = sorted(service.online.users())[-1]
    browser.get(f"{url}/?user={user}")
    WebDriverWait(browser, 30).until(
        lambda d: f"for {user} (" in d.find_element(By.ID, "status").text)
    assert browser.find_element(By.ID, "user").get_attribute("value") == user


def test_with_a_token_the_page_asks_once_and_shows_media(token_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = token_server
    wait = WebDriverWait(browser, 30)
    browser.get(url + "/")
    wait.until(expected_conditions.alert_is_present())
    prompt = browser.switch_to.alert
    prompt.send_keys(TOKEN)
    prompt.accept()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#recs .card")) >= 6)
    # pictures come through fetch with the token, as blob URLs (an <img src> cannot send a header)
    wait.until(lambda d: any((img.get_attribute("src") or "").startswith("blob:")
                             for img in d.find_elements(By.CSS_SELECTOR, "#recs .card img")))
    assert "error" not in browser.find_element(By.ID, "status").text
