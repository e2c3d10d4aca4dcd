"""Reading a run's checkpoint for use: its weights, never its optimizer's state, one whole
checkpoint while its run replaces the file, and a run still starting said to be so."""

from __future__ import annotations

import gc
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import chargpt
from chargpt.checkpoint_step import checkpoint_step
from chargpt.checkpoints import READ_TRIES
from chargpt.cli import sample as sample_cli
from chargpt.cli import train as train_cli
from chargpt.errors import CheckpointError
from chargpt.inference import load_with_checkpoint
from chargpt.run_layout import CONFIG_DIR, LOCK_FILE
from chargpt.runs.status import write_status
from conftest import bare_train_args, make_checkpoint, run_main, write_corpus

PEAK_RESET = Path("/proc/self/clear_refs")  # Linux: writing 5 starts the peak resident memory again


def _status_bytes(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert found, field
    return int(found[1]) * 1024


def _reset_peak_memory() -> None:
    try:
        PEAK_RESET.write_text("5")
    except OSError:
        pytest.skip("this system cannot reset a process's peak resident memory (/proc/self/clear_refs)")


def test_using_a_model_reads_its_weights_and_leaves_the_optimizers_state_unread(tmp_path: Path) -> None:
    # A run's checkpoint holds AdamW's two moments beside the weights (three times the weights): read
    # whole into memory, they made chargpt-serve say "the model itself does not fit" of a model that
    # fit, and chargpt-sample, chargpt-eval, chargpt-export and chargpt.load hold them as they load.
    file = make_checkpoint(tmp_path / "run.ckpt")
    ckpt = torch.load(file, weights_only=True)
    moments = 64 * 2**20  # bytes: far more than the test's model and everything else the load takes
    ckpt["optimizer_states"] = [{"state": {0: {"exp_avg": torch.ones(moments // 4)}}}]
    torch.save(ckpt, file)
    del ckpt
    gc.collect()
    _reset_peak_memory()
    before = _status_bytes("VmRSS")
    model = chargpt.load(file)
    grew = _status_bytes("VmHWM") - before
    assert model.generate("a", max_new_tokens=3, seed=0)
    assert grew < moments / 2, f"loading the model took {grew / 2**20:.0f} MiB at its peak"


def _with_weights(file: Path, ckpt: dict, shift: float, record: str) -> Path:
    """`ckpt` with its weights shifted, and a record of another length: its tensors lie elsewhere."""
    torch.save({**ckpt, "state_dict": {k: v + shift for k, v in ckpt["state_dict"].items()},
                "chargpt_training": {"command": record}}, file)
    return file


def _model_weights(file: Path) -> dict[str, torch.Tensor]:
    return {k.removeprefix("model."): v for k, v in torch.load(file, weights_only=True)["state_dict"].items()}


def _replaced_as_it_is_mapped(monkeypatch: pytest.MonkeyPatch, file: Path, replacements: list[Path]) -> None:
    """A run's save (a new file renamed over `file`) landing each time torch.load maps `file`:
    after it opened the file for the archive's index, before it opened it again for the data."""
    maps = torch.UntypedStorage.from_file

    def replaced_first(name: str, shared: bool, size: int) -> torch.UntypedStorage:
        if replacements and Path(name) == file:
            replacements.pop(0).replace(file)
            size = file.stat().st_size
        return maps(name, shared, size)

    monkeypatch.setattr(torch.UntypedStorage, "from_file", replaced_first)


def test_a_checkpoint_replaced_while_it_is_read_is_read_again_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chargpt-serve (or -sample, -eval, -export) reading last.ckpt as its run saved a new one: the
    # archive's index of the old file read the new file's bytes, and the model was served with
    # weights that were neither's (the bytes of the new file's record, read as floats).
    file = make_checkpoint(tmp_path / "last.ckpt")
    ckpt = torch.load(file, weights_only=True)
    new = _with_weights(tmp_path / "new.ckpt", ckpt, 1.0, "x" * 5000)
    saved = [_model_weights(file), _model_weights(new)]
    _replaced_as_it_is_mapped(monkeypatch, file, [new])
    weights = chargpt.load(file).model.state_dict()
    # The one or the other, whole (the new one, as it is read again)
    assert any(weights.keys() == one.keys() and all(torch.equal(weights[k], v) for k, v in one.items())
               for one in saved), weights["tok_emb.weight"][0, :4]


def test_a_checkpoint_replaced_at_every_read_is_one_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = make_checkpoint(tmp_path / "last.ckpt")
    ckpt = torch.load(file, weights_only=True)
    saves = [_with_weights(tmp_path / f"save{i}.ckpt", ckpt, i, "x" * 1000 * i)
             for i in range(1, READ_TRIES + 1)]
    _replaced_as_it_is_mapped(monkeypatch, file, saves)
    said = (rf"^{re.escape(str(file))} was replaced while it was read, {READ_TRIES} times \(its run is "
            r"writing checkpoints\); try again")
    with pytest.raises(CheckpointError, match=said):
        chargpt.load(file)


# A run claiming its folder as runs/claims.py does: its lock file, locked, holding its pid.
_CLAIMS_ITS_FOLDER = """if True:
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\\n".encode())
    print("claimed", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(os.name != "posix", reason="run folders are locked on POSIX systems")
def test_a_run_still_starting_is_said_to_be_starting_not_to_be_trained_again(tmp_path: Path, capsys) -> None:
    # chargpt-serve (or -sample, -eval, -export) given a run that had not yet recorded its first step
    # (reading its text, building its model) said "it never began training (stopped or killed while
    # it started, or starting right now) ...; train it again", which the run then refused as in use.
    run = tmp_path / "run"
    (run / CONFIG_DIR).mkdir(parents=True)
    starting = subprocess.Popen([sys.executable, "-c", _CLAIMS_ITS_FOLDER, str(run / LOCK_FILE)],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert starting.stdout is not None and starting.stdout.readline() == "claimed\n"
        said = (f"run directory {run} holds no checkpoint yet: its run is starting (pid {starting.pid}); try "
                "again once it has written one")
        with pytest.raises(CheckpointError, match=f"^{re.escape(said)}$"):
            chargpt.load(run)
        code, _, err = run_main(sample_cli.main, [f"ckpt_path={run}"], capsys)
        assert (code, err) == (2, f"error: {said}\n")
    finally:
        starting.kill()
        starting.wait()
    # The run's process gone (killed as it started): nothing there, as before.
    with pytest.raises(CheckpointError, match=r"holds no checkpoint: it never began training"):
        chargpt.load(run)


@pytest.mark.skipif(os.name != "posix", reason="run folders are locked on POSIX systems")
def test_a_lock_file_naming_a_live_process_that_is_no_run_is_not_a_run_starting(tmp_path: Path) -> None:
    # The pid a run killed as it started left in its lock file, now another process's (or, in a folder
    # copied from another machine, any process's here), was said to be its run "starting; try again
    # once it has written one", which it never would.
    run = tmp_path / "run"
    (run / CONFIG_DIR).mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_FILE).write_text(f"{other.pid}\n")
        with pytest.raises(CheckpointError, match=r"holds no checkpoint: it never began training"):
            chargpt.load(run)
    finally:
        other.kill()
        other.wait()


def test_what_a_command_keeps_of_a_checkpoint_holds_no_map_of_its_file(tmp_path: Path) -> None:
    # The checkpoint is memory-mapped as it is read: a callback's score kept from it kept the whole file
    # mapped, so a checkpoint its run replaced stayed on disk, hidden, for as long as chargpt-sample or
    # chargpt-eval ran, and one rewritten in place (`cp` over it) could end them with a bus error.
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("this system does not list a process's memory maps (/proc/self/maps)")
    file = make_checkpoint(tmp_path / "run.ckpt")
    ckpt = torch.load(file, weights_only=True)
    ckpt["callbacks"] = {"ModelCheckpoint": {"current_score": torch.tensor(1.5)}}
    ckpt["optimizer_states"] = [{"state": {0: {"exp_avg": torch.ones(8)}}}]
    torch.save(ckpt, file)
    del ckpt
    gc.collect()
    trained, kept, _ = load_with_checkpoint(file)
    gc.collect()
    assert str(file) not in maps.read_text()
    assert kept["callbacks"]["ModelCheckpoint"]["current_score"] == 1.5  # what a model card reads
    assert "state_dict" not in kept and "optimizer_states" not in kept  # the model holds the weights
    assert trained.generate("a", max_new_tokens=3, seed=0)


@pytest.mark.parametrize(("typed", "said"), [
    (" ", "checkpoint not found: ' '; "),
    ("\t", r"checkpoint not found: '\t'; "),
    ("model\n.ckpt", r"checkpoint not found: 'model\n.ckpt'; "),
])
def test_a_checkpoint_path_not_found_is_named_visibly(typed: str, said: str, tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    # chargpt.load(" ") said "checkpoint not found:  ; pass ...", its name unseen, and a newline in a
    # path broke the one error line in two.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=f"^{re.escape(said)}pass an existing"):
        chargpt.load(typed)
    code, _, err = run_main(sample_cli.main, [f"ckpt_path={typed}"], capsys)
    assert code == 2 and err.startswith(f"error: {said}pass an existing") and err.count("\n") == 1, err


def test_a_checkpoint_path_with_a_space_after_it_names_the_one_without(tmp_path: Path, capsys) -> None:
    # A run folder's path pasted with a space after it said "checkpoint not found: RUN ; ..." of a run
    # that is there.
    # The name without them is quoted, to paste as it is (it was not: the shell split it at its space).
    model = make_checkpoint(tmp_path / "my model é🙂.ckpt")
    said = (f"checkpoint not found: {str(model) + ' '!r} (the name has spaces around it, and "
            f"{shlex.quote(str(model))} exists); pass it without them")
    with pytest.raises(CheckpointError, match=f"^{re.escape(said)}: {re.escape(shlex.quote(str(model)))}$"):
        chargpt.load(f"{model} ")
    code, _, err = run_main(sample_cli.main, [f"ckpt_path='{model} '"], capsys)
    assert (code, err) == (2, f"error: {said}: {shlex.quote(f'ckpt_path={model}')}\n")


def test_a_checkpoint_path_with_a_space_before_it_names_the_one_without(tmp_path: Path, monkeypatch,
                                                                        capsys) -> None:
    # A space after `=` ("ckpt_path= my runs/r 1", as `ckpt_path=' my runs/r 1'` hands it over) got no
    # hint: only spaces around the last name were looked for.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my runs" / "r 1" / "checkpoints").mkdir(parents=True)
    make_checkpoint(tmp_path / "my runs" / "r 1" / "checkpoints" / "last.ckpt")
    code, _, err = run_main(sample_cli.main, ["ckpt_path= my runs/r 1"], capsys)
    assert (code, err) == (2, "error: checkpoint not found: ' my runs/r 1' (the name has spaces around it, "
                              "and 'my runs/r 1' exists); pass it without them: 'ckpt_path=my runs/r 1'\n")
    run = tmp_path / "my runs" / "r 1"
    code, _, err = run_main(sample_cli.main, [f"ckpt_path= {run}"], capsys)  # from the root
    assert (code, err) == (2, f"error: checkpoint not found: {' ' + str(run)!r} (the name has spaces around "
                              f"it, and {shlex.quote(str(run))} exists); pass it without them: "
                              f"{shlex.quote(f'ckpt_path={run}')}\n")


@pytest.mark.parametrize("typed", ["runs /r 1 ", " runs /r 1"])
def test_a_folder_whose_name_ends_in_a_space_keeps_it_in_the_hint(typed: str, tmp_path: Path, monkeypatch,
                                                                   capsys) -> None:
    # 'runs ' is a folder's own name: the spaces stripped from every name gave 'runs/r 1', which is
    # not there, so a run pasted with a space after it got no hint (it did before spaces before it
    # were looked for).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs " / "r 1" / "checkpoints").mkdir(parents=True)
    make_checkpoint(tmp_path / "runs " / "r 1" / "checkpoints" / "last.ckpt")
    code, _, err = run_main(sample_cli.main, [f"ckpt_path={typed}"], capsys)
    assert (code, err) == (2, f"error: checkpoint not found: {typed!r} (the name has spaces around it, and "
                              "'runs /r 1' exists); pass it without them: 'ckpt_path=runs /r 1'\n")


def test_weights_that_do_not_match_their_settings_are_one_error_line(tmp_path: Path, capsys) -> None:
    # torch's "Error(s) in loading state_dict for GPT:" and a tab-indented line per tensor, cut at 200
    # characters, made the error three lines, the last cut mid-word.
    ckpt = torch.load(make_checkpoint(tmp_path / "model.ckpt"), weights_only=True)
    ckpt["hyper_parameters"]["model"]["n_embd"] = 64
    edited = tmp_path / "edited, é.ckpt"
    torch.save(ckpt, edited)
    code, out, err = run_main(sample_cli.main, [f"ckpt_path={edited}", "max_new_tokens=3"], capsys)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: the weights in {edited} do not match its model settings (size mismatch "
                          "for tok_emb.weight: copying a param with shape torch.Size([13, 32]) from "
                          "checkpoint, the shape in current model is torch.Size([13, 64]); and "), err


def test_a_run_whose_only_checkpoint_is_an_older_best_names_that_file(tmp_path: Path, capsys) -> None:
    # Trained without callbacks.last_checkpoint, its validations after step 10 not improving on its best:
    # its folder gives no checkpoint (going on from that best would train steps 11 to 20 again), which
    # chargpt-sample and a resume said as "it was trained without a checkpoint callback (e.g.
    # callbacks=none)", naming no file it has.
    run = tmp_path / "my runs é 🚀"
    (run / CONFIG_DIR).mkdir(parents=True)
    (run / "checkpoints").mkdir()
    best = make_checkpoint(run / "checkpoints" / "best-000010.ckpt")
    (run / "metrics.json").write_text('{"step": 20}')
    said = (f"run directory {run} has no checkpoints/last.ckpt, and its newest checkpoint, "
            "checkpoints/best-000010.ckpt, holds step 10 where the run reached step 20 (a resume from it "
            f"trains steps 11 to 20 again); to use that one, name it: {shlex.quote(f'ckpt_path={best}')}")
    code, _, err = run_main(sample_cli.main, [f"ckpt_path={run}"], capsys)
    assert (code, err) == (2, f"error: {said}\n")
    named = shlex.split(err.rpartition("name it: ")[2])
    code, out, err = run_main(sample_cli.main, [*named, "max_new_tokens=2"], capsys)
    assert code == 0, err
    assert f"sampling from {best}" in out + err


def _trained_writing_in_cc1(tmp_path: Path, capsys) -> tuple[Path, list[str], Path]:
    """A 2-step run in `my runs é 🚀` whose only checkpoint callback writes in ./cc1 (launched from
    tmp_path): its folder, its command's arguments, and the last.ckpt it wrote there."""
    run = tmp_path / "my runs é 🚀"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2",
                           "~callbacks.last_checkpoint", "~callbacks.model_checkpoint",
                           "+callbacks.cc1={_target_: lightning.pytorch.callbacks.ModelCheckpoint, "
                           "dirpath: cc1, save_last: true}")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    return run, args, tmp_path / "cc1" / "last.ckpt"


def test_a_run_whose_checkpoint_callback_wrote_elsewhere_names_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # Its only checkpoint callback wrote its last.ckpt in a folder of its own (dirpath: cc1, from where
    # the run was launched): chargpt-sample ckpt_path=RUN said it "was trained without a checkpoint
    # callback (e.g. callbacks=none)". Its saved config names the folder.
    monkeypatch.chdir(tmp_path)
    run, args, last = _trained_writing_in_cc1(tmp_path, capsys)
    assert last.is_file() and not (run / "checkpoints").exists()
    code, _, err = run_main(sample_cli.main, [f"ckpt_path={run}"], capsys)
    assert (code, err) == (2, f"error: run directory {run} holds no checkpoint: its checkpoint callback "
                              f"callbacks.cc1 wrote its checkpoints in {last.parent} (dirpath: cc1), not in "
                              f"its checkpoints/; name that file: {shlex.quote(f'ckpt_path={last}')} (and, "
                              f"to train it on in its own folder, {shlex.quote(f'hydra.run.dir={run}')})\n")
    named = shlex.split(err.partition("name that file: ")[2].partition(" (and, ")[0])
    code, out, err = run_main(sample_cli.main, [*named, "max_new_tokens=2"], capsys)
    assert code == 0, err
    assert f"sampling from {last}" in out + err
    # Killed, it is not "stopped before it wrote its first checkpoint": its command again does not start
    # it over, which would overwrite that file.
    write_status(run, status="running", pid=2**22 + 12345)
    kept = last.read_bytes()
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 2 and err.startswith(
        f"error: the run directory {run} already holds a run, whose checkpoint callback callbacks.cc1 wrote "
        f"its checkpoints in {last.parent} (dirpath: cc1); continue it from its newest there with "
        "chargpt-train "), err
    assert last.read_bytes() == kept
    # The command it names goes on in the run's own folder: its 'ckpt_path=.../cc1/last.ckpt' alone (what
    # that refusal and the run's warning named) went on in a new dated folder.
    command = shlex.split(err.partition(" from its newest there with ")[2].rpartition(", or pick")[0])
    assert command[-2:] == [f"hydra.run.dir={run}", f"ckpt_path={last}"]
    command = ["trainer.max_steps=4" if w == "trainer.max_steps=2" else w for w in command[1:]]
    code, out, err = run_main(train_cli.main, command, capsys)
    assert code == 0, err
    assert f"run dir {run}" in out + err
    assert json.loads((run / "metrics.json").read_text())["step"] == 4 == checkpoint_step(last)
    assert len(list((run / CONFIG_DIR).glob("resume-*"))) == 1  # its first config kept


def test_runs_whose_checkpoint_callbacks_share_a_folder_each_go_on_from_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # Two runs launched from one folder with the same 'dirpath: cc1' both write there: the second its
    # last-v1.ckpt beside the first's last.ckpt (Lightning's name for a file taken). Any file there was
    # taken for either run's: the second's warning named the first's last.ckpt with its own folder, and
    # that command trained the first run's weights on in the second's folder.
    monkeypatch.chdir(tmp_path)
    corpus = write_corpus(tmp_path / "corpus.txt")
    cc1 = ("+callbacks.cc1={_target_: lightning.pytorch.callbacks.ModelCheckpoint, dirpath: cc1, "
           "save_last: true}")
    first, second = (tmp_path / "my runs é 🚀" / name for name in ("first", "second"))
    outputs = []
    for run in (first, second):
        args = bare_train_args(corpus, run, "trainer.max_steps=2", "~callbacks.last_checkpoint",
                               "~callbacks.model_checkpoint", cc1)
        code, out, err = run_main(train_cli.main, args, capsys)
        assert code == 0, err
        outputs.append(out + err)
    theirs, ours = tmp_path / "cc1" / "last.ckpt", tmp_path / "cc1" / "last-v1.ckpt"
    assert theirs.is_file() and ours.is_file()
    told = shlex.split(outputs[1].partition("by name, in the run's own folder: ")[2].splitlines()[0])
    assert told == [f"ckpt_path={ours}", f"hydra.run.dir={second}"]
    # The first's file named with the second's folder is refused, naming the command of each; the second
    # run's folder is left as it was.
    config = (second / CONFIG_DIR / "config.yaml").read_bytes()
    code, _, err = run_main(train_cli.main, [*args, f"ckpt_path={theirs}", f"hydra.run.dir={second}"], capsys)
    assert code == 2 and err.startswith(
        f"error: {theirs} was written by the run in {first}, not by the run in {second}, whose checkpoint "
        f"callback writes in {theirs.parent} too; continue that run with chargpt-train "), err
    assert len(err.splitlines()) == 1
    assert (second / CONFIG_DIR / "config.yaml").read_bytes() == config
    assert not list((second / CONFIG_DIR).glob("resume-*"))
    commands = err.partition("; continue that run with ")[2].split(", or this one from its own newest with ")
    assert [shlex.split(c)[-2:] for c in commands] == [[f"hydra.run.dir={first}", f"ckpt_path={theirs}"],
                                                      [f"hydra.run.dir={second}", f"ckpt_path={ours}"]]
    # Each run's folder names its own file.
    for run, file in ((first, theirs), (second, ours)):
        code, _, err = run_main(sample_cli.main, [f"ckpt_path={run}"], capsys)
        assert code == 2 and f"name that file: {shlex.quote(f'ckpt_path={file}')} " in err, err
    # The second goes on in its own folder from its own file, by the command it was told.
    again = ["trainer.max_steps=4" if a == "trainer.max_steps=2" else a for a in args]
    code, out, err = run_main(train_cli.main, [*again, *told], capsys)
    assert code == 0, err
    assert json.loads((second / "metrics.json").read_text())["step"] == 4 == checkpoint_step(ours)
    assert checkpoint_step(theirs) == 2
    # The first's files gone, the second's left there are not taken for the first's.
    for file in (theirs, *tmp_path.glob("cc1/epoch=0-step=2.ckpt")):
        file.unlink()
    code, _, err = run_main(sample_cli.main, [f"ckpt_path={first}"], capsys)
    assert code == 2 and err.startswith(
        f"error: run directory {first} holds no checkpoint: its checkpoint callback callbacks.cc1 writes in "
        f"{theirs.parent} (dirpath: cc1), where none is its own ("), err
    assert f" there was written by the run in {second}, whose checkpoint callback writes there too); " in err


def test_the_command_that_continues_a_run_names_its_checkpoint_callbacks_folder_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # A run launched with a relative 'dirpath: cc1' is continued by the command its re-run's refusal
    # names; pasted in another folder, its 'dirpath: cc1' named a cc1 there: the run went on writing in
    # that one, where its saved config names the first (a later resume would go back to its older file).
    here, there = tmp_path / "my runs é 🚀", tmp_path / "elsewhere"
    here.mkdir()
    there.mkdir()
    monkeypatch.chdir(here)
    run = here / "run"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2",
                           "~callbacks.last_checkpoint", "~callbacks.model_checkpoint",
                           "+callbacks.cc1={_target_: lightning.pytorch.callbacks.ModelCheckpoint, "
                           "dirpath: cc1, save_last: true}")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 2, err
    command = shlex.split(err.partition(" from its newest there with ")[2].rpartition(", or pick")[0])
    assert command[-1] == f"ckpt_path={here / 'cc1' / 'last.ckpt'}"
    # The run's folder named relative, the folder its file goes on in is named absolute: it said
    # 'hydra.run.dir=run', another folder where pasted elsewhere.
    code, _, err = run_main(sample_cli.main, ["ckpt_path=run"], capsys)
    assert code == 2 and err.endswith(f"(and, to train it on in its own folder, "
                                      f"{shlex.quote(f'hydra.run.dir={run}')})\n"), err
    monkeypatch.chdir(there)
    command = ["trainer.max_steps=4" if w == "trainer.max_steps=2" else w for w in command[1:]]
    code, out, err = run_main(train_cli.main, command, capsys)
    assert code == 0, out + err
    assert checkpoint_step(here / "cc1" / "last.ckpt") == 4 and not (there / "cc1").exists()
    assert json.loads((run / "metrics.json").read_text())["step"] == 4


def test_a_callbacks_file_from_before_checkpoints_recorded_their_run_is_still_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # A file its checkpoint callback wrote in a folder of its own before checkpoints recorded the run that
    # wrote them: the command printed then (ckpt_path=FILE hydra.run.dir=RUN) was refused as "records no
    # run that wrote it", where it went on in the run's folder before. Taken for the run's, as then.
    import torch

    from chargpt.checkpoint_step import WRITER_KEY

    monkeypatch.chdir(tmp_path)
    run, args, last = _trained_writing_in_cc1(tmp_path, capsys)
    for file in last.parent.glob("*.ckpt"):
        saved = torch.load(file, weights_only=False)
        del saved[WRITER_KEY]
        torch.save(saved, file)
    code, _, err = run_main(sample_cli.main, [f"ckpt_path={run}"], capsys)
    assert code == 2 and f"name that file: {shlex.quote(f'ckpt_path={last}')} " in err, err
    again = ["trainer.max_steps=4" if a == "trainer.max_steps=2" else a for a in args]
    code, _, err = run_main(train_cli.main, [*again, f"ckpt_path={last}", f"hydra.run.dir={run}"], capsys)
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text())["step"] == 4 == checkpoint_step(last)
