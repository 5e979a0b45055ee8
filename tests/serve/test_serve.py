"""``genzoo serve`` over HTTP: every endpoint's bad inputs are 4xx one-line JSON and leave the server
healthy; sampling and completion keep their laws through the API (same seed, same picture; shown
pixels kept); 20 concurrent requests all succeed; the server binds 127.0.0.1 unless told otherwise.
Tiny runs (a PixelRNN and a VAE on the embedded Pokémon, a conditional GAN on labelled 8x8 images),
trained for a few steps: quality does not matter here."""

from __future__ import annotations

import base64
import http.client
import inspect
import io
import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import chromium_or_skip, run_cli
from genzoo.cli import build_parser, main
from genzoo.serve import make_server
from genzoo.serve.fields import RequestError
from genzoo.serve.jobs import Jobs
from genzoo.serve.playground import MAX_UPLOAD_BYTES, load_served_runs

try:  # Selenium (the test extra) drives the browser tests; without it they skip, and fail under CI=true
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None


def _train(out, model, data, *extra):
    code = main(["train", model, "--data", data, "--out", str(out), "--preset", "tiny", "--steps", "2",
                 "--device", "cpu", "--quiet", "--set", "sample_every=0", *extra])
    assert code == 0


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory, idx_folder):
    root = tmp_path_factory.mktemp("serve")
    _train(root / "pixelrnn", "pixelrnn", "pokemon")
    _train(root / "vae", "vae", "pokemon")
    _train(root / "cgan", "cgan", f"idx:{idx_folder}")
    assert main(["eval", str(root / "pixelrnn"), "--only", "likelihood", "--device", "cpu"]) == 0
    return [root / "pixelrnn", root / "vae", root / "cgan"]


@pytest.fixture(scope="module")
def served(run_dirs):
    return load_served_runs(run_dirs, "cpu")


@pytest.fixture(scope="module")
def server(served):
    srv = make_server(served, port=0, workers=2)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(server, method, path, body=None, *, raw=None, headers=None, timeout=60):
    """(status, parsed JSON or text) of one request."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=timeout)
    hdrs = dict(headers or {})
    data = raw
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=hdrs)
    res = conn.getresponse()
    payload = res.read()
    conn.close()
    kind = res.getheader("Content-Type", "")
    return res.status, (json.loads(payload) if kind.startswith("application/json") else payload.decode())


def finish(server, started, timeout=60):
    """Poll a job to its end; returns its last view."""
    status, job = started
    assert status == 202, job
    view = job
    while view["state"] in ("queued", "running"):
        status, view = call(server, "GET", f"/api/jobs/{job['job']}?wait=5")
        assert status == 200
    assert view["state"] == "done", view
    return view


def png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def healthy(server):
    status, body = call(server, "GET", "/api/health")
    return status == 200 and body["ok"] is True


# -- binding --------------------------------------------------------------------------------------
def test_binds_127_0_0_1_unless_told_otherwise(server):
    assert server.server_address[0] == "127.0.0.1"
    assert inspect.signature(make_server).parameters["host"].default == "127.0.0.1"
    assert build_parser().parse_args(["serve", "some_run"]).host == "127.0.0.1"


def test_a_non_local_host_prints_a_warning(served, capfd):
    srv = make_server(served, host="0.0.0.0", port=0)
    srv.server_close()
    err = capfd.readouterr().err
    assert "warning" in err and "not a local address" in err and len(err.strip().splitlines()) == 1


def test_the_cli_refuses_a_missing_run_in_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "serve", tmp_path / "nope", "--port", "0")
    assert code == 2 and err.startswith("genzoo: error:") and len(err.strip().splitlines()) == 1


# -- bad requests -------------------------------------------------------------------------------
BAD = [
    # (method, path, body, status, words in the message)
    ("POST", "/api/sample", {"run": 7}, 404, "unknown run"),
    ("POST", "/api/sample", {"run": "../vae"}, 404, "unknown run"),
    ("POST", "/api/sample", {"run": "/etc/passwd"}, 404, "unknown run"),
    ("POST", "/api/sample", {"run": [0]}, 404, "unknown run"),
    ("POST", "/api/decode", {"run": "../../vae", "z": [0, 0]}, 404, "unknown run"),
    ("POST", "/api/upload?run=../pixelrnn", b"x", 404, "unknown run"),
    ("GET", "/static/../../pyproject.toml", None, 404, "no such page"),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd", None, 404, "no such page"),
    ("GET", "/api/jobs/../../etc/passwd", None, 404, "no job"),
    ("GET", "/api/jobs/0123456789abcdef", None, 404, "no job"),
    ("POST", "/api/sample", {"run": 0, "n": 10**9}, 400, "n 1000000000"),
    ("POST", "/api/sample", {"run": 0, "n": 0}, 400, "n 0"),
    ("POST", "/api/sample", {"run": 0, "n": "16"}, 400, "integer"),
    ("POST", "/api/sample", {"run": 0, "n": True}, 400, "integer"),
    ("POST", "/api/sample", {"run": 0, "temperature": -1}, 400, "temperature -1"),
    ("POST", "/api/sample", b'{"run": 0, "temperature": NaN}', 400, "temperature nan"),
    ("POST", "/api/sample", b'{"run": 0, "temperature": Infinity}', 400, "temperature inf"),
    ("POST", "/api/sample", {"run": 0, "temperature": 1e9}, 400, "temperature"),
    ("POST", "/api/sample", {"run": 0, "seed": -1}, 400, "seed"),
    ("POST", "/api/sample", {"run": 0, "seed": 2**64}, 400, "seed"),
    ("POST", "/api/sample", {"run": 0, "class": 1}, 400, "unconditional"),
    ("POST", "/api/sample", {"run": 2, "class": 10}, 400, "class 10"),
    ("POST", "/api/complete", {"run": 0, "image": {"test": 10**6}}, 400, "test"),
    ("POST", "/api/complete", {"run": 0, "image": {"pixels": [0] * 7}}, 400, "image.pixels"),
    ("POST", "/api/complete", {"run": 0, "image": {"pixels": [999] * 400}}, 400, "image.pixels[0]"),
    ("POST", "/api/complete", {"run": 0, "image": "../x.png"}, 400, "image"),
    ("POST", "/api/complete", {"run": 0, "image": {"test": 0}, "known": [1] * 400}, 400, "nothing is hidden"),
    ("POST", "/api/complete", {"run": 0, "image": {"test": 0}, "known": [2] * 400}, 400, "known[0]"),
    ("POST", "/api/complete", {"run": 0, "image": {"test": 0}, "mask": "../../x"}, 400, "mask"),
    ("POST", "/api/complete", {"run": 0, "image": {"test": 0}, "samples": 10**9}, 400, "samples"),
    ("POST", "/api/image", {"run": 0, "index": -1}, 400, "index"),
    ("POST", "/api/mask", {"run": 0, "mask": "everything"}, 400, "mask"),
    ("POST", "/api/decode", {"run": 0, "z": [0]}, 400, "no code space"),
    ("POST", "/api/decode", {"run": 1, "z": [0]}, 400, "list of 2 numbers"),
    ("POST", "/api/decode", {"run": 1, "z": [0, 1e6]}, 400, "z[1]"),
    ("POST", "/api/decode", b'{"run": 1, "z": [0, NaN]}', 400, "z[1]"),
    ("POST", "/api/encode", {"run": 1, "image": {"pixels": [0]}}, 400, "pixels"),
    ("POST", "/api/interpolate", {"run": 1, "a": {"test": 0}, "b": {"test": 1}, "steps": 10**9}, 400, "steps"),
    ("POST", "/api/interpolate", {"run": 1, "a": {"test": 0}, "b": {"seed": -4}}, 400, "seed"),
    ("POST", "/api/interpolate", {"run": 1, "a": {"test": 0}, "b": {"test": 1}, "kind": "cubic"}, 400, "kind"),
    ("POST", "/api/sample", b"{not json", 400, "not JSON"),
    ("POST", "/api/sample", b"[1, 2]", 400, "JSON object"),
    ("POST", "/api/sample", b"\xff\xfe", 400, "UTF-8"),
    ("POST", "/api/sample", b"[" * 100_000, 400, "nested too deeply"),
    ("POST", "/api/nothing", {"run": 0}, 404, "no such action"),
    ("PUT", "/api/sample", {"run": 0}, 405, "not allowed"),
    ("DELETE", "/", None, 405, "not allowed"),
    ("GET", "/api/jobs/0123456789abcdef?wait=nan", None, 400, "wait"),
]


@pytest.mark.parametrize("method, path, body, status, needle", BAD, ids=[f"{b[1]}:{str(b[2])[:40]}" for b in BAD])
def test_bad_requests_are_4xx_one_line_json_and_the_server_stays_healthy(server, method, path, body, status, needle):
    got, answer = call(server, method, path, body)
    assert got == status, answer
    assert set(answer) == {"error"} and needle in answer["error"]
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"] and len(answer["error"]) <= 300
    assert healthy(server)


def test_wrong_content_type_missing_length_and_foreign_host_are_refused(server):
    status, answer = call(server, "POST", "/api/sample", b'{"run": 0}', headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in answer["error"]
    status, answer = call(server, "GET", "/api/health", headers={"Host": "attacker.example:8000"})
    assert status == 403 and "local requests only" in answer["error"]
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.putrequest("POST", "/api/sample")
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()  # no Content-Length
    res = conn.getresponse()
    assert res.status == 411 and "Content-Length" in json.loads(res.read())["error"]
    conn.close()
    assert healthy(server)


def test_a_50_mb_upload_is_refused_before_it_is_read(server):
    size = 50 << 20
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    conn.putrequest("POST", "/api/upload?run=0")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    chunk = b"\0" * (1 << 20)
    try:
        for _ in range(size // len(chunk)):
            conn.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close once it has answered
    res = conn.getresponse()
    answer = json.loads(res.read())
    conn.close()
    assert res.status == 413 and f"{MAX_UPLOAD_BYTES:,}" in answer["error"] and "\n" not in answer["error"]
    assert healthy(server)


def _encoded(fmt: str, size=(30, 30), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("data, kind, status, needle", [
    (b"just some text, not an image", "image/png", 415, "not a readable PNG"),
    (_encoded("GIF"), "image/png", 415, "not PNG"),
    (_encoded("PNG"), "image/jpeg", 415, "not JPEG"),
    (_encoded("PNG"), "image/svg+xml", 415, "image/png or image/jpeg"),
    (_encoded("PNG"), "application/octet-stream", 415, "image/png or image/jpeg"),
])
def test_non_image_uploads_are_refused(server, data, kind, status, needle):
    got, answer = call(server, "POST", "/api/upload?run=0", raw=data, headers={"Content-Type": kind})
    assert got == status and needle in answer["error"] and "\n" not in answer["error"]
    assert healthy(server)


def test_an_upload_becomes_the_runs_kind_of_image(server, served):
    for fmt, kind in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        status, img = call(server, "POST", "/api/upload?run=pixelrnn", raw=_encoded(fmt, (50, 40)),
                           headers={"Content-Type": kind})
        assert status == 200, img
        info = served[0].info
        assert img["shape"] == [1, 20, 20] and len(img["pixels"]) == 400
        assert all(0 <= v < info.num_values for v in img["pixels"])
        palette = np.asarray(info.palette)
        nearest = np.abs(palette - np.array([200, 30, 30])).sum(1).argmin()
        if fmt == "PNG":  # lossless: one colour, its nearest palette entry
            assert set(img["pixels"]) == {int(nearest)}


def test_an_internal_failure_is_one_line_500_without_traceback(server, monkeypatch):
    def boom(body):
        raise RuntimeError("secret internals\nTraceback (most recent call last)")

    monkeypatch.setattr(server.playground, "decode", boom)
    status, answer = call(server, "POST", "/api/decode", {"run": 1, "z": [0, 0]})
    assert status == 500 and answer["error"].startswith("internal error (RuntimeError)")
    assert "secret" not in answer["error"] and "Traceback" not in answer["error"]
    monkeypatch.undo()
    assert healthy(server)


def test_too_many_pending_jobs_is_a_429():
    jobs = Jobs(workers=1, max_pending=1)
    gate = threading.Event()
    jobs.submit("sample", "r", lambda job: (gate.wait(10), {})[1])
    with pytest.raises(RequestError) as e:
        jobs.submit("sample", "r", lambda job: {})
    assert e.value.status == 429
    gate.set()
    jobs.shutdown()


# -- what the endpoints compute -----------------------------------------------------------------
def test_the_page_and_its_files_are_served_with_a_strict_policy(server):
    status, page = call(server, "GET", "/")
    assert status == 200 and "<script src=\"/static/app.js\"></script>" in page and "http" not in page.lower()
    for path in ("/static/app.js", "/static/style.css"):
        status, text = call(server, "GET", path)
        assert status == 200 and "https://" not in text and "http://" not in text  # nothing from elsewhere
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.request("GET", "/")
    res = conn.getresponse()
    res.read()
    assert "default-src 'none'" in res.getheader("Content-Security-Policy")
    assert res.getheader("X-Content-Type-Options") == "nosniff"
    conn.close()


def test_runs_declare_what_they_can_do(server):
    status, info = call(server, "GET", "/api/runs")
    assert status == 200
    pixelrnn, vae, cgan = info["runs"]
    assert [r["name"] for r in info["runs"]] == ["pixelrnn", "vae", "cgan"]
    assert pixelrnn["autoregressive"] and not pixelrnn["latent"] and pixelrnn["can_complete"]
    assert vae["latent"] and vae["latent_dim"] == 2 and vae["has_encoder"] and not vae["conditional"]
    assert cgan["conditional"] and cgan["classes"] == [str(i) for i in range(10)] and not cgan["has_encoder"]


def test_sampling_has_progress_and_the_same_seed_gives_the_same_picture(server):
    a = finish(server, call(server, "POST", "/api/sample", {"run": 0, "n": 4, "seed": 3, "temperature": 0.9}))
    b = finish(server, call(server, "POST", "/api/sample", {"run": "pixelrnn", "n": 4, "seed": 3, "temperature": 0.9}))
    c = finish(server, call(server, "POST", "/api/sample", {"run": 0, "n": 4, "seed": 4, "temperature": 0.9}))
    assert a["done"] == a["total"] == 400  # every sub-pixel of the 20x20 sprites reported
    assert np.array_equal(png(a["image"]), png(b["image"]))
    assert not np.array_equal(png(a["image"]), png(c["image"]))
    cond = finish(server, call(server, "POST", "/api/sample", {"run": 2, "n": 3, "class": 7}))
    assert png(cond["image"]).shape[2] == 3


def test_completion_keeps_the_shown_pixels(server):
    known = [1] * 200 + [0] * 200  # the top ten rows shown
    body = {"run": 0, "image": {"test": 5}, "known": known, "samples": 3, "seed": 1}
    view = finish(server, call(server, "POST", "/api/complete", body))
    fig = png(view["image"])[18:]  # below the header line of completion_figure
    tile, pad = 80, 3  # 20-px sprites upscaled 4x, 3-px gaps
    tiles = [fig[pad : pad + tile, pad + i * (tile + pad) : pad + i * (tile + pad) + tile] for i in range(5)]
    original = tiles[0]
    for completion in tiles[2:]:
        assert np.array_equal(completion[: tile // 2], original[: tile // 2])
    latent = finish(server, call(server, "POST", "/api/complete", {**body, "run": 1}))  # a VAE fits its code
    assert png(latent["image"]).shape == png(view["image"]).shape


def test_a_named_mask_matches_the_cli_masks(server):
    status, m = call(server, "POST", "/api/mask", {"run": 0, "mask": "bottom-half"})
    assert status == 200 and m["known"] == [1] * 200 + [0] * 200


def test_decode_is_a_pure_function_of_the_code_and_sliders_move_the_image(server):
    _, a = call(server, "POST", "/api/decode", {"run": 1, "z": [0.0, 0.0]})
    _, b = call(server, "POST", "/api/decode", {"run": 1, "z": [0.0, 0.0]})
    _, c = call(server, "POST", "/api/decode", {"run": 1, "z": [3.0, -3.0]})
    assert np.array_equal(png(a["image"]), png(b["image"]))
    assert not np.array_equal(png(a["image"]), png(c["image"]))
    status, code = call(server, "POST", "/api/encode", {"run": 1, "image": {"test": 2}})
    assert status == 200 and len(code["z"]) == 2
    status, strip = call(server, "POST", "/api/interpolate",
                         {"run": 1, "a": {"test": 0}, "b": {"seed": 5}, "steps": 5, "kind": "slerp"})
    assert status == 200 and png(strip["image"]).shape[1] >= 5 * 80
    status, cond = call(server, "POST", "/api/decode", {"run": 2, "z": [0.0] * 4, "class": 3})
    assert status == 200, cond


def test_compare_gives_the_metric_table_of_the_evaluated_runs(server):
    status, table = call(server, "GET", "/api/compare")
    assert status == 200 and table["runs"] == ["pixelrnn"]
    assert {m["run"] for m in table["missing"]} == {"vae", "cgan"}
    metrics = {(c["metric"], c["unit"]) for c in table["columns"]}
    assert ("nll", "bits/dim") in metrics and len(table["rows"][0]) == len(table["columns"])
    status, page = call(server, "GET", "/compare")
    assert status == 200 and 'id="metric-table"' in page


def test_20_concurrent_requests_all_succeed(server):
    def one(i):
        if i % 2:
            return call(server, "POST", "/api/decode", {"run": 1, "z": [i / 10, -i / 10]})[0] == 200
        view = finish(server, call(server, "POST", "/api/sample", {"run": 0, "n": 2, "seed": i}))
        return view["state"] == "done"

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert all(results)
    assert healthy(server)


# -- a real browser (Debian's chromium + chromium-driver, driven by Selenium) ----------------------
def _chromedriver_or_skip() -> str:
    """Debian's chromedriver (package chromium-driver), never one downloaded at run time; skipped when
    missing, required under CI=true (``.ci/run`` installs it), like :func:`conftest.chromium_or_skip`."""
    debian = "/usr/bin/chromedriver"
    path = shutil.which("chromedriver") or (debian if os.path.isfile(debian) else None)
    if path is None or webdriver is None:
        message = "the browser tests need Debian's chromium-driver and Selenium: `apt-get install chromium-driver`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    exe = chromium_or_skip()
    driver_path = _chromedriver_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = exe
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,2200", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(60)
    driver.get(server.url)
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def _decoded(driver, element_id):
    """The image's src once the browser has decoded it (naturalWidth > 0)."""
    return driver.execute_script(
        "const i = document.getElementById(arguments[0]); return i.complete && i.naturalWidth > 0 ? i.src : null;",
        element_id,
    )


def _set(driver, element_id, value):
    driver.execute_script("document.getElementById(arguments[0]).value = arguments[1];", element_id, str(value))


def _select_run(driver, index):
    Select(driver.find_element("id", "run")).select_by_value(str(index))


def test_browser_clicking_sample_shows_a_grid(browser):
    _select_run(browser, 0)
    _wait(browser, lambda d: d.find_element("id", "sample-panel").is_displayed())
    _set(browser, "sample-n", 4)
    browser.find_element("id", "sample-button").click()
    src = _wait(browser, lambda d: _decoded(d, "sample-image"))
    assert src.startswith("data:image/png;base64,")
    status = browser.find_element("id", "sample-status").text
    assert status.startswith("done in"), status
    assert browser.find_element("id", "sample-progress").get_attribute("value") == "1"
    assert not browser.find_element("id", "error").is_displayed()


def test_browser_shows_the_servers_one_line_error(browser):
    _set(browser, "sample-temperature", -1)
    browser.find_element("id", "sample-button").click()
    error = _wait(browser, lambda d: d.find_element("id", "error").is_displayed() and d.find_element("id", "error"))
    assert error.text == "temperature -1: must be a finite number 0-10"
    _set(browser, "sample-temperature", 1)


def test_browser_painting_a_mask_gives_completions(browser):
    _select_run(browser, 0)
    canvas = _wait(browser, lambda d: d.find_element("id", "mask-canvas"))
    _wait(browser, lambda d: d.find_element("id", "mask-canvas").get_attribute("data-hidden") == "0")
    w, h = canvas.size["width"], canvas.size["height"]
    actions = ActionChains(browser)  # a stroke across the lower part of the sprite
    actions.move_to_element_with_offset(canvas, -w // 2 + 10, h // 4).click_and_hold()
    for x in range(-w // 2 + 10, w // 2 - 10, 12):
        actions.move_to_element_with_offset(canvas, x, h // 4)
    actions.release().perform()
    hidden = int(canvas.get_attribute("data-hidden"))
    assert 0 < hidden < 400
    _set(browser, "complete-samples", 2)
    browser.find_element("id", "complete-button").click()
    src = _wait(browser, lambda d: _decoded(d, "complete-image"))
    assert src.startswith("data:image/png;base64,") and not browser.find_element("id", "error").is_displayed()


def test_browser_moving_a_slider_changes_the_decoded_image(browser):
    _select_run(browser, 1)
    _wait(browser, lambda d: d.find_element("id", "latent-panel").is_displayed())
    before = _wait(browser, lambda d: _decoded(d, "latent-image"))
    slider = browser.find_elements("css selector", ".z-slider")[0]
    assert len(browser.find_elements("css selector", ".z-slider")) == 2  # the tiny VAE's code
    ActionChains(browser).click_and_hold(slider).move_by_offset(slider.size["width"] // 2 - 2, 0).release().perform()
    assert float(slider.get_attribute("value")) > 2.5
    after = _wait(browser, lambda d: (s := _decoded(d, "latent-image")) and s != before and s)
    assert after != before
    assert "decoded in" in browser.find_element("id", "latent-status").text
