"""Latency and throughput of ``genzoo serve`` on the CPU, and a screenshot of the page.

Two runs are trained briefly (latency does not depend on how well a model is trained, only on its
size): ``pixelrnn --preset quick`` and ``vae --preset lecture`` on the embedded Pokémon, each with
``--steps`` steps (defaults 20 and 50), and given ``genzoo eval --only likelihood`` so the compare
table has numbers. ``genzoo serve`` then runs as a separate process (one torch thread, the default
two job workers), and this script measures through HTTP:

* 16 Pokémon from the PixelRNN: POST /api/sample, polled to the end (``--repeats`` times; median);
* one completion (bottom half hidden, one sample) on the PixelRNN and on the VAE
  (with each, the server process's CPU time for the request: clock ticks of 10 ms, a figure that the
  other jobs on a shared machine do not inflate);
* one slider move on the VAE: POST /api/decode with a new code; and in headless Chromium, the time
  from moving a slider to the new image decoded on the page;
* throughput: 20 client threads for ``--seconds`` (30) s, twice, each client in a loop (every fourth
  16 PixelRNN samples, every fourth a VAE completion, the rest slider moves); requests done, errors,
  latency medians, and the server's resident memory before, between and after the two windows.

The machine is shared with other jobs: medians are reported with the load average (``write_result``).

    nice -n 10 python benchmarks/serve_latency.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from _common import RESULTS, write_result

torch.set_num_threads(1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def genzoo(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "genzoo", *args], check=True, env=ENV)


class Client:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        res = conn.getresponse()
        out = json.loads(res.read())
        conn.close()
        return res.status, out

    def job(self, path: str, body: dict) -> tuple[bool, float]:
        """(succeeded, seconds from POST to the job's end)."""
        start = time.perf_counter()
        status, view = self.call("POST", path, body)
        if status != 202:
            return False, time.perf_counter() - start
        while view.get("state") in ("queued", "running"):
            status, view = self.call("GET", f"/api/jobs/{view['job']}?wait=10")
            if status != 200:
                return False, time.perf_counter() - start
        return view.get("state") == "done", time.perf_counter() - start

    def quick(self, path: str, body: dict) -> tuple[bool, float]:
        start = time.perf_counter()
        status, _ = self.call("POST", path, body)
        return status == 200, time.perf_counter() - start


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_ms(xs: list[float]) -> float:
    return round(1000 * statistics.median(xs), 1)


def code(i: int) -> list[float]:
    g = torch.Generator().manual_seed(i)
    return [round(v, 3) for v in torch.randn(10, generator=g).clamp(-3, 3).tolist()]


def throughput(client: Client, seconds: float, clients: int = 20) -> dict:
    kinds = {"sample16": [], "complete": [], "slider": []}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def loop(c: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            i += 1
            try:
                if c % 4 == 0:
                    kind, (ok, dt) = "sample16", client.job("/api/sample", {"run": 0, "n": 16, "seed": c * 1000 + i})
                elif c % 4 == 1:
                    body = {"run": 1, "image": {"test": i % 80}, "mask": "bottom-half", "samples": 1, "seed": i}
                    kind, (ok, dt) = "complete", client.job("/api/complete", body)
                else:
                    kind, (ok, dt) = "slider", client.quick("/api/decode", {"run": 1, "z": code(c * 1000 + i)})
            except OSError as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                (kinds[kind] if ok else errors).append(dt if ok else kind)

    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done = sum(len(v) for v in kinds.values())
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests_done": done,
        "requests_per_second": round(done / wall, 2),
        "errors": len(errors),
        "error_examples": errors[:3],
        "per_kind": {k: {"done": len(v), "median_ms": median_ms(v) if v else None} for k, v in kinds.items()},
    }


def browser_part(url: str, shot: Path) -> dict:
    """Slider move -> new image on the page, timed inside headless Chromium; then a screenshot."""
    from selenium import webdriver  # optional (the test extra), only for this part
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,2000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(120)
    wait = WebDriverWait(driver, 120, poll_frequency=0.05)
    try:
        driver.get(url)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
        Select(driver.find_element("id", "run")).select_by_value("1")
        wait.until(lambda d: d.find_element("id", "latent-panel").is_displayed())
        wait.until(lambda d: d.find_element("id", "latent-image").get_attribute("data-decoded") is not None)
        moves = []
        for i in range(15):
            ms = driver.execute_async_script(
                """
                const [value, dim, done] = arguments;
                const img = document.getElementById('latent-image');
                const before = img.dataset.decoded;
                const slider = document.querySelectorAll('.z-slider')[dim];
                const t0 = performance.now();
                slider.value = value;
                slider.dispatchEvent(new Event('input'));
                (function check() {
                  if (img.dataset.decoded !== before && img.complete && img.naturalWidth > 0) done(performance.now() - t0);
                  else setTimeout(check, 2);
                })();
                """,
                str(round(-2.5 + i * 0.35, 2)),
                i % 3,
            )
            moves.append(ms / 1000.0)
        # the picture for the README: samples, a painted completion, the sliders, the compare table
        driver.execute_script("document.getElementById('sample-n').value = 16;")
        driver.find_element("id", "sample-button").click()
        wait.until(lambda d: d.execute_script("return document.getElementById('sample-image').naturalWidth > 0"))
        driver.find_element("id", "mask-apply").click()
        wait.until(lambda d: d.find_element("id", "mask-canvas").get_attribute("data-hidden") not in (None, "0"))
        driver.find_element("id", "complete-button").click()
        wait.until(lambda d: d.execute_script("return document.getElementById('complete-image').naturalWidth > 0"))
        driver.find_element("id", "interp-button").click()
        wait.until(lambda d: d.execute_script("return document.getElementById('interp-image').naturalWidth > 0"))
        driver.find_element("id", "compare-button").click()
        wait.until(lambda d: len(d.find_elements("css selector", "#compare-table tr")) > 1)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1100, height + 40)
        time.sleep(0.5)
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    return {"slider_moves": len(moves), "median_ms": median_ms(moves), "max_ms": round(1000 * max(moves), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=None, help="where the two runs are trained (default: a temp dir)")
    p.add_argument("--pixelrnn-steps", type=int, default=20)
    p.add_argument("--vae-steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="serve_latency_"))
    pix, vae = work / "pokemon_pixelrnn_quick", work / "pokemon_vae_lecture"
    t0 = time.perf_counter()
    for run, model, preset, steps in ((pix, "pixelrnn", "quick", args.pixelrnn_steps), (vae, "vae", "lecture", args.vae_steps)):
        if not (run / "checkpoint.pt").exists():
            genzoo("train", model, "--data", "pokemon", "--preset", preset, "--steps", str(steps), "--out", str(run),
                   "--device", "cpu", "--quiet", "--set", "sample_every=0")
        if not (run / "eval.json").exists():
            genzoo("eval", str(run), "--only", "likelihood", "--device", "cpu")
    train_wall = time.perf_counter() - t0

    server = subprocess.Popen([sys.executable, "-m", "genzoo", "serve", str(pix), str(vae), "--port", "0", "--device", "cpu"],
                              env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        m = re.search(r"http://([\d.]+):(\d+)/", line)
        if not m:
            raise SystemExit(f"the server did not start: {line}{server.stderr.read()}")
        threading.Thread(target=lambda: [sys.stderr.write(x) for x in server.stderr], daemon=True).start()
        url, client = m.group(0), Client(m.group(1), int(m.group(2)))
        # warm-up: one request of each kind
        client.job("/api/sample", {"run": 0, "n": 16, "seed": 0})
        client.job("/api/complete", {"run": 0, "image": {"test": 0}, "mask": "bottom-half", "samples": 1})
        client.job("/api/complete", {"run": 1, "image": {"test": 0}, "mask": "bottom-half", "samples": 1})
        client.quick("/api/decode", {"run": 1, "z": code(0)})
        rss_start = rss_mb(server.pid)
        lat: dict[str, list[float]] = {"sample16_pixelrnn": [], "complete_pixelrnn": [], "complete_vae": [], "slider_vae": []}
        cpu: dict[str, list[float]] = {k: [] for k in lat}  # server CPU seconds per request: what load does not inflate

        def timed(kind: str, fn, *a) -> None:
            before = cpu_of(server.pid)
            lat[kind].append(fn(*a)[1])
            cpu[kind].append(cpu_of(server.pid) - before)

        for i in range(args.repeats):
            timed("sample16_pixelrnn", client.job, "/api/sample", {"run": 0, "n": 16, "seed": i + 1})
            body = {"image": {"test": i}, "mask": "bottom-half", "samples": 1, "seed": i}
            timed("complete_pixelrnn", client.job, "/api/complete", {**body, "run": 0})
            timed("complete_vae", client.job, "/api/complete", {**body, "run": 1})
            for j in range(5):
                timed("slider_vae", client.quick, "/api/decode", {"run": 1, "z": code(100 * i + j + 1)})
        latency = {
            k: {"median_ms": median_ms(v), "min_ms": round(1000 * min(v), 1), "n": len(v),
                "server_cpu_ms_median": median_ms(cpu[k])}
            for k, v in lat.items()
        }
        browser = browser_part(url, RESULTS / "serve_page.png")
        rss_before = rss_mb(server.pid)
        cpu_before = cpu_of(server.pid)
        first = throughput(client, args.seconds)
        rss_between = rss_mb(server.pid)
        second = throughput(client, args.seconds)
        rss_after = rss_mb(server.pid)
        cpu_load = cpu_of(server.pid) - cpu_before
        status, health = client.call("GET", "/api/health")
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "command": ("nice -n 10 " if os.nice(0) >= 10 else "") + "python benchmarks/serve_latency.py " + " ".join(sys.argv[1:]),
        "niceness": os.nice(0),
        "runs": {
            "pixelrnn": f"pixelrnn --preset quick, {args.pixelrnn_steps} steps on pokemon (few steps: latency does not depend on training)",
            "vae": f"vae --preset lecture, {args.vae_steps} steps on pokemon",
        },
        "server": "genzoo serve, one process, OMP_NUM_THREADS=1 (one torch thread), 2 job workers",
        "train_wall_s": round(train_wall, 1),
        "latency": latency,
        "targets": {"slider_ms": 200, "sample16_pokemon_ms": 2000},
        "browser_slider": browser,
        "throughput": [first, second],
        "server_rss_mb": {"after_warmup": round(rss_start, 1), "before_load": round(rss_before, 1),
                          "after_first_window": round(rss_between, 1), "after_second_window": round(rss_after, 1)},
        "server_cpu_s_under_load": round(cpu_load, 1),
        "healthy_after": status == 200 and health.get("ok") is True,
        "screenshot": "benchmarks/results/serve_page.png",
    }
    path = write_result("serve_latency", result)
    print(json.dumps({k: result[k] for k in ("latency", "browser_slider", "server_rss_mb", "healthy_after")}, indent=1))
    print(json.dumps([{k: t[k] for k in ("requests_done", "requests_per_second", "errors", "per_kind")} for t in result["throughput"]], indent=1))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
