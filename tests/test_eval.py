"""chargpt-eval: scores the run's own text and split by default, one JSON key for every split,
refuses settings that would do nothing; stride=N and the loss by position and class of character."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from chargpt import recorded_text
from chargpt.checkpoint_eval import evaluate_checkpoint
from chargpt.checkpoints import RESUME_STATE_KEY
from chargpt.cli import CONFIG_PATH
from chargpt.cli import eval as eval_cli
from chargpt.cli import export as export_cli
from chargpt.cli import sample as sample_cli
from chargpt.cli import train as train_cli
from chargpt.data.corpus import sha256_of
from chargpt.data.sources import file_hashes
from chargpt.errors import ConfigError
from chargpt.recorded_text import training_text
from conftest import bare_train_args, lacks, make_checkpoint, run_cli, run_main, write_corpus


def _one_error(code: int, out: str, err: str) -> str:
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _result(code: int, out: str, err: str) -> dict:
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A short run on its own text, split 80/20 (not the default 90/10), given as a path relative
    to the folder it trained in: the tests evaluate it from another."""
    tmp = tmp_path_factory.mktemp("evalrun")
    text = write_corpus(tmp / "own_text.txt", n_chars=3000)
    args = bare_train_args(Path(text.name), tmp / "run", "trainer.max_steps=2",
                           "trainer.val_check_interval=2", "data.train_fraction=0.8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHARGPT_CACHE_DIR", str(tmp / "cache"))
        mp.chdir(tmp)
        assert run_cli(train_cli.main, *args) == 0
    return tmp / "run", text


def _checkpoint_of(tmp: Path, text: Path | None, **state: object) -> Path:
    """An untrained checkpoint that records `text` (and `state`) as a run's ResumeState would."""
    file = make_checkpoint(tmp / "model.ckpt")
    ckpt = torch.load(file, weights_only=True)
    corpus = None if text is None else {"path": str(text), "sha256": sha256_of(text)}
    ckpt["callbacks"] = {RESUME_STATE_KEY: {"corpus": corpus, "split": {"train_fraction": 0.9}, **state}}
    torch.save(ckpt, file)
    return file


def test_eval_scores_the_runs_own_text_and_split_by_default(run, capsys) -> None:
    run_dir, text = run
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", "device=cpu"], capsys))
    n = len(text.read_text())
    assert result["data"] == str(text) and result["split"] == "val"
    # The step of the weights scored: a run still training rewrites last.ckpt between two evals.
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert result["step"] == last["global_step"] > 0
    assert result["tokens"] == n - int(n * 0.8) - 1  # the run's 80/20 split, every target
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert result["loss"] == pytest.approx(metrics["val_loss"], abs=1e-4)
    assert "val_loss" not in result


@pytest.mark.slow
def test_eval_scores_in_the_arithmetic_the_run_validated_in(tmp_path, capsys) -> None:
    # On a CPU with AMX, `auto` trained with bf16 products and eval scored in float32: 2.46235
    # against the run's own 2.46153. A run in bf16 autocast shows the same on any CPU.
    text = write_corpus(tmp_path / "text.txt", n_chars=3000)
    run_dir = tmp_path / "run"
    args = bare_train_args(text, run_dir, "trainer.max_steps=40", "trainer.val_check_interval=40",
                           "optimizer.lr=1e-2", "trainer.precision=bf16-mixed", "matmul_precision=medium")
    assert run_cli(train_cli.main, *args) == 0
    val_loss = json.loads((run_dir / "metrics.json").read_text())["val_loss"]
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", "device=cpu"], capsys))
    assert result["loss"] == pytest.approx(val_loss, abs=6e-6)  # as the JSON rounds it
    assert (result["precision"], result["matmul_precision"]) == ("bf16-mixed", "medium")
    float32 = _result(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", "device=cpu", "precision=32-true",
                                                "matmul_precision=highest"], capsys))
    assert (float32["precision"], float32["matmul_precision"]) == ("32-true", "highest")
    assert abs(float32["loss"] - val_loss) > 6e-6  # the arithmetic matters: asked for, it is used
    # An export's card did not say which arithmetic its loss was measured in, and chargpt-eval scored
    # it in float32: it now records it, its README says it, and chargpt-eval scores in it.
    export = tmp_path / "export"
    assert run_cli(export_cli.main, f"ckpt_path={run_dir}", f"out={export}") == 0
    card = json.loads((export / "config.json").read_text())["card"]
    assert card["val_arithmetic"] == {"precision": "bf16-mixed", "matmul_precision": "medium",
                                      "device_type": "cpu"}
    readme = (export / "README.md").read_text(encoding="utf-8")
    assert "| measured in | `precision=bf16-mixed matmul_precision=medium` on cpu |" in readme
    exported = _result(*run_main(eval_cli.main, [f"ckpt_path={export}", f"data.path={text}", "device=cpu"],
                                 capsys))
    assert exported["loss"] == pytest.approx(val_loss, abs=6e-6)
    assert (exported["precision"], exported["matmul_precision"]) == ("bf16-mixed", "medium")
    refused = _one_error(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", "precision=fp8"], capsys))
    assert refused.startswith("error: precision=fp8 is not a precision; use one of auto, 32-true")  # its name
    refused = _one_error(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", "matmul_precision=bf16"], capsys))
    assert refused == "error: matmul_precision=bf16 is not a precision; use one of auto, highest, high, " \
                      "medium"


def test_eval_refuses_a_val_split_that_holds_text_the_model_trained_on(run, capsys) -> None:
    # data.train_fraction=0.5 of a run split at 0.8: 30 points of its "val" were training text.
    run_dir, text = run
    for named in ([], [f"data.path={text}"]):  # the recorded text, or the same file named
        code, out, err = run_main(eval_cli.main, [f"ckpt_path={run_dir}", *named, "data.train_fraction=0.5"],
                                  capsys)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert err.startswith("error: data.train_fraction=0.5 would score text the model trained on as its "
                              "val split (its run split the text at 0.8); pass data.train_fraction=0.8")
    # Held out still (the default 0.9 too, the file named), or the whole text asked for: scored.
    for fine in (["data.train_fraction=0.9"], [f"data.path={text}"],
                 ["data.train_fraction=0.5", "split=all"]):
        result = _result(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", *fine], capsys))
        assert result["tokens"] > 0


def test_evaluate_checkpoint_in_python_scores_as_the_command_does(run, capsys) -> None:
    run_dir, text = run
    line = _result(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", "device=cpu"], capsys))
    assert evaluate_checkpoint(str(run_dir), device="cpu") == line
    # Each data setting given is given as on the command line: refused alike.
    for data in ({"train_fraction": 0.5}, {"path": str(text), "train_fraction": 0.5}):
        with pytest.raises(ConfigError, match=r"^data\.train_fraction=0\.5 would score text the model"):
            evaluate_checkpoint(str(run_dir), data, device="cpu")
    assert evaluate_checkpoint(str(run_dir), {"path": str(text)}, "all", device="cpu")["split"] == "all"


@pytest.mark.slow
@pytest.mark.skipif(lacks("datasets"), reason="the hf extra is not installed")
def test_a_saved_dataset_given_as_data_path_is_read_as_its_run_read_it(tmp_path, capsys, monkeypatch) -> None:
    # It was refused with the data=hf data.name=... to pass, and for an export, which recorded no
    # split or field, that was refused again without data.text_field: now the card records them.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    text = write_corpus(tmp_path / "text.txt", n_chars=3000).read_text(encoding="utf-8")
    saved = tmp_path / "saved data"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"body": [text[i : i + 300] for i in
                                                                        range(0, len(text), 300)]})
                          }).save_to_disk(str(saved))
    run_dir, export = tmp_path / "run", tmp_path / "export"
    args = ["data=hf", f"data.name={saved}", "data.text_field=body",
            *bare_train_args(tmp_path, run_dir, "trainer.max_steps=2", "trainer.val_check_interval=2")[2:]]
    assert run_cli(train_cli.main, *args) == 0
    val_loss = json.loads((run_dir / "metrics.json").read_text())["val_loss"]
    assert run_cli(export_cli.main, f"ckpt_path={run_dir}", f"out={export}") == 0
    card = json.loads((export / "config.json").read_text())["card"]
    assert card["dataset"] == {"config": None, "split": "train", "val_split": None, "text_field": "body"}
    for scored in (export, run_dir):
        result = _result(*run_main(eval_cli.main, [f"ckpt_path={scored}", f"data.path={saved}"], capsys))
        assert result["loss"] == pytest.approx(val_loss, abs=6e-6)
        assert result["data"] == f"dataset {saved} (train)"


@pytest.mark.slow
@pytest.mark.skipif(lacks("datasets"), reason="the hf extra is not installed")
def test_a_run_that_joined_its_datasets_empty_rows_is_scored_on_the_text_it_validated_on(
    tmp_path, capsys, monkeypatch
) -> None:
    # Runs before 2026-12-07 joined a dataset's empty rows; named as its error advises (data=hf
    # data.name=...), or as data.path, its dataset was read with them left out: another validation
    # text than it validated on, and another loss than its own val_loss.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    text = write_corpus(tmp_path / "text.txt", n_chars=3000).read_text(encoding="utf-8")
    rows = [row for i in range(0, len(text), 200) for row in (text[i : i + 200], "", None)]
    saved = tmp_path / "saved, données 🚀"
    splits = {"train": rows[:-6], "validation": rows[-6:]}
    datasets.DatasetDict({name: datasets.Dataset.from_dict({"text": part}) for name, part in splits.items()}
                         ).save_to_disk(str(saved))
    run_dir = tmp_path / "run é"
    named = ["data=hf", f"data.name={saved}", "data.val_split=validation"]
    steps = ("trainer.max_steps=2", "trainer.val_check_interval=2")
    args = [*named, *bare_train_args(tmp_path, run_dir, *steps)[2:]]
    assert run_cli(train_cli.main, *args, "+data.read_empty_rows=true") == 0  # as those versions read it
    val_loss = json.loads((run_dir / "metrics.json").read_text())["val_loss"]
    for data in (named, [f"data.path={saved}"]):
        result = _result(*run_main(eval_cli.main, [f"ckpt_path={run_dir}", *data], capsys))
        assert result["loss"] == pytest.approx(val_loss, abs=6e-6), data


def test_a_saved_dataset_with_an_export_whose_card_garbles_its_reading_is_refused(tmp_path, capsys) -> None:
    # A card's dataset that is no mapping (edited by hand) was a traceback, 'list' object has no
    # attribute 'items': it is now read as a card that does not record it.
    export, saved = tmp_path / "export", tmp_path / "saved"
    assert run_cli(export_cli.main, f"ckpt_path={make_checkpoint(tmp_path / 'a.ckpt')}", f"out={export}") == 0
    config = json.loads((export / "config.json").read_text())
    config["card"]["dataset"] = ["train", "body"]
    (export / "config.json").write_text(json.dumps(config))
    saved.mkdir()
    (saved / "dataset_dict.json").write_text("{}")
    message = _one_error(*run_main(eval_cli.main, [f"ckpt_path={export}", f"data.path={saved}"], capsys))
    assert message == (f"error: data.path={saved} is a dataset saved with save_to_disk, not a folder of "
                       f"text; pass it as data=hf data.name={saved}")


@pytest.mark.parametrize(("recorded", "setting"), [
    ({"precision": "bananas", "device_type": "cpu"}, "precision=bananas"),
    ({"precision": "bf16-mixed", "matmul_precision": "bananas", "device_type": "cpu"},
     "matmul_precision=bananas"),
])
def test_an_export_whose_card_records_no_such_arithmetic_is_refused_naming_the_card(
    recorded, setting, tmp_path, capsys
) -> None:
    # Refused as if typed, "error: precision=bananas is not a precision", which nobody had typed.
    export = tmp_path / "export"
    assert run_cli(export_cli.main, f"ckpt_path={make_checkpoint(tmp_path / 'a.ckpt')}", f"out={export}") == 0
    config = json.loads((export / "config.json").read_text())
    config["card"]["val_arithmetic"] = recorded
    (export / "config.json").write_text(json.dumps(config))
    text = write_corpus(tmp_path / "text.txt")
    scoring = [f"ckpt_path={export}", f"data.path={text}", "device=cpu"]
    message = _one_error(*run_main(eval_cli.main, scoring, capsys))
    name = setting.partition("=")[0]
    assert message.startswith(f"error: {export / 'config.json'}'s card records its validation loss as "
                              f"measured in {setting}, which is no such value; pass {name}=VALUE (one of ")
    # Another arithmetic asked for: the record is not read.
    asked = "precision=32-true" if name == "precision" else "matmul_precision=highest"
    assert _result(*run_main(eval_cli.main, [*scoring, asked], capsys))["tokens"] > 0


@pytest.mark.parametrize(("precision", "dtype"), [
    ("64-true", torch.float64), ("bf16-true", torch.bfloat16), ("16-true", torch.float16),
])
def test_eval_in_a_whole_model_precision_scores_the_model_converted_to_it(
    run, capsys, monkeypatch, precision: str, dtype: torch.dtype
) -> None:
    # The weights themselves are in the precision asked for, as a run in it validated: its forward
    # context alone leaves float32 weights, and the line's loss would be float32's under another name.
    from chargpt import checkpoint_eval

    run_dir, _ = run
    scored_in = []

    def scoring(model, *args, **kwargs):
        scored_in.append({p.dtype for p in model.parameters()})
        return evaluate_text(model, *args, **kwargs)

    evaluate_text = checkpoint_eval.evaluate_text
    monkeypatch.setattr(checkpoint_eval, "evaluate_text", scoring)
    args = [f"ckpt_path={run_dir}", "device=cpu", f"precision={precision}"]
    result = _result(*run_main(eval_cli.main, args, capsys))
    assert result["precision"] == precision
    assert scored_in == [{dtype}]


def test_evaluate_checkpoint_in_python_leaves_the_callers_matmul_precision(run) -> None:
    # It scored in the products asked for, and left the process's setting at them for whatever the
    # caller ran next.
    run_dir, _ = run
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        line = evaluate_checkpoint(str(run_dir), device="cpu", matmul_precision="medium")
        assert line["matmul_precision"] == "medium"
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)


def test_eval_checkpoint_records_its_split(run) -> None:
    run_dir, _ = run
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    split = ckpt["callbacks"][RESUME_STATE_KEY]["split"]
    assert split == {"train_fraction": 0.8, "split": None, "val_path": None}


def test_eval_config_does_not_default_to_a_corpus() -> None:
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("eval", overrides=["ckpt_path=x"])
    assert cfg.data.path is None and cfg.data.url is None


def test_eval_refuses_when_the_recorded_text_is_gone_or_changed(tmp_path, capsys) -> None:
    text = write_corpus(tmp_path / "Romeo's notes, v2.txt")
    ckpt = _checkpoint_of(tmp_path, text)
    text.write_text(text.read_text() + "more")
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}"], capsys))
    assert f"{text} has changed since {ckpt} was trained on it" in line and "data.path=FILE" in line
    fix = line.rsplit(" (", 1)[1].removesuffix(" takes it as it is now)")
    assert shlex.split(fix) == [f"data.path={text}"]  # pasted into a shell, it is one argument
    text.unlink()
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}"], capsys))
    assert f"{ckpt} was trained on {text}, which is no longer there" in line and "data.path=FILE" in line
    ckpt = _checkpoint_of(tmp_path, None)
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}"], capsys))
    assert "does not record the text it was trained on" in line


def test_eval_refuses_a_text_written_to_while_it_reads_it(tmp_path, monkeypatch, capsys) -> None:
    # Checked unchanged, hashed, then rewritten before it was encoded: the text saved since was scored
    # as the run's own, and its ids cached under the run's text's sha256, which every later
    # chargpt-eval of the run scored instead.
    from chargpt.data.sources import text_files

    text = write_corpus(tmp_path / "text.txt")
    ckpt = _checkpoint_of(tmp_path, text)
    as_trained, hashed = text.read_text(), text_files.cached_sha256s
    saved = [write_corpus(tmp_path / "saved since.txt", seed=1).read_text()]  # the same characters

    def then_saved(*args: object) -> list[str]:
        digests = hashed(*args)
        if saved:
            text.write_text(saved.pop())
        return digests

    monkeypatch.setattr(text_files, "cached_sha256s", then_saved)
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", "device=cpu"], capsys))
    assert line == (f"error: {text} changed while it was read (it was written to after its sha256 was "
                    "taken); run again once nothing writes to it")
    text.write_text(as_trained)
    again = _result(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", "device=cpu"], capsys))
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "fresh cache"))
    assert _result(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", "device=cpu"], capsys)) == again


def test_eval_scores_another_text_only_when_asked(tmp_path, capsys) -> None:
    own, other = write_corpus(tmp_path / "own.txt"), write_corpus(tmp_path / "café 📚.txt", seed=1)
    ckpt = _checkpoint_of(tmp_path, own, split={"train_fraction": 0.5, "added_later": [1]})
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", "device=cpu"], capsys))
    assert result["data"] == str(own) and result["tokens"] == 4000 - 2000 - 1
    args = [f"ckpt_path={ckpt}", f"data.path={other}", "device=cpu"]
    code, out, err = run_main(eval_cli.main, args, capsys)
    result = _result(code, out, err)
    assert result["data"] == str(other) and result["tokens"] == 4000 - 3600 - 1  # its config's 90/10
    assert "café 📚.txt" in out  # the JSON shows the name as typed, not as \u escapes


def test_eval_says_which_split_it_takes_when_none_is_recorded(tmp_path, capsys) -> None:
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "own.txt"), split=None)  # an older run
    code, out, err = run_main(eval_cli.main, [f"ckpt_path={ckpt}", "device=cpu"], capsys)
    assert _result(code, out, err)["tokens"] == 4000 - 3600 - 1
    note = f"note: {ckpt} does not record how its text was split; splitting at data.train_fraction=0.9"
    assert err.strip() == note


@pytest.mark.parametrize("split", ["val", "train", "all"])
def test_eval_json_has_one_loss_key_beside_the_split(split, tmp_path, capsys) -> None:
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "t.txt", n_chars=1000))
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", f"split={split}", "device=cpu"],
                               capsys))
    assert set(result) == {"loss", "bpc", "tokens", "stride", "window", "windows", "split", "data",
                           "checkpoint", "step", "precision", "matmul_precision", "by_class",
                           "loss_by_position_buckets", "loss_by_position"}
    assert result["split"] == split and result["stride"] == result["window"] == 16
    assert result["tokens"] == {"val": 99, "train": 899, "all": 999}[split]


def test_eval_split_all_scores_a_text_shorter_than_the_context(tmp_path, capsys) -> None:
    short = tmp_path / "short.txt"
    short.write_text("abc de\nfg")  # 9 characters, the model's context is 16
    ckpt = _checkpoint_of(tmp_path, short)
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", "split=all", "device=cpu"],
                               capsys))
    assert result["tokens"] == 8 and result["loss"] > 0
    # It said "stride": 8, the text's length: the stride is the default one (the context, 16), and
    # the windows say what was scored.
    assert (result["stride"], result["window"], result["windows"]) == (16, 8, 1)
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}"], capsys))
    assert "the val split of" in line and "1 character(s)" in line and "split=all" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.block_size=8", "model.block_size=8 does nothing in chargpt-eval"),
        ("+model.n_layer=3", "+model.n_layer=3 does nothing in chargpt-eval"),
        # Hydra said "append with +model=small" and "add a setting of your own": both then refused.
        ("model=small", "model=small does nothing in chargpt-eval (the model and its context length come"),
        ("model.n_layer=2", "model.n_layer=2 does nothing in chargpt-eval"),
        ("data.batch_size=4", "the evaluation batch is batch_size=N"),
        ("seed=3", "seed=3 does nothing in chargpt-eval"),
        # chargpt-sample's setting, which the docs name beside chargpt-eval: "check_copy is not a
        # setting; check its spelling", of a name spelt right.
        ("check_copy=true", "error: check_copy=true does nothing in chargpt-eval (it is chargpt-sample's "
                            "check of its samples against the training text; an evaluation writes no text); "
                            "drop it"),
        ("data.val_max_chars=1000", "data.val_max_chars=1000 does nothing in chargpt-eval (every character"),
        # It would join the recorded text, which then no longer matched its record: "has changed".
        # (Named as typed: it read data.val_path='t.txt', with the quotes the command line adds for Hydra.)
        ("data.val_path=t.txt", "error: data.val_path=t.txt: a validation text is scored with the text it "
                                "belongs to, data.path=FILE; to score this one alone, pass it as data.path "
                                "with split=all"),
    ],
)
def test_eval_refuses_settings_that_do_nothing(override, expected, tmp_path, capsys) -> None:
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "t.txt"))
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", override], capsys))
    assert expected in line


def test_eval_names_the_validation_text_it_scored(tmp_path, capsys) -> None:
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "t.txt"))
    held_out = write_corpus(tmp_path / "held out.txt", n_chars=300, seed=5)
    args = [f"ckpt_path={ckpt}", "device=cpu", f"data.path={tmp_path / 't.txt'}", f"data.val_path={held_out}"]
    result = _result(*run_main(eval_cli.main, args, capsys))
    assert result["data"] == str(held_out) and result["tokens"] == 299
    train = _result(*run_main(eval_cli.main, [*args, "split=train"], capsys))
    assert train["data"] == str(tmp_path / "t.txt")
    both = _result(*run_main(eval_cli.main, [*args, "split=all"], capsys))
    assert both["data"] == f"{tmp_path / 't.txt'} and {held_out}" and both["tokens"] > result["tokens"]


def test_eval_scores_an_earlier_runs_validation_text_hard_linked_to_its_text(tmp_path, capsys) -> None:
    # A run from before a hard link was told from its file's path took `held out.txt`, a hard link to
    # t.txt, as a validation text of its own; the two texts eval's advice names were refused ("t.txt
    # is both training text (data.path) and validation text (data.val_path)").
    text = write_corpus(tmp_path / "t.txt")
    held_out = tmp_path / "held out.txt"
    held_out.hardlink_to(text)
    split = {"train_fraction": 0.9, "split": None, "val_path": str(held_out)}
    ckpt = _checkpoint_of(tmp_path, text, split=split)
    state = torch.load(ckpt, weights_only=True)
    corpus = state["callbacks"][RESUME_STATE_KEY]["corpus"]
    corpus["files"] = [[str(f), sha256_of(text)] for f in (text, held_out)]
    torch.save(state, ckpt)
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}"], capsys))
    given = shlex.split(line.split("as its run did: ", 1)[1].split(" (or ", 1)[0])
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", "device=cpu", *given], capsys))
    assert result["data"] == str(held_out) and result["tokens"] == len(text.read_text()) - 1
    # Another hard link, not the run's validation text: refused as the training text, as ever.
    (tmp_path / "copy.txt").hardlink_to(text)
    args = [f"ckpt_path={ckpt}", f"data.path={text}", f"data.val_path={tmp_path / 'copy.txt'}"]
    assert "is both training text" in _one_error(*run_main(eval_cli.main, args, capsys))


def test_eval_stride_reports_the_full_context_and_the_non_overlapping_loss(tmp_path, capsys) -> None:
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "t.txt", n_chars=1000))
    args = [f"ckpt_path={ckpt}", "split=all", "device=cpu"]
    code, out, err = run_main(eval_cli.main, args, capsys)
    assert len(out.strip().splitlines()) == 1  # one JSON line, however long
    plain = _result(code, out, err)
    strided = _result(*run_main(eval_cli.main, [*args, "stride=4"], capsys))
    assert strided["stride"] == 4 and strided["tokens"] == plain["tokens"] == 999
    assert strided["loss_non_overlapping"] == plain["loss"] and strided["loss"] != plain["loss"]
    assert strided["loss_by_position"] == plain["loss_by_position"] and len(plain["loss_by_position"]) == 16
    assert list(plain["loss_by_position_buckets"]) == ["0", "1", "2-3", "4-7", "8-15"]
    assert plain["loss_by_position_buckets"]["0"] == plain["loss_by_position"][0]
    for result in (plain, strided):
        classes = result["by_class"]
        assert sum(c["count"] for c in classes.values()) == 999
        assert classes["upper"] == {"loss": None, "count": 0}  # the text has no upper case
        mean = sum(c["loss"] * c["count"] for c in classes.values() if c["count"]) / 999
        assert mean == pytest.approx(result["loss"], abs=1e-3)  # rounded figures
    assert "loss_non_overlapping" not in plain


@pytest.mark.parametrize("stride", ["0", "17", "2.5", "abc"])
def test_eval_refuses_a_stride_outside_the_context(stride, tmp_path, capsys) -> None:
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "t.txt"))
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", f"stride={stride}"], capsys))
    shown = repr(stride) if stride == "abc" else stride  # text, shown as text
    assert f"stride={shown} must be a whole number from 1 to the model's context length 16" in line
    assert "leave stride unset for non-overlapping windows" in line


def test_eval_shows_a_quoted_stride_as_text(tmp_path, capsys) -> None:
    # stride='8' reaches the command as text: the message must not read "stride=8 must be a whole number".
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "t.txt"))
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={ckpt}", "stride='8'"], capsys))
    assert line.startswith("error: stride='8' must be a whole number")


def test_eval_says_when_a_short_split_changes_the_stride(tmp_path, capsys) -> None:
    ckpt = _checkpoint_of(tmp_path, write_corpus(tmp_path / "t.txt", n_chars=70))  # 7 val characters
    code, out, err = run_main(eval_cli.main, [f"ckpt_path={ckpt}", "stride=10", "device=cpu"], capsys)
    result = _result(code, out, "")
    assert result["stride"] == 10 and result["tokens"] == 6  # the stride asked for, not the window's length
    assert (result["window"], result["windows"]) == (6, 1)
    assert err.strip() == ("note: the val split holds 7 characters, no more than the model's context: "
                           "scored as one window of 6, where stride=10 does not apply")
    # A stride below that window does not apply either: no figure claims the context it would give.
    code, out, err = run_main(eval_cli.main, [f"ckpt_path={ckpt}", "stride=2", "device=cpu"], capsys)
    result = _result(code, out, "")
    assert (result["stride"], result["window"], result["windows"]) == (2, 6, 1)
    assert "loss_non_overlapping" not in result and "where stride=2 does not apply" in err


@pytest.mark.slow
def test_a_run_on_a_folder_is_scored_and_copy_checked_on_its_own_split(tmp_path, monkeypatch, capsys) -> None:
    # Trained on a folder with whole files held out: chargpt-eval finds the folder, checks each file
    # unchanged and scores the files the run validated on; check_copy indexes the files it trained on.
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(file_hashes, "_SETTLED_NS", 0)  # digests kept however soon the run comes
    folder = tmp_path / "my texts"
    folder.mkdir()
    for i in range(5):
        write_corpus(folder / f"part {i}.txt", n_chars=900, seed=i)
    args = bare_train_args(folder, tmp_path / "run", "trainer.max_steps=2", "trainer.val_check_interval=2",
                           "data.split=files")
    assert run_cli(train_cli.main, *args) == 0
    hashed: list[str] = []  # the check that the files are unchanged takes the digests training kept
    for where in (file_hashes, recorded_text):
        monkeypatch.setattr(where, "sha256_of", lambda f: hashed.append(f) or sha256_of(f), raising=False)
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run'}", "device=cpu"], capsys))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["loss"] == pytest.approx(metrics["val_loss"], abs=1e-4)
    assert result["tokens"] == 900 - 1  # the last whole file, every target
    assert hashed == []
    (folder / "part 4.txt").write_text("validation edited")
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run'}"], capsys))
    assert f"{folder} has changed since" in line and "(changed: " in line and "part 4.txt" in line
    write_corpus(folder / "part 4.txt", n_chars=900, seed=4)  # back as it was
    for extra in ([], ["data.train_fraction=1"]):  # its training files; or the whole text
        code = run_cli(sample_cli.main, f"ckpt_path={tmp_path / 'run'}", "check_copy=true",
                       "max_new_tokens=30", *extra)
        err = capsys.readouterr().err
        assert code == 0 and "copy check: longest span found in the training text:" in err
    # Read with other settings: the checkpoint records them and the text is read with them again;
    # other ones on the command line are refused, naming the run's.
    args = bare_train_args(folder, tmp_path / "run2", "trainer.max_steps=1", "data.newline=normalize")
    assert run_cli(train_cli.main, *args) == 0
    scored = _result(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run2'}", "device=cpu"], capsys))
    assert scored["tokens"] > 0
    args = [f"ckpt_path={tmp_path / 'run2'}", "data.newline=keep"]
    line = _one_error(*run_main(eval_cli.main, args, capsys))
    assert "is read with other data settings than its run's (data.newline=normalize)" in line
    # A run with a validation text of its own: which text to score is the user's to say.
    # Read with a setting of its own: the commands it is told name it too.
    (folder / "part 4.txt").write_bytes((folder / "part 4.txt").read_bytes().replace(b"\n", b"\r\n"))
    args = bare_train_args(folder, tmp_path / "run3", "trainer.max_steps=1", "data.newline=normalize",
                           f"data.val_path={folder}/part 4.txt", f"data.path={folder}/part [0-3].txt")
    assert run_cli(train_cli.main, *args) == 0
    capsys.readouterr()  # the run's own lines (Lightning's first in a process among them)
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run3'}"], capsys))
    assert "was validated on a text of its own (data.val_path=" in line and "data.newline=normalize" in line
    # chargpt-eval says how to score the run's validation text, and that scores it as the run did.
    given = shlex.split(line.split("as its run did: ", 1)[1].split(" (or ", 1)[0])
    run3 = [f"ckpt_path={tmp_path / 'run3'}", "device=cpu"]
    scored = _result(*run_main(eval_cli.main, [*run3, *given], capsys))
    run_val = json.loads((tmp_path / "run3" / "metrics.json").read_text())["val_loss"]
    assert scored["data"] == f"{folder}/part 4.txt" and scored["loss"] == pytest.approx(run_val, abs=1e-4)
    # Each command says how to take all of the training text, and that works as printed.
    whole = shlex.split(line.split(" (or ", 1)[1].removesuffix(" to score the training text)"))
    assert _result(*run_main(eval_cli.main, [*run3, *whole], capsys))["split"] == "all"
    code = run_cli(sample_cli.main, f"ckpt_path={tmp_path / 'run3'}", "check_copy=true", "max_new_tokens=5")
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.endswith("data.train_fraction=1"), line
    code = run_cli(sample_cli.main, f"ckpt_path={tmp_path / 'run3'}", "check_copy=true", "max_new_tokens=5",
                   *shlex.split(line.split("pass that as ", 1)[1]))
    assert code == 0 and "copy check: longest span" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["folder", "glob"])
def test_a_run_on_a_folder_of_one_file_is_scored_and_caches_outside_it(given, tmp_path, monkeypatch,
                                                                       capsys) -> None:
    # A folder (or glob) that holds one file is still a folder: the checkpoint records its file,
    # so chargpt-eval finds it again, and the encoding cache stays out of the folder.
    monkeypatch.delenv("CHARGPT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user cache"))
    folder = tmp_path / "one text"
    folder.mkdir()
    write_corpus(folder / "only.txt", n_chars=1500)
    path = folder if given == "folder" else folder / "*.txt"
    args = bare_train_args(path, tmp_path / "run", "trainer.max_steps=1")
    assert run_cli(train_cli.main, *args) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["only.txt"]
    result = _result(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run'}", "device=cpu"], capsys))
    assert result["tokens"] > 0
    (folder / "only.txt").write_text("edited " * 300)
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run'}"], capsys))
    assert f"{path} has changed since" in line


@pytest.mark.slow
def test_a_text_read_with_other_settings_is_read_with_them_again(tmp_path, monkeypatch, capsys) -> None:
    # One CRLF file trained with data.newline=normalize: its sha256 covers the setting, so eval and
    # check_copy must read it as the run did (they refused it as "changed" before the record).
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    text = write_corpus(tmp_path / "crlf text.txt", n_chars=3000)
    text.write_bytes(text.read_bytes().replace(b"\n", b"\r\n"))
    run = tmp_path / "run"
    args = bare_train_args(text, run, "trainer.max_steps=2", "trainer.val_check_interval=2",
                           "data.newline=normalize")
    assert run_cli(train_cli.main, *args) == 0
    code, out, err = run_main(eval_cli.main, [f"ckpt_path={run}", "device=cpu"], capsys)
    metrics = json.loads((run / "metrics.json").read_text())
    assert _result(code, out, err)["loss"] == pytest.approx(metrics["val_loss"], abs=1e-4)
    code = run_cli(sample_cli.main, f"ckpt_path={run}", "check_copy=true", "max_new_tokens=30")
    assert code == 0 and "copy check: longest span found in the training text:" in capsys.readouterr().err
    # check_copy on the text moved elsewhere (given by path) still reads it with the run's settings.
    moved = tmp_path / "moved.txt"
    moved.write_bytes(text.read_bytes())
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    trained_text, _ = training_text(ckpt, "RUN", str(moved), None)
    assert "\r" not in trained_text and trained_text.count("\n") > 100
    # A checkpoint from before the record (no read_as): refused as changed, taken with the setting.
    del ckpt["callbacks"][RESUME_STATE_KEY]["corpus"]["read_as"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'old.ckpt'}"], capsys))
    assert "has changed since" in line and "before 2026-12-02 does not record them: pass them" in line
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'old.ckpt'}", "data.normalize=NFKC"],
                                capsys))  # its '\r' then unseen: not blamed on the defaults alone
    assert "when read with data.normalize=NFKC: its run read it with the default data settings (a " \
        "checkpoint written before 2026-12-02 may have used others); drop data.normalize=NFKC" in line
    old = [f"ckpt_path={tmp_path / 'old.ckpt'}", "data.newline=normalize", "device=cpu"]
    scored = _result(*run_main(eval_cli.main, old, capsys))
    assert scored["loss"] == pytest.approx(metrics["val_loss"], abs=1e-4)
    # chargpt-sample's copy check takes no reading settings (data.newline was refused as not one of
    # its settings, as advised): it is told to name the text, which works as printed.
    line = _copy_check_told_to_name(f"ckpt_path={tmp_path / 'old.ckpt'}", text, capsys)
    assert "has changed since" in line and "pass them" not in line
    # Read as it is on disk, it has a character the run never saw ('\r'): the setting is the cause.
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={run}", "data.newline=keep"], capsys))
    assert "never saw ('\\r') when read with data.newline=keep: " in line
    assert line.endswith("its run read it with data.newline=normalize; drop data.newline=keep")
    text.write_bytes(text.read_bytes()[:-10])
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={run}"], capsys))
    assert "has changed since" in line and "(data.newline=normalize)" in line


@pytest.mark.slow
def test_an_older_checkpoints_folder_read_with_a_separator_is_read_as_each_command_says(
    tmp_path, monkeypatch, capsys
) -> None:
    # A checkpoint from before the record of its reading settings, of a folder joined with a
    # separator of its own: its files are unchanged, so the settings differ. Each command names a
    # fix it takes (chargpt-sample was told to pass data.separator, which it refuses; chargpt-eval
    # to "drop the ones given" when none were).
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(3):
        write_corpus(folder / f"part {i}.txt", n_chars=1000, seed=i)
    run = tmp_path / "run"
    args = bare_train_args(folder, run, "trainer.max_steps=1", "data.separator=@")
    assert run_cli(train_cli.main, *args) == 0
    capsys.readouterr()  # the run's own lines (Lightning's first in a process among them)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    del ckpt["callbacks"][RESUME_STATE_KEY]["corpus"]["read_as"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    old = f"ckpt_path={tmp_path / 'old.ckpt'}"
    line = _one_error(*run_main(eval_cli.main, [old], capsys))
    assert "with data settings other than the defaults" in line and "drop" not in line
    assert line.endswith("pass the ones its run used (data.separator, data.newline, data.normalize)")
    assert _result(*run_main(eval_cli.main, [old, "data.separator=@", "device=cpu"], capsys))["tokens"] > 0
    line = _copy_check_told_to_name(old, folder, capsys)
    assert "with data settings other than the defaults" in line and "data.separator" not in line


def _copy_check_told_to_name(ckpt_path: str, text: Path, capsys) -> str:
    """chargpt-sample check_copy=true's refusal of a checkpoint's changed text: it names the text as
    data.path, and that works as printed. Returns the refusal."""
    copy_check = [ckpt_path, "check_copy=true", "max_new_tokens=5", "device=cpu"]
    line = _one_error(*run_main(sample_cli.main, copy_check, capsys))
    named = shlex.split(line.rsplit(" (", 1)[1].removesuffix(" takes it as it is now)"))
    assert named == [f"data.path={text}"]
    assert run_cli(sample_cli.main, *copy_check, *named) == 0
    assert "copy check: longest span" in capsys.readouterr().err
    return line


def test_a_text_trained_with_the_default_settings_is_not_scored_with_others(tmp_path, capsys) -> None:
    text = write_corpus(tmp_path / "t.txt", n_chars=3000)
    text.write_bytes(text.read_bytes().replace(b"\n", b"\r\n"))  # \r is a character of its vocabulary
    args = bare_train_args(text, tmp_path / "run", "trainer.max_steps=1")
    assert run_cli(train_cli.main, *args) == 0
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run'}", "data.newline=normalize"],
                                capsys))
    assert "with other data settings than these" in line and "the defaults" in line
    assert "2026-12-02" not in line  # the run recorded its settings: no hint for older checkpoints
    # Changed since, read with the settings its run used: the hint about older checkpoints is left out.
    text.write_bytes(text.read_bytes()[:-10])
    line = _one_error(*run_main(eval_cli.main, [f"ckpt_path={tmp_path / 'run'}"], capsys))
    assert "has changed since" in line and "2026-12-02" not in line


def test_the_json_line_is_utf8_even_for_a_path_named_in_another_encoding() -> None:
    # A run folder named in Latin-1 reaches Python as a lone surrogate: the line printed to a strict
    # UTF-8 output ended in a UnicodeEncodeError's traceback.
    line = {"checkpoint": "/runs/caf\udce9/checkpoints/last.ckpt", "data": "thé.txt", "loss": 1.5}
    text = eval_cli.json_line(line)
    assert json.loads(text.encode("utf-8").decode("utf-8")) == line
    assert eval_cli.json_line({"data": "thé.txt"}) == '{"data": "thé.txt"}'  # written as it is otherwise


@pytest.mark.parametrize("reader", ["EVAL", "COPY_CHECK"])
def test_a_text_changed_since_its_run_ends_with_the_commands_own_fix(reader, tmp_path) -> None:
    # Read with its run's default settings, it ended "; pass data.path=FILE" (chargpt-eval's other
    # fix, a dataset, left out), where a text read with recorded settings ended with the command's
    # own fix and the way to take the text as it is now.
    from chargpt import shell_words
    from chargpt.data.text import CharText
    from chargpt.errors import DataError

    text = write_corpus(tmp_path / "trained on, café.txt", n_chars=2000)
    corpus = {"path": str(text), "sha256": "0" * 64, "read_as": {}}  # the defaults, and another sha256
    ckpt = {"callbacks": {RESUME_STATE_KEY: {"corpus": corpus}}}
    command = getattr(recorded_text, reader)
    with pytest.raises(DataError) as said:
        recorded_text.check_read_alike(CharText(str(text), block_size=1), ckpt, "RUN", command)
    assert str(said.value) == (f"{text} has changed since RUN was trained on it; {command.how} "
                               f"({shell_words.quote(f'data.path={text}')} takes it as it is now)")


@pytest.mark.parametrize("recorded", [True, False])
def test_characters_its_run_never_saw_name_the_text_changed_and_the_fix(recorded, tmp_path) -> None:
    from chargpt import shell_words
    from chargpt.data.text import CharText
    from chargpt.errors import DataError

    text = tmp_path / "trained on, café.txt"
    text.write_text("abc abc ab😀\n", encoding="utf-8")
    corpus: dict = {"path": str(text), "sha256": "0" * 64}
    if recorded:  # the run recorded its settings (the defaults): the text itself changed
        corpus["read_as"] = {}
    ckpt = {"callbacks": {RESUME_STATE_KEY: {"corpus": corpus}}}
    data = CharText(str(text), block_size=1, vocab=list("abc \n"))
    with pytest.raises(DataError) as said:
        recorded_text.check_read_alike(data, ckpt, "RUN")
    unseen = f"{text} has characters RUN never saw ('😀')"
    as_it_is = f"{recorded_text.EVAL.how} ({shell_words.quote(f'data.path={text}')} takes it as it is now)"
    fix = (f"it has changed since; {as_it_is}" if recorded else
           "it has changed since, or its run read it with data settings (a checkpoint written before "
           "2026-12-02 does not record them); pass them (data.newline, data.normalize, data.separator), "
           "or data.path=FILE")
    assert str(said.value) == f"{unseen}: {fix}"
