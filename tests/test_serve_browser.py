"""The page at / in a real headless Chromium (the OS package, driven by Selenium): it shows the
model's card, streams the generated text into the page, sends the stop sequences typed, and shows
the server's errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import torch

from chargpt.model import ModelConfig
from conftest import lacks
from test_serve import NO_EXTRA, VOCAB, serving, write_checkpoint

if TYPE_CHECKING:
    from selenium import webdriver

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING = "needs Chromium and its driver from the OS packages: apt-get install chromium chromium-driver"
# Selenium and the serving libraries are imported by the functions that use them: every test worker
# collects this module.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(lacks("selenium", "fastapi", "uvicorn", "httpx"),
                                                   reason=NO_EXTRA)]

# Records every change of the output's text: several lengths mean the text arrived in pieces.
RECORD_LENGTHS = """
window.lengths = [];
new MutationObserver(() => window.lengths.push([...document.getElementById('out-text').textContent].length))
  .observe(document.getElementById('out-text'), {childList: true, characterData: true, subtree: true});
"""


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from chargpt.serving.protocol import Limits

    run = write_checkpoint(tmp_path_factory.mktemp("browser") / "page run",
                           ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16),
                           arithmetic={"precision": "bf16-mixed", "matmul_precision": "medium",
                                       "device_type": "cpu"})
    with serving(run, Limits(max_tokens=2000), max_batch=4) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if CHROMIUM is None or DRIVER is None:
        # CI installs them (.ci/run) and sets CHARGPT_REQUIRE_BROWSER: there a skip would hide a gap.
        if os.environ.get("CHARGPT_REQUIRE_BROWSER") == "1":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fill(driver: webdriver.Chrome, field: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, field)
    element.clear()
    element.send_keys(value)


def status(driver: webdriver.Chrome) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "status").text


def wait_for_the_end(driver: webdriver.Chrome) -> None:
    """Until the text has ended ("1 character in 0.0 s", "20 characters in 0.3 s, ended at …") or
    an error is shown; a timeout says what the page showed instead."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ended(d: webdriver.Chrome) -> bool:
        finished = re.match(r"\d+ characters? in ", status(d))
        return bool(finished) or d.find_element(By.ID, "error").is_displayed()
    try:
        WebDriverWait(driver, 180).until(ended)
    except TimeoutException:
        pytest.fail(f"no end after 180 s: status {status(driver)!r}, "
                    f"error {driver.find_element(By.ID, 'error').text!r}")


def test_the_page_streams_generated_text(page_url: str, browser: webdriver.Chrome, tmp_path: Path) -> None:
    import httpx
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page_url + "/")
    wait = WebDriverWait(browser, 180)
    wait.until(lambda d: "validation loss 1.500" in d.find_element(By.ID, "model-info").text)
    info = browser.find_element(By.ID, "model-info").text
    assert browser.find_element(By.ID, "model-name").text == "page run"
    params = httpx.get(f"{page_url}/v1/models").json()["data"][0]["chargpt"]["params"]
    assert 1000 <= params < 1_000_000
    assert f"parameters {params / 1000:.1f}k" in info and "steps 123" in info and "context 16" in info
    # Which arithmetic the loss was measured in: the card said it nowhere.
    loss = browser.find_element(By.XPATH, "//*[@id='model-info']/span[contains(., 'validation loss')]")
    assert loss.get_attribute("title").endswith(
        ", measured in precision=bf16-mixed matmul_precision=medium on cpu")

    prompt = 'Voilà, "mon roi" est né? 😀'
    # Set, not typed: the driver cannot type characters outside the Basic Multilingual Plane (😀).
    browser.execute_script("document.getElementById('prompt').value = arguments[0]", prompt)
    fill(browser, "max_tokens", "600")
    fill(browser, "temperature", "0.9")
    fill(browser, "seed", "42")
    browser.execute_script(RECORD_LENGTHS)
    browser.find_element(By.ID, "generate").click()
    try:
        wait.until(lambda d: "characters in" in status(d))
    except TimeoutException:
        pytest.fail(f"no text after 180 s: status {status(browser)!r}, "
                    f"error {browser.find_element(By.ID, 'error').text!r}")

    text = browser.find_element(By.ID, "out-text").get_attribute("textContent")
    assert browser.find_element(By.ID, "out-prompt").get_attribute("textContent") == prompt
    expected = httpx.post(f"{page_url}/v1/completions", timeout=180, json={
        "prompt": prompt, "max_tokens": 600, "temperature": 0.9, "seed": 42}).json()["choices"][0]["text"]
    assert text == expected
    lengths = browser.execute_script("return window.lengths")
    assert len(set(lengths)) > 3 and max(lengths) == 600  # it arrived in pieces, as generated
    assert browser.find_element(By.ID, "status").text.startswith("600 characters in")
    assert not browser.find_element(By.ID, "error").is_displayed()
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_stop_sequences_typed_one_per_line_end_the_text_as_the_apis_stop(
    page_url: str, browser: webdriver.Chrome
) -> None:
    # The page had no field for the API's stop: its text could not end at a name or a blank line.
    import httpx
    from selenium.webdriver.common.by import By

    request = {"prompt": "The", "max_tokens": 600, "temperature": 0.9, "seed": 42}
    full = httpx.post(f"{page_url}/v1/completions", timeout=180, json=request).json()["choices"][0]["text"]
    first = full.index("\n", 1)
    # The second holds a line break (typed \n) and ends the text: its first line break comes first.
    stops = [full[first + 1:first + 5], full[first - 1:first + 1]]
    browser.get(page_url + "/")
    fill(browser, "prompt", "The")
    fill(browser, "max_tokens", "600")
    fill(browser, "temperature", "0.9")
    fill(browser, "seed", "42")
    # One per line, as a user types them (Enter between them); empty lines are no sequence.
    fill(browser, "stop_sequences", "\n" + "\n\n".join(s.replace("\n", "\\n") for s in stops) + "\n")
    browser.find_element(By.ID, "generate").click()
    wait_for_the_end(browser)
    assert not browser.find_element(By.ID, "error").is_displayed()
    text = browser.find_element(By.ID, "out-text").get_attribute("textContent")
    expected = httpx.post(f"{page_url}/v1/completions", timeout=180, json={**request, "stop": stops}).json()
    assert text == expected["choices"][0]["text"] == full[:first - 1]
    assert status(browser).endswith(", ended at a stop sequence")


def test_the_page_shows_the_servers_error(page_url: str, browser: webdriver.Chrome) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page_url + "/")
    fill(browser, "prompt", "Grüße")
    browser.find_element(By.ID, "generate").click()
    error = WebDriverWait(browser, 180).until(lambda d: d.find_element(By.ID, "error").is_displayed()
                                             and d.find_element(By.ID, "error"))
    assert "characters not in the vocabulary: 'ß', 'ü'" in error.text
    assert browser.find_element(By.ID, "generate").is_enabled()  # ready for the next try


def test_a_setting_that_is_no_whole_number_is_refused_by_the_browser_and_nothing_is_sent(
    page_url: str, browser: webdriver.Chrome
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(page_url + "/")
    fill(browser, "prompt", "The")
    for typed in ("1.5", "1e"):  # not whole; not a number (the field reads as empty)
        fill(browser, "max_tokens", typed)
        browser.find_element(By.ID, "generate").click()
        message = browser.execute_script("return document.getElementById('max_tokens').validationMessage")
        assert message and status(browser) == ""  # the browser names the field; no request went
        assert browser.find_element(By.ID, "generate").is_enabled()


def test_more_stop_sequences_than_the_server_takes_are_refused_by_the_page_in_its_own_words(
    page_url: str, browser: webdriver.Chrome
) -> None:
    # The page sent them, and showed the API's error, which names JSON fields ("stop has 5 sequences").
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page_url + "/")
    box = browser.find_element(By.ID, "stop_sequences")
    WebDriverWait(browser, 60).until(lambda d: "up to 4" in box.get_attribute("placeholder"))
    fill(browser, "prompt", "The")
    fill(browser, "max_tokens", "20")
    fill(browser, "stop_sequences", "a\nb\n\nc\nd\ne\nf")  # 6 sequences: an empty line is none
    browser.find_element(By.ID, "generate").click()
    message = browser.execute_script("return document.getElementById('stop_sequences').validationMessage")
    assert message == "At most 4 stop sequences, one per line: 6 are typed here; remove 2."
    assert status(browser) == "" and not browser.find_element(By.ID, "error").is_displayed()  # nothing sent
    fill(browser, "stop_sequences", "a\nb\nc\nd")
    assert browser.execute_script("return document.getElementById('stop_sequences').validationMessage") == ""
    fill(browser, "seed", "2")  # its text ends at a stop after one character: "1 character in …"
    browser.find_element(By.ID, "generate").click()
    wait_for_the_end(browser)
    assert not browser.find_element(By.ID, "error").is_displayed()
    expected = httpx.post(f"{page_url}/v1/completions", timeout=180, json={
        "prompt": "The", "max_tokens": 20, "temperature": 0.8, "stop": list("abcd"), "seed": 2}).json()
    text = browser.find_element(By.ID, "out-text").get_attribute("textContent")
    assert text == expected["choices"][0]["text"] and status(browser).startswith("1 character in ")


@pytest.mark.parametrize(("typed", "seed"), [(str(2**64 - 1), 2**64 - 1), ("007", 7)])
def test_a_seed_past_two_to_the_53_draws_the_apis_text(page_url: str, browser: webdriver.Chrome, typed: str,
                                                       seed: int) -> None:
    # A JavaScript number rounds 2^64 - 1: the page sends the seed's own digits (as JSON writes them).
    import httpx
    from selenium.webdriver.common.by import By

    browser.get(page_url + "/")
    fill(browser, "prompt", "The")
    fill(browser, "max_tokens", "80")
    fill(browser, "seed", typed)
    browser.find_element(By.ID, "generate").click()
    wait_for_the_end(browser)
    assert not browser.find_element(By.ID, "error").is_displayed()
    text = browser.find_element(By.ID, "out-text").get_attribute("textContent")
    expected = httpx.post(f"{page_url}/v1/completions", timeout=180, json={
        "prompt": "The", "max_tokens": 80, "seed": seed}).json()["choices"][0]["text"]
    rounded = httpx.post(f"{page_url}/v1/completions", timeout=180, json={
        "prompt": "The", "max_tokens": 80, "seed": 2**64}).json()
    assert text == expected and "error" in rounded  # 2^64 (what rounding gives) is out of range


def test_an_empty_prompt_box_starts_the_models_way(browser: webdriver.Chrome, tmp_path: Path) -> None:
    # A model of a text with no newline cannot take one: the page used to send "\n" for an empty
    # box, and got "characters not in the vocabulary". Now it sends no prompt, and the server
    # starts as chargpt-sample does.
    import httpx
    from selenium.webdriver.common.by import By

    from chargpt.serving.protocol import Limits

    config = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16)
    run = write_checkpoint(tmp_path / "no newline", config, vocab=[c for c in VOCAB if c != "\n"])
    with serving(run, Limits(max_tokens=200)) as (url, _):
        expected = httpx.post(f"{url}/v1/completions", timeout=180, json={
            "max_tokens": 40, "seed": 5, "temperature": 0.8}).json()  # the page's temperature
        browser.get(url + "/")
        fill(browser, "max_tokens", "40")
        fill(browser, "seed", "5")
        browser.find_element(By.ID, "generate").click()
        wait_for_the_end(browser)
        assert not browser.find_element(By.ID, "error").is_displayed()
        text = browser.find_element(By.ID, "out-text").get_attribute("textContent")
        assert text == expected["choices"][0]["text"] and len(text) == 40
        # The text continues from the model's first character, which the page shows before it.
        first = next(c for c in VOCAB if c != "\n")
        assert browser.find_element(By.ID, "out-prompt").get_attribute("textContent") == first


def test_a_server_that_cannot_be_reached_is_named_with_what_to_check(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    # The page showed the browser's words alone ("Failed to fetch"), naming neither the server nor a fix.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = write_checkpoint(tmp_path / "stopped", ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16))
    with serving(run) as (url, _):
        browser.get(url + "/")
        WebDriverWait(browser, 60).until(lambda d: "vocabulary" in d.find_element(By.ID, "model-info").text)
    fill(browser, "prompt", "The")  # the server has stopped: nothing listens at its address now
    browser.find_element(By.ID, "generate").click()
    error = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed()
                                             and d.find_element(By.ID, "error"))
    assert error.text.startswith("Could not reach the server (")
    assert error.text.endswith("): is chargpt-serve still running?")
    assert browser.find_element(By.ID, "generate").is_enabled()


class CutStream(BaseHTTPRequestHandler):
    """The page and its model's card, as the real server gave them, then a stream that stops after its
    first event, once the page shows it (`shown`): the connection closes as a killed server's does
    (cut=True, its chunked body not ended) or as a finished response's does (cut=False, but no [DONE])."""

    page = b""
    models = b""
    cut = True
    text = "Th"
    shown = threading.Event()
    requested: ClassVar[list[str]] = []  # the paths asked with GET
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.requested.append(self.path)
        body = self.page if self.path == "/" else self.models
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path == "/" else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        choice = {"text": self.text, "index": 0, "finish_reason": None}
        event = b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if self.cut:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))  # and no last chunk
        else:
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(event)
        self.wfile.flush()
        self.shown.wait(60)
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("cut", "text", "count"), [(True, "Th", "2 characters"), (False, "T", "1 character")],
    ids=["network-error", "closed-before-done"],
)
def test_a_stream_cut_before_its_end_is_an_error_not_a_finished_text(
    page_url: str, browser: webdriver.Chrome, cut: bool, text: str, count: str
) -> None:
    # A server killed mid-stream showed "network error"; one whose connection closed before [DONE] showed
    # the text cut short as if complete ("2 characters in 0.1 s").
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    CutStream.page = httpx.get(page_url + "/").content
    CutStream.models = httpx.get(page_url + "/v1/models").content
    CutStream.cut, CutStream.text = cut, text
    CutStream.shown = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), CutStream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        fill(browser, "prompt", "The")
        browser.find_element(By.ID, "generate").click()
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "out-text").text == text)
        CutStream.shown.set()
        error = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed()
                                                 and d.find_element(By.ID, "error"))
    finally:
        CutStream.shown.set()
        server.shutdown()
        server.server_close()
    lost = f"The connection to the server was lost after {count}, before the text ended"
    assert error.text.startswith(lost)
    assert error.text.endswith(": is chargpt-serve still running?")
    assert status(browser) == "" and browser.find_element(By.ID, "out-text").text == text


def test_weights_no_validation_scored_show_their_loss_as_not_measured(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    # A run stopped between validations: the page said "not recorded", where the export's card says
    # "not measured for these weights", and its tooltip named the arithmetic of a loss never measured.
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    config = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16)
    arithmetic = {"precision": "32-true", "matmul_precision": "highest", "device_type": "cpu"}
    run = write_checkpoint(tmp_path / "stopped early", config, arithmetic=arithmetic)
    checkpoint = run / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=True)
    del saved["callbacks"]  # no validation score
    torch.save(saved, checkpoint)
    with serving(run) as (url, _):
        assert httpx.get(f"{url}/v1/models").json()["data"][0]["chargpt"]["val_loss"] is None
        browser.get(url + "/")
        WebDriverWait(browser, 60).until(lambda d: "vocabulary" in d.find_element(By.ID, "model-info").text)
    loss = browser.find_element(By.XPATH, "//*[@id='model-info']/span[contains(., 'validation loss')]")
    assert loss.text == "validation loss not measured"
    assert "measured in" not in loss.get_attribute("title")


def test_the_page_asks_its_server_for_nothing_but_the_page_and_the_models_card(
    page_url: str, browser: webdriver.Chrome
) -> None:
    # The browser asked for /favicon.ico at every visit: a 404 in the server's log each time.
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    CutStream.page = httpx.get(page_url + "/").content
    CutStream.models = httpx.get(page_url + "/v1/models").content
    CutStream.requested = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), CutStream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        WebDriverWait(browser, 60).until(lambda d: "vocabulary" in d.find_element(By.ID, "model-info").text)
        browser.get("about:blank")  # the page is done with: all it asked has been asked
    finally:
        server.shutdown()
        server.server_close()
    assert CutStream.requested == ["/", "/v1/models"]
