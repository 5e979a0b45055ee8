"""What every benchmark records beside its numbers: machine, software, date, budget, seed."""
from __future__ import annotations

import datetime
import os
import platform
import resource
from pathlib import Path

import torch

from genzoo.io import write_json
from genzoo.training.callbacks import Callback

RESULTS = Path(__file__).resolve().parent / "results"


def hardware() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
          "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        hw["gpu"] = torch.cuda.get_device_name(0)
    # the machine is shared: the 1/5/15-minute load averages when the result is written say how busy it was
    hw["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return hw


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: a budget that other jobs on the machine do not shrink."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def write_result(name: str, payload: dict) -> Path:
    from genzoo._version import __version__

    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "genzoo_version": __version__, "hardware": hardware(), **payload}
    path = RESULTS / f"{name}.json"
    write_json(path, payload)  # atomic; non-finite numbers as null
    return path


class LRSchedule(Callback):
    """Sets every optimiser's rate after each round: base (constant) or base * (1 - step / total) (linear)."""

    def __init__(self, kind: str, total: int):
        self.kind, self.total = kind, total
        self.base: dict = {}

    def on_fit_start(self, trainer) -> None:
        self.base = {p: [g["lr"] for g in opt.param_groups] for p, opt in trainer.optims.items()}

    def on_step_end(self, trainer, record) -> None:
        if self.kind == "constant":
            return
        factor = max(0.0, 1.0 - trainer.step / self.total)
        for p, opt in trainer.optims.items():
            for g, base in zip(opt.param_groups, self.base[p]):
                g["lr"] = base * factor
