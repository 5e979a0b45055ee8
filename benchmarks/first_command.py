"""README's first command, run as written: its CPU time, wall time, test bits/dim and its two figures.

    OMP_NUM_THREADS=1 python benchmarks/first_command.py

Runs the three genzoo commands of README's first line (train, sample, complete) in child processes,
then ``genzoo eval RUN --only likelihood`` for the exact test NLL, and copies the sample grid and the
completion figure to benchmarks/results/ (first_command_samples.png, first_command_completion.png) —
exactly what a user of that line gets for seed 0. CPU time is the children's user + system time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def first_line() -> str:
    """The genzoo part of README's first bash block (after the pip installs)."""
    block = re.search(r"```bash\n(.*?)\n```", README.read_text(), re.S)
    assert block, "README has no bash block"
    parts = [p.strip() for p in block.group(1).split("&&")]
    return " && ".join(p for p in parts if p.startswith("genzoo "))


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="first_command")
    args = p.parse_args()
    line = first_line()
    run_dir = Path(re.search(r"--out (\S+)", line).group(1))
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; remove it first")
    steps = []
    for cmd in line.split(" && ") + [f"genzoo eval {run_dir} --only likelihood"]:
        c0, w0 = children_cpu(), time.perf_counter()
        subprocess.run(cmd.split(), check=True, stdout=subprocess.DEVNULL)
        steps.append({"command": cmd, "cpu_s": children_cpu() - c0, "wall_s": time.perf_counter() - w0})
        print(steps[-1], flush=True)
    evaluation = json.loads((run_dir / "eval.json").read_text())
    figures = {}
    for src, dst in ((r"-o (\S+new_pokemon\.png)", "samples"), (r"-o (\S+completion\.png)", "completion")):
        found = re.search(src, line)
        if found:
            shutil.copyfile(found.group(1), RESULTS / f"{args.name}_{dst}.png")
            figures[dst] = f"{args.name}_{dst}.png"
    three = steps[:-1]
    result = {
        "command": line,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "steps": steps,
        "cpu_s_three_commands": sum(s["cpu_s"] for s in three),
        "wall_s_three_commands": sum(s["wall_s"] for s in three),
        "eval": evaluation,
        "figures": figures,
    }
    print(write_result(args.name, result))


if __name__ == "__main__":
    main()
