"""pictures.py: heat maps (colours, colour bar, fixed scale, overlay), and the dirs HTML report in a real browser."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_pixels
from PIL import Image

from perceptual_sim import __version__
from perceptual_sim.cli import main
from perceptual_sim.images import load_image
from perceptual_sim.pictures import BAR_HEIGHT, BAR_MIN_WIDTH, SHOWN, render_heatmap, save_heatmap

H, W = 24, 240
DARKEST, LIGHTEST, QUARTER = (0, 0, 4), (252, 255, 164), (85, 15, 109)


# ----------------------------------------------------------------------------- heat maps
def test_heatmap_colours_colour_bar_and_overwrite(tmp_path):
    heat = torch.zeros(H, W)
    heat[0, 1], heat[0, 2], heat[0, 3] = 0.5, 2.0, -1.0
    path = tmp_path / "map.png"
    assert save_heatmap(heat, path) == 2.0
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (W, H + BAR_HEIGHT)
        out = np.asarray(im)
    assert tuple(out[0, 0]) == DARKEST == tuple(out[0, 3])  # zero and negative: the darkest colour
    assert tuple(out[0, 2]) == LIGHTEST  # the maximum: the lightest
    assert tuple(out[0, 1]) == QUARTER  # a quarter of the maximum: the third of nine anchors
    bar = out[H + 5 : H + 15, 6 : W - 6]  # the gradient, 0 on the left to the top on the right
    assert tuple(bar[5, 0]) == DARKEST and tuple(bar[5, -1]) == LIGHTEST
    assert (np.diff(bar[5].astype(int).sum(1)) >= -3).all()  # lighter from left to right
    labels = out[H + 17 :]
    assert (labels.sum(2) < 200).sum() > 20  # the scale is written under the bar
    with pytest.raises(FileExistsError, match="--force"):
        save_heatmap(torch.ones(H, W), path)
    assert np.array_equal(np.asarray(Image.open(path)), out)  # untouched
    save_heatmap(torch.zeros(4, 5), path, overwrite=True)
    assert Image.open(path).size == (BAR_MIN_WIDTH, 4 + BAR_HEIGHT)  # wide enough for the bar's labels


def test_fixed_scale_compares_maps_and_marks_clipping():
    one, two = torch.zeros(H, W), torch.zeros(H, W)
    one[0, :2] = torch.tensor([0.25, 1.0])
    two[0, :2] = torch.tensor([0.25, 3.0])
    (pic1, top1), (pic2, top2) = render_heatmap(one, vmax=1.0), render_heatmap(two, vmax=1.0)
    a, b = np.asarray(pic1), np.asarray(pic2)
    assert top1 == top2 == 1.0
    assert tuple(a[0, 0]) == tuple(b[0, 0]) == QUARTER  # equal values, equal colours
    assert tuple(b[0, 1]) == LIGHTEST  # above the scale: the top colour
    assert not np.array_equal(a[H + 17 :], b[H + 17 :])  # "1+" instead of "1": values were clipped
    assert np.array_equal(a[H:H + 16], b[H:H + 16])  # the same bar
    free, _ = render_heatmap(two)
    assert tuple(np.asarray(free)[0, 0]) != QUARTER  # its own maximum (3) as the top
    with pytest.raises(ValueError, match="vmax must be a finite number > 0"):
        render_heatmap(one, vmax=0.0)


def test_overlay_blends_over_image_a():
    heat = torch.zeros(H, W)
    heat[0, 1] = 1.0
    under = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
    picture, _ = render_heatmap(heat, under=under)
    out = np.asarray(picture).astype(int)
    a = (under.permute(1, 2, 0).numpy() * 255)
    expected = 0.5 * a[0, :2] + 0.5 * np.array([DARKEST, LIGHTEST])
    assert np.abs(out[0, :2] - expected).max() <= 1
    with pytest.raises(ValueError, match=f"under must be a 3 x {H} x {W} image"):
        render_heatmap(heat, under=under[:, :4])


def test_heatmap_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="H x W"):
        save_heatmap(torch.zeros(1, 1, 4, 4), tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"\.png"):
        save_heatmap(torch.zeros(4, 4), tmp_path / "m.jpg")
    with pytest.raises(ValueError, match="NaN"):
        save_heatmap(torch.full((4, 4), float("nan")), tmp_path / "m.png")
    assert not any(tmp_path.iterdir())


def test_compare_map_options(tiny, tiny_card, tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = save_pixels(tmp_path / "a.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    b = save_pixels(tmp_path / "b.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    common = [str(a), str(b), "--model", str(tiny_card)]
    assert main([*common, "--map", str(tmp_path / "m.png"), "--map-max", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["map"] == {"file": str(tmp_path / "m.png"), "max": 0.5, "overlay": False}
    assert main([*common, "--map", str(tmp_path / "free.png"), "--json"]) == 0
    with torch.inference_mode():
        top = float(tiny(load_image(a)[None], load_image(b)[None], spatial=True).max())
    assert json.loads(capsys.readouterr().out)["map"]["max"] == pytest.approx(top, rel=1e-6)  # the map's maximum
    assert main([*common, "--map", str(tmp_path / "o.png"), "--overlay"]) == 0
    capsys.readouterr()
    overlay, plain = np.asarray(Image.open(tmp_path / "o.png")), np.asarray(Image.open(tmp_path / "free.png"))
    image_a = (load_image(a).permute(1, 2, 0).numpy() * 255)
    assert np.abs(overlay[:32, :48] - (image_a + plain[:32, :48]) / 2).max() <= 1
    for flag in (["--map-max", "1"], ["--overlay"]):
        assert main([*common, *flag]) == 2
        assert capsys.readouterr().err == f"error: {flag[0]} draws the heat map: add --map OUT.png\n"


# ----------------------------------------------------------------------------- the report
@pytest.fixture(scope="module")
def report(tiny_card, tmp_path_factory) -> tuple[Path, list[float]]:
    """A dirs report over 12 pairs of different noise levels (not in name order) and one unreadable file."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(1)
    for i, level in enumerate(rng.permutation(12)):
        base = rng.integers(0, 256, (40, 56, 3)).astype(float)
        save_pixels(root / "a" / f"{i:02d}.png", base.astype(np.uint8))
        noisy = np.clip(base + (5 + 10 * level) * rng.standard_normal(base.shape), 0, 255)
        save_pixels(root / "b" / f"{i:02d}.png", noisy.astype(np.uint8))
    save_pixels(root / "a" / "bad.png", np.zeros((40, 56, 3), np.uint8))
    (root / "b" / "bad.png").write_bytes(b"not a png")
    save_pixels(root / "b" / "lonely.png", np.zeros((40, 56, 3), np.uint8))  # no counterpart in a
    page = root / "report.html"
    assert main(["dirs", str(root / "a"), str(root / "b"), "--model", str(tiny_card), "--report", str(page),
                 "--json", str(root / "scores.json")]) == 1
    scores = json.loads((root / "scores.json").read_text())
    return page, [p["distance"] for p in scores["pairs"]]


def test_report_content(report, tiny_card):
    page, distances = report
    text = page.read_text()
    card = json.loads(tiny_card.read_text())
    for value in (card["sha256"], ">tiny<", ">spatial<", f">{__version__}<", "pairs failed</th><td>1<"):
        assert value in text, value
    assert not re.findall(r"""(?:src|href)=["'](?!data:)""", text)  # nothing outside the page
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4 * 2 * SHOWN  # A, B and the heat map twice (shared and own scale), 5 largest and 5 smallest
    assert Image.open(io.BytesIO(base64.b64decode(images[0]))).size == (56, 40)
    assert Image.open(io.BytesIO(base64.b64decode(images[2]))).size == (56, 40)  # the map alone: its bar is page text
    scales = [float(v) for v in re.findall(r'aria-label="colour scale 0 to ([0-9.e+-]+)"', text)]
    assert len(scales) == 2 * 2 * SHOWN and scales[0::2] == [scales[0]] * 2 * SHOWN  # one shared scale
    own = scales[1::2]  # each pair's own maximum: the largest of them is the shared scale
    assert len(set(own)) > 1 and max(own) == scales[0] and all(s <= scales[0] for s in own)
    unscored = text[text.index('<div id="unscored">'):text.index("<h2>Largest distances</h2>")]
    assert "pairs that could not be scored (1)" in unscored and "bad.png" in unscored
    assert "only (1)" in unscored and "lonely.png" in unscored
    shown = [float(v) for v in re.findall(r"<h3>distance ([0-9.e-]+)</h3>", text)]
    scored = sorted(d for d in distances if d is not None)
    assert shown == pytest.approx([*scored[::-1][:SHOWN], *scored[:SHOWN]], rel=1e-5)
    assert text.count("<tr><td data-value=") == 13 and "not an image" in text


def test_report_usage_errors(report, capsys):
    page, _ = report
    folder = page.parent
    dirs = ["dirs", str(folder / "a"), str(folder / "b"), "--model", "no-such-model"]  # no work starts
    assert main([*dirs, "--report", str(page)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --report {page} exists; choose another file or pass --force")
    assert main([*dirs, "--report", str(folder / "r.pdf")]) == 2
    assert "the report is an HTML page" in capsys.readouterr().err
    assert main([*dirs, "--report", str(folder / "r.html"), "--json", str(folder / "r.html")]) == 2
    assert capsys.readouterr().err.startswith("error: --json and --report must name different files")


# ----------------------------------------------------------------------------- the report in a browser
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,900")


class Chromium:
    """Headless Chromium driven through the Chrome DevTools protocol (loopback only)."""

    def __init__(self, profile: Path) -> None:
        import websocket  # websocket-client, in the test extra

        self.process = subprocess.Popen([shutil.which("chromium"), *BROWSER_FLAGS, f"--user-data-dir={profile}",
                                         "--remote-debugging-port=0", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert self.process.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        targets = json.loads(no_proxy.open(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.events: list[dict] = []
        self._id = 0

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.socket.recv()))

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        x, y = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView(); "
                       "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


DISTANCES = "[...document.querySelectorAll('#pairs tbody tr')].map(r => r.children[2].dataset.value)"


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
@pytest.mark.browser
def test_report_in_a_real_browser(report, tmp_path):
    page, distances = report
    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Network.enable")
        browser.call("Page.enable")
        browser.call("Page.navigate", url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        images = browser.js("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(images) == 4 * 2 * SHOWN and all(done and w > 0 and h > 0 for done, w, h in images)
        assert browser.js("parseFloat(getComputedStyle(document.querySelector('.ticks')).fontSize)") >= 12  # readable
        assert browser.js("document.querySelector('.ticks span:last-child').getBoundingClientRect().height") >= 12
        used = browser.js("document.querySelector('#largest .row').getBoundingClientRect().width / innerWidth")
        assert used > 0.75, used  # the pictures use the page's width, not its left half
        assert browser.js("document.querySelector('#unscored').textContent").count("lonely.png") == 1
        assert browser.js("document.querySelector('#histogram').getBoundingClientRect().height") > 100
        before = browser.js(DISTANCES)
        assert [float(v) if v else None for v in before] == distances  # file order, the unreadable pair included
        assert before[:-1] != sorted(before[:-1], key=float)
        browser.click("#pairs th:nth-child(3)")
        ascending = browser.js(DISTANCES)
        assert ascending[:-1] == [repr(d) for d in sorted(d for d in distances if d is not None)]
        assert ascending[-1] == "" and browser.js("document.querySelector('#pairs th:nth-child(3)').ariaSort") == \
            "ascending"
        browser.click("#pairs th:nth-child(3)")
        descending = browser.js(DISTANCES)
        assert descending[:-1] == ascending[:-1][::-1] and descending[-1] == ""
        browser.click("#pairs th:nth-child(2)")
        names = browser.js("[...document.querySelectorAll('#pairs tbody tr')].map(r => r.children[1].textContent)")
        assert names == sorted(names) and len(names) == 13
        requested = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
        assert requested and all(url.startswith(("file://", "data:")) for url in requested), requested
        shot = Image.open(io.BytesIO(base64.b64decode(browser.call("Page.captureScreenshot")["data"])))
        assert np.asarray(shot.convert("L")).std() > 10  # a rendered page, not a blank one
    finally:
        browser.close()
