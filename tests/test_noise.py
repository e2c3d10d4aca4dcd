"""Every line a run prints is true and worth reading: FLOPs in the model summary, one plain line
for a callback prompt the text cannot spell, no advice that does not apply, honest debug configs."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from lightning.pytorch.utilities.model_summary import ModelSummary
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from chargpt.cli import CONFIG_PATH
from chargpt.cli import train as train_cli
from chargpt.cli.common import quiet_known_warnings
from chargpt.data.tokenizer import CharTokenizer
from chargpt.training.callbacks.callback_prompt import known_prompt
from chargpt.training.module import CharLM
from conftest import bare_train_args, run_main, write_corpus

RANK_ZERO = "lightning.pytorch.utilities.rank_zero"


def test_model_summary_counts_the_flops_of_one_sequence() -> None:
    module = CharLM({"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16}, list("abcdefgh"))
    flops = ModelSummary(module).total_flops
    weights = [p for n, p in module.model.named_parameters() if p.dim() == 2 and "wte" not in n]
    # At least the weight matmuls (2 FLOPs per weight and character) of one 16-character sequence.
    assert flops >= 2 * 16 * sum(p.numel() for p in weights) // 2


def test_a_prompt_the_text_cannot_spell_is_one_plain_line_once(caplog, monkeypatch) -> None:
    # chargpt's own logger, whose lines train.log keeps.
    said_by = "chargpt.training.callbacks.callback_prompt"
    # An earlier in-process chargpt-eval or chargpt-sample (logging: disabled) turns this logger off.
    monkeypatch.setattr(logging.getLogger(said_by), "disabled", False)
    tokenizer = CharTokenizer(list("abc \n"))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger=said_by):
        warnings.simplefilter("always")
        for _ in range(3):  # one call per validation
            assert known_prompt("a cab, Zed!", tokenizer, "AttentionMaps") == "a cab "
    assert caught == []  # no warning machinery (it prints a source path)
    lines = [r.getMessage() for r in caplog.records if r.name == said_by]
    assert lines == ["AttentionMaps: leaving out of its prompt the characters this text lacks: "
                     "'!', ',', 'Z', 'd', 'e'"]
    # An accent written as a combining mark is composed, not dropped: the text has it composed.
    accented = CharTokenizer(list("abcé \n"))
    assert known_prompt("cafe\u0301", accented, "SampleText") == "caé"


@pytest.mark.slow
def test_a_bigram_run_says_nothing_of_an_attention_maps_prompt(tmp_path: Path, monkeypatch, capsys) -> None:
    # model=bigram on a text of one's own logged "AttentionMaps: leaving out of its prompt the
    # characters this text lacks: ..." for a picture the bigram table (no attention) never has.
    monkeypatch.setattr(logging.getLogger("chargpt.training.callbacks.callback_prompt"), "disabled", False)
    for model, said in (("bigram", False), ("tiny", True)):
        # (A text of its own each: the line is said once per text in a process.) None of the
        # prompt's letters.
        corpus = write_corpus(tmp_path / f"{model}.txt", alphabet=f"xyz \n{model[0]}")
        run = tmp_path / model
        args = [a for a in bare_train_args(corpus, run, f"model={model}", "trainer.max_steps=1",
                                           "trainer.val_check_interval=1") if a != "logger=none"]
        code, _, err = run_main(train_cli.main, args, capsys)
        assert code == 0, err
        assert ("AttentionMaps: leaving out of its prompt" in (run / "train.log").read_text()) is said


def test_lightning_advice_that_does_not_apply_is_not_shown() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        # Lightning's words under DDP; every rank scores the whole split, so there is nothing to sync.
        warnings.warn(
            "It is recommended to use `self.log('val/loss', ..., sync_dist=True)` when logging on epoch "
            "level in distributed setting to accumulate the metric across devices.", PossibleUserWarning,
            stacklevel=1,
        )
    assert caught == []
    logger = logging.getLogger(RANK_ZERO)
    shown = [m for m in ("GPU available: False, used: False", "TPU available: False, using: 0 TPU cores",
                         "`Trainer.fit` stopped: `max_steps=30` reached.")
             if logger.filter(logging.LogRecord(RANK_ZERO, logging.INFO, "", 0, m, None, None))]
    assert shown == ["GPU available: False, used: False"]


@pytest.mark.slow
def test_lightnings_lines_are_printed_once_in_the_runs_format_and_kept_in_train_log(tmp_path: Path) -> None:
    # Lightning's `lightning` logger has a console handler of its own ("INFO: GPU available: ..."),
    # and its lines reach Hydra's root handler too: each was printed twice, in two formats.
    pytest.importorskip("mlflow")  # (its first run's "Experiment ... Creating it." is Lightning's too)
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = [a for a in bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=1") if a != "logger=none"]
    done = subprocess.run([sys.executable, "-m", "chargpt.cli.train", *args, "logger=mlflow",
                           f"paths.output_root={tmp_path / 'outputs'}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = (done.stdout + done.stderr).splitlines()
    log = (tmp_path / "run" / "train.log").read_text().splitlines()
    for said, level in (("GPU available: False, used: False", "INFO"),
                        ("Experiment with name chargpt not found. Creating it.", "WARNING")):
        shown = [line for line in printed if said in line]
        assert len(shown) == 1, shown
        assert f"[{level}] - {said}" in shown[0]  # Hydra's format, as chargpt's own lines
        assert [line for line in log if said in line] == shown


def test_debug_fdr_writes_what_its_config_says(tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = [a for a in bare_train_args(corpus, tmp_path / "run") if a != "logger=none"]
    code, _, err = run_main(train_cli.main, [*args, "debug=fdr"], capsys)
    assert code == 0, err
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != ".chargpt.lock"]
    written = {p.relative_to(tmp_path / "run").parts[0] for p in files}  # (the lock: the directory's claim)
    assert written == {".hydra", "train.log", "metrics.json", "status.json"}
    comment = (Path(CONFIG_PATH) / "debug" / "fdr.yaml").read_text()
    assert "no checkpoints and no TensorBoard or CSV logs" in comment
    assert all(name in comment for name in written)
