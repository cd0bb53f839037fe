"""The web app: the restoration behind it, and the page driven in headless Chromium as a visitor uses it."""

from __future__ import annotations

import io
import shutil
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stochdeblur import app, hub
from stochdeblur.config import load_config
from stochdeblur.methods import build_method

TINY = Path(__file__).resolve().parents[1] / "configs" / "dvsr_synthetic_tiny.yaml"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def deblurrer(tmp_path_factory: pytest.TempPathFactory) -> app.Deblurrer:
    """An untrained tiny DvSR (presets: average = 2 steps × 2 samples) saved and loaded as the app does."""
    root = tmp_path_factory.mktemp("app")
    cfg = load_config(TINY, ["sample.modes.perceptual.steps=3"])
    torch.manual_seed(0)
    hub.save_pretrained(build_method(cfg), root / "model", cfg)
    model, cfg, note = app.load_model(str(root / "model"), CPU)
    assert note == ""
    return app.Deblurrer(model, cfg, CPU, max_pixels=64 * 64, out_dir=root / "out")


def _photo(path: Path, height: int = 40, width: int = 56) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_modes_give_the_photo_size_with_sigma_only_for_several_samples(deblurrer: app.Deblurrer,
                                                                      tmp_path: Path) -> None:
    photo = _photo(tmp_path / "shake.png")
    averaged = deblurrer(photo, "average", seed=1)
    assert averaged.restored.shape == averaged.blurry.shape == (40, 56, 3)
    assert averaged.sigma is not None and averaged.sigma.shape == (40, 56, 3)
    assert Image.open(averaged.path).size == (56, 40) and averaged.path.name == "shake_restored.png"
    assert "2 steps × 2 samples, seed 1" in averaged.note and "estimates no blur kernel" in averaged.note
    again = deblurrer(photo, "average", seed=1)
    np.testing.assert_array_equal(again.restored, averaged.restored)  # seeded
    predictor = deblurrer(photo, "predictor", steps=50, average=8)  # the sliders do not apply here
    assert predictor.sigma is None and "predictor only" in predictor.note and "no σ map" in predictor.note
    assert "3 steps × 1 sample" in deblurrer(photo, "perceptual").note


def test_bad_uploads_and_settings_get_a_message(deblurrer: app.Deblurrer, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(app.AppError, match=r"^notes\.png: "):
        deblurrer(tmp_path / "notes.png")
    with pytest.raises(app.AppError, match=r"^big\.png: too large: 80x60 = 4800 pixels exceeds max_pixels"):
        deblurrer(_photo(tmp_path / "big.png", 60, 80))
    with pytest.raises(app.AppError, match="averaging 1–16"):
        deblurrer(_photo(tmp_path / "ok.png"), "average", average=99)


def test_default_without_a_shipped_model_falls_back_to_classical(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", tmp_path / "default")
    model, cfg, note = app.load_model("default", CPU)
    assert cfg.method == "classical" and "No model is shipped" in note
    with pytest.raises(hub.CheckpointError):
        app.load_model(str(tmp_path / "missing"), CPU)


def test_requests_are_queued_one_at_a_time(deblurrer: app.Deblurrer) -> None:
    page = app.build_app(deblurrer)
    (restore,) = [fn for fn in page.fns.values() if fn.name == "run"]
    assert restore.queue and restore.concurrency_limit == 1


def _chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them as "
                    "root: apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture()
def browser() -> Iterator[object]:
    """Headless Chromium through Selenium, with the system driver (no driver download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_visitor_uploads_a_photo_and_downloads_the_result(deblurrer: app.Deblurrer, browser, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = app.build_app(deblurrer)
    port = _free_port()
    app.launch(page, port=port, block=False, quiet=True)
    request.addfinalizer(page.close)
    wait = WebDriverWait(browser, 30)
    browser.get(f"http://127.0.0.1:{port}/")
    upload = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))[0]
    upload.send_keys(str(_photo(tmp_path / "shake.png")))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#photo a[download='shake.png']"))  # uploaded
    browser.find_element(By.ID, "deblur").click()
    link = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#download a[download]"))[0]
    with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as response:  # noqa: S310 - localhost
        restored = Image.open(io.BytesIO(response.read()))
    assert restored.size == (56, 40)
    shown = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#result img"))
    natural = "return [arguments[0].naturalWidth, arguments[0].naturalHeight]"
    sizes = {tuple(browser.execute_script(natural, img)) for img in shown}
    assert sizes == {(56, 40)}  # blurry and restored, behind the slider
    assert "2 steps × 2 samples" in browser.find_element(By.ID, "info").text
    assert browser.find_elements(By.CSS_SELECTOR, "#sigma img")
    browser.find_element(By.XPATH, "//*[@id='mode']//label[contains(., 'predictor')]").click()
    browser.find_element(By.ID, "deblur").click()
    wait.until(lambda b: "predictor only" in b.find_element(By.ID, "info").text)
    # a file that is not an image: a message, not a stack trace
    browser.find_element(By.CSS_SELECTOR, "#photo button[aria-label='Clear']").click()
    (tmp_path / "notes.png").write_text("not an image")
    upload = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"))[0]
    upload.send_keys(str(tmp_path / "notes.png"))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#photo a[download='notes.png']"))
    browser.find_element(By.ID, "deblur").click()
    started = time.monotonic()
    wait.until(lambda b: "notes.png: " in b.find_element(By.TAG_NAME, "body").text)
    assert time.monotonic() - started < 30 and "Traceback" not in browser.page_source
