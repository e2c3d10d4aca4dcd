"""Fine-tuning starts a new run from trained weights; vocabulary extension keeps old rows."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import socket
from pathlib import Path

import pytest
import torch

from chargpt import load
from chargpt.cli import train
from chargpt.data.encoding import load_encoded
from chargpt.data.sources import file_hashes
from chargpt.data.tokenizer import CharTokenizer
from chargpt.evaluation import evaluate_text
from chargpt.model import ModelConfig, build_model
from chargpt.training.finetune import Pretrained, apply_pretrained
from conftest import StepHook, run_cli, train_args
from fake_runs import lock_held


def other_text(path: Path, extra: str = "") -> Path:
    """A different 'author': other words from (mostly) the same letters."""
    rng = random.Random(1)
    words = ["hark", "gentle", "sir", "good", "morrow", "fair", "wight", "thee", "hath", "doth", extra]
    text = "\n".join(
        " ".join(rng.choice(words) for _ in range(rng.randint(4, 9))) + "." for _ in range(2500)
    )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def pretrained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("pretrain")
    assert run_cli(train.main, *train_args(corpus, run_dir)) == 0
    return run_dir


def finetune_args(new: Path, run_dir: Path, init_from: Path, *extra: str) -> list[str]:
    # No model settings: the architecture comes from the checkpoint.
    base = [a for a in train_args(new, run_dir, f"init_from={init_from}") if not a.startswith("model.")]
    return [*base, *extra]


@pytest.mark.slow  # three trainings; test_starting_point_is_printed_and_kept checks the start by default
def test_finetune_starts_from_pretrained_weights_and_improves(pretrained: Path, tmp_path: Path) -> None:
    new = other_text(tmp_path / "new.txt")
    vocab = CharTokenizer(load(pretrained).tokenizer.chars)
    new_ids = load_encoded(new, vocab).ids
    val = new_ids[int(len(new_ids) * 0.9):]
    before = evaluate_text(load(pretrained).model, val).loss

    run_dir = tmp_path / "ft"
    # Float32 products, as `evaluate` computes `before` (auto is bf16 products on a CPU with AMX).
    args = finetune_args(new, run_dir, pretrained, "trainer.max_steps=0", "matmul_precision=highest")
    assert run_cli(train.main, *args) == 0
    at_step0 = json.loads((run_dir / "metrics.json").read_text())
    assert at_step0["step"] == 0
    assert at_step0["val_loss"] == pytest.approx(before, abs=1e-5)  # exactly the pretrained model

    run_dir = tmp_path / "ft2"
    assert run_cli(train.main, *finetune_args(new, run_dir, pretrained)) == 0
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["step"] == 20  # a new run: counted from 0
    assert after["val_loss"] < before
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["model"] == torch.load(
        pretrained / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["model"]


@pytest.mark.slow
def test_architecture_override_is_refused(pretrained: Path, tmp_path: Path, capsys) -> None:
    new = other_text(tmp_path / "new.txt")
    code = run_cli(train.main, *finetune_args(new, tmp_path / "ft", pretrained, "model.n_layer=3"))
    err = capsys.readouterr().err
    assert code == 2 and "model.n_layer=3 (checkpoint: 1)" in err and "Traceback" not in err
    # A model group option is named as typed, with the settings it would change.
    code = run_cli(train.main, *finetune_args(new, tmp_path / "ft", pretrained, "model=small"))
    err = capsys.readouterr().err
    assert code == 2 and "drop the override model=small (its block_size=256, n_layer=6" in err
    assert "model.block_size=256" not in err
    assert not (tmp_path / "ft" / "checkpoints").exists()
    # Values as typed on the command line: true and null, not Python's True and None.
    args = finetune_args(new, tmp_path / "ft", pretrained, "model.qk_norm=true", "model.logit_softcap=30")
    code = run_cli(train.main, *args)
    err = capsys.readouterr().err
    assert code == 2 and "model.qk_norm=true (checkpoint: false)" in err
    assert "model.logit_softcap=30 (checkpoint: null)" in err


def test_unseen_characters_are_an_error_by_default(pretrained: Path, tmp_path: Path, capsys) -> None:
    new = other_text(tmp_path / "new.txt", extra="zephyr@")
    code = run_cli(train.main, *finetune_args(new, tmp_path / "ft", pretrained))
    err = capsys.readouterr().err
    assert code == 2 and "'@'" in err and "finetune.extend_vocab=true" in err
    code = run_cli(train.main, *finetune_args(new, tmp_path / "ft", pretrained, "finetune.extend_vocab=no"))
    err = capsys.readouterr().err
    assert code == 2 and "finetune.extend_vocab='no' must be true or false" in err


def test_windows_line_endings_point_to_data_newline(pretrained: Path, tmp_path: Path, capsys) -> None:
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(other_text(tmp_path / "plain.txt").read_text().replace("\n", "\r\n").encode())
    code = run_cli(train.main, *finetune_args(crlf, tmp_path / "ft", pretrained))
    err = capsys.readouterr().err
    assert code == 2 and "'\\r'" in err and "pass data.newline=normalize to read '\\r\\n' as '\\n'" in err
    assert len(err.strip().splitlines()) == 1  # the message holds no raw line break


def test_a_text_too_short_for_the_checkpoints_context_is_not_told_to_shrink_it(
    pretrained: Path, tmp_path: Path, capsys
) -> None:
    short = tmp_path / "short.txt"
    short.write_text(other_text(tmp_path / "long.txt").read_text()[:100])  # the checkpoint's characters
    code = run_cli(train.main, *finetune_args(short, tmp_path / "ft", pretrained))
    err = capsys.readouterr().err
    assert code == 2 and "fewer than model.block_size + 1" in err
    assert err.rstrip().endswith("use a longer text or another data.train_fraction")  # not the context


def test_a_run_is_not_both_the_start_and_the_resume_of_a_fine_tune(pretrained: Path, tmp_path: Path,
                                                                  capsys) -> None:
    copy = tmp_path / "run copy"
    shutil.copytree(pretrained, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    new = other_text(tmp_path / "new.txt")
    args = [a for a in finetune_args(new, copy, copy) if not a.startswith("hydra.run.dir=")]
    code = run_cli(train.main, *args, f"ckpt_path={copy / 'checkpoints' / 'last.ckpt'}")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: init_from and ckpt_path both name the run {copy}")
    assert "drop ckpt_path to fine-tune it, or init_from to continue it" in err
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before  # nothing written into it


@pytest.fixture(scope="module")
def extended_fine_tune(pretrained: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-step fine-tune that extended the vocabulary, and its new text: trained once for the
    refused resumes that read it."""
    root = tmp_path_factory.mktemp("extended")
    new = other_text(root / "new.txt", extra="zephyr@")
    extra = ["finetune.extend_vocab=true", "trainer.max_steps=2"]
    assert run_cli(train.main, *finetune_args(new, root / "ft", pretrained, *extra)) == 0
    return root / "ft", new


@pytest.mark.parametrize("experiment", [[], ["experiment=finetune"]], ids=["plain", "experiment=finetune"])
def test_a_fine_tune_resumed_without_its_settings_is_told_them(pretrained: Path, extended_fine_tune,
                                                              tmp_path: Path, capsys,
                                                              experiment: list[str]) -> None:
    run_dir, new = extended_fine_tune
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "train.log"}
    capsys.readouterr()
    plain = [a for a in finetune_args(new, tmp_path / "again", pretrained, "trainer.max_steps=4")
             if not a.startswith(("init_from=", "hydra.run.dir="))]
    code = run_cli(train.main, *experiment, *plain, f"ckpt_path={run_dir}")
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    # The fine-tune is shared by both cases: the refusal leaves its files as they were (its log aside).
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "train.log"} == before
    assert ("experiment=finetune needs init_from to resume" if experiment
            else "it was trained on another vocabulary") in err
    assert (f"it is a fine-tune of {pretrained}: resume with the settings that started it, "
            f"init_from={pretrained} finetune.extend_vocab=true") in err


@pytest.mark.slow  # four fine-tune launches; tests/test_optimizer_state.py covers the check by default
def test_a_fine_tune_resumed_with_other_parameters_frozen_is_told_its_freeze_settings(
        pretrained: Path, tmp_path: Path, capsys) -> None:
    # Its optimizer holds state for the parameters it trained: other freeze settings cannot take it.
    new = other_text(tmp_path / "new.txt")
    run_dir = tmp_path / "ft"
    started = ["finetune.freeze_blocks=1", "finetune.freeze_embeddings=true"]
    assert run_cli(train.main, *finetune_args(new, run_dir, pretrained, *started, "trainer.max_steps=2")) == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "train.log"}
    capsys.readouterr()
    for extra, told in (([], "it was fine-tuned with finetune.freeze_embeddings=true "
                             "finetune.freeze_blocks=1: resume with them"),
                        (["finetune.freeze_blocks=1"], "resume with them")):
        code = run_cli(train.main, *finetune_args(new, run_dir, pretrained, "trainer.max_steps=4", *extra),
                       f"ckpt_path={run_dir}")
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: cannot resume from {run_dir / 'checkpoints' / 'last.ckpt'}: it was "
                              "trained with other parameters frozen") and err.rstrip().endswith(told)
    plain = [a for a in finetune_args(new, run_dir, pretrained, "trainer.max_steps=4")
             if not a.startswith("init_from=")]
    assert run_cli(train.main, *plain, f"ckpt_path={run_dir}") == 2  # without init_from: all it started with
    assert (f"resume with the settings that started it, init_from={pretrained} "
            "finetune.freeze_embeddings=true finetune.freeze_blocks=1") in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "train.log"} == before
    assert run_cli(train.main, *finetune_args(new, run_dir, pretrained, "trainer.max_steps=4", *started),
                   f"ckpt_path={run_dir}") == 0


@pytest.mark.slow
def test_a_folder_and_a_normalised_text_are_read_as_the_run_reads_them(pretrained: Path, tmp_path) -> None:
    # A folder fine-tunes as it trains from scratch; a CRLF text with data.newline=normalize has no
    # '\r' left, so the checkpoint's vocabulary needs nothing added.
    folder = tmp_path / "new texts é"
    folder.mkdir()
    other_text(folder / "a.txt")
    crlf = other_text(tmp_path / "b.txt").read_text().replace("\n", "\r\n")
    (folder / "b crlf.txt").write_bytes(crlf.encode())
    run_dir = tmp_path / "ft"
    args = finetune_args(folder, run_dir, pretrained, "data.newline=normalize", "trainer.max_steps=2")
    assert run_cli(train.main, *args) == 0
    assert load(run_dir).tokenizer.chars == load(pretrained).tokenizer.chars


@pytest.mark.slow
def test_a_fine_tune_reads_its_new_text_as_often_as_a_run_from_scratch(
    pretrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fine-tune built a data module to read the text's characters, then another to encode it
    # with the vocabulary they gave: the text was hashed and read twice more than from scratch.
    new = other_text(tmp_path / "new.txt", extra="zephyr@")
    opened: list[str] = []
    real_open = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object) -> object:
        if Path(os.path.abspath(self)) == new:
            opened.append(str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    # A digest is kept once its file is 2 s old: the runs here may come sooner, and would then hash
    # the text again or not by the clock.
    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 0)
    short = ["trainer.max_steps=1", "sample.max_new_tokens=0", "logger=none"]
    reads = {}
    runs = {"scratch": "a", "scratch again": "a", "fine-tune": "b", "fine-tune again": "b"}  # run: its cache
    for run, cache in runs.items():
        given = [*short, f"data.cache_dir={tmp_path / cache}"]
        if run.startswith("fine-tune"):
            args = finetune_args(new, tmp_path / run, pretrained, "finetune.extend_vocab=true", *given)
        else:
            args = train_args(new, tmp_path / run, *given)
        opened.clear()
        assert run_cli(train.main, *args) == 0
        reads[run] = len(opened)
    # The first time hashed, read for its characters and read to write its ids; then found in the cache.
    assert reads["fine-tune"] == reads["scratch"] > reads["fine-tune again"] == reads["scratch again"], reads


@pytest.mark.slow  # a fine-tune; test_starting_point_is_printed_and_kept extends the vocabulary
def test_extended_vocabulary_keeps_old_rows_bit_identical(pretrained: Path, tmp_path: Path) -> None:
    new = other_text(tmp_path / "new.txt", extra="zephyr@")
    run_dir = tmp_path / "ft"
    assert run_cli(train.main, *finetune_args(
        new, run_dir, pretrained, "finetune.extend_vocab=true",
        "optimizer.lr=0", "trainer.max_steps=1")) == 0  # lr 0: the checkpoint holds the initial weights
    old, grown = load(pretrained), load(run_dir)
    n_old = old.tokenizer.vocab_size
    assert grown.tokenizer.chars[:n_old] == old.tokenizer.chars
    assert set(grown.tokenizer.chars[n_old:]) == {"@"} | (set("zephyr") - set(old.tokenizer.chars))
    old_emb, new_emb = old.model.tok_emb.weight, grown.model.tok_emb.weight
    assert torch.equal(new_emb[:n_old], old_emb)
    assert torch.allclose(new_emb[n_old:], old_emb.mean(0).expand_as(new_emb[n_old:]))


@pytest.mark.slow  # several seconds of training; the default run covers the mechanism
def test_frozen_embeddings_and_blocks_do_not_change(pretrained: Path, tmp_path: Path) -> None:
    new = other_text(tmp_path / "new.txt")
    run_dir = tmp_path / "ft"
    assert run_cli(train.main, *finetune_args(
        new, run_dir, pretrained, "finetune.freeze_embeddings=true", "finetune.freeze_blocks=1")) == 0
    old, tuned = load(pretrained).model, load(run_dir).model
    assert torch.equal(old.tok_emb.weight, tuned.tok_emb.weight)
    assert torch.equal(old.blocks[0].attn.qkv.weight, tuned.blocks[0].attn.qkv.weight)
    assert not torch.equal(old.norm.weight, tuned.norm.weight)  # the rest trained


@pytest.mark.slow
def test_starting_point_is_printed_and_kept(pretrained: Path, tmp_path: Path, capsys) -> None:
    new = other_text(tmp_path / "new.txt", extra="zephyr@")
    run_dir = tmp_path / "ft"
    args = finetune_args(new, run_dir, pretrained, "finetune.extend_vocab=true", "trainer.max_steps=2")
    assert run_cli(train.main, *args) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"step 0 (before training): val loss {metrics['initial_val_loss']:.4f}" in out
    assert metrics["step"] == 2 and metrics["val_loss"] != metrics["initial_val_loss"]
    [added] = [line for line in out.splitlines() if "finetune.extend_vocab: added" in line]
    assert "'@'" in added and "'z'" in added
    # The text's own count is not the model's vocabulary: the start-of-run line gives both.
    vocab = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["vocab"]
    distinct = len(set(new.read_text(encoding="utf-8")))
    assert distinct < len(vocab)
    assert f"vocabulary: {distinct} distinct characters in" in out
    assert f"(the model's vocabulary: {len(vocab)})" in out
    assert "note:" not in out  # the weights of a run that finished: nothing to say of them


def logged_hparams(run_dir: Path) -> dict:
    """The hyperparameters of a run's TensorBoard HParams row."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    plugin = EventAccumulator(str(run_dir / "tensorboard")).Reload().PluginTagToContent(metadata.PLUGIN_NAME)
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin[metadata.SESSION_START_INFO_TAG])
    return dict(start.session_start_info.hparams)


def test_a_fine_tune_of_no_step_says_it_scored_its_start_and_every_run_logs_where_it_started(
    pretrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A fine-tune and the run it started from had the same columns in TensorBoard's HParams view
    # (and in MLflow and W&B), with no init_from among them. trainer.max_steps=0 ended
    # `step 0: val loss 3.5830 (best n/a), 22 s, 0 tokens/s`. A run in a folder named with `${`
    # could not be fine-tuned: `error: callbacks.hparams.init_from: cannot resolve its ${...}`.
    start = tmp_path / "base ${x}, é 🎭"
    shutil.copytree(pretrained, start)
    monkeypatch.chdir(tmp_path)  # init_from typed relative: logged absolute
    run_dir = tmp_path / "ft"
    new = other_text(tmp_path / "new.txt")
    args = finetune_args(new, run_dir, Path(start.name), "trainer.max_steps=0")
    assert run_cli(train.main, *args) == 0
    out = capsys.readouterr().out
    scored = json.loads((run_dir / "metrics.json").read_text())["initial_val_loss"]
    assert f"step 0: val loss {scored:.4f} (the starting point's; no step trained)" in out
    assert "best n/a" not in out and "tokens/s" not in out
    assert logged_hparams(run_dir)["init_from"].string_value == str(start.resolve())
    assert logged_hparams(pretrained)["init_from"].string_value == "None"  # a run from scratch


@pytest.mark.parametrize(("state", "note"), [
    ("running", "{run} is still training: this fine-tune starts from its weights at step {step}; "
                "fine-tune again once it has ended for its last ones"),
    ("interrupted", "{run} was stopped (Ctrl-C or a signal) before it finished: this fine-tune starts from "
                    "its weights at step {step}; resume it (its chargpt-train command with ckpt_path={run}) "
                    "and fine-tune again for a trained model"),
])
def test_a_fine_tune_of_a_run_not_done_training_says_which_weights_it_starts_from(
    pretrained: Path, tmp_path: Path, capsys, state: str, note: str
) -> None:
    # A fine-tune of a run still training (or stopped early) took the weights of its latest
    # checkpoint and said nothing: its model was not the trained one, and chargpt-export and
    # chargpt-serve say so of the same run.
    run = tmp_path / "base"
    shutil.copytree(pretrained, run)
    status = {"status": state, "pid": os.getpid(), "host": socket.gethostname()}
    (run / "status.json").write_text(json.dumps(status))
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    args = finetune_args(other_text(tmp_path / "new.txt"), tmp_path / "ft", run, "trainer.max_steps=0")
    with lock_held(run):  # (as the run that still trains holds it)
        assert run_cli(train.main, *args) == 0
    [said] = [line for line in capsys.readouterr().out.splitlines() if "note:" in line]
    assert said.endswith("note: " + note.format(run=run, step=step))


def test_finetune_experiment_needs_init_from(corpus: Path, tmp_path: Path, capsys) -> None:
    code = run_cli(train.main, *train_args(corpus, tmp_path / "ft"), "experiment=finetune")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: experiment=finetune starts from a trained model")
    assert "init_from=RUN_DIR" in err and len(err.splitlines()) == 1
    assert "or an export folder" in err  # init_from takes a safetensors export too


def test_a_finetune_setting_without_init_from_names_every_kind_of_start(
    corpus: Path, tmp_path: Path, capsys
) -> None:
    code = run_cli(train.main, *train_args(corpus, tmp_path / "ft"), "finetune.freeze_blocks=1")
    err = capsys.readouterr().err
    assert code == 2 and "finetune.freeze_blocks=1 applies when fine-tuning" in err
    assert "init_from=RUN_DIR (or a .ckpt file, or an export folder)" in err and len(err.splitlines()) == 1


@pytest.mark.slow  # three fine-tunes; test_resume covers an exact resume by default
def test_an_interrupted_fine_tune_resumes_with_the_command_it_printed(
    pretrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    new = other_text(tmp_path / "new.txt", extra="zephyr@")
    extra = ["finetune.extend_vocab=true", "finetune.freeze_blocks=1", "trainer.max_steps=8",
             "trainer.val_check_interval=4", "sample.max_new_tokens=0"]
    assert run_cli(train.main, *finetune_args(new, tmp_path / "straight", pretrained, *extra)) == 0
    hook = StepHook(monkeypatch)
    hook.send_signal_at(6)
    moved = tmp_path / "pretrained copy"  # the model it starts from, moved away before the resume
    shutil.copytree(pretrained, moved)
    assert run_cli(train.main, *finetune_args(new, tmp_path / "stopped", moved, *extra)) == 130
    err = capsys.readouterr().err
    command = shlex.split(err.split("resume with: ", 1)[1].strip().splitlines()[0])
    assert f"init_from={moved}" in command and command[-1] == f"ckpt_path={tmp_path / 'stopped'}"
    shutil.rmtree(moved)  # the resume takes everything from its own checkpoint
    assert run_cli(train.main, *command[1:]) == 0
    out = capsys.readouterr().out
    assert "(before training)" not in out  # the start was validated once, by the first part
    straight, resumed = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
                         for run in ("straight", "stopped"))
    assert resumed["global_step"] == 8
    assert resumed["hyper_parameters"]["vocab"] == straight["hyper_parameters"]["vocab"]
    for key, value in straight["state_dict"].items():  # as if never interrupted
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_a_bigram_models_table_grows_in_both_dimensions() -> None:
    # Its table maps each character to the next one's logits: new characters add rows and columns.
    config = ModelConfig(arch="bigram", n_layer=1, n_embd=32, n_head=2, block_size=8)
    old = build_model(config, 3)
    with torch.no_grad():
        old.table.weight.copy_(torch.arange(9.0).reshape(3, 3))
    grown = build_model(config, 5)
    apply_pretrained(grown, Pretrained(config, list("abc"), old.state_dict(), "old"))
    table = grown.table.weight
    assert torch.equal(table[:3, :3], old.table.weight)
    assert torch.equal(table[3:, :3], torch.tensor([[3.0, 4.0, 5.0]] * 2))  # the mean row
    assert torch.equal(table[:, 3:], table[:, :3].mean(1, keepdim=True).expand(5, 2))  # the mean column


def test_a_fine_tunes_resume_advice_names_its_preset_and_what_a_bare_checkpoint_needs(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from chargpt.training.finetune import freeze_fix, resume_settings

    run = tmp_path / "ft run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("init_from: /models/base\nfinetune:\n  freeze_blocks: 1\n")
    launch = "hydra:\n  runtime:\n    choices:\n      experiment: finetune\n"
    (run / ".hydra" / "hydra.yaml").write_text(launch)
    ckpt = run / "checkpoints" / "last.ckpt"
    # Without experiment=finetune the resume would train at the defaults' rate, not the preset's.
    assert resume_settings(None, ckpt).endswith(
        "resume with the settings that started it, experiment=finetune init_from=/models/base "
        "finetune.freeze_blocks=1 (and any others it was launched with)")
    # A checkpoint alone (no saved config): only a fine-tune freezes, so it needs its init_from.
    alone = tmp_path / "last.ckpt"
    assert "it is a fine-tune: resume with the init_from and" in freeze_fix(OmegaConf.create({}), alone)
    told = freeze_fix(OmegaConf.create({"init_from": "/models/base"}), alone)
    assert told == "resume with the finetune.freeze_embeddings and finetune.freeze_blocks it was trained with"


def test_one_added_character_is_counted_as_one(caplog: pytest.LogCaptureFixture) -> None:
    # "added 1 characters the checkpoint never saw: 'Ω'" on a fine-tune that brought one new character.
    from types import SimpleNamespace

    from chargpt.training.finetune import finetune_vocab

    pretrained = SimpleNamespace(vocab=list("abc"))
    for text, said in (("abΩ", "added 1 character the checkpoint never saw: 'Ω'"),
                       ("aΩ😀", "added 2 characters the checkpoint never saw: 'Ω', '😀'")):
        data = SimpleNamespace(characters=lambda text=text: sorted(set(text)))
        caplog.clear()
        with caplog.at_level("INFO", logger="chargpt.training.finetune"):
            assert finetune_vocab(pretrained, data, extend=True)[3:] == sorted(set(text) - set("abc"))
        assert f"finetune.extend_vocab: {said}" in caplog.text
