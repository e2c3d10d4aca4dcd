"""Exact resume: an interrupted and resumed run is bit-identical to one that never stopped."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import signal
import sys
import warnings
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from chargpt.checkpoints import RESUME_STATE_KEY, TRAINING_RECORD_KEY
from chargpt.cli.train import main as train_main
from chargpt.data.sources.hf_datasets import LOCAL_BUILDERS
from chargpt.errors import CheckpointError
from chargpt.model import ModelConfig
from chargpt.overrides import launched_from
from chargpt.run_layout import launch_cwd
from chargpt.runs.resume import resume_command
from chargpt.training.resume_checks import check_resumable
from conftest import (
    StepHook,
    bare_train_args,
    callback_of_ones_own,
    in_hydra_run,
    make_checkpoint,
    offline_default_corpus_in,
    on_the_default_corpus,
    run_main,
    train_two_step_run,
    write_corpus,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))


def _state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def _validations(run_dir: Path) -> list[tuple[int, float]]:
    """The run's val/loss curve in TensorBoard: (step, value) of every validation, resumes included."""
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("val/loss")]


def _signal_during_validation_after(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SIGINT in the middle of the validation that follows `step` (its first batch)."""
    from chargpt.training import CharLM

    original = CharLM.validation_step
    pending = [step]

    def validation_step(module: CharLM, *args, **kwargs):  # type: ignore[no-untyped-def]
        if pending and module.trainer.global_step == step and not module.trainer.sanity_checking:
            pending.clear()
            os.kill(os.getpid(), signal.SIGINT)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(CharLM, "validation_step", validation_step)


@pytest.mark.parametrize(
    ("where", "stopped_at"),
    [
        ("step 6", 6),
        # A validation is due right after step 8: it runs, then the run stops, and the resume goes
        # on from step 9 (its first step is stopped too, and resumed again).
        pytest.param("step 8", 8, marks=pytest.mark.slow),
        pytest.param("validation after step 8", 8, marks=pytest.mark.slow),
    ],
)
def test_interrupted_then_resumed_run_is_bit_identical(tmp_path, monkeypatch, capsys, where, stopped_at):
    corpus = write_corpus(tmp_path / "corpus.txt")
    # Dropout > 0, so the resumed run only matches if the RNG states were restored too.
    common = ["model.dropout=0.2", "trainer.max_steps=12", "trainer.val_check_interval=4",
              "logger=tensorboard"]
    hook = StepHook(monkeypatch)

    code, _, err = run_main(
        train_main, bare_train_args(corpus, tmp_path / "straight", *common), capsys
    )
    assert code == 0, err
    straight = hook.take()

    if where.startswith("validation"):
        _signal_during_validation_after(stopped_at, monkeypatch)
    else:
        hook.send_signal_at(stopped_at)  # a real SIGINT, delivered in the middle of the step
    code, _, err = run_main(
        train_main, bare_train_args(corpus, tmp_path / "stopped", *common), capsys
    )
    assert code == 130, err
    assert f"stopped by SIGINT after step {stopped_at}" in err
    if where.startswith("validation"):
        assert "SIGINT received: stopping at the end of this validation, once its checkpoint" in err
    first_part = hook.take()
    assert _state(tmp_path / "stopped")["global_step"] == stopped_at
    first_record = _state(tmp_path / "stopped")[TRAINING_RECORD_KEY]
    # Every validation due up to the stop has run, none more.
    assert [s for s, _ in _validations(tmp_path / "stopped")] == list(range(4, stopped_at + 1, 4))

    # Resume with exactly the command the interrupted run printed.
    command = shlex.split(err.split("resume with: ", 1)[1].strip().splitlines()[0])
    assert command[0] == "chargpt-train" and command[-1] == f"ckpt_path={tmp_path / 'stopped'}"
    resumes = [command]
    if where == "step 8":  # stopped again at the first step the resume takes
        hook.send_signal_at(stopped_at + 1)
        code, _, err = run_main(train_main, command[1:], capsys)
        assert code == 130 and f"stopped by SIGINT after step {stopped_at + 1}" in err, err
        assert _state(tmp_path / "stopped")["global_step"] == stopped_at + 1
        assert shlex.split(err.split("resume with: ", 1)[1].strip().splitlines()[0]) == command
        resumes.append(command)
    code, _, err = run_main(train_main, command[1:], capsys)
    assert code == 0, err
    second_part = hook.take()

    assert [s for s, _ in first_part + second_part] == list(range(1, 13))
    assert first_part + second_part == straight  # the same loss, bit for bit, at every step
    # The same validations, bit for bit, each once; the same best checkpoint and record of it.
    assert _validations(tmp_path / "stopped") == _validations(tmp_path / "straight")
    assert [s for s, _ in _validations(tmp_path / "straight")] == [4, 8, 12]
    straight_files, stopped_files = (sorted(p.name for p in (tmp_path / run / "checkpoints").iterdir())
                                     for run in ("straight", "stopped"))
    assert stopped_files == straight_files
    status_a, status_b = (json.loads((tmp_path / run / "status.json").read_text())
                          for run in ("straight", "stopped"))
    assert (status_b["status"], status_b["value"]) == (status_a["status"], status_a["value"])  # best val loss
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "stopped")
    assert a["global_step"] == b["global_step"] == 12
    assert a["loops"] == b["loops"]  # Lightning's step, batch and validation counters
    assert a["lr_schedulers"] == b["lr_schedulers"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    opt_a, opt_b = (c["optimizer_states"][0]["state"] for c in (a, b))
    assert opt_a.keys() == opt_b.keys()
    for i, state in opt_a.items():
        assert all(torch.equal(value, opt_b[i][k]) for k, value in state.items())

    metrics = json.loads((tmp_path / "stopped" / "metrics.json").read_text())
    assert metrics["step"] == 12 and metrics["tokens"] == 12 * 4 * 16
    # What the model card says of its training: the first launch's start and command (as typed:
    # a checkpoint stays on its machine), the resume's command, and when these weights were saved.
    # (hydra.run.dir is Hydra's, not the run's: no part of the command.)
    launched = ["chargpt-train", *(a for a in bare_train_args(corpus, None, *common))]
    assert first_record["command"] == launched and first_record["resumes"] == []
    record = b[TRAINING_RECORD_KEY]
    assert record["command"] == launched and record["started"] == first_record["started"]
    assert record["resumes"] == resumes and record["fine_tuned_from"] is None
    stamps = [first_record["started"], first_record["ended"], record["ended"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in stamps)
    assert sorted(stamps) == stamps
    assert a[TRAINING_RECORD_KEY]["resumes"] == [] and a[TRAINING_RECORD_KEY]["started"] <= stamps[0]


def test_a_stop_at_a_validation_step_without_the_last_checkpoint_callback_writes_its_own(
    tmp_path, monkeypatch, capsys
):
    """With no callback rewriting last.ckpt at each validation, the stop writes it, after the best
    checkpoint's callback has recorded that validation: a resume knows the step's best."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "trainer.max_steps=6", "trainer.val_check_interval=2",
                           "~callbacks.last_checkpoint", "callbacks.model_checkpoint.save_top_k=-1")
    StepHook(monkeypatch).send_signal_at(4)
    code, _, err = run_main(train_main, args, capsys)
    assert code == 130 and "stopped by SIGINT after step 4" in err, err
    last = _state(run)
    assert last["global_step"] == 4
    (best,) = (v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert sorted(Path(p).name for p in best["best_k_models"]) == ["best-000002.ckpt", "best-000004.ckpt"]


@pytest.mark.slow
def test_with_several_batches_a_step_validation_counts_steps_and_a_stop_during_it_resumes_exactly(
    tmp_path, monkeypatch, capsys
):
    """trainer.val_check_interval counts steps, as documented, where Lightning counts batches: with 2
    batches a step, validating every 3 would fall inside step 2, and a checkpoint there lose the
    step's first batch. The validations come after steps 3 and 4 (the end); a signal during the
    first stops the run at its end, and the resume matches a straight run at every batch."""
    from chargpt.training import CharLM

    corpus = write_corpus(tmp_path / "corpus.txt")
    common = ["model.dropout=0.2", "trainer.max_steps=4", "trainer.val_check_interval=3",
              "trainer.accumulate_grad_batches=2", "logger=tensorboard"]
    hook = StepHook(monkeypatch)
    code, _, err = run_main(train_main, bare_train_args(corpus, tmp_path / "straight", *common), capsys)
    assert code == 0, err
    straight = hook.take()
    assert [step for step, _ in _validations(tmp_path / "straight")] == [3, 4]

    original, pending = CharLM.validation_step, [True]

    def validation_step(module: CharLM, *args, **kwargs):  # type: ignore[no-untyped-def]
        if pending and not module.trainer.sanity_checking:  # the one after step 3
            pending.clear()
            os.kill(os.getpid(), signal.SIGINT)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(CharLM, "validation_step", validation_step)
    code, _, err = run_main(train_main, bare_train_args(corpus, tmp_path / "stopped", *common), capsys)
    assert code == 130 and "stopped by SIGINT after step 3" in err, err
    assert "SIGINT received: stopping at the end of this validation" in err
    first_part = hook.take()
    assert [s for s, _ in first_part] == [1, 1, 2, 2, 3, 3]  # whole steps only
    assert _state(tmp_path / "stopped")["global_step"] == 3

    command = shlex.split(err.split("resume with: ", 1)[1].strip().splitlines()[0])
    code, _, err = run_main(train_main, command[1:], capsys)
    assert code == 0, err
    assert first_part + hook.take() == straight  # the same loss, bit for bit, at every batch
    assert _validations(tmp_path / "stopped") == _validations(tmp_path / "straight")


def test_checkpoint_holds_rng_and_corpus_in_plain_form(tmp_path, monkeypatch, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    code, _, err = run_main(
        train_main,
        bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2", "trainer.val_check_interval=2"),
        capsys,
    )
    assert code == 0, err
    ckpt = _state(tmp_path / "run")  # weights_only=True: everything in it is plain
    state = ckpt["callbacks"]["ResumeState"]
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["corpus"]["path"] == str(corpus) and len(state["corpus"]["sha256"]) == 64
    assert state["data_seed"] == 1337  # the training batches are a function of (seed, step)


def _files(run: Path) -> list[tuple[Path, bytes]]:
    return sorted((p.relative_to(run), p.read_bytes()) for p in run.rglob("*")
                  if p.is_file() and p.name != "train.log")


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished two-step run and its text, trained once for the refused resumes that read it."""
    return train_two_step_run(tmp_path_factory.mktemp("two_step_run"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("model.n_embd=64", "its model has model.n_embd=32 but this run asks for model.n_embd=64"),
        pytest.param(  # (the default run checks one model change and one data change)
            "model.n_layer=2", "model.n_layer=1 but this run asks for model.n_layer=2", marks=pytest.mark.slow
        ),
        (
            "data.path={other_vocab}",
            "another vocabulary (13 characters, this data has 15: this data adds 'X', 'Y'); resume with the "
            "data it was trained on ({corpus})",
        ),
        pytest.param("data.path={same_vocab}", "it was trained on {corpus} (sha256 ", marks=pytest.mark.slow),
        # Another validation text, which could hold text the run trained on.
        ("data.train_fraction=0.5",
         "with data.train_fraction=0.5: its run split the text at 0.9; resume with data.train_fraction=0.9"),
        # Other batches from here on: not the run's own resume.
        ("seed=7", "with data.seed=7: its run drew its batches with 1337; resume with seed=1337"),
        # Another optimizer: the checkpoint's optimizer state would not load into it.
        ("optimizer=muon", "with optimizer=muon: it was trained with optimizer=adamw, whose optimizer "
         "state does not carry over; resume with optimizer=adamw, or start a new run from its weights with "
         "init_from="),
    ],
)
def test_incompatible_resume_is_refused(two_step_run, tmp_path, capsys, change, expected):
    run, corpus = two_step_run
    other_vocab = write_corpus(tmp_path / "other.txt", alphabet="abcdefgh ijkXY\n")
    same_vocab = write_corpus(tmp_path / "same.txt", seed=1)
    before = _files(run)
    change = change.format(other_vocab=other_vocab, same_vocab=same_vocab)
    expected = expected.format(corpus=corpus)
    base = bare_train_args(corpus, None, "trainer.max_steps=4")
    args = [a for a in base if a.split("=")[0] != change.split("=")[0]]
    code, _, err = run_main(train_main, [*args, change, f"ckpt_path={run}"], capsys)
    assert code == 2
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # The run is shared by every case: a refused resume leaves its files as they were (its log
    # keeps the refusal).
    assert _files(run) == before
    # Its log ended with the refused launch's own lines (the other text's `data:` line): the last
    # line now says that launch was refused, in the console's words.
    last = (run / "train.log").read_text(encoding="utf-8").splitlines()[-1]
    assert last.endswith(f"a resume was refused: {err.strip().removeprefix('error: ')}"), last
    if change.startswith("optimizer="):
        # Its launch record gone, the optimizer was named by its bare _target_: the checkpoint's
        # settings name it as well (in a copy of the run, where the other cases see the record).
        unrecorded = tmp_path / "unrecorded"
        shutil.copytree(run, unrecorded, ignore=shutil.ignore_patterns(".hydra"))
        code, _, again = run_main(train_main, [*args, change, f"ckpt_path={unrecorded}"], capsys)
        assert (code, again) == (2, err.replace(str(run), str(unrecorded)))


@pytest.mark.slow
def test_a_copied_run_folder_resumes_as_it_would_in_place(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    first = bare_train_args(corpus, tmp_path / "first", "trainer.max_steps=4", "trainer.val_check_interval=2")
    code, _, err = run_main(train_main, first, capsys)
    assert code == 0, err
    moved = tmp_path / "copied run, é"
    shutil.copytree(tmp_path / "first", moved)
    resume = bare_train_args(corpus, None, "trainer.max_steps=10", "trainer.val_check_interval=2",
                             f"ckpt_path={moved}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run_main(train_main, resume, capsys)
    assert code == 0, err
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    best_key = "ModelCheckpoint{'monitor': 'val/loss'"
    [state] = [v for k, v in _state(moved)["callbacks"].items() if k.startswith(best_key)]
    assert state["dirpath"] == str((moved / "checkpoints").resolve())
    # One best checkpoint, as in place: the copied one was replaced when a better one came.
    best = sorted(p.name for p in (moved / "checkpoints").glob("best-*.ckpt"))
    assert best == [Path(state["best_model_path"]).name], best
    # A copy resumed into yet another folder: a record of the best there, from scratch.
    shutil.copytree(tmp_path / "first", tmp_path / "second copy")
    elsewhere = tmp_path / "elsewhere"
    again = bare_train_args(corpus, elsewhere, "trainer.max_steps=10", "trainer.val_check_interval=2",
                            f"ckpt_path={tmp_path / 'second copy'}")
    code, _, err = run_main(train_main, again, capsys)
    assert code == 0, err
    assert len(list((elsewhere / "checkpoints").glob("best-*.ckpt"))) == 1


@pytest.mark.parametrize("optimizer", [["optimizer=adamw"], ["optimizer=muon", "optimizer.adamw.lr=0"]])
def test_a_resumed_run_trains_with_the_rate_it_is_given(tmp_path, capsys, optimizer):
    """The checkpoint's optimizer state carries the old run's rates; a rate given for the resumed
    run (the advice after a NaN: lower optimizer.lr, then resume) must be the one it trains with."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, *optimizer, "trainer.val_check_interval=3")
    code, _, err = run_main(train_main, [*args, "trainer.max_steps=3"], capsys)
    assert code == 0, err
    before = _state(run)
    resume = [*args, "trainer.max_steps=6", "optimizer.lr=0", f"ckpt_path={run}"]
    code, out, err = run_main(train_main, resume, capsys)
    assert code == 0, err
    after = _state(run)
    assert after["global_step"] == 6
    for key, value in before["state_dict"].items():  # a rate of 0: three steps changed nothing
        assert torch.equal(value, after["state_dict"][key]), key
    label = "muon" if "optimizer=muon" in optimizer else "optimizer"
    [line] = [x for x in (out + err).splitlines() if "resuming with optimizer settings" in x]
    assert f"other than the checkpoint's: {label} lr " in line and line.endswith(" -> 0")


def test_resuming_a_finished_run_says_so_and_reports_its_loss(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2", "trainer.val_check_interval=2")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    before = json.loads((tmp_path / "run" / "metrics.json").read_text())
    again = bare_train_args(corpus, None, "trainer.max_steps=1", f"ckpt_path={tmp_path / 'run'}")
    code, out, err = run_main(train_main, again, capsys)
    assert code == 0, err
    said = out + err
    assert ("nothing left to train: the run is at step 2, trainer.max_steps=1; pass a larger "
            "trainer.max_steps to train on") in said
    # That launch's config is not kept: the run's latest (what the report reads) is still its own.
    assert [p.name for p in (tmp_path / "run" / ".hydra").iterdir() if p.is_dir()] == []
    assert f"step 2: val loss {before['val_loss']:.4f} (best {before['best_val_loss']:.4f})" in said
    after = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert after["val_loss"] == before["val_loss"] and after["tokens"] == before["tokens"]


@pytest.mark.slow
def test_a_resume_from_another_folder_reads_the_data_directory_the_run_was_launched_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # Without CHARGPT_DATA_DIR the default corpus is under ./data: a run started in one folder and
    # resumed (with the command it printed, or by hand) from another looked for it there, and
    # downloaded it again (offline: an error).
    here, there = tmp_path / "here", tmp_path / "there"
    offline_default_corpus_in(here, monkeypatch)
    there.mkdir()
    run = tmp_path / "run"
    args = on_the_default_corpus(bare_train_args(Path("unused"), run, "trainer.val_check_interval=2"))
    monkeypatch.chdir(here)
    code, _, err = run_main(train_main, [*args, "trainer.max_steps=2"], capsys)
    assert code == 0, err
    monkeypatch.chdir(there)
    code, out, err = run_main(train_main, [*args, "trainer.max_steps=4", f"ckpt_path={run}"], capsys)
    assert code == 0, out + err
    assert _state(run)["global_step"] == 4 and not (there / "data").exists()
    # Its saved configs name the folder, for the next resume and for whoever reads them.
    assert f"data_dir: {here / 'data'}" in (run / ".hydra" / "config.yaml").read_text()
    # CHARGPT_DATA_DIR set to nothing (an unset shell variable) names no folder: the run's is read,
    # where it was refused as a data directory at the root of the file system.
    monkeypatch.setenv("CHARGPT_DATA_DIR", "")
    code, out, err = run_main(train_main, [*args, "trainer.max_steps=5", f"ckpt_path={run}"], capsys)
    assert code == 0 and _state(run)["global_step"] == 5, out + err
    # A data directory named for the resume is the one it reads (the text is checked the same).
    monkeypatch.setenv("CHARGPT_DATA_DIR", str(there / "data"))
    code, out, err = run_main(train_main, [*args, "trainer.max_steps=6", f"ckpt_path={run}"], capsys)
    assert code == 2 and f"{there / 'data'}" in err and "could not be downloaded" in err, out + err
    # A recorded folder that is gone (the run copied to another machine) leaves ./data of this one.
    monkeypatch.delenv("CHARGPT_DATA_DIR")
    assert not (there / "data").exists()  # the failed download above leaves no folder behind
    (here / "data").rename(there / "data")
    code, out, err = run_main(train_main, [*args, "trainer.max_steps=6", f"ckpt_path={run}"], capsys)
    assert code == 0 and _state(run)["global_step"] == 6, out + err


@pytest.mark.slow
def test_a_resume_from_the_file_its_checkpoint_callback_wrote_elsewhere_reads_the_runs_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A run whose checkpoint callback writes in a folder of its own, resumed in its folder from that
    # file (ckpt_path=KEPT/last.ckpt hydra.run.dir=RUN, as its warning says) from another folder, looked
    # for the default corpus there (offline: an error), where ckpt_path=RUN reads the data directory the
    # run was launched with: what a resume reads of its run (its saved config, its budget plan) was
    # read from the checkpoint's own folder, which holds none.
    here, there = tmp_path / "here", tmp_path / "there"
    offline_default_corpus_in(here, monkeypatch)
    there.mkdir()
    run, kept = tmp_path / "my runs é 🚀" / "run", tmp_path / "my runs é 🚀" / "kept"
    args = on_the_default_corpus(bare_train_args(
        Path("unused"), run, "trainer.val_check_interval=2", "~callbacks.last_checkpoint",
        "~callbacks.model_checkpoint",
        f"+callbacks.cc1={{_target_: lightning.pytorch.callbacks.ModelCheckpoint, dirpath: '{kept}', "
        "save_last: true}"))
    monkeypatch.chdir(here)
    code, _, err = run_main(train_main, [*args, "trainer.max_steps=2"], capsys)
    assert code == 0, err
    monkeypatch.chdir(there)
    code, out, err = run_main(train_main, [*args, "trainer.max_steps=4", f"ckpt_path={kept / 'last.ckpt'}"],
                              capsys)
    assert code == 0, out + err
    assert f"data directory: {here / 'data'}, the resumed run's" in out + err
    assert not (there / "data").exists() and json.loads((run / "metrics.json").read_text())["step"] == 4


def test_the_resume_command_names_files_as_launched_so_it_works_from_anywhere(tmp_path) -> None:
    overrides = ["data=text", "data.path=my texts/a.txt", "data.val_path=/corpora/v.txt", "data.name=tiny",
                 "seed=1", "ckpt_path=old"]
    command = resume_command("/runs/r", overrides, cwd="/home/me")
    assert shlex.split(command) == [
        "chargpt-train", "data=text", "data.path=/home/me/my texts/a.txt", "data.val_path=/corpora/v.txt",
        "data.name=tiny", "seed=1", "ckpt_path=/runs/r",
    ]
    # `~` and `$VAR` (which chargpt expands) name the same file from anywhere: kept as typed, where
    # they were named /home/me/~/a.txt. `./texts`, `texts` and `texts/` are one folder.
    command = resume_command("/runs/r", ["data.path=~/a.txt", "data.val_path=$CORPORA/v.txt",
                                         "paths.data_dir=./texts/"], cwd="/home/me")
    assert shlex.split(command)[1:4] == ["data.path=~/a.txt", "data.val_path=$CORPORA/v.txt",
                                         "paths.data_dir=/home/me/texts"]
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    cwd: /home/me\n")
    assert launch_cwd(tmp_path / ".hydra") == "/home/me" and launch_cwd(tmp_path / "nowhere") is None


def test_the_resume_command_names_the_data_and_output_folders_as_launched() -> None:
    # A relative paths.data_dir was printed as typed: resumed from another folder, the run read
    # its text from elsewhere (and put an MLflow store under another paths.output_root).
    overrides = ["paths.data_dir=corpora", "paths.output_root=my runs", "paths.data_dir=/srv/data"]
    assert shlex.split(resume_command("/runs/r", overrides, cwd="/home/me")) == [
        "chargpt-train", "paths.data_dir=/home/me/corpora", "paths.output_root=/home/me/my runs",
        "paths.data_dir=/srv/data", "ckpt_path=/runs/r",
    ]
    # An interpolation names no folder of the launch's: it stays as typed, as does a folder left empty.
    kept = ["paths.data_dir=${oc.env:DATA}", "paths.output_root=null"]
    command = resume_command("/runs/r", kept, cwd="/home/me")
    assert shlex.split(command) == ["chargpt-train", *kept, "ckpt_path=/runs/r"]


def test_the_resume_command_names_a_local_builders_files_as_launched(tmp_path) -> None:
    # data.data_files=corpus/*.txt was printed as typed: resumed from another folder, the run read
    # that folder's files, or none ("the train split of dataset text (train) has 45 characters").
    (tmp_path / "my corpus").mkdir()
    (tmp_path / "my corpus" / "a.txt").write_text("text")
    typed = ["data=hf", "data.name=text", "data.data_files='my corpus/*.txt'"]
    command = shlex.split(resume_command("/runs/r", typed, cwd=str(tmp_path)))
    assert command[3] == f"data.data_files='{tmp_path}/my corpus/*.txt'"
    # So is each pattern of a list, and of a mapping of splits (Hydra's grammar), where it matches
    # files: they stayed relative, and the command pasted in another folder read none there.
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "c.txt").write_text("text")
    corpus, b = f"{tmp_path}/my corpus/*.txt", f"{tmp_path}/b/*.txt"
    for typed_files, named in (("['my corpus/*.txt',b/*.txt]", f"[{corpus},{b}]"),
                               ("{train:'my corpus/*.txt',validation:[b/*.txt, nowhere/*.txt]}",
                                f"{{train:{corpus},validation:[{b},nowhere/*.txt]}}")):
        listed = ["data=hf", "data.name=text", f"data.data_files={typed_files}"]
        command = shlex.split(resume_command("/runs/r", listed, cwd=str(tmp_path)))
        assert command[3] == f"data.data_files={named}"
        assert launched_from(command[1:4], "/elsewhere", LOCAL_BUILDERS) == \
            launched_from(listed, str(tmp_path), LOCAL_BUILDERS)
    # Launched in a folder with a glob's brackets in its name: escaped, not read as a wildcard.
    there = tmp_path / "x [v2]"
    there.mkdir()
    (there / "a.txt").write_text("text")
    typed = ["data=hf", "data.name=text", "data.data_files=*.txt", "data.val_path=a*.txt", "data.path=a.txt"]
    escaped = f"{tmp_path}/x [[]v2]"
    assert shlex.split(resume_command("/runs/r", typed, cwd=str(there)))[3:6] == [
        f"data.data_files='{escaped}/*.txt'", f"data.val_path={escaped}/a*.txt", f"data.path={there}/a.txt"]
    # A hub dataset's files (none here), and a list and a mapping of them, stay as typed.
    kept = ["data.data_files=data/train-*.parquet", "data.data_files=[a.txt]",
            "data.data_files={train:a.txt}"]
    assert shlex.split(resume_command("/runs/r", kept, cwd=str(tmp_path)))[1:4] == kept
    # A hub dataset's files are named inside it, even where the folder launched from holds such files;
    # a sweep continued from another folder compares them so too.
    hub = ["data=hf", "data.name=someone/corpus", "data.data_files='my corpus/*.txt'"]
    assert shlex.split(resume_command("/runs/r", hub, cwd=str(tmp_path)))[1:4] == hub
    assert launched_from(hub, str(tmp_path), LOCAL_BUILDERS) == \
        launched_from(hub, "/elsewhere", LOCAL_BUILDERS)


def test_a_config_files_local_builder_names_its_data_files_as_launched(tmp_path: Path) -> None:
    # data.name=text given by a config file (a data config of one's own: `name: text`), none typed:
    # the pattern stayed relative, and the printed command, pasted in another folder, read no files
    # ("data.data_files=.../corpus/*.txt matches no files").
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("text")
    typed = ["data=mytext", "data.data_files=corpus/*.txt"]
    absolute = f"data.data_files='{tmp_path}/corpus/*.txt'"
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("data:\n  name: text\n")
    # The run's saved config says which data.name it composed; a caller may say so itself.
    assert shlex.split(resume_command(run_dir, typed, cwd=str(tmp_path)))[2] == absolute
    assert shlex.split(resume_command("/runs/r", typed, cwd=str(tmp_path), data_name="text"))[2] == absolute
    assert launched_from(typed, str(tmp_path), LOCAL_BUILDERS, "text")[1] == absolute
    # A hub dataset's composed name, or none recorded: its files are named inside it.
    assert launched_from(typed, str(tmp_path), LOCAL_BUILDERS, "someone/corpus") == typed
    assert launched_from(typed, str(tmp_path), LOCAL_BUILDERS) == typed
    # A typed data.name wins over the composed one; a swept one is local where each value is.
    hub = ["data.name=someone/corpus", *typed]
    assert launched_from(hub, str(tmp_path), LOCAL_BUILDERS, "text") == hub
    for names, local in (("text,json", True), ("choice(text,csv)", True), ("text,someone/corpus", False)):
        swept = launched_from([f"data.name={names}", *typed], str(tmp_path), LOCAL_BUILDERS, "someone/x")
        assert (swept[2] == absolute) is local, names


def test_a_data_files_pattern_typed_absolute_reads_as_the_same_relative_one(tmp_path: Path) -> None:
    # A sweep launched with data.data_files=corpus/*.txt, continued from elsewhere with the pattern
    # typed absolute (unquoted), was refused as "other settings": only Hydra's quoting differed.
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("text")
    first = launched_from(["data.name=text", "data.data_files=corpus/*.txt"], str(tmp_path), LOCAL_BUILDERS)
    typed_absolute = ["data.name=text", f"data.data_files={tmp_path}/corpus/*.txt"]
    assert launched_from(typed_absolute, "/elsewhere", LOCAL_BUILDERS) == first
    # An interpolation stays as typed: quoting it would make it literal text.
    interpolated = ["data.name=text", "data.data_files=${oc.env:CORPUS}/*.txt"]
    assert launched_from(interpolated, "/elsewhere", LOCAL_BUILDERS) == interpolated


@pytest.mark.parametrize(("split", "refused"), [({"val_path": None, "split": None}, True),
                                                ({"val_path": "/texts/held out.txt", "split": None}, False),
                                                ({"val_path": None, "split": "files"}, False)])
def test_a_resume_with_another_train_fraction_is_refused_only_where_the_fraction_cut_the_text(
    split: dict, refused: bool, tmp_path: Path
) -> None:
    # A run validated on a text of its own, or on whole files, never used its fraction.
    ckpt = torch.load(make_checkpoint(tmp_path / "m.ckpt"), weights_only=True)
    ckpt["callbacks"] = {RESUME_STATE_KEY: {"corpus": None, "split": {"train_fraction": 0.9, **split}}}
    config = ModelConfig.from_dict(ckpt["hyper_parameters"]["model"])
    vocab = ckpt["hyper_parameters"]["vocab"]
    resume = functools.partial(check_resumable, ckpt, "m.ckpt", config, vocab, None)
    resume(train_fraction=0.9)
    for other in (0.8, 0.95):  # more moves validation text into training; less, training text out
        if refused:
            with pytest.raises(CheckpointError, match=rf"fraction={other}: its run split the text at 0.9"):
                resume(train_fraction=other)
        else:
            resume(train_fraction=other)


def test_a_resume_with_another_data_seed_is_refused_above_or_below(tmp_path: Path) -> None:
    ckpt = torch.load(make_checkpoint(tmp_path / "m.ckpt"), weights_only=True)
    ckpt["callbacks"] = {RESUME_STATE_KEY: {"corpus": None, "data_seed": 1337}}
    config = ModelConfig.from_dict(ckpt["hyper_parameters"]["model"])
    vocab = ckpt["hyper_parameters"]["vocab"]
    resume = functools.partial(check_resumable, ckpt, "m.ckpt", config, vocab, None)
    resume(data_seed=1337)
    for other in (7, 2024):  # either draws other batches from here on
        with pytest.raises(CheckpointError, match=rf"data.seed={other}: its run drew its batches with 1337"):
            resume(data_seed=other)


@pytest.mark.parametrize("mode", [None, "offline"])
def test_the_resume_command_keeps_wandbs_mode(mode: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # An offline W&B run's printed command left WANDB_MODE out: pasted into a new shell, it
    # needed a login, and would have logged the rest of the run apart from its first part.
    monkeypatch.delenv("WANDB_MODE", raising=False)
    if mode:
        monkeypatch.setenv("WANDB_MODE", mode)
    with in_hydra_run(["seed=3", "logger=wandb"]):
        command = resume_command("/runs/my run")
    prefix = [f"WANDB_MODE={mode}"] if mode else []
    assert shlex.split(command) == [*prefix, "chargpt-train", "seed=3", "logger=wandb",
                                    "ckpt_path=/runs/my run"]


def test_the_resume_command_carries_the_python_path_the_run_imported_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run with a logger of one's own (PYTHONPATH=mine chargpt-train logger=mine ...) was told to
    # resume without PYTHONPATH: pasted into a new shell, its logger could not be imported.
    (tmp_path / "my folder").mkdir()
    (tmp_path / "my folder" / "my_resumed_logger.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("PYTHONPATH", "my folder")  # as typed: relative to where the run started
    with in_hydra_run(["seed=3"]):
        plain = ["chargpt-train", "seed=3", "ckpt_path=/runs/r"]
        assert shlex.split(resume_command("/runs/r")) == plain  # nothing imported from it: not needed
        # A package found in a folder below it (an editable install's src/, a virtual environment
        # inside the project) was not imported through it: still not needed.
        (tmp_path / "my folder" / "src" / "my_installed_pkg").mkdir(parents=True)
        (tmp_path / "my folder" / "src" / "my_installed_pkg" / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path / "my folder" / "src"))
        monkeypatch.syspath_prepend(str(tmp_path / "my folder"))
        try:
            __import__("my_installed_pkg")
            assert shlex.split(resume_command("/runs/r")) == plain
            __import__("my_resumed_logger")
            command = resume_command("/runs/r")
            # A module of a folder without __init__.py (a namespace package, as hydra_plugins is)
            # is imported through it too.
            sys.modules.pop("my_resumed_logger")
            (tmp_path / "my folder" / "my_callbacks").mkdir()
            (tmp_path / "my folder" / "my_callbacks" / "printer.py").write_text("")
            __import__("my_callbacks.printer")
            through_a_namespace = resume_command("/runs/r")
        finally:
            for name in ("my_resumed_logger", "my_installed_pkg", "my_callbacks.printer", "my_callbacks"):
                sys.modules.pop(name, None)
    assert shlex.split(command) == [f"PYTHONPATH={tmp_path / 'my folder'}", *plain]
    assert shlex.split(through_a_namespace) == shlex.split(command)


def test_the_reports_resume_command_carries_the_python_path_the_run_imported_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # chargpt-train's own resume command said PYTHONPATH=..., chargpt-report's of the same stopped
    # run did not: pasted into a new shell, the run's callback of its own could not be imported.
    from chargpt.runs.report import report

    mine = callback_of_ones_own(tmp_path, monkeypatch, "my_report_callback")
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "runs" / "mine"
    own = "+callbacks.mine._target_=my_report_callback.Mine"
    try:
        code, _, err = run_main(train_main, bare_train_args(corpus, run, own, "trainer.max_steps=2"), capsys)
    finally:
        sys.modules.pop("my_report_callback", None)
    assert code == 0, err
    (run / "status.json").write_text(json.dumps({"status": "interrupted"}))  # as a Ctrl-C leaves it
    monkeypatch.delenv("PYTHONPATH")  # the report is read from another shell
    report(tmp_path / "runs")
    out = capsys.readouterr().out
    resume = out.split("resume it from its last checkpoint with:\n", 1)[1].splitlines()[0]
    assert shlex.split(resume)[:2] == [f"PYTHONPATH={mine}", "chargpt-train"]
    assert shlex.split(resume)[-1] == f"ckpt_path={run}"


@pytest.mark.slow
def test_a_run_killed_while_writing_last_ckpt_goes_on_from_its_newest_best(tmp_path, monkeypatch, capsys):
    # Killed between best-<step>.ckpt and last.ckpt: the run was said to have no checkpoint, and
    # starting it over as advised left the killed run's best file among the new run's.
    import socket
    import subprocess

    corpus = write_corpus(tmp_path / "corpus.txt")
    common = ["trainer.val_check_interval=4", "callbacks.model_checkpoint.save_top_k=-1"]
    code, _, err = run_main(train_main, bare_train_args(corpus, tmp_path / "straight", *common,
                                                        "trainer.max_steps=12"), capsys)
    assert code == 0, err
    run = tmp_path / "killed"
    code, _, err = run_main(train_main, bare_train_args(corpus, run, *common, "trainer.max_steps=12"), capsys)
    assert code == 0, err
    for late in ("last.ckpt", "best-000012.ckpt"):
        (run / "checkpoints" / late).unlink()  # as if killed at step 8, writing last.ckpt after best
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "step": 8}))
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": gone.pid,
                                                 "host": socket.gethostname()}))

    code, _, err = run_main(train_main, bare_train_args(corpus, run, *common, "trainer.max_steps=12"), capsys)
    assert code == 2 and "already holds a run; continue it with chargpt-train " in err
    assert shlex.quote(f"ckpt_path={run}") in err
    code, _, err = run_main(train_main, bare_train_args(corpus, run, *common, "trainer.max_steps=12",
                                                        f"ckpt_path={run}"), capsys)
    assert code == 0, err
    a, b = _state(tmp_path / "straight"), _state(run)
    assert a["global_step"] == b["global_step"] == 12
    assert all(torch.equal(value, b["state_dict"][key]) for key, value in a["state_dict"].items())


@pytest.mark.parametrize("resumed_from", ["last.ckpt", "best-000004.ckpt"])
def test_a_run_resumed_from_its_best_checkpoint_keeps_only_its_latest_best(
    resumed_from, tmp_path, monkeypatch, capsys
):
    # Killed (-9) while it wrote its first last.ckpt, a run resumed from its best-000004.ckpt kept that
    # file beside each later best (Lightning keeps the file a run resumed from); a run stopped by a
    # signal, resumed from its last.ckpt, kept only the latest.
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run é 🙂"
    # (a rate at which the later validations improve on step 4's, so that a later best supersedes it)
    common = ["trainer.val_check_interval=4", "trainer.max_steps=12", "optimizer.lr=1e-2",
              "scheduler=constant"]
    StepHook(monkeypatch).send_signal_at(4)
    code, _, err = run_main(train_main, bare_train_args(corpus, run, *common), capsys)
    assert code == 130, err
    checkpoints = run / "checkpoints"
    if resumed_from != "last.ckpt":
        (checkpoints / "last.ckpt").unlink()  # as if killed while writing it
    code, _, err = run_main(train_main, bare_train_args(corpus, run, *common,
                                                        f"ckpt_path={checkpoints / resumed_from}"), capsys)
    assert code == 0, err
    assert len(list(checkpoints.glob("best-*.ckpt"))) == 1, sorted(p.name for p in checkpoints.iterdir())


def test_only_a_best_at_the_runs_own_step_stands_for_a_missing_last_ckpt(tmp_path) -> None:
    # A run trained without callbacks.last_checkpoint, past its best: going on from that best
    # would train its later steps again, silently, and overwrite its metrics.
    from chargpt.run_layout import last_checkpoint

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for step in (4, 8):
        (checkpoints / f"best-{step:06d}.ckpt").write_bytes(b"PK")
    (tmp_path / "metrics.json").write_text('{"step": 8}')
    assert last_checkpoint(tmp_path) == checkpoints / "best-000008.ckpt"
    (tmp_path / "metrics.json").write_text('{"step": 12}')
    assert last_checkpoint(tmp_path) is None
    torch.save({"epoch": 0, "global_step": 8, "state_dict": {}}, checkpoints / "last.ckpt")
    assert last_checkpoint(tmp_path) == checkpoints / "last.ckpt"
    # Killed while it rewrote last.ckpt just after a new best at step 12: its last.ckpt holds step 8.
    (checkpoints / "best-000012.ckpt").write_bytes(b"PK")
    assert last_checkpoint(tmp_path) == checkpoints / "best-000012.ckpt"
    # Its last.ckpt at step 12 (written after that best): whatever the files' times, as a copied
    # folder (cp -r) gives them in the order it copies them.
    torch.save({"epoch": 0, "global_step": 12, "state_dict": {}}, checkpoints / "last.ckpt")
    for name, seconds in (("last.ckpt", 900_000), ("best-000012.ckpt", 1_000_000)):
        os.utime(checkpoints / name, (seconds, seconds))
    assert last_checkpoint(tmp_path) == checkpoints / "last.ckpt"
    # One that cannot be read (cut off as it was written): the best at the run's step stands in.
    (checkpoints / "last.ckpt").write_bytes(b"PK")
    assert last_checkpoint(tmp_path) == checkpoints / "best-000012.ckpt"


def test_the_resume_command_keeps_the_overrides_as_typed() -> None:
    # It printed `${oc.env:...}` resolved and an escaped `\${...}` unescaped: another command.
    typed = ["seed=${oc.env:SEEDX,3}", "+tag=a\\${x}"]
    with in_hydra_run(typed):
        command = resume_command("/runs/my run")
    assert shlex.split(command) == ["chargpt-train", *typed, "ckpt_path=/runs/my run"]


class _KilledMidWrite(BaseException):
    """The process ending while it writes a checkpoint (kill -9, a lost machine): nothing after it runs."""


@pytest.mark.parametrize("dying", ["best-000004.ckpt", "last.ckpt"])
def test_a_run_killed_while_writing_a_checkpoint_records_the_step_it_goes_on_from(
    dying, tmp_path, monkeypatch, capsys
):
    # Killed while it wrote best-000004.ckpt, metrics.json (and chargpt-report) said step 4 and
    # that validation's loss, where the run's newest checkpoint, the one it resumes from, was at 2.
    from chargpt import checkpoints
    from chargpt.run_layout import last_checkpoint

    save = checkpoints.torch.save
    died = []

    def save_unless_dying(obj, f):  # type: ignore[no-untyped-def]
        if obj.get("global_step") == 4 and Path(f).name.startswith(f".{dying}"):
            died.append(f)
            raise _KilledMidWrite
        save(obj, f)

    monkeypatch.setattr(checkpoints.torch, "save", save_unless_dying)
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "trainer.max_steps=6", "trainer.val_check_interval=2",
                           "callbacks.model_checkpoint.save_top_k=-1")
    with pytest.raises(_KilledMidWrite):
        run_main(train_main, args, capsys)
    assert died
    resumes_from = last_checkpoint(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert torch.load(resumes_from, weights_only=True)["global_step"] == metrics["step"]
    assert metrics["step"] == (2 if dying.startswith("best") else 4)


def test_a_finished_run_launched_again_is_told_its_own_resume_command(tmp_path, capsys):
    # Told `continue it with 'ckpt_path=RUN'`, a user typed that alone: the defaults it then took
    # (model=tiny's shape, 3000 steps) were refused, or trained far past the run's own 2 steps.
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "my run é"
    args = bare_train_args(corpus, run, "model.n_layer=1", "trainer.max_steps=2",
                           "trainer.val_check_interval=2")
    code, _, err = run_main(train_main, args, capsys)
    assert code == 0, err
    code, _, err = run_main(train_main, args, capsys)
    assert code == 2
    advice = err.strip().partition("continue it with ")[2].partition(", or pick a new hydra.run.dir")[0]
    words = shlex.split(advice)
    assert words[0] == "chargpt-train" and f"ckpt_path={run}" in words
    assert {"model.n_layer=1", "trainer.max_steps=2", f"data.path={corpus}"} <= set(words)
    assert not any(w.startswith("hydra.run.dir=") for w in words)
