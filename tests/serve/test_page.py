"""The web page in a real headless Chromium: upload an image, wait for the boxes, compare them with the API.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); without them the tests skip, or
fail under ``MULTIBOX_REQUIRE_ALL_TESTS=1``. Selenium is pointed at the system chromedriver, so Selenium Manager
never runs and nothing is downloaded.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import require_or_skip

SCREENSHOT_NAME = "serve_page.png"


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if Path(name).is_file() else None)
        if found:
            return found
    return None


@pytest.fixture(scope="session", autouse=True)
def chromium_and_driver() -> tuple[str, str]:
    """The browser and its driver, checked before any other fixture (session scope, autouse), so that a machine
    without them skips here instead of training the detector and starting the server first."""
    chromium = _find("chromium", "/usr/bin/chromium", "chromium-browser")
    driver = _find("chromedriver", "/usr/bin/chromedriver")
    if chromium is None or driver is None:
        require_or_skip(
            "install chromium and chromium-driver (Debian: apt-get install chromium chromium-driver; "
            ".ci/run does) to run the browser page test"
        )
    return chromium, driver


@pytest.fixture(scope="module")
def browser(chromium_and_driver: tuple[str, str]) -> Iterator[webdriver.Chrome]:
    chromium, driver_path = chromium_and_driver
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860"):
        options.add_argument(argument)
    service = Service(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_state(driver: webdriver.Chrome, *states: str) -> str:
    status = driver.find_element(By.ID, "status")
    WebDriverWait(driver, 60).until(lambda _: status.get_attribute("data-state") in states)
    return status.get_attribute("data-state")


def _listed(driver: webdriver.Chrome) -> list[dict]:
    """The detections the page drew, from its list: one element with data attributes per box."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#detections li.detection')].map(li => ({"
        "class_name: li.dataset.className, class_id: Number(li.dataset.classId),"
        "score: Number(li.dataset.score), box: li.dataset.box.split(',').map(Number), color: li.dataset.color}))"
    )


def _set_threshold(driver: webdriver.Chrome, value: float) -> None:
    driver.execute_script(
        "const s = document.getElementById('threshold'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input', {bubbles: true}));",
        value,
    )


def _pixel(driver: webdriver.Chrome, x: float, y: float) -> list[int]:
    return driver.execute_script(
        "const c = document.getElementById('canvas').getContext('2d');"
        "return Array.from(c.getImageData(arguments[0], arguments[1], 1, 1).data.slice(0, 3));",
        round(x),
        round(y),
    )


def _as_rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


def test_page_draws_the_detections_the_api_returns(live_server, browser, bccd_images, tmp_path):
    image = bccd_images[0]
    api = httpx.post(
        f"{live_server.url}/v1/detect", params={"threshold": 0.05}, files={"file": image.open("rb")}
    ).json()
    browser.get(f"{live_server.url}/")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "model").get_attribute("data-loaded") == "true"
    )
    slider = browser.find_element(By.ID, "threshold")
    default = httpx.get(f"{live_server.url}/healthz").json()["default_threshold"]  # the detector's tuned one
    assert float(slider.get_attribute("value")) == pytest.approx(default, abs=0.005)  # the slider's step

    browser.find_element(By.ID, "file-input").send_keys(str(image.resolve()))
    assert _wait_for_state(browser, "done", "error") == "done", browser.find_element(By.ID, "status").text

    expected = [d for d in api["detections"] if d["score"] >= float(slider.get_attribute("value"))]
    listed = _listed(browser)
    assert len(expected) > 0
    assert [(d["class_name"], d["class_id"], d["score"], d["box"]) for d in listed] == [
        (d["class_name"], d["class_id"], d["score"], d["box"]) for d in expected
    ]
    canvas = browser.find_element(By.ID, "canvas")
    assert canvas.get_attribute("data-drawn") == str(len(expected))
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("640", "480")
    # The most confident box is drawn last: across the middle of its left edge (a line at least 2 px wide,
    # anti-aliased where it falls between pixels) one pixel has its class colour.
    best = listed[0]
    x1, y1, _, y2 = best["box"]
    across = [_pixel(browser, round(x1) + dx, (y1 + y2) / 2) for dx in (-2, -1, 0, 1, 2)]
    colour = _as_rgb(best["color"])
    assert any(max(abs(a - b) for a, b in zip(p, colour, strict=True)) <= 12 for p in across), (
        across,
        colour,
    )
    status = browser.find_element(By.ID, "status").text
    assert f"{len(expected)} of {len(api['detections'])} detections" in status

    browser.save_screenshot(str(tmp_path / SCREENSHOT_NAME))
    assert (tmp_path / SCREENSHOT_NAME).stat().st_size > 10_000

    # The slider filters what was returned, without asking the server again.
    _set_threshold(browser, 0.05)
    assert len(_listed(browser)) == len(api["detections"]) > len(expected)
    _set_threshold(browser, 1.0)
    assert _listed(browser) == [] and canvas.get_attribute("data-drawn") == "0"
    assert browser.find_element(By.ID, "threshold-value").text == "1.00"


def test_page_shows_the_server_refusal(live_server, browser, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("shopping list: milk, eggs\n")
    browser.get(f"{live_server.url}/")
    browser.find_element(By.ID, "file-input").send_keys(str(not_an_image))
    assert _wait_for_state(browser, "done", "error") == "error"
    assert browser.find_element(By.ID, "status").text == (
        "Error 415: the upload is not a JPEG, PNG or WebP image"
    )
    assert _listed(browser) == []
