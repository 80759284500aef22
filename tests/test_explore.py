"""``python -m cfnet.explore`` in a real headless browser, and the refusals of its command line.

The browser test starts the entry point as a user does (a process of its own, ``port=0``: a free
loopback port, read from the address it prints) on a tiny model trained for the test, drives
Debian's ``chromium`` through ``chromedriver`` (selenium, with the driver's path given: nothing is
downloaded), opens a validation image, clicks a pixel and reads back the heat map the page draws,
from the canvas's own pixels. The reference is ``Segmentor.cooccurrence`` run here, on the
dataset's image, outside the server: the page's map must be its p(c|t) row for the clicked pixel
(within the colour map's rounding), for head 0 and, after switching, head 1. It saves screenshots
(``CFNET_FIGURES_DIR``: also there, for docs/explore.md; ``CFNET_CKPT``: explore that checkpoint
instead of training one). Without a browser it skips, saying so in one line.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from cfnet.analysis.notebook import best_checkpoint, trained_run
from cfnet.data.transforms import eval_transform
from cfnet.lit import SegmentationModule
from support.cli import run_cli
from support.configs import ROOT, TINY_RUN

CHROMIUM_FLAGS = (  # headless, offline: no sync, no component updates, no background requests
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1050",
)


def browser_paths() -> tuple[str, str]:
    """(chromium, chromedriver), or skip the test in one line."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "no headless browser: chromium and chromedriver not on PATH "
            "(Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (the dev extra: pip install -e '.[dev]')")
    return chromium, driver


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """``CFNET_CKPT``, or a tiny CFNet trained here for one epoch (seconds)."""
    browser_paths()
    given = os.environ.get("CFNET_CKPT")
    if given:
        return Path(given) if Path(given).is_absolute() else ROOT / given
    run = tmp_path_factory.mktemp("explore") / "run"
    run_cli("cfnet.train", *TINY_RUN, f"hydra.run.dir={run}")
    return best_checkpoint(run)


@pytest.fixture(scope="module")
def server(checkpoint) -> Iterator[str]:
    """``python -m cfnet.explore ckpt_path=… port=0`` running; yields the address it printed."""
    command = [sys.executable, "-m", "cfnet.explore", f"ckpt_path={checkpoint}", "port=0"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in process.stdout], daemon=True).start()
    printed, deadline = [], time.monotonic() + 180
    try:
        while (address := _address(printed)) is None:
            assert process.poll() is None, "cfnet.explore stopped:\n" + "".join(printed)
            assert time.monotonic() < deadline, "no address printed:\n" + "".join(printed)
            try:
                printed.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        assert address.startswith("http://127.0.0.1:")  # loopback unless asked
        yield address
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _address(printed: list[str]) -> str | None:
    found = re.search(r"cfnet explorer: (http://\S+)", "".join(printed))
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def browser(server) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="cfnet-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def shown_heat(driver) -> tuple[np.ndarray, float]:
    """(the heat map the page shows, its value range), read from its canvas: the "hot" colour
    map's r + g + b grows linearly from the row's smallest value to its largest, which the canvas
    keeps (data-min, data-max) and the colour bar prints."""
    width, height, data, low, high = driver.execute_script(
        "const c = document.getElementById('heat-canvas');"
        "return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width,"
        " c.height).data), c.dataset.min, c.dataset.max];"
    )
    rgba = np.asarray(data, np.float64).reshape(height, width, 4)
    low, high = float(low), float(high)
    return low + rgba[..., :3].sum(-1).ravel() / 765 * (high - low), high - low


def query_pixel(mask: np.ndarray, classes: list[int], grid: tuple[int, int]) -> tuple[int, int]:
    """The centre of a query cell wholly of one of ``classes`` (else the first cell)."""
    (height, width), (h, w) = mask.shape, grid
    for r in range(h):
        for c in range(w):
            block = mask[
                r * height // h : (r + 1) * height // h, c * width // w : (c + 1) * width // w
            ]
            if np.isin(block, classes).all():
                return (r * height // h + height // h // 2, c * width // w + width // w // 2)
    return height // h // 2, width // w // 2


def test_a_click_in_the_browser_shows_the_models_p_c_t_for_that_pixel(
    browser, server, checkpoint, tmp_path
):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    # the reference, outside the server: the dataset's image through the checkpoint's model
    module = SegmentationModule.from_checkpoint(checkpoint).eval()
    hp = module.hparams
    config = trained_run(checkpoint).config
    dataset = instantiate(config.dataset).build_dataset("val", transform=None)
    ambiguous = list(hp.class_groups.get("ambiguous", range(1, hp.num_classes)))
    index = next(i for i in range(len(dataset)) if np.isin(dataset.read(i)[1], ambiguous).any())
    image, mask, name = dataset.read(index)
    x = eval_transform(mean=hp.mean, std=hp.std)(image=image)["image"][None]
    with torch.no_grad():
        maps = module.net.cooccurrence(x)
    y, x_ = query_pixel(mask, ambiguous, maps.query_size)
    (h, w), (height, width) = maps.query_size, mask.shape
    t = (y * h // height) * w + x_ * w // width

    browser.get(server)
    wait_for(lambda: "CFNet" in browser.find_element(By.ID, "model-line").text, "the model line")
    box = browser.find_element(By.ID, "index")
    box.clear()
    box.send_keys(str(index))
    browser.find_element(By.CSS_SELECTOR, "#by-index button").click()
    wait_for(lambda: browser.find_element(By.ID, "image-line").text.startswith(name), "the image")
    canvas = browser.find_element(By.ID, "image-canvas")
    scale = canvas.size["width"] / width
    ActionChains(browser).move_to_element_with_offset(
        canvas, (x_ + 0.5) * scale - canvas.size["width"] / 2,
        (y + 0.5) * scale - canvas.size["height"] / 2,
    ).click().perform()  # fmt: skip
    readout = browser.find_element(By.ID, "readout")
    wait_for(lambda: readout.get_attribute("data-pixel") == f"{y},{x_}", "the clicked pixel")
    k = maps.prior.shape[2]
    browser.find_element(By.ID, f"map-{k}").click()  # the combination p(c|t) = Σ_k π_k ...

    shown = {}
    for head in (0, 1):
        browser.find_element(By.ID, f"head-{head}").click()
        reference = maps.probability[0, head, t].numpy()

        def drawn(reference=reference) -> list[np.ndarray] | None:
            heat, span = shown_heat(browser)
            tolerance = 0.003 * span  # the colours' rounding: ±1.5 of r + g + b's 765 steps
            same = heat.shape == reference.shape and np.allclose(heat, reference, atol=tolerance)
            return [heat] if same else None

        (shown[head],) = wait_for(drawn, f"head {head}'s p(c|t) on the page", timeout=20)
    difference = np.abs(shown[0] - shown[1]).max()  # switching heads changes the map
    assert difference > 0.05 * (shown[0].max() - shown[0].min()), difference

    predicted = module.net(x).argmax(1)[0, y, x_]
    assert readout.get_attribute("data-cls") == str(int(predicted))
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(r.startswith(server) for r in resources), resources
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    screenshots = [tmp_path]
    if os.environ.get("CFNET_FIGURES_DIR"):
        screenshots.append(ROOT / os.environ["CFNET_FIGURES_DIR"])
    browser.save_screenshot(str(tmp_path / "explorer.png"))
    matrix = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#lift-table td.cell"), "the matrix"
    )
    browser.execute_script(
        "arguments[0].scrollIntoView()", browser.find_element(By.ID, "matrix-section")
    )
    a = int(mask[y, x_])  # the clicked pixel's class, and another class of its image
    b = int(np.append(np.setdiff1d(np.unique(mask), [0, a, hp.ignore_index]), a)[0])
    browser.find_element(By.ID, f"lift-{a}-{b}").click()
    assert matrix
    browser.save_screenshot(str(tmp_path / "explorer_matrix.png"))
    for folder in screenshots[1:]:
        folder.mkdir(parents=True, exist_ok=True)
        for picture in ("explorer.png", "explorer_matrix.png"):
            shutil.copy(tmp_path / picture, folder / picture)
    assert (tmp_path / "explorer.png").stat().st_size > 10_000


def test_a_bad_upload_in_the_browser_says_why_and_the_page_goes_on(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    wait_for(lambda: "CFNet" in browser.find_element(By.ID, "model-line").text, "the model line")
    fake = tmp_path / "holiday.png"
    fake.write_text("not a picture")
    browser.find_element(By.ID, "upload").send_keys(str(fake))
    error = browser.find_element(By.ID, "error")
    wait_for(lambda: error.is_displayed() and error.text, "the error line")
    assert error.text.startswith("cannot read image 'holiday.png': Pillow cannot read it")
    browser.find_element(By.CSS_SELECTOR, "#by-index button").click()  # the page goes on
    wait_for(lambda: not error.is_displayed(), "the error to clear")
    wait_for(lambda: browser.find_element(By.ID, "image-line").text, "an image")


def free_port() -> tuple[socket.socket, int]:
    sock = socket.create_server(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def test_the_command_line_refuses_a_busy_port_and_bad_values_in_one_line(tmp_path):
    sock, port = free_port()
    with sock:
        busy = run_cli("cfnet.explore", "ckpt_path=x.ckpt", f"port={port}", check=False)
    assert busy.returncode == 2
    assert busy.stderr.strip() == (
        f"error: cannot listen on host=127.0.0.1 port={port}: Address already in use "
        "(port=0 picks a free port)"
    )
    for args, line in [
        (["port=70000"], "error: port=70000: allowed: 0 (a free port), 1 .. 65535"),
        (["max_upload_mb=0"], "error: max_upload_mb=0: must be a number > 0 (MiB)"),
        (
            ["keep_images=0"],
            "error: keep_images=0: must be a positive integer; allowed: 1, 2, 3, ...",
        ),
    ]:
        result = run_cli("cfnet.explore", "ckpt_path=x.ckpt", *args, check=False)
        assert (result.returncode, result.stderr.strip()) == (2, line)
