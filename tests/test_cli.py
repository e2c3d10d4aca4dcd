"""End to end through the console entry points: train, sample, evaluate, resume."""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from chargpt import load
from chargpt.cli import eval as eval_cli
from chargpt.cli import sample, train
from chargpt.errors import ConfigError
from chargpt.runs.run_rows import run_row
from chargpt.training.guessing import warn_if_no_better_than_guessing
from conftest import bare_train_args, in_hydra_run, run_cli, run_main, train_args, write_corpus


@pytest.fixture(scope="module")
def trained_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    assert run_cli(train.main, *train_args(corpus, run_dir)) == 0
    return run_dir


def test_training_writes_checkpoints_events_config_and_metrics(trained_run: Path) -> None:
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    assert list((trained_run / "checkpoints").glob("best-*.ckpt"))
    assert list((trained_run / "tensorboard").glob("events.out.tfevents.*"))
    assert (trained_run / ".hydra" / "config.yaml").is_file()
    assert (trained_run / "train.log").is_file()
    metrics = json.loads((trained_run / "metrics.json").read_text())
    keys = ("best_val_loss", "val_loss", "step", "tokens", "train_seconds", "tokens_per_second", "params")
    for key in keys:
        assert metrics[key] is not None, key
    assert metrics["step"] == 20
    assert metrics["tokens"] == 20 * 12 * 16  # steps x batch x block
    assert metrics["best_val_loss"] <= metrics["val_loss"] + 1e-9
    assert metrics["val_loss"] < 3.0  # learned something beyond uniform over ~20 symbols


def test_another_of_hydras_logging_options_replaces_train_log(corpus: Path, tmp_path: Path, capsys) -> None:
    # train.log's name was merged into whichever job_logging was picked: into stdout's or disabled's
    # (no file handler of their own), a handler with no class, logging's traceback (exit 1).
    args = bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2", "hydra/job_logging=stdout")
    code, out, err = run_main(train.main, args, capsys)
    assert code == 0, err
    assert "Traceback" not in out + err
    assert (tmp_path / "run" / "metrics.json").is_file() and not (tmp_path / "run" / "train.log").exists()


def test_checkpoint_loads_weights_only_with_plain_hparams(trained_run: Path) -> None:
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert isinstance(hp["vocab"], list) and isinstance(hp["model"], dict)
    assert hp["model"]["block_size"] == 16


def test_sample_prints_prompt_then_text_and_is_reproducible(trained_run: Path, capsys) -> None:
    args = [f"ckpt_path={trained_run}", "prompt=The", "max_new_tokens=40", "seed=7", "device=cpu"]
    assert run_cli(sample.main, *args) == 0
    first = capsys.readouterr().out
    assert run_cli(sample.main, *args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("The") and len(first.rstrip("\n")) >= 40
    assert run_cli(sample.main, *args[:-2], "seed=8", "device=cpu") == 0
    assert capsys.readouterr().out != first


def test_api_and_cli_share_the_sampling_path(trained_run: Path, capsys) -> None:
    run_cli(sample.main, f"ckpt_path={trained_run}", "prompt=A", "max_new_tokens=30", "seed=3",
            "temperature=0.9", "top_p=0.9", "device=cpu")
    cli_text = capsys.readouterr().out
    api_text = load(trained_run).generate("A", seed=3, max_new_tokens=30, temperature=0.9, top_p=0.9)[0]
    assert cli_text == "A" + api_text + "\n"
    with pytest.raises(ConfigError, match="num_samples=0 must be a whole number >= 1"):
        load(trained_run).generate("A", num_samples=0)  # as the command refuses it, not an empty list


def test_sample_names_the_checkpoint_and_step_it_samples_from_on_stderr(trained_run: Path, capsys) -> None:
    # It did not say which weights it sampled: a run's last.ckpt moves on while the run trains.
    args = ["prompt=A", "max_new_tokens=30", "seed=3", "temperature=0.9", "device=cpu"]
    code, out, err = run_main(sample.main, [f"ckpt_path={trained_run}", *args], capsys)
    assert code == 0 and err == f"sampling from {trained_run / 'checkpoints' / 'last.ckpt'} (step 20)\n"
    # stdout is the sample alone, as before: a script that pipes it reads the same text.
    assert out == "A" + load(trained_run).generate("A", seed=3, max_new_tokens=30, temperature=0.9)[0] + "\n"
    best = sorted((trained_run / "checkpoints").glob("best-*.ckpt"))[0]
    step = torch.load(best, weights_only=True)["global_step"]
    code, _, err = run_main(sample.main, [f"ckpt_path={best}", *args], capsys)
    assert code == 0 and err == f"sampling from {best} (step {step})\n"


def test_eval_prints_full_split_loss_as_json(trained_run: Path, corpus: Path, capsys) -> None:
    assert run_cli(eval_cli.main, f"ckpt_path={trained_run}", "data=text", f"data.path={corpus}",
                   "device=cpu") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((trained_run / "metrics.json").read_text())
    n_val = len(corpus.read_text()) - int(len(corpus.read_text()) * 0.9)
    assert result["tokens"] == n_val - 1  # every target of the split
    assert result["loss"] == pytest.approx(metrics["val_loss"], abs=1e-4)
    assert result["bpc"] == pytest.approx(result["loss"] / 0.6931471805599453, rel=1e-4)


def test_eval_on_text_with_unknown_characters_names_them(trained_run: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other.txt"
    other.write_text("Zebra Xylophone " * 100)
    code = run_cli(eval_cli.main, f"ckpt_path={trained_run}", "data=text", f"data.path={other}")
    err = capsys.readouterr().err
    assert code == 2 and "'Z'" in err and "Traceback" not in err


def _default_run_metrics() -> set[Path]:
    return set(Path("outputs").rglob("metrics.json")) if Path("outputs").exists() else set()


@pytest.mark.slow  # two trainings; tests/test_resume.py resumes from a run directory by default
def test_resume_from_run_dir_continues_in_the_same_directory(corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    before = _default_run_metrics()  # a user's own runs (e.g. `make train`) may already be there
    assert run_cli(train.main, *train_args(corpus, run_dir)) == 0
    first_config = (run_dir / ".hydra" / "config.yaml").read_text()
    fresh = ("hydra.run.dir", "trainer.max_steps")
    args = [a for a in train_args(corpus, run_dir) if not a.startswith(fresh)]
    # Refused before it trained (another model): it leaves no resume config for the report to read.
    assert run_cli(train.main, *args, f"ckpt_path={run_dir}", "trainer.max_steps=30", "model.n_embd=48") == 2
    assert not list((run_dir / ".hydra").glob("resume-*"))
    assert run_cli(train.main, *args, f"ckpt_path={run_dir}", "trainer.max_steps=30") == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 30
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 30
    assert (run_dir / ".hydra" / "config.yaml").read_text() == first_config  # first config kept
    assert list((run_dir / ".hydra").glob("resume-*/config.yaml"))
    assert run_row(run_dir, run_dir)["overrides"]["trainer.max_steps"] == "20→30"  # in the report
    # Naming the run's own folder as hydra.run.dir too resumes the same way: the first config kept.
    same_folder = [a for a in train_args(corpus, run_dir) if not a.startswith("trainer.max_steps")]
    assert run_cli(train.main, *same_folder, f"ckpt_path={run_dir}", "trainer.max_steps=40") == 0
    assert (run_dir / ".hydra" / "config.yaml").read_text() == first_config
    assert len(list((run_dir / ".hydra").glob("resume-*/config.yaml"))) == 2
    assert _default_run_metrics() == before  # nothing went to a new default run directory


@pytest.mark.slow  # several seconds; runs in the slow set (.ci/run)
def test_last_checkpoint_follows_every_validation_even_without_improvement(
    corpus: Path, tmp_path: Path
) -> None:
    # mode=max makes every later (lower) val/loss "no improvement": best-*.ckpt stays at step 10,
    # while last.ckpt, what a resume starts from, must still hold the final step.
    run = tmp_path / "run"
    args = train_args(corpus, run, "callbacks.model_checkpoint.mode=max", "sample.max_new_tokens=0")
    assert run_cli(train.main, *args) == 0
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-000010.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["global_step"] == 20


BESIDE_A_BEST = (
    "no checkpoints/last.ckpt, which a resume reads: if it crashes or its machine is lost, a resume goes on "
    "from its best checkpoint (callbacks.model_checkpoint) only where that is its latest validation's, and "
    "is refused after a validation that did not improve on it (only Ctrl-C or SIGTERM writes one); ")
TOP_K_0 = "callbacks.last_checkpoint.save_top_k=0"


def _warnings_of_a_short_run(tmp_path: Path, capsys, settings: list[str]) -> tuple[Path, list[str]]:
    """A two-step run with `settings` (it must end well), and the warning lines it printed."""
    run = tmp_path / "run é"
    args = bare_train_args(write_corpus(tmp_path / "corpus.txt"), run, "trainer.max_steps=2", *settings)
    code, out, err = run_main(train.main, args, capsys)
    assert code == 0, err
    return run, [line[line.index("warning: "):] for line in (out + err).splitlines() if "warning:" in line]


@pytest.mark.parametrize(("settings", "said"), [
    # Valid (a run that is never resumed), but it trained to its end without a word and left no
    # last.ckpt, which ckpt_path=RUN_DIR resumes from; a resume after a crash has its best checkpoint
    # beside it only where that is its latest validation's (it was said to have nothing).
    ([TOP_K_0], f"warning: {TOP_K_0} keeps {BESIDE_A_BEST}leave it at 1 to keep the run resumable from every "
                "validation"),
    # Removed beside the best checkpoint's callback: not a word.
    (["~callbacks.last_checkpoint"],
     f"warning: without callbacks.last_checkpoint this run keeps {BESIDE_A_BEST}keep "
     "callbacks.last_checkpoint to keep the run resumable from every validation"),
    # No best checkpoint beside it: nothing to resume from.
    ([TOP_K_0, "~callbacks.model_checkpoint"],
     f"warning: {TOP_K_0} keeps no checkpoints/last.ckpt, which a resume reads: this run cannot be resumed "
     "if it crashes or its machine is lost (only Ctrl-C or SIGTERM writes one); leave it at 1 to keep the "
     "run resumable from every validation"),
])
def test_a_run_that_keeps_no_last_checkpoint_is_told_at_its_start_what_a_resume_goes_on_from(
    tmp_path: Path, capsys, settings: list[str], said: str
) -> None:
    run, lines = _warnings_of_a_short_run(tmp_path, capsys, settings)
    assert lines == [said]
    assert said in (run / "train.log").read_text()  # the log keeps it
    assert not (run / "checkpoints" / "last.ckpt").exists()


SAVE_LAST = "+callbacks.model_checkpoint.save_last=true"


@pytest.mark.parametrize(("settings", "said"), [
    # Lightning's save_last writes checkpoints/last.ckpt, which ckpt_path=RUN_DIR resumes from, but
    # only with a new best: the run was told it kept none.
    (["~callbacks.last_checkpoint", SAVE_LAST],
     "warning: callbacks.model_checkpoint.save_last=true rewrites checkpoints/last.ckpt only when its best "
     "checkpoint improves: after a validation that did not improve on it, a resume goes on from that best's "
     "step and trains the steps after it again (only Ctrl-C or SIGTERM writes a later one); keep "
     "callbacks.last_checkpoint to keep the run resumable from every validation"),
    # A save_last of no monitor rewrites it at every validation: resumable, not a word.
    (["~callbacks.last_checkpoint", "~callbacks.model_checkpoint",
      "+callbacks.keep={_target_: lightning.pytorch.callbacks.ModelCheckpoint, "
      "dirpath: '${paths.output_dir}/checkpoints', save_last: true}"], None),
])
def test_a_run_whose_last_checkpoint_is_lightnings_save_last_is_told_what_it_keeps(
    tmp_path: Path, capsys, settings: list[str], said: str | None
) -> None:
    run, lines = _warnings_of_a_short_run(tmp_path, capsys, settings)
    assert lines == ([said] if said else [])
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(("settings", "writer", "key"), [
    # A save_last of no monitor (rewritten at every validation) silenced the warning of a run without
    # callbacks.last_checkpoint wherever it wrote, though ckpt_path=RUN_DIR reads RUN_DIR/checkpoints/.
    (["~callbacks.last_checkpoint", "+callbacks.keep={_target_: lightning.pytorch.callbacks.ModelCheckpoint, "
      "dirpath: '{kept}', save_last: true}"], "callbacks.keep.save_last=true", "keep"),
    # callbacks.last_checkpoint.dirpath=ELSEWHERE wrote last.ckpt there without a word: after a crash, a
    # resume of the run's folder found only an older best, or nothing.
    (["callbacks.last_checkpoint.dirpath='{kept}'"], "callbacks.last_checkpoint", "last_checkpoint"),
], ids=["save_last", "last_checkpoint"])
def test_a_run_whose_last_checkpoint_goes_to_another_folder_is_told_a_resume_does_not_find_it(
    settings: list[str], writer: str, key: str, tmp_path: Path, capsys
) -> None:
    kept = tmp_path / "kept é 🚀"
    settings = [setting.replace("{kept}", str(kept)) for setting in settings]
    run, lines = _warnings_of_a_short_run(tmp_path, capsys, settings)
    last = Path(os.path.realpath(kept)) / "last.ckpt"
    assert lines == [
        f"warning: {writer} writes its last.ckpt in {last.parent}, where a resume of the run's folder "
        f"(ckpt_path=RUN_DIR) does not look: keep it in the run's checkpoints/ ('callbacks.{key}.dirpath="
        "${paths.output_dir}/checkpoints'), or resume from that file by name, in the run's own folder: "
        f"{shlex.quote(f'ckpt_path={last}')} {shlex.quote(f'hydra.run.dir={run}')}"]
    assert last.is_file() and not (run / "checkpoints" / "last.ckpt").exists()
    # The fix told, as typed: the run's own last.ckpt, and not a word.
    last.unlink()
    shutil.rmtree(run)
    fix = shlex.split(lines[0].partition("checkpoints/ (")[2].partition(")")[0])
    run, lines = _warnings_of_a_short_run(tmp_path, capsys, [*settings, *fix])
    assert lines == [] and (run / "checkpoints" / "last.ckpt").is_file()


def test_a_save_last_of_no_dirpath_is_told_a_fix_that_is_taken(tmp_path: Path, capsys) -> None:
    # Without a dirpath, Lightning writes in its first logger's folder; the fix told was
    # 'callbacks.keep.dirpath=...', refused as "not a setting of callbacks.keep": a key the config
    # does not have is added with '+'.
    keep = "+callbacks.keep={_target_: lightning.pytorch.callbacks.ModelCheckpoint, save_last: true}"
    settings = ["logger=csv", "~callbacks.last_checkpoint", keep]
    run, lines = _warnings_of_a_short_run(tmp_path, capsys, settings)
    # It named no folder, nor the file to resume from: where its first logger (csv) writes, there.
    last = run / "csv" / "checkpoints" / "last.ckpt"
    assert lines == [
        f"warning: callbacks.keep.save_last=true writes its last.ckpt in {last.parent} (its first logger's "
        "folder: it has no dirpath), where a resume of the run's folder (ckpt_path=RUN_DIR) does not look: "
        "keep it in the run's checkpoints/ ('+callbacks.keep.dirpath=${paths.output_dir}/checkpoints'), or "
        f"resume from that file by name, in the run's own folder: {shlex.quote(f'ckpt_path={last}')} "
        f"{shlex.quote(f'hydra.run.dir={run}')}"]
    assert last.is_file() and not (run / "checkpoints" / "last.ckpt").exists()
    # That file, named so, goes on in the run's own folder (ckpt_path alone went on in a new one).
    by_name = shlex.split(lines[0].partition("in the run's own folder: ")[2])
    args = bare_train_args(tmp_path / "corpus.txt", None, "trainer.max_steps=4", *settings, *by_name)
    code, out, err = run_main(train.main, args, capsys)
    assert code == 0, err
    assert f"run dir {run}" in out + err and len(list((run / ".hydra").glob("resume-*"))) == 1
    assert json.loads((run / "metrics.json").read_text())["step"] == 4
    shutil.rmtree(run)
    fix = shlex.split(lines[0].partition("checkpoints/ (")[2].partition(")")[0])
    assert fix == ["+callbacks.keep.dirpath=${paths.output_dir}/checkpoints"]
    run, lines = _warnings_of_a_short_run(tmp_path, capsys, [*settings, *fix])
    assert lines == [] and (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_run_that_ends_worse_than_guessing_says_so(tmp_path: Path, capsys) -> None:
    # A random text has nothing to learn: 36 epochs over 180 characters fit the training part and
    # score the validation part worse than a uniform guess (ln 13: 2.56; 3.44 here, its best 2.80,
    # on one thread in float32). It ended without a word; a short text memorised looks the same
    # (1,400 characters of Tiny Shakespeare: 5.10 against ln 47 = 3.85).
    corpus = write_corpus(tmp_path / "random.txt", n_chars=200)
    args = bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=100", "trainer.val_check_interval=25",
                           "optimizer.lr=1e-2", "model.n_embd=64")
    code, out, err = run_main(train.main, args, capsys)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert code == 0 and metrics["val_loss"] > math.log(13) and metrics["best_val_loss"] > math.log(13)
    said = [line for line in (out + err).splitlines() if "warning: validation loss" in line]
    logged = [line for line in (tmp_path / "run" / "train.log").read_text().splitlines()
              if "warning: validation loss" in line]
    assert len(said) == 1 and logged == said  # the log keeps it
    warning = said[0][said[0].index("warning: "):]
    assert warning.startswith(f"warning: validation loss {metrics['val_loss']:.2f} is worse than guessing "
                              "uniformly among the 13 characters of its vocabulary (2.56): after 36 epochs "
                              "over its 180 training characters (train loss ")
    # It validated every 25 of its 100 steps: no advice to validate often, and no better checkpoint.
    assert warning.endswith("the model has learnt nothing that carries over to the validation text. "
                            "A longer text helps most")

    # Before a whole epoch, a loss above the guess is a run still starting: no warning.
    short = bare_train_args(corpus, tmp_path / "short", "trainer.max_steps=3")
    code, out, err = run_main(train.main, short, capsys)
    assert code == 0 and "warning:" not in out + err


def test_the_warning_names_a_best_checkpoint_that_beats_guessing(tmp_path: Path, caplog) -> None:
    best = tmp_path / "checkpoints" / "best-000060.ckpt"
    checkpoint = ModelCheckpoint(monitor="val/loss")
    checkpoint.best_model_path = str(best)
    trainer = SimpleNamespace(callback_metrics={"train/loss": torch.tensor(0.12)},
                              checkpoint_callbacks=[checkpoint],
                              val_check_batch=1_000_000, global_step=968)  # validated at the end only
    figures = {"val_loss": 7.09, "best_val_loss": 3.42, "tokens": 500_000}

    def warned(figures: dict) -> str:
        caplog.clear()
        warn_if_no_better_than_guessing(figures, trainer, 1260, 68)  # ln 68 = 4.22
        return " ".join(r.getMessage() for r in caplog.records)

    assert warned(figures).endswith(
        "(train loss 0.12), its last weights have memorised them; this run's best checkpoint, 3.42, beats "
        f"guessing: {best}. A longer text helps most"
    )
    assert warned(figures | {"best_val_loss": 5.0}).endswith(
        "the model has learnt nothing that carries over to the validation text. A longer text helps most; or "
        "validate often (e.g. trainer.val_check_interval=20) and use the best checkpoint"
    )
    assert warned(figures | {"val_loss": 4.0}) == ""


def test_the_warnings_advice_fits_a_short_run(caplog) -> None:
    # A 10-step fine-tune validating every 5 steps, just over one epoch: it said "after 1 epochs"
    # and advised trainer.val_check_interval=20, which validates less often than it did.
    trainer = SimpleNamespace(callback_metrics={}, checkpoint_callbacks=[], val_check_batch=5, global_step=10)
    warn_if_no_better_than_guessing({"val_loss": 4.07, "tokens": 7_680}, trainer, 5_805, 51)
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "after 1 epoch over its 5,805 training characters" in warning
    assert warning.endswith("validate often (e.g. trainer.val_check_interval=2) and use the best checkpoint")
    caplog.clear()  # already every 2 steps: there is no shorter interval to advise
    trainer.val_check_batch = 2
    warn_if_no_better_than_guessing({"val_loss": 4.07, "tokens": 7_680}, trainer, 5_805, 51)
    assert " ".join(r.getMessage() for r in caplog.records).endswith("A longer text helps most")


def test_a_runs_overrides_are_read_as_written_not_resolved() -> None:
    # Read through list(), `${oc.env:HOME}` came back resolved and an escaped `\${x}` lost its
    # escape: model=auto's line that reproduces the run printed them so.
    from chargpt.hydra_run import task_overrides

    typed = ["data.path=${oc.env:HOME}/my text.txt", "+tag=a\\${x}"]
    with in_hydra_run(typed):
        assert task_overrides() == typed
