"""chargpt-export: safetensors and ONNX folders for every architecture option, loaded back by
chargpt.load (safetensors) and run by ONNX Runtime (ONNX) with PyTorch's logits; bad input."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import chargpt
from chargpt import export as export_module
from chargpt.cli import export as export_cli
from chargpt.cli import sample as sample_cli
from chargpt.cli.prompts import resolve_prompt
from chargpt.data.tokenizer import CharTokenizer, describe_chars
from chargpt.errors import CheckpointError, ConfigError
from chargpt.export import export_model
from chargpt.export_layout import FORMAT_MARKER, WEIGHTS
from chargpt.inference import TrainedModel, load_export
from chargpt.model import ModelConfig, build_model
from chargpt.model.config import CHOICES
from chargpt.model_card import ModelCard, card_for
from conftest import fenced_blocks, lacks, load_script, make_checkpoint, run_cli, run_main, train_args

NO_EXTRA = "the export extra is not installed: pip install -e '.[export]'"
pytestmark = pytest.mark.skipif(lacks("onnxruntime", "onnxscript", "safetensors"), reason=NO_EXTRA)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "onnx_generate.py"
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "serving-and-export.md"
VOCAB = list("\n !',.:;?abcdefghijklmnopqrstuvwxyzéè😀")
SMALL = dict(n_layer=2, n_head=2, n_embd=32, block_size=16)
# Each value of every architecture option appears in at least one case (checked below), mixed so
# that five models cover them all: one ONNX export costs seconds.
CASES = {
    "learned-gelu-layernorm-tied": dict(),
    "sinusoidal-relu-rmsnorm-qknorm-softcap-untied": dict(
        pos_encoding="sinusoidal", activation="relu", norm="rmsnorm", qk_norm=True, logit_softcap=5.0,
        tie_weights=False,
    ),
    "rope-swiglu-layernorm-qknorm-nobias": dict(
        pos_encoding="rope", activation="swiglu", qk_norm=True, bias=False, mlp_ratio=3.0
    ),
    "rope-relu2-rmsnorm-softcap": dict(
        pos_encoding="rope", activation="relu2", norm="rmsnorm", logit_softcap=30.0
    ),
    "bigram": dict(arch="bigram"),
}
# PyTorch and ONNX Runtime run the same float32 graph with different kernels: the logits agree to
# rounding (observed max difference ~2e-7; the check allows 1e-5 absolute + 1e-5 relative).
ATOL = RTOL = 1e-5


def small_model(case: str, seed: int = 0) -> TrainedModel:
    torch.manual_seed(seed)
    config = ModelConfig(**{**SMALL, "init_std": 0.2, **CASES[case]})
    return TrainedModel(build_model(config, len(VOCAB)).eval(), CharTokenizer(VOCAB))


def card(trained: TrainedModel, name: str = "test model") -> ModelCard:
    return ModelCard(name, trained.model.num_params(), len(VOCAB), trained.model.block_size,
                     trained.model.config.arch, val_loss=1.25, step=100)


@pytest.mark.slow  # two ONNX exports: several seconds
def test_an_onnx_export_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    trained = small_model("rope-swiglu-layernorm-qknorm-nobias")
    exports = [export_model(trained, card(trained), "onnx", tmp_path / str(i)) for i in range(2)]
    assert (exports[0] / "model.onnx").read_bytes() == (exports[1] / "model.onnx").read_bytes()
    for name in ("config.json", "README.md"):
        assert (exports[0] / name).read_bytes() == (exports[1] / name).read_bytes()


def test_a_safetensors_export_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    # The writer's metadata order changed from one export to the next (a Rust HashMap), so two
    # exports of one model differed; a tied model has three metadata keys (format, card, the tie).
    trained = small_model("learned-gelu-layernorm-tied")
    exports = [export_model(trained, card(trained), "safetensors", tmp_path / str(i)) for i in range(4)]
    weights = [(folder / "model.safetensors").read_bytes() for folder in exports]
    assert all(w == weights[0] for w in weights)
    assert len({(folder / "README.md").read_bytes() for folder in exports}) == 1
    header = json.loads(weights[0][8 : 8 + int.from_bytes(weights[0][:8], "little")])
    metadata = list(header["__metadata__"])
    assert len(metadata) == 3 and metadata == sorted(metadata)
    from safetensors import safe_open

    with safe_open(exports[0] / "model.safetensors", "pt") as file:  # still a valid file
        assert file.metadata()["format"] == FORMAT_MARKER


def test_cases_cover_every_option_and_every_option_is_exportable() -> None:
    # Read from ModelConfig: an option or a switch added to the model fails here until a case
    # exports it (and, for an option, until SUPPORTED names it).
    configs = [ModelConfig(**{**SMALL, **case}) for case in CASES.values()]
    for name, values in CHOICES.items():
        assert {getattr(c, name) for c in configs if c.arch == "gpt" or name == "arch"} == set(values), name
        for fmt in WEIGHTS:
            assert set(export_module.SUPPORTED[fmt][name]) == set(values)
    gpts = [c for c in configs if c.arch == "gpt"]
    flags = [name for name, value in ModelConfig().architecture().items() if isinstance(value, bool)]
    assert flags, "no architecture switch found"
    for flag in flags:
        assert {getattr(c, flag) for c in gpts} == {True, False}, f"no case has model.{flag}=true and =false"
    assert {c.logit_softcap is None for c in gpts} == {True, False}


@pytest.mark.parametrize("case", CASES)
def test_safetensors_export_loads_back_identical(case: str, tmp_path: Path) -> None:
    trained = small_model(case)
    out = export_model(trained, card(trained), "safetensors", tmp_path / "my exports" / "v1")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["vocab"] == VOCAB and config["model"]["arch"] == trained.model.config.arch
    assert config["card"]["name"] == "test model" and config["card"]["val_loss"] == 1.25
    if case == "bigram":  # a table: the transformer's settings would describe nothing it has
        assert set(config["model"]) == {"arch", "block_size"}
    assert not {"compile", "zero_init_residual"} & set(config["model"])  # how it trained, not what it is
    loaded = chargpt.load(out)
    assert loaded.tokenizer.chars == VOCAB
    assert loaded.model.config.applicable() == trained.model.config.applicable()
    original, restored = trained.model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    if trained.model.config.tie_weights and case != "bigram":  # the tie survives the round trip
        assert loaded.model.head.weight.data_ptr() == loaded.model.tok_emb.weight.data_ptr()
    assert loaded.generate("the é😀", seed=3, max_new_tokens=40, temperature=0.9) == trained.generate(
        "the é😀", seed=3, max_new_tokens=40, temperature=0.9
    )


# One ONNX export takes seconds: the default run exports a trained run (its greedy text, below),
# the slow run every option's logits.
ONNX_CASES = [pytest.param(c, marks=pytest.mark.slow) for c in CASES]


@pytest.mark.parametrize("case", ONNX_CASES)
def test_onnx_export_matches_pytorch_logits(case: str, tmp_path: Path) -> None:
    trained = small_model(case)
    out = export_model(trained, card(trained), "onnx", tmp_path / "onnx")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.onnx"]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["onnx"] == {"input": "input_ids", "output": "logits", "max_length": 16}
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["chargpt"])
    assert meta["vocab"] == VOCAB
    generator = torch.Generator().manual_seed(1)
    for batch, length in [(1, 1), (1, 7), (3, 5), (2, 16), (5, 11)]:
        ids = torch.randint(0, len(VOCAB), (batch, length), generator=generator)
        (logits,) = session.run(["logits"], {"input_ids": ids.numpy()})
        with torch.inference_mode():
            expected = trained.model(ids)[0]
        assert logits.shape == (batch, length, len(VOCAB))
        torch.testing.assert_close(torch.from_numpy(logits), expected, atol=ATOL, rtol=RTOL)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    from chargpt.cli import train as train_cli

    run = tmp_path_factory.mktemp("export") / "shakespeare run"
    assert run_cli(train_cli.main, *train_args(corpus, run, "logger=none")) == 0
    return run


@pytest.mark.slow  # an ONNX export, then greedy text from onnxruntime in a fresh interpreter: seconds
@pytest.mark.parametrize("source", ["trained run", "random rope model"])
def test_onnx_greedy_text_equals_chargpt_without_pytorch(
    source: str, trained_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "onnx export"
    if source == "trained run":
        assert run_cli(export_cli.main, f"ckpt_path={trained_run}", "format=onnx", f"out={out}") == 0
        trained = chargpt.load(trained_run)
    else:  # large random weights: varied greedy text, where a short training run repeats one character
        trained = small_model("rope-swiglu-layernorm-qknorm-nobias", seed=5)
        export_model(trained, card(trained), "onnx", out)
    prompt, n = "the king and", 60  # past the 16-character context: the window restarts too
    expected = trained.generate(prompt, max_new_tokens=n, temperature=0.0)[0]
    # The script runs with torch made unimportable: an ONNX export needs no PyTorch.
    runner = (
        "import runpy, sys; sys.modules['torch'] = None; "
        f"sys.argv = ['onnx_generate', {str(out)!r}, '--prompt', {prompt!r}, '--max-new-tokens', '{n}']; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == prompt + expected + "\n"
    if source == "trained run":  # the rest runs with the slow set: two more interpreter starts
        return
    assert len(set(expected)) > 2  # not one repeated character
    # A prompt character outside the vocabulary: one error line, nothing printed before it.
    bad = runner.replace(repr(prompt), repr("the kïng"))
    result = subprocess.run([sys.executable, "-c", bad], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "error: characters not in the vocabulary: 'ï'; remove them from --prompt\n"
    # `| head`: the script ends quietly when its reader stops reading.
    long = runner.replace(f"'{n}'", "'100000'")
    proc = subprocess.Popen([sys.executable, "-c", long], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.read(20)
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 141 and stderr == b""
    missing = runner.replace(repr(str(out)), repr(str(tmp_path / "no export")))
    result = subprocess.run([sys.executable, "-c", missing], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'no export'} is not an export folder")


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, Path]:
    """A model and its ONNX export at exports/shakespeare-onnx, as the guide names it: its
    vocabulary has accents and an emoji."""
    trained = small_model("learned-gelu-layernorm-tied")
    home = tmp_path_factory.mktemp("onnx")
    export_model(trained, card(trained), "onnx", home / "exports" / "shakespeare-onnx")
    return trained, home


@pytest.mark.slow  # an ONNX export and its recipe in a new Python: ~3 s
def test_the_guides_onnx_recipe_runs_as_written_where_text_is_not_utf8(
    onnx_export: tuple[TrainedModel, Path], tmp_path: Path
) -> None:
    # The guide's lines of plain Python, copied as they are, run without chargpt or PyTorch and print
    # chargpt's most likely next character: also where the locale's encoding is not UTF-8 (a C
    # locale here, Windows' cp1252 elsewhere), since config.json holds the vocabulary's accents and
    # emoji as UTF-8. `open()` without an encoding read it in the locale's and failed.
    (recipe,) = [code for _, code in fenced_blocks(GUIDE, "python") if "onnxruntime" in code]
    trained, home = onnx_export
    prompt = "café 😀"  # the test vocabulary's letters
    assert '"ROMEO:"' in recipe
    stdout = run_python(recipe.replace('"ROMEO:"', repr(prompt)), home, tmp_path)
    with torch.inference_mode():
        logits = trained.model(torch.tensor([trained.tokenizer.encode(prompt)]))[0]
    assert stdout == VOCAB[int(logits[0, -1].argmax())] + "\n"


# A C locale: a recipe reads config.json (accents, an emoji) as UTF-8 whatever the locale's encoding.
ASCII_LOCALE = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8"}


def run_python(
    code: str, folder: Path, tmp_path: Path, without: tuple[str, ...] = ("torch", "chargpt")
) -> str:
    """`code` run as a script from `folder` in a C locale, with the modules `without` unimportable
    (a recipe for ONNX Runtime needs neither PyTorch nor chargpt); its output."""
    script = tmp_path / "recipe.py"
    script.write_text("".join(f"import sys; sys.modules[{name!r}] = None\n" for name in without) + code,
                      encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-X", "utf8=0", str(script)], cwd=folder, env={**os.environ, **ASCII_LOCALE},
        capture_output=True, text=True, encoding="utf-8", timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_onnx_script_refuses_an_output_that_cannot_write_the_models_characters(
    onnx_export: tuple[TrainedModel, Path],
) -> None:
    # A redirected output on Windows writes cp1252, one in a Latin-1 locale Latin-1: the script
    # printed the prompt, then ended in a traceback at the first character it could not write.
    out = onnx_export[1] / "exports" / "shakespeare-onnx"
    command = [sys.executable, str(SCRIPT), str(out), "--prompt", "café", "--max-new-tokens", "5"]
    result = subprocess.run(command, env={**os.environ, "PYTHONIOENCODING": "ascii"}, capture_output=True,
                            text=True, encoding="utf-8", errors="backslashreplace", timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "error: standard output's encoding (ascii) cannot write the model's characters '\\xe8', '\\xe9', "
        "'\\U0001f600'; set PYTHONIOENCODING=utf-8 (or run python -X utf8) to write UTF-8\n"
    )


@pytest.mark.parametrize(("args", "message"), [
    (["--prompt", ""], "--prompt is empty"),
    (["--max-new-tokens", "-5"], "--max-new-tokens -5 must be >= 0"),
    (["--temperature", "-1"], "--temperature -1.0 must be a finite number >= 0"),
    (["--temperature", "nan"], "--temperature nan must be a finite number >= 0"),
    (["--top-k", "-1"], "--top-k -1 must be >= 0"),
    (["--seed", "-1"], "--seed -1 must be >= 0"),
])
def test_onnx_script_refuses_bad_options_before_loading(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    script = load_script("onnx_generate")
    monkeypatch.setattr(sys, "argv", ["onnx_generate", str(tmp_path / "not read"), *args])
    with pytest.raises(SystemExit) as stop:
        script.main()
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


@pytest.mark.parametrize(("vocab", "start"), [(["\n", "a", "b"], "\n"), (["a", "b"], "a")],
                         ids=["with a newline", "without"])
def test_onnx_script_without_a_prompt_starts_as_chargpt_sample_does(
    vocab: list[str], start: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A model of a text with no newline: the script's "\n" default was refused as not in its vocabulary.
    script = load_script("onnx_generate")
    prompts = []
    monkeypatch.setattr(script, "load", lambda folder: (None, {"vocab": vocab, "model": {"block_size": 8}}))
    monkeypatch.setattr(script, "generate",
                        lambda session, config, prompt, *rest: prompts.append(prompt) or "b")
    monkeypatch.setattr(sys, "argv", ["onnx_generate", "EXPORT"])
    script.main()
    assert prompts == [start] and capsys.readouterr().out == f"{start}b\n"


def _onnx_script_for(prompt: str, vocab: str, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, dict]:
    """scripts/onnx_generate.py run as `onnx_generate EXPORT --prompt PROMPT --max-new-tokens 0` on an
    export whose config holds `vocab` (no model is read): the script and that config."""
    script = load_script("onnx_generate")
    config = {"vocab": sorted(vocab), "model": {"block_size": 16}}
    monkeypatch.setattr(script, "load", lambda folder: (None, config))
    monkeypatch.setattr(sys, "argv", ["onnx_generate", "EXPORT", "--prompt", prompt, "--max-new-tokens", "0"])
    return script, config


@pytest.mark.parametrize(("prompt", "vocab"), [
    ("Cafe\u0301", "Cafeé"),
    ("to be\r\nor not", "\nbenort "),
    ("\u1112\u1161\u11ab\u1100\u116e\u11a8", "한국"),  # 한국 in NFD: six jamo
    ("cafe\u0301\u2126", "cafeé"),  # the Ohm sign is in no writing of this vocabulary
    ("cafe\u0301", "cafe"),  # no 'é' to compose to: the mark itself is unknown
], ids=["NFD accent", "CRLF", "NFD Korean", "unknown character", "unknown mark"])
def test_onnx_script_reads_a_prompt_as_chargpt_sample_does(
    prompt: str, vocab: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The script mirrors CharTokenizer.as_written_here without chargpt; it refused these prompts.
    script, config = _onnx_script_for(prompt, vocab, monkeypatch)
    tokenizer = CharTokenizer(config["vocab"])
    try:
        expected = resolve_prompt(prompt, tokenizer)
    except ConfigError:  # refused: the script gives one error line naming the same characters
        with pytest.raises(SystemExit) as stop:
            script.main()
        unknown = describe_chars(tokenizer.unknown_chars(tokenizer.as_written_here(prompt)[0]))
        assert stop.value.code == 2
        assert capsys.readouterr() == (
            "", f"error: characters not in the vocabulary: {unknown}; remove them from --prompt\n")
        return
    sample_note = capsys.readouterr().err
    script.main()
    out, err = capsys.readouterr()
    assert out == expected + "\n" and expected != prompt
    assert err == sample_note and err.startswith("note: the prompt is read with")


def test_onnx_script_says_a_prompt_longer_than_the_context_is_cut_as_chargpt_sample_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The script fed only the prompt's last block_size characters to the model and said nothing,
    # where chargpt-sample notes it (tests/test_sample_prompt.py asserts the same line).
    for length, said in ((16, False), (17, True)):  # the config's block_size is 16
        script, _ = _onnx_script_for("a" * length, "ab", monkeypatch)
        script.main()
        out, err = capsys.readouterr()
        assert out == "a" * length + "\n"
        note = ("note: the prompt is 17 characters, more than the model's context of 16: "
                "samples continue from its last 16\n")
        assert err == (note if said else ""), err


@pytest.mark.parametrize(("prompt", "vocab"), [("ROMEO:\\nJULIET:", "\nEIJLMORTU:n"), ("a\\tb", "\tabt")],
                         ids=["\\n", "\\t"])
def test_onnx_script_gives_chargpt_samples_advice_for_a_typed_escape(
    prompt: str, vocab: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # `--prompt 'ROMEO:\nJULIET:'` was refused for its backslash with no word of the line break meant,
    # where chargpt-sample names it and bash's $'...' quoting.
    script, config = _onnx_script_for(prompt, vocab, monkeypatch)
    with pytest.raises(ConfigError) as refused:
        resolve_prompt(prompt, CharTokenizer(config["vocab"]))
    advice = " (" + str(refused.value).split(" (", 1)[1]
    with pytest.raises(SystemExit) as stop:
        script.main()
    assert stop.value.code == 2
    assert capsys.readouterr().err == (f"error: characters not in the vocabulary: '\\\\'; remove them from "
                                       f"--prompt{advice.replace('prompt=$', '--prompt $')}\n")


@pytest.mark.parametrize("config", ["[1, 2]", '"model.onnx"', '{"weights": "model.safetensors"}'])
def test_onnx_script_refuses_a_folder_that_is_not_an_onnx_export(
    tmp_path: Path, capsys: pytest.CaptureFixture, config: str
) -> None:
    (tmp_path / "config.json").write_text(config, encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        load_script("onnx_generate").load(tmp_path)
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path} is not an ONNX export (export with format=onnx)\n"


@pytest.mark.slow  # an export of a run, then sampled from: ~3 s
def test_cli_export_of_a_run_carries_its_card_and_serves_chargpt_sample(
    trained_run: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "my exports" / "v1"
    code, stdout, _ = run_main(
        export_cli.main, [f"ckpt_path={trained_run}", f"out={out}"], capsys
    )
    assert code == 0 and f"to {out}" in stdout
    assert not list(out.parent.glob(".*partial*"))  # the staging folder is gone
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert config["card"]["name"] == "shakespeare run"
    assert config["card"]["val_loss"] == pytest.approx(metrics["val_loss"])
    assert config["card"]["step"] == metrics["step"]
    # What it was trained on: the text's file name (never the folders above it: a card is
    # published) and its fingerprint; and the chargpt that wrote the card.
    assert config["card"]["trained_on"] == corpus.name
    assert config["card"]["text_sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert config["card"]["chargpt_version"] == chargpt.__version__
    assert str(corpus.parent) not in (out / "config.json").read_text(encoding="utf-8")
    assert f"| trained on | {corpus.name} (sha256 `{config['card']['text_sha256']}`) |" in (
        out / "README.md").read_text(encoding="utf-8")
    # When it was trained (UTC) and the command that launched it: its text named by the file's name
    # alone, as above (the run named it by its full path), and nothing of Hydra's (hydra.run.dir).
    started, ended = config["card"]["training_started"], config["card"]["training_ended"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", started) and started <= ended
    launched = [a for a in train_args(corpus, trained_run, "logger=none") if not a.startswith("hydra.")]
    command = shlex.join(["chargpt-train", *(f"data.path={corpus.name}" if a.startswith("data.path=") else a
                                            for a in launched)])
    assert config["card"]["command"] == command and config["card"]["resumed_with"] is None
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert f"| trained | {started} to {ended} (UTC) |" in readme
    assert f"| command | `{command}` |" in readme and "fine-tuned from" not in readme
    assert card_for(out, chargpt.load(out)).val_loss == pytest.approx(metrics["val_loss"])
    # chargpt-sample reads the export folder like the checkpoint, with the same text.
    args = ["prompt=The", "max_new_tokens=50", "seed=7", "device=cpu"]
    texts = [run_main(sample_cli.main, [f"ckpt_path={p}", *args], capsys)[1]
             for p in (trained_run, out)]
    assert texts[0] == texts[1] and len(texts[0]) == len("The") + 50 + 1
    # An export converts to the other format.
    assert run_main(export_cli.main, [f"ckpt_path={out}", "format=onnx", f"out={tmp_path / 'o'}"],
                    capsys)[0] == 0


@pytest.mark.slow
def test_a_safetensors_export_scores_and_fine_tunes_as_its_checkpoint(
    trained_run: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from chargpt.cli import eval as eval_cli
    from chargpt.cli import train as train_cli

    out = tmp_path / "export é"
    assert run_main(export_cli.main, [f"ckpt_path={trained_run}", f"out={out}"], capsys)[0] == 0
    scored = []
    # (An export records no arithmetic of its run: it is scored in float32, the checkpoint as its
    # run validated, bf16 products on a CPU with AMX: compared in float32.)
    float32 = ["precision=32-true", "matmul_precision=highest"]
    for source in (trained_run, out):
        args = [f"ckpt_path={source}", f"data.path={corpus}", *float32]
        code, stdout, stderr = run_main(eval_cli.main, args, capsys)
        assert code == 0, stderr
        scored.append(json.loads(stdout.strip().splitlines()[-1])["loss"])
    assert scored[0] == pytest.approx(scored[1], abs=1e-5)
    code, stdout, _ = run_main(eval_cli.main, [f"ckpt_path={out}", f"data.path={corpus}"], capsys)
    result = json.loads(stdout.strip().splitlines()[-1])
    assert (result["precision"], result["matmul_precision"]) == ("32-true", "highest")
    assert result["loss"] == scored[1]
    # An export records no text: it must be named.
    assert "is an export, which does not record the text" in _error(
        run_main(eval_cli.main, [f"ckpt_path={out}"], capsys))
    # init_from an export: the run starts from its weights (its step-0 validation scores them).
    args = [a for a in train_args(corpus, tmp_path / "ft", f"init_from={out}", "logger=none",
                                  "trainer.max_steps=1") if not a.startswith("model.")]
    code, stdout, stderr = run_main(train_cli.main, args, capsys)
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["initial_val_loss"] == pytest.approx(scored[1], abs=1e-3) and metrics["step"] == 1
    # The fine-tune's card names what it started from, by that model's own card; the command names
    # the export by its folder's name only.
    fine_tune = card_for(tmp_path / "ft", chargpt.load(tmp_path / "ft"))
    source = card_for(out, chargpt.load(out)).to_dict()
    source.pop("chargpt_version")
    assert fine_tune.fine_tuned_from == source
    assert (source["name"], source["step"]) == ("shakespeare run", 20)
    assert "'init_from=export é'" in fine_tune.command and str(tmp_path) not in fine_tune.command


def test_an_export_whose_card_records_more_than_this_chargpt_knows_loads(tmp_path: Path) -> None:
    # A later chargpt's card records more (as this one added training dates to the cards before
    # it): such an export was refused whole ("has an unreadable model card; export again").
    trained = small_model("bigram")
    out = export_model(trained, card(trained, "later"), "safetensors", tmp_path / "export")
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config["card"]["carbon_grams"] = 12
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = chargpt.load(out)
    assert card_for(out, loaded) == card(trained, "later") and _same_weights(loaded, trained)


def _export_args(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return [f"ckpt_path={ckpt}", f"out={out}", *extra]


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    trained = small_model("learned-gelu-layernorm-tied")
    path = tmp_path / "model.ckpt"
    torch.save({"hyper_parameters": {"model": trained.model.config.to_dict(), "vocab": VOCAB},
                "state_dict": {f"model.{k}": v for k, v in trained.model.state_dict().items()}}, path)
    return path


def test_chargpt_export_reads_its_checkpoint_once(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The model card was read from a second full load of the checkpoint (its checksums, torch.load).
    loads, original = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a[0]) or original(*a, **k))
    code, out, _ = run_main(export_cli.main, _export_args(ckpt, tmp_path / "out", "name=mine"), capsys)
    assert code == 0 and "exported mine (" in out and len(loads) == 1


def test_an_export_of_a_run_still_training_names_the_step_it_holds(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # It printed "exported run (N parameters)" alone: a run still training had the weights of its
    # latest validation exported, and nothing said which step's they were, or that newer ones came.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    saved = torch.load(ckpt)
    for step in (20, 40):
        torch.save({**saved, "global_step": step}, run / "checkpoints" / f"best-{step:06d}.ckpt")
    torch.save({**saved, "global_step": 40}, run / "checkpoints" / "last.ckpt")
    status = {"status": "running", "pid": os.getpid(), "host": socket.gethostname()}
    (run / "status.json").write_text(json.dumps(status))
    code, out, err = run_main(export_cli.main, _export_args(run, tmp_path / "while training"), capsys)
    assert code == 0 and out.startswith("exported run (") and ", step 40) as safetensors" in out
    assert err.strip() == (f"note: {run} is still training: this export holds its weights at step 40; "
                           "export again once it has ended for its last ones")
    # An earlier checkpoint named on purpose, and a run that has ended, need no note.
    earlier = run / "checkpoints" / "best-000020.ckpt"
    code, out, err = run_main(export_cli.main, _export_args(earlier, tmp_path / "earlier"), capsys)
    assert code == 0 and ", step 20) as safetensors" in out and err == ""
    (run / "status.json").write_text(json.dumps({**status, "status": "finished"}))
    code, out, err = run_main(export_cli.main, _export_args(run, tmp_path / "ended"), capsys)
    assert code == 0 and ", step 40) as safetensors" in out and err == ""


def test_an_export_read_between_a_new_best_and_its_last_checkpoint_still_says_the_run_trains(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A validation writes best-<step>.ckpt, then last.ckpt. An export that read the new best (the
    # run's latest then) while last.ckpt was rewritten found another file the latest afterwards,
    # took the best for an earlier checkpoint picked by name, and said nothing of the training.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    saved = torch.load(ckpt)
    torch.save({**saved, "global_step": 20}, run / "checkpoints" / "last.ckpt")
    os.utime(run / "checkpoints" / "last.ckpt", (1, 1))  # written before the new best
    torch.save({**saved, "global_step": 40}, run / "checkpoints" / "best-000040.ckpt")
    (run / "metrics.json").write_text(json.dumps({"step": 40}))
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid(),
                                                 "host": socket.gethostname()}))
    original = export_cli.load_with_checkpoint

    def last_written_meanwhile(path: str, device: str) -> object:
        loaded = original(path, device)
        torch.save({**saved, "global_step": 40}, run / "checkpoints" / "last.ckpt")
        return loaded

    monkeypatch.setattr(export_cli, "load_with_checkpoint", last_written_meanwhile)
    code, out, err = run_main(export_cli.main, _export_args(run, tmp_path / "export"), capsys)
    assert code == 0 and ", step 40) as safetensors" in out
    assert err.strip() == (f"note: {run} is still training: this export holds its weights at step 40; "
                           "export again once it has ended for its last ones")


@pytest.mark.parametrize("ends", ["after the read", "before the read"])
def test_an_export_of_a_run_that_ends_while_its_checkpoint_is_read_says_so(
    ends: str, ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The run was asked whether it trains after its checkpoint was read: one that wrote its last
    # weights and ended meanwhile read as ended, and its export of older weights said nothing.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    saved = torch.load(ckpt)
    torch.save({**saved, "global_step": 40}, run / "checkpoints" / "last.ckpt")
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid(),
                                                 "host": socket.gethostname()}))
    original = export_cli.load_with_checkpoint

    def run_ends(path: str, device: str) -> object:
        if ends == "before the read":
            torch.save({**saved, "global_step": 60}, run / "checkpoints" / "last.ckpt")
        loaded = original(path, device)
        if ends == "after the read":
            torch.save({**saved, "global_step": 60}, run / "checkpoints" / "last.ckpt")
        (run / "metrics.json").write_text(json.dumps({"step": 60}))
        (run / "status.json").write_text(json.dumps({"status": "finished"}))
        return loaded

    monkeypatch.setattr(export_cli, "load_with_checkpoint", run_ends)
    # (Its checkpoints/ folder names the run as well.)
    code, out, err = run_main(export_cli.main, _export_args(run / "checkpoints", tmp_path / "export"), capsys)
    if ends == "before the read":  # its last weights: nothing to say
        assert code == 0 and ", step 60) as safetensors" in out and err == ""
    else:
        assert code == 0 and ", step 40) as safetensors" in out
        assert err.strip() == (f"note: {run} ended while this export read it: this export holds its "
                               "weights at step 40, not its last ones; export again for them")


@pytest.mark.slow  # an ONNX export and a training command: several seconds
def test_an_export_where_a_run_is_needed_and_lone_weights_are_named_as_such(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Both were "not a readable checkpoint (not a torch zip archive); it may be truncated", or "a
    # folder but not a run directory".
    from chargpt.cli import train as train_cli

    trained = chargpt.load(ckpt)
    folder = export_model(trained, card(trained), "safetensors", tmp_path / "my export")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(VOCAB) * 50, encoding="utf-8")
    for resumed in (folder, folder / "model.safetensors"):
        code, _, err = run_main(train_cli.main, [
            "data=text", f"data.path={corpus}", f"hydra.run.dir={tmp_path / 'run'}", f"ckpt_path={resumed}"
        ], capsys)
        assert code == 2 and f"error: {resumed} is a chargpt export: a model's weights, not a run" in err
        assert f"init_from={folder}" in err
    alone = tmp_path / "elsewhere" / "my model.safetensors"
    alone.parent.mkdir()
    alone.write_bytes((folder / "model.safetensors").read_bytes())
    message = _error(run_main(sample_cli.main, [f"ckpt_path={alone}", "max_new_tokens=3"], capsys))
    assert message == (
        f"error: {alone} holds safetensors weights outside an export folder: chargpt reads such weights "
        "from the folder chargpt-export wrote (model.safetensors beside its config.json); pass that folder"
    )
    # An export converted in place lost its only copy of the weights (overwrite=true replaced them).
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    for source, out in ((folder, folder), (folder / "model.safetensors", f"{folder}/.")):
        args = [f"ckpt_path={source}", f"out={out}", "format=onnx", "overwrite=true"]
        message = _error(run_main(export_cli.main, args, capsys))
        assert "is the export being read" in message and "write to another folder" in message
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    renamed = folder / "copy.safetensors"  # inside the folder, under another name
    renamed.write_bytes((folder / "model.safetensors").read_bytes())
    message = _error(run_main(sample_cli.main, [f"ckpt_path={renamed}"], capsys))
    assert message == f"error: {renamed} is not a file of the export it lies in ({folder}); pass that folder"
    renamed.unlink()
    onnx = export_model(trained, card(trained), "onnx", tmp_path / "onnx export")
    code, _, err = run_main(train_cli.main, [
        "data=text", f"data.path={corpus}", f"hydra.run.dir={tmp_path / 'run2'}", f"ckpt_path={onnx}"
    ], capsys)
    assert code == 2 and f"error: {onnx} is an ONNX export: it runs with ONNX Runtime" in err
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    assert "not a torch zip archive" in _error(run_main(sample_cli.main, [f"ckpt_path={garbage}"], capsys))


def _error(run: tuple[int, str, str]) -> str:
    code, _, stderr = run
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.slow  # several seconds; runs in the slow set (.ci/run)
def test_bad_export_input_is_one_error_line_and_overwrites_nothing(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        return run_main(export_cli.main, list(args), capsys)

    assert "ckpt_path is required" in _error(run(f"out={tmp_path / 'x'}"))
    assert "out is required" in _error(run(f"ckpt_path={ckpt}"))
    message = _error(run(*_export_args(ckpt, tmp_path / "x"), "format=tflite"))
    assert "format='tflite' is not one of safetensors, onnx" in message
    assert "checkpoint not found" in _error(run(*_export_args(tmp_path / "nope.ckpt", tmp_path / "x")))
    assert not (tmp_path / "x").exists()

    busy = tmp_path / "notes"
    busy.mkdir()
    (busy / "todo.txt").write_text("mine")
    (busy / "config.json").write_text("{}")
    message = _error(run(*_export_args(ckpt, busy), "overwrite=true"))
    assert "holds other files (config.json, todo.txt)" in message and "nothing was written" in message
    assert (busy / "todo.txt").read_text() == "mine" and (busy / "config.json").read_text() == "{}"

    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    assert "is a file" in _error(run(*_export_args(ckpt, a_file)))
    assert a_file.read_text() == "keep"

    previous = tmp_path / "previous export"
    assert run(*_export_args(ckpt, previous))[0] == 0
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    assert "already holds an export" in _error(run(*_export_args(ckpt, previous), "format=onnx"))
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    for word in ("no", "off"):  # Hydra's booleans are true and false: other words are refused
        message = _error(run(*_export_args(ckpt, previous), "format=onnx", f"overwrite={word}"))
        assert f"overwrite='{word}' must be true or false" in message
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    # overwrite=true replaces an export (and nothing else): safetensors -> onnx, no stale weights.
    assert run(*_export_args(ckpt, previous), "format=onnx", "overwrite=true")[0] == 0
    assert sorted(p.name for p in previous.iterdir()) == ["README.md", "config.json", "model.onnx"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(*_export_args(ckpt, empty))[0] == 0 and (empty / "model.safetensors").is_file()

    # An export cut short (killed between its moves: weights, no config.json) is replaced as asked;
    # a config.json of the user's own is never taken for an export's.
    short = tmp_path / "cut short"
    short.mkdir()
    (short / "model.safetensors").write_bytes(b"half")
    message = _error(run(*_export_args(ckpt, short)))
    assert "already holds an export cut short (model.safetensors, no config.json)" in message
    assert run(*_export_args(ckpt, short), "overwrite=true")[0] == 0 and chargpt.load(short)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_text("{}")
    assert "holds other files (config.json)" in _error(run(*_export_args(ckpt, theirs), "overwrite=true"))
    assert [p.name for p in theirs.iterdir()] == ["config.json"]


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_an_export_that_finds_no_room_is_one_error_line_and_leaves_nothing(
    fmt: str, ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    if fmt == "safetensors":  # its writer reports I/O errors as its own exception, in Rust's words
        from safetensors import SafetensorError

        def full(*args, **kwargs):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr("safetensors.torch.save_model", full)
    else:
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(export_module, "write_onnx", full)
    out = tmp_path / "exports" / "mine"
    message = _error(run_main(export_cli.main, _export_args(ckpt, out, f"format={fmt}"), capsys))
    assert message == (f"error: cannot write the export to out={out} (No space left on device); free some "
                       "space there, or pick another folder")
    assert list((tmp_path / "exports").iterdir()) == []  # no staged files, no export folder


def test_an_empty_folder_is_filled_as_it_is_wherever_out_names_it(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # A folder the user made keeps its permissions and identity (a shell may stand in it), also
    # when `out` is `.` or a link to it; staging happens beside it, never in it.
    def export(out: str) -> int:
        return run_main(export_cli.main, _export_args(ckpt, Path(out)), capsys)[0]

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    before = private.stat()
    assert export(str(private)) == 0
    after = private.stat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert sorted(p.name for p in private.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "exports" / "latest"
    link.parent.mkdir()
    link.symlink_to(target)
    assert export(str(link)) == 0
    assert link.is_symlink() and chargpt.load(link).tokenizer.chars == VOCAB
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "model.safetensors"]

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert export(".") == 0
    assert sorted(p.name for p in here.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.rglob(".*partial*")]  # no staging folder left anywhere


def test_an_option_a_format_cannot_express_is_named(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    narrowed = {**export_module.SUPPORTED["onnx"], "activation": ("relu",)}
    monkeypatch.setitem(export_module.SUPPORTED, "onnx", narrowed)
    message = _error(run_main(export_cli.main, _export_args(ckpt, tmp_path / "o", "format=onnx"), capsys))
    assert "the onnx export cannot express model.activation='gelu'" in message
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # several seconds; runs in the slow set (.ci/run)
def test_loading_a_damaged_or_onnx_export_is_a_clear_error(ckpt: Path, tmp_path: Path) -> None:
    trained = chargpt.load(ckpt)
    onnx_dir = export_model(trained, card(trained), "onnx", tmp_path / "onnx")
    with pytest.raises(CheckpointError, match=r"is an ONNX export: run its model\.onnx with ONNX Runtime"):
        chargpt.load(onnx_dir)
    folder = export_model(trained, card(trained), "safetensors", tmp_path / "st")
    weights = folder / "model.safetensors"
    assert chargpt.load(weights).tokenizer.chars == VOCAB  # the weights file names its folder too
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="does not hold this model's weights"):
        load_export(folder)
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a readable export config"):
        chargpt.load(folder)
    config = json.loads((onnx_dir / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "format_version": 99}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="export format version 99"):
        chargpt.load(folder)


def test_an_export_folder_is_readable_by_others(ckpt: Path, tmp_path: Path) -> None:
    trained = chargpt.load(ckpt)
    out = export_model(trained, card(trained), "safetensors", tmp_path / "shared")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in out.iterdir())


def test_of_two_exports_to_one_new_folder_at_once_the_later_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second export starts and finishes while the first is still writing its weights: both had
    # found the folder new, yet the first must not replace the second's export without overwrite.
    first, second = small_model("bigram", seed=1), small_model("bigram", seed=2)
    monkeypatch.chdir(tmp_path)
    out = Path("my export")  # the refusal names it as typed, as the one before writing does
    write = export_module.write_safetensors

    def write_while_another_exports(model, path, config):
        if model is first.model:
            export_model(second, card(second), "safetensors", out)
        write(model, path, config)

    monkeypatch.setattr(export_module, "write_safetensors", write_while_another_exports)
    with pytest.raises(export_module.ExportError, match=r"^out=my export already holds an export"):
        export_model(first, card(first), "safetensors", out)
    assert _same_weights(chargpt.load(out), second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my export"]  # no staging folder left
    monkeypatch.setattr(export_module, "write_safetensors", write)  # (undo() would leave tmp_path)
    export_model(first, card(first), "safetensors", out, overwrite=True)  # asked: replaced
    assert _same_weights(chargpt.load(out), first)


@pytest.mark.parametrize("moved", [WEIGHTS["safetensors"], "README.md"])
def test_an_overwrite_stopped_between_its_files_leaves_no_export_of_two_models(
    moved: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C between moving the new weights in and the new config.json: the earlier config.json
    # beside the new weights read as a whole export, with the earlier model's card (and vocabulary).
    # The same after the new README.md: it moves in before config.json, like the weights.
    first, second = small_model("bigram", seed=1), small_model("bigram", seed=2)
    out = tmp_path / "my export"
    out.mkdir()  # a folder the user made: the files go into it one by one
    export_model(first, card(first, "first"), "safetensors", out)
    replace = os.replace

    def stopped_after_the_file(src, dst) -> None:
        replace(src, dst)
        if Path(dst).name == moved:
            raise KeyboardInterrupt

    monkeypatch.setattr(export_module.os, "replace", stopped_after_the_file)
    with pytest.raises(KeyboardInterrupt):
        export_model(second, card(second, "second"), "safetensors", out, overwrite=True)
    monkeypatch.setattr(export_module.os, "replace", replace)
    assert not (out / "config.json").exists()
    with pytest.raises(CheckpointError):  # an export cut short, not the first's card on the second's weights
        chargpt.load(out)
    with pytest.raises(export_module.ExportError, match="already holds an export cut short"):
        export_model(second, card(second, "second"), "safetensors", out)
    export_model(second, card(second, "second"), "safetensors", out, overwrite=True)
    assert _same_weights(chargpt.load(out), second)
    assert "\n# second\n" in (out / "README.md").read_text(encoding="utf-8")


def _same_weights(a: TrainedModel, b: TrainedModel) -> bool:
    ours, theirs = a.model.state_dict(), b.model.state_dict()
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("name", ["2024", "Bard, v2", "Roméo 😀 'v3'"])
def test_a_models_name_is_taken_as_typed(name: str, ckpt: Path, tmp_path: Path, capsys) -> None:
    # A number stays text (an API's model id is a string), and commas, quotes and accents are the name.
    out = tmp_path / "export"
    assert run_cli(export_cli.main, *_export_args(ckpt, out, f"name={name}")) == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["card"]["name"] == name


def test_a_name_typed_in_another_encoding_is_one_error_line(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A Latin-1 terminal's "café" reaches Python as 'caf\udce9': config.json could not hold it (a
    # traceback, exit 1), nor could the server's JSON (every request a 500).
    out = tmp_path / "export"
    message = _error(run_main(export_cli.main, _export_args(ckpt, out, "name=caf\udce9"), capsys))
    assert message.startswith("error: name=caf\\xe9 is not UTF-8 text"), message
    assert not out.exists()


def test_a_default_name_from_a_folder_named_in_another_encoding_is_text(tmp_path: Path) -> None:
    from chargpt.model_card import default_name

    run = tmp_path / os.fsdecode(b"caf\xe9")  # copied from an older system: the name's bytes as they were
    run.mkdir()
    assert default_name(run) == "caf\\xe9"
    default_name(run).encode("utf-8")  # JSON, the card and the API can carry it


def test_out_under_a_file_is_named_as_such(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.txt").write_text("keep")
    message = _error(run_main(export_cli.main, _export_args(ckpt, tmp_path / "notes.txt" / "sub"), capsys))
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in message
    assert (tmp_path / "notes.txt").read_text() == "keep"


def test_a_killed_exports_staging_folder_is_not_listed_as_exported(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # kill -9 leaves it (no cleanup can run); the next export is not confused by it.
    out = tmp_path / "out"
    (out / f"{export_module.STAGING_PREFIX}x1y2").mkdir(parents=True)
    code, stdout, _ = run_main(export_cli.main, _export_args(ckpt, out), capsys)
    assert code == 0 and stdout.strip().endswith(": README.md, config.json, model.safetensors")


def test_the_next_export_removes_what_a_killed_export_left_never_a_live_ones(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # `kill -9` of chargpt-export left its `.export.partial-*` folder (an export's worth of disk) in
    # the output folder forever: each later export left it there too.
    out = tmp_path / "my export é 🙂"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    killed = out / f"{export_module.STAGING_PREFIX}{host}.{dead.pid}-0123456789abcdef"
    live = out / f"{export_module.STAGING_PREFIX}{host}.{os.getppid()}-fedcba9876543210"  # writing now
    elsewhere = out / f"{export_module.STAGING_PREFIX}{host}-other.{dead.pid}-0123456789abcdef"
    for folder in (killed, live, elsewhere):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"half")
    code, stdout, _ = run_main(export_cli.main, _export_args(ckpt, out), capsys)
    assert code == 0, stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [live.name, elsewhere.name, "README.md", "config.json", "model.safetensors"])


def test_a_stop_just_as_the_staging_folder_is_made_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A SIGTERM that landed after the staging folder was made and before its clean-up was in place
    # (seen on a loaded machine) left `.export.partial-*` in the user's folder.
    out = tmp_path / "my export"
    out.mkdir()
    mkdir = os.mkdir

    def then_stopped(path: object, *args: object, **kwargs: object) -> None:
        mkdir(path, *args, **kwargs)  # type: ignore[arg-type]
        if Path(os.fspath(path)).name.startswith(export_module.STAGING_PREFIX):  # type: ignore[arg-type]
            raise KeyboardInterrupt

    trained = small_model("learned-gelu-layernorm-tied")
    monkeypatch.setattr(os, "mkdir", then_stopped)
    with pytest.raises(KeyboardInterrupt):
        export_model(trained, card(trained), "safetensors", out)
    assert list(out.iterdir()) == []


@pytest.mark.slow  # an ONNX export in a subprocess: several seconds
def test_sigterm_during_an_export_leaves_nothing_behind(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "my export"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    command = [sys.executable, "-m", "chargpt.cli.export", *_export_args(ckpt, out), "format=onnx"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    staged = []
    while proc.poll() is None and not staged:  # the staging folder appears before the weights
        staged = list(out.glob(f"{export_module.STAGING_PREFIX}*"))
    assert staged, "the export ended before it staged anything"
    proc.terminate()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and stderr.strip().splitlines()[-1] == "terminated", stderr
    # The folder the user made is kept, empty; or, where a loaded machine let the export finish
    # before the signal landed, it holds the whole export: never its staging folder, never a part.
    left = sorted(p.name for p in out.iterdir())
    assert left in ([], ["README.md", "config.json", "model.onnx"]), left


def test_a_default_name_says_more_than_a_time_or_a_job_number(tmp_path: Path) -> None:
    # A sweep's jobs were exported and served as "0", "1", ...
    from chargpt.model_card import default_name, name_of_checkpoint

    dated = tmp_path / "2026-12-05" / "14-03-22"
    sweep = tmp_path / "lr sweep"
    dated_sweep = tmp_path / "multirun" / "2026-12-05" / "09-00-00"
    for folder in (dated / "checkpoints", sweep / "0" / "checkpoints", dated_sweep / "3"):
        folder.mkdir(parents=True)
    for folder in (sweep, dated_sweep):
        (folder / "multirun.yaml").write_text("hydra: {}\n")
    assert default_name(dated) == "2026-12-05_14-03-22"
    assert name_of_checkpoint(sweep / "0" / "checkpoints" / "last.ckpt") == "lr sweep_0"
    assert default_name(dated_sweep / "3") == "2026-12-05_09-00-00_3"
    assert default_name(tmp_path / "my run") == "my run"


def test_a_ctrl_c_while_torch_loads_its_onnx_exporter_is_an_interrupt(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # torch.onnx wraps an interrupt that lands in its lazy imports in its own export error: the
    # command printed that error's traceback and exited 1.
    def interrupted_export(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise RuntimeError("Failed to export the model with torch.export") from stop

    monkeypatch.setattr(torch.onnx, "export", interrupted_export)
    out = tmp_path / "new export"
    args = [f"ckpt_path={trained_run}", "format=onnx", f"out={out}"]
    code, stdout, stderr = run_main(export_cli.main, args, capsys)
    assert code == 130 and stderr.strip() == "interrupted" and stdout == ""
    assert not out.exists()  # nothing of the export is left


@pytest.mark.parametrize(("val_step", "expected"), [(41, 3.21), (40, None), ("no record", 3.08)])
def test_the_card_gives_a_loss_only_to_the_weights_it_was_measured_on(val_step, expected) -> None:
    # The card (export, serve's /v1/models) gave weights another step's loss: an interruption's
    # checkpoint at step 41 had step 40's, and a run whose last validation (3.21) did not improve
    # had its best one's (3.08, the best checkpoint callback's score).
    from chargpt.model_card import checkpoint_score

    callbacks = {"ModelCheckpoint{'monitor': 'val/loss'}": {"monitor": "val/loss", "current_score": 3.08}}
    if val_step != "no record":  # a checkpoint from before the run's metrics were kept in it
        callbacks["RunMetrics"] = {"val_step": val_step, "val_loss": 3.21, "train_seconds": 1.0}
    assert checkpoint_score({"global_step": 41, "callbacks": callbacks}) == (expected, 41)


@pytest.mark.parametrize(("state", "how"), [("interrupted", "was stopped (Ctrl-C or a signal)"),
                                            ("failed", "failed")])
def test_an_export_of_a_run_stopped_before_it_finished_says_so(
    state: str, how: str, ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A run stopped by Ctrl-C after a few of its steps was exported without a word: "exported run
    # (N parameters, step 11)" alone, as if its training were done.
    run = tmp_path / "my run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({**torch.load(ckpt), "global_step": 11}, run / "checkpoints" / "last.ckpt")
    (run / "status.json").write_text(json.dumps({"status": state}))
    code, out, err = run_main(export_cli.main, _export_args(run, tmp_path / "stopped"), capsys)
    assert code == 0 and ", step 11) as safetensors" in out
    assert err.strip() == (f"note: {run} {how} before it finished: this export holds its weights at step 11; "
                           f"resume it (its chargpt-train command with 'ckpt_path={run}') and export again "
                           "for a trained model")
    # A run that finished, and an export of the stopped run's export, need no note.
    (run / "status.json").write_text(json.dumps({"status": "finished"}))
    code, out, err = run_main(export_cli.main, _export_args(run, tmp_path / "finished"), capsys)
    assert code == 0 and err == ""
    code, out, err = run_main(export_cli.main, _export_args(tmp_path / "stopped", tmp_path / "again"), capsys)
    assert code == 0 and err == ""


def test_chargpt_export_starts_where_the_system_has_no_file_locks(tmp_path: Path) -> None:
    # Windows has no fcntl: export.py imported it unguarded, so chargpt-export could not even start
    # there (the other commands lock nothing on such a system, and go on).
    script = ("import sys; sys.modules['fcntl'] = None\n"
              "import chargpt.cli.export, chargpt.file_locks\n"
              "print(chargpt.file_locks.LOCKING)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr


def test_an_export_is_written_where_the_system_has_no_file_locks(tmp_path: Path, monkeypatch) -> None:
    # Without locks the folder is not opened to lock it (Windows opens no folder): written all the same.
    from chargpt import file_locks

    monkeypatch.setattr(file_locks, "LOCKING", False)
    model = make_checkpoint(tmp_path / "model.ckpt")
    assert run_cli(export_cli.main, f"ckpt_path={model}", f"out={tmp_path / 'exported'}") == 0
    assert chargpt.load(tmp_path / "exported").generate("a", max_new_tokens=2, seed=0)
