"""The benchmark scripts' bad arguments: one `error:` line and exit code 2, no traceback, whether
argparse, chargpt's checks or Hydra finds them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.slow  # an interpreter start each
@pytest.mark.parametrize(("script", "args", "message"), [
    ("bench_data", ["--dir", "{missing}"], "argument --dir: '{missing}' is not a folder"),
    ("bench_sample", ["--tokens", "-5"], "argument --tokens: '-5' is not a whole number of at least 1"),
    ("bench_train", ["--model", "nosuch"], "In 'train': Could not find 'model/nosuch'"),
    ("bench_train", ["--nanogpt", "{tmp}"], "--nanogpt {tmp}: no nanoGPT train.py and configurator.py there"),
    ("budget_curve", ["--budgets", "-5", "--dry-run"], "argument --budgets: '-5' is not a whole number"),
    ("bench_budget_end", ["--before", "no-such-revision", "--out", "{tmp}"],
     "--before no-such-revision is not a git revision of this repository"),
    ("bench_serve", ["--seconds", "-1"], "argument --seconds: '-1' is not a number above 0"),
    ("bench_startup", ["--repeats", "0"], "--repeats 0: give a whole number of at least 1"),
    ("export_tb_image", ["{tmp}", "attention/maps", "{tmp}"],
     "{tmp} is a folder; give the PNG file to write, e.g. {tmp}/attention_maps.png"),
    ("export_tb_image", ["{long}", "attention/maps", "x.png"],
     "argument logdir: '{long}': a name in it is 300 bytes long, more than the file system takes"),
    ("export_tb_image", ["{tmp}", "attention/maps", "{long}/x.png"],
     "a" * 60 + "…" + "a" * 14 + "/x.png (306 characters): a name in it is 300 bytes long"),  # cut short
], ids=["argparse type (a folder)", "argparse type (a count)", "hydra error", "not a nanoGPT clone",
        "a negative budget", "not a revision", "negative seconds", "no repeats",
        "a folder to write the picture as", "a folder's name too long", "a picture's folder's name too long"])
def test_a_bad_argument_is_one_error_line_and_exit_2(
    script: str, args: list[str], message: str, tmp_path: Path
) -> None:
    # Each exits before any work (an interpreter start, ~2-5 s): these were tracebacks and exit 1.
    names = {"missing": str(tmp_path / "no such folder"), "tmp": str(tmp_path), "long": "a" * 300}
    args = [a.format(**names) for a in args]
    done = subprocess.run([sys.executable, str(SCRIPTS / f"{script}.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {message.format(**names)}")
