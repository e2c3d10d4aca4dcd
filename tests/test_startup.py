"""Commands that train nothing start without Lightning: importing it takes seconds (half of a
command's start-up on a 2-core CPU), which sampling, serving, evaluation set-up, export, the report
and `import chargpt` need not pay. The report needs no torch either."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import chargpt
from conftest import make_checkpoint

# One process for both checks below (each start is seconds of imports): sampling through the API
# after importing every command that trains nothing, then eval and the copy check on a folder.
CHECK = """
import sys
import chargpt
from chargpt.cli import eval, export, report, sample, serve
ckpt, text = sys.argv[1:]
[sampled] = chargpt.load(ckpt).generate("ab", max_new_tokens=5, seed=1)
assert len(sampled) == 5, sampled
print(sorted(name for name in sys.modules if name.split(".")[0] == "lightning"))
sys.argv = ["chargpt-eval", f"ckpt_path={ckpt}", f"data.path={text}", "split=all"]
eval.main()
sys.argv = ["chargpt-sample", f"ckpt_path={ckpt}", f"data.path={text}", "check_copy=true",
            "max_new_tokens=20", "prompt=a"]
sample.main()
print(sorted(name for name in sys.modules if name.split(".")[0] == "lightning"))
"""


@pytest.fixture(scope="module")
def without_training(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    root = tmp_path_factory.mktemp("without_training")
    ckpt = make_checkpoint(root / "model.ckpt")
    text = root / "my texts"  # several files: read by the text reader, not the one-file shortcut
    text.mkdir()
    (text / "a.txt").write_text("abc def ghi\n" * 20)
    (text / "b.txt").write_text("jk abc\n" * 20)
    return subprocess.run([sys.executable, "-c", CHECK, str(ckpt), str(text)], capture_output=True, text=True)


@pytest.mark.slow  # a fresh interpreter samples and scores a checkpoint: seconds
def test_sampling_from_a_checkpoint_never_imports_lightning(without_training) -> None:
    assert without_training.returncode == 0, without_training.stderr[-2000:]
    assert without_training.stdout.splitlines()[0] == "[]"


@pytest.mark.slow  # shares the interpreter run above
def test_eval_and_the_copy_check_read_a_folder_of_text_without_lightning(without_training) -> None:
    assert without_training.returncode == 0, without_training.stderr[-2000:]
    _, scored, *_, imported = without_training.stdout.strip().splitlines()
    assert json.loads(scored)["tokens"] > 300
    assert "copy check: longest span" in without_training.stderr
    assert imported == "[]"


@pytest.mark.slow
def test_import_chargpt_loads_no_torch_until_the_api_is_used() -> None:
    probe = ("import sys, chargpt; before = 'torch' in sys.modules; load = chargpt.load; "
             "print(before, 'torch' in sys.modules, load.__module__)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "chargpt.inference"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = chargpt.nope


@pytest.mark.slow
def test_the_report_starts_without_torch() -> None:
    # It reads JSON and CSV files and draws with matplotlib: torch's import would triple its start-up.
    probe = "import sys, chargpt.cli.report; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_startup.py"


@pytest.mark.slow  # sixteen interpreter starts
def test_bench_startup_times_every_command_and_says_which_import_lightning(tmp_path: Path) -> None:
    # An older tree to time beside this one, made to lack a command (as a checkout from before it).
    older = tmp_path / "src"
    shutil.copytree(Path(chargpt.__file__).parent, older / "chargpt")
    (older / "chargpt" / "cli" / "serve.py").unlink()
    done = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "1", "--against", str(older),
                           "--collector"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["imports_lightning"] == {
        "torch (reference)": False, "lightning (reference)": True, "import chargpt": False,
        "chargpt.load (Python API)": False,
        "chargpt-train": False, "chargpt-train, training": True,
        "chargpt-sample": False, "chargpt-eval": False, "chargpt-serve": False,
        "chargpt-export": False, "chargpt-report": False,
    }
    assert all(seconds > 0 for seconds in figures["median_s"].values())
    for name in figures["median_s"]:  # one table row per command, the same figure
        assert any(line.startswith(name) for line in done.stdout.splitlines()), name
    ours = {name for name in figures["median_s"] if "reference" not in name}
    assert set(figures["against_median_s"]) == ours - {"chargpt-serve"}
    [serve_row] = [line for line in done.stdout.splitlines() if line.startswith("chargpt-serve")]
    assert serve_row.split()[2] == "absent"
    # The collector's table: chargpt-train's import and exit, left on and as launched.
    assert set(figures["collector"]) == {"left on", "as launched"}
    for mode, parts in figures["collector"].items():
        assert parts["import_s"] > 0 and parts["exit_s"] >= 0, (mode, parts)
        [row] = [line for line in done.stdout.splitlines() if line.startswith(mode)]
        assert float(row.split()[-1]) == pytest.approx(parts["import_s"] + parts["exit_s"], abs=0.011)


def test_bench_startup_refuses_a_tree_without_chargpt(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--against", str(tmp_path)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"error: {tmp_path} holds no chargpt package; pass the src folder of a checkout " \
        "(git worktree add ../old COMMIT, then --against ../old/src)\n"


LAUNCH = """
import gc, sys, types
from chargpt.cli import launch
seen = {}
def fake_import(name):
    seen["enabled during import"] = gc.isenabled()
    if name.endswith("interrupted"):
        raise KeyboardInterrupt
    main = lambda: seen.update(frozen=gc.get_freeze_count(), enabled=gc.isenabled())
    return types.SimpleNamespace(main=main)
launch.importlib.import_module = fake_import
launch._launch(sys.argv[1])
print(seen)
"""


@pytest.mark.parametrize("command", ["train", "interrupted"])
def test_the_launcher_keeps_the_collector_off_its_import_and_on_again_after(command: str) -> None:
    """The import's objects live until exit: no collection while they load, frozen out of later
    passes (start-up and exit ~0.5 s faster each), and collection on again for the command itself.
    A Ctrl-C during the import is still one line and exit 130."""
    done = subprocess.run([sys.executable, "-c", LAUNCH + "print(gc.isenabled())", command],
                          capture_output=True, text=True)
    if command == "interrupted":
        assert done.returncode == 130, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        return
    assert done.returncode == 0, done.stderr[-2000:]
    seen, enabled_after = done.stdout.strip().splitlines()
    assert seen.startswith("{'enabled during import': False") and "'enabled': True" in seen, seen
    assert int(seen.split("'frozen': ")[1].split(",")[0]) > 1000  # Python's own modules, at least
    assert enabled_after == "True"


TRAIN_WITHOUT_TRAINING = """
import sys
from chargpt.cli import launch
for args in (["--help"], ["trainer.max_step=5"]):  # one process: each start is seconds of imports
    sys.argv = ["chargpt-train", *args]
    try:
        launch.train()
    except SystemExit as end:
        print(end.code, sorted(name for name in sys.modules if name.split(".")[0] == "lightning"))
        print("-- end of", args, flush=True)
        print("-- end of", args, file=sys.stderr, flush=True)
"""


@pytest.mark.slow  # fresh interpreters: seconds
def test_train_help_and_a_refused_setting_import_no_lightning(tmp_path: Path) -> None:
    # Lightning comes in once the config has composed: its import was ~60% of the CPU time of a
    # command that only prints or is refused.
    done = subprocess.run([sys.executable, "-c", TRAIN_WITHOUT_TRAINING], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    help_out, refused_out, _ = done.stdout.split("-- end of")
    _, refused_err, _ = done.stderr.split("-- end of")
    help_code, help_modules = help_out.strip().splitlines()[-1].split(" ", 1)
    assert help_code in ("0", "None") and "trainer:" in help_out and help_modules == "[]"
    refused_code, refused_modules = refused_out.strip().splitlines()[-1].split(" ", 1)
    assert refused_code == "2" and "did you mean trainer.max_steps?" in refused_err
    assert refused_modules == "[]"
