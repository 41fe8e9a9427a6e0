"""The web UI in a real browser: Debian's chromium driven by playwright, against a
live `vultus serve` on a free loopback port with a temporary gallery and an admin
key made by `vultus keys create`.

Screenshots of every page are saved to tests/artifacts/browser/ (ignored by git)
for people to look at. The tests skip, saying why, only when chromium or the
playwright package is missing (scripts/test.sh installs both).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import need_data

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
KEY_PATTERN = re.compile(r"\bvk_[A-Za-z0-9_\-]+")

pytestmark = pytest.mark.slow

# The machine running the tests may be busy: give every browser wait room (playwright's default is 30 s).
WAIT_MS = 120_000
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def chromium() -> str:
    for candidate in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it with apt-get when it can)")


def env_with_src() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def vultus(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "vultus", *args], env=env_with_src(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"vultus {' '.join(args)}: {out.stderr}"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A running `vultus serve` with the knn_examples people enrolled: (base URL, admin key)."""
    people = need_data("face_recognition", "examples", "knn_examples", "train")
    tmp = tmp_path_factory.mktemp("browser")
    gallery = tmp / "gallery.db"
    vultus("gallery", "enroll", str(people), "--gallery", str(gallery))
    created = vultus("keys", "create", "--role", "admin", "--name", "browser test", "--gallery", str(gallery))
    found = KEY_PATTERN.search(created.stdout)
    assert found, f"no key in the output of vultus keys create: {created.stdout!r}"
    port = free_port()
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vultus", "serve", "--gallery", str(gallery), "--host", "127.0.0.1",
                             "--port", str(port)], env=env_with_src(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vultus serve exited: {(tmp / 'serve.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "v1/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("vultus serve was not ready within 120 s")
            time.sleep(0.3)
        yield url, found.group(0)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, live):
    """A fresh browser tab (its own session storage) with the key entered by keyboard."""
    url, key = live
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(url)
    key_input = tab.locator("#key-input")
    key_input.wait_for(state="visible")
    # The key field has focus on arrival: type and press Enter, no mouse needed.
    tab.keyboard.type(key)
    tab.keyboard.press("Enter")
    tab.locator("#key-badge", has_text="admin").wait_for()
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(tab, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_page(tab, name: str) -> None:
    tab.goto(tab.url.split("#")[0] + "#" + name)


def submit_photo(tab, page_name: str, photo) -> None:
    """Send one photo (a path, or playwright's {name, mimeType, buffer}) from the Identify or Analyze page."""
    tab.locator(f"#{page_name}-image").set_input_files(photo if isinstance(photo, dict) else str(photo))
    tab.locator(f"#{page_name}-form button[type=submit]").click()


def result_rows(tab, page_name: str):
    """The result table's rows once they are there; an error shown instead fails with its text."""
    tab.wait_for_function(f"document.querySelector('#{page_name}-table tbody tr') || "
                          f"document.getElementById('{page_name}-error').textContent.trim()")
    error = tab.locator(f"#{page_name}-error").inner_text()
    assert not error, f"the {page_name} page shows an error: {error}"
    return tab.locator(f"#{page_name}-table tbody tr")


def add_person(tab, name: str, photo) -> None:
    """Fill and send the People page's "New person" form."""
    tab.locator("#person-new-name").fill(name)
    tab.locator("#person-new-images").set_input_files(str(photo))
    tab.locator("#person-new button[type=submit]").click()


def test_wrong_key_shows_the_services_error(browser, live):
    url, _ = live
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.goto(url)
    tab.locator("#key-input").fill("vk_nothing_wrong")
    tab.locator("#key-form button").click()
    error = tab.locator("#key-error")
    error.wait_for(state="visible")
    assert "401" in error.inner_text()
    assert tab.locator("#key-panel").is_visible()
    shot(tab, "key-refused")
    context.close()


def test_key_is_entered_once_per_browser_session(page, browser, live):
    page.reload()
    page.locator("#key-badge", has_text="admin").wait_for()
    assert page.locator("#key-panel").is_hidden()
    assert page.evaluate("sessionStorage.getItem('vultus.key')").startswith("vk_")
    assert page.evaluate("localStorage.length") == 0  # never kept beyond the session
    other = browser.new_context()
    tab = other.new_page()
    tab.goto(live[0])
    tab.locator("#key-input").wait_for(state="visible")
    other.close()


def test_changing_the_key_leaves_nothing_of_the_old_session(page, live, fr_images):
    open_page(page, "identify")
    submit_photo(page, "identify", fr_images / "examples/obama.jpg")
    result_rows(page, "identify")
    page.locator("#key-change").click()
    assert page.locator("#key-input").is_visible()
    assert page.evaluate("sessionStorage.getItem('vultus.key')") is None
    page.keyboard.type(live[1])
    page.keyboard.press("Enter")
    page.locator("#key-badge", has_text="admin").wait_for()
    page.locator("#page-identify").wait_for(state="visible")
    assert page.locator("#identify-result").is_hidden()
    assert page.locator("#identify-table tbody tr").count() == 0


def test_identify_names_every_face(page, fr_images):
    open_page(page, "identify")
    submit_photo(page, "identify", fr_images / "examples/knn_examples/test/obama_and_biden.jpg")
    rows = result_rows(page, "identify")
    page.wait_for_function("document.getElementById('identify-canvas').dataset.labels !== undefined")
    names = sorted(rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count()))
    assert names == ["biden", "obama", "unknown"]
    drawn = page.locator("#identify-canvas").get_attribute("data-labels")
    for name in ("biden", "obama", "unknown"):
        assert name in drawn
    assert re.search(r"similarity to someone is at least 0\.\d{3}", page.locator("#identify-decision").inner_text())
    shot(page, "identify")


def test_identify_shows_the_services_error_for_a_non_image(page):
    open_page(page, "identify")
    submit_photo(page, "identify", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a photo"})
    error = page.locator("#identify-error")
    error.wait_for(state="visible")
    text = error.inner_text()
    # The message, code and status come from the JSON error body, not from the browser.
    assert "HTTP 415" in text and "code unsupported_media_type" in text and "notes.txt" in text
    shot(page, "identify-error")


def test_verify_same_and_different(page, fr_images):
    open_page(page, "verify")
    photos = fr_images / "examples"
    page.locator("#verify-a").set_input_files(str(photos / "obama.jpg"))
    page.locator("#verify-b").set_input_files(str(photos / "obama2.jpg"))
    page.locator("#verify-form button[type=submit]").click()
    page.locator("#verify-verdict", has_text="Same person").wait_for()
    assert "threshold" in page.locator("#verify-facts").inner_text()
    shot(page, "verify")
    page.locator("#verify-b").set_input_files(str(photos / "biden.jpg"))
    page.locator("#verify-form button[type=submit]").click()
    page.locator("#verify-verdict", has_text="Different people").wait_for()


def test_people_enroll_and_forget(page, fr_images):
    open_page(page, "people")
    page.locator("#people-items button", has_text="obama").wait_for()
    add_person(page, "Lin-Manuel Miranda", fr_images / "examples/lin-manuel-miranda.png")
    page.locator("#person-name", has_text="Lin-Manuel Miranda").wait_for()
    verdicts = page.locator("#person-gate tbody tr")
    verdicts.first.wait_for()
    assert verdicts.first.locator("td").nth(1).inner_text() == "enrolled"
    thumb = page.locator("#person-faces img").first
    thumb.wait_for()
    page.wait_for_function("document.querySelector('#person-faces img').naturalWidth > 0")
    shot(page, "people-enrolled")

    page.locator("#person-forget-confirm").check()
    page.locator("#person-forget button[type=submit]").click()
    proof = page.locator("#forget-facts")
    proof.wait_for(state="visible")
    text = proof.inner_text()
    assert "Lin-Manuel Miranda" in text and "yes" in text
    page.wait_for_function("![...document.querySelectorAll('#people-items button')]"
                           ".some(b => b.textContent.includes('Lin-Manuel'))")
    shot(page, "people-forgotten")


def test_people_search_rename_and_merge(page, fr_images):
    open_page(page, "people")
    page.locator("#people-items button").first.wait_for()
    page.locator("#people-q").fill("bid")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#people-items button').length === 1")
    assert "biden" in page.locator("#people-items").inner_text()
    page.locator("#people-q").fill("")
    page.keyboard.press("Enter")
    page.locator("#people-items button", has_text="obama").wait_for()

    add_person(page, "jon", fr_images / "examples/knn_examples/test/johnsnow_test1.jpg")
    page.locator("#person-name", has_text="jon").wait_for()
    page.locator("#person-rename-name").fill("Jon Snow")
    page.locator("#person-rename button[type=submit]").click()
    page.locator("#person-name", has_text="Jon Snow").wait_for()
    page.locator("#people-items button", has_text="Jon Snow").wait_for()

    kit_faces = int(re.search(r"(\d+) face", page.locator("#people-items button", has_text="kit_harington")
                              .inner_text()).group(1))
    page.locator("#person-merge-into").fill("kit_harington")
    page.locator("#person-merge button[type=submit]").click()
    page.locator("#person-name", has_text="kit_harington").wait_for()
    assert page.locator("#people-items button", has_text="Jon Snow").count() == 0
    assert f"{kit_faces + 1} enrolled faces" in page.locator("#person-meta").inner_text()
    shot(page, "people-merged")


def test_people_names_are_text_not_markup(page, fr_images):
    open_page(page, "people")
    page.locator("#people-items button").first.wait_for()
    name = '<img src=x onerror="window.pwned=1">'
    add_person(page, name, fr_images / "examples/lin-manuel-miranda.png")
    page.locator("#person-name").wait_for(state="visible")
    assert page.locator("#person-name").inner_text() == name
    assert page.locator("#people-items img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.locator("#person-forget-confirm").check()
    page.locator("#person-forget button[type=submit]").click()
    page.locator("#forget-facts").wait_for(state="visible")


def test_analyze_and_system_pages(page, fr_images):
    open_page(page, "analyze")
    submit_photo(page, "analyze", fr_images / "examples/two_people.jpg")
    rows = result_rows(page, "analyze")
    assert rows.count() == 2
    assert "years" in rows.first.inner_text()
    shot(page, "analyze")

    open_page(page, "system")
    page.locator("#system-models tbody tr").first.wait_for()
    assert page.locator("#system-models", has_text="sface").count() == 1
    assert page.locator("#system-collections", has_text="default").count() == 1
    assert "admin" in page.locator("#system-key").inner_text()
    shot(page, "system")


def test_phone_width_has_no_sideways_scroll(browser, live, fr_images):
    url, key = live
    # Not is_mobile: a mobile viewport zooms out to fit overflowing content, which would hide the fault.
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.goto(url + "#identify")
    tab.locator("#key-input").fill(key)
    tab.locator("#key-form button").click()
    submit_photo(tab, "identify", fr_images / "examples/knn_examples/test/obama_and_biden.jpg")
    result_rows(tab, "identify")
    tab.wait_for_timeout(200)
    assert tab.evaluate(NO_SIDEWAYS_SCROLL)
    shot(tab, "identify-phone")
    tab.goto(url + "#people")
    tab.locator("#people-items button").first.wait_for()
    assert tab.evaluate(NO_SIDEWAYS_SCROLL)
    shot(tab, "people-phone")
    context.close()
