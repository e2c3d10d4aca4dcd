"""Run directories: two launches never share one, a live run's directory is refused, a dead run's
is taken over, and a failed or interrupted start leaves nothing behind."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.conf import HydraConf
from hydra.core.utils import setup_globals
from omegaconf import OmegaConf

from chargpt.cli.train import main as train_main
from chargpt.data.corpus import sha256_of
from chargpt.data.sources.file_hashes import HASHES_FILE
from chargpt.runs import claims
from chargpt.runs.claims import LOCK_FILE, RunDirInUse, claim_named, release_claims
from chargpt.runs.directory import RunDirGuard, check_not_in_sweep, check_run_dir
from chargpt.runs.status import record_status
from conftest import TINY_MODEL, bare_train_args, run_cli, run_main, write_corpus

ROOT = Path(__file__).resolve().parents[1]
OWNER = os.getpid()  # the live process that holds a lock in these tests: this one, from a file of its own


def hydra_config(run_dir: str, sweep_dir: str = "unused") -> OmegaConf:
    """A config as Hydra hands it to callbacks: its `hydra` node typed as Hydra's own."""
    setup_globals()  # Hydra's resolvers (now:)
    dirs = {"run": {"dir": run_dir}, "sweep": {"dir": sweep_dir}}
    hydra = OmegaConf.merge(OmegaConf.structured(HydraConf), dirs)
    return OmegaConf.create({"hydra": hydra, "ckpt_path": None})


def test_time_stamped_run_dirs_taken_in_the_same_second_get_a_suffix(tmp_path: Path) -> None:
    try:
        configs = [hydra_config(f"{tmp_path}/outputs/${{now:%Y}}") for _ in range(3)]
        for config in configs:
            RunDirGuard().on_run_start(config)
        year = time.strftime("%Y")
        dirs = [str(c.hydra.run.dir) for c in configs]
        assert dirs == [f"{tmp_path}/outputs/{year}{suffix}" for suffix in ("", "-2", "-3")]
        assert all(Path(d).is_dir() for d in dirs)
    finally:
        release_claims(failed=False)


def test_a_named_dir_of_a_live_run_is_refused_and_of_a_dead_run_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    # Another live process holds the lock (an open file description of its own).
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{OWNER}\n".encode())
    try:
        with pytest.raises(RunDirInUse, match=r"hydra.run.dir=.*/run is in use by another run that is still "
                                              rf"running \(pid {OWNER}\); wait for it to end, or pick"):
            RunDirGuard.on_run_start.__wrapped__(RunDirGuard(), hydra_config(str(run)))
    finally:
        os.close(fd)  # that process ended: its lock is gone, its pid is still in the file
    try:
        RunDirGuard().on_run_start(hydra_config(str(run)))
        assert (run / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        release_claims(failed=False)


def test_the_in_use_refusal_names_the_folder_as_a_setting_to_paste(tmp_path: Path, capsys) -> None:
    # `chargpt-train "hydra.run.dir=my runs é 🚀"` beside a run still going there printed the setting
    # unquoted: pasted back, the shell split it into three words.
    run = tmp_path / "my runs é 🚀"
    run.mkdir()
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # the run still going there
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{OWNER}\n".encode())
    try:
        corpus = write_corpus(tmp_path / "corpus.txt")
        code, _, err = run_main(train_main, bare_train_args(corpus, run), capsys)
    finally:
        os.close(fd)
        release_claims(failed=False)
    assert code == 2
    assert err == (f"error: {shlex.quote(f'hydra.run.dir={run}')} is in use by another run that is still "
                   f"running (pid {OWNER}); wait for it to end, or pick another hydra.run.dir\n")


def test_a_launch_meeting_another_writing_its_hydra_records_names_it_in_use(tmp_path: Path) -> None:
    # Two `chargpt-train "hydra.run.dir=my run"` at once: the second read the first's .hydra/config.yaml
    # as Hydra was writing it (still empty) and said the folder "holds .hydra/ (another program's Hydra
    # output) ... no chargpt run wrote", of a chargpt run that was starting there.
    run = tmp_path / "my run, é 😀"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_bytes(b"")
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # the first launch, which holds the folder
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{OWNER}\n".encode())
    try:
        in_use = rf"is in use by another run that is still running \(pid {OWNER}\)"
        with pytest.raises(RunDirInUse, match=in_use):
            RunDirGuard.on_run_start.__wrapped__(RunDirGuard(), hydra_config(str(run)))
    finally:
        os.close(fd)
        release_claims(failed=False)
    # No run holds it: another program's Hydra output, as before.
    with pytest.raises(RunDirInUse, match=r"holds \.hydra/ \(another program's Hydra output\)"):
        RunDirGuard.on_run_start.__wrapped__(RunDirGuard(), hydra_config(str(run)))


def test_a_sweep_folder_held_by_a_live_sweep_names_a_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    fd = os.open(sweep / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # the first continue of the sweep, still going
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{OWNER}\n".encode())
    try:
        with pytest.raises(RunDirInUse, match=r"hydra.sweep.dir=.*/sweep is in use by another sweep that is "
                                              rf"still running \(pid {OWNER}\)"):
            claim_named(sweep, "hydra.sweep.dir")
    finally:
        os.close(fd)
        release_claims(failed=False)


@pytest.mark.parametrize("job_settings", ["[]", "[seed=1]"])
def test_a_single_run_into_a_running_sweeps_job_folder_names_the_sweep(job_settings, tmp_path) -> None:
    # `chargpt-train ... hydra.run.dir=SWEEP/0` while the sweep trained: a job of its settings was told
    # "continue it with ... ckpt_path=SWEEP/0", one of other settings "continue the sweep with: ...",
    # either refused in turn while the sweep runs.
    sweep = tmp_path / "sweep é, 😀"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text(job_settings)  # the single run's are []
    (sweep / "0" / ".hydra" / "config.yaml").write_text("model:\n  _target_: chargpt.model.ModelConfig\n")
    (sweep / "0" / "metrics.json").write_text('{"best_val_loss": 2.1}')  # the job trained, and ended
    fd = os.open(sweep / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # the sweep, training its next job
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{OWNER}\n".encode())
    try:
        running = (rf"hydra.run.dir=.*/0 is a job folder of the sweep .*, which is still running "
                   rf"\(pid {OWNER}\); wait for it to end, or pick another hydra.run.dir$")
        with pytest.raises(RunDirInUse, match=running):
            RunDirGuard.on_run_start.__wrapped__(RunDirGuard(), hydra_config(str(sweep / "0")))
    finally:
        os.close(fd)
        release_claims(failed=False)
    assert sorted(p.name for p in (sweep / "0").iterdir()) == [".hydra", "metrics.json"]
    assert sorted(p.name for p in (sweep / "0" / ".hydra").iterdir()) == ["config.yaml", "overrides.yaml"]


def test_a_finished_job_of_a_running_sweep_may_be_resumed_on_its_own(tmp_path: Path) -> None:
    # `chargpt-train ... hydra.run.dir=SWEEP/0 ckpt_path=SWEEP/0` while the sweep trains job 1: the
    # sweep reads nothing of job 0 again (its sweeper has its result; at its end it reads statuses,
    # and a continue of it meets job 0's lock), and the job's own lock keeps one process in it; so
    # it is let through, as after the sweep.
    sweep = tmp_path / "sweep é, 😀"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}")
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("[seed=1]")
    (sweep / "0" / "metrics.json").write_text('{"best_val_loss": 2.1}')
    fd = os.open(sweep / LOCK_FILE, os.O_RDWR | os.O_CREAT)  # the sweep, training its next job
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{OWNER}\n".encode())
    try:
        config = hydra_config(str(sweep / "0"))
        config.ckpt_path = str(sweep / "0")
        check_not_in_sweep(sweep / "0", config)  # no refusal
    finally:
        os.close(fd)


@pytest.mark.parametrize("before", ["", "dead"])
def test_a_launch_that_meets_a_lock_just_taken_names_its_live_owner(before, tmp_path, monkeypatch) -> None:
    # Two resumes of one run at once: the second read the lock file after the first had locked it
    # but before it wrote its pid, and said "pid unknown", or named the pid of the run before (ended).
    run = tmp_path / "run"
    run.mkdir()
    if before == "dead":
        ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                               capture_output=True, text=True, check=True)
        before = ended.stdout
    (run / LOCK_FILE).write_text(before)
    fd = os.open(run / LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def owner_writes_its_pid(seconds: float) -> None:  # while the launch waits for it
        os.pwrite(fd, f"{OWNER}\n".encode(), 0)

    monkeypatch.setattr(claims.time, "sleep", owner_writes_its_pid)
    try:
        with pytest.raises(RunDirInUse, match=rf"still running \(pid {OWNER}\)"):
            claim_named(run, "hydra.run.dir")
    finally:
        os.close(fd)
        release_claims(failed=False)


def test_a_launch_meeting_a_readers_moment_on_the_lock_takes_the_folder(tmp_path, monkeypatch) -> None:
    # chargpt-sample (or -serve, chargpt.load) given a run folder with no checkpoint asks whether a run
    # holds its lock by holding it, shared, for a moment (run_state.starting_process): a launch into
    # the folder at that moment was refused as "in use by another run that is still running (pid N)",
    # N the live process the lock file still named (a run killed as it started left it there).
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(f"{OWNER}\n")
    reader = os.open(run / LOCK_FILE, os.O_RDONLY)
    fcntl.flock(reader, fcntl.LOCK_SH)
    held = [reader]

    def reader_done(seconds: float) -> None:  # while the launch waits
        while held:
            os.close(held.pop())

    monkeypatch.setattr(claims.time, "sleep", reader_done)
    try:
        claim_named(run, "hydra.run.dir")
        assert (run / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        reader_done(0)
        release_claims(failed=False)


def test_sweep_dirs_get_a_suffix_and_an_earlier_sweep_is_not_overwritten(tmp_path: Path) -> None:
    try:
        configs = [hydra_config("unused", f"{tmp_path}/multirun/${{now:%Y}}") for _ in range(2)]
        for config in configs:
            RunDirGuard().on_multirun_start(config)
        second = f"{tmp_path}/multirun/{time.strftime('%Y')}-2"
        assert str(configs[1].hydra.sweep.dir) == second
        # Each job's config is composed again from the hydra overrides: they name the claimed dir.
        assert list(configs[1].hydra.overrides.hydra) == [f"hydra.sweep.dir='{second}'"]
    finally:
        release_claims(failed=False)

    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "metrics.json").write_text("{}")
    with pytest.raises(RunDirInUse, match=r"the sweep directory .*/sweep already holds runs of an earlier "
                                          r"sweep \(0\) with other settings; pick a new hydra.sweep.dir"):
        RunDirGuard.on_multirun_start.__wrapped__(RunDirGuard(), hydra_config("unused", str(sweep)))
    release_claims(failed=True)
    assert (sweep / "0" / "metrics.json").exists()


def test_a_sweep_job_dir_that_holds_a_run_names_the_sweep_setting(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"best_val_loss": 2.1}')  # a run's own
    with pytest.raises(RunDirInUse, match=r"pick a new hydra\.sweep\.dir$"):
        check_run_dir(tmp_path, None, "hydra.sweep.dir")


def test_a_failed_start_leaves_no_directory(tmp_path: Path, capsys) -> None:
    outputs = tmp_path / "outputs"
    missing = f"data.path={tmp_path / 'missing.txt'}"
    assert run_cli(train_main, "data=text", missing, f"paths.output_root={outputs}") == 2
    assert capsys.readouterr().err.startswith("error: data file not found")
    assert not outputs.exists()
    named = tmp_path / "named" / "run"
    assert run_cli(train_main, "data=text", missing, f"hydra.run.dir={named}") == 2
    assert not (tmp_path / "named").exists()


@pytest.mark.parametrize(("setting", "sweep"), [("hydra.run.dir", False), ("hydra.sweep.dir", True)])
def test_a_run_dir_with_an_unresolvable_interpolation_is_one_error_line(
    tmp_path: Path, capsys, setting: str, sweep: bool
) -> None:
    multirun = ["-m", "seed=1,2"] if sweep else []
    for name, expected in ((f"{tmp_path}/a ${{x}}", "cannot resolve it (Interpolation key 'x' not found)"),
                           (f"{tmp_path}/a \\${{x}}", "cannot hold a literal '${'")):
        code = run_cli(train_main, *multirun, f"{setting}={name}", "data.path=unused.txt", "data=text")
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"error: {setting}=") and expected in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting", ["hydra.run.dir=", "hydra.sweep.dir=", "paths.output_root="])
def test_an_empty_output_folder_is_refused(setting: str, tmp_path: Path, capsys, monkeypatch) -> None:
    # `hydra.run.dir=$UNSET` wrote the run's files among the current folder's own; an empty
    # paths.output_root put dated runs at the root of the file system.
    monkeypatch.chdir(tmp_path)
    multirun = ["-m", "seed=1,2"] if setting.startswith("hydra.sweep") else []
    code = run_cli(train_main, *multirun, setting, "data=text", "data.path=unused.txt")
    err = capsys.readouterr().err
    key = setting.rstrip("=")
    assert code == 2 and err.startswith(f"error: {key} is empty: "), err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_job_folder_that_cannot_be_named_is_one_error_line(tmp_path: Path, capsys) -> None:
    for subdir, expected in (("${nope}", "hydra.sweep.subdir=${nope}: cannot resolve it (Interpolation key "
                                         "'nope' not found); name each job's folder with existing keys"),
                             ("job\\${x}", "cannot hold a literal '${'"),
                             ("../job${hydra.job.num}", "puts a job's folder outside the sweep's folder "
                                                        "(hydra.sweep.dir); name a folder inside it"),
                             (f"{tmp_path}/elsewhere/${{hydra.job.num}}", "outside the sweep's folder"),
                             (".", "outside the sweep's folder"),
                             ("job${hydra.job.num}/../..", "outside the sweep's folder")):
        code = run_cli(train_main, "-m", "seed=1,2", f"hydra.sweep.dir={tmp_path}/sweep",
                       f"hydra.sweep.subdir={subdir}", "data.path=unused.txt", "data=text")
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: hydra.sweep.subdir=") and expected in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("swept", "subdir"), [
    (["optimizer.lr=1e-3,3e-3", "seed=1"], "s${seed}"),
    (["hparams_search=optuna", "hydra.sweeper.n_trials=2"], "lr ${optimizer.lr}"),  # a search's draws
])
def test_a_sweep_job_folder_that_two_jobs_would_share_is_refused(tmp_path: Path, capsys, swept: list[str],
                                                                 subdir: str) -> None:
    # Hydra writes each job's .hydra/ into its folder before the job can refuse it: the second job
    # would overwrite the first's config, and the report would show the wrong settings.
    code = run_cli(train_main, "-m", *swept, f"hydra.sweep.dir={tmp_path}/sweep",
                   f"hydra.sweep.subdir={subdir}", "data.path=unused.txt", "data=text")
    err = capsys.readouterr().err
    expected = f"error: hydra.sweep.subdir={subdir} names two jobs' folders the same when "
    assert code == 2 and err.startswith(expected), err
    assert "add ${hydra.job.num}" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_search_job_folder_need_not_name_what_the_command_fixed(tmp_path: Path, capsys) -> None:
    # The search leaves a dimension the command fixes out of its space: the folder check named it
    # varying, and refused a search whose every job has its own folder.
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    run_cli(train_main, "hparams_search=optuna", "hydra.sweeper.n_trials=1", "optimizer.lr=1e-3",
            "model.n_embd=64", "model.n_layer=2", f"hydra.sweep.dir={tmp_path}/sweep",
            "hydra.sweep.subdir=dropout ${model.dropout}", "data.path=missing.txt", "data=text")
    assert "hydra.sweep.subdir" not in capsys.readouterr().err
    (job,) = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]
    assert job.name.startswith("dropout 0.") and "data file not found" in (job / "status.json").read_text()


def test_a_sweep_job_folder_may_name_the_swept_settings(tmp_path: Path, capsys) -> None:
    # `+tag` exists only in each job's config, with that job's value: not refused up front.
    run_cli(train_main, "-m", "+tag=first,second", f"hydra.sweep.dir={tmp_path}/sweep",
            "hydra.sweep.subdir=${tag}-${hydra.job.num}", "data.path=missing.txt", "data=text")
    assert "hydra.sweep.subdir" not in capsys.readouterr().err
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["first-0", "second-1"]
    assert all("data file not found" in (p / "status.json").read_text() for p in jobs)  # the jobs ran


@pytest.mark.slow
def test_a_sweep_job_folder_named_by_its_overrides_or_going_down_and_back_is_inside(tmp_path: Path,
                                                                                    capsys) -> None:
    # The error's own advice, ${hydra.job.override_dirname}, and a path that comes back inside.
    for subdir, names in (("${hydra.job.override_dirname}", ["data.path='missing.txt',data=text,seed=1",
                                                             "data.path='missing.txt',data=text,seed=2"]),
                          ("a/../job${hydra.job.num}", ["job0", "job1"])):
        sweep = tmp_path / subdir.split("$")[0].strip("/.") / "sweep"
        run_cli(train_main, "-m", "seed=1,2", f"hydra.sweep.dir={sweep}", f"hydra.sweep.subdir={subdir}",
                "data.path=missing.txt", "data=text")
        assert "hydra.sweep.subdir" not in capsys.readouterr().err
        jobs = sorted(p for p in sweep.iterdir() if (p / "status.json").exists())
        assert [p.name for p in jobs] == names
        assert all("data file not found" in (p / "status.json").read_text() for p in jobs)  # the jobs ran


def test_a_sweep_job_folder_is_taken_as_typed(tmp_path: Path, capsys) -> None:
    # Spaces, accents, emoji and a comma: a folder name, not Hydra's override syntax (nor a sweep).
    run_cli(train_main, "-m", "seed=1,2", f"hydra.sweep.dir={tmp_path}/sweep",
            "hydra.sweep.subdir=réglage ${seed}, 🙂", "data.path=missing.txt", "data=text")
    assert "subdir" not in capsys.readouterr().err  # the name is taken (the jobs then fail: no text)
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert jobs == ["réglage 1, 🙂", "réglage 2, 🙂"]


def test_a_run_dir_may_use_hydras_own_resolver(tmp_path: Path, capsys, monkeypatch) -> None:
    # `${hydra:...}` resolves only once Hydra has set its config: the guard must not refuse it.
    monkeypatch.chdir(tmp_path)
    code = run_cli(train_main, "hydra.run.dir=${hydra:runtime.cwd}/${hydra:job.name} run", "data=text",
                   "data.path=missing.txt")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: data file not found"), err  # got past the guard
    code = run_cli(train_main, "paths.output_root=${hydra:runtime.cwd}/outs", "data=text",
                   "data.path=missing.txt")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: data file not found"), err


def test_a_failed_start_in_a_folder_of_ones_own_takes_back_only_what_it_wrote(tmp_path: Path, capsys) -> None:
    # A Ctrl-C during model=auto's timing, or a refused setting, left Hydra's config, the log and
    # the status line among the user's files: the folder existed, so nothing was removed.
    mine = tmp_path / "my folder"
    (mine / "drafts").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    missing = f"data.path={tmp_path / 'missing.txt'}"
    assert run_cli(train_main, "data=text", missing, f"hydra.run.dir={mine}") == 2
    assert capsys.readouterr().err.startswith("error: data file not found")
    assert sorted(p.name for p in mine.iterdir()) == [LOCK_FILE, "drafts", "notes.txt"]
    assert (mine / "notes.txt").read_text() == "mine"

    # What was there before stays, a start's files included (an earlier start's log, say).
    (mine / "train.log").write_text("an earlier start\n")
    assert run_cli(train_main, "data=text", missing, f"hydra.run.dir={mine}") == 2
    assert sorted(p.name for p in mine.iterdir()) == [LOCK_FILE, "drafts", "notes.txt", "train.log"]
    assert (mine / "train.log").read_text().startswith("an earlier start\n")


def test_ctrl_c_while_encoding_leaves_nothing(tmp_path: Path, corpus: Path, monkeypatch, capsys) -> None:
    import chargpt.data.encoding as encoding
    import chargpt.data.sources.text_files as text_files

    text = tmp_path / "corpus.txt"
    text.write_text(corpus.read_text() * 3)
    chunks, passes = encoding._stream, []

    def interrupted_second_pass(*args, **kwargs):  # the write pass: Ctrl-C after its first chunk
        passes.append(1)
        for i, chunk in enumerate(chunks(*args, **kwargs)):
            if len(passes) == 2 and i == 1:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(text_files, "_CHUNK_BYTES", 4096)
    monkeypatch.setattr(encoding, "_stream", interrupted_second_pass)
    outputs = tmp_path / "outputs"
    code = run_cli(train_main, "data=text", f"data.path={text}", f"paths.output_root={outputs}", *TINY_MODEL)
    assert code == 130 and len(passes) == 2
    err = capsys.readouterr().err
    assert err.endswith("interrupted\n") and "Traceback" not in err
    assert not outputs.exists()
    # The cache may keep the text's digest (recorded once the file is 2 s old, as on a loaded
    # machine by then): a whole, true record of the user's own file, not a leftover of the run.
    cache = Path(os.environ["CHARGPT_CACHE_DIR"])
    kept = [p for p in [*tmp_path.rglob("*"), *cache.rglob("*")] if p.is_file() and p.name != HASHES_FILE]
    assert kept == [text]
    if (cache / HASHES_FILE).exists():
        recorded = json.loads((cache / HASHES_FILE).read_text())
        assert {k: v["sha256"] for k, v in recorded.items()} == {os.path.realpath(text): sha256_of(text)}


@pytest.mark.slow
def test_make_sweep_uses_a_new_sweep_dir_each_time(tmp_path: Path) -> None:
    def planned(*extra: str) -> tuple[str, str]:
        out = subprocess.run(["make", "-n", "sweep", f"VENV={tmp_path}/venv", *extra], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        words = shlex.split(out.replace("\\\n", " "))  # as the shell will read the recipe
        sweep_dir = next(w.partition("=")[2] for w in words if w.startswith("hydra.sweep.dir="))
        return sweep_dir, words[words.index(f"{tmp_path}/venv/bin/chargpt-report") + 1]

    first = planned()
    time.sleep(1.1)
    second = planned()
    assert first[0] == first[1] and second[0] == second[1]  # the report reads the sweep just made
    assert first[0] != second[0]
    named = str(tmp_path / "my sweep, é 'q'")  # one word for the shell, whatever it holds
    assert planned(f"SWEEP_DIR={named}") == (named, named)


def _train(cwd: Path, corpus: Path, seed: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "chargpt.cli.train", "data=text", f"data.path={corpus}", *TINY_MODEL,
         f"seed={seed}", "trainer.max_steps=2", "trainer.val_check_interval=2", "logger=none",
         "callbacks.progress_bar=null", "trainer.enable_model_summary=false", "sample.max_new_tokens=0",
         *extra],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "run_dir", [[], ["hydra.run.dir=outputs/${now:%Y-%m-%d}"]], ids=["default", "same-second"]
)
def test_four_launches_at_once_get_four_directories(run_dir: list[str], tmp_path: Path, corpus: Path) -> None:
    procs = [_train(tmp_path, corpus, seed, *run_dir) for seed in range(4)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    dirs = sorted(p.parent.parent for p in (tmp_path / "outputs").rglob(".hydra/config.yaml"))
    assert len(dirs) == 4
    seeds = sorted(OmegaConf.load(d / ".hydra" / "config.yaml").seed for d in dirs)
    assert seeds == [0, 1, 2, 3]  # each its own config
    for d in dirs:
        assert json.loads((d / "status.json").read_text())["status"] == "finished"
        assert json.loads((d / "metrics.json").read_text())["step"] == 2
        assert (d / "checkpoints" / "last.ckpt").is_file()
    printed = {re.search(r"run dir (\S+)", out + err)[1] for _, out, err in results}
    assert printed == {str(d) for d in dirs}


def test_a_refused_start_stops_logging_into_the_folder_it_removes(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import logging

    monkeypatch.chdir(tmp_path)  # a relative folder, as a person types it
    args = ["data=text", f"data.path={corpus}", "hydra.run.dir=refused run", "trainer.precision=bf32",
            *TINY_MODEL]
    assert run_cli(train_main, *args) == 2
    assert "error: trainer.precision=bf32 is not a precision" in capsys.readouterr().err
    assert not (tmp_path / "refused run").exists()
    # Hydra's train.log handler went with the folder: this process's next log lines (in a test
    # session, the next test's) neither fail to reopen it nor go to a deleted file.
    files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    assert not [f for f in files if "refused run" in f]
    logging.getLogger("chargpt").warning("after a refused start")


def _sweep_args(corpus: Path, sweep: Path) -> list[str]:
    return ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}", "trainer.max_steps=2",
                                   "trainer.val_check_interval=2", "seed=1,2", "sample.max_new_tokens=0")]


def test_a_sweep_jobs_folder_held_by_another_live_run_is_refused(tmp_path: Path, capsys) -> None:
    # E.g. the job's printed resume command still running when the sweep is continued: two processes
    # would train the one job into one folder.
    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    fd = os.open(sweep / "0" / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{OWNER}\n".encode())
    try:
        code, _, err = run_main(train_main, _sweep_args(corpus, sweep), capsys)
    finally:
        os.close(fd)
    assert code == 2, err
    assert err.endswith(f"error: the sweep's job folder {sweep / '0'} is in use by another run that is still "
                        f"running (pid {OWNER}); wait for it to end, then continue the sweep again\n")
    assert not (sweep / "0" / "checkpoints").exists()


@pytest.mark.slow
def test_a_sweep_job_holds_its_folder_while_it_trains_and_lets_go_after(tmp_path: Path, monkeypatch,
                                                                      capsys) -> None:
    from chargpt.training import build as training_build

    corpus = write_corpus(tmp_path / "corpus.txt")
    sweep = tmp_path / "sweep"
    seen: list[tuple[bool, bool]] = []
    build = training_build.build_run

    def free(folder: Path) -> bool:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: as another process
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    def observed(cfg):
        job = Path(cfg.paths.output_dir)
        if job.name == "1":
            seen.append((free(sweep / "0"), free(job)))
        return build(cfg)

    monkeypatch.setattr(training_build, "build_run", observed)
    code, _, err = run_main(train_main, _sweep_args(corpus, sweep), capsys)
    assert code == 0, err
    assert seen == [(True, False)]  # job 0's folder let go at its end; job 1's held while it runs


def test_a_stored_study_goes_on_in_a_new_folder_not_in_its_own(tmp_path: Path) -> None:
    # Its new trials are drawn from the storage: in its own folder they would meet the first
    # trials' job folders, with other settings, and each refusal would leave a trial running.
    from chargpt.runs.sweep_record import continue_command, record_sweep

    sweep = tmp_path / "search"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "metrics.json").write_text("{}")

    def search(storage: str | None) -> OmegaConf:
        config = hydra_config("unused", str(sweep))
        config.hydra.sweeper = {"storage": storage, "n_trials": 3}
        config.hydra.overrides.task = ["hparams_search=optuna", "seed=3"]
        return config

    try:
        refused = r"holds trials of a search, and a stored study .* a new hydra.sweep.dir, or without one"
        with pytest.raises(RunDirInUse, match=refused):
            RunDirGuard.on_multirun_start.__wrapped__(RunDirGuard(), search("sqlite:///optuna.db"))
    finally:
        release_claims(failed=False)
    record_sweep(search("sqlite:///optuna.db"), sweep)
    assert continue_command(sweep) == "chargpt-train -m hparams_search=optuna seed=3"
    record_sweep(search(None), sweep)  # a study kept in memory: continued in its own folder
    assert continue_command(sweep) == f"chargpt-train -m hparams_search=optuna seed=3 hydra.sweep.dir={sweep}"


def test_resuming_a_run_another_process_still_trains_names_the_checkpoint_typed(tmp_path: Path,
                                                                                 capsys) -> None:
    # ckpt_path=RUN picks hydra.run.dir itself: the refusal names what was typed, not that setting.
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "a run, 1"
    code, _, err = run_main(train_main, bare_train_args(corpus, run, "trainer.max_steps=2"), capsys)
    assert code == 0, err
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: as another process
    os.write(fd, f"{OWNER}\n".encode())
    try:
        for typed in (str(run), str(run / "checkpoints" / "last.ckpt")):
            code, _, err = run_main(train_main, bare_train_args(corpus, None, f"ckpt_path={typed}",
                                                                "trainer.max_steps=4"), capsys)
            assert code == 2, err
            assert err.endswith(f"error: ckpt_path={typed}: that run is still being trained by another "
                                f"process (pid {OWNER}); wait for it to end (or stop it), then resume it "
                                "again\n")
        # A run still before its first checkpoint: the same words.
        (run / "checkpoints" / "last.ckpt").rename(tmp_path / "kept.ckpt")
        code, _, err = run_main(train_main, bare_train_args(corpus, None, f"ckpt_path={run}",
                                                            "trainer.max_steps=4"), capsys)
        assert code == 2, err
        assert err.endswith(f"error: ckpt_path={run}: that run is still being trained by another process "
                            f"(pid {OWNER}); wait for it to end (or stop it), then resume it again\n"), err
    finally:
        os.close(fd)
    assert (tmp_path / "kept.ckpt").read_bytes() == before


def test_advice_that_names_a_folder_with_spaces_quotes_it_for_the_shell(tmp_path: Path, capsys) -> None:
    run = tmp_path / "my run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2")
    assert run_main(train_main, args, capsys)[0] == 0
    code, _, err = run_main(train_main, args, capsys)
    assert code == 2 and "continue it with chargpt-train data=text" in err, err
    assert f" 'ckpt_path={run}', or pick a new hydra.run.dir" in err, err


@pytest.mark.slow
def test_a_resume_from_an_earlier_checkpoint_in_the_runs_folder_is_refused(tmp_path: Path, capsys) -> None:
    # It replaced the run's later last.ckpt (and metrics.json) with no word: the run went back.
    import shutil

    import torch

    run = tmp_path / "my run"
    corpus = write_corpus(tmp_path / "corpus.txt")
    assert run_main(train_main, bare_train_args(corpus, run, "trainer.max_steps=2"), capsys)[0] == 0
    earlier = shutil.copy(run / "checkpoints" / "last.ckpt", run / "checkpoints" / "step2.ckpt")
    assert run_main(train_main, bare_train_args(corpus, None, "trainer.max_steps=4", f"ckpt_path={run}"),
                    capsys)[0] == 0
    code, _, err = run_main(train_main, bare_train_args(corpus, None, "trainer.max_steps=4",
                                                         f"ckpt_path={earlier}"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {earlier} is at step 2, but its run is at step 4")
    # The run's own command (its latest launch's): `ckpt_path` alone would take the defaults for
    # the rest (another model, refused; 3000 steps).
    advice = err.strip().partition("continue it in a new folder (add hydra.run.dir=NEW_FOLDER), or "
                                   "resume the run itself with ")[2]
    words = [w for w in shlex.split(advice) if not re.match(r"[A-Z_]+=", w)]  # (its PYTHONPATH, if any)
    assert words == ["chargpt-train", *bare_train_args(corpus, None, "trainer.max_steps=4"),
                                   f"ckpt_path={run}"], err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    # Going back in a new folder, as the message says, leaves the run as it was.
    branch = tmp_path / "branch"
    code, _, err = run_main(train_main, bare_train_args(corpus, branch, "trainer.max_steps=3",
                                                         f"ckpt_path={earlier}"), capsys)
    assert code == 0, err
    assert torch.load(branch / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4


@pytest.mark.parametrize(("stop", "status"), [(KeyboardInterrupt(), "interrupted"),
                                             (SystemExit(0), "finished")])
def test_a_task_stopped_before_it_trains_is_recorded_as_it_stopped(
    stop: BaseException, status: str, tmp_path: Path
) -> None:
    # A Ctrl-C while a run is built (before its callbacks record anything), or a clean exit: what
    # status.json says of it, with the exception passed on to end the command.
    run_dir = tmp_path / "my run, é"
    run_dir.mkdir()

    def task(cfg: object) -> float:
        raise stop

    with pytest.raises(type(stop)):
        record_status(task)(OmegaConf.create({"paths": {"output_dir": str(run_dir)}}))
    assert json.loads((run_dir / "status.json").read_text())["status"] == status


def test_a_sweep_job_holds_its_folder_before_lightning_is_imported(tmp_path: Path, capsys,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A parallel launcher's job (hydra/launcher=submitit_local or joblib) imports Lightning in its own
    # process once Hydra has made its folder, seconds on a loaded CPU: claimed only after that import,
    # a report of the running sweep called the job 'incomplete' meanwhile, as if it had stopped.
    import contextlib

    import chargpt.cli.train as train_cli
    import chargpt.training.build as build

    held_at_import: list[list[Path]] = []

    @contextlib.contextmanager
    def importing() -> Iterator[None]:
        held_at_import.append([claim.folder.resolve() for claim in claims.claims])
        sys.modules[build.__name__] = build  # (the module itself, not a second copy)
        yield

    train = train_cli._train

    def job_in_its_own_process(cfg: Any, parallel: Any) -> Any:
        sys.modules.pop(build.__name__, None)  # as in a job's own process: not imported yet
        return train(cfg, parallel)

    monkeypatch.setattr(train_cli, "_train", job_in_its_own_process)
    monkeypatch.setattr(train_cli, "collector_off_then_frozen", importing)
    sweep = tmp_path / "my runs é 🚀"
    corpus = write_corpus(tmp_path / "corpus.txt")
    code = run_cli(train_main, "-m", *bare_train_args(corpus, None, "trainer.max_steps=1", "seed=1,2"),
                   f"hydra.sweep.dir={sweep}")
    assert code == 0, capsys.readouterr().err
    assert len(held_at_import) == 2, held_at_import
    for job, held in enumerate(held_at_import):
        assert (sweep / str(job)).resolve() in held, held_at_import


@pytest.mark.parametrize(("rank", "zero"), [({}, True), ({"LOCAL_RANK": "1"}, False), ({"RANK": "0"}, True)])
def test_the_rank_is_told_without_importing_lightning(rank: dict[str, str], zero: bool) -> None:
    # A sweep's job asks it before it claims its folder, which must come before Lightning's import
    # (seconds): asking imported Lightning, and the job read 'incomplete' in the report meanwhile.
    code = ("import sys; from chargpt.distributed import is_rank_zero; "
            "print(is_rank_zero(), 'lightning' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "SLURM_PROCID",
                                                              "JSM_NAMESPACE_RANK")}
    said = subprocess.run([sys.executable, "-c", code], env=env | rank, capture_output=True, text=True,
                          check=True).stdout.split()
    assert said == [str(zero), "False"]
