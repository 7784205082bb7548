"""Open a zdim report in headless Chromium and save a screenshot (the README's picture comes from this).

    python scripts/screenshot_report.py runs/mnist/report.html docs/report.png [--width 1280] [--height 2400]

Needs the Debian packages ``chromium`` and ``chromium-driver`` and ``pip install selenium`` (dev extra).
Prints console errors and network requests seen while loading (there should be none).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def open_chromium(width: int, height: int, profile: str) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    for f in FLAGS + [f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        opts.add_argument(f)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def network_requests(driver: webdriver.Chrome) -> list[str]:
    """URLs the page requested, other than the report file itself and data: URIs."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith(("data:", "file:", "about:", "chrome:")):  # chrome: is the browser's own
                urls.append(url)
    return urls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("png")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        driver = open_chromium(args.width, args.height, profile)
        try:
            driver.get_log("performance")  # drain what the browser's start page loaded
            driver.get(Path(args.report).resolve().as_uri())
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            requests = network_requests(driver)
            driver.save_screenshot(args.png)
        finally:
            driver.quit()
    print(f"{args.png}: {args.width}x{args.height}; console errors: {len(errors)}; network requests: {len(requests)}")
    for e in errors:
        print("  console:", e["message"])
    for u in requests:
        print("  request:", u)
    return 1 if errors or requests else 0


if __name__ == "__main__":
    sys.exit(main())
