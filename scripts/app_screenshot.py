"""Screenshot of the web app for the README: serve it, upload a blurry photo in headless Chromium, deblur.

    python scripts/app_screenshot.py --out docs/images/app.png [--checkpoint default] [--mode average]

The photo is scikit-image's astronaut blurred by its seeded camera-shake kernel (the first image of
``synthetic:photos``, 256² centre crop) unless ``--photo`` is given. Needs Debian's chromium and
chromium-driver and the ``dev`` extra (Selenium).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path

import torch
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from stochdeblur.app import Deblurrer, build_app, launch, load_model
from stochdeblur.io import write_image
from stochdeblur.utils import atomic_write_bytes


def main() -> int:
    """Take the screenshot; exit code 2 when chromium or chromedriver is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--checkpoint", default="default", help="as for scripts/app.py")
    parser.add_argument("--photo", type=Path, help="blurry photo to upload (default: the blurred astronaut)")
    parser.add_argument("--mode", default="average", choices=("predictor", "average", "perceptual"))
    args = parser.parse_args()
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        print("error: needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
        return 2
    photo = args.photo
    if photo is None:
        from stochdeblur.data.photos import photo_pairs

        blurry = photo_pairs(crop=256)[0]["blur"]
        photo = write_image(Path(tempfile.mkdtemp()) / "astronaut_blurry.png", blurry)
    model, cfg, note = load_model(args.checkpoint, torch.device("cpu"))
    page = build_app(Deblurrer(model, cfg, torch.device("cpu")), note)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch(page, port=port, block=False, quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=1280,1180"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        wait = WebDriverWait(chrome, 600)
        chrome.get(f"http://127.0.0.1:{port}/")
        upload = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))[0]
        upload.send_keys(str(photo))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, f"#photo a[download='{photo.name}']"))
        chrome.find_element(By.XPATH, f"//*[@id='mode']//label[contains(., '{args.mode}')]").click()
        chrome.find_element(By.ID, "deblur").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#download a[download]"))
        atomic_write_bytes(args.out, chrome.get_screenshot_as_png())
    finally:
        chrome.quit()
        page.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
