"""The HTTP layer of ``genzoo serve``: the standard library's ``ThreadingHTTPServer`` and a JSON API.

Every connection is handled in its own thread, so the accept loop never computes; sampling and
completion further run as jobs on a bounded pool (:mod:`genzoo.serve.jobs`), the quick actions
(decode, encode, interpolate, test images, uploads) in the connection's thread under a bound on
how many compute at once.

=======  =====================  ===============================================================
GET      ``/``                  the page; ``/static/app.js`` and ``/static/style.css`` its parts
GET      ``/api/health``        ``{"ok": true, ...}``
GET      ``/api/runs``          the served runs, what each can do, the limits
GET      ``/api/jobs/ID``       a job's state and progress, its result when done (``?wait=S``)
GET      ``/api/compare``       the metric table of the runs with an ``eval.json``
GET      ``/compare``           the whole ``genzoo compare`` page of those runs
POST     ``/api/sample``        ``{run, n, seed, temperature, class}`` -> ``{job}``
POST     ``/api/complete``      ``{run, image, known | mask, samples, seed, temperature, class}`` -> ``{job}``
POST     ``/api/image``         ``{run, index}`` -> a test image's pixels and picture
POST     ``/api/mask``          ``{run, mask}`` -> a named mask as H*W zeros (hidden) and ones
POST     ``/api/upload?run=R``  a PNG or JPEG body -> the image fitted to the run
POST     ``/api/decode``        ``{run, z, class}`` -> the decoded picture
POST     ``/api/encode``        ``{run, image}`` -> ``{z}``
POST     ``/api/interpolate``   ``{run, a, b, steps, kind}`` -> a strip of decoded codes
=======  =====================  ===============================================================

Safety: the server binds 127.0.0.1 unless told otherwise and warns on any other address; bound to
a local address it answers only requests whose ``Host`` is local (a page on another site cannot
reach it through DNS rebinding), and it takes JSON only as ``application/json`` and images only as
``image/png`` / ``image/jpeg``, which a browser sends across sites only after a CORS preflight that
this server never grants. Bodies are capped from their ``Content-Length`` before a byte is read.
Every refusal is a 4xx JSON ``{"error": one line}``; an unexpected failure is a 500 with one line
(the traceback goes to the server's stderr, never to the page). Nothing is unpickled: requests are
JSON or image bytes, and the runs are loaded once, at start, with the checkpoint loader's
weights-only reading.
"""

from __future__ import annotations

import ipaddress
import json
import math
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from genzoo.errors import GenzooError
from genzoo.serve.fields import RequestError, one_line, shown
from genzoo.serve.jobs import Jobs
from genzoo.serve.playground import MAX_UPLOAD_BYTES, Playground, ServedRun, load_served_runs

MAX_JSON_BYTES = 1 << 20  # a request body (the largest, pixels of a 64 x 64 x 3 image, is ~50 KB)
DRAIN_LIMIT = 64 << 20  # after refusing a large body, read and drop at most this much so the client sees the answer
MAX_WAIT = 10.0  # seconds a job poll may wait for the job to end
QUICK_AT_ONCE = 4  # decode / encode / interpolate / image / upload computing at the same time
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
PAGE_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
REPORT_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


def is_local(host: str) -> bool:
    """True for a loopback address or ``localhost``."""
    if host.strip("[]").lower() in LOCAL_NAMES or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PlaygroundServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never keeps the process alive
    block_on_close = False
    request_queue_size = 128  # the listen backlog (socketserver's 5 resets a burst of 20 new connections)

    def __init__(self, address: tuple[str, int], playground: Playground, *, verbose: bool = False):
        self.playground = playground
        self.local = is_local(address[0])
        self.verbose = verbose
        self.quick = threading.BoundedSemaphore(QUICK_AT_ONCE)
        self.static = {
            path: (resources.files("genzoo.serve").joinpath("static", name).read_bytes(), kind)
            for path, (name, kind) in STATIC.items()
        }
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.playground.jobs.shutdown()


class Handler(BaseHTTPRequestHandler):
    server: PlaygroundServer
    server_version = "genzoo-serve"
    sys_version = ""
    timeout = 30  # seconds a client may take to send its request

    # -- routing ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _refuse_method(self) -> None:
        self._answer(lambda path, query: _raise(RequestError(f"method {self.command} is not allowed here", 405)))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _refuse_method

    def _get(self, path: str, query: dict) -> Any:
        pg = self.server.playground
        if path in self.server.static:
            body, kind = self.server.static[path]
            return Raw(body, kind, PAGE_POLICY)
        if path == "/api/health":
            return {"ok": True, "runs": len(pg.runs), "threads": threading.active_count()}
        if path == "/api/runs":
            return pg.describe()
        if path.startswith("/api/jobs/"):
            wait = _query_number(query, "wait", 0.0, 0.0, MAX_WAIT)
            job = pg.jobs.get(path[len("/api/jobs/") :])
            if wait > 0:
                job.finished.wait(wait)
            return job.view()
        if path == "/api/compare":
            return pg.compare()
        if path == "/compare":
            return Raw(
                pg.compare_page().encode("ascii", "xmlcharrefreplace"), "text/html; charset=utf-8", REPORT_POLICY
            )
        raise RequestError(f"no such page {shown(path)}", 404)

    def _post(self, path: str, query: dict) -> Any:
        pg = self.server.playground
        jobs = {"/api/sample": pg.sample, "/api/complete": pg.complete}
        quick = {"/api/image": pg.image, "/api/mask": pg.mask, "/api/decode": pg.decode, "/api/encode": pg.encode,
                 "/api/interpolate": pg.interpolate}  # fmt: skip
        if path == "/api/upload":
            run = query.get("run", [None])[0]
            length = self._length(MAX_UPLOAD_BYTES, "upload")
            kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            data = self._read(length)
            with self.server.quick:
                return pg.upload(run, kind, data)
        if path in jobs:
            job = jobs[path](self._json())
            return Status(202, job.view())
        if path in quick:
            body = self._json()
            with self.server.quick:
                return quick[path](body)
        raise RequestError(f"no such action {shown(path)}", 404)

    # -- the request body -------------------------------------------------------------------
    def _length(self, limit: int, what: str) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(f"{what}: send the body with a Content-Length, not chunked", 411)
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise RequestError(f"{what}: a Content-Length header is required", 411)
        try:
            length = int(raw)
        except ValueError:
            raise RequestError(f"{what}: Content-Length {shown(raw)} is not a number") from None
        if length < 0:
            raise RequestError(f"{what}: Content-Length {length} is negative")
        if length > limit:
            self._unread = length
            raise RequestError(f"{what}: {length:,} bytes; the limit is {limit:,}", 413)
        self._unread = length
        return length

    def _read(self, length: int) -> bytes:
        data = self.rfile.read(length)
        self._unread = 0
        if len(data) != length:
            raise RequestError(f"the body ended after {len(data)} of {length} bytes")
        return data

    def _json(self) -> dict:
        length = self._length(MAX_JSON_BYTES, "request")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise RequestError(f"Content-Type {shown(kind)}: send application/json", 415)
        data = self._read(length)
        try:
            body = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError("the body is not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise RequestError(f"the body is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        except RecursionError:
            raise RequestError("the body is nested too deeply") from None
        if not isinstance(body, dict):
            raise RequestError(f"the body must be a JSON object, got {type(body).__name__}")
        return body

    # -- the answer -------------------------------------------------------------------------
    def _answer(self, route) -> None:
        self._unread = 0
        try:
            if self.server.local:
                self._check_host()
            url = urlsplit(self.path)
            query = parse_qs(url.query, max_num_fields=8)
            out = route(url.path, query)
            status = 200
            if isinstance(out, Status):
                status, out = out.status, out.body
            if isinstance(out, Raw):
                self._send(status, out.body, out.kind, out.policy)
            else:
                self._send_json(status, out)
        except RequestError as e:
            self._send_json(e.status, {"error": str(e)})
        except GenzooError as e:
            self._send_json(400, {"error": one_line(str(e))})
        except ValueError as e:  # parse_qs over its field limit, and the like
            self._send_json(400, {"error": one_line(f"bad request: {e}")})
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as e:  # a bug: its traceback to the server's stderr, one line to the page
            traceback.print_exc(file=sys.stderr)
            self._send_json(500, {"error": f"internal error ({type(e).__name__}); the server log has the details"})
        if self._unread:
            self._drain()

    def _check_host(self) -> None:
        host = self.headers.get("Host", "")
        if host.startswith("["):  # [::1]:8000
            name = host[1:].partition("]")[0]
        else:  # 127.0.0.1:8000, localhost
            name = host.partition(":")[0] if host.count(":") == 1 else host
        if not is_local(name):
            raise RequestError(f"Host {shown(host)}: this server answers local requests only", 403)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(_finite(obj), allow_nan=False).encode("utf-8"), "application/json", None)

    def _send(self, status: int, body: bytes, kind: str, policy: str | None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Referrer-Policy", "no-referrer")
            if policy:
                self.send_header("Content-Security-Policy", policy)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _drain(self) -> None:
        """Read and drop the rest of a refused body (up to :data:`DRAIN_LIMIT`), so that closing the
        socket does not reset the connection before the client has read the answer."""
        left = min(self._unread, DRAIN_LIMIT)
        try:
            self.connection.settimeout(2.0)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own refusals (a malformed request line, a header too long) as JSON too."""
        self._send_json(code, {"error": one_line(message or self.responses.get(code, ("error",))[0])})

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class Raw:
    def __init__(self, body: bytes, kind: str, policy: str | None):
        self.body, self.kind, self.policy = body, kind, policy


class Status:
    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body


def _raise(e: Exception) -> Any:
    raise e


def _query_number(query: dict, key: str, default: float, lo: float, hi: float) -> float:
    raw = query.get(key, [None])[0]
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RequestError(f"{key} {shown(raw)}: must be a number {lo:g}-{hi:g}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise RequestError(f"{key} {shown(raw)}: must be a number {lo:g}-{hi:g}")
    return value


def _finite(obj: Any) -> Any:
    """NaN and infinities (a metric that diverged) as null: JSON has no such numbers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def make_server(
    runs: list[Path] | list[ServedRun],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    device: str = "cpu",
    workers: int = 2,
    verbose: bool = False,
) -> PlaygroundServer:
    """A server over ``runs`` (run folders, loaded here, or runs already loaded), bound and ready for
    ``serve_forever()``. A non-local ``host`` prints a warning on stderr."""
    served = [r for r in runs if isinstance(r, ServedRun)]
    if len(served) != len(runs) or not runs:
        served = load_served_runs([Path(p) for p in runs if not isinstance(p, ServedRun)], device)
    if not is_local(host):
        print(
            f"genzoo: warning: --host {host} is not a local address: anyone who can reach this machine on port "
            f"{port} can use the playground (it has no authentication)",
            file=sys.stderr,
        )
    playground = Playground(served, Jobs(workers=workers), device=device)
    try:
        return PlaygroundServer((host, port), playground, verbose=verbose)
    except OSError as e:
        playground.jobs.shutdown()
        raise GenzooError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def serve(runs: list[Path], host: str = "127.0.0.1", port: int = 8000, *, device: str = "cpu") -> None:
    """Serve ``runs`` until Ctrl-C."""
    server = make_server(runs, host, port, device=device)
    print(f"genzoo serve: {len(runs)} run(s) at {server.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("genzoo serve: stopped", file=sys.stderr)
    finally:
        server.server_close()
