"""What evaluation costs: wall seconds, CPU seconds and peak memory of ``genzoo eval`` and of the held-out
NLL during training, with the defaults and with the earlier ones, each command measured as its own process.

    python benchmarks/eval_cost.py                     # every case
    python benchmarks/eval_cost.py --cases vae_tiny    # one

Each case trains a short run (a few steps: cost does not depend on the weights) and then times the
commands listed for it with ``/usr/bin/time`` (elapsed seconds, user + system CPU seconds, maximum
resident set size). "before" rows run the earlier defaults spelled out as options (``--k 5000`` on
every image: Burda et al.'s importance-sampling protocol), "after" rows the current defaults
(k = 1,000 on the first 200 images; the exact / ELBO likelihood on every image either way). The
machine is shared: CPU seconds are the comparable figure, and the load average is recorded.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

SHARED = Path("/work/shared/data")
CASES = {
    # name: (train command after "genzoo train", {row: eval command after "genzoo eval RUN"})
    "vae_tiny": (["vae", "--preset", "tiny", "--data", "pokemon", "--steps", "20"],
                 {"after (defaults)": [], "before (k=5000, every test image)": ["--k", "5000", "--max-images", "100000"]}),
    "vae_lecture": (["vae", "--preset", "lecture", "--data", "pokemon", "--steps", "20"],
                    {"after (defaults)": []}),
    "pixelcnn_tiny_cifar": (["pixelcnn", "--preset", "tiny", "--data", f"cifar10:{SHARED / 'cifar10_jpeg' / 'cifar10_jpeg.tar.gz'}",
                             "--steps", "10"], {}),
}


def timed(cmd: list[str], env: dict) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", f.name, *cmd], env=env,
                              capture_output=True, text=True)
        wall, user, system, rss_kb = f.read().split()[-4:]
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return {"command": " ".join(cmd), "wall_s": float(wall), "cpu_s": float(user) + float(system),
            "peak_rss_mb": int(rss_kb) / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", nargs="+", help="row names to run (default: every row of each case)")
    p.add_argument("--name", default="eval_cost")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    genzoo = [sys.executable, "-m", "genzoo"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            train, evals = CASES[case]
            run = Path(tmp) / case
            t = timed([*genzoo, "train", *train, "--out", str(run), "--quiet"], env)
            rows.append({"case": case, "row": "train (held-out NLL at the last step: the default subset)", **t})
            print(rows[-1], flush=True)
            for row, opts in evals.items():
                if args.rows and row not in args.rows:
                    continue
                t = timed([*genzoo, "eval", str(run), "--json", str(run / f"eval_{len(rows)}.json"), *opts], env)
                rows.append({"case": case, "row": row, **t})
                print(rows[-1], flush=True)
            write_result(args.name, {"command": " ".join(["python"] + sys.argv), "threads": args.threads,
                                     "rows": rows, "complete": False})
    write_result(args.name, {"command": " ".join(["python"] + sys.argv), "threads": args.threads, "rows": rows,
                             "complete": True})


if __name__ == "__main__":
    main()
