"""Bad input: one `error:` line that names the problem and the fix, exit code 2, no traceback,
nothing overwritten. Each case runs the real CLI entry point (in-process, as `chargpt-* ARGS`)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import chargpt
from chargpt.cli import eval as eval_cli
from chargpt.cli import export as export_cli
from chargpt.cli import sample as sample_cli
from chargpt.cli import serve as serve_cli
from chargpt.cli import train as train_cli
from chargpt.data import CharDataModule
from chargpt.errors import ChargptError, CheckpointError
from chargpt.export_layout import FORMAT_MARKER
from chargpt.model import ModelConfig
from chargpt.runs.directory import foreign_files
from chargpt.runs.status import write_status
from chargpt.runs.sweep_record import continue_command
from chargpt.training.run_checks import check_devices, check_trainer_numbers
from conftest import bare_train_args, callback_of_ones_own, make_checkpoint, run_main, write_corpus

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")


def callback_failing_without_a_message() -> None:
    raise ValueError()


@pytest.mark.parametrize(("command", "main", "example"), [
    ("chargpt-sample", sample_cli.main, "chargpt-sample ckpt_path=RUN_DIR"),
    ("chargpt-eval", eval_cli.main, "chargpt-eval ckpt_path=RUN_DIR"),
    ("chargpt-export", export_cli.main, "chargpt-export ckpt_path=RUN_DIR out=DIR"),
    ("chargpt-serve", serve_cli.main, "chargpt-serve ckpt_path=RUN_DIR"),
])
def test_every_command_that_reads_a_model_asks_for_ckpt_path_alike(
    command: str, main: Callable[[], None], example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    # Each takes a run folder, a .ckpt file or an export folder; sample's and eval's messages named
    # no export, export's no .ckpt file, each in words of its own.
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(main, [], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == ["error: ckpt_path is required: the run folder, .ckpt file or export folder "
                                f"to read, e.g. {example}"]
    assert list(tmp_path.iterdir()) == []


def _damage_a_tensor(ckpt: Path, out: Path) -> None:
    """A copy of `ckpt` with 8 bytes of its first tensor's data flipped: still a zip archive, still
    loadable by torch.load, with other weights."""
    data = bytearray(ckpt.read_bytes())
    with zipfile.ZipFile(ckpt) as archive:
        info = archive.getinfo(next(n for n in archive.namelist() if n.endswith("/data/0")))
    header = info.header_offset  # a local file header: 30 bytes, then its name and extra field
    start = header + 30 + int.from_bytes(data[header + 26 : header + 28], "little") + int.from_bytes(
        data[header + 28 : header + 30], "little")
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    out.write_bytes(data)


@pytest.fixture(scope="module")
def file_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the cases name, made once: each case gets a copy (some cases damage or add files)."""
    folder = tmp_path_factory.mktemp("templates")
    ckpt = make_checkpoint(folder / "model.ckpt")
    (folder / "empty.txt").write_text("")
    (folder / "folder").mkdir()
    (folder / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    (folder / "notes.txt").write_text("not a checkpoint\n")
    (folder / "one.txt").write_text("a")
    (folder / "short.txt").write_text("to be or not to be\n")  # shorter than two windows
    (folder / "pasted é").mkdir()
    write_corpus(folder / "pasted é" / "a b.txt")
    (folder / "configs").mkdir()
    (folder / "configs" / "mine.yaml").write_text("defaults:\n  - train\n")  # a --config-dir's own config
    torch.save({"weights": torch.zeros(2)}, folder / "foreign.ckpt")
    (folder / "truncated.ckpt").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    _damage_a_tensor(ckpt, folder / "damaged.ckpt")
    make_checkpoint(folder / "other_vocab.ckpt", chars="\nxyz")
    crlf = write_corpus(folder / "crlf.txt")
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))  # the checkpoint's text, from Windows
    write_corpus(folder / "corpus.txt")
    write_corpus(folder / "other_text.txt", alphabet="ABC abc\n")
    return folder


@pytest.fixture
def files(file_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(file_templates, tmp_path, dirs_exist_ok=True)
    return {
        "corpus": tmp_path / "corpus.txt",
        "other_text": tmp_path / "other_text.txt",
        "ckpt": tmp_path / "model.ckpt",
        "tmp": tmp_path,
    }


def _fill(args: list[str], files: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in args]


# (entry point, arguments, what the one line must say). {tmp}, {corpus}, {ckpt} are filled in.
TRAIN_CASES = [
    # Added with + (as the error for a key the config lacks advises), a setting the group's
    # constructor does not take was a traceback as training started, after the run's folder was made.
    ("optimizer setting its constructor lacks", ["+optimizer.epsilon=1e-8"],
     "optimizer.epsilon is not a setting of torch.optim.AdamW (did you mean optimizer.eps?); drop it"),
    ("scheduler setting its constructor lacks", ["+scheduler.warmup=10"],
     "scheduler.warmup is not a setting of chargpt.training.schedules.WarmupCosine (did you mean "
     "scheduler.warmup_steps?)"),
    ("data setting its constructor lacks", ["+data.newlines=normalize"],
     "data.newlines is not a setting of chargpt.data.CharDataModule (did you mean data.newline?)"),
    # TensorBoard's logger hands what it does not take to the SummaryWriter it makes at the first
    # log: that TypeError was a traceback, after the run's folder was made.
    ("logger setting its SummaryWriter lacks", ["logger=tensorboard", "+logger.tensorboard.flush_sec=5"],
     "logger.tensorboard.flush_sec is not a setting of lightning.pytorch.loggers.TensorBoardLogger or the "
     "torch.utils.tensorboard.writer.SummaryWriter it hands settings to (did you mean "
     "logger.tensorboard.flush_secs?)"),
    # Taken by a base, but passed to it by the logger itself: "got multiple values".
    ("logger setting the logger passes itself", ["logger=tensorboard", "+logger.tensorboard.root_dir={tmp}"],
     "logger.tensorboard.root_dir is not a setting: the logger makes its folder from save_dir; set "
     "logger.tensorboard.save_dir instead"),
    # Given by chargpt as the logger is built: the setting was replaced without a word.
    ("logger setting chargpt gives", ["logger=tensorboard", "+logger.tensorboard.purge_step=3"],
     "logger.tensorboard.purge_step is not a setting: chargpt gives it, so that a resumed run's curves "
     "show no step twice; drop it"),
    # Logging into a run of the user's clashes with the run a resume continues: a child run instead.
    ("MLflow run to log into", ["logger=mlflow", "+logger.mlflow.run_id=0123abcd"],
     "logger.mlflow.run_id is not a setting: chargpt gives it, a resumed run's tracker run, from its "
     "checkpoint; drop it (to file this run under an MLflow run of yours, make it a child run: "
     "'+logger.mlflow.tags={{mlflow.parentRunId:RUN_ID}}')"),
    ("CSV logger setting chargpt gives", ["logger=csv", "+logger.csv.purge_step=3"],
     "logger.csv.purge_step is not a setting: chargpt gives it"),
    ("CSV logger setting its constructor lacks", ["logger=csv", "+logger.csv.flush_every=5"],
     "logger.csv.flush_every is not a setting of chargpt.training.trackers.CSVTracker"),
    (
        "data file missing",
        ["data.path={tmp}/missing.txt"],
        "data file not found: {tmp}/missing.txt; pass an existing",
    ),
    # A list of files (or a sweep over them, which choice(...) makes of a path): one path, not found.
    ("data files listed with a comma", ["data.path={corpus},{tmp}/short.txt"],
     "data file not found: {corpus},{tmp}/short.txt; data.path is one path, commas included, not a list: "
     "to train on the files together, put them in one folder or name them by a glob "
     "(data.path='corpus/*.txt'); to train once on each, sweep over them: -m "
     "'data.path=choice({corpus},{tmp}/short.txt)'"),
    # A trailing space (a pasted name): it was told it had listed files with commas.
    ("data file name with a trailing space", ["data.path={corpus} "],
     "data file not found: '{corpus} ' (the name has spaces around it, and {corpus} exists); pass it "
     "without them: data.path={corpus}"),
    # Quoted to paste as it is: a name with a space in it was not, and the shell split it there.
    ("data file name with spaces in it and around it", ["data.path={tmp}/pasted é/a b.txt "],
     "data file not found: '{tmp}/pasted é/a b.txt ' (the name has spaces around it, and '{tmp}/pasted "
     "é/a b.txt' exists); pass it without them: 'data.path={tmp}/pasted é/a b.txt'"),
    ("data file name of spaces", ["data.path= "],
     "; pass an existing text file, directory or glob as data.path"),
    ("data file empty", ["data.path={tmp}/empty.txt"], "data file {tmp}/empty.txt is empty"),
    ("data path is an empty directory", ["data.path={tmp}/folder"], "directory {tmp}/folder has no files"),
    ("data not UTF-8", ["data.path={tmp}/latin1.txt"], "is not UTF-8 text (bad byte near offset 3)"),
    ("train split too short", ["data.train_fraction=0.002"], "the train split of {corpus} has 8 characters"),
    ("val split too short", ["data.train_fraction=0.997"],
     "the val split of {corpus} has 12 characters, fewer than model.block_size + 1 = 17; use a longer text, "
     "a model.block_size of at most 11 or another data.train_fraction"),
    # No fraction leaves a window of 17 on both sides of 19 characters, and a context of 1 is no
    # model: neither is offered.
    ("text too short for two windows", ["data.path={tmp}/short.txt"],
     "has 2 characters, fewer than model.block_size + 1 = 17; use a longer text"),
    (
        "window set on the data instead of the model",
        ["data.block_size=8"],
        "data.block_size=8 differs from model.block_size=16: the windows are the model's context, set "
        "in one place; pass model.block_size=8 instead",
    ),
    (
        "width not divisible by heads",
        ["model.n_embd=30", "model.n_head=4"],
        "model.n_embd=30 is not divisible",
    ),
    ("zero layers", ["model.n_layer=0"], "model.n_layer=0 must be a whole number >= 1"),
    ("negative width", ["model.n_embd=-8"], "model.n_embd=-8 must be a whole number >= 1"),
    ("dropout 1", ["model.dropout=1.0"], "model.dropout=1.0 must be in [0, 1)"),
    ("dropout negative", ["model.dropout=-0.1"], "model.dropout=-0.1 must be in [0, 1)"),
    ("batch size 0", ["data.batch_size=0"], "data.batch_size=0 must be a whole number >= 1"),
    (
        "unknown precision",
        ["trainer.precision=bf32"],
        "trainer.precision=bf32 is not a precision; use one of auto, 32-true, bf16-mixed",
    ),
    ("threads 0", ["threads=0"], "threads=0 must be a whole number >= 1, or null"),
    ("separator null", ["data.separator=null"], "data.separator=null must be text (quote it)"),
    ("closing sample's prompt empty", ["sample.prompt=", "sample.max_new_tokens=20"],
     "sample.prompt is empty; give at least one"),
    ("threads not a number", ["threads=all"], "threads='all' must be a whole number >= 1, or null"),
    (
        "zero init not a boolean",
        ["model.zero_init_residual=maybe"],
        "model.zero_init_residual='maybe' must be true or false",
    ),
    ("checkpoint missing", ["ckpt_path={tmp}/nope.ckpt"], "checkpoint not found: {tmp}/nope.ckpt"),
    ("a plain folder for a run", ["ckpt_path={tmp}/folder"],
     "{tmp}/folder is a folder but not a run directory"),
    (
        "checkpoint truncated",
        ["ckpt_path={tmp}/truncated.ckpt"],
        "truncated.ckpt is not a readable checkpoint",
    ),
    ("not a checkpoint", ["ckpt_path={tmp}/notes.txt"], "notes.txt is not a readable checkpoint"),
    ("checkpoint with damaged weights", ["ckpt_path={tmp}/damaged.ckpt"],
     "damaged.ckpt is damaged (model/data/0 fails its checksum; changed on disk or in a copy): pass"),
    (
        "checkpoint without settings",
        ["ckpt_path={tmp}/foreign.ckpt"],
        "foreign.ckpt is not a chargpt checkpoint",
    ),
    ("checkpoint of another vocabulary", ["ckpt_path={tmp}/other_vocab.ckpt"], "another vocabulary"),
    (
        "more CPU processes than cores",
        ["trainer.accelerator=cpu", "trainer.devices=512"],
        "trainer.devices=512 asks for 512 CPU processes but this machine has",
    ),
    pytest.param(
        "GPU trainer without a GPU", ["trainer=gpu"], "no CUDA GPU is visible; use trainer=cpu", marks=NO_GPU
    ),
    ("time budget not a number", ["budget_seconds=abc"], "budget_seconds='abc' must be a positive number"),
    ("seed not a number", ["seed=abc"], "seed='abc' must be a whole number"),
    ("seed outside numpy's range", ["seed=4294967296"], "seed=4294967296 must be a whole number from 0 to"),
    ("learning rate not a number", ["optimizer.lr=abc"], "optimizer.lr='abc' must be a finite number >= 0"),
    ("step count not a number", ["trainer.max_steps=abc"], "trainer.max_steps='abc' must be a whole number"),
    (
        "closing sample's temperature not a number",
        ["sample.temperature=abc"],
        "sample.temperature='abc' must be a finite number >= 0",
    ),
    # Lightning's "'<' not supported between instances of 'str' and 'int'", once the text was read.
    ("checkpoints kept not a number", ["callbacks.model_checkpoint.save_top_k=x"],
     "callbacks.model_checkpoint.save_top_k='x' must be how many of the best checkpoints to keep: a whole "
     "number (e.g. 1), 0 for none, or -1 for every one"),
    ("logging interval 0", ["logger=csv", "trainer.log_every_n_steps=0"],
     "trainer.log_every_n_steps=0 turns off the logging of training values"),
    ("warmup not a number", ["scheduler.warmup_steps=abc"],
     "scheduler.warmup_steps='abc' must be a whole number >= 0"),
    ("warmup negative", ["scheduler.warmup_steps=-5"], "scheduler.warmup_steps=-5 must be a whole number"),
    ("learning-rate floor negative", ["scheduler=cosine", "scheduler.min_lr_ratio=-0.1"],
     "scheduler.min_lr_ratio=-0.1 must be between 0 and 1"),
    ("learning-rate floor not a number", ["scheduler=wsd", "scheduler.min_lr_ratio=low"],
     "scheduler.min_lr_ratio='low' must be a finite number"),
    ("betas out of range", ["optimizer.betas=[0.9,1.5]"],
     "optimizer.betas[1]=1.5 must be at least 0 and below 1"),
    ("betas one number", ["optimizer.betas=0.9"], "optimizer.betas=0.9 must be two numbers in [0, 1)"),
    ("eps negative", ["optimizer.eps=-1"], "optimizer.eps=-1 must be above 0"),
    ("muon AdamW eps not a number", ["optimizer=muon", "optimizer.adamw.eps=abc"],
     "optimizer.adamw.eps='abc' must be a finite number"),
    ("muon momentum above 1", ["optimizer=muon", "optimizer.momentum=1.5"], "optimizer.momentum=1.5 must be"),
    ("muon steps zero", ["optimizer=muon", "optimizer.ns_steps=0"],
     "optimizer.ns_steps=0 must be a whole number >= 1"),
    ("muon scaling unknown", ["optimizer=muon", "optimizer.adjust_lr_fn=abc"],
     "optimizer.adjust_lr_fn='abc' is not one of null, original, match_rms_adamw"),
    ("fused not a boolean", ["optimizer.fused=abc"], "optimizer.fused='abc' must be true or false"),
    ("window draw seed not a number", ["data.seed=abc"], "data.seed='abc' must be a whole number"),
    ("epoch validation", ["trainer.check_val_every_n_epoch=1"],
     "trainer.check_val_every_n_epoch=1 does not apply"),
    ("validation every half epoch", ["trainer.val_check_interval=0.5"],
     "trainer.val_check_interval=0.5 must be a whole number >= 1"),
    ("zero steps", ["trainer.max_steps=0"], "trainer.max_steps=0 trains nothing"),
    # A traceback as training started (OverflowError: the loader's length did not fit len()).
    ("more steps than can be counted", ["trainer.max_steps=99999999999999999999"],
     "trainer.max_steps=99999999999999999999 is more steps than a run can count (at most "
     "9223372036854775807); give a smaller number, or budget_seconds=S"),
    ("zero epochs", ["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
    ("trainer switch not a boolean", ["trainer.deterministic=abc"],
     "trainer.deterministic='abc' must be true or false"),
    ("checkpoint monitor unknown", ["callbacks.model_checkpoint.monitor=abc"],
     "callbacks.model_checkpoint.monitor=abc is not a logged metric; use one of val/loss"),
    ("a needed setting removed", ["~seed"], "~seed removed a setting this command needs (seed)"),
    # Hydra's "HydraConf (DictConfig) does not support deletion", with its full_key and object_type.
    ("a field of Hydra's own removed", ["~hydra.job_logging"],  # (setting it is refused too)
     "~hydra.job_logging: hydra.job_logging is one of Hydra's own settings, which Hydra cannot remove; "
     "pick another option of its group instead: hydra/job_logging=OPTION (stdout, none or disabled)"),
    ("a Hydra setting inside a field removed", ["~hydra.run.dir"],
     "~hydra.run.dir: hydra.run.dir is one of Hydra's own settings, which Hydra cannot remove; leave it out, "
     "or set it to the value you want: hydra.run.dir=VALUE"),
    # logging's "Unable to configure root logger", in a traceback: the removed handler is still named.
    ("a logging handler removed", ["~hydra.job_logging.handlers.file"],
     "hydra.job_logging.root.handlers names the handler 'file', which hydra.job_logging.handlers does not "
     "define; name one it defines (hydra.job_logging.root.handlers=[...]), or pick another option of its "
     "group: hydra/job_logging=OPTION (stdout, none or disabled)"),
    ("a logging formatter removed", ["~hydra.job_logging.formatters.simple"],
     "hydra.job_logging.handlers.console.formatter names the formatter 'simple', which "
     "hydra.job_logging.formatters does not define; name one it defines "
     "(hydra.job_logging.handlers.console.formatter=NAME)"),
    ("Hydra's own logging handler removed", ["~hydra.hydra_logging.handlers.console"],
     "hydra.hydra_logging does not work: Unable to add handler 'console' (a handler, formatter or filter "
     "removed but still named?); pick another option of its group instead: hydra/hydra_logging=OPTION "
     "(none or disabled)"),
    ("a device count that is no number", ["trainer.devices=abc"],  # Lightning's text named no fix
     "trainer.devices='abc' is not a number of devices; use a whole number from 1 (trainer.devices=1), a "
     "list of GPU indices ([0,1]), or auto"),
    ("no devices", ["trainer.devices=0"], "trainer.devices=0 is not a number of devices"),
    # Were trained with a default of the code's own that the saved config does not show (4 layers;
    # AdamW's lr), or a TypeError (the data module's batch size).
    ("a model setting removed", ["~model.n_layer"], "~model.n_layer removed a setting this command needs "
     "(model.n_layer); leave it out to keep its default, or set a value: model.n_layer=VALUE"),
    ("an optimizer setting removed", ["~optimizer.lr"], "~optimizer.lr removed a setting this command needs"),
    ("a data setting removed", ["~data.batch_size"], "~data.batch_size removed a setting this command needs"),
    # Hydra's ValueError ("Got int") and omegaconf's InterpolationResolutionError, with tracebacks.
    ("an override with no name", ["=5"],
     "cannot read the override '=5': it names no setting before '='; write it as KEY=5, with a setting "
     "--help lists"),
    # Spaces around '=' (the shell makes words of its parts): "cannot read the override 'seed'", its
    # fix not named.
    ("spaces around '='", ["seed", "=", "3"], "error: seed = 3: the shell splits it at its spaces into 3 "
     "words; write it without spaces around '=': seed=3"),
    ("a space before '='", ["model", "=tiny"], "error: model =tiny: the shell splits it at its spaces into 2 "
     "words; write it without spaces around '=': model=tiny"),
    ("a space after '='", ["data.path=", "{tmp}/pasted é/a b.txt"],
     "error: data.path= '{tmp}/pasted é/a b.txt': the shell splits it at its spaces into 2 words; write it "
     "without spaces around '=': 'data.path={tmp}/pasted é/a b.txt'"),
    # '==' as a comparison is written: the advice was seed==VALUE (the 3 dropped), itself no override.
    ("'==' with spaces around it", ["seed", "==", "3"], "error: seed == 3: the shell splits it at its spaces "
     "into 3 words; write it without spaces around '=': seed=3"),
    ("'==' with a space before it", ["seed", "==3"], "error: seed ==3: the shell splits it at its spaces "
     "into 2 words; write it without spaces around '=': seed=3"),
    ("':' for '='", ["model:tiny"], "error: cannot read the override 'model:tiny': overrides are key=value "
     "(model=tiny?); see the command's --help"),
    ("an unset environment variable", ["optimizer.lr=${{oc.env:CHARGPT_TEST_UNSET}}"],
     "optimizer.lr: cannot resolve its ${{...}} (\"Environment variable 'CHARGPT_TEST_UNSET' not found\"); "
     "set optimizer.lr to a plain value, or define what it refers to"),
    ("an interpolation of no setting", ["model.n_layer=${{oops}}"],
     "model.n_layer: cannot resolve its ${{...}} (Interpolation key 'oops' not found)"),
    ("a setting read at the end removed (refused before training)", ["~sample.seed"],
     "~sample.seed removed a setting this command needs (sample.seed)"),
    # Hydra's ValueError and "Could not load 'logger/mlflo'" with its search path; a traceback at
    # the first step for a file in the way of a logger's folder.
    ("a config group set to null", ["logger=null"],
     "logger=null: a config group takes the name of one of its options (csv, mlflow, none, tensorboard, "
     "wandb); leave it out for its default; logger=none for none"),
    ("a misspelt option in a group's list", ["logger=[tensorboard, mlflo]"],
     "logger=mlflo is not an option of logger (did you mean logger=mlflow?); use one of: csv"),
    # Hydra's "Could not find", its options a line each and its whole config search path after them.
    ("a misspelt option of Hydra's own group in a sweep", ["-m", "hydra/launcher=slrum", "seed=1,2"],
     "hydra/launcher=slrum is not an option of hydra/launcher (did you mean hydra/launcher=slurm?); "
     "use one of: basic, joblib, local_parallel, "),
    # Hydra's own line, "Sweeping over Hydra's configuration is not supported", with no way out.
    ("a sweep over Hydra's own group", ["-m", "hydra/launcher=slrum,basic", "seed=1,2"],
     "error: hydra/launcher=slrum,basic: a sweep cannot vary Hydra's own settings (one serves all its jobs); "
     "pick one of hydra/launcher (slrum: not an option): basic, joblib, local_parallel, "),
    ("a sweep over one of Hydra's own settings", ["-m", "hydra.job.chdir=true,false"],
     "error: hydra.job.chdir=true,false: a sweep cannot vary Hydra's own settings (one serves all its jobs); "
     "pick one, e.g. hydra.job.chdir=true"),
    # The example was the text up to the first comma: "e.g. hydra.launcher.n_jobs=range(1".
    ("a sweep over one of Hydra's own settings by range", ["-m", "hydra.launcher.n_jobs=range(1,3)"],
     "pick one, e.g. hydra.launcher.n_jobs=1"),
    ("a sweep over one of Hydra's own settings with a space", ["-m", "hydra.job.name=my run,b"],
     "pick one, e.g. 'hydra.job.name=my\\ run'"),
    # A search's dimension typed as its config file names it was told to pick one value.
    ("a search's dimension under hydra.sweeper.params",
     ["-m", "hydra/sweeper=optuna", "hydra.sweeper.params.optimizer.lr=interval(1e-4,1e-2)"],
     "error: hydra.sweeper.params.optimizer.lr=interval(1e-4,1e-2): a search's dimension is given on the "
     "command line as the setting itself, not under hydra.sweeper.params: "
     "'optimizer.lr=interval(1e-4,1e-2)'"),
    # Without a search, OmegaConf's AssertionError traceback (hydra.sweeper.params is null), exit 1; in
    # one, Hydra's "not a setting", advising +KEY, which nests the dimension under a key "model".
    ("a fixed value under hydra.sweeper.params", ["hydra.sweeper.params.model.dropout=0.1"],
     "error: hydra.sweeper.params.model.dropout=0.1: a search's dimension is given on the command line as "
     "the setting itself, not under hydra.sweeper.params: model.dropout=0.1"),
    ("a value added under hydra.sweeper.params",
     ["-m", "hydra/sweeper=optuna", "+hydra.sweeper.params.model.dropout=0.1"],
     "error: +hydra.sweeper.params.model.dropout=0.1: a search's dimension is given on the command line as "
     "the setting itself, not under hydra.sweeper.params: model.dropout=0.1"),
    # The dimensions typed as one dict without a search: OmegaConf's AttributeError traceback, exit 1.
    ("a search's dimensions as a dict under hydra.sweeper.params, without a search",
     ["-m", "hydra.sweeper.params={{model.dropout: x, optimizer.lr: 'interval(1e-4, 1e-2)'}}"],
     "error: hydra.sweeper.params={{model.dropout: x, optimizer.lr: 'interval(1e-4, 1e-2)'}}: no search is "
     "set up to take it (hparams_search=optuna sets one up); a sweep's values, as a search's dimensions, are "
     "given on the command line as the settings themselves: model.dropout=x 'optimizer.lr=interval(1e-4, "
     "1e-2)'"),
    # A sweep typed bare in the dict was advised as its Python form ('model.dropout=IntervalSweep(tags=
    # set(), start=0.0, end=0.3)'), a list as 'seed=[1, 2]', which a sweep refuses.
    ("a search's dimensions as a dict, a sweep and a list among them, without a search",
     ["-m", "hydra.sweeper.params={{model.dropout: interval(0.0, 0.3), model.n_layer: int(interval(2, 5)), "
      "optimizer.lr: tag(log, interval(1e-4, 1e-2)), seed: [1, 2], model.n_embd: range(32, 65, 32)}}"],
     "are given on the command line as the settings themselves: 'model.dropout=interval(0.0,0.3)' "
     "'model.n_layer=int(interval(2,5))' 'optimizer.lr=tag(log,interval(0.0001,0.01))' seed=1,2 "
     "'model.n_embd=range(32,65,32)'"),
    # With a search set up: "hydra.sweeper.params is not a setting of hydra.sweeper", and the advice cut at
    # its first space: "+hydra.sweeper.params={seed:".
    ("a search's new dimensions as a dict under hydra.sweeper.params, with a search",
     ["-m", "hparams_search=optuna",
      "hydra.sweeper.params={{seed: '1,2', model.dropout: interval(0.0, 0.3)}}"],
     "error: hydra.sweeper.params={{seed: '1,2', model.dropout: interval(0.0, 0.3)}}: a search's dimensions "
     "are given on the command line as the settings themselves: seed=1,2 'model.dropout=interval(0.0,0.3)'"),
    # A dict of settings given for one there (as the refusal of a bad hparams.extra shows it) is merged
    # into it: a name it lacks was "callbacks.hparams.extra is not a setting (did you mean
    # callbacks.hparams.extra?)", and its +KEY advice was refused again.
    ("a dict value with a name the dict there lacks", ["callbacks.hparams.extra={{seed: 1, lr: 2}}"],
     "error: callbacks.hparams.extra={{seed: 1, lr: 2}} adds lr, which callbacks.hparams.extra has not: a "
     "value of settings is merged into the one there; to add lr, write "
     "'++callbacks.hparams.extra={{seed: 1, lr: 2}}'"),
    # A name misspelt in such a dict was told to be added with ++, which the constructor then refused
    # (optimizer) or nothing read (sample); a name below the dict's own was named as one it lacked
    # ("adds extra, which callbacks.hparams has not").
    ("a dict value with a misspelt name", ["optimizer={{lrr: 1}}"],
     "error: optimizer={{lrr: 1}} adds lrr, which optimizer has not (did you mean optimizer.lr?); check its "
     "spelling (--cfg job shows every setting), or, to add it (a value of settings is merged into the one "
     "there), write '++optimizer={{lrr: 1}}'"),
    ("a dict value with a misspelt name of a group that takes none", ["sample={{temprature: 1}}"],
     "error: sample={{temprature: 1}} adds temprature, which sample has not (did you mean "
     "sample.temperature?); check its spelling (--cfg job shows every setting)"),
    ("a dict value with a name a dict inside it lacks", ["callbacks.hparams={{extra: {{lr: 2}}}}"],
     "error: callbacks.hparams={{extra: {{lr: 2}}}} adds lr, which callbacks.hparams.extra has not: a value "
     "of settings is merged into the one there; to add lr, write '++callbacks.hparams={{extra: {{lr: 2}}}}'"),
    # The advice was cut at the value's first space: "+trainer.foo='a"; then given unquoted for the shell.
    ("a setting that is none, its value with a space", ["trainer.foo='a b'"],
     "or add a setting of your own with \"+trainer.foo='a b'\""),
    # Hydra's parse error over three lines, exit 1, the search's dimension not named.
    ("a search's dimension Hydra cannot read",
     ["-m", "hparams_search=optuna", "+hydra.sweeper.params={{model.dropout:'interval(0.0'}}"],
     "error: the search's dimension model.dropout: interval(0.0 (hydra.sweeper.params) cannot be read "
     "(no viable alternative at input 'interval(0.0'); write it in Hydra's sweep grammar"),
    # A glob's values are read through Hydra's config loader, which is not there: its traceback.
    ("a sweep over one of Hydra's own settings by glob", ["-m", "hydra.job.name=glob(*)"],
     "error: hydra.job.name=glob(*): a sweep cannot vary Hydra's own settings (one serves all its jobs); "
     "pick one"),
    ("a sweep over Hydra's own group by choice", ["-m", "hydra/launcher=choice(slrum,basic)"],
     "pick one of hydra/launcher (slrum: not an option): basic, "),
    # A traceback, exit 1: Hydra's override parser lists a glob's options only with a config loader.
    ("a sweep over Hydra's own group by glob", ["-m", "hydra/launcher=glob(*)"],
     "error: hydra/launcher=glob(*): a sweep cannot vary Hydra's own settings (one serves all its jobs); "
     "pick one of hydra/launcher: basic, "),
    # Hydra's "Could not load 'hydra/launcher/slrum'", with its config search path and no options.
    ("a misspelt option of Hydra's own group in a list", ["-m", "hydra/launcher=[slrum]", "seed=1,2"],
     "hydra/launcher=slrum is not an option of hydra/launcher (did you mean hydra/launcher=slurm?); "
     "use one of: basic, joblib, local_parallel, "),
    # Trained a model of tiny's values merged over small's, without a word.
    ("two options of a one-option group as a list", ["model=[small, tiny]"],
     "model=[small,tiny] picks 2 options of model at once, and Hydra merges them into one model (the last "
     "one's values win); pick one, or run once with each as a sweep: -m model=small,tiny"),
    # Hydra took a key that names no group for a setting of that name (`hydra/foo: bar`), which
    # nothing reads; without `+` it advised adding one so.
    ("a group of Hydra's that is none, added", ["+hydra/foo=bar"],
     "+hydra/foo=bar: hydra/foo is not a config group, and a setting of that name is read by nothing; pick "
     "an option of a group that exists (hydra/env, hydra/help, hydra/hydra_help, hydra/hydra_logging, "
     "hydra/job_logging, hydra/launcher, hydra/output, hydra/sweeper) as GROUP=OPTION, or drop it"),
    ("a misspelt group of Hydra's", ["hydra/lancher=basic"],
     "hydra/lancher=basic: hydra/lancher is not a config group (did you mean hydra/launcher?)"),
    ("a group that is none, added", ["+optimiser/x=adamw"],
     "+optimiser/x=adamw: optimiser/x is not a config group, and a setting of that name is read by nothing; "
     "pick an option of a group that exists (callbacks, data, debug, experiment, hparams_search, hydra, "
     "logger, model, optimizer, paths, scheduler, trainer) as GROUP=OPTION, or drop it"),
    # Hydra takes 5 for true and runs the job in its run folder: data.path=corpus.txt was not found.
    ("the job run in its run folder", ["hydra.job.chdir=5"],
     "hydra.job.chdir=5: chargpt works in the folder it is launched from and reads relative paths "
     "(data.path, ckpt_path, ...) from there; a run's files go to its run folder without it; drop it"),
    ("a misspelt logging option", ["hydra/job_logging=nope"],
     "hydra/job_logging=nope is not an option of hydra/job_logging (did you mean hydra/job_logging=none?); "
     "use one of: chargpt, default, disabled, none, stdout"),
    # "Cannot find primary config", then the config search path over several lines.
    ("a config name chargpt has not", ["--config-name", "nope"],
     "--config-name nope: chargpt's configs have no nope.yaml; give the folder that holds it with "
     "--config-dir DIR, or leave --config-name out for this command's own config"),
    ("a config name the config folder has not", ["--config-dir", "{tmp}/configs", "--config-name", "nope"],
     "--config-name nope: no nope.yaml in {tmp}/configs (its configs: mine); name one of its "
     "configs, or give the folder that holds nope.yaml"),
    # Hydra's "Error merging override", with its full_key, reference_type and object_type.
    ("a switch of Hydra's own not a boolean", ["hydra.job.chdir=maybe"],
     "hydra.job.chdir='maybe' must be true or false"),
    ("a setting of Hydra's own not one of its choices", ["hydra.mode=XYZ"],
     "hydra.mode='XYZ' is not one of RUN, MULTIRUN"),
    ("a number of Hydra's own not a number", ["-m", "seed=1,2", "hydra.sweeper.max_batch_size=abc"],
     "hydra.sweeper.max_batch_size='abc' must be a whole number"),
    ("a logger's folder behind a file", ["logger=tensorboard", "logger.tensorboard.save_dir={corpus}/tb"],
     "logger.tensorboard.save_dir={corpus}/tb: cannot write there (Not a directory); pick a writable folder"),
    ("a callback of one's own that fails without a message",  # was an IndexError's traceback
     ["+callbacks.mine._target_=test_bad_input.callback_failing_without_a_message"],
     "error: callbacks.mine: ValueError"),
    # A module of one's own not on Python's path: Hydra's traceback for a logger, and for a callback
    # "callbacks.mine: Error loading 'my_callbacks.Mine':", after the data was read.
    ("a callback of one's own whose module is not on Python's path",
     ["+callbacks.mine._target_=my_callbacks.Mine"],
     "error: callbacks.mine._target_=my_callbacks.Mine cannot be imported: no module named 'my_callbacks'; "
     "install it, or add the folder that holds it to Python's path (PYTHONPATH=FOLDER chargpt-train ...)"),
    ("a logger of one's own whose module is not on Python's path", ["+logger.mine._target_=my_loggers.Mine"],
     "error: logger.mine._target_=my_loggers.Mine cannot be imported: no module named 'my_loggers'; install"),
    ("a misspelt class of one's own",
     ["+callbacks.mine._target_=test_bad_input.callback_failing_without_a_mesage"],
     "error: callbacks.mine._target_=test_bad_input.callback_failing_without_a_mesage cannot be imported: "
     "test_bad_input has no 'callback_failing_without_a_mesage' (did you mean "
     "test_bad_input.callback_failing_without_a_message?)"),
    ("a model class of one's own", ["model._target_=my_models.MyConfig"],  # was ignored: a GPT trained
     "error: model._target_=my_models.MyConfig: a run's model is chargpt's GPT, built from the model.* "
     "settings by chargpt.model.ModelConfig, and another class would be ignored; leave model._target_ out"),
    # Lightning's TypeError, after the data was read, naming no setting meant.
    ("a misspelt setting of a callback", ["+callbacks.model_checkpoint.save_top=2"],
     "error: callbacks.model_checkpoint.save_top is not a setting of "
     "chargpt.training.callbacks.checkpointing.RunModelCheckpoint (did you mean "
     "callbacks.model_checkpoint.save_top_k?)"),
    ("a misspelt Trainer setting", ["+trainer.detect_anomalie=true"],
     "error: trainer.detect_anomalie is not a setting of lightning.Trainer "
     "(did you mean trainer.detect_anomaly?)"),
    # Cut short: difflib alone ranked gradient_clip_val first, which shares more of its letters.
    ("a Trainer setting cut short", ["+trainer.gradient_clip_algo=value"],
     "error: trainer.gradient_clip_algo is not a setting of lightning.Trainer "
     "(did you mean trainer.gradient_clip_algorithm?)"),
    # Said "unknown model settings: dropoutt", with no setting meant and no fix.
    ("a key the model does not take", ["+model.dropoutt=0.1"],
     "error: model.dropoutt is not a setting of model (did you mean model.dropout?); drop it, or check its "
     "spelling"),
    ("checkpoint count negative", ["callbacks.model_checkpoint.save_top_k=-5"],
     "callbacks.model_checkpoint.save_top_k=-5 must be how many of the best checkpoints to keep: a whole "
     "number (e.g. 1), 0 for none, or -1 for every one"),
    ("NaN check interval zero", ["callbacks.nonfinite_guard.check_every=0"],
     "callbacks.nonfinite_guard.check_every=0 must be a whole number >= 1"),
    ("TensorBoard sample prompt typed in another encoding", ["callbacks.sample_text.prompt=caf\udce9"],
     "callbacks.sample_text.prompt=caf\\xe9 is not UTF-8 text; type it in UTF-8"),
    ("attention map prompt typed in another encoding", ["callbacks.attention_maps.prompt=caf\udce9"],
     "callbacks.attention_maps.prompt=caf\\xe9 is not UTF-8 text; type it in UTF-8"),
    ("TensorBoard sample seed not a number", ["callbacks.sample_text.seed=abc"],
     "callbacks.sample_text.seed='abc' must be a whole number"),
    ("TensorBoard sample length negative", ["callbacks.sample_text.max_new_tokens=-1"],
     "callbacks.sample_text.max_new_tokens=-1 must be >= 0"),
    ("grad norm switch not a boolean", ["callbacks.train_monitor.grad_norm=abc"],
     "callbacks.train_monitor.grad_norm='abc' must be true or false"),
    ("budget reserve not a number", ["budget_seconds=60", "callbacks.time_budget.reserve_seconds=abc"],
     "callbacks.time_budget.reserve_seconds='abc' must be a finite number"),
    ("setting misspelt", ["trainer.max_step=3"],
     "trainer.max_step is not a setting of trainer (did you mean trainer.max_steps?); check its spelling"),
    ("setting named as elsewhere", ["optimizer.learning_rate=1e-3"],
     "optimizer.learning_rate is not a setting of optimizer (did you mean optimizer.lr?)"),
    # A group's setting typed bare (as chargpt-sample takes max_new_tokens): it named none meant, and
    # advised +max_new_tokens=5, a setting of that name that nothing reads.
    ("a closing sample's setting typed bare", ["max_new_tokens=5"],
     "error: max_new_tokens is not a setting (did you mean sample.max_new_tokens?); set it as "
     "sample.max_new_tokens=5"),
    ("an optimizer setting typed bare", ["lr=0.1"],
     "error: lr is not a setting (did you mean optimizer.lr?); set it as optimizer.lr=0.1"),
    # Its group misspelt: said "is not a setting of optimzer", a group there is none of, naming no fix.
    ("a setting under a misspelt group", ["optimzer.lr=1e-3"],
     "error: optimzer.lr is not a setting: there is no optimzer (did you mean optimizer.lr?); check its "
     "spelling"),
    # Misspelt below it too: named optimizer.lrr, which is not a setting either.
    ("a misspelt setting under a misspelt group", ["optimzer.lrr=1e-3"],
     "error: optimzer.lrr is not a setting: there is no optimzer (did you mean optimizer.lr?); check its "
     "spelling"),
    ("a setting under a misspelt group, two deep", ["trainr.max_steps=5"],
     "error: trainr.max_steps is not a setting: there is no trainr (did you mean trainer.max_steps?)"),
    # A group named only where it has the setting typed: seed is a number, and seed.x was offered.
    ("a setting under a misspelt number", ["seeds.x=1"],
     "error: seeds.x is not a setting: there is no seeds; check its spelling"),
    # Hydra's own settings are no job's settings: "there is no hydra" was said of every one misspelt.
    ("a Hydra setting misspelt", ["hydra.run.dirr=x"],
     "error: hydra.run.dirr is not a setting of hydra.run (did you mean hydra.run.dir?); check its spelling"),
    # Said only the options, however near one was.
    ("an option misspelt", ["model=smal"],
     "error: model=smal is not an option of model (did you mean model=small?); use one of: auto, bigram, "
     "small, tiny"),
    ("setting unlike any", ["trainer.limit_val_batche=1"],
     "trainer.limit_val_batche is not a setting of trainer; check its spelling"),
    # Hydra's "Ambiguous value" and its three numbered ways out, over four lines.
    ("sweep values without -m", ["trainer.devices=1,2"],
     "trainer.devices=1,2 is read as several values, a comma separating them: to run once with each, add -m "
     "(a sweep); for a list, write it in brackets: \"trainer.devices=[1,2]\""),
    # A list of a group's alternatives was advised, which is refused as one merged over the other.
    ("options of a one-option group without -m", ["model=small,tiny"],
     "model=small,tiny is read as several values, a comma separating them: to run once with each, add -m "
     "(a sweep), or pick one"),
    ("options of a group of several without -m", ["logger=tensorboard,csv"],
     "logger=tensorboard,csv is read as several values, a comma separating them: to run once with each, add "
     "-m (a sweep); for a list of its options, write it in brackets: \"logger=[tensorboard,csv]\""),
    # Text with a comma in it was advised -m or a list, neither the text typed. Each fix is quoted for
    # the shell: the list was not, which bash split at its space (and zsh took for a pattern).
    ("text with a comma without -m", ["data.separator=a, b"],
     "data.separator=a, b is read as several values, a comma separating them: to run once with each, add -m "
     "(a sweep); for a list, write it in brackets: \"data.separator=[a, b]\"; for text with a comma in it, "
     "quote it for Hydra too: \"data.separator='a, b'\""),
    # In double quotes, as advised, the shell expanded $HOME: the setting got the home folder's path.
    ("text with a comma and a $ without -m", ["data.separator=a,$HOME"],
     "for a list, write it in brackets: 'data.separator=[a,$HOME]'; for text with a comma in it, quote it "
     "for Hydra too: 'data.separator='\"'\"'a,$HOME'\"'\"''"),
    # Hydra's advice (a list, a quoted string or --multirun) gave none of them the number typed.
    ("number with thousands separators", ["trainer.max_steps=5,000"],
     "trainer.max_steps=5,000 is read as 2 values, a comma separating them: for the number, write it "
     "without commas, trainer.max_steps=5000"),
    ("fine-tuning option without a fine-tune", ["finetune.freeze_blocks=2"],
     "finetune.freeze_blocks=2 applies when fine-tuning, and this run starts from scratch"),
    ("time budget zero", ["budget_seconds=0"], "budget_seconds=0 must be a positive number of seconds"),
    # inf is positive: "must be a positive number" would contradict it; no budget is null.
    ("time budget infinite", ["budget_seconds=inf"],
     "budget_seconds=inf is not a time budget: for a run without one, pass budget_seconds=null"),
    ("batch size not whole", ["data.batch_size=2.5"], "data.batch_size=2.5 must be a whole number >= 1"),
    ("validating every 0 steps", ["trainer.val_check_interval=0"], "trainer.val_check_interval=0 must be"),
    (
        "closing sample's length not a number",  # the time budget reads it before the run starts
        ["sample.max_new_tokens=abc", "budget_seconds=60"],
        "sample.max_new_tokens='abc' must be a whole number",
    ),
    (
        "output dir not writable",
        ["hydra.run.dir={corpus}/run"],
        "cannot write to the output directory {corpus}/run",
    ),
]

SAMPLE_CASES = [
    # Python's argparse read `-sc=install=bash` as `-s -c ...` and answered "argument --info/-i: invalid
    # choice: 'nstall=bash'"; `--multirun=yes` was its usage page.
    ("shell completion's action after '='", ["-sc=install=bash"],
     "error: -sc=install=bash: -sc takes what to do as the next word, not after '='; write -sc install=bash "
     "(or --shell-completion install=bash)"),
    ("a switch of Hydra's given a value", ["--multirun=yes"],
     "error: --multirun=yes: --multirun takes no value; write --multirun alone"),
    # Hydra's "Expecting one subcommand from ['install', 'uninstall', 'query']" was a traceback.
    ("shell completion without what to do", ["-sc"],
     "error: -sc needs what to do: install=SHELL or uninstall=SHELL (SHELL: bash, zsh or fish), "
     "e.g. eval \"$(chargpt"),
    ("shell completion followed by a setting", ["--shell-completion", "seed=1"],
     "error: --shell-completion needs what to do: install=SHELL"),
    ("a misspelt option of Hydra's own group", ["ckpt_path={ckpt}", "hydra/launcher=slrum"],
     "hydra/launcher=slrum is not an option of hydra/launcher (did you mean hydra/launcher=slurm?); "
     "use one of: basic, "),
    ("a group of Hydra's that is none, added", ["ckpt_path={ckpt}", "+hydra/foo=bar"],
     "+hydra/foo=bar: hydra/foo is not a config group, and a setting of that name is read by nothing"),
    # Told to write '++data={{pth: x}}', which the command then ran without reading.
    ("a dict value with a misspelt name", ["ckpt_path={ckpt}", "data={{pth: x}}"],
     "error: data={{pth: x}} adds pth, which data has not (did you mean data.path?); check its spelling "
     "(--cfg job shows every setting)"),
    ("a list of models", ["ckpt_path={ckpt}", "model=[small,tiny]"],  # no model to pick, nor to sweep
     "model=[small,tiny] does nothing in chargpt-sample (the model comes from the checkpoint); drop it"),
    ("the job run in another folder", ["ckpt_path={ckpt}", "hydra.job.chdir=true"],
     "hydra.job.chdir=true: chargpt works in the folder it is launched from"),
    ("a training text without the copy check", ["ckpt_path={ckpt}", "data.path={corpus}"],
     "data.path={corpus} does nothing without check_copy=true (it names the training text the copy check "
     "reads); add check_copy=true, or drop it"),
    ("a split without the copy check", ["ckpt_path={ckpt}", "data.train_fraction=7"],
     "data.train_fraction=7 does nothing without check_copy=true"),
    ("no checkpoint given", [], "ckpt_path is required"),
    # Typed in a Latin-1 terminal: Python holds the byte as a surrogate, which the vocabulary lacked.
    ("a prompt typed in another encoding", ["ckpt_path={ckpt}", "prompt=caf\udce9"],
     "prompt=caf\\xe9 is not UTF-8 text; type it in UTF-8"),
    # Hydra advised appending with +model=small, which would have done nothing either.
    ("a model setting", ["ckpt_path={ckpt}", "model=small"],
     "model=small does nothing in chargpt-sample (the model comes from the checkpoint); drop it"),
    # A removed setting the command reads was omegaconf's traceback (exit 1); a null one Hydra's
    # "does not exist".
    ("a needed setting removed", ["ckpt_path={ckpt}", "~max_new_tokens"],
     "~max_new_tokens removed a setting this command needs (max_new_tokens); leave it out to keep its "
     "default, or set a value: max_new_tokens=VALUE"),
    ("a null setting removed", ["ckpt_path={ckpt}", "~prompt"],
     "~prompt removes nothing: prompt is null (no value) already; leave it out, or set prompt=..."),
    ("a misspelt setting removed", ["ckpt_path={ckpt}", "~promt"],
     "~promt: promt is not a setting (did you mean ~prompt?)"),
    ("temperature < 0", ["ckpt_path={ckpt}", "temperature=-1"], "temperature=-1 must be a finite number"),
    ("temperature NaN", ["ckpt_path={ckpt}", "temperature=nan"], "temperature=nan must be a finite number"),
    ("setting misspelt", ["ckpt_path={ckpt}", "temprature=1"],
     "temprature is not a setting (did you mean temperature?)"),
    ("top_k < 0", ["ckpt_path={ckpt}", "top_k=-1"], "top_k=-1 must be >= 0"),
    ("top_p = 0", ["ckpt_path={ckpt}", "top_p=0"], "top_p=0 must be in (0, 1]"),
    ("top_p > 1", ["ckpt_path={ckpt}", "top_p=1.5"], "top_p=1.5 must be in (0, 1]"),
    ("max_new_tokens < 0", ["ckpt_path={ckpt}", "max_new_tokens=-1"], "max_new_tokens=-1 must be >= 0"),
    ("num_samples 0", ["ckpt_path={ckpt}", "num_samples=0"], "num_samples=0 must be a whole number >= 1"),
    ("compile without the cache", ["ckpt_path={ckpt}", "compile=true", "use_cache=false", "prompt=a"],
     "compile=true compiles the cached decoding step; it needs use_cache=true"),
    ("seed not a number", ["ckpt_path={ckpt}", "seed=abc"], "seed='abc' must be a whole number"),
    (
        "seed outside 64 bits",
        ["ckpt_path={ckpt}", "seed=18446744073709551616"],
        "seed=18446744073709551616 is outside the 64-bit range",
    ),
    ("length not whole", ["ckpt_path={ckpt}", "max_new_tokens=2.5"], "max_new_tokens=2.5 must be a whole"),
    ("top_k not a number", ["ckpt_path={ckpt}", "top_k=abc"], "top_k='abc' must be a whole number"),
    ("compile not a boolean", ["ckpt_path={ckpt}", "compile=maybe"], "compile='maybe' must be true or false"),
    ("unknown device", ["ckpt_path={ckpt}", "device=tpu"], "device='tpu' is not a device; use auto, cpu"),
    ("device a number", ["ckpt_path={ckpt}", "device=0"], "device=0 is not a device; use auto, cpu"),
    ("threads 0", ["ckpt_path={ckpt}", "threads=0"], "threads=0 must be a whole number >= 1, or null"),
    # torch's "Overflow when unpacking long long", in a traceback.
    ("threads more than torch takes", ["ckpt_path={ckpt}", "threads=99999999999999999999"],
     "threads=99999999999999999999 is more threads than this machine can run (at most"),
    # The most torch's C int takes: OpenMP then allocated for two billion threads ("Out of memory").
    ("threads more than a machine runs", ["ckpt_path={ckpt}", "threads=2147483647"],
     "threads=2147483647 is more threads than this machine can run (at most"),
    ("prompt empty", ["ckpt_path={ckpt}", "prompt="],
     "prompt is empty; give at least one character of the model's text, or leave it unset"),
    (
        "prompt outside vocabulary",
        ["ckpt_path={ckpt}", "prompt=KING Z"],
        "prompt has characters not in the model's vocabulary: 'G', 'I', 'K', 'N', 'Z'",
    ),
    ("checkpoint missing", ["ckpt_path={tmp}/nope.ckpt"],
     "checkpoint not found: {tmp}/nope.ckpt; pass an existing .ckpt file or run directory, or an export "
     "folder"),
    ("checkpoint truncated", ["ckpt_path={tmp}/truncated.ckpt"], "is not a readable checkpoint"),
    ("not a checkpoint", ["ckpt_path={tmp}/notes.txt"], "is not a readable checkpoint"),
    ("checkpoint with damaged weights", ["ckpt_path={tmp}/damaged.ckpt"], "damaged.ckpt is damaged (model/"),
    pytest.param(
        "cuda device without a GPU",
        ["ckpt_path={ckpt}", "device=cuda"],
        "no CUDA GPU is available",
        marks=NO_GPU,
    ),
]

EVAL_CASES = [
    ("a text of one character", ["ckpt_path={ckpt}", "data=text", "data.path={tmp}/one.txt", "split=all"],
     "the all split of {tmp}/one.txt has 1 character(s), no target to score; use a longer text"),
    ("batch size 0", ["ckpt_path={ckpt}", "data=text", "data.path={corpus}", "batch_size=0"],
     "batch_size=0 must be a whole number >= 1"),
    ("unknown device", ["ckpt_path={ckpt}", "data=text", "data.path={corpus}", "device=tpu"],
     "device='tpu' is not a device"),
    (
        "data outside the checkpoint's vocabulary",
        ["ckpt_path={ckpt}", "data=text", "data.path={other_text}"],
        "has characters the vocabulary lacks: 'A', 'B', 'C'",
    ),
    ("a text with Windows line endings", ["ckpt_path={ckpt}", "data=text", "data.path={tmp}/crlf.txt"],
     "has characters the vocabulary lacks: '\\r'; pass data.newline=normalize to read '\\r\\n' as '\\n', or "
     "remove them from the text"),
    # A split misspelt, or named as other tools name theirs, was refused with no word of the one meant.
    (
        "unknown split",
        ["ckpt_path={ckpt}", "data=text", "data.path={corpus}", "split=test"],
        "split='test' is not one of val, train, all (did you mean split=val? the text a run holds out is its "
        "val split: there is no test split)",
    ),
    ("a test split misspelt", ["ckpt_path={ckpt}", "data=text", "data.path={corpus}", "split=tset"],
     "split='tset' is not one of val, train, all (did you mean split=val? the text a run holds out is its "
     "val split: there is no test split)"),
    ("a split misspelt", ["ckpt_path={ckpt}", "data=text", "data.path={corpus}", "split=tarin"],
     "split='tarin' is not one of val, train, all (did you mean split=train?)"),
    ("a split named in full", ["ckpt_path={ckpt}", "data=text", "data.path={corpus}", "split=validation"],
     "split='validation' is not one of val, train, all (did you mean split=val?)"),
    (
        "checkpoint truncated",
        ["ckpt_path={tmp}/truncated.ckpt", "data=text", "data.path={corpus}"],
        "is not a readable checkpoint",
    ),
]


def _assert_one_error_line(code: int, out: str, err: str, expected: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(("case", "args", "expected"), TRAIN_CASES)
def test_train_bad_input(case, args, expected, files, monkeypatch, capsys):
    base = [
        a
        for a in bare_train_args(files["corpus"], files["tmp"] / "run")
        if a.split("=")[0] not in {x.split("=")[0] for x in args}
    ]
    if "-m" in args:  # a sweep's folder is hydra.sweep.dir: its hydra.run.dir is refused
        base = [a.replace("hydra.run.dir=", "hydra.sweep.dir=", 1) for a in base]
    code, out, err = run_main(train_cli.main, [*base, *_fill(args, files)], capsys)
    _assert_one_error_line(code, out, err, expected.format(**files))
    # Nothing decided for a run that never starts: the precision chosen was logged before a data error.
    assert "precision=auto" not in out, out


def test_files_listed_with_a_comma_are_offered_as_a_sweep_named_alike(files, monkeypatch, capsys):
    # Typed relative, as a user does: the first file was offered absolute and the second as typed.
    folder = files["tmp"] / "my texts é"
    folder.mkdir()
    shutil.copy(files["corpus"], folder / "a 😀.txt")
    shutil.copy(files["corpus"], folder / "b.txt")
    monkeypatch.chdir(files["tmp"])
    base = [a for a in bare_train_args(files["corpus"], files["tmp"] / "run") if "data.path" not in a]
    typed = "data.path=my texts é/a 😀.txt,my texts é/b.txt"
    code, out, err = run_main(train_cli.main, [*base, typed], capsys)
    sweep = f"data.path=choice('{folder}/a 😀.txt','{folder}/b.txt')"
    _assert_one_error_line(code, out, err, f"sweep over them: -m {shlex.quote(sweep)}")
    assert not (files["tmp"] / "run").exists()


@pytest.mark.parametrize("typed", ["+hydra/foo=bar", "hydra.job.chdir=true"])
@pytest.mark.parametrize("sweep", [[], ["-m", "seed=1,2"]], ids=["run", "sweep"])
def test_what_hydra_takes_quietly_is_refused_before_any_folder(typed, sweep, files, capsys):
    # Both trained: +hydra/foo=bar as if it were not there; hydra.job.chdir=true in its run folder.
    root = files["tmp"] / "quiet"
    args = [*bare_train_args(files["corpus"], None), typed, f"paths.output_root={root}", *sweep]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, f"error: {typed}: ")
    assert not root.exists()


def test_a_sweeps_run_dir_is_refused_naming_the_sweep_dir(files, capsys):
    # Hydra takes a sweep's hydra.run.dir without a word: its jobs went to a new dated folder.
    root, folder = files["tmp"] / "quiet", files["tmp"] / "my runs, é 😀"
    args = [*bare_train_args(files["corpus"], None), f"paths.output_root={root}", "-m", "seed=1,2",
            f"hydra.run.dir={folder}"]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, (
        f"error: hydra.run.dir={folder} names one run's folder, which a sweep (-m) does not use: its jobs go "
        f"into hydra.sweep.dir, one folder each; write 'hydra.sweep.dir={folder}' instead"))
    assert not root.exists() and not folder.exists()
    # With hydra.sweep.dir typed too, writing it "instead" would name the sweep's folder twice.
    sweeps = files["tmp"] / "sweeps é"
    code, out, err = run_main(train_cli.main, [*args, f"hydra.sweep.dir={sweeps}"], capsys)
    _assert_one_error_line(code, out, err, (
        f"error: hydra.run.dir={folder} names one run's folder, which a sweep (-m) does not use: its jobs go "
        f"into hydra.sweep.dir, one folder each ({sweeps} here); drop hydra.run.dir"))
    assert not root.exists() and not folder.exists() and not sweeps.exists()


@pytest.mark.parametrize(("typed", "expected"), [
    ("seed=[1,2]", "seed=[1,2] gives seed a list, the same in every job, where it takes one value: to run "
     "once with each, write the values without brackets: seed=1,2"),
    ("optimizer.lr=[1e-3, 3e-3]", "write the values without brackets: optimizer.lr=1e-3,3e-3"),
    ("trainer.precision=[bf16-mixed,32-true]", "without brackets: trainer.precision=bf16-mixed,32-true"),
    ("seed=1..3", "seed=1..3 is one value to Hydra, the text '1..3', not a range to sweep: to run once with "
     "each of 1 to 3, write 'seed=range(1,4)' (its end is left out) or seed=1,2,3"),
    ("seed=3..1", "to run once with each of 3 to 1, write seed=3,2,1"),
    ("sample.top_k=[5,10]", "sample.top_k=[5,10] gives sample.top_k a list, the same in every job, where it "
     "takes one value: to run once with each, write the values without brackets: sample.top_k=5,10"),
    # Under a search, `1,2` is a choice each trial draws from: "to run once with each" was not so.
    ("hparams_search=optuna seed=[1,2]", "seed=[1,2] gives seed a list, the same in every job, where it "
     "takes one value: for the search to draw each trial's seed from them, write the values without "
     "brackets: seed=1,2"),
    ("hparams_search=optuna seed=1..3", "not a range to sweep: for the search to draw each trial's seed from "
     "1 to 3, write 'seed=range(1,4)' (its end is left out) or seed=1,2,3"),
])
def test_a_sweep_typed_as_one_value_is_refused_before_any_folder(typed, expected, files, capsys):
    # Hydra read the list (or the text '1..3') as one value, the same in every job: the sweep's folder
    # was made, and each job failed with "must be a whole number" (exit 1).
    root = files["tmp"] / "runs"
    search, _, typed = typed.rpartition(" ") if typed.startswith("hparams_search=") else ("", "", typed)
    args = [*bare_train_args(files["corpus"], None), "-m", *filter(None, [search, typed]),
            f"hydra.sweep.dir={root}"]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, expected)
    assert not root.exists()


@pytest.mark.parametrize("main", [sample_cli.main, eval_cli.main, export_cli.main],
                         ids=["sample", "eval", "export"])
def test_a_path_given_without_its_key_is_offered_as_ckpt_path(main, files, monkeypatch, capsys):
    # "overrides are key=value; see the command's --help" named neither the setting nor the fix.
    (files["tmp"] / "my run é").mkdir()
    monkeypatch.chdir(files["tmp"])
    code, out, err = run_main(main, ["my run é"], capsys)
    expected = ("error: cannot read the override 'my run é': overrides are key=value; to read the run or "
                "checkpoint it names, give its setting: 'ckpt_path=my run é'")
    _assert_one_error_line(code, out, err, expected)
    code, out, err = run_main(main, ["no such run"], capsys)  # no path: nothing to offer
    _assert_one_error_line(code, out, err, "overrides are key=value; see the command's --help")


def test_a_sweep_keeps_a_list_of_names_for_a_setting_whose_default_is_null(files, capsys):
    # data.data_files (null by default) takes a list of file names: the sweep's list checks let it
    # through, and trainer.max_steps=0 is what ends the command (before any job).
    root = files["tmp"] / "runs"
    args = ["data=hf", "data.name=x", "data.data_files=[1.txt, b.txt]", "-m", "seed=1,2",
            "trainer.max_steps=0", f"hydra.sweep.dir={root}"]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, "error: trainer.max_steps=0 trains nothing")


def test_a_sampling_sweep_typed_as_a_range_is_refused(files, capsys):
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={files['ckpt']}", "seed=1..3"], capsys)
    _assert_one_error_line(code, out, err, "write 'seed=range(1,4)' (its end is left out) or seed=1,2,3")


def test_a_sweep_keeps_settings_that_take_a_list(files, capsys):
    # A list is one value of Adam's betas: each job trains with it.
    root = files["tmp"] / "runs"
    args = [*bare_train_args(files["corpus"], None), "-m", "optimizer.betas=[0.8,0.9]", "trainer.max_steps=1",
            "trainer.val_check_interval=1", "seed=1,2", f"hydra.sweep.dir={root}"]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    saved = [OmegaConf.load(root / job / ".hydra" / "config.yaml") for job in "01"]
    assert [c.optimizer.betas for c in saved] == [[0.8, 0.9]] * 2


def test_a_sweep_hands_trainer_devices_its_list(files, capsys):
    # trainer.devices defaults to one value but takes the GPUs to use as a list: each job gets it,
    # where a refusal as a list typed for a sweep would tell the user to drop the brackets. Without a
    # GPU the jobs' own check of the devices refuses it before the sweep, naming the GPUs asked for.
    # No other test held that exemption.
    root = files["tmp"] / "device runs"
    args = [*bare_train_args(files["corpus"], None), "-m", "trainer.devices=[1]", "trainer.max_steps=1",
            "seed=1,2", f"hydra.sweep.dir={root}"]
    _, _, err = run_main(train_cli.main, args, capsys)
    assert "gives trainer.devices a list" not in err
    if not torch.cuda.is_available():
        assert "error: trainer.devices=[1] names GPUs, but no CUDA GPU is visible" in err
        return
    saved = [OmegaConf.load(root / job / ".hydra" / "config.yaml") for job in "01"]
    assert [c.trainer.devices for c in saved] == [[1]] * 2


def _callback_of_ones_own(tmp_path: Path, monkeypatch, module: str, every: str) -> Path:
    """A callback class of one's own, `module.Mine(every: EVERY = 1)`, importable; and the config folder
    of one's own (still empty) that will set it up."""
    (tmp_path / "my code").mkdir()
    (tmp_path / "my code" / f"{module}.py").write_text(
        "import typing\nfrom collections.abc import Iterable, Sequence\n\nimport lightning\n\n"
        f"class Mine(lightning.Callback):\n    def __init__(self, every: {every} = 1) -> None:\n"
        "        self.every = every\n")
    monkeypatch.syspath_prepend(str(tmp_path / "my code"))
    monkeypatch.delitem(sys.modules, module, raising=False)
    (tmp_path / "my conf é").mkdir()
    return tmp_path / "my conf é"


@pytest.mark.parametrize("hint", ["int | list[int]", "tuple[int, ...]", "Sequence", "Iterable[int] | int",
                                  "typing.Tuple[int, int] | None", "int | str"])
def test_a_sweep_keeps_a_list_for_a_setting_its_class_takes_a_list_for(files, tmp_path, monkeypatch, capsys,
                                                                        hint):
    # A callback of one's own (from a config folder of one's own) whose `every` is a number or a
    # collection, 1 by default: the list was refused ("gives callbacks.mine.every a list ... write the
    # values without brackets"), as trainer.devices was before it was named as an exception; a tuple,
    # a bare Sequence or an Iterable were refused after list and Sequence[int] were taken.
    # trainer.max_steps=0 is what ends the command.
    configs = _callback_of_ones_own(tmp_path, monkeypatch, "list_taking_callback", hint)
    (configs / "experiment").mkdir()
    (configs / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ncallbacks:\n  mine:\n    _target_: list_taking_callback.Mine\n    every: 1\n")
    args = [*bare_train_args(files["corpus"], None), "-m", "--config-dir", str(configs),
            "experiment=mine", "callbacks.mine.every=[1,2]", "seed=1,2", "trainer.max_steps=0",
            f"hydra.sweep.dir={tmp_path / 'runs'}"]
    code, out, err = run_main(train_cli.main, args, capsys)
    if hint == "int | str":  # text is no list of items: the list is refused
        _assert_one_error_line(code, out, err, "error: callbacks.mine.every=[1,2] gives callbacks.mine.every "
                               "a list, the same in every job, where it takes one value")
        return
    _assert_one_error_line(code, out, err, "error: trainer.max_steps=0 trains nothing")


def test_a_sweeps_list_for_a_setting_of_an_option_chosen_in_a_list_is_refused(files, tmp_path, monkeypatch,
                                                                             capsys):
    # callbacks=[default,mine] chooses two options of a group: the defaults the lists were checked
    # against were composed without it, so callbacks.mine.every was not there, and its list went to
    # every job, where a callback of one's own taking a number got [1, 2].
    configs = _callback_of_ones_own(tmp_path, monkeypatch, "number_taking_callback", "int")
    (configs / "callbacks").mkdir()
    (configs / "callbacks" / "mine.yaml").write_text(
        "mine:\n  _target_: number_taking_callback.Mine\n  every: 1\n")
    args = [*bare_train_args(files["corpus"], None), "-m", "--config-dir", str(configs),
            "callbacks=[default,mine]", "callbacks.mine.every=[1,2]", "seed=1,2", "trainer.max_steps=0",
            f"hydra.sweep.dir={tmp_path / 'runs'}"]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, "error: callbacks.mine.every=[1,2] gives callbacks.mine.every a "
                           "list, the same in every job, where it takes one value")


@pytest.mark.parametrize(("typed", "expected"), [
    (["seed=1,2", "trainer.max_steps=0"], "error: trainer.max_steps=0 trains nothing; pass "),
    (["model.dropout=0.1,1.5"], "error: model.dropout=1.5 must be in [0, 1)"),
    (["seed=1,2", "optimizer.lr=1e-3,-1"], "error: optimizer.lr=-1 must be a finite number >= 0"),
    (["trainer.precision=bf16,fp8", "hydra/launcher=joblib"], "error: trainer.precision=fp8 is not a "),
    # The dimension as typed, then the value it was checked at (it named -0.5 alone, which no one typed).
    (["hparams_search=optuna", "model.dropout=interval(-0.5, 0.3)"],
     "error: model.dropout=interval(-0.5, 0.3) is checked at its low end: model.dropout=-0.5 must be "),
    (["seed=1,x"], "error: seed='x' must be a whole number"),
    (["sample.temperature=1.0,-1"], "error: sample.temperature=-1"),
    (["seed=1,2", "sample.seed=x"], "error: sample.seed='x' must be a whole number"),
    (["seed=1,2", "matmul_precision=fast"], "error: matmul_precision=fast is not a precision; use one of "),
    (["threads=1,0"], "error: threads=0 must be a whole number >= 1"),
    (["seed=1,2", "data.split=xyz"], "error: data.split=xyz is not a split of text files: "),
    (["seed=1,2", "data.normalize=NFX"], "error: data.normalize=NFX is not one of NFC, NFKC, NFD, NFKD"),
    (["data.batch_size=4,0"], "error: data.batch_size=0 must be a whole number >= 1"),
    # Checked by the scheduler's and callbacks' constructors, and Lightning's, as each job built them.
    (["seed=1,2", "scheduler.warmup_steps=-1"],
     "error: scheduler.warmup_steps=-1 must be a whole number >= 0"),
    (["scheduler.min_lr_ratio=0.1,2"], "error: scheduler.min_lr_ratio=2 must be between 0 and 1"),
    (["seed=1,2", "callbacks.nonfinite_guard.check_every=0"],
     "error: callbacks.nonfinite_guard.check_every=0 must be a whole number >= 1"),
    (["seed=1,2", "callbacks.train_monitor.grad_norm=maybe"],
     "error: callbacks.train_monitor.grad_norm='maybe' must be true or false"),
    (["callbacks.sample_text.temperature=0.8,-1"],
     "error: callbacks.sample_text.temperature=-1 must be a finite number >= 0 (0 means greedy)"),
    # Lightning's own: "callbacks.model_checkpoint: '<' not supported between instances of 'str' and 'int'".
    (["seed=1,2", "callbacks.model_checkpoint.save_top_k=x"],
     "error: callbacks.model_checkpoint.save_top_k='x' must be how many of the best checkpoints to keep: "
     "a whole number (e.g. 1), 0 for none, or -1 for every one"),
    # Lightning's "`mode` can be min, max but got best", in each job.
    (["callbacks.model_checkpoint.mode=min,best"],
     "error: callbacks.model_checkpoint.mode='best' is not one of min, max (min keeps the lowest monitor "
     "value, as val/loss wants)"),
    (["seed=1,2", "+callbacks.model_checkpoint.every_n_train_steps=-1"],
     "error: callbacks.model_checkpoint.every_n_train_steps=-1 must be a whole number >= 0, or null"),
    # Lightning's "ModelCheckpoint(save_top_k=2, monitor=None) is not a valid configuration", in each job.
    (["seed=1,2", "callbacks.last_checkpoint.save_top_k=2"],
     "error: callbacks.last_checkpoint.save_top_k=2: this callback writes the one checkpoints/last.ckpt, "
     "which a resume reads: keep 1 (0: none); to keep more checkpoints, set "
     "callbacks.model_checkpoint.save_top_k=2 (the best by val/loss)"),
    (["seed=1,2", "callbacks.time_budget.skip_steps=-1"],
     "error: callbacks.time_budget.skip_steps=-1 must be a whole number >= 0"),
    # "callbacks.hparams: 'int' object is not iterable", in each job.
    (["seed=1,2", "callbacks.hparams.extra=5"],
     "error: callbacks.hparams.extra=5 must be settings to show beside the run's own, as {name: value} "
     "(e.g. {seed: 1}), or null"),
    (["seed=1,2", "+trainer.gradient_clip_algorithm=foo"],
     "error: trainer.gradient_clip_algorithm='foo' is not one of norm, value"),
    (["seed=1,2", "trainer.num_nodes=0"], "error: trainer.num_nodes=0 must be a whole number >= 1"),
    # Taken by Lightning: no training value was logged, without a word.
    (["seed=1,2", "logger=csv", "trainer.log_every_n_steps=0"],
     "error: trainer.log_every_n_steps=0 turns off the logging of training values (train/loss, train/lr, "
     "...); log them every N steps with a whole number from 1 "
     "(e.g. 50), or pass logger=none to log nothing"),
    # Lightning's, as each job built its Trainer.
    (["seed=1,2", "trainer.accelerator=tpu"], "error: trainer.accelerator=tpu, but Lightning finds no tpu "
     "accelerator on this machine"),
    (["seed=1,2", "+trainer.limit_val_batches=-1"], "error: trainer.limit_val_batches=-1 must be a whole "
     "number of batches >= 0 (e.g. 5) or a fraction of them from 0.0 to 1.0 (e.g. 0.25), or null"),
], ids=["fixed", "second-value", "grid", "joblib", "optuna", "seed", "sample", "sample-seed", "matmul",
        "threads", "data-split", "data-normalize", "data-batch", "warmup", "lr-floor", "nonfinite-check",
        "grad-norm", "sample-text", "save-top-k", "checkpoint-mode", "checkpoint-every",
        "top-k-unranked", "budget-skip", "hparams-extra", "clip-algorithm", "num-nodes",
        "log-every", "accelerator", "limit-val"])
def test_a_sweeps_bad_setting_is_refused_before_any_job(typed, expected, files, capsys):
    # Each job refused the setting once the sweep's folder was made (the sweep exited 1), a good
    # first job trained first, where a single run with it was refused at once.
    root = files["tmp"] / "runs"
    keys = {t.split("=")[0] for t in typed}  # (logger=csv: in place of the bare run's logger=none)
    base = [a for a in bare_train_args(files["corpus"], None) if a.split("=")[0] not in keys]
    args = [*base, "trainer.max_steps=1", "-m", *typed, f"hydra.sweep.dir={root}"]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, expected)
    assert not root.exists()


@pytest.mark.parametrize(("typed", "expected"), [
    # Lightning's "Requirement 'torch_xla>=1.13' not met", once the text was read.
    ("trainer.accelerator=tpu", "trainer.accelerator=tpu, but Lightning finds no tpu accelerator on this "
     "machine (it finds cpu); use trainer.accelerator=cpu, or auto"),
    ("trainer.accelerator=xyz", "trainer.accelerator=xyz is not an accelerator; use one of auto, cpu, cuda, "
     "gpu, mps, tpu"),
    # Lightning's "'<=' not supported between instances of 'int' and 'str'".
    ("+trainer.limit_val_batches=-1", "trainer.limit_val_batches=-1 must be a whole number of batches >= 0 "
     "(e.g. 5) or a fraction of them from 0.0 to 1.0 (e.g. 0.25), or null"),
    ("+trainer.limit_train_batches=1.5", "trainer.limit_train_batches=1.5 must be a whole number of "),
    ("+trainer.limit_val_batches=abc", "trainer.limit_val_batches='abc' must be a whole number of "),
])
def test_a_trainer_lightning_refuses_is_refused_before_the_text_is_read(typed, expected, files, capsys):
    if "accelerator" in typed and torch.cuda.is_available():  # (the message names the accelerators found)
        pytest.skip("names the accelerators of a machine without a GPU")
    args = [*bare_train_args(files["corpus"], files["tmp"] / "run"), typed]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, f"error: {expected}")
    assert "vocabulary:" not in out + err  # (the text read logs its characters)


@pytest.mark.parametrize(("typed", "expected"), [
    ("seed=interval(0, 100)", "error: seed=interval(0, 100) draws decimal numbers, where seed must be a "
     "whole number; to draw whole numbers, write 'seed=int(interval(0, 100))'"),
    ("sample.seed=tag(log, interval(1, 100))", "error: sample.seed=tag(log, interval(1, 100)) draws decimal "
     "numbers, where sample.seed must be a whole number, or null; to draw whole numbers, write "
     "'sample.seed=int(tag(log, interval(1, 100)))'"),
    ("model.n_layer=interval(1,4)", "error: model.n_layer=interval(1,4) draws decimal numbers, where "
     "model.n_layer must be a whole number >= 1; to draw whole numbers, write "
     "'model.n_layer=int(interval(1,4))'"),
])
def test_a_searchs_decimal_draws_of_a_whole_number_are_refused_naming_int(typed, expected, files, capsys):
    # The search's dimension was named by its low end, with a single run's advice: "seed=0.0 must
    # be a whole number; write it without a decimal point or exponent: seed=0", which is no search.
    root = files["tmp"] / "runs"
    args = [*bare_train_args(files["corpus"], None), "trainer.max_steps=1", "hparams_search=optuna", typed,
            f"hydra.sweep.dir={root}"]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert (code, err) == (2, expected + "\n")
    assert not root.exists()


@pytest.mark.parametrize(("swept", "composed"), [
    ("data.batch_size=range(1,101)", 1), ("trainer=default,cpu", 2),
])
def test_a_sweeps_values_of_a_setting_are_checked_without_composing_a_job_each(swept, composed, files,
                                                                               monkeypatch, capsys):
    # Composing a job takes ~0.2 s: 100 values of data.batch_size, each composed, took 20 s more to
    # start. A setting's value is applied to the first job as Hydra applies it; a group's option is
    # composed. (trainer.max_steps=0 ends the command once every job is checked.)
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    calls = []
    compose = ConfigLoaderImpl.load_sweep_config
    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config",
                        lambda self, *a, **k: calls.append(a) or compose(self, *a, **k))
    root = files["tmp"] / "runs"
    args = [*bare_train_args(files["corpus"], None), "trainer.max_steps=0", "-m", swept,
            f"hydra.sweep.dir={root}"]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, "error: trainer.max_steps=0 trains nothing")
    assert len(calls) == composed


@pytest.mark.parametrize("seconds", ["-3", "0", "abc", "true"])
def test_auto_refuses_a_bad_budget_before_timing_shapes(seconds, files, monkeypatch, capsys):
    args = [
        "model=auto", f"budget_seconds={seconds}", "data=text", f"data.path={files['corpus']}",
        f"hydra.run.dir={files['tmp'] / 'run'}", "logger=none", "~callbacks.progress_bar",
    ]
    code, out, err = run_main(train_cli.main, args, capsys)
    shown = repr(seconds) if seconds == "abc" else seconds  # text shown as text, true as typed (not True)
    _assert_one_error_line(code, out, err, f"budget_seconds={shown} must be a positive number of seconds")
    assert "timed" not in out  # no shape was timed, no choice printed


@pytest.mark.parametrize(("case", "args", "expected"), SAMPLE_CASES)
def test_sample_bad_input(case, args, expected, files, monkeypatch, capsys):
    code, out, err = run_main(sample_cli.main, _fill(args, files), capsys)
    _assert_one_error_line(code, out, err, expected.format(**files))
    assert out == ""  # nothing printed before the error


@pytest.mark.parametrize(("case", "args", "expected"), EVAL_CASES)
def test_eval_bad_input(case, args, expected, files, monkeypatch, capsys):
    code, out, err = run_main(eval_cli.main, _fill(args, files), capsys)
    _assert_one_error_line(code, out, err, expected.format(**files))


def test_resuming_from_a_folder_or_file_that_is_no_run_writes_nothing_beside_it(files, monkeypatch, capsys):
    # ckpt_path at a user's folder, or at a loose file: refused (or continued in a new run folder),
    # never with the run's config, lock and log written into that folder.
    monkeypatch.chdir(files["tmp"])
    folder = files["tmp"] / "folder"
    (folder / "notes.txt").write_text("mine")
    loose = files["tmp"] / "loose"
    loose.mkdir()
    (loose / "model.pt").write_text("junk")
    for ckpt_path, expected in ((folder, f"{folder} is a folder but not a run directory"),
                                (loose / "model.pt", "is not a readable checkpoint")):
        args = ["data=text", f"data.path={files['corpus']}", f"ckpt_path={ckpt_path}"]
        _assert_one_error_line(*run_main(train_cli.main, args, capsys), expected)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in loose.iterdir()) == ["model.pt"]
    assert not (files["tmp"] / "outputs").exists()  # the new run folder of the refused start is gone


def test_full_traceback_on_request(files, monkeypatch, capsys):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ChargptError, match="checkpoint not found"):
        run_main(sample_cli.main, _fill(["ckpt_path={tmp}/nope.ckpt"], files), capsys)


def test_existing_run_is_never_overwritten(files, monkeypatch, capsys):
    run = files["tmp"] / "run"
    args = bare_train_args(files["corpus"], run, "trainer.max_steps=2", "trainer.val_check_interval=2")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "train.log"}

    # The same run directory again, without ckpt_path: refused before Hydra writes anything.
    code, out, err = run_main(train_cli.main, [*args, "model.n_layer=2"], capsys)
    _assert_one_error_line(
        code, out, err,
        f"the run directory {run} already holds a run; continue it with chargpt-train data=text",
    )
    # Resuming another run's checkpoint into this directory: refused too.
    other = files["tmp"] / "other"
    code, _, err = run_main(
        train_cli.main,
        bare_train_args(files["corpus"], other, "trainer.max_steps=2", "trainer.val_check_interval=2"),
        capsys,
    )
    assert code == 0, err
    code, out, err = run_main(train_cli.main, [*args, f"ckpt_path={other}"], capsys)
    _assert_one_error_line(code, out, err, f"hydra.run.dir={run} holds another run")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "train.log"} == snapshot


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"status": "interrupted"}, "it was stopped (Ctrl-C or a signal)"),
        ({"status": "failed", "error": "x"}, "it failed"),
        ({"status": "running", "pid": 2**22 + 12345}, "it was killed"),
        # Killed while it started (reading its text, building its model): no status.json yet.
        (None, "it never began training (stopped or killed while it started, or starting right now)"),
    ],
)
def test_a_run_stopped_before_its_first_checkpoint_is_not_a_dead_end(status, expected, files, monkeypatch,
                                                                      capsys):
    # Two quick Ctrl-C before the first checkpoint: the run says "interrupted" but holds nothing to
    # continue. Resuming it and sampling it name why and what to do (they sent the user back and forth
    # between "continue it with ckpt_path" and "no checkpoint"); the same command again starts it over.
    run = files["tmp"] / "run"
    args = bare_train_args(files["corpus"], run, "trainer.max_steps=2", "trainer.val_check_interval=2")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.unlink()
    if status is None:
        for name in ("status.json", "metrics.json"):
            (run / name).unlink()
    else:
        write_status(run, **status)
    first_config = (run / ".hydra" / "config.yaml").read_bytes()

    when = "" if status is None else " before it wrote its first checkpoint"
    why = f"{expected}{when}, so there is nothing to continue or load"
    code, out, err = run_main(train_cli.main, [*args, f"ckpt_path={run}"], capsys)
    _assert_one_error_line(code, out, err, f"run directory {run} holds no checkpoint: {why}; train it again "
                           "(its chargpt-train command without ckpt_path starts it over in that folder)")
    assert (run / ".hydra" / "config.yaml").read_bytes() == first_config  # the refused resume changed nothing
    assert not list((run / ".hydra").glob("resume-*"))
    code, out, err = run_main(sample_cli.main, [f"ckpt_path={run}"], capsys)
    _assert_one_error_line(code, out, err, f"run directory {run} holds no checkpoint: {why}")
    code, out, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_run_started_over_says_so_once(files, monkeypatch, capsys):
    # Its folder named relative: the line was said twice, once as typed (before the run's log was
    # opened) and once absolute.
    monkeypatch.chdir(files["tmp"])
    run = files["tmp"] / "runs" / "my runs é 🚀"
    args = bare_train_args(files["corpus"], Path("runs") / run.name, "trainer.max_steps=2",
                           "trainer.val_check_interval=2")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.unlink()
    write_status(run, status="interrupted")
    code, out, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    said = [line for line in (out + err).splitlines() if "starting it over" in line]
    assert len(said) == 1 and said[0].endswith(
        f"- {run} holds a run that was stopped (Ctrl-C or a signal) before it wrote its first checkpoint, "
        "so there is nothing to continue or load: starting it over there"), said
    assert said[0] in (run / "train.log").read_text()  # the run's log says it was started over


@pytest.mark.slow
def test_a_run_stopped_holding_only_an_older_best_is_not_started_over(files, capsys):
    # Trained without callbacks.last_checkpoint, killed after a validation that did not improve on its
    # best (monitor=step mode=min: each later one is none): its own command again called it stopped
    # "before it wrote its first checkpoint" and started it over beside that best, which stayed there
    # with the new run's best-000002-v1.ckpt, the two runs' files side by side.
    run = files["tmp"] / "my runs é 🚀"
    args = bare_train_args(files["corpus"], run, "trainer.max_steps=4", "trainer.val_check_interval=2",
                           "~callbacks.last_checkpoint", "callbacks.model_checkpoint.monitor=step",
                           "callbacks.model_checkpoint.mode=min")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    best = run / "checkpoints" / "best-000002.ckpt"
    assert [p.name for p in (run / "checkpoints").iterdir()] == [best.name]
    write_status(run, status="running", pid=2**22 + 12345)  # its process gone: killed
    kept = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "train.log"}
    code, out, err = run_main(train_cli.main, args, capsys)
    said = (f"error: the run directory {run} already holds a run whose newest checkpoint, "
            "checkpoints/best-000002.ckpt, holds step 2 where the run reached step 4 (a resume from it "
            "trains steps 3 to 4 again), and no checkpoints/last.ckpt; continue it from that best with "
            "chargpt-train ")
    _assert_one_error_line(code, out, err, said)
    assert err.rstrip().endswith(f"{shlex.quote(f'ckpt_path={best}')}, or pick a new hydra.run.dir"), err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "train.log"} == kept
    # The command it names goes on from that best, in the run's folder.
    command = shlex.split(err.partition(" from that best with ")[2].rpartition(", or pick")[0])
    code, _, err = run_main(train_cli.main, command[1:], capsys)
    assert code == 0, err
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    assert not list((run / "checkpoints").glob("*-v1.ckpt"))


@pytest.mark.parametrize("name", ["status.json", "metrics.json", "train.log", ".hydra/config.yaml"])
def test_a_users_file_named_as_a_run_file_is_never_overwritten(name, files, monkeypatch, capsys):
    # Another Hydra program's output folder: its .hydra/config.yaml was overwritten by chargpt's.
    folder = files["tmp"] / "my notes"
    (folder / name).parent.mkdir(parents=True)
    (folder / name).write_text('{"mine": 1}')  # Hydra would append its log to a train.log
    args = bare_train_args(files["corpus"], folder, "trainer.max_steps=2", "trainer.val_check_interval=2")
    code, out, err = run_main(train_cli.main, args, capsys)
    shown = ".hydra/ (another program's Hydra output)" if name.startswith(".hydra") else name
    _assert_one_error_line(code, out, err, f"{folder} holds {shown}, which a run would overwrite")
    assert (folder / name).read_text() == '{"mine": 1}'
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [name]


@pytest.mark.slow
def test_a_run_without_hydras_records_resumes_again(files, monkeypatch, capsys):
    # Launched with hydra.output_subdir=null, a run's .hydra/ holds only its resumes' records: its
    # second resume was refused as "another program's Hydra output".
    run = files["tmp"] / "no records"
    args = bare_train_args(files["corpus"], run, "trainer.max_steps=4", "trainer.val_check_interval=2")
    assert run_main(train_cli.main, [*args, "hydra.output_subdir=null"], capsys)[0] == 0
    for steps in (6, 8):
        code, _, err = run_main(train_cli.main, [*args, f"ckpt_path={run}", f"trainer.max_steps={steps}"],
                                capsys)
        assert code == 0, err
    assert (run / ".hydra").is_dir() and not (run / ".hydra" / "hydra.yaml").exists()
    # A start cut short before hydra.yaml: chargpt's config alone, not another program's.
    cut_short = files["tmp"] / "cut short"
    (cut_short / ".hydra").mkdir(parents=True)
    (cut_short / ".hydra" / "config.yaml").write_text("callbacks:\n  x:\n    _target_: chargpt.training.X\n")
    assert foreign_files(cut_short) == []


def test_an_export_folder_is_not_made_a_run_folder(files, monkeypatch, capsys):
    # A run trained into an export's folder: the same path then sampled the export and resumed the run.
    folder = files["tmp"] / "my export é"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format": FORMAT_MARKER, "weights": "model.safetensors"}))
    (folder / "model.safetensors").write_bytes(b"weights")
    args = bare_train_args(files["corpus"], folder, "trainer.max_steps=2")
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, f"{folder} holds a chargpt export (its config.json); give the run "
                           "a new or empty folder: hydra.run.dir=NEW_FOLDER")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("swept", [
    ["trainer.accelerator=cpu", "trainer.devices=1", "+trainer.strategy=ddp", "model.dropout=0.0,0.1"],
    ["trainer=cpu,ddp_cpu"],  # its first job alone would start: the second was refused once it ran
])
def test_multirun_with_subprocess_ddp_is_refused(swept, files, monkeypatch, capsys):
    args = bare_train_args(files["corpus"], None, f"hydra.sweep.dir={files['tmp']}/sweep", *swept)
    code, out, err = run_main(train_cli.main, ["-m", *args], capsys)
    _assert_one_error_line(code, out, err, "trainer.strategy=ddp cannot run inside a Hydra multirun (-m)")
    assert not (files["tmp"] / "sweep").exists()  # refused before the sweep's folder is made



@pytest.mark.slow
def test_a_sweep_under_mlflow_run_is_refused_before_its_folder_is_made(files, monkeypatch, capsys):
    # Refused by its first job, after the job had read the text: the sweep's folder stayed, its job
    # listed by chargpt-report as an incomplete run.
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_RUN_ID", "abc123")
    sweep = files["tmp"] / "sweep"
    args = bare_train_args(files["corpus"], None, f"hydra.sweep.dir={sweep}", "logger=mlflow", "seed=1,2")
    code, out, err = run_main(train_cli.main, ["-m", *args], capsys)
    _assert_one_error_line(code, out, err, "MLFLOW_RUN_ID=abc123 (set by mlflow run) names one MLflow run, "
                           "which a sweep's jobs cannot all log into; unset it")
    assert not sweep.exists()


def test_a_checkpoint_or_export_it_may_not_read_is_named_as_such(files, unreadable, capsys):
    # A checkpoint was "not a readable checkpoint (not a torch zip archive); it may be truncated", and
    # an export's weights "does not hold this model's weights (No such file or directory)".
    pytest.importorskip("safetensors")
    export = files["tmp"] / "export"
    code, _, err = run_main(export_cli.main, [f"ckpt_path={files['ckpt']}", f"out={export}"], capsys)
    assert code == 0, err
    config = files["tmp"] / "export config"  # its config.json was "not a readable export config ...;
    shutil.copytree(export, config)           # export the model again"
    unreadable(files["ckpt"])
    unreadable(export / "model.safetensors")
    unreadable(config / "config.json")
    for path in (files["ckpt"], export / "model.safetensors", config / "config.json"):
        where = path.parent if path.parent in (export, config) else path
        code, out, err = run_main(sample_cli.main, [f"ckpt_path={where}", "max_new_tokens=3"], capsys)
        _assert_one_error_line(code, out, err, f"cannot read {path} (Permission denied); make it readable "
                               f"(chmod u+r {shlex.quote(str(path))})")
    args = bare_train_args(files["corpus"], files["tmp"] / "run", f"init_from={files['ckpt']}")
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, f"cannot read {files['ckpt']} (Permission denied)")
    assert not (files["tmp"] / "run").exists()


@pytest.mark.parametrize("command", ["train", "eval"])
@pytest.mark.parametrize(("env", "typed", "expected"), [
    ("", [], "CHARGPT_DATA_DIR is set but empty (an unset shell variable?), so paths.data_dir names no "
     "folder; set it to the folder that holds the data, or unset it"),
    ("{tmp}", ["paths.data_dir="], "paths.data_dir is empty: the data would be read (and downloaded) at the "
     "root of the file system; name a folder (paths.data_dir=data) or leave it out"),
], ids=["env", "typed"])
def test_an_empty_data_directory_is_refused_not_read_at_the_root(command, env, typed, expected, files,
                                                                  monkeypatch, capsys):
    # It made Tiny Shakespeare's path /tinyshakespeare/input.txt, looked for and downloaded there.
    monkeypatch.setenv("CHARGPT_DATA_DIR", env.format(**files))
    if command == "train":
        args = [a for a in bare_train_args(files["corpus"], files["tmp"] / "run") if not a.startswith("data")]
        code, out, err = run_main(train_cli.main, [*args, "data=tinyshakespeare", *typed], capsys)
        assert not (files["tmp"] / "run").exists()
    else:
        args = [f"ckpt_path={files['ckpt']}", "data=tinyshakespeare", *typed]
        code, out, err = run_main(eval_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, expected)
    assert "downloading" not in out


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "env"])
def test_a_data_directory_that_is_a_file_is_named_by_what_set_it(typed, files, monkeypatch, capsys):
    # paths.data_dir=/etc/passwd typed on the command line was told to set CHARGPT_DATA_DIR, which
    # the typed setting would still have overridden.
    a_file = files["corpus"]
    monkeypatch.setenv("CHARGPT_DATA_DIR", str(files["tmp"]) if typed else str(a_file))
    args = [a for a in bare_train_args(a_file, files["tmp"] / "run") if not a.startswith("data")]
    code, out, err = run_main(train_cli.main, [*args, "data=tinyshakespeare",
                                               *([f"paths.data_dir={a_file}"] if typed else [])], capsys)
    named_by = "paths.data_dir" if typed else "CHARGPT_DATA_DIR"
    _assert_one_error_line(code, out, err, f"{a_file}/tinyshakespeare/input.txt is missing, and no folder "
                           f"for it can be made (Not a directory: {a_file}/tinyshakespeare); set {named_by} "
                           "to a folder that has it, or to one it can be downloaded into")


def test_an_empty_data_directory_that_nothing_reads_is_no_error(files, monkeypatch, capsys):
    monkeypatch.setenv("CHARGPT_DATA_DIR", "")
    code, _, err = run_main(eval_cli.main, [f"ckpt_path={files['ckpt']}", f"data.path={files['corpus']}"],
                            capsys)
    assert code == 0, err


@pytest.mark.parametrize("command", ["train", "sample"])
def test_a_slurm_sweep_on_a_machine_without_slurm_is_refused_before_any_folder(command, files, monkeypatch,
                                                                                 capsys):
    # submitit ended it in a traceback, `Could not detect "srun", are you indeed on a slurm cluster?`.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    no_slurm = files["tmp"] / "bin"
    no_slurm.mkdir()
    monkeypatch.setenv("PATH", str(no_slurm))
    monkeypatch.chdir(files["tmp"])
    before = sorted(files["tmp"].rglob("*"))
    if command == "train":
        args = bare_train_args(files["corpus"], None, f"hydra.sweep.dir={files['tmp']}/sweep", "seed=1,2")
        code, out, err = run_main(train_cli.main, ["-m", "hydra/launcher=slurm", *args], capsys)
    else:
        args = [f"ckpt_path={files['ckpt']}", "temperature=0.5,1"]
        code, out, err = run_main(sample_cli.main, ["-m", "hydra/launcher=slurm", *args], capsys)
    _assert_one_error_line(code, out, err, "hydra/launcher=slurm submits the sweep's jobs to SLURM, but this "
                           "machine has no SLURM (no srun command on the PATH); run the command on the "
                           "cluster's login node, or drop hydra/launcher=slurm")
    assert sorted(files["tmp"].rglob("*")) == before


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_an_unresolvable_strategy_is_named_before_any_folder(multirun, files, monkeypatch, capsys):
    # A sweep's check of each job's launch met the ${...} as Hydra's UserWarning, then made the
    # sweep's folder, and every job failed with "a setting: cannot resolve its ${...}".
    monkeypatch.delenv("UNSET_STRATEGY", raising=False)
    where = files["tmp"] / "runs"
    launch = [f"hydra.sweep.dir={where}", "seed=1,2"] if multirun else [f"hydra.run.dir={where}"]
    args = bare_train_args(files["corpus"], None, "trainer=ddp_cpu",
                           "trainer.strategy=${oc.env:UNSET_STRATEGY}", *launch)
    code, out, err = run_main(train_cli.main, ["-m", *args] if multirun else args, capsys)
    _assert_one_error_line(code, out, err, "trainer.strategy: cannot resolve its ${...} (\"Environment "
                           "variable 'UNSET_STRATEGY' not found\"); set trainer.strategy to a plain value")
    assert not where.exists()


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork", "ddp_notebook"])
def test_a_strategy_that_trains_in_child_processes_is_refused(strategy, multirun, files, capsys):
    # Lightning's multiprocessing launcher trains in child processes: the datamodule's memory-mapped
    # text does not pickle into them (a traceback), and the command's own ending (its result,
    # closing sample, resume command) would not reach them.
    where = files["tmp"] / "runs"
    args = bare_train_args(files["corpus"], None, "trainer.accelerator=cpu", "trainer.devices=2",
                           f"+trainer.strategy={strategy}",
                           f"hydra.sweep.dir={where}" if multirun else f"hydra.run.dir={where}")
    code, out, err = run_main(train_cli.main, ["-m", *args] if multirun else args, capsys)
    _assert_one_error_line(code, out, err, f"trainer.strategy={strategy} trains in child processes, which "
                           "chargpt-train does not support: use trainer.strategy=ddp")
    assert ("in a single run (not -m)" in err) == multirun
    assert not where.exists()


@pytest.mark.parametrize("trials", ["0", "-1"])
def test_a_search_of_no_trials_is_refused_before_any_folder(trials, files, monkeypatch, capsys):
    # Optuna's sweeper would run nothing, then fail with a traceback: no best of no trials.
    sweep = files["tmp"] / "search"
    args = bare_train_args(files["corpus"], None, f"hydra.sweep.dir={sweep}", "hparams_search=optuna",
                           f"hydra.sweeper.n_trials={trials}")
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, f"hydra.sweeper.n_trials={trials} runs no trial; give at least 1")
    assert not sweep.exists()

@pytest.mark.parametrize(
    ("trainer", "gpus", "expected"),
    [
        ({"accelerator": "gpu", "devices": 8}, 1, "trainer.devices=8 but 1 CUDA GPU(s) are visible"),
        ({"accelerator": "auto", "devices": [0, 1]}, 1, "devices=[0, 1] but 1 CUDA GPU(s) are visible"),
        ({"accelerator": "gpu", "devices": 1}, 0, "trainer.accelerator=gpu but no CUDA GPU is visible"),
    ],
)
def test_more_gpus_than_exist(trainer, gpus, expected, monkeypatch):
    from omegaconf import OmegaConf

    from chargpt.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        check_devices(OmegaConf.create(trainer))
    if gpus:
        check_devices(OmegaConf.create({**trainer, "devices": "auto"}))  # "auto" takes what exists
    else:  # Lightning's "No supported gpu backend found!", once the text was read
        with pytest.raises(ConfigError, match=re.escape(expected)):
            check_devices(OmegaConf.create({**trainer, "devices": "auto"}))


@pytest.mark.parametrize(("typed", "expected"), [
    ("trainer.devices=[0]", "error: trainer.devices=[0] names GPUs, but no CUDA GPU is visible: the run "
     "trains on the CPU, which takes a number of processes; write trainer.devices=1"),
    ("trainer.devices='0,1'", "error: trainer.devices=0,1 names GPUs, but no CUDA GPU is visible: "),
    ("trainer.devices=-1", "; write trainer.devices=1"),
])
def test_gpu_indices_on_a_cpu_are_refused_naming_a_count(typed, expected, files, monkeypatch, capsys):
    # Lightning's "`devices` selected with `CPUAccelerator` should be an int > 0" named no fix, and
    # came once the text was read.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    run = files["tmp"] / "run"
    code, out, err = run_main(train_cli.main, [*bare_train_args(files["corpus"], run), typed], capsys)
    _assert_one_error_line(code, out, err, expected)
    assert not run.exists() and "vocabulary:" not in out
    code, out, err = run_main(train_cli.main, [*bare_train_args(files["corpus"], run), typed,
                                               "trainer.accelerator=cpu"], capsys)
    _assert_one_error_line(code, out, err, "but trainer.accelerator=cpu takes a number of processes; write ")


@pytest.mark.parametrize(("typed", "expected"), [
    (["trainer=cpu", "trainer.devices=[0]"], "error: trainer.devices=[0] names GPUs, but trainer=cpu takes a "
     "number of processes; write trainer.devices=1, or trainer=gpu"),
    (["trainer=ddp_cpu", "trainer.devices=[0]"], "error: trainer.devices=[0] names GPUs, but trainer=ddp_cpu "
     "(its trainer.accelerator=cpu) takes a number of processes; write trainer.devices=1, or "
     "trainer.accelerator=gpu"),
    (["trainer=gpu"], "error: trainer=gpu but no CUDA GPU is visible; use trainer=cpu"),
    (["-m", "trainer=gpu", "seed=1,2"], "error: trainer=gpu but no CUDA GPU is visible; use trainer=cpu"),
    # devices: auto, which took the "no CUDA GPU" check past: Lightning's "invalid trainer settings: No
    # supported gpu backend found!" came once the text was read, naming no fix.
    (["trainer=ddp"], "error: trainer=ddp (its trainer.accelerator=gpu) but no CUDA GPU is visible; use "
     "trainer=ddp_cpu"),
    (["trainer.accelerator=gpu", "trainer.devices=auto"], "error: trainer.accelerator=gpu but no CUDA GPU is "
     "visible; use trainer.accelerator=cpu"),
])
def test_a_device_error_names_the_trainer_option_typed(typed, expected, files, monkeypatch, capsys):
    # It named trainer.accelerator=cpu (and its fix trainer.accelerator=gpu), which was not typed.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    run = files["tmp"] / "run"
    args = bare_train_args(files["corpus"], None, f"hydra.sweep.dir={run}") if "-m" in typed else \
        bare_train_args(files["corpus"], run)
    code, out, err = run_main(train_cli.main, [*args, *typed], capsys)
    _assert_one_error_line(code, out, err, expected)
    assert not run.exists()


@pytest.mark.parametrize("devices", ["0,1", "1,", [0, 1], -1, "auto", 2])
def test_device_settings_lightning_takes_on_gpus_pass(devices, monkeypatch):
    # A string of GPU indices ("0,1") is Lightning's too: only counts that are none are refused.
    from omegaconf import OmegaConf

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_devices(OmegaConf.create({"accelerator": "gpu", "devices": devices}))


@pytest.mark.slow  # several seconds of training; the default run covers the mechanism
def test_a_sweep_into_an_existing_sweep_keeps_its_runs(files, monkeypatch, capsys):
    sweep = files["tmp"] / "sweep"
    args = [
        "-m",
        *bare_train_args(
            files["corpus"],
            None,
            f"hydra.sweep.dir={sweep}",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "model.dropout=0.0",
        ),
    ]
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    job = sweep / "0"
    before = {p: p.read_bytes() for p in job.rglob("*") if p.is_file() and p.name != "train.log"}
    # Another sweep into its folder (other settings, or other job folders): refused, naming the
    # command that continues the sweep that is there.
    refused = f"the sweep directory {sweep} already holds runs of an earlier sweep (0) with other settings "
    continuing = "; pick a new hydra.sweep.dir, or continue that sweep with its own command: "
    continuing += str(continue_command(sweep))
    for other, changed in (
        ([*args[:-1], "model.dropout=0.1"], "(model.dropout: 0.0 in that sweep, 0.1 here)"),
        ([*args, "hydra.sweep.subdir=job${hydra.job.num}"],
         "(hydra.sweep.subdir: not set in that sweep, job${hydra.job.num} here)"),
        ([*args[:-2], args[-1], args[-2]], "(the same settings in another order)"),
    ):
        code, out, err = run_main(train_cli.main, other, capsys)
        _assert_one_error_line(code, out, err, refused + changed + continuing)
    # The same sweep again continues it: its finished job is kept as it is (status, config, checkpoints).
    code, out, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    best = json.loads((job / "status.json").read_text())["value"]
    assert f"finished in the earlier launch (best val loss {best:.4f}): kept as it is" in out
    assert {p: p.read_bytes() for p in job.rglob("*") if p.is_file() and p.name != "train.log"} == before


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("train_fraction", "abc", "data.train_fraction='abc' must be a finite number"),
    ("val_batch_size", "abc", "data.val_batch_size='abc' must be a whole number >= 1, or null"),
    ("val_batch_size", 0, "data.val_batch_size=0 must be a whole number >= 1, or null"),
    ("num_workers", -1, "data.num_workers=-1 must be a whole number >= 0"),
    ("batch_size", "abc", "data.batch_size='abc' must be a whole number >= 1"),
])
def test_data_settings_of_the_wrong_type_are_named(setting, value, expected, files) -> None:
    with pytest.raises(ChargptError, match=f"^{re.escape(expected)}"):
        CharDataModule(**{"path": str(files["corpus"]), "block_size": 16, "batch_size": 4, setting: value})


@pytest.mark.parametrize("setting", ["dropout", "init_std", "mlp_ratio", "logit_softcap"])
def test_model_numbers_of_the_wrong_type_are_named(setting) -> None:
    with pytest.raises(ChargptError, match=f"^model.{setting}='abc' must be a finite number"):
        ModelConfig(**{setting: "abc"})


def test_a_logging_interval_of_0_is_taken_where_no_logger_logs(tmp_path, capsys) -> None:
    # logger=none is the fix the refusal of trainer.log_every_n_steps=0 names: with it, 0 trains.
    run = tmp_path / "run é 🚀"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2",
                           "trainer.val_check_interval=2", "trainer.log_every_n_steps=0")
    code, _, err = run_main(train_cli.main, args, capsys)
    assert code == 0, err
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("own", ["check_settings = True",
                                 "def check_settings(self, every): raise ValueError"], ids=["flag", "method"])
def test_a_callback_of_ones_own_is_not_checked_by_a_check_settings_of_its_own(own, tmp_path, monkeypatch,
                                                                             capsys) -> None:
    # chargpt calls a class's check_settings(**its settings) before the run (its own classes' static
    # ones): a callback of the user's own with a check_settings of its own meaning was a traceback.
    mine = callback_of_ones_own(tmp_path, monkeypatch, "my_flagged_callback")
    (mine / "my_flagged_callback.py").write_text(
        f"import lightning\nclass Mine(lightning.Callback):\n    {own}\n"
        "    def __init__(self, every: int = 3):\n        self.every = every\n")
    args = [*bare_train_args(write_corpus(tmp_path / "corpus.txt"), tmp_path / "run"),
            "+callbacks.mine._target_=my_flagged_callback.Mine", "+callbacks.mine.every=5",
            "optimizer.lr=abc"]
    try:
        code, out, err = run_main(train_cli.main, args, capsys)
    finally:
        sys.modules.pop("my_flagged_callback", None)
    _assert_one_error_line(code, out, err, "error: optimizer.lr='abc'")  # the check after the callbacks'


@pytest.mark.parametrize("own", ["@staticmethod\n    def check_settings(every: int = 3) -> None:",
                                 "@classmethod\n    def check_settings(cls, every: int = 3) -> None:"],
                         ids=["static", "class"])
def test_a_callback_of_ones_own_refusing_its_settings_is_one_line(own, tmp_path, monkeypatch, capsys) -> None:
    # A check_settings of the user's own, called before the run, raises what it raises: a ValueError
    # was a traceback (exit 1), where its constructor's, raised as the run builds it, was one line.
    mine = callback_of_ones_own(tmp_path, monkeypatch, "my_checked_callback")
    (mine / "my_checked_callback.py").write_text(
        f"import lightning\nclass Mine(lightning.Callback):\n    {own}\n"
        "        if every < 1:\n            raise ValueError(f'every={every} must be >= 1, é')\n")
    run = tmp_path / "run é"
    args = [*bare_train_args(write_corpus(tmp_path / "corpus.txt"), run),
            "+callbacks.mine._target_=my_checked_callback.Mine", "+callbacks.mine.every=0"]
    try:
        code, out, err = run_main(train_cli.main, args, capsys)
    finally:
        sys.modules.pop("my_checked_callback", None)
    _assert_one_error_line(code, out, err, "error: callbacks.mine: every=0 must be >= 1, é")
    assert not run.exists()


@pytest.mark.parametrize(("args", "expected"), [
    # The callback writing last.ckpt: given the monitor once advised (val/loss), it was refused again,
    # as a second checkpoint callback like callbacks.model_checkpoint ("more than one stateful callback").
    (["callbacks.last_checkpoint.save_top_k=2"],
     "error: callbacks.last_checkpoint.save_top_k=2: this callback writes the one checkpoints/last.ckpt, "
     "which a resume reads: keep 1 (0: none); to keep more checkpoints, set "
     "callbacks.model_checkpoint.save_top_k=2 (the best by val/loss)"),
    (["+callbacks.mine._target_=lightning.pytorch.callbacks.ModelCheckpoint",
      "+callbacks.mine.dirpath=${paths.output_dir}/mine", "+callbacks.mine.save_top_k=2"],
     "error: callbacks.mine.save_top_k=2 keeps the best checkpoints by its monitor, which is null: nothing "
     "ranks them; give it a monitor (e.g. monitor=step mode=max: the latest ones), or keep -1 (every one), "
     "0 or 1"),
], ids=["last", "own"])
def test_more_best_checkpoints_without_a_monitor_are_told_a_fix_that_trains(args, expected, tmp_path,
                                                                           capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    code, out, err = run_main(train_cli.main, bare_train_args(corpus, tmp_path / "refused", *args), capsys)
    _assert_one_error_line(code, out, err, expected)
    fixed = (["callbacks.model_checkpoint.save_top_k=2"] if "last" in expected
             else [*args, "+callbacks.mine.monitor=step", "+callbacks.mine.mode=max"])
    run = tmp_path / "run é"
    code, _, err = run_main(train_cli.main, bare_train_args(corpus, run, "trainer.max_steps=4",
                                                            "trainer.val_check_interval=2", *fixed), capsys)
    assert code == 0, err
    assert len(list(run.rglob("*.ckpt"))) >= 3  # last.ckpt and two kept by the callback told of


@pytest.mark.parametrize("second", [
    ["+callbacks.ck2._target_=lightning.pytorch.callbacks.ModelCheckpoint",
     "+callbacks.ck2.monitor=val/loss"],
    ["+callbacks.ck2={_target_: lightning.pytorch.callbacks.ModelCheckpoint, monitor: val/loss, mode: min, "
     "filename: 'mine, é'}"],
    # Lightning's default spelt out: every_n_epochs=1 with every_n_train_steps unset is what it fills
    # in for neither (told apart as typed, it passed here and met Lightning's error).
    ["+callbacks.ck2={_target_: lightning.pytorch.callbacks.ModelCheckpoint, monitor: val/loss, mode: min, "
     "every_n_epochs: 1}"],
], ids=["keys", "dict", "lightnings_default_typed"])
def test_a_second_checkpoint_callback_of_the_same_monitor_and_mode_is_one_line_naming_both(
    second, tmp_path, capsys
) -> None:
    # Lightning's "Found more than one stateful callback of type `ModelCheckpoint`. In the current
    # configuration, ... HINT: The `callback.state_key` must be unique ...", named no setting, once the
    # text was read (its filename, the line's first guess, does not tell them apart).
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run é"
    code, out, err = run_main(train_cli.main, bare_train_args(corpus, run, *second), capsys)
    _assert_one_error_line(code, out, err, (
        "error: callbacks.model_checkpoint and callbacks.ck2 are both checkpoint callbacks of "
        "monitor=val/loss and mode=min, which Lightning cannot keep in one checkpoint; give callbacks.ck2 "
        "another monitor, mode or every_n_train_steps (e.g. monitor=step mode=max: the latest ones), "
        "or remove one ('~callbacks.ck2')"))
    assert not run.exists()
    fixed = [*second, "+callbacks.ck2.dirpath=${paths.output_dir}/ck2", "++callbacks.ck2.monitor=step",
             "++callbacks.ck2.mode=max"]
    code, _, err = run_main(train_cli.main, bare_train_args(corpus, run, "trainer.max_steps=2",
                                                            "trainer.val_check_interval=2", *fixed), capsys)
    assert code == 0, err
    assert list((run / "ck2").glob("*.ckpt"))


CC1 = ("+callbacks.cc1={_target_: lightning.pytorch.callbacks.ModelCheckpoint, "
       "dirpath: '${paths.output_dir}/cc1'")


NEVER_WRITES_FIX = ("; set every_n_epochs=1 (at each validation) or every_n_train_steps=N (every N steps), "
                    "or remove the callback ('~callbacks.cc1')")


@pytest.mark.parametrize(("settings", "said"), [
    # Lightning reads every_n_epochs, unset, as 0 once every_n_train_steps is set: it never saved.
    ("every_n_train_steps: 0", "every_n_train_steps=0 never writes a checkpoint (Lightning reads "
     "every_n_epochs, unset, as 0 once every_n_train_steps is set)" + NEVER_WRITES_FIX),
    ("every_n_epochs: 0", "every_n_epochs=0 never writes a checkpoint" + NEVER_WRITES_FIX),
    ("every_n_train_steps: 0, every_n_epochs: 0",
     "every_n_train_steps=0 with every_n_epochs=0 never writes a checkpoint" + NEVER_WRITES_FIX),
    # Two triggers: Lightning refused them as the run built its callbacks, once the text was read
    # ("Combination of parameters every_n_train_steps=5, every_n_epochs=1 and train_time_interval=None
    # should be mutually exclusive."), naming none to drop.
    ("every_n_train_steps: 5, every_n_epochs: 1",
     "every_n_train_steps=5 and every_n_epochs=1 set two triggers of one checkpoint callback, and Lightning "
     "takes one; drop every_n_epochs to write every 5 steps, or drop every_n_train_steps to write at each "
     "validation"),
    ("every_n_epochs: 2, train_time_interval: {_target_: datetime.timedelta, minutes: 1}",
     "every_n_epochs=2 and train_time_interval set two triggers of one checkpoint callback, and Lightning "
     "takes one; drop train_time_interval to write every 2 epochs, or drop every_n_epochs to write at its "
     "interval of time"),
    # No time span: Lightning takes a timedelta and read anything else only at the first step, a
    # traceback after the text was read ("'int' object has no attribute 'total_seconds'").
    ("train_time_interval: 30", "train_time_interval=30 is not a time span; give a timedelta: "
     "train_time_interval={_target_: datetime.timedelta, seconds: 30}"),
    ("train_time_interval: '00:00:30'", "train_time_interval='00:00:30' is not a time span; give a "
     "timedelta: train_time_interval={_target_: datetime.timedelta, seconds: N}"),
], ids=["never_steps", "never_epochs", "never_both", "steps_and_epochs", "epochs_and_time",
        "interval_a_number", "interval_a_text"])
def test_a_checkpoint_callback_that_cannot_work_is_refused_before_the_text_is_read(
    settings, said, tmp_path, capsys
) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run é"
    code, out, err = run_main(train_cli.main, bare_train_args(corpus, run, f"{CC1}, {settings}}}"), capsys)
    _assert_one_error_line(code, out, err, f"error: callbacks.cc1.{said}")
    assert "vocabulary:" not in out + err  # (the text's, logged as it is read)
    assert not run.exists()


@pytest.mark.parametrize("settings", [
    # The fix told: at each validation (told apart from callbacks.last_checkpoint by its monitor).
    "every_n_train_steps: 0, every_n_epochs: 1, monitor: step, mode: max",
    "every_n_train_steps: 2",
    "every_n_train_steps: 0, save_last: true",  # last.ckpt as training ends
    "train_time_interval: {_target_: datetime.timedelta, seconds: 0}",  # at each step after the first
])
def test_a_checkpoint_callback_that_writes_is_not_refused(settings, tmp_path, capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    run = tmp_path / "run é"
    code, _, err = run_main(train_cli.main, bare_train_args(
        corpus, run, "trainer.max_steps=2", "trainer.val_check_interval=2", f"{CC1}, {settings}}}"), capsys)
    assert code == 0, err
    assert list((run / "cc1").glob("*.ckpt"))


def test_trainer_counts_take_null_only_where_lightning_does() -> None:
    check_trainer_numbers(OmegaConf.create({"max_epochs": None, "log_every_n_steps": None}))
    with pytest.raises(ChargptError, match=r"^trainer.max_steps=null must be a whole number >= -1$"):
        check_trainer_numbers(OmegaConf.create({"max_steps": None}))


def test_the_python_api_names_a_bad_seed_and_device(files) -> None:
    trained = chargpt.load(files["ckpt"])
    with pytest.raises(ChargptError, match=r"^seed='x' must be a whole number"):
        trained.generate("a", seed="x")
    with pytest.raises(ChargptError, match=r"^device='tpu' is not a device"):
        chargpt.load(files["ckpt"], device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ChargptError, match=r"^device=cuda but no CUDA GPU is available; use device=cpu"):
            chargpt.load(files["ckpt"], device=torch.device("cuda"))


def test_the_python_api_raises_a_checkpoint_error_for_any_path_that_leads_to_no_model(files, monkeypatch):
    # Paths the file system refuses to look up were its bare OSError, which a caller catching the
    # documented CheckpointError missed.
    monkeypatch.chdir(files["tmp"])
    Path("loop").symlink_to("loop")
    expected = {
        "loop": "^loop: its symbolic links lead round in a loop; point the link at",
        "n" * 300: f"^{'n' * 60}…{'n' * 20} \\(300 characters\\): a name in it is 300 bytes long, more "
                   "than the file system takes; give a shorter path$",
        "notes.txt/model.ckpt": "^notes.txt/model.ckpt: notes.txt is a file, not a folder, so nothing can be "
                                "inside it; give a path through folders$",
        "foreign.ckpt": r"^foreign.ckpt is not a chargpt checkpoint \(no model settings and vocabulary in "
                        r"it\); pass a .ckpt file that chargpt-train wrote$",
        "notes.txt": "^notes.txt is not a readable checkpoint",
        ".": "^. is a folder but not a run directory",
        # Read as the current folder, and named ".": "an empty path" is what an unset variable gives.
        "": r"^the path is empty \(an unset variable\?\); pass a .ckpt file, a run directory or an export "
            "folder$",
    }
    for path, message in expected.items():
        with pytest.raises(chargpt.CheckpointError, match=message):  # as documented, beside chargpt.load
            chargpt.load(path)
    assert chargpt.CheckpointError is CheckpointError


def test_a_sweeps_folder_given_for_a_run_names_a_job_folder(files, capsys):
    sweep = files["tmp"] / "sweep é"
    (sweep / "1" / "checkpoints").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    make_checkpoint(sweep / "1" / "checkpoints" / "last.ckpt")
    code, out, err = run_main(sample_cli.main, [f"ckpt_path={sweep}"], capsys)
    _assert_one_error_line(code, out, err,
                           f"{sweep} is a sweep's folder, not a run directory; pass the folder of one of its "
                           f"jobs (e.g. {sweep / '1'})")


@pytest.mark.parametrize(("cli", "extra", "expected"), [
    # Hydra added the setting and the command went on without it: `+n=2` drew one sample, as its
    # error for `n=2` advised ("add a setting of your own with +n=2").
    (sample_cli, ["+n=2"], "error: +n=2 does nothing in chargpt-sample: it is not one of its settings, and "
                           "the command reads only those (--help lists them); drop it"),
    (sample_cli, ["+num_sample=2"], "(did you mean num_samples?)"),
    (sample_cli, ["+data.paths=t.txt"], "+data.paths=t.txt does nothing in chargpt-sample: it is not one of "
                                        "its settings (did you mean data.path?)"),
    (eval_cli, ["+foo=1"], "error: +foo=1 does nothing in chargpt-eval"),
    (export_cli, ["out=exported", "+n=3"], "error: +n=3 does nothing in chargpt-export"),
    # (port=-1: where the setting is let through, the server is refused, rather than left serving.)
    (serve_cli, ["port=-1", "++hots=0.0.0.0"],
     "error: ++hots=0.0.0.0 does nothing in chargpt-serve: it is not one of its settings (did you mean "
     "host?)"),
    (sample_cli, ["n=2"], "error: n is not a setting; check its spelling (--cfg job shows every setting)"),
    # A setting given again with ++ is set: the error is the other one's (it named the ++ one).
    (sample_cli, ["++temperature=0.5", "n=2"], "error: n is not a setting; check its spelling"),
])
def test_a_setting_added_to_a_command_that_reads_none_is_refused(cli, extra, expected, files, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.chdir(files["tmp"])
    code, out, err = run_main(cli.main, [f"ckpt_path={files['ckpt']}", *extra], capsys)
    _assert_one_error_line(code, out, err, expected)
    assert "add a setting of your own" not in err and not (files["tmp"] / "exported").exists()


@pytest.mark.parametrize(("cli", "extra", "expected"), [
    # Training's closing sample typed to chargpt-sample, whose settings are top-level: it said "there is
    # no sample; check its spelling", naming nothing.
    (sample_cli, ["sample.prompt=é 🚀"],
     "error: sample.prompt is a setting of chargpt-train, not of chargpt-sample (did you mean prompt?); set "
     "it as prompt='é 🚀'"),
    (sample_cli, ["sample.temperature=0.5"],
     "error: sample.temperature is a setting of chargpt-train, not of chargpt-sample (did you mean "
     "temperature?); set it as temperature=0.5"),
    (eval_cli, ["trainer.max_steps=5"],
     "error: trainer.max_steps is a setting of chargpt-train, not of chargpt-eval; drop it, or give it to "
     "chargpt-train"),
    (export_cli, ["out=exported", "sample.prompt=x"],
     "error: sample.prompt is a setting of chargpt-train, not of chargpt-export; drop it, or give it to "
     "chargpt-train"),
    # "did you mean port?", the one setting of chargpt-serve's that prompt is not.
    (serve_cli, ["port=-1", "prompt=x"],
     "error: prompt is a setting of chargpt-sample, not of chargpt-serve; drop it, or give it to "
     "chargpt-sample"),
])
def test_another_commands_setting_is_named_as_theirs(
    cli, extra, expected, files, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(files["tmp"])
    code, out, err = run_main(cli.main, [f"ckpt_path={files['ckpt']}", *extra], capsys)
    _assert_one_error_line(code, out, err, expected)
    assert err.strip() == expected and not (files["tmp"] / "exported").exists()


@pytest.mark.parametrize(("arg", "expected"), [
    # Advised "+host=0.0.0.0", a setting that chargpt-train would add and never read.
    ("host=0.0.0.0",
     "error: host is a setting of chargpt-serve, not of chargpt-train; drop it, or give it to chargpt-serve"),
    ("device=cpu", "error: device is a setting of chargpt-eval, chargpt-sample and chargpt-serve, not of "
                   "chargpt-train; drop it, or give it to one of those"),
])
def test_another_commands_setting_typed_to_training_is_named_as_theirs(arg, expected, files, capsys) -> None:
    run = files["tmp"] / "my runs é 🚀"
    code, out, err = run_main(train_cli.main, [*bare_train_args(files["corpus"], run), arg], capsys)
    _assert_one_error_line(code, out, err, expected)
    assert err.strip() == expected and not run.exists()


@pytest.mark.parametrize("arg", ["model.dropoutt=0.1", "sample.promt=hi", "finetune.freeze=1",
                                 "optimzer.lr=1e-3", "trainr.max_steps=5"])
def test_a_key_no_added_setting_can_stand_for_is_not_advised_to_be_added(arg, files, capsys) -> None:
    # "add a setting of your own with +model.dropoutt=0.1", followed, was refused in turn (a model has
    # its fields only), and an added sample or finetune setting is read by nothing. Under a misspelt
    # group (optimzer.lr), the group meant is named: +optimzer.lr=1e-2 trained on at optimizer.lr's default.
    code, out, err = run_main(train_cli.main, [*bare_train_args(files["corpus"], files["tmp"] / "run"), arg],
                              capsys)
    _assert_one_error_line(code, out, err, "; check its spelling (--cfg job shows every setting)")
    assert "add a setting of your own" not in err


@pytest.mark.parametrize(("arg", "expected"), [
    # +hydra.run.dirr=x was advised, which Hydra takes into hydra.run, whose fields alone it reads,
    # and the setting meant was not named: Hydra's settings were looked for among the job's.
    ("hydra.run.dirr=x", "error: hydra.run.dirr is not a setting of hydra.run (did you mean hydra.run.dir?); "
                         "check its spelling (--cfg hydra shows Hydra's settings)"),
    ("hydra.job.chdirr=true", "error: hydra.job.chdirr is not a setting of hydra.job (did you mean "
                              "hydra.job.chdir?); check its spelling (--cfg hydra shows Hydra's settings)"),
    # A dict of Hydra's config, which it reads whole: the key is added, as advised.
    ("hydra.job.env_set.MY_VAR='é 🚀'",
     "error: hydra.job.env_set.MY_VAR is not a setting of hydra.job.env_set; check its spelling (--cfg hydra "
     "shows Hydra's settings), or add a setting of your own with "
     "\"+hydra.job.env_set.MY_VAR='é 🚀'\""),
    # Said "is not a setting of hydra.job.env_sett" and advised +hydra.job.env_sett.FOO=1.
    ("hydra.job.env_sett.FOO=1", "error: hydra.job.env_sett.FOO is not a setting: there is no "
     "hydra.job.env_sett (did you mean hydra.job.env_set.FOO?); check its spelling (--cfg hydra shows "
     "Hydra's settings)"),
    # --cfg job, as the hint was, does not print Hydra's settings.
    ("~hydra.job.env_set.NOPE", "error: ~hydra.job.env_set.NOPE: hydra.job.env_set.NOPE is not a setting; "
                                "check its spelling (--cfg hydra shows Hydra's settings)"),
])
def test_a_misspelt_hydra_setting_names_hydras_and_advises_adding_only_where_hydra_reads_it(
    arg, expected, files, capsys
) -> None:
    run = files["tmp"] / "my runs é 🚀"
    code, out, err = run_main(train_cli.main, [*bare_train_args(files["corpus"], run), arg], capsys)
    _assert_one_error_line(code, out, err, expected)
    assert err.strip() == expected and not run.exists()


@pytest.mark.parametrize(("swept", "expected"), [
    # The sweep as typed: its first value was advised as Hydra rewrote it (+optimizer.lrr=0.001).
    (["optimizer.lrr=1e-3,2e-3"],
     "error: optimizer.lrr is not a setting of optimizer (did you mean optimizer.lr?); check its spelling "
     "(--cfg job shows every setting), or add a setting of your own with +optimizer.lrr=1e-3,2e-3"),
    # A boolean's first value was advised as Python writes it (+trainer.compil=True), not as typed.
    (["trainer.compil=true,false"], "or add a setting of your own with +trainer.compil=true,false"),
    # Each told as a single run is: under -m it was "not a setting ... +max_new_tokens=5", Hydra's
    # traceback-free error over lines (exit 1) for optimzer.lr, and "+seeds=1" naming no seed.
    (["max_new_tokens=5,6"],
     "error: max_new_tokens is not a setting (did you mean sample.max_new_tokens?); set it as "
     "sample.max_new_tokens=5,6"),
    (["optimzer.lr=1e-3,3e-3"],
     "error: optimzer.lr is not a setting: there is no optimzer (did you mean optimizer.lr?); check its "
     "spelling (--cfg job shows every setting)"),
    (["seeds=1,2"],
     "error: seeds is not a setting (did you mean seed?); check its spelling (--cfg job shows every "
     "setting), or add a setting of your own with +seeds=1,2"),
    (["model=tiny,smal"], "error: model=smal is not an option of model (did you mean model=small?)"),
    (["hydra/sweeper=optuna", "optimzer.lr=interval(1e-3,1e-2)"],
     "error: optimzer.lr is not a setting: there is no optimzer (did you mean optimizer.lr?)"),
    (["hydra/sweeper=optuna", "max_new_tokens=int(interval(5,9))"],
     "error: max_new_tokens is not a setting (did you mean sample.max_new_tokens?); set it as "
     "sample.max_new_tokens=int(interval(5,9))"),
    (["model=small,tiny", "model.dropoutt=range(1,3)"], "model.dropoutt is not a setting of model (did you "
                                                        "mean model.dropout?)"),
    (["model=glob(tin*)", "model.dropoutt=0.1,0.2"], "model.dropoutt is not a setting of model"),  # a glob
    (["hparams_search=optuna", "optimizer.lrr=tag(log, interval(3e-4, 3e-3))"],
     'with "+optimizer.lrr=tag(log, interval(3e-4, 3e-3))"'),  # a search's dimension, as typed, quoted
])
def test_a_misspelt_swept_setting_is_one_error_line_before_the_sweep(tmp_path: Path, capsys, swept: list[str],
                                                                      expected: str) -> None:
    # Hydra composes each job with its own values only when the job starts: a misspelt swept
    # setting was its error over several lines, exit 1, after the sweep's folder was made.
    corpus = write_corpus(tmp_path / "c.txt")
    sweep = tmp_path / "sweep"
    args = ["-m", *bare_train_args(corpus, None, f"hydra.sweep.dir={sweep}"), *swept]
    code, out, err = run_main(train_cli.main, args, capsys)
    _assert_one_error_line(code, out, err, "")
    assert expected in err
    assert "add a setting of your own" not in err or "optimzer" not in err
    assert not sweep.exists()
