"""A screenshot of chargpt-serve's page after generating text (docs/img/serve_page.png).

Starts chargpt-serve on the given checkpoint, opens its page in headless Chromium (Selenium and
the OS's chromium and chromium-driver), generates from a prompt and saves the window.

    python scripts/screenshot_serve_page.py RUN_DIR docs/img/serve_page.png
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ckpt_path")
    p.add_argument("png")
    p.add_argument("--prompt", default="ROMEO:\nBut soft, what light")
    p.add_argument("--max-tokens", default="400")
    p.add_argument("--temperature", default="0.8")
    p.add_argument("--seed", default="7")
    p.add_argument("--width", type=int, default=1000, help="window width in pixels; the height fits the page")
    args = p.parse_args()
    command = [sys.executable, "-m", "chargpt.cli.serve", f"ckpt_path={args.ckpt_path}", "port=0",
               "log_level=warning"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("serving "):
            raise SystemExit(f"chargpt-serve did not start: {line}")
        url = line.split(" at ")[1].split(" ")[0]
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                     f"--window-size={args.width},1000"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.get(url)
            wait = WebDriverWait(driver, 120)
            wait.until(lambda d: "parameters" in d.find_element(By.ID, "model-info").text)
            driver.execute_script("document.getElementById('prompt').value = arguments[0]", args.prompt)
            for field in ("max_tokens", "temperature", "seed"):
                element = driver.find_element(By.ID, field)
                element.clear()
                element.send_keys(getattr(args, field))
            # A script click, and no focus left in a field: the picture shows the page at rest.
            driver.execute_script("document.activeElement.blur()")
            driver.execute_script("document.getElementById('generate').click()")
            wait.until(lambda d: "characters in" in d.find_element(By.ID, "status").text)
            driver.execute_script("document.activeElement.blur()")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": args.width, "height": height, "scale": 1}})
            Path(args.png).write_bytes(base64.b64decode(shot["data"]))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
