"""Sweeps: every job runs in its own directory, a failing job does not stop the others, and
chargpt-report ranks them all."""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from chargpt import file_locks
from chargpt.checkpoint_step import checkpoint_step
from chargpt.cli import report as report_cli
from chargpt.cli import train as train_cli
from chargpt.errors import ChargptError
from chargpt.run_layout import LOCK_FILE, find_runs, run_folders
from chargpt.runs.curves import curve_runs
from chargpt.runs.report import report
from chargpt.runs.run_rows import run_row, sort_rows
from chargpt.runs.sweep_record import continue_line, drawn_by, recorded_sweep, swept_by, swept_settings
from conftest import run_cli
from fake_runs import fake_run, lock_held

ROOT = Path(__file__).resolve().parents[1]
# A tiny model on a small generated corpus: a few seconds per job.
MODEL = ["model.n_layer=1", "model.n_embd=32"]
TINY = [
    "model.block_size=16", "data.batch_size=4",
    "trainer.max_steps=6", "trainer.val_check_interval=3", "+trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=3", "sample.max_new_tokens=0", "callbacks.progress_bar=null",
    "trainer.enable_model_summary=false", "logger=none",
]


# A job whose context is longer than the corpus's validation split (~310 characters) fails as its
# text is read, which no check before the sweep's launch can tell: a sweep's bad settings (e.g. an
# n_head that does not divide n_embd) are refused before any job runs.
UNSIZED = [arg for arg in TINY if not arg.startswith("model.block_size=")]


def write_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("To be, or not to be, that is the question.\nWhether 'tis nobler in the mind.\n" * 40)
    return path


def chargpt(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CHARGPT_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", f"chargpt.cli.{module}", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def metrics(best: float, last: float, steps: int = 100) -> dict:
    return {"best_val_loss": best, "val_loss": last, "step": steps, "tokens_per_second": 1000.0,
            "train_seconds": 2.5}


def test_report_ranks_runs_and_writes_csv(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0", ["optimizer.lr=1e-3", "model=tiny"], metrics(2.0, 2.1), {"status": "finished"})
    fake_run(sweep, "1", ["optimizer.lr=3e-3", "model=tiny"], metrics(1.5, 1.6), {"status": "finished"})
    fake_run(sweep, "2", ["optimizer.lr=1e-2", "model=tiny"], None, {"status": "failed", "error": "boom"})
    fake_run(sweep, "10", ["optimizer.lr=3e-2", "model=tiny"], metrics(1.8, 1.8, 40), None)
    # A run stopped early on purpose says so in its metrics; that wins over "finished".
    stopped = {**metrics(1.7, 1.7), "status": "interrupted"}
    fake_run(sweep, "3", ["optimizer.lr=2e-3", "+trainer.x=1"], stopped, {"status": "finished"})
    # A resumed run keeps its resume configs below .hydra/: still one run.
    (sweep / "1" / ".hydra" / "resume-1").mkdir()
    (sweep / "1" / ".hydra" / "resume-1" / "overrides.yaml").write_text(
        "- optimizer.lr=3e-3\n- model=tiny\n- ckpt_path=x\n")

    rows = report(sweep)

    assert [r["run"] for r in rows] == ["1", "3", "10", "0", "2"]
    assert [r["status"] for r in rows] == ["finished", "interrupted", "incomplete", "finished", "failed"]
    assert rows[0]["optimizer.lr"] == "3e-3" and rows[0]["best_val_loss"] == 1.5
    assert rows[1]["trainer.x"] == "1" and rows[0]["trainer.x"] == ""
    assert rows[-1]["error"] == "boom" and rows[-1]["best_val_loss"] is None
    with (sweep / "report.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["run"] for r in table] == ["1", "3", "10", "0", "2"]
    assert table[0]["last_val_loss"] == "1.6" and table[-1]["best_val_loss"] == ""
    assert {"optimizer.lr", "model", "status", "steps", "tokens_per_sec", "wall_s"} <= set(table[0])

    by_speed = report(sweep, tmp_path / "speed.csv", sort_by="wall_s")
    assert by_speed[-1]["run"] == "2"  # no figure: last whatever the order
    assert (tmp_path / "speed.csv").exists()


@pytest.mark.parametrize("resumed", [False, True])
def test_a_run_launched_without_its_hydra_record_is_named_not_left_out_unsaid(
    tmp_path: Path, capsys: pytest.CaptureFixture, resumed: bool
) -> None:
    # hydra.output_subdir=null: no .hydra/overrides.yaml, so the run was missing from the report, nothing
    # said; alone, the folder had "no runs" in it. Resumed since, its resume's record in .hydra/resume-*
    # (a .hydra folder, with no overrides.yaml of its first launch) still left it out unsaid.
    sweep = tmp_path / "runs"
    fake_run(sweep, "recorded", ["optimizer.lr=1e-3"], metrics(2.0, 2.1), {"status": "finished"})
    unrecorded = sweep / "no record"
    (unrecorded / "checkpoints").mkdir(parents=True)
    (unrecorded / "checkpoints" / "last.ckpt").write_bytes(b"")
    (unrecorded / "status.json").write_text(json.dumps({"status": "finished"}))
    (unrecorded / "train.log").write_text("")
    if resumed:
        (unrecorded / ".hydra" / "resume-20261207-004022").mkdir(parents=True)
        (unrecorded / ".hydra" / "resume-20261207-004022" / "overrides.yaml").write_text("- ckpt_path=.\n")
    (sweep / "notes").mkdir()  # no run: not named
    (sweep / "notes" / "status.json").write_text("{}")

    assert [row["run"] for row in report(sweep)] == ["recorded"]
    said = ("1 run launched with hydra.output_subdir=null, so with no .hydra/overrides.yaml to read settings "
            f"from: {unrecorded}; launch runs to report without hydra.output_subdir=null")
    assert f"warning: left out {said}\n" in capsys.readouterr().err
    with pytest.raises(ChargptError) as err:
        report(unrecorded)
    assert str(err.value) == f"no runs to report in {unrecorded}: {said}"


def test_a_folders_runs_are_found_recorded_or_not_in_one_walk_of_it(tmp_path: Path) -> None:
    # One walk finds what a walk per kind of file found: the runs with Hydra's record, and those with
    # checkpoints or a status beside their log but none; a linked folder is not entered (not one run
    # found twice), and a link to nothing is no record.
    sweep = tmp_path / "runs"
    fake_run(sweep, "recorded", ["optimizer.lr=1e-3"], metrics(2.0, 2.1), {"status": "finished"})
    unrecorded = sweep / "no record"
    (unrecorded / "checkpoints").mkdir(parents=True)
    (unrecorded / "checkpoints" / "last.ckpt").write_bytes(b"")
    (sweep / "linked").symlink_to(sweep / "recorded")
    (sweep / "broken" / ".hydra").mkdir(parents=True)
    (sweep / "broken" / ".hydra" / "overrides.yaml").symlink_to(tmp_path / "nowhere")
    assert run_folders(sweep) == ([sweep / "recorded"], [unrecorded])
    assert run_folders(sweep / "no record") == ([], [unrecorded])


def test_model_auto_runs_show_the_shape_each_chose(tmp_path: Path, capsys, monkeypatch) -> None:
    # A budget sweep of model=auto: which shape each budget bought was in each run's budget.json only.
    sweep = tmp_path / "sweep"
    runs = (("0", 20, "2x96 h3 ctx128 b8", 1.65), ("1", 45, "3x128 h4 ctx128 b8", 1.55))
    for name, budget, shape, best in runs:
        fake_run(sweep, name, ["model=auto", f"budget_seconds={budget}"], metrics(best, best),
                 {"status": "finished"})
        (sweep / name / "budget.json").write_text(json.dumps({"auto": {"chosen": {"shape": shape}}}))
    fake_run(sweep, "2", ["model=tiny", "budget_seconds=20"], metrics(2.0, 2.0), {"status": "finished"})
    monkeypatch.setenv("COLUMNS", "160")  # (at 80 columns it is left out, with two metrics)
    rows = report(sweep)
    assert [(r["run"], r["auto_shape"]) for r in rows] == [
        ("1", "3x128 h4 ctx128 b8"), ("0", "2x96 h3 ctx128 b8"), ("2", "")]
    with (sweep / "report.csv").open() as f:
        assert [r["auto_shape"] for r in csv.DictReader(f)] == ["3x128 h4 ctx128 b8", "2x96 h3 ctx128 b8", ""]
    assert "3x128 h4 ctx128 b8" in capsys.readouterr().out

    for name in ("0", "1"):
        (sweep / name / "budget.json").write_text("{")  # unreadable: the run is still reported
    assert "auto_shape" not in report(sweep)[0]


def test_a_run_whose_process_is_gone_without_a_word_is_reported_killed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    gone = subprocess.Popen(["true"])
    gone.wait()
    with subprocess.Popen(["sleep", "30"]) as alive:
        try:
            fake_run(sweep, "0", ["seed=1"], metrics(2.0, 2.1), {"status": "running", "pid": alive.pid})
            fake_run(sweep, "1", ["seed=2"], metrics(2.2, 2.3), {"status": "running", "pid": gone.pid})
            # A pid no run can have (a record edited by hand): 0 and -1 would signal a whole group.
            fake_run(sweep, "2", ["seed=3"], metrics(2.4, 2.5), {"status": "running", "pid": 0})
            fake_run(sweep, "3", ["seed=4"], metrics(2.4, 2.5), {"status": "running", "pid": -1})
            rows = report(sweep, sort_by="run")
        finally:
            alive.kill()
    assert [(r["run"], r["status"]) for r in rows] == [("0", "running"), ("1", "killed"), ("2", "killed"),
                                                       ("3", "killed")]


@pytest.mark.skipif(not file_locks.LOCKING, reason="run folders are locked where the system has locks")
def test_a_killed_run_whose_pid_another_process_took_is_reported_killed(tmp_path: Path) -> None:
    # A run killed outright (kill -9, out of memory) leaves "running" and its pid in status.json, and
    # its folder's lock file, no longer locked. Once another process took that pid, the report said
    # "running" for as long as that process lived (and the sweep was "still running").
    sweep = tmp_path / "sweep"
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            run = fake_run(sweep, "0", ["seed=1"], metrics(2.0, 2.1), {"status": "running", "pid": other.pid})
            (run / LOCK_FILE).write_text(f"{other.pid}\n")  # the killed run's: its lock ended with it
            killed = report(sweep)
            with lock_held(run):  # a live run holds its folder's lock
                running = report(sweep)
        finally:
            other.kill()
    assert [r["status"] for r in killed] == ["killed"]
    assert [r["status"] for r in running] == ["running"]


def test_report_rejects_a_folder_without_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(report_cli.main, str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.strip().startswith("error: no runs in") and "Traceback" not in err
    assert not (tmp_path / "report.csv").exists()


@pytest.mark.skipif(not file_locks.LOCKING, reason="run folders are locked where the system has locks")
def test_report_of_a_sweep_whose_first_job_is_starting_says_so(tmp_path: Path, capsys) -> None:
    # Its folder made, no job's yet: "no runs in SWEEP (no .hydra/overrides.yaml in it); give a
    # sweep's folder or a run's", as if the folder given were not a sweep's.
    sweep = tmp_path / "my runs é 🚀"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    hydra: []\n    task: ['seed=1,2']\n")
    with lock_held(sweep):  # the sweep's process holds its folder's lock
        assert run_cli(report_cli.main, str(sweep)) == 2
    assert capsys.readouterr().err == (f"error: no runs in {sweep} yet: its sweep is still running, its "
                                       "first job starting; report it again once that job has started\n")
    assert not (sweep / "report.csv").exists()


@pytest.mark.slow
def test_sweep_goes_on_past_a_failing_job_in_process(tmp_path: Path) -> None:
    # The in-process twin of the subprocess test below: a failing job is recorded, the next one runs.
    corpus = write_corpus(tmp_path)
    sweep = tmp_path / "multirun"
    code = run_cli(
        train_cli.main, "-m", "data=text", f"data.path={corpus}", f"hydra.sweep.dir={sweep}", *MODEL,
        *UNSIZED, "trainer.max_steps=2", "trainer.val_check_interval=2", "model.block_size=1000,16",
    )
    assert code == 0
    rows = report(sweep)
    assert [(r["model.block_size"], r["status"]) for r in rows] == [("16", "finished"), ("1000", "failed")]
    assert "fewer than model.block_size + 1 = 1001" in rows[-1]["error"] and rows[0]["steps"] == 2


@pytest.mark.slow
def test_a_sweep_whose_every_job_failed_says_so_and_fails(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path)
    sweep = tmp_path / "all failed"
    code = run_cli(
        train_cli.main, "-m", "data=text", f"data.path={corpus}", f"hydra.sweep.dir={sweep}", *MODEL,
        *UNSIZED, "model.block_size=1000,2000",
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "error: every job of this sweep failed (2 of 2; the first: " in err
    assert "model.block_size + 1 = 1001" in err
    assert [r["status"] for r in report(sweep)] == ["failed", "failed"]  # both kept for the report
    # A failure from the machine (out of memory) may pass on a second try: the report says how.
    assert "2 of 2 runs of this sweep failed; continue it, which trains the failed runs again, with: " \
        "chargpt-train -m data=text" in capsys.readouterr().out


@pytest.mark.slow  # an Optuna search
def test_a_search_whose_every_trial_failed_names_no_best(tmp_path: Path, capsys) -> None:
    # Each failed trial scores +inf for Optuna, which then wrote the first failure as the best.
    corpus = write_corpus(tmp_path)
    sweep = tmp_path / "search"
    code = run_cli(
        train_cli.main, "data=text", f"data.path={corpus}", f"hydra.sweep.dir={sweep}", *UNSIZED,
        "hparams_search=optuna", "hydra.sweeper.n_trials=1", "model.block_size=choice(1000)",
        "model.n_embd=32", "model.n_layer=1", "model.dropout=0", "optimizer.lr=1e-3",
    )
    assert code == 1
    out, err = capsys.readouterr()
    assert "error: every job of this sweep failed (1 of 1; the first: the val split of " in err
    assert "model.block_size + 1 = 1001" in err
    assert (sweep / "0").is_dir() and not (sweep / "optimization_results.yaml").exists()
    # The sweeper's own log named the failure its best just before the error ("Best value: inf").
    assert "Best parameters" not in out + err and "Best value" not in out + err


@pytest.mark.slow  # two Python processes start: the sweep as users launch it
def test_four_job_sweep_with_a_failing_job_then_report(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    sweep = tmp_path / "multirun"
    # The third job's context is longer than the validation text: it fails, the three others must run.
    result = chargpt(
        "train", "-m", "data=text", f"data.path={corpus}", f"hydra.sweep.dir={sweep}", *MODEL, *UNSIZED,
        "model.block_size=8,16,1000,32", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    assert json.loads((sweep / "2" / "status.json").read_text())["status"] == "failed"

    rows = report(sweep)

    assert len(rows) == 4
    assert [r["status"] for r in rows] == ["finished"] * 3 + ["failed"]
    assert rows[-1]["model.block_size"] == "1000" and "model.block_size + 1 = 1001" in rows[-1]["error"]
    finished = rows[:3]
    assert {r["model.block_size"] for r in finished} == {"8", "16", "32"}
    losses = [r["best_val_loss"] for r in finished]
    assert losses == sorted(losses) and all(math.isfinite(x) for x in losses)
    assert all(r["steps"] == 6 and r["tokens_per_sec"] > 0 and r["wall_s"] > 0 for r in finished)
    assert all(r["last_val_loss"] is not None for r in finished)


@pytest.mark.slow  # a subprocess; tests/test_bad_input.py checks the same error lines in-process
def test_a_single_run_still_fails_loudly(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    run = tmp_path / "run"
    result = chargpt("train", "data=text", f"data.path={corpus}", f"hydra.run.dir={run}", *MODEL, *TINY,
                     "model.n_head=3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: model.n_embd=32 is not divisible")
    assert not run.exists()  # a failed start leaves nothing behind (a sweep keeps its failed jobs)


@pytest.mark.slow  # 5-30 s: the sampled models reach 5 layers x 256 wide
def test_optuna_search_minimises_best_val_loss(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    corpus = write_corpus(tmp_path)
    sweep = tmp_path / "optuna"
    result = chargpt(
        "train", "hparams_search=optuna", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "data=text", f"data.path={corpus}", f"hydra.sweep.dir={sweep}", *TINY, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = report(sweep)
    assert len(rows) == 3 and all(r["status"] == "finished" for r in rows)
    # The searched settings vary per trial and are the run's overrides.
    assert len({r["optimizer.lr"] for r in rows}) == 3
    assert {"model.n_embd", "model.n_layer", "model.dropout"} <= set(rows[0])
    best = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {rows[0]['best_val_loss']}" in best
    assert f"Best value: {rows[0]['best_val_loss']}" in result.stdout + result.stderr  # said, and written


def test_a_stopped_run_outside_a_sweep_is_given_its_resume_command(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "my runs"
    stopped = {**metrics(1.7, 1.7), "status": "interrupted"}
    # Resumed once already: its latest launch's overrides, without that launch's ckpt_path.
    launch = ["optimizer.lr=3e-3", "data.path='my text.txt'"]
    fake_run(runs, "a, b", launch, stopped, {"status": "interrupted"})
    (runs / "a, b" / ".hydra" / "resume-1").mkdir()
    (runs / "a, b" / ".hydra" / "resume-1" / "overrides.yaml").write_text(
        "- optimizer.lr=3e-3\n- data.path='my text.txt'\n- trainer.max_steps=900\n- ckpt_path=old\n")
    (runs / "a, b" / "checkpoints").mkdir()
    (runs / "a, b" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    fake_run(runs, "early", ["optimizer.lr=1e-2"], None, {"status": "interrupted"})
    fake_run(runs, "done", ["optimizer.lr=1e-3"], metrics(1.5, 1.5), {"status": "finished"})

    report(runs)

    out = capsys.readouterr().out
    run_dir = runs.resolve() / "a, b"
    assert "1 run stopped early; resume it from its last checkpoint with:" in out
    resume = "chargpt-train optimizer.lr=3e-3 'data.path=my text.txt' trainer.max_steps=900"
    assert f"  {resume} 'ckpt_path={run_dir}'" in out
    assert "1 run stopped before a first checkpoint, nothing to resume (early): launch it again" in out
    assert "done" not in out.split("stopped early")[1]  # a finished run needs nothing


def test_a_failed_run_with_a_checkpoint_is_given_its_resume_command(tmp_path: Path, capsys) -> None:
    # A run that failed after writing last.ckpt (the disk filled while metrics.json was written) got
    # no command to go on with, where a stopped one gets one; one that failed before any checkpoint
    # has nothing to resume, and is not said to.
    runs = tmp_path / "my runs, é 🚀"
    error = "OSError: [Errno 28] No space left on device: 'metrics.json'"
    fake_run(runs, "full, disk", ["model=tiny", "trainer.max_steps=8"], {**metrics(1.7, 1.7), "step": 4},
             {"status": "failed", "error": error})
    (runs / "full, disk" / "checkpoints").mkdir()
    (runs / "full, disk" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    fake_run(runs, "bad", ["model.n_head=3"], None, {"status": "failed", "error": "ConfigError: n_head"})

    report(runs)

    out = capsys.readouterr().out
    lines = out.split("written: ")[0].splitlines()
    at = lines.index("1 run failed after writing a checkpoint; fix what its error says, then resume it from "
                     "its last checkpoint with:")
    assert shlex.split(lines[at + 1]) == [
        "chargpt-train", "model=tiny", "trainer.max_steps=8", f"ckpt_path={(runs / 'full, disk').resolve()}"]
    assert "bad" not in "\n".join(lines[at:]) and "stopped" not in out


def test_a_run_whose_last_checkpoint_is_later_than_its_figures_is_said_to_be(
    tmp_path: Path, capsys
) -> None:
    # A run whose metrics.json write failed after last.ckpt at step 6 (a full disk) showed step 4,
    # its last recorded validation, with no word that its checkpoint, where a resume goes on from,
    # holds later steps. It was told by the files' times, which a copy (`cp -r`) gives anew, in its
    # own order: a copied run whose checkpoint holds its figures' step was said to hold more, and one
    # whose checkpoint holds more was not, where metrics.json happened to be copied last. The step
    # the checkpoint holds tells, whatever the times.
    runs = tmp_path / "my runs, é"
    failed = {"status": "failed", "error": "cannot write metrics.json (No space left on device)"}
    # name: (the step its last.ckpt holds, its status, whether its checkpoint's file is the newer)
    for name, (step, status, newer) in {
        "full, é": (6, failed, True), "copied, later": (6, {"status": "interrupted"}, False),
        "fine": (4, failed, False), "copied": (4, failed, True),
        "finished": (4, {"status": "finished"}, True),
    }.items():
        run = fake_run(runs, name, ["model=tiny", f"+name={name}"], {**metrics(1.7, 1.7), "step": 4}, status)
        (run / "checkpoints").mkdir()
        torch.save({"epoch": 0, "global_step": step, "state_dict": {"w": torch.zeros(2)}},
                   run / "checkpoints" / "last.ckpt")
        checkpoint, figures = (2_000_000, 1_000_000) if newer else (1_000_000, 2_000_000)
        os.utime(run / "checkpoints" / "last.ckpt", (checkpoint, checkpoint))
        os.utime(run / "metrics.json", (figures, figures))

    report(runs)

    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "more steps" in line]
    assert notes == ["runs 'copied, later', 'full, é': their last checkpoint holds more steps than the steps "
                     "column says (metrics.json was not updated after it was written); resuming goes on from "
                     "that checkpoint"]


def test_the_step_a_checkpoint_holds_is_read_without_torch(tmp_path: Path) -> None:
    # The report reads it from the checkpoint's opening bytes: torch's import alone took seconds.
    path = tmp_path / "a, é.ckpt"
    torch.save({"epoch": 3, "global_step": 123_456, "pytorch-lightning_version": "2.5",
                "state_dict": {"w": torch.zeros(3)}, "loops": {"global_step": 1}}, path)
    assert checkpoint_step(path) == 123_456
    (tmp_path / "not.ckpt").write_bytes(b"weights")
    torch.save({"state_dict": {}}, tmp_path / "no step.ckpt")
    assert checkpoint_step(tmp_path / "not.ckpt") is None
    assert checkpoint_step(tmp_path / "no step.ckpt") is None
    assert checkpoint_step(tmp_path / "missing.ckpt") is None


def test_a_run_that_ran_out_of_memory_is_told_its_own_fix_not_to_resume_as_it_was(tmp_path: Path,
                                                                                   capsys) -> None:
    # It was told to "fix what its error says, then resume it from its last checkpoint with" its own
    # command: with the batch that ran out of memory, or, where the model alone was too large, a
    # resume that would refuse the smaller model its error advised.
    runs = tmp_path / "my runs, é 🚀"
    smaller_batch = (
        "out of GPU memory (could not allocate 20.00 GiB); data.batch_size=64, model.block_size=64 or the "
        "model's size (model.n_layer, model.n_embd) is too large for this machine; continue from its last "
        "checkpoint with less, e.g. chargpt-train data.batch_size=32 'ckpt_path=RUN'")
    smaller_model = ("out of CPU memory; the model alone is too large for this machine: model.n_embd=4096 "
                     "makes N parameters; run again with less, e.g. a smaller model.n_embd")
    for name, error in (("batch, é", smaller_batch), ("model", smaller_model)):
        fake_run(runs, name, ["data.batch_size=64"], {**metrics(1.7, 1.7), "step": 4},
                 {"status": "failed", "error": error})
        (runs / name / "checkpoints").mkdir()
        (runs / name / "checkpoints" / "last.ckpt").write_bytes(b"weights")

    report(runs)

    lines = capsys.readouterr().out.split("written: ")[0].splitlines()
    at = lines.index("2 runs ran out of memory after writing a checkpoint; go on as their error says:")
    assert lines[at + 1:at + 3] == [
        "  'batch, é': continue from its last checkpoint with less, e.g. chargpt-train data.batch_size=32 "
        "'ckpt_path=RUN'",
        "  model: run again with less, e.g. a smaller model.n_embd"]
    assert not any("fix what" in line for line in lines)


def test_a_stopped_runs_resume_command_gives_its_own_config_folders_again(tmp_path: Path, capsys) -> None:
    # A run launched with its options in the user's own folders (--config-dir, hydra.searchpath)
    # was told to resume without them, and that command was refused: optimizer=my_opt not found.
    runs = tmp_path / "runs"
    run = fake_run(runs, "mine", ["optimizer=my_opt"], {**metrics(1.7, 1.7), "status": "interrupted"},
                   {"status": "interrupted"})
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {
        "runtime": {"cwd": "/home/me", "config_sources": [
            {"path": "/home/me/my configs", "schema": "file", "provider": "command-line"},
            {"path": "shared", "schema": "file", "provider": "hydra.searchpath in command-line"}]},
        "overrides": {"hydra": ["hydra.searchpath=[file://shared,pkg://their.configs]", "hydra.mode=RUN"],
                      "task": ["optimizer=my_opt"]}}}))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")

    report(runs)

    resume = capsys.readouterr().out.split("resume it from its last checkpoint with:\n", 1)[1].splitlines()[0]
    assert shlex.split(resume) == [
        "chargpt-train", "--config-dir", "/home/me/my configs",
        "hydra.searchpath=[file:///home/me/shared,pkg://their.configs]", "optimizer=my_opt",
        f"ckpt_path={run.resolve()}"]


def test_a_run_without_status_json_is_read_from_its_metrics(tmp_path: Path, capsys) -> None:
    # A run from before status.json (or whose file was deleted) that reached its last step was
    # "incomplete", offered a resume that found nothing left to train.
    from chargpt.run_state import read_status

    runs = tmp_path / "runs"
    for name, step in (("done", 100), ("halfway", 40)):
        fake_run(runs, name, ["model=tiny"], {**metrics(1.5, 1.6, step), "max_steps": 100})
        (runs / name / "checkpoints").mkdir()
        (runs / name / "checkpoints" / "last.ckpt").write_bytes(b"weights")

    rows = report(runs, sort_by="run")

    assert [(r["run"], r["status"]) for r in rows] == [("done", "finished"), ("halfway", "incomplete")]
    out = capsys.readouterr().out
    assert f"ckpt_path={(runs / 'halfway').resolve()}" in out and "/done" not in out
    # What a continued sweep reads too: the finished job is kept with its best loss, not trained again.
    assert read_status(runs / "done") == {"status": "finished", "value": 1.5}
    assert read_status(runs / "halfway") == {}


def basic_sweep_record(task: str) -> str:
    """A multirun.yaml of Hydra's basic sweeper over `task` (the overrides as the YAML list holds them)."""
    return ("hydra:\n  overrides:\n    hydra: []\n    task: [" + task + "]\n"
            "  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n")


def search_record(task: str, **params: str) -> str:
    """A multirun.yaml of a search over `task` (as basic_sweep_record) and the sweeper's `params`
    (a dimension's key with its dots as __: optimizer__lr='interval(1e-3,1e-2)')."""
    space = "".join(f"      {key.replace('__', '.')}: {value}\n" for key, value in params.items())
    return f"hydra:\n  overrides:\n    hydra: []\n    task: [{task}]\n  sweeper:\n    params:\n{space}"


def test_a_stopped_sweep_job_gets_its_sweeps_continue_command_not_its_own(tmp_path: Path, capsys) -> None:
    # Resuming the job alone would leave the sweep's jobs that never started out.
    runs = tmp_path / "outputs"
    sweep = runs / "multirun" / "lr"
    (sweep).mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(basic_sweep_record("'optimizer.lr=1e-3,3e-3,1e-2'"))
    fake_run(sweep, "0", ["optimizer.lr=1e-3"], metrics(1.5, 1.5), {"status": "finished"})
    fake_run(sweep, "1", ["optimizer.lr=3e-3"], metrics(1.6, 1.6), {"status": "interrupted"})
    (sweep / "1" / "checkpoints").mkdir()
    (sweep / "1" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    fake_run(runs, "alone", ["model=tiny"], metrics(1.9, 1.9), {"status": "interrupted"})
    (runs / "alone" / "last.ckpt").write_bytes(b"weights")

    report(runs)

    out = capsys.readouterr().out
    assert (f"{sweep}: this sweep stopped part-way (1 stopped, 1 of 3 never started); continue it with: "
            f"chargpt-train -m optimizer.lr=1e-3,3e-3,1e-2 hydra.sweep.dir={sweep.resolve()}") in out
    assert f"ckpt_path={sweep.resolve() / '1'}" not in out
    assert f"  chargpt-train model=tiny ckpt_path={(runs / 'alone').resolve()}" in out

    report(sweep)  # the sweep itself: its own note only
    out = capsys.readouterr().out
    assert "this sweep stopped part-way" in out and "stopped early; resume" not in out


def test_a_sweep_still_running_says_so_and_how_many_jobs_are_to_come(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "lr"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(basic_sweep_record("'optimizer.lr=1e-3,3e-3,1e-2'"))
    fake_run(sweep, "0", ["optimizer.lr=1e-3"], metrics(1.5, 1.5), {"status": "finished"})
    with subprocess.Popen(["sleep", "30"]) as alive:
        try:
            running = {"status": "running", "pid": alive.pid}
            fake_run(sweep, "1", ["optimizer.lr=3e-3"], metrics(1.6, 1.6), running)
            report(sweep)
        finally:
            alive.kill()
    out = capsys.readouterr().out
    assert "this sweep is still running (1 running, 1 of 3 not started yet): this table is not its last" \
        in out
    assert "stopped part-way" not in out and "continue it with" not in out


@pytest.mark.skipif(not file_locks.LOCKING, reason="run folders are locked where the system has locks")
def test_a_sweep_between_steps_of_its_jobs_is_still_running(tmp_path: Path, capsys) -> None:
    # A job just started (its folder and .hydra made, no status.json before its first step) was
    # `incomplete`, and the sweep "stopped part-way (1 stopped, ...); continue it with: ...", while
    # it trained on; so between two jobs, the last one finished and the next not yet made.
    sweep = tmp_path / "my runs é 🚀"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(basic_sweep_record("'seed=1,2,3'"))
    fake_run(sweep, "0", ["seed=1"], metrics(1.5, 1.5), {"status": "finished"})
    with lock_held(sweep):  # the sweep's process holds its folder's lock until its last job ends
        between = report(sweep)
        out_between = capsys.readouterr().out
        starting = fake_run(sweep, "1", ["seed=2"])  # its run writes its pid, then its first status
        with subprocess.Popen(["sleep", "30"]) as alive:
            try:
                (starting / LOCK_FILE).write_text(f"{alive.pid}\n")
                with lock_held(starting):
                    rows = report(sweep)
            finally:
                alive.kill()
    out = capsys.readouterr().out
    assert [(r["run"], r["status"]) for r in rows] == [("0", "finished"), ("1", "running")]
    assert "this sweep is still running (1 running, 1 of 3 not started yet): this table is not its last" \
        in out
    assert [r["status"] for r in between] == ["finished"]
    assert "this sweep is still running (2 of 3 not started yet): this table is not its last" in out_between
    for said in (out, out_between):
        assert "stopped part-way" not in said and "continue it with" not in said


def test_report_names_a_missing_folder_and_a_file_for_what_they_are(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    cases = ((tmp_path / "no such sweep", "does not exist"), (tmp_path / "notes.txt", "is not a directory"))
    for given, what in cases:
        assert run_cli(report_cli.main, str(given)) == 2
        err = capsys.readouterr().err
        # A run's folder is reported too: the fix named only a sweep's.
        assert err == (f"error: {given} {what}; give a sweep's folder or a run's "
                       "(outputs/multirun/... or outputs/DATE/TIME)\n")


def test_report_names_a_setting_typed_as_its_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    # Typed as the other commands take settings, it was "seed=1,2 does not exist; give a sweep directory".
    monkeypatch.chdir(tmp_path)
    assert run_cli(report_cli.main, "optimizer.lr=1e-3,3e-3") == 2
    assert capsys.readouterr().err == (
        "error: optimizer.lr=1e-3,3e-3 is a setting, which chargpt-report does not take: it reports the runs "
        "of a sweep's folder, each with the settings it ran with (chargpt-report outputs/multirun/...); see "
        "chargpt-report --help\n")
    (tmp_path / "lr=1e-3").mkdir()  # a folder so named is reported
    fake_run(tmp_path / "lr=1e-3", "0", ["optimizer.lr=1e-3"], metrics(1.5, 1.5), {"status": "finished"})
    assert run_cli(report_cli.main, "lr=1e-3") == 0


@pytest.mark.parametrize("typed", ["{tmp}/sweeps_é/lr=3e-3,seed=1", "sweeps_é/lr=3e-3,seed=1", "~/lr=3e-3",
                                   "no sweeps/lr=3e-3", "no_sweeps/lr=3e-3,seed=1", "./lr=3e-3"])
def test_report_names_a_missing_folder_named_like_a_setting_as_missing(typed: str, tmp_path: Path,
                                                                       monkeypatch, capsys) -> None:
    # A job folder of a sweep named by its settings (hydra.sweep.subdir=${hydra.job.override_dirname}),
    # mistyped, was called "a setting, which chargpt-report does not take": it is a path.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "sweeps_é").mkdir()
    given = typed.format(tmp=tmp_path)
    assert run_cli(report_cli.main, given) == 2
    shown = given.replace("~", str(tmp_path), 1)
    assert capsys.readouterr().err == (f"error: {Path(shown)} does not exist; give a sweep's folder or a "
                                       "run's (outputs/multirun/... or outputs/DATE/TIME)\n")


def test_report_refuses_an_empty_path_and_a_folder_as_csv_before_writing(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0", ["optimizer.lr=1e-3"], metrics(2.0, 2.1), {"status": "finished"})
    (tmp_path / "out").mkdir()
    cases = (
        ([""], "error: argument sweep_dir: an empty path (an unset shell variable?)"),
        (["--csv=", str(sweep)], "error: argument --csv: an empty path (an unset shell variable?)"),
        # Advice that works as printed: it named new/report.csv, refused next for its missing folder.
        (["--csv", f"{tmp_path}/new é/", str(sweep)],
         f"error: argument --csv: {tmp_path}/new é/ names a folder, which does not exist; create it "
         f"(mkdir -p '{tmp_path}/new é') and name the CSV file in it, such as --csv "
         f"'{tmp_path}/new é/report.csv'"),
        (["--csv", f"{tmp_path}/out/", str(sweep)],
         f"error: argument --csv: {tmp_path}/out/ names a folder; name the CSV file in it, such as --csv "
         f"{tmp_path}/out/report.csv"),
        (["--csv", str(tmp_path / "out"), str(sweep)],
         f"error: --csv {tmp_path / 'out'} is a folder; name the CSV file, such as "
         f"{tmp_path}/out/report.csv"),
    )
    for args, said in cases:
        assert run_cli(report_cli.main, *args) == 2
        assert capsys.readouterr().err.splitlines()[0].startswith(said)
    # '.' and '..' are folders too (Path.with_name raised ValueError on '.', a traceback).
    for folder in (".", ".."):
        with pytest.raises(ChargptError, match=r"is a folder; name the CSV file, such as "):
            report(sweep, Path(folder))
    assert not (sweep / "report.csv").exists() and not any((tmp_path / "out").iterdir())


def test_report_reads_a_quoted_tilde_as_home_as_pandas_does(tmp_path: Path, monkeypatch, capsys) -> None:
    # --csv "~/" (quoted: the shell leaves it) was advised `mkdir -p '~'`, a folder named ~ beside the
    # user's files, and --csv "~/out/r.csv" was refused for the missing folder ./~/out. `~` is the
    # home folder, as pandas' to_csv reads it: the advice names it, and works as printed.
    home, sweep = tmp_path / "home", tmp_path / "home" / "sweep"
    fake_run(sweep, "0", ["optimizer.lr=1e-3"], metrics(2.0, 2.1), {"status": "finished"})
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert run_cli(report_cli.main, "--csv", "~/out/", "~/sweep") == 2
    said = capsys.readouterr().err
    assert said.startswith(f"error: argument --csv: ~/out/ names a folder, which does not exist; create "
                           f"it (mkdir -p {home}/out) and name the CSV file in it, such as --csv "
                           "'~/out/report.csv'")
    (home / "out").mkdir()
    assert run_cli(report_cli.main, "--csv", "~/out/report.csv", "~/sweep") == 0
    assert (home / "out" / "report.csv").is_file() and not (tmp_path / "~").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_report_refuses_a_folder_it_cannot_write_in_one_line(tmp_path: Path, capsys) -> None:
    # /proc takes no new file, even from root: as another user's sweep or a read-only disk. The
    # report's first file was a PermissionError or FileNotFoundError traceback (exit 1).
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0", ["optimizer.lr=1e-3"], metrics(2.0, 2.1), {"status": "finished"})
    assert run_cli(report_cli.main, "--csv", "/proc/self/report.csv", str(sweep)) == 2
    assert capsys.readouterr().err.startswith("error: cannot write in /proc/self (")
    assert not (sweep / "report.csv").exists()


def test_the_shared_settings_paste_into_a_shell_as_shown(tmp_path: Path, capsys, monkeypatch) -> None:
    # A prompt with a comma, a space and an apostrophe was printed bare: pasted, the shell split it.
    monkeypatch.setenv("COLUMNS", "150")
    sweep = tmp_path / "prompt"
    sweep.mkdir()
    prompt = "sample.prompt='Le cœur, dit l\\'été'"  # as Hydra records the CLI's quoted free text
    for name, seed in (("0", 1), ("1", 2)):
        fake_run(sweep, name, [prompt, "model=tiny", f"seed={seed}"], metrics(1.5 + seed, 1.7),
                 {"status": "finished"})
    report(sweep)
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    (line,) = [line for line in lines if line.startswith("shared:")]
    assert shlex.split(line.removeprefix("shared: ")) == ["sample.prompt=Le cœur, dit l'été", "model=tiny"]


def test_a_shared_removal_is_shown_as_typed(tmp_path: Path, capsys, monkeypatch) -> None:
    # `~callbacks.progress_bar` was shown as `callbacks.progress_bar=`, which sets it to nothing.
    monkeypatch.setenv("COLUMNS", "150")
    sweep = tmp_path / "removed, é"
    for name, lr in (("0", "1e-3"), ("1", "3e-3")):
        fake_run(sweep, name, ["~callbacks.progress_bar", f"optimizer.lr={lr}"], metrics(2.0, 2.1),
                 {"status": "finished"})
    report(sweep)
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert [line for line in lines if line.startswith("shared:")] == ["shared: '~callbacks.progress_bar'"]


def test_an_added_setting_is_shown_with_its_plus_and_the_csv_keeps_its_name(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    # `+new.key=1` was shown as `new.key=1`: pasted back, chargpt-train refused it (add it with `+`).
    # A swept addition's column was headed `new.key` likewise. The CSVs keep the setting's name.
    monkeypatch.setenv("COLUMNS", "160")
    sweep = tmp_path / "added, é 🚀"
    for name, seed, other in (("0", 1, "a"), ("1", 2, "a"), ("2", 3, "b")):
        fake_run(sweep, name, ["+new.key=1", f"++other.key={other}", f"seed={seed}"],
                 metrics(2.0 + seed / 10, 2.1), {"status": "finished"})
    report(sweep)
    out = capsys.readouterr().out
    run_table, groups_table = out.split(": mean ± std over seeds")
    (line,) = [line.strip() for line in run_table.splitlines() if line.strip().startswith("shared:")]
    assert shlex.split(line.removeprefix("shared: ")) == ["+new.key=1"]
    for table in (run_table, groups_table):
        header = next(line for line in table.splitlines() if line.startswith("┃"))
        assert "┃ ++other.key ┃" in header
    with (sweep / "report.csv").open(newline="", encoding="utf-8") as f:
        assert {r["run"]: (r["new.key"], r["other.key"]) for r in csv.DictReader(f)} == {
            "0": ("1", "a"), "1": ("1", "a"), "2": ("1", "b")}
    with (sweep / "report_groups.csv").open(newline="", encoding="utf-8") as f:
        assert sorted(r["other.key"] for r in csv.DictReader(f)) == ["a", "b"]


def test_the_csv_tells_a_run_that_removed_a_setting_from_one_that_kept_it(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    # Both were blank in report.csv (and report_groups.csv), where the screen shows the run that kept
    # it as '-'.
    monkeypatch.setenv("COLUMNS", "150")
    sweep = tmp_path / "removed é 🚀"
    fake_run(sweep, "a", ["~callbacks.progress_bar", "optimizer.lr=1e-3"], metrics(2.0, 2.1),
             {"status": "finished"})
    fake_run(sweep, "b", ["optimizer.lr=3e-3"], metrics(2.2, 2.3), {"status": "finished"})
    report(sweep)
    screen = {line.split()[1]: line.split()[3] for line in capsys.readouterr().out.splitlines()
              if line.startswith("│")}
    with (sweep / "report.csv").open(encoding="utf-8") as f:
        csv_rows = {r["run"]: r["~callbacks.progress_bar"] for r in csv.DictReader(f)}
    assert csv_rows == {"a": "", "b": "-"}
    assert screen["b"] == "-" and screen["a"] != "-"
    with (sweep / "report_groups.csv").open(encoding="utf-8") as f:
        groups = {r["optimizer.lr"]: r["~callbacks.progress_bar"] for r in csv.DictReader(f)}
    assert groups == {"1e-3": "", "3e-3": "-"}


def test_the_settings_table_tells_apart_the_settings_that_differ_by_a_removal(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    # Both settings' rows had an empty cell for the removal, so it read as shared: the table on
    # screen showed no column telling the two settings apart, and report_groups.csv said both removed it.
    monkeypatch.setenv("COLUMNS", "160")
    sweep = tmp_path / "removed, é 🚀"
    for name, seed, removed in (("0", "1", True), ("1", "2", True), ("2", "3", False)):
        overrides = [f"seed={seed}", *["~callbacks.progress_bar"] * removed]
        fake_run(sweep, name, overrides, metrics(2.0 + int(seed) / 10, 2.1), {"status": "finished"})
    report(sweep)
    header = next(line for line in capsys.readouterr().out.splitlines() if "┃ seeds" in line)
    assert "~callbacks.progress_bar" in header
    with (sweep / "report_groups.csv").open(newline="", encoding="utf-8") as f:
        cells = {row["seeds"]: row["~callbacks.progress_bar"] for row in csv.DictReader(f)}
    assert cells == {"1,2": "", "3": "-"}


def test_a_swept_setting_with_one_value_so_far_is_a_column_not_shared(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    # Stopped after the first of its learning rates: every run so far has optimizer.lr=0.001, which
    # the footer listed as shared, though the sweep's command sweeps it.
    monkeypatch.setenv("COLUMNS", "150")  # every column on screen, whatever runs the tests
    sweep = tmp_path / "lr"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        basic_sweep_record("'optimizer.lr=1e-3,3e-3', model=tiny, 'seed=1,2'"))
    for name, seed in (("0", 1), ("1", 2)):
        fake_run(sweep, name, ["optimizer.lr=0.001", "model=tiny", f"seed={seed}"], metrics(1.5 + seed, 1.7),
                 {"status": "finished"})
    report(sweep)
    out = capsys.readouterr().out
    run_table, groups_table = out.split(": mean ± std over seeds")
    assert [line.strip() for line in run_table.splitlines() if "shared:" in line] == ["shared: model=tiny"]
    for table in (run_table, groups_table):
        header = next(line for line in table.splitlines() if line.startswith("┃"))
        assert "optimizer.lr" in header and "model" not in header
        assert "│ 1e-3 " in table  # as the sweep typed it
    ranked = sort_rows([run_row(run, sweep) for run in find_runs(sweep)], "best_val_loss")
    labels = [run.label for run in curve_runs(ranked, swept_settings(ranked, sweep))]
    assert labels == ["0: optimizer.lr=0.001, seed=1", "1: optimizer.lr=0.001, seed=2"]


def test_a_search_space_is_swept_too(tmp_path: Path) -> None:
    (tmp_path / "multirun.yaml").write_text(search_record(
        "'+trainer.x=range(3)', 'data.path=\"a,b\"', 'model.n_layer=choice(2,3)', model=tiny",
        optimizer__lr="tag(log, interval(1e-4, 1e-2))"))
    assert swept_by(tmp_path) == {"trainer.x", "model.n_layer", "optimizer.lr"}
    assert swept_by(tmp_path / "elsewhere") == set()
    # A dimension of the space the command fixes to one value leaves the search (Optuna's sweeper).
    (tmp_path / "multirun.yaml").write_text(search_record(
        "model.n_embd=32, 'model.n_layer=choice(2,3)'",
        model__n_embd="choice(64, 128)", model__n_layer="int(interval(2, 5))"))
    assert swept_by(tmp_path) == {"model.n_layer"}


BASIC_SWEEP = basic_sweep_record("'optimizer.lr=1e-3,3e-3,1e-2,3e-2'")


def test_a_sweep_with_failed_jobs_gets_the_command_that_trains_them_again(tmp_path: Path, capsys) -> None:
    # Continuing a sweep trains its failed jobs again (docs/sweeps.md), but the report only gave
    # the command for a sweep with stopped or missing jobs.
    sweep = tmp_path / "lr"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(BASIC_SWEEP)
    for name, lr in enumerate(("1e-3", "3e-3", "1e-2")):
        fake_run(sweep, str(name), [f"optimizer.lr={lr}"], metrics(1.5, 1.5), {"status": "finished"})
    fake_run(sweep, "3", ["optimizer.lr=3e-2"], None, {"status": "failed", "error": "CUDA out of memory"})
    command = f"chargpt-train -m optimizer.lr=1e-3,3e-3,1e-2,3e-2 hydra.sweep.dir={sweep.resolve()}"

    report(sweep)
    assert (f"1 of 4 runs of this sweep failed; continue it, which trains the failed runs again, with: "
            f"{command}\n") in capsys.readouterr().out

    (sweep / "2" / "status.json").write_text(json.dumps({"status": "interrupted"}))
    report(sweep)
    assert (f"this sweep stopped part-way (1 stopped, 1 failed); continue it, which trains the failed "
            f"runs again, with: {command}\n") in capsys.readouterr().out

    report(tmp_path)  # a folder that holds the sweep: its note, by its folder
    assert f"{sweep}: this sweep stopped part-way (1 stopped, 1 failed)" in capsys.readouterr().out
    (sweep / "2" / "status.json").write_text(json.dumps({"status": "finished"}))
    report(tmp_path)
    assert f"{sweep}: 1 of 4 runs of this sweep failed; continue it" in capsys.readouterr().out


def test_a_sweeps_job_that_ran_out_of_memory_is_told_its_own_fix_not_to_train_again_as_it_was(
        tmp_path: Path, capsys) -> None:
    # Continuing the sweep trains such a job again with the batch that ran out of memory: it was
    # counted among the failed jobs the continue command "trains again", as a folder's run was not.
    sweep = tmp_path / "my sweep, é 🚀"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(BASIC_SWEEP)
    for name, lr in enumerate(("1e-3", "3e-3")):
        fake_run(sweep, str(name), [f"optimizer.lr={lr}"], metrics(1.5, 1.5), {"status": "finished"})
    fix = "continue from its last checkpoint with less, e.g. chargpt-train data.batch_size=32 'ckpt_path=RUN'"
    error = ("out of GPU memory (could not allocate 20.00 GiB); data.batch_size=64, model.block_size=64 or "
             f"the model's size (model.n_layer, model.n_embd) is too large for this machine; {fix}")
    fake_run(sweep, "2", ["optimizer.lr=1e-2"], {**metrics(1.7, 1.7), "step": 4},
             {"status": "failed", "error": error})
    (sweep / "2" / "checkpoints").mkdir()
    (sweep / "2" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    fake_run(sweep, "3", ["optimizer.lr=3e-2"], metrics(1.5, 1.5), {"status": "finished"})
    command = f"chargpt-train -m optimizer.lr=1e-3,3e-3,1e-2,3e-2 'hydra.sweep.dir={sweep.resolve()}'"

    report(sweep)
    out = capsys.readouterr().out
    assert ("1 of 4 runs of this sweep ran out of memory; continuing the sweep would train it as it was, "
            f"which runs out again: go on as its error says:\n  run 2: {fix}\n") in out
    assert "continue it, which trains the failed runs again" not in out

    (sweep / "3" / "status.json").write_text(json.dumps({"status": "failed", "error": "a lost node"}))
    report(sweep)
    assert (f"1 of 4 runs of this sweep failed; continue it, which trains the failed runs again, with: "
            f"{command}\n1 of 4 runs of this sweep ran out of memory; continuing the sweep would train it as "
            f"it was, which runs out again: go on as its error says:\n  run 2: {fix}\n"
            ) in capsys.readouterr().out


def _sweep_with_a_stopped_job(tmp_path: Path) -> Path:
    """BASIC_SWEEP's folder `lr` with job 0 finished and job 1 stopped (status interrupted)."""
    sweep = tmp_path / "lr"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(BASIC_SWEEP)
    fake_run(sweep, "0", ["optimizer.lr=1e-3"], metrics(1.5, 1.5), {"status": "finished"})
    fake_run(sweep, "1", ["optimizer.lr=3e-3"], metrics(1.6, 1.6), {"status": "interrupted"})
    return sweep


def _walks_recorded(monkeypatch) -> list[Path]:
    """The folders os.walk is asked to walk from here on."""
    walked: list[Path] = []
    walk = os.walk

    def recorded(top, *args, **kwargs):
        walked.append(Path(top))
        return walk(top, *args, **kwargs)

    monkeypatch.setattr(os, "walk", recorded)
    return walked


def test_the_report_of_a_sweep_walks_its_folder_once(tmp_path: Path, monkeypatch, capsys) -> None:
    # The report walked a sweep's folder three times (its runs, then the runs again for whether it
    # is a sweep and for its note's continue command), listing every job's checkpoints and event
    # files each time.
    sweep = _sweep_with_a_stopped_job(tmp_path)
    walked = _walks_recorded(monkeypatch)

    report(sweep)

    assert walked == [sweep]
    assert "this sweep stopped part-way (1 stopped, 2 of 4 never started); continue it with:" \
        in capsys.readouterr().out


def test_the_report_of_a_folder_of_stopped_sweeps_walks_it_once(tmp_path: Path, monkeypatch, capsys) -> None:
    # Each stopped sweep's note walked that sweep's folder again, for the variables of its continue
    # command, after the folder holding them had been walked for its runs.
    top = tmp_path / "my sweeps, é 😀"
    top.mkdir()
    _sweep_with_a_stopped_job(top).rename(top / "lr a")
    sweeps = [top / "lr a", _sweep_with_a_stopped_job(top)]
    walked = _walks_recorded(monkeypatch)

    report(top)

    assert walked == [top]
    out = capsys.readouterr().out
    for sweep in sweeps:
        assert f"{sweep}: this sweep stopped part-way (1 stopped, 2 of 4 never started); continue it with: " \
            in out, out


def test_a_stopped_sweeps_last_line_walks_its_folder_once(tmp_path: Path, monkeypatch) -> None:
    # Whether the sweep was complete, then its continue command: a walk of its folder each.
    sweep = _sweep_with_a_stopped_job(tmp_path)
    hydra = OmegaConf.merge(recorded_sweep(sweep), {"sweep": {"dir": str(sweep)}})
    walked = _walks_recorded(monkeypatch)

    line = continue_line(hydra)

    assert walked == [sweep]
    assert line == (f"continue the sweep (its finished jobs are kept) with: chargpt-train -m "
                    f"optimizer.lr=1e-3,3e-3,1e-2,3e-2 hydra.sweep.dir={sweep.resolve()}")


def test_a_sweeps_continue_command_sets_the_python_path_its_jobs_imported_from(
    tmp_path: Path, capsys
) -> None:
    # A sweep with a callback of one's own (PYTHONPATH='my code' chargpt-train -m ...) was told to
    # continue without PYTHONPATH: pasted into a new shell, its jobs could not import that code.
    sweep = _sweep_with_a_stopped_job(tmp_path)
    (sweep / "1" / ".hydra" / "environment.json").write_text(json.dumps({"PYTHONPATH": "/home/me/my code"}))

    report(sweep)

    command = f"chargpt-train -m optimizer.lr=1e-3,3e-3,1e-2,3e-2 hydra.sweep.dir={sweep.resolve()}"
    assert f"continue it with: PYTHONPATH='/home/me/my code' {command}\n" in capsys.readouterr().out


def test_a_sweeps_continue_command_sets_what_each_jobs_latest_launch_kept(tmp_path: Path, capsys) -> None:
    # Job 1 first ran with a callback of its own (PYTHONPATH kept), then was resumed without it: the
    # continue command still set the first launch's PYTHONPATH, where the job's resume command did not.
    sweep = _sweep_with_a_stopped_job(tmp_path)
    (sweep / "1" / ".hydra" / "environment.json").write_text(json.dumps({"PYTHONPATH": "/home/me/old code"}))
    resumed = sweep / "1" / ".hydra" / "resume-20261206-120000"
    resumed.mkdir()
    (resumed / "overrides.yaml").write_text("- optimizer.lr=3e-3\n")

    report(sweep)

    command = f"chargpt-train -m optimizer.lr=1e-3,3e-3,1e-2,3e-2 hydra.sweep.dir={sweep.resolve()}"
    assert f"continue it with: {command}\n" in capsys.readouterr().out


def test_printed_commands_set_no_variable_a_run_folder_names_but_chargpt_keeps(
    tmp_path: Path, capsys
) -> None:
    # Run folders from someone else, their environment.json {"touch ~/owned; X": "1"}: the report's
    # continue and resume commands began `touch ~/owned; X=1 chargpt-train ...`, shell code run
    # by whoever pasted them.
    sweep = _sweep_with_a_stopped_job(tmp_path)
    fake_run(tmp_path, "plain", ["optimizer.lr=3e-3"], metrics(1.6, 1.6), {"status": "interrupted"})
    (tmp_path / "plain" / "checkpoints").mkdir()
    (tmp_path / "plain" / "checkpoints" / "last.ckpt").write_bytes(b"")
    for run in (sweep / "1", tmp_path / "plain"):
        (run / ".hydra" / "environment.json").write_text(json.dumps(
            {"touch ~/owned; X": "1", "LD_PRELOAD": "/home/me/evil.so", "PYTHONPATH": "/home/me/my code"}))

    report(tmp_path)

    out = capsys.readouterr().out
    continue_line = out.split("continue it with: ", 1)[1].splitlines()[0]
    resume_line = out.split("resume it from its last checkpoint with:\n", 1)[1].splitlines()[0]
    for printed in (continue_line, resume_line):
        assert shlex.split(printed)[:2] == ["PYTHONPATH=/home/me/my code", "chargpt-train"], printed
    assert "owned" not in out and "LD_PRELOAD" not in out


def test_a_search_in_a_storage_is_not_said_to_train_its_failed_trials_again(tmp_path: Path, capsys) -> None:
    # It continues with new trials in a new folder; a failed trial stays failed in the study.
    sweep = tmp_path / "search"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(BASIC_SWEEP.replace(
        "  sweeper:\n", "  sweeper:\n    storage: sqlite:///optuna.db\n    n_trials: 2\n"))
    fake_run(sweep, "0", ["optimizer.lr=1e-3"], metrics(1.5, 1.5), {"status": "finished"})
    fake_run(sweep, "1", ["optimizer.lr=3e-2"], None, {"status": "failed", "error": "nan"})
    report(sweep)
    assert "continue it" not in capsys.readouterr().out


def test_a_swept_number_is_shown_as_typed_and_grouped_with_the_same_number_typed_otherwise(
    tmp_path: Path, capsys
) -> None:
    # Hydra records a sweep's job `optimizer.lr=1e-3` as `optimizer.lr=0.001`, and 1e9 as
    # 1000000000.0: the table, its CSV and the curves showed those, not what was typed.
    top = tmp_path / "sweeps, é"
    typed = top / "typed"
    typed.mkdir(parents=True)
    (typed / "multirun.yaml").write_text(BASIC_SWEEP.replace("'optimizer.lr=1e-3,3e-3,1e-2,3e-2'",
                                                             "'optimizer.lr=1e-3,1e9', 'seed=1,2'"))
    recorded = {"1e-3": "0.001", "1e9": "1000000000.0"}
    for i, (lr, seed) in enumerate((("1e-3", 1), ("1e-3", 2), ("1e9", 1), ("1e9", 2))):
        fake_run(typed, str(i), [f"optimizer.lr={recorded[lr]}", f"seed={seed}"],
                 metrics(1.5 + i, 1.5 + i), {"status": "finished"})
    # A single run, typed 0.001 (recorded as typed): the same setting as the sweep's 1e-3.
    fake_run(top, "alone", ["optimizer.lr=0.001", "seed=3"], metrics(1.6, 1.6), {"status": "finished"})

    rows = report(top)

    assert {row["run"]: row["optimizer.lr"] for row in rows} == {
        "typed/0": "1e-3", "typed/1": "1e-3", "typed/2": "1e9", "typed/3": "1e9", "alone": "0.001"}
    out = capsys.readouterr().out
    assert "1000000000.0" not in out and "1e9" in out
    with (top / "report.csv").open(newline="", encoding="utf-8") as f:
        assert {row["run"]: row["optimizer.lr"] for row in csv.DictReader(f)}["typed/2"] == "1e9"
    with (top / "report_groups.csv").open(newline="", encoding="utf-8") as f:
        groups = {row["optimizer.lr"]: row["seeds"] for row in csv.DictReader(f)}
    assert groups == {"1e-3": "1,2,3", "1e9": "1,2"}


def test_a_sweeps_job_resumed_apart_with_other_settings_is_given_its_own_resume_command(
        tmp_path: Path, capsys) -> None:
    # A job that ran out of memory, resumed by its error's own command with a smaller batch, and
    # stopped again: continuing the sweep keeps it as it is (it resumed it with the sweep's settings,
    # the batch that ran out), and the report said only to continue the sweep.
    sweep = tmp_path / "my sweep, é"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(BASIC_SWEEP)
    for name, lr in enumerate(("1e-3", "3e-3", "1e-2", "3e-2")):
        fake_run(sweep, str(name), [f"optimizer.lr={lr}"], metrics(1.5, 1.5), {"status": "finished"})
    job = sweep / "2"
    (job / "status.json").write_text(json.dumps({"status": "interrupted"}))
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    resumed = job / ".hydra" / "resume-20260101-120000"
    resumed.mkdir()
    (resumed / "overrides.yaml").write_text(yaml.safe_dump(
        ["optimizer.lr=1e-2", "data.batch_size=32", f"ckpt_path={job.resolve()}"]))

    report(sweep)

    lines = capsys.readouterr().out.split("written: ")[0].splitlines()
    at = lines.index("1 run of this sweep was resumed with other settings than the sweep's; continuing the "
                     "sweep keeps it as it is: resume it with its latest settings with:")
    assert not [line for line in lines if "continue it" in line]  # continuing would run nothing for it
    label, _, command = lines[at + 1].partition("): ")
    assert label == "  run 2 (data.batch_size=default→32"
    assert shlex.split(command) == ["chargpt-train", "optimizer.lr=1e-2", "data.batch_size=32",
                                    f"ckpt_path={job.resolve()}"]


def test_a_searchs_draws_keep_their_trailing_zero_and_one_count_of_digits_in_their_column(
        tmp_path: Path, capsys, monkeypatch) -> None:
    # The draws of a real tiny search (interval(1e-3,1e-2), 4 trials): 0.00339542655833227 was shown
    # `0.0034` and 0.0010966961680404473 `0.0011` beside `0.00438`, as if drawn to fewer digits.
    search = tmp_path / "search"
    search.mkdir()
    (search / "multirun.yaml").write_text(search_record("", optimizer__lr="interval(1e-3,1e-2)"),
                                          encoding="utf-8")
    draws = ["0.004380292407308443", "0.0038449973978825", "0.00339542655833227", "0.0010966961680404473"]
    for i, lr in enumerate(draws):
        fake_run(search, str(i), [f"optimizer.lr={lr}"], metrics(3.6 + i / 100, 3.6 + i / 100),
                 {"status": "finished"})

    monkeypatch.setenv("COLUMNS", "200")
    report(search)

    table = capsys.readouterr().out
    for shown in ("0.00438 ", "0.00384 ", "0.00340 ", "0.00110 "):
        assert shown in table, (shown, table)
    rows = sort_rows([run_row(run, search) for run in find_runs(search)], "best_val_loss")
    labels = [run.label for run in curve_runs(rows, swept_by(search), drawn_by(search))]
    assert labels[2].endswith("optimizer.lr=0.00340"), labels


def test_a_searchs_draws_are_shown_to_the_digits_that_tell_them_apart_and_typed_values_as_typed(
        tmp_path: Path, capsys, monkeypatch) -> None:
    # Optuna records its draws with every digit (0.0013372818287411345): the tables and the curves'
    # labels showed them so, or cut to 6 digits, where 0.00134 reads at a glance.
    search = tmp_path / "search é"
    search.mkdir()
    (search / "multirun.yaml").write_text(search_record(
        "'optimizer.weight_decay=0.0123456789,0.1', 'seed=1,2'",
        optimizer__lr="tag(log, interval(1e-4, 1e-2))", model__dropout="interval(0.0, 0.3)"),
        encoding="utf-8")
    draws = [("0.0013372818287411345", "0.24971121092039475", "0.0123456789"),
             ("0.0013398741962201", "0.1", "0.1"), ("0.004093127459328714", "0.2", "0.1")]
    for i, (lr, dropout, decay) in enumerate(draws):
        for seed in (1, 2):
            fake_run(search, f"{i}{seed}", [f"optimizer.lr={lr}", f"model.dropout={dropout}",
                                            f"optimizer.weight_decay={decay}", f"seed={seed}"],
                     metrics(1.5 + i + seed / 10, 1.5 + i), {"status": "finished"})

    monkeypatch.setenv("COLUMNS", "200")  # every setting shown
    report(search)

    out = capsys.readouterr().out
    runs_table, groups_table = out.split("mean ± std over seeds")
    for table in (runs_table, groups_table):
        # 3 digits, or 4 in each of a column's draws where 3 would make two alike (0.00134 twice);
        # typed values as typed.
        for shown in ("0.001337 ", "0.001340 ", "0.004093 ", "0.250 ", "0.1 ", "0.2 ", "0.0123456789"):
            assert shown in table, (shown, table)
        assert "0.0013372" not in table and "0.249" not in table and "0.00409 " not in table
    with (search / "report.csv").open(newline="", encoding="utf-8") as f:  # every digit kept
        assert {row["optimizer.lr"] for row in csv.DictReader(f)} == {lr for lr, _, _ in draws}
    rows = sort_rows([run_row(run, search) for run in find_runs(search)], "best_val_loss")
    labels = [run.label for run in curve_runs(rows, swept_by(search), drawn_by(search))]
    assert "optimizer.lr=0.001337, model.dropout=0.250, optimizer.weight_decay=0.0123456789" in labels[0]
