"""A sweep stopped part-way goes on with its own command: finished jobs kept, the stopped one
resumed exactly, the ones that never started (or kept no checkpoint) trained."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import OmegaConf

from chargpt.checkpoint_step import checkpoint_step
from chargpt.cli import train as train_cli
from chargpt.run_layout import launch_cwd, read_overrides
from chargpt.runs.report import report
from chargpt.runs.resume import recorded_resume_command, resume_command
from chargpt.runs.status import write_status
from chargpt.runs.sweep_outcome import FailedSweep
from chargpt.runs.sweep_record import continue_command
from chargpt.training import build as training_build
from conftest import (
    bare_train_args,
    callback_of_ones_own,
    offline_default_corpus_in,
    on_the_default_corpus,
    run_main,
    signal_at_step_end,
    write_corpus,
)


def _files(job: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in job.rglob("*") if p.is_file() and p.name != "train.log"}


def _weights(job: Path) -> dict[str, torch.Tensor]:
    return torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.slow  # two sweeps of four tiny jobs
def test_a_stopped_sweep_continues_where_each_job_stopped(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep é"
    args = [
        "-m",
        *bare_train_args(
            corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=4", "trainer.val_check_interval=2",
            # Every validation's checkpoint is kept: best-000002.ckpt is a mid-run checkpoint.
            "callbacks.model_checkpoint.save_top_k=-1", "optimizer.lr=1e-3,2e-3,3e-3,4e-3",
            "sample.prompt=Hi, there",
        ),
    ]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    kept = _files(sweep / "0")
    uninterrupted = {n: _weights(sweep / str(n)) for n in (1, 2, 3)}
    first_config = (sweep / "1" / ".hydra" / "config.yaml").read_bytes()

    # What a Ctrl-C during job 1 leaves: job 1 interrupted at step 2 with its checkpoint, jobs 2
    # and 3 never started. Job 3 is as a job stopped before its first checkpoint leaves it.
    shutil.copy(sweep / "1" / "checkpoints" / "best-000002.ckpt", sweep / "1" / "checkpoints" / "last.ckpt")
    (sweep / "1" / "checkpoints" / "best-000004.ckpt").unlink()  # (a later best says the run went on)
    write_status(sweep / "1", "interrupted")
    shutil.rmtree(sweep / "2")
    for ckpt in (sweep / "3" / "checkpoints").glob("*.ckpt"):
        ckpt.unlink()
    write_status(sweep / "3", "interrupted")

    # The command the interruption prints is the sweep's own, in its own folder.
    expected = [a for a in args if not a.startswith("hydra.sweep.dir=")]
    assert continue_command(sweep) == shlex.join(["chargpt-train", *expected, f"hydra.sweep.dir={sweep}"])

    # The report says what is missing, and how to go on.
    capsys.readouterr()
    report(sweep)
    note = "this sweep stopped part-way (2 stopped, 1 of 4 never started); continue it with: "
    assert note + continue_command(sweep) in capsys.readouterr().out.splitlines()

    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    report(sweep)
    assert "stopped part-way" not in capsys.readouterr().out
    assert _files(sweep / "0") == kept  # finished: not trained again, nothing rewritten
    assert not list((sweep / "0" / ".hydra").glob("resume-*"))
    for n in (1, 2, 3):
        assert json.loads((sweep / str(n) / "status.json").read_text())["status"] == "finished"
        weights = _weights(sweep / str(n))
        # Resumed from step 2 (job 1), trained anew (2, 3): the weights of the uninterrupted sweep.
        assert weights.keys() == uninterrupted[n].keys()
        assert all(torch.equal(weights[k], uninterrupted[n][k]) for k in weights), n
    assert (sweep / "1" / ".hydra" / "config.yaml").read_bytes() == first_config  # the first config kept
    assert len(list((sweep / "1" / ".hydra").glob("resume-*/overrides.yaml"))) == 1
    assert not list((sweep / "2" / ".hydra").glob("resume-*"))  # a new job's config is its first


@pytest.mark.slow  # a sweep of two tiny jobs, twice
def test_a_signal_after_a_jobs_last_step_stops_the_sweep(tmp_path: Path, monkeypatch, capsys) -> None:
    # Ctrl-C while a job validates and saves after its last step: that job finishes, but the sweep
    # must stop there (it went on to its other jobs), and say how to continue it.
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", "seed=1,2")]
    unsignalled = signal_at_step_end(monkeypatch, 2, when=lambda: not (sweep / "1").exists())  # job 0's
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 130, err
    assert "stopped by SIGINT after this job's last step: it finished (no closing sample), and the sweep " \
        "stops here" in err
    assert f"continue the sweep (its finished jobs are kept) with: {continue_command(sweep)}" in err
    assert json.loads((sweep / "0" / "status.json").read_text())["status"] == "finished"
    assert not (sweep / "1").exists()
    ended = (sweep / "0" / "train.log").read_text().splitlines()[-1]
    assert ended.endswith("; its closing sample skipped (Ctrl-C or a signal)"), ended

    unsignalled()
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    assert json.loads((sweep / "1" / "status.json").read_text())["status"] == "finished"


@pytest.mark.slow  # a sweep of two tiny jobs, stopped in its first
def test_the_signal_line_of_a_sweeps_first_job_continues_it_with_its_python_path(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    # PYTHONPATH='my code' chargpt-train -m ... +callbacks.mine._target_=...: Ctrl-C in the first
    # job said to continue the sweep without PYTHONPATH (no job had recorded it yet), so the pasted
    # command could not import the callback; the lines after it said it.
    mine = callback_of_ones_own(tmp_path, monkeypatch, "my_sweep_callback")
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=4",
                                   "trainer.val_check_interval=2", "seed=1,2",
                                   "+callbacks.mine._target_=my_sweep_callback.Mine")]
    signal_at_step_end(monkeypatch, 1)
    try:
        code, _, err = run_main(train_cli.main, args, capsys)
    finally:
        sys.modules.pop("my_sweep_callback", None)
    assert code == 130, err
    received = next(line for line in err.splitlines() if line.startswith("SIGINT received: "))
    command = received.split("then continue the sweep (its finished jobs are kept) with: ", 1)[1].rstrip(")")
    assert shlex.split(command)[:3] == [f"PYTHONPATH={mine}", "chargpt-train", "-m"]
    assert command == continue_command(sweep)


@pytest.mark.slow  # a sweep of two tiny jobs, stopped in each case
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("where", ["closing sample", "build", "between jobs"])
def test_a_signal_outside_a_jobs_training_stops_the_sweep_with_its_continue_command(
    signum, where, tmp_path: Path, monkeypatch, capsys
) -> None:
    # Outside the training loop there is nothing to checkpoint, but the sweep still has jobs left:
    # the command that continues it is printed, as a signal during training prints it. Between
    # jobs (Hydra making the next one ready) it said `interrupted` alone.
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", "seed=1,2", "sample.max_new_tokens=5")]
    owner, name = {"closing sample": (train_cli, "print_sample"), "build": (training_build, "build_run"),
                   "between jobs": (ConfigLoaderImpl, "load_sweep_config")}[where]
    original = getattr(owner, name)

    def signalled(*a, **k):
        # Between jobs: as Hydra composes the second job's config, the first one done.
        if owner is not ConfigLoaderImpl or (sweep / "0" / "status.json").is_file():
            os.kill(os.getpid(), signum)
        return original(*a, **k)

    monkeypatch.setattr(owner, name, signalled)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 128 + signum, err
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    command = continue_command(sweep)
    assert err.endswith(f"\n{word}\ncontinue the sweep (its finished jobs are kept) with: {command}\n")
    status = "interrupted" if where == "build" else "finished"
    assert json.loads((sweep / "0" / "status.json").read_text())["status"] == status
    assert not (sweep / "1").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler of the job is gone

    monkeypatch.setattr(owner, name, original)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "finished"


@pytest.mark.slow  # a sweep of two tiny jobs, stopped, then continued
@pytest.mark.parametrize("sweep_of", [["seed=1,2"], ["hparams_search=optuna", "hydra.sweeper.n_trials=2"]],
                         ids=["basic sweep", "search"])
def test_a_disk_that_fills_between_jobs_stops_the_sweep_with_its_continue_command(
    sweep_of: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    # Hydra writes each job's config before the job starts, outside every job: a disk full by then
    # was Hydra's traceback and exit 1, with no word of how to go on.
    import errno

    from hydra.core import utils as hydra_utils

    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep, é"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", *sweep_of)]
    original = hydra_utils._save_config

    def no_room_for_the_second_job(cfg, filename, output_dir):
        if Path(output_dir).parent.name == "1":
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(output_dir) / filename))
        return original(cfg, filename, output_dir)

    monkeypatch.setattr(hydra_utils, "_save_config", no_room_for_the_second_job)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    command = continue_command(sweep)
    assert err.splitlines()[-1] == (
        f"error: cannot write {sweep / '1' / '.hydra' / 'config.yaml'} (No space left on device); free some "
        f"space there, then continue the sweep (its finished jobs are kept) with: {command}")

    monkeypatch.setattr(hydra_utils, "_save_config", original)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "finished"


@pytest.mark.slow  # a sweep of two tiny jobs, stopped, refused, then continued
@pytest.mark.parametrize("sweep_of", [["seed=1,2"], ["hparams_search=optuna", "hydra.sweeper.n_trials=2"]],
                         ids=["basic sweep", "search"])
def test_a_sweep_stopped_before_any_job_trained_continues_only_with_its_own_settings(
    sweep_of: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    # Its only job stopped while being built, a sweep's folder held no run to compare with: the
    # command with trainer.max_steps=3 for 2 was taken as its continuation, and recorded as the sweep.
    if "hparams_search=optuna" in sweep_of:
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", *sweep_of)]
    build = training_build.build_run

    def stopped(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        return build(*a, **k)

    monkeypatch.setattr(training_build, "build_run", stopped)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 130, err
    monkeypatch.setattr(training_build, "build_run", build)
    command, recorded = continue_command(sweep), (sweep / "multirun.yaml").read_bytes()

    other = [a if a != "trainer.max_steps=2" else "trainer.max_steps=3" for a in args]
    code, out, err = run_main(train_cli.main, other, capsys)
    assert code == 2 and out == "", err
    assert err.splitlines() == [
        f"error: the sweep directory {sweep} already holds an earlier sweep (no job of it trained yet) with "
        "other settings (trainer.max_steps: 2 in that sweep, 3 here); pick a new hydra.sweep.dir, or "
        f"continue that sweep with its own command: {command}"]
    assert (sweep / "multirun.yaml").read_bytes() == recorded
    assert not (sweep / "0" / "checkpoints").exists()

    code, _, err = run_main(train_cli.main, shlex.split(command)[1:], capsys)
    assert code == 0, err
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "finished"
        assert torch.load(sweep / job / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.slow  # a sweep of two tiny jobs
def test_a_sweep_whose_every_job_failed_starts_over_with_its_setting_corrected(tmp_path: Path, capsys):
    # Each job failed on a setting, none trained: the corrected command was refused as another
    # sweep's, and advised the failing command as the continuation. (A context longer than the text
    # fails each job as its text is read; a misspelt setting is refused before the sweep starts.)
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep"
    common = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                     "trainer.val_check_interval=2", "seed=1,2")]
    code, _, err = run_main(train_cli.main, [*common, "model.block_size=5000"], capsys)
    assert code != 0
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "failed"

    code, _, err = run_main(train_cli.main, [*common, "model.block_size=8"], capsys)
    assert code == 0, err
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "finished"
    assert "model.block_size=8" in (sweep / "multirun.yaml").read_text()


@pytest.mark.slow  # a sweep of two tiny jobs
@pytest.mark.parametrize("failed", [False, True], ids=["complete", "a job failed"])
def test_a_signal_as_hydra_closes_a_finished_sweep_says_it_is_complete(
    failed: bool, tmp_path: Path, monkeypatch, capsys
) -> None:
    # After the last job, as Hydra closed the sweep, a Ctrl-C printed a continue command that had
    # nothing left to run.
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep é"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", "seed=1,2")]
    closing = FailedSweep.on_multirun_end

    def signalled(*a, **k):
        if failed:  # as a job that failed leaves it: a continuation trains it again
            write_status(sweep / "1", "failed", error="out of memory")
        os.kill(os.getpid(), signal.SIGINT)
        return closing(*a, **k)

    monkeypatch.setattr(FailedSweep, "on_multirun_end", signalled)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 130, err
    said = (f"continue the sweep (its finished jobs are kept) with: {continue_command(sweep)}" if failed else
            f"the sweep was complete: its 2 jobs had finished, and nothing is left to continue "
            f"(chargpt-report '{sweep}' shows them)")
    assert err.endswith(f"\ninterrupted\n{said}\n")


@pytest.mark.slow  # a search of two tiny trials
def test_a_search_over_data_files_hands_each_trial_its_file(tmp_path: Path, monkeypatch, capsys) -> None:
    # Optuna's sweeper wrote a trial's override bare, data.path=café.txt, which its job could not
    # read: such a search was refused up front. Its names are now handed over quoted.
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    write_corpus(tmp_path / "café.txt")
    write_corpus(tmp_path / "b, c.txt", alphabet="ABC abc\n")
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "search"
    settings = bare_train_args(Path("unused"), None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                               "trainer.val_check_interval=2", "hydra/sweeper=optuna",
                               "hydra.sweeper.n_trials=2")
    swept = "data.path=choice(café.txt,'b, c.txt')"
    args = ["-m", *[swept if a.startswith("data.path=") else a for a in settings]]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    trained_on = [OmegaConf.load(sweep / job / ".hydra" / "config.yaml").data.path for job in ("0", "1")]
    assert set(trained_on) <= {"café.txt", "b, c.txt"}
    assert all(json.loads((sweep / job / "status.json").read_text())["status"] == "finished" for job in "01")
    # The study holds the names themselves: its best trial names the file as it is called.
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_params["data.path"] in trained_on
    report(sweep)
    table = capsys.readouterr().out
    # Named as they are, not as quoted for the jobs ('café.txt'): the report's own words (the best's
    # group) hold a quote where its groups are compared, so the names are looked for quoted.
    assert all(name in table and f"'{name}" not in table for name in trained_on)


@pytest.mark.slow  # a sweep of two tiny jobs, continued
def test_a_sweep_over_data_files_trains_each_and_goes_on_as_printed(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    # `-m data.path=a.txt,b.txt` was one job, failed ('one path, commas included'), and
    # choice(...) was taken as a file name: there was no sweep over one's own files. Hydra's sweeper
    # handed café.txt to its job unquoted, unreadable: such a sweep was refused.
    texts = tmp_path / "my texts"
    texts.mkdir()
    write_corpus(texts / "café.txt")
    write_corpus(texts / "b, c.txt", alphabet="ABC abc\n")
    monkeypatch.chdir(tmp_path)  # the files named from where the sweep is launched, as typed
    # The report's lines whole, as into a file: a test worker's COLUMNS=80 wrapped the long note.
    monkeypatch.delenv("COLUMNS", raising=False)
    sweep = tmp_path / "sweep"
    settings = bare_train_args(Path("unused"), None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                               "trainer.val_check_interval=2")
    swept = "data.path=choice(my texts/café.txt,'my texts/b, c.txt')"
    args = ["-m", *[swept if a.startswith("data.path=") else a for a in settings]]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    trained_on = ["my texts/café.txt", "my texts/b, c.txt"]
    for job, text in zip(("0", "1"), trained_on, strict=True):
        assert OmegaConf.load(sweep / job / ".hydra" / "config.yaml").data.path == text
    report(sweep)
    table = capsys.readouterr().out
    shown = ("│ …/café.txt ", "│ …/b, c.txt ", "…/ in data.path: my texts/")
    assert all(text in table for text in shown), table
    # A job's resume command names its own file, absolute: one word, commas and spaces kept.
    job = sweep / "1"
    recorded = read_overrides(job / ".hydra" / "overrides.yaml")
    command = resume_command(job, recorded, launch_cwd(job / ".hydra"))
    assert f"data.path={texts}/b, c.txt" in shlex.split(command)

    # Stopped before its second job: the continue command, followed as printed from elsewhere,
    # trains it on its file and keeps the first.
    shutil.rmtree(job)
    kept = _files(sweep / "0")
    command = continue_command(sweep)
    assert f"'data.path=choice('\"'\"'{texts}/café.txt'\"'\"','\"'\"'{texts}/b, c.txt'\"'\"')'" in command
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, _, err = run_main(train_cli.main, shlex.split(command)[1:], capsys)
    assert code == 0, err
    assert _files(sweep / "0") == kept
    assert OmegaConf.load(job / ".hydra" / "config.yaml").data.path == f"{texts}/b, c.txt"
    assert json.loads((job / "status.json").read_text())["status"] == "finished"
    # The job the continuation started names its file absolute, the first as typed: the report names
    # both from the folder they share.
    report(sweep)
    table = capsys.readouterr().out
    shown = ("│ …/café.txt ", "│ …/b, c.txt ", f"…/ in data.path: {texts}/")
    assert all(text in table for text in shown), table  # (the table, when it is not)


@pytest.mark.slow  # a sweep, refused runs into its folder and its continuation: ~2 s
def test_a_single_run_goes_into_a_sweeps_folder_only_as_one_of_its_jobs(tmp_path: Path, capsys) -> None:
    # A run launched alone into a sweep's folder was taken for a job: the report listed it (under
    # the job's settings once the sweep's continuation had reached that folder) and the
    # continuation stopped there, after training the jobs before it.
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep é"
    settings = bare_train_args(corpus, None, "trainer.max_steps=2", "trainer.val_check_interval=2")
    args = ["-m", *settings, "seed=1,2", f"hydra.sweep.dir={sweep}"]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    shutil.rmtree(sweep / "1")  # as a sweep stopped before its second job leaves it
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*") if p.name != "train.log")

    for folder, refusal in ((sweep, f"hydra.run.dir={sweep} is a sweep's folder, where a run would be taken"),
                            (sweep / "1", f"hydra.run.dir={sweep / '1'} is inside the sweep folder {sweep}")):
        code, _, err = run_main(train_cli.main, [*settings, "seed=7", f"hydra.run.dir={folder}"], capsys)
        assert code == 2 and err.startswith(f"error: {refusal}") and len(err.strip().splitlines()) == 1, err
    assert f"or continue the sweep with: {continue_command(sweep)}" in err
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*") if p.name != "train.log") == before

    # A job's own command still resumes it in its folder.
    code, _, err = run_main(train_cli.main, [*settings, "seed=1", "trainer.max_steps=3",
                                             f"ckpt_path={sweep / '0'}"], capsys)
    assert code == 0, err

    # A single run put there by hand: the continuation names it, and leaves nothing in its folder.
    alone = tmp_path / "alone"
    code, _, err = run_main(train_cli.main, [*settings, "seed=7", f"hydra.run.dir={alone}"], capsys)
    assert code == 0, err
    alone.rename(sweep / "1")
    stray = _files(sweep / "1")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 2, err
    assert f"error: the job folder {sweep / '1'} holds a single run (" in err
    assert "move that run out of the sweep's folder, then continue the sweep again" in err
    assert _files(sweep / "1") == stray


@pytest.mark.slow  # a sweep of two tiny jobs, continued twice
def test_a_sweep_named_with_relative_files_continues_from_anywhere(tmp_path: Path, monkeypatch,
                                                                   capsys) -> None:
    # The command an interruption prints names the sweep's files from where it was launched, as a
    # run's resume command does: typed from another folder, it reads the same text. The sweep's
    # relative command typed there names another file, and is refused as another sweep.
    launched_in, elsewhere = tmp_path / "my texts", tmp_path / "elsewhere"
    launched_in.mkdir()
    elsewhere.mkdir()
    write_corpus(launched_in / "small é.txt")
    sweep = tmp_path / "sweep"
    monkeypatch.chdir(launched_in)
    args = ["-m", *bare_train_args(Path("small é.txt"), None, f"hydra.sweep.dir={sweep}",
                                   "trainer.max_steps=2", "seed=1,2")]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    shutil.rmtree(sweep / "1")  # as a sweep stopped before its second job leaves it

    monkeypatch.chdir(elsewhere)
    command = shlex.split(continue_command(sweep))
    assert f"data.path={launched_in / 'small é.txt'}" in command
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 2 and "already holds runs of an earlier sweep (0) with other settings" in err, err
    code, _, err = run_main(train_cli.main, command[1:], capsys)
    assert code == 0, err
    assert json.loads((sweep / "1" / "status.json").read_text())["status"] == "finished"


@pytest.mark.slow  # a sweep of two tiny jobs, continued once
def test_a_sweep_continued_from_another_folder_reads_its_data_directory(tmp_path: Path, monkeypatch,
                                                                      capsys) -> None:
    # Without CHARGPT_DATA_DIR the default corpus is ./data: the jobs of a sweep continued from
    # another folder that had not started looked for it there (and downloaded it; offline, failed).
    launched_in, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    offline_default_corpus_in(launched_in, monkeypatch)
    elsewhere.mkdir()
    sweep = tmp_path / "sweep"
    args = ["-m", *on_the_default_corpus(bare_train_args(Path("unused"), None, f"hydra.sweep.dir={sweep}",
                                                         "trainer.max_steps=2", "seed=1,2"))]
    monkeypatch.chdir(launched_in)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    shutil.rmtree(sweep / "1")  # as a sweep stopped before its second job leaves it

    monkeypatch.chdir(elsewhere)
    code, _, err = run_main(train_cli.main, shlex.split(continue_command(sweep))[1:], capsys)
    assert code == 0, err
    assert json.loads((sweep / "1" / "status.json").read_text())["status"] == "finished"
    assert not (elsewhere / "data").exists()
    assert f"data_dir: {launched_in / 'data'}" in (sweep / "1" / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow  # a sweep of two tiny jobs, one resumed apart, then the sweep continued
def test_a_job_resumed_apart_past_the_sweeps_end_is_kept_as_it_is(tmp_path: Path, capsys) -> None:
    # Job 1, resumed apart with more steps (trainer.max_steps=6 for the sweep's 4) and stopped there,
    # was resumed by the sweep's continuation with the sweep's 4 steps: it trained nothing and was
    # recorded finished, its own 6 steps (and the report's command to resume it) forgotten.
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "my runs é 🚀"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=4",
                                   "trainer.val_check_interval=2", "seed=1,2")]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    job = sweep / "1"
    words = shlex.split(recorded_resume_command(job))  # (after any VARIABLE=value it sets)
    own = [w for w in words[words.index("chargpt-train") + 1:] if not w.startswith("trainer.max_steps=")]
    code, _, err = run_main(train_cli.main, [*own, "trainer.max_steps=6"], capsys)
    assert code == 0, err
    write_status(job, "interrupted")  # as a Ctrl-C of that run after its step-6 checkpoint leaves it
    before = _files(job)

    code, out, err = run_main(train_cli.main, args, capsys)

    assert code == 0, err
    assert _files(job) == before  # not resumed, not recorded finished: its files as they were
    assert len(list((job / ".hydra").glob("resume-*"))) == 1  # the apart run's only
    assert checkpoint_step(job / "checkpoints" / "last.ckpt") == 6
    said = [line for line in (out + err).splitlines() if "past this sweep's trainer.max_steps=4" in line]
    assert len(said) == 1 and "stopped at step 6" in said[0] and recorded_resume_command(job) in said[0]
    report(sweep)  # and the report says what continuing the sweep does with it
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("1 run of this sweep was resumed with other settings than the sweep's; continuing the "
                     "sweep keeps it as it is: resume it with its latest settings with:")
    assert lines[at + 1].endswith(recorded_resume_command(job)) and "trainer.max_steps=4→6" in lines[at + 1]
    assert not [line for line in lines if "stopped part-way" in line]  # continuing would run nothing


@pytest.mark.slow  # a sweep of two tiny jobs, one resumed apart and stopped, then the sweep continued
def test_a_job_resumed_apart_and_stopped_before_the_sweeps_end_is_kept_as_it_is(
        tmp_path: Path, monkeypatch, capsys) -> None:
    # Job 1 stopped at step 2, resumed apart with a smaller batch (an out-of-memory error's fix) and
    # stopped again at step 4 of the sweep's 6: continuing the sweep resumed it with the sweep's own
    # batch, the one that ran out, its own settings forgotten (one kept past the sweep's end was not).
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "my runs é 🚀"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=6",
                                   "trainer.val_check_interval=2", "callbacks.model_checkpoint.save_top_k=-1",
                                   "seed=1,2")]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    job = sweep / "1"
    # What a Ctrl-C of the sweep at job 1's step 2 leaves.
    shutil.copy(job / "checkpoints" / "best-000002.ckpt", job / "checkpoints" / "last.ckpt")
    for later in ("best-000004.ckpt", "best-000006.ckpt"):
        (job / "checkpoints" / later).unlink()
    write_status(job, "interrupted")
    words = shlex.split(recorded_resume_command(job))  # (after any VARIABLE=value it sets)
    own = [w for w in words[words.index("chargpt-train") + 1:] if not w.startswith("data.batch_size=")]
    unsignalled = signal_at_step_end(monkeypatch, 4)
    code, _, err = run_main(train_cli.main, [*own, "data.batch_size=2"], capsys)
    assert code == 130, err
    unsignalled()
    assert checkpoint_step(job / "checkpoints" / "last.ckpt") == 4
    before = _files(job)

    code, out, err = run_main(train_cli.main, args, capsys)

    assert code == 0, err
    assert _files(job) == before  # not resumed with the sweep's batch: its files as they were
    said = [line for line in (out + err).splitlines() if "resumed apart with other settings" in line]
    assert len(said) == 1, out + err
    assert "(data.batch_size=4→2), it stopped at step 4: kept as it is" in said[0]
    assert said[0].endswith(recorded_resume_command(job))
    assert "data.batch_size=2" in recorded_resume_command(job)
    report(sweep)
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("1 run of this sweep was resumed with other settings than the sweep's; continuing the "
                     "sweep keeps it as it is: resume it with its latest settings with:")
    assert lines[at + 1] == f"  run 1 (data.batch_size=4→2): {recorded_resume_command(job)}"
    assert not [line for line in lines if "stopped part-way" in line]  # continuing would run nothing


@pytest.mark.slow  # a sweep of two tiny jobs, refused, one job resumed apart, the sweep continued
def test_a_job_holding_only_an_older_best_is_not_started_over_beside_it(tmp_path: Path, capsys) -> None:
    # Trained without callbacks.last_checkpoint, job 0 was killed after a validation that did not improve
    # on its best (monitor=step mode=min: none does): the sweep's continuation started it over beside
    # that best, the new run's best-000002-v1.ckpt written by the old run's best-000002.ckpt.
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "my runs é 🚀"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=4",
                                   "trainer.val_check_interval=2", "~callbacks.last_checkpoint",
                                   "callbacks.model_checkpoint.monitor=step",
                                   "callbacks.model_checkpoint.mode=min", "seed=1,2")]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    job = sweep / "0"
    best = job / "checkpoints" / "best-000002.ckpt"
    assert [p.name for p in best.parent.iterdir()] == [best.name]
    write_status(job, status="running", pid=2**22 + 12345)  # its process gone: killed
    before = _files(job)

    code, out, err = run_main(train_cli.main, args, capsys)

    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: the run directory {job} already holds a run whose newest checkpoint, "
                               "checkpoints/best-000002.ckpt, holds step 2 where the run reached step 4"), err
    assert lines[0].endswith(f"{shlex.quote(f'ckpt_path={best}')}, then continue the sweep (its finished "
                             "jobs are kept), or pick a new hydra.sweep.dir"), err
    assert _files(job) == before and not list((job / ".hydra").glob("resume-*"))  # nothing written
    # The command it names goes on from that best in the job's folder; the sweep then keeps it.
    command = shlex.split(lines[0].partition(" from that best with ")[2].partition(", then continue")[0])
    code, _, err = run_main(train_cli.main, command[1:], capsys)
    assert code == 0, err
    code, out, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    assert "finished in the earlier launch" in out + err
    assert json.loads((job / "metrics.json").read_text())["step"] == 4
    assert not list((job / "checkpoints").glob("*-v1.ckpt"))


@pytest.mark.slow  # a search of two tiny trials, stopped, then continued
@pytest.mark.parametrize("sampler", [[], ["hydra/sweeper/sampler=random"]], ids=["tpe", "random"])
def test_a_search_of_optunas_own_sampler_continues_as_printed(
    sampler: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    # hydra/sweeper=optuna alone gives its sampler no seed: the continue command that its stop
    # printed drew other trials, refused in the job folder that held the first one's run.
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "my runs é 🚀"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", "hydra/sweeper=optuna", *sampler,
                                   "hydra.sweeper.n_trials=2", "optimizer.lr=interval(1e-3,1e-2)")]
    build = training_build.build_run

    def stopped_after_a_step(*a, **k):
        built = build(*a, **k)
        monkeypatch.setattr(training_build, "build_run", build)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the first trial: it stops at its checkpoint
        return built

    monkeypatch.setattr(training_build, "build_run", stopped_after_a_step)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 130, err
    first = read_overrides(sweep / "0" / ".hydra" / "overrides.yaml")
    printed = err.splitlines()[-1]
    assert printed.startswith("or continue the whole sweep") or printed.startswith("continue the sweep"), err
    command = printed.partition(" with: ")[2]

    code, _, err = run_main(train_cli.main, shlex.split(command)[1:], capsys)
    assert code == 0, err
    assert read_overrides(sweep / "0" / ".hydra" / "overrides.yaml") == first
    for job in ("0", "1"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "finished"
    # The seed the trials were drawn with is the run's, recorded with the sweep.
    assert OmegaConf.load(sweep / "multirun.yaml").hydra.sweeper.sampler.seed == 1337


@pytest.mark.slow  # a search of one tiny trial, then its continuation refused
def test_a_search_drawn_unseeded_is_refused_up_front_naming_what_is_kept(tmp_path: Path, capsys) -> None:
    # A search launched before its sampler took the run's seed records `seed: null`: its printed
    # continue command drew other trials, refused in the first job's folder once the sweep's record
    # there had been replaced by the seeded one (so a second try no longer knew it).
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "my runs é 🚀"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", "hydra/sweeper=optuna",
                                   "hydra.sweeper.n_trials=1", "optimizer.lr=interval(1e-3,1e-2)")]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    # As such a search left its folder: no seed recorded, and its trial drawn other than seed 1337 draws.
    record = OmegaConf.load(sweep / "multirun.yaml")
    record.hydra.sweeper.sampler.seed = None
    OmegaConf.save(record, sweep / "multirun.yaml")
    overrides = sweep / "0" / ".hydra" / "overrides.yaml"
    drawn = [o if not o.startswith("optimizer.lr=") else "optimizer.lr=0.005"
             for o in read_overrides(overrides)]
    OmegaConf.save(OmegaConf.create(drawn), overrides)
    before = {**_files(sweep / "0"), sweep / "multirun.yaml": (sweep / "multirun.yaml").read_bytes()}

    code, _, err = run_main(train_cli.main, args, capsys)
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == (
        f"error: the search in {sweep} cannot be continued: its sampler had no seed (its multirun.yaml "
        "records hydra.sweeper.sampler.seed: null, as a search launched before chargpt seeded it does), so "
        "no command draws its trials again; its finished trials stay in their folders (chargpt-report "
        f"{shlex.quote(str(sweep))} shows them); run the search again with a new hydra.sweep.dir (its "
        "sampler now takes seed=1337, so a stop there continues as printed)"), err
    assert {**_files(sweep / "0"), sweep / "multirun.yaml": (sweep / "multirun.yaml").read_bytes()} == before
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0"]
    # What it says: the same command with a new folder runs, seeded.
    again = [a if not a.startswith("hydra.sweep.dir=") else f"hydra.sweep.dir={tmp_path / 'again'}"
             for a in args]
    code, _, err = run_main(train_cli.main, again, capsys)
    assert code == 0, err


@pytest.mark.slow  # a grid search of three tiny trials, stopped, then continued
def test_a_stopped_grid_search_continues_as_printed(tmp_path: Path, monkeypatch, capsys) -> None:
    # Optuna's GridSampler picked each trial's point with an unseeded random.choice: the continue
    # command ran the grid in another order, refused in the first job's folder ('other settings').
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "my runs é 🚀"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", "hydra/sweeper=optuna",
                                   "hydra/sweeper/sampler=grid", "optimizer.lr=choice(3e-3,1e-3,2e-3)")]
    build = training_build.build_run

    def stopped_after_a_step(*a, **k):
        built = build(*a, **k)
        monkeypatch.setattr(training_build, "build_run", build)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the first trial: it stops at its checkpoint
        return built

    monkeypatch.setattr(training_build, "build_run", stopped_after_a_step)
    random.seed(2)  # (random seeded otherwise for each launch: Optuna's old pick came from it)
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 130, err
    command = err.splitlines()[-1].partition(" with: ")[2]

    random.seed(0)
    code, _, err = run_main(train_cli.main, shlex.split(command)[1:], capsys)
    assert code == 0, err
    # The grid's points in its order, in the jobs' folders they were first given.
    lrs = [[o for o in read_overrides(sweep / job / ".hydra" / "overrides.yaml")
            if o.startswith("optimizer.lr=")] for job in ("0", "1", "2")]
    assert lrs == [["optimizer.lr=0.001"], ["optimizer.lr=0.002"], ["optimizer.lr=0.003"]]
    for job in ("0", "1", "2"):
        assert json.loads((sweep / job / "status.json").read_text())["status"] == "finished"
        assert json.loads((sweep / job / "metrics.json").read_text())["step"] == 2
