"""How long the `lookalike` command takes to start: `--help`, a command's help, and a command that needs the app.

    uv run python bench/cli_startup.py --runs 7

Each command runs `--runs` times in a fresh process (the first, cold, run is shown but left out of the
median). Target: `lookalike --help` in at most 2.5 s on 2 cores. Also prints, for `--help`, which heavy
libraries the process imported (none of torch, apiflask, SQLAlchemy, Celery is expected).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOKALIKE = Path(sys.executable).with_name("lookalike")
COMMANDS = [["--help"], ["serve", "--help"], ["train", "--help"], ["stats"]]
TARGET_S = 2.5


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(LOOKALIKE), *args], env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as var:
        env = {**os.environ, "VAR_DIR": var, "DEFAULT_MODEL": "untrained"}
        subprocess.run([str(LOOKALIKE), "db", "upgrade"], env=env, check=True, capture_output=True)
        print(f"{'command':<22} {'cold s':>7} {'median s':>9} {'min s':>6}")
        medians = {}
        for command in COMMANDS:
            times = [timed(command, env) for _ in range(args.runs)]
            medians[" ".join(command)] = statistics.median(times[1:])
            print(f"{' '.join(command):<22} {times[0]:7.2f} {medians[' '.join(command)]:9.2f} {min(times[1:]):6.2f}")
    probe = (
        "import sys; from backend.cli import main; sys.argv = ['lookalike', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('torch', 'apiflask', 'sqlalchemy', 'celery', 'qdrant_client') if m in sys.modules])"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    print(f"heavy libraries imported by --help: {loaded.strip().splitlines()[-1]}")
    verdict = "meets" if medians["--help"] <= TARGET_S else "MISSES"
    print(f"lookalike --help: median {medians['--help']:.2f} s, {verdict} the {TARGET_S} s target")


if __name__ == "__main__":
    main()
