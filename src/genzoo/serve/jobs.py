"""Jobs: slow requests (sampling, completion) run on a bounded worker pool and are polled.

``POST`` answers at once with a job id; ``GET /api/jobs/ID?wait=S`` answers when the job ends or
after S seconds, with its progress (sub-pixels drawn of the total, for autoregressive sampling).
The pool has a fixed number of workers and at most ``max_pending`` unfinished jobs (more is a
429); finished jobs are kept for ``keep_seconds`` (at most ``keep`` of them) and then forgotten.
A job that fails with a :class:`GenzooError` ends in state ``error`` with its one-line message;
any other exception is logged with its traceback on the server's stderr and the page gets one
line without it.
"""

from __future__ import annotations

import re
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from genzoo.errors import GenzooError
from genzoo.serve.fields import RequestError, one_line

JOB_ID = re.compile(r"[0-9a-f]{16}")


@dataclass
class Job:
    id: str
    kind: str
    run: str
    state: str = "queued"  # queued | running | done | error
    done: int = 0
    total: int = 0
    result: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.monotonic)
    ended: float | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        """The ``progress`` callback handed to the model: sub-pixels drawn so far."""
        self.done, self.total = done, total

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.id, "kind": self.kind, "run": self.run, "state": self.state}
        if self.total:
            out["done"], out["total"] = self.done, self.total
        if self.state == "done":
            out.update(self.result or {})
        if self.state == "error":
            out["error"] = self.error
        return out


class Jobs:
    def __init__(self, workers: int = 2, max_pending: int = 64, keep: int = 256, keep_seconds: float = 600.0):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genzoo-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.max_pending, self.keep, self.keep_seconds = max_pending, keep, keep_seconds

    def submit(self, kind: str, run: str, work: Callable[[Job], dict]) -> Job:
        with self._lock:
            self._forget_old()
            pending = sum(1 for j in self._jobs.values() if not j.finished.is_set())
            if pending >= self.max_pending:
                raise RequestError(f"{pending} jobs are waiting (the limit is {self.max_pending}); try again soon", 429)
            job = Job(secrets.token_hex(8), kind, run)
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise RequestError(
                f"no job {job_id[:40]!r} (unknown, or finished more than {self.keep_seconds:g} s ago)", 404
            )
        return job

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Job, work: Callable[[Job], dict]) -> None:
        job.state = "running"
        try:
            job.result = work(job)
            job.state = "done"
        except GenzooError as e:
            job.error, job.state = one_line(str(e)), "error"
        except Exception as e:  # a bug: the traceback goes to the server's log, one line to the page
            traceback.print_exc(file=sys.stderr)
            job.error, job.state = f"internal error ({type(e).__name__}); the server log has the details", "error"
        finally:
            job.ended = time.monotonic()
            job.finished.set()

    def _forget_old(self) -> None:
        now = time.monotonic()
        ended = sorted((j for j in self._jobs.values() if j.ended is not None), key=lambda j: j.ended or 0.0)
        excess = len(ended) - self.keep
        for i, j in enumerate(ended):
            if i < excess or now - (j.ended or now) > self.keep_seconds:
                del self._jobs[j.id]
