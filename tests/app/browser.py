"""Browser harness for the web app: serve ``scripts/app.py`` on a free local port and drive headless Chromium.

Used by ``tests/app/test_browser.py`` and, as a command, to make the README's screenshot:

    python -m tests.app.browser --model_dir runs/demo/model --photo PHOTO --out docs/app.png
    python -m tests.app.browser --model_dir runs/demo/model --geo_prior runs/demo/geo_prior \
        --lat 42 --lon -95 --date 2019-06-01 --photo PHOTO --out docs/app.png    # location typed in

Selenium talks to the *system* ``chromedriver`` and ``chromium`` (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them): Selenium Manager's browser download is never used, nothing here
needs the network. Every wait has a deadline, and the server process group is always stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SERVER_START_S = 180  # importing torch + gradio and loading the model on a busy 2-core CI machine
RESULT_S = 60
PHOTO_INPUT = "#inat-photo input[type=file]"


def find_browser() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` paths, or ``None`` when either is missing."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver" if os.path.isfile("/usr/lib/chromium/chromedriver") else None
    )
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path


def _log_tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it after 15 s; returns once the process has exited."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@contextlib.contextmanager
def serve(model_dir, *, log: Path, examples: list[str] | None = None, extra_args: list[str] = ()) -> Iterator[Server]:
    """Run ``scripts/app.py`` on 127.0.0.1 and a free port until the context ends; yields once the page answers."""
    port = free_port()
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "app.py"), "--model_dir", str(model_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), *extra_args]
    if examples is not None:
        cmd += ["--examples", *map(str, examples)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with status {process.returncode}:\n{_log_tail(log)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app did not answer on {url} within {SERVER_START_S} s:\n{_log_tail(log)}")
            time.sleep(0.5)
        yield Server(url, process, log)
    finally:
        _stop(process)


@contextlib.contextmanager
def chromium(browser: str, driver: str, *, width: int = 1280, height: int = 1000):
    """A headless Chromium driven through the system chromedriver; always quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    web = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        web.set_page_load_timeout(RESULT_S)
        yield web
    finally:
        web.quit()


@dataclasses.dataclass
class Shown:
    """What the page shows after a request: the result table's rows, or the error message."""

    rows: list[dict[str, str]]
    error: str | None
    backoff: str | None = None  # "pretty sure: genus ..."
    location: str | None = None  # with a location prior: what was used, from where

    @property
    def top1(self) -> tuple[str, float]:
        """(scientific name, probability in [0, 1]) of the first row, as displayed."""
        first = self.rows[0]
        return first["label"], float(first["prob"].rstrip("%")) / 100


class AppPage:
    """The page as a visitor uses it: upload a photo (clearing the previous one first), click an example."""

    def __init__(self, web, url: str):
        self.web = web
        self.url = url

    def _wait(self, condition, message: str, timeout: float = RESULT_S):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.web, timeout, poll_frequency=0.2).until(condition, message)

    def _find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.web.find_elements(By.CSS_SELECTOR, css)

    def open(self) -> None:
        self.web.get(self.url)
        self._wait(lambda _: self._find(PHOTO_INPUT), "the photo upload never appeared")

    def model_text(self) -> str:
        self._wait(lambda _: self._find("#inat-model"), "the model facts never appeared")
        return self._find("#inat-model")[0].text

    def _outcome(self) -> bool:
        return bool(self._find("#inat-details #inat-result") or self._find("#inat-details #inat-error"))

    def _read(self) -> Shown:
        errors = self._find("#inat-details #inat-error")
        if errors:
            return Shown([], errors[0].text)
        rows = []
        for tr in self._find("#inat-details #inat-result tbody tr"):
            cells = {td.get_attribute("class"): td.text for td in tr.find_elements("css selector", "td")}
            rows.append({"label": cells["inat-label"], "prob": cells["inat-prob"], "common": cells["inat-common"]})
        notes = {
            name: (found[0].text if found else None)
            for name in ("backoff", "location")
            for found in [self._find(f"#inat-details #inat-result .inat-{name}")]
        }
        return Shown(rows, None, **notes)

    def set_location(self, latitude=None, longitude=None, date=None) -> None:
        """Type where/when the photo was taken into the location fields (``None``: leave the field empty)."""
        from selenium.webdriver.common.keys import Keys

        fields = (("#inat-lat input", latitude), ("#inat-lon input", longitude), ("#inat-date textarea", date))
        for css, value in fields:
            (field,) = self._wait(lambda _, css=css: self._find(css), f"no location field {css} on the page")
            # Keystrokes, not WebElement.clear(): Gradio updates a field's value on input events, which clear() skips.
            field.send_keys(Keys.CONTROL, "a")
            field.send_keys(Keys.BACKSPACE)
            if value is not None:
                field.send_keys(str(value))

    def _clear(self) -> None:
        if not self._find(PHOTO_INPUT):  # a file is shown: remove it the way a visitor does
            self._find("#inat-photo button[aria-label='Clear']")[0].click()
            self._wait(lambda _: self._find(PHOTO_INPUT), "the upload did not come back after Clear")
        self._wait(lambda _: not self._outcome(), "the previous result stayed on the page after Clear")

    def upload(self, path) -> Shown:
        self._clear()
        self._find(PHOTO_INPUT)[0].send_keys(str(Path(path).resolve()))
        self._wait(lambda _: self._outcome(), f"no result or error shown for {path}")
        return self._read()

    def set_tta(self, on: bool) -> Shown:
        """Switch test-time augmentation; the shown photo is classified again."""
        box = self._find("#inat-tta input[type=checkbox]")[0]
        if box.is_selected() != on:
            box.click()
        views = "test-time augmentation" if on else "single center-crop view"
        self._wait(
            lambda _: any(views in e.text for e in self._find("#inat-details #inat-result .inat-note")),
            f"the result did not switch to {views}",
        )
        return self._read()

    def click_example(self, index: int) -> Shown:
        self._clear()
        self._find("#inat-examples button.thumbnail-item")[index].click()
        self._wait(lambda _: self._outcome(), f"no result shown for example {index}")
        return self._read()

    def screenshot(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.web.save_screenshot(str(path))
        return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot of the app's result page for one photo.")
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--examples", nargs="*", default=None)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--geo_prior", default=None, help="Serve with this location prior ...")
    parser.add_argument("--lat", type=float, default=None, help="... and type in this location/date.")
    parser.add_argument("--lon", type=float, default=None)
    parser.add_argument("--date", default=None)
    args = parser.parse_args(argv)
    found = find_browser()
    if found is None:
        print("error: chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
        return 2
    log = Path(args.out).with_suffix(".server.log")
    extra = ["--geo_prior", args.geo_prior] if args.geo_prior else []
    with (
        serve(args.model_dir, log=log, examples=args.examples, extra_args=extra) as server,
        chromium(*found, height=args.height) as web,
    ):
        page = AppPage(web, server.url)
        page.open()
        if args.geo_prior:
            page.set_location(args.lat, args.lon, args.date)
        shown = page.upload(args.photo)
        print(shown)
        page.screenshot(args.out)
    log.unlink()
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
