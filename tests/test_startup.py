"""Commands that train nothing start without Lightning: importing it takes seconds (half of a
command's start-up on a 2-core CPU), which sampling, serving, evaluation set-up, export, the report
and `import chargpt` need not pay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_checkpoint

CHECK = """
import sys
import chargpt
from chargpt.cli import eval, export, report, sample, serve
[text] = chargpt.load(sys.argv[1]).generate("ab", max_new_tokens=5, seed=1)
assert len(text) == 5, text
print(sorted(name for name in sys.modules if name.split(".")[0] == "lightning"))
"""


def test_sampling_from_a_checkpoint_never_imports_lightning(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    result = subprocess.run([sys.executable, "-c", CHECK, str(ckpt)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.slow  # ten interpreter starts
def test_bench_startup_times_every_command_and_says_which_import_lightning() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_startup.py"
    done = subprocess.run([sys.executable, str(script), "--repeats", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["imports_lightning"] == {
        "torch (reference)": False, "lightning (reference)": True, "import chargpt": False,
        "chargpt-train": True, "chargpt-sample": False, "chargpt-eval": False, "chargpt-serve": False,
        "chargpt-export": False, "chargpt-report": False,
    }
    assert all(seconds > 0 for seconds in figures["median_s"].values())
    for name in figures["median_s"]:  # one table row per command, the same figure
        assert any(line.startswith(name) for line in done.stdout.splitlines()), name
