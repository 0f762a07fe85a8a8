"""The quickstart example runs from a clean checkout and prints what the README promises."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart" / "run.py"


def test_quickstart_runs() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    result = subprocess.run([sys.executable, str(QUICKSTART)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    add_lines = [line for line in out.splitlines() if line.strip().startswith("tasks.add ")]
    assert [line.rsplit("-> ", 1)[1] for line in add_lines] == ["11", "22", "33", "44", "55"]
    report = [line for line in out.splitlines() if line.strip().startswith("build-report")]
    assert len(report) == 1 and "report 2026-11: 4 pages" in report[0]
    rates = [line for line in out.splitlines() if line.strip().startswith("fetch-rate")]
    assert len(rates) == 3
    [master_line] = [line for line in out.splitlines() if line.startswith("master: ")]
    counts = ast.literal_eval(master_line.removeprefix("master: "))
    assert counts["succeeded"] >= 6  # 5 adds and the report; the rates may fail for good
    assert counts["succeeded"] + counts.get("failed", 0) == 9
    assert set(counts) <= {"succeeded", "failed"}
    assert "done in" in out
