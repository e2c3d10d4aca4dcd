"""An export's README.md: a Hugging Face style model card with config.json's figures and, for its
format, the recipe that runs as written; a name's Markdown characters render as typed; a README.md
chargpt did not write is never replaced; loading never reads it."""

from __future__ import annotations

import ast
import html
import json
import re
import shlex
from pathlib import Path

import markdown
import pytest
import yaml
from markdown_it import MarkdownIt

import chargpt
from chargpt.cli import export as export_cli
from chargpt.cli import sample as sample_cli
from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import CheckpointError
from chargpt.export import ExportError, export_config, export_model
from chargpt.inference import TrainedModel
from chargpt.model import ModelConfig, build_model
from chargpt.model_card import ModelCard, card_command, card_for_checkpoint, export_readme
from conftest import fenced_blocks, lacks, run_main
from test_export import NO_EXTRA, VOCAB, _same_weights, card, run_python, small_model

pytestmark = pytest.mark.skipif(lacks("onnxruntime", "onnxscript", "safetensors"), reason=NO_EXTRA)

# What the card's commands run as, in this process.
COMMANDS = {"chargpt-sample": sample_cli.main, "chargpt-export": export_cli.main}
HOSTILE = 'Bard *v2* | <b>x</b> & [l](u) `c` #1 $x$ ~~s~~ _u_ \\ &amp; 😀 "q" \'v3\' C#'


def front_matter(readme: Path) -> dict:
    _, head, _ = readme.read_text(encoding="utf-8").split("---\n", 2)
    return yaml.safe_load(head)


def figures(readme: Path) -> dict[str, str]:
    """The card's table of figures, label -> value as written."""
    rows = re.findall(r"^\| ([a-z ]+) \| (.*) \|$", readme.read_text(encoding="utf-8"), re.M)
    return {label: value for label, value in rows if label not in ("file",)}


def assert_figures_are_config_jsons(folder: Path, fmt: str) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    card_ = config["card"]
    assert front_matter(folder / "README.md") == {
        "library_name": "chargpt", "license": "unknown", "pipeline_tag": "text-generation",
        "tags": ["chargpt", "character-level", fmt],
    }
    shown = figures(folder / "README.md")
    assert int(shown["parameters"].replace(",", "")) == card_["params"]
    assert shown["vocabulary"].startswith(f"{card_['vocab_size']:,} characters")
    assert card_["vocab_size"] == len(config["vocab"])
    assert shown["context"] == f"{card_['block_size']:,} characters"
    assert shown["training steps"] == f"{card_['step']:,}"
    assert shown["validation loss"].startswith(f"{card_['val_loss']:.4f} nats per character")
    assert shown["architecture"].startswith(f"{card_['arch']} (")


def commands(readme: Path) -> dict[str, list[str]]:
    """The card's bash lines, by program: its arguments as a shell splits them."""
    (block,) = [code for _, code in fenced_blocks(readme, "bash")]
    lines = [shlex.split(line, comments=True) for line in block.splitlines()]
    return {words[0]: words[1:] for words in lines if words}


@pytest.mark.slow  # trains, exports and runs the card's recipes: seconds
def test_a_safetensors_exports_card_has_its_figures_and_recipes_that_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # An export was config.json and the weights: nothing told whoever got the folder what it is
    # or how to use it.
    trained = small_model("learned-gelu-layernorm-tied")
    folder = export_model(trained, card(trained, "Roméo 😀 'v3'"), "safetensors", tmp_path / "my model")
    assert_figures_are_config_jsons(folder, "safetensors")
    readme = folder / "README.md"
    assert "\n# Roméo 😀 'v3'\n" in readme.read_text(encoding="utf-8")
    with_chargpt, plain = [code for _, code in fenced_blocks(readme, "python")]
    monkeypatch.chdir(folder)  # "from inside this folder"
    exec(with_chargpt, {})
    expected = trained.generate("\n", max_new_tokens=200, temperature=0.8, seed=1)[0]
    assert capsys.readouterr().out == expected + "\n"
    # The commands, as the shell passes them (chargpt-serve would serve until stopped; the ONNX
    # conversion runs in the ONNX test below).
    programs = commands(readme)
    assert sorted(programs) == ["chargpt-export", "chargpt-sample", "chargpt-serve"]
    assert programs["chargpt-serve"] == ["ckpt_path=."]
    before = sorted(p.name for p in folder.iterdir())
    code, out, err = run_main(COMMANDS["chargpt-sample"], programs["chargpt-sample"], capsys)
    assert code == 0 and len(out) == 1 + 200 + 1, err
    assert sorted(p.name for p in folder.iterdir()) == before  # it writes nothing into the export
    # PyTorch and safetensors alone: the stored tensors, the tied head once, as head.weight.
    stored = ast.literal_eval(run_python(plain, folder, tmp_path, without=("chargpt",)))
    tensors = {k: tuple(v.shape) for k, v in trained.model.state_dict().items() if k != "tok_emb.weight"}
    assert stored == tensors and "head.weight" in stored


@pytest.mark.slow  # an ONNX export and two runs of its recipe: ~5 s
def test_an_onnx_exports_card_has_its_figures_and_a_recipe_without_pytorch_or_chargpt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    trained = small_model("learned-gelu-layernorm-tied")  # its 16-character context: the window restarts
    folder = export_model(trained, card(trained), "safetensors", tmp_path / "my model")
    monkeypatch.chdir(folder)
    # The ONNX export made by the safetensors card's own command.
    args = commands(folder / "README.md")["chargpt-export"]
    code, _, err = run_main(COMMANDS["chargpt-export"], args, capsys)
    assert code == 0, err
    onnx = tmp_path / "onnx-export"
    assert sorted(p.name for p in onnx.iterdir()) == ["README.md", "config.json", "model.onnx"]
    assert_figures_are_config_jsons(onnx, "onnx")
    (recipe,) = [code for _, code in fenced_blocks(onnx / "README.md", "python")]
    text = run_python(recipe, onnx, tmp_path)
    assert text.startswith("\n") and len(text) == 1 + 200 + 1 and set(text) <= set(VOCAB)
    # Greedy in place of its draw: chargpt's greedy text, character for character (its context rule).
    draw = "int(rng.choice(len(vocab), p=p / p.sum()))"
    assert draw in recipe
    greedy = run_python(recipe.replace(draw, "int(np.argmax(logits))"), onnx, tmp_path)
    assert greedy == "\n" + trained.generate("\n", max_new_tokens=200, temperature=0.0)[0] + "\n"


def test_a_card_without_a_loss_or_steps_says_so_and_starts_from_the_vocabularys_first_character() -> None:
    # A model whose text has no newline: the recipes start from its first character, whatever it is.
    vocab = ["😀", "a", "b"]
    model = build_model(ModelConfig(arch="bigram", block_size=8), len(vocab))
    trained = TrainedModel(model, CharTokenizer(vocab))
    unmeasured = ModelCard("m", trained.model.num_params(), len(vocab), 8, "bigram", val_loss=None, step=None)
    readme = export_readme(export_config(trained, unmeasured, "safetensors"))
    rows = dict(re.findall(r"^\| ([a-z ]+) \| (.*) \|$", readme, re.M))
    assert rows["validation loss"] == "not measured for these weights"
    assert rows["training steps"] == "not recorded"
    # A checkpoint written before runs recorded their training: no date, no command.
    assert rows["trained"] == rows["command"] == "not recorded"
    assert "resumed with" not in rows and "fine-tuned from" not in rows
    assert "model.generate('\\U0001f600', max_new_tokens=200" in readme


def _rendered_text(tokens: list, index: int) -> str:
    """The text of the inline token at `index`, which must be plain text (no markup of any kind)."""
    children = tokens[index].children
    assert [c.type for c in children] == ["text"], children
    return children[0].content


@pytest.mark.parametrize("name", [HOSTILE, "two\nlines\u2028here", "<!-- x -->", "# ## #", "- [ ] 1. > q"])
def test_a_models_name_renders_as_typed_in_its_card(name: str) -> None:
    # The name is the user's text: in Markdown its *, |, <, & and ` would be emphasis, a table
    # column, HTML, entities and code. Its line breaks are spaces (they would end the heading).
    trained = small_model("bigram")
    config = export_config(trained, card(trained, name), "onnx")
    # What a later card may record (here a training file's path, with spaces and accents) is shown
    # as it is, escaped the same way.
    text = {"path": f"corpus/{name} é.txt"}
    config["card"]["text"] = text
    body = export_readme(config).split("---\n", 2)[2]
    expected = re.sub(r"[\n\u2028]", " ", name).strip()
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(body)
    heading = next(i for i, t in enumerate(tokens) if t.type == "heading_open") + 1
    assert _rendered_text(tokens, heading) == expected

    def cell(label: str) -> int:
        return next(i for i, t in enumerate(tokens) if t.type == "inline" and t.content == label) + 3

    assert _rendered_text(tokens, cell("name")) == expected
    assert _rendered_text(tokens, cell("text")) == re.sub("\u2028", " ", json.dumps(text, ensure_ascii=False))
    # Python-Markdown too (with its tables): the heading's text, markup-free.
    rendered = markdown.markdown(body, extensions=["tables"])
    (title,) = re.findall(r"<h1>(.*?)</h1>", rendered)
    assert "<" not in title.replace("&lt;", "") and html.unescape(title) == expected


def test_a_recorded_command_names_files_and_folders_by_their_names_alone() -> None:
    # A card is published: the folders of the machine that trained it say nothing of use, and too
    # much (the user's name). Whatever the setting, a path from a root or a home keeps its name only.
    words = ["chargpt-train", "data=text", "data.path=/home/me/corpora/my text.txt", "init_from=~/runs/base",
             "+trainer.default_root_dir=/srv/me/x", r"data.val_path=C:\Users\me\val.txt", "data.name=null",
             "paths.output_root=${oc.env:HOME}/out", "sample.prompt=a/b", "optimizer.lr=1e-3",
             "logger=mlflow", "logger.tracking_uri=https://me:secret@mlflow.example.org",
             "+logger.tags.team=me", "ckpt_path=/home/me/outputs/run"]
    # A tracker's settings (its server, with a password in it here) are left out; its choice is kept.
    assert card_command(words, leave_out=("ckpt_path",)) == (
        "chargpt-train data=text 'data.path=my text.txt' init_from=base +trainer.default_root_dir=x "
        "data.val_path=val.txt data.name=null paths.output_root=out sample.prompt=a/b optimizer.lr=1e-3 "
        "logger=mlflow")
    assert card_command(words[:1] + words[-1:]) == "chargpt-train ckpt_path=run"
    assert card_command(None) is None and card_command([]) is None


@pytest.mark.parametrize(("typed", "published"), [
    # A private text's address: its user and password, and a signed query, were published as typed.
    ("data.url='https://me:s3cret@corpora.example.org/a/input.txt?sig=abc#x'",
     "data.url='https://corpora.example.org/a/input.txt'"),
    ("data.url=https://corpora.example.org/input.txt", "data.url=https://corpora.example.org/input.txt"),
    ("data.url=file:///home/me/input.txt", "data.url=input.txt"),
    # A value quoted for Hydra (as its error asks for a space), or a list: its paths were published whole.
    ("data.cache_dir='/home/me/my cache'", "data.cache_dir='my cache'"),
    ('trainer.default_root_dir="/home/me/x y"', "trainer.default_root_dir='x y'"),
    ("data.data_files=[/home/me/a.txt,'/home/me/b c.txt',rel/d.txt]",
     "data.data_files=[a.txt,'b c.txt',rel/d.txt]"),
    ("data.data_files='/home/me/corpus/*.txt'", "data.data_files='*.txt'"),
])
def test_a_recorded_command_publishes_no_password_and_no_folder_in_any_spelling(
    typed: str, published: str
) -> None:
    assert card_command(["chargpt-train", typed]) == shlex.join(["chargpt-train", published])


def test_a_card_names_the_chargpt_that_writes_it_as_its_version_is_written(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # The version is written once, chargpt.__version__: the card read the installed metadata, which
    # an editable install keeps from the day it was installed (a version raised since: the old one).
    monkeypatch.setattr(chargpt, "__version__", "9.9.9")
    ckpt = {"hyper_parameters": {"model": {"arch": "bigram", "block_size": 8}, "vocab": list("ab")},
            "global_step": 3}
    card = card_for_checkpoint(Path("run") / "checkpoints" / "last.ckpt", ckpt, params=4)
    assert card.chargpt_version == "9.9.9"
    trained = small_model("bigram")
    config = export_config(trained, card, "safetensors")
    assert config["card"]["chargpt_version"] == "9.9.9"
    assert "| written by | chargpt 9.9.9 |" in export_readme(config)


def _cell_text(tokens: list, label: str) -> str:
    """The rendered text of the table cell after `label`'s: plain text and inline code only."""
    index = next(i for i, t in enumerate(tokens) if t.type == "inline" and t.content == label) + 3
    children = tokens[index].children
    assert {c.type for c in children} <= {"text", "code_inline"}, children
    return "".join(c.content for c in children)


@pytest.mark.parametrize("command", ["chargpt-train model=tiny 'data.path=my text.txt'",
                                     "chargpt-train 'sample.prompt=a | `b` <i>x</i> &amp; *c*'"])
def test_when_and_how_a_model_was_trained_renders_as_recorded(command: str) -> None:
    trained = small_model("bigram")
    config = export_config(trained, card(trained), "safetensors")
    source = {"name": "base *v1*", "step": 3000, "trained_on": "input.txt", "text_sha256": "ab" * 32,
              "val_loss": 1.5}
    resumes = [f"{command} trainer.max_steps=9", f"{command} seed=2"]
    config["card"].update(training_started="2026-12-05T14:03:22Z", training_ended="2026-12-06T01:00:00Z",
                          command=command, resumed_with=resumes, fine_tuned_from=source)
    body = export_readme(config).split("---\n", 2)[2]
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(body)
    assert _cell_text(tokens, "trained") == "2026-12-05T14:03:22Z to 2026-12-06T01:00:00Z (UTC)"
    assert _cell_text(tokens, "command") == command
    assert _cell_text(tokens, "resumed with") == f"2 times, the last with {command} seed=2"
    assert _cell_text(tokens, "fine-tuned from") == (
        f"base *v1* (3,000 training steps on input.txt, validation loss 1.5000; text sha256 {'ab' * 32})")
    # A command a code span can hold is one (not where its | would end the table's cell).
    assert ("`" + command + "`" in body) == ("|" not in command)
    # Python-Markdown's table shows the same text.
    rendered = markdown.markdown(body, extensions=["tables"])
    cells = re.findall(r"<td>(.*?)</td>", rendered)
    shown = html.unescape(re.sub(r"</?code>", "", cells[cells.index("command") + 1]))
    assert shown == command


def test_a_readme_chargpt_did_not_write_is_never_replaced_and_its_own_is(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    first, second = small_model("bigram", seed=1), small_model("bigram", seed=2)
    # A folder holding someone's README.md: refused, overwrite or not (as their config.json is).
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "README.md").write_text("# my notes\n", encoding="utf-8")
    for overwrite in (False, True):
        with pytest.raises(ExportError, match=r"holds other files \(README\.md\); nothing was written"):
            export_model(first, card(first), "safetensors", theirs, overwrite=overwrite)
    assert [p.name for p in theirs.iterdir()] == ["README.md"]
    assert (theirs / "README.md").read_text(encoding="utf-8") == "# my notes\n"
    # An export's own card, edited (its marker kept): replaced with overwrite=true, like its files.
    out = export_model(first, card(first, "first"), "safetensors", tmp_path / "export")
    edited = (out / "README.md").read_text(encoding="utf-8") + "\nMy notes.\n"
    (out / "README.md").write_text(edited, encoding="utf-8")
    with pytest.raises(ExportError, match="already holds an export"):
        export_model(second, card(second, "second"), "safetensors", out)
    export_model(second, card(second, "second"), "safetensors", out, overwrite=True)
    assert "\n# second\n" in (out / "README.md").read_text(encoding="utf-8")
    # The card made the user's own (its marker comment deleted): kept, and the export refused.
    mine = re.sub(r"<!--.*?-->\n", "", (out / "README.md").read_text(encoding="utf-8"), flags=re.S)
    (out / "README.md").write_text(mine, encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    source = export_model(first, card(first), "safetensors", tmp_path / "source")
    code, stdout, stderr = run_main(export_cli.main, [f"ckpt_path={source}", f"out={out}", "overwrite=true"],
                                    capsys)
    assert code == 2 and stdout == "" and stderr == (
        f"error: out={out} is a folder that holds other files (README.md); nothing was written: pass a new "
        "or empty folder\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # An export from before cards: overwrite=true adds one.
    (out / "README.md").unlink()
    export_model(first, card(first, "first"), "safetensors", out, overwrite=True)
    assert "\n# first\n" in (out / "README.md").read_text(encoding="utf-8")


def test_loading_never_reads_the_card(tmp_path: Path) -> None:
    trained = small_model("learned-gelu-layernorm-tied")
    out = export_model(trained, card(trained), "safetensors", tmp_path / "export")
    (out / "README.md").write_bytes(b"\xff\xfe not text, not a card")
    loaded = chargpt.load(out)
    assert loaded.tokenizer.chars == VOCAB and _same_weights(loaded, trained)
    # Named as the model: the card is not one (it was "not a file of the export it lies in").
    message = f"{out / 'README.md'} is the model card of the export it lies in ({out}), not a model; pass "
    with pytest.raises(CheckpointError, match=re.escape(message + "that folder")):
        chargpt.load(out / "README.md")
