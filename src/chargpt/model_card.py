"""What a served or exported model says about itself: a name, its size, its validation loss; and
an export's README.md, the same card for people, with the recipe for using the export."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import chargpt
from chargpt import shell_words
from chargpt.checkpoints import read_checkpoint, resolve_checkpoint, stored_corpus, training_record
from chargpt.checks import as_utf8
from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import CheckpointError
from chargpt.export_layout import CONFIG_FILE, README_MARKER, WEIGHTS, export_folder_of, read_export_config
from chargpt.inference import TrainedModel, start_prompt
from chargpt.metric_names import VAL_LOSS
from chargpt.overrides import (
    hydra_quoted,
    is_folder_key,
    is_free_text_key,
    is_path_key,
    literal_value,
    override_key,
)
from chargpt.run_layout import CHECKPOINT_DIR, LAST, SWEEP_CONFIG, VAL_STEP, run_dir_of

# Hydra's default run directories are outputs/DATE/TIME: the time alone would be a poor name.
_TIME_NAME = re.compile(r"\d\d-\d\d-\d\d")


@dataclass(frozen=True)
class ModelCard:
    name: str
    params: int
    vocab_size: int
    block_size: int
    arch: str
    val_loss: float | None = None  # of these weights, at the validation that saved them
    step: int | None = None  # training steps behind these weights
    # What it was trained on: the text's file (or folder, glob, dataset) name, never the folders
    # above it (a card is published: a local path says nothing of use, and too much), and the
    # fingerprint a resume checks, which names that exact text.
    trained_on: str | None = None
    text_sha256: str | None = None
    chargpt_version: str | None = None  # that wrote the card
    # When the run began training and when these weights were saved (UTC, ISO 8601), the command
    # that launched it and those that resumed it (files named as trained_on is: no folders), and
    # the card of the model it was fine-tuned from. None: not recorded (a checkpoint from before).
    training_started: str | None = None
    training_ended: str | None = None
    command: str | None = None
    resumed_with: list[str] | None = None
    fine_tuned_from: dict[str, Any] | None = None
    # The arithmetic val_loss was measured in: `precision` (trainer.precision, resolved),
    # `matmul_precision` (torch's float32 products) and `device_type` (cpu, cuda). The same weights
    # score differently in bf16 and in float32. None: not recorded (a checkpoint from before).
    val_arithmetic: dict[str, str] | None = None
    # How the run read its dataset (data=hf): `config`, `split`, `val_split`, `text_field`, so that
    # `data.path=SAVED_DATASET` reads it alike; its name is trained_on. None: not a dataset.
    dataset: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # An API's model id is a string: an export written with name=2024 before names were taken
        # as typed holds the number.
        object.__setattr__(self, "name", str(self.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def running_version() -> str:
    """The version of the chargpt writing a card: chargpt.__version__, where it is written once. The
    installed package's metadata is not: an editable install keeps the version it was installed
    with after __version__ changes, and a source tree run without installing has none."""
    return chargpt.__version__


def default_name(run_dir: Path) -> str:
    """A run's folder name, with its parent's where that alone says little: a dated run's time
    (2026-12-05_14-03-22) and a sweep's job number (lr-sweep_0, not "0")."""
    run_dir = run_dir.resolve()
    if (run_dir.parent / SWEEP_CONFIG).is_file() and run_dir.parent.name:
        name = f"{default_name(run_dir.parent)}_{run_dir.name}"
    elif _TIME_NAME.fullmatch(run_dir.name) and run_dir.parent.name:
        name = f"{run_dir.parent.name}_{run_dir.name}"
    else:
        name = run_dir.name or "chargpt"
    return as_utf8(name)  # a folder named in another encoding: text the card's JSON can hold


def name_of_checkpoint(file: Path) -> str:
    """The run directory's name for a run's checkpoint, else the file's own name (my_model.ckpt)."""
    if file.parent.name == CHECKPOINT_DIR or file.name == LAST:
        return default_name(run_dir_of(file))
    return as_utf8(file.stem)


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def checkpoint_score(ckpt: dict[str, Any]) -> tuple[float | None, int | None]:
    """(validation loss, step) of a checkpoint's weights: the run's latest validation as its
    metrics keep it in the checkpoint (RunMetrics' val_loss at val_step), and no loss when that
    validation was at another step than these weights (a checkpoint written on an interruption,
    steps after it). A checkpoint from before those were kept: the best checkpoint callback's
    score, which is the loss of the validation that saved the file."""
    step = ckpt.get("global_step")
    step = step if isinstance(step, int) else None
    states = [s for s in (ckpt.get("callbacks") or {}).values() if isinstance(s, dict)]
    for state in states:
        if VAL_STEP in state:
            return (_float(state.get("val_loss")) if state[VAL_STEP] == step else None), step
    scores = [_float(s.get("current_score")) for s in states if s.get("monitor") == VAL_LOSS]
    return (scores[-1] if scores else None), step


def weights_step(ckpt: dict[str, Any] | None, file: str | Path) -> int | None:
    """The training steps behind the weights `load_with_checkpoint` read from `file`: the
    checkpoint's (`ckpt`), or an export's card's (`ckpt` None); None where neither records it."""
    return checkpoint_score(ckpt)[1] if ckpt is not None else card_for_export(file).step


# A value that names a file or folder from a machine's root or a user's home (any setting's: a
# logger's save_dir, a trainer's default_root_dir), in POSIX or Windows spelling.
_LOCAL_PATH = re.compile(r"^(?:[/\\~$]|[A-Za-z]:[/\\])")
# A web address (data.url): its user and password, query and fragment are where a private file's
# token goes.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# The elements of a value typed in Hydra's grammar: quoted strings, and the text between a list's
# brackets and commas.
_ELEMENT = re.compile(r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|[^,\[\]'"]+""")


def _published_value(value: str, names_a_file: bool) -> str:
    """One value as a published card shows it: a web address without its user, password, query or
    fragment (a file:// one as a local file), a file or folder by its name alone."""
    if _URL.match(value):
        parts = urlsplit(value)
        if parts.scheme.lower() != "file":
            return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        value, names_a_file = parts.path, True
    if names_a_file or _LOCAL_PATH.match(value):
        return PureWindowsPath(value).name or value  # (\\ or / ends a folder)
    return value


def _published_element(element: str) -> str:
    """An element of a value in Hydra's grammar (_ELEMENT), published: a quoted one read as the
    text it sets, and quoted again when it changes."""
    if element[0] in "'\"":
        text = literal_value(f"x={element}")
        published = _published_value(text, names_a_file=False)
        return element if published == text else hydra_quoted(published)
    text = element.strip()
    return element.replace(text, _published_value(text, names_a_file=False)) if text else element


def _published_word(word: str) -> str:
    """One word of a recorded command as a published card shows it: a file or folder by its name
    alone (as trained_on is), never the folders above it, and a web address without what may give
    access to it. A value the command line takes literally (a path, a prompt) is one value; any
    other is Hydra's text, each element of a quoted value or a list published alone."""
    setting, equals, value = word.partition("=")
    key = override_key(word)
    if not equals or value.lower() in ("", "null"):
        return word
    if is_free_text_key(key) or is_folder_key(key):
        published = _published_value(value, names_a_file=is_path_key(key) or is_folder_key(key))
    else:
        published = _ELEMENT.sub(lambda m: _published_element(m.group(0)), value)
    return f"{setting}={published}"


def _is_tracker_setting(key: str) -> bool:
    """A logger's own setting (not the choice `logger=mlflow`): a tracking server's address, which may
    carry a user and password, a project or an API key. It says nothing of the model."""
    return key.startswith("logger.")


def card_command(words: Any, leave_out: tuple[str, ...] = ()) -> str | None:
    """A command a checkpoint recorded (its words as typed), as one shell line for a published card:
    its paths reduced to names, its trackers' settings and the settings `leave_out` left out. None
    for no command recorded."""
    if not isinstance(words, list) or not words:
        return None
    typed = [str(w) for w in words[1:]]
    kept = [str(words[0])] + [_published_word(w) for w in typed
                              if (key := override_key(w)) not in leave_out and not _is_tracker_setting(key)]
    return as_utf8(shell_words.join(kept))


def _recorded_time(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def card_for_checkpoint(file: Path, ckpt: dict[str, Any], params: int, name: str | None = None) -> ModelCard:
    """The card of checkpoint `file`, read as `ckpt`."""
    val_loss, step = checkpoint_score(ckpt)
    model = ckpt["hyper_parameters"]["model"]
    corpus = stored_corpus(ckpt) or {}
    source = corpus.get("path") or corpus.get("name")
    record = training_record(ckpt)
    # A resume's ckpt_path names the run it continues: the card's own run.
    resumes = [card_command(c, leave_out=("ckpt_path",)) for c in record.get("resumes") or []]
    fine_tuned_from = record.get("fine_tuned_from")
    return ModelCard(
        name=name or name_of_checkpoint(file), params=params,
        vocab_size=len(ckpt["hyper_parameters"]["vocab"]), block_size=int(model.get("block_size", 0)),
        arch=str(model.get("arch", "gpt")), val_loss=val_loss, step=step,
        trained_on=as_utf8(PurePath(str(source)).name) if source else None,
        text_sha256=str(corpus["sha256"]) if corpus.get("sha256") else None,
        chargpt_version=running_version(),
        training_started=_recorded_time(record.get("started")),
        training_ended=_recorded_time(record.get("ended")),
        command=card_command(record.get("command")),
        resumed_with=[r for r in resumes if r] or None,
        fine_tuned_from=fine_tuned_from if isinstance(fine_tuned_from, dict) else None,
        val_arithmetic=recorded_arithmetic(ckpt["hyper_parameters"]) if val_loss is not None else None,
        dataset=dataset_reading(corpus),
    )


# What a run's dataset record holds besides its name and files (paths, left out of a published card).
DATASET_READING = ("config", "split", "val_split", "text_field")


def dataset_reading(corpus: dict[str, Any]) -> dict[str, Any] | None:
    """How a checkpoint's run read its dataset (DATASET_READING), or None for a text."""
    dataset = corpus.get("dataset")
    return {key: dataset.get(key) for key in DATASET_READING} if isinstance(dataset, dict) else None


def recorded_arithmetic(hparams: dict[str, Any]) -> dict[str, str] | None:
    """The arithmetic a checkpoint's run validated in, as it records it; None where it does not."""
    recorded = {key: str(hparams[key]) for key in ("precision", "matmul_precision", "device_type")
                if hparams.get(key)}
    return recorded if "precision" in recorded and "device_type" in recorded else None


def _arithmetic_text(arithmetic: dict[str, Any]) -> str:
    """How a card's loss was measured, as chargpt-eval's settings that score it alike:
    `precision=bf16-mixed matmul_precision=medium` on cpu."""
    settings = " ".join(f"{key}={arithmetic[key]}" for key in ("precision", "matmul_precision")
                        if key in arithmetic)
    return f"{markdown_code(settings)} on {markdown_text(arithmetic.get('device_type'))}"


def card_for_export(folder: str | Path, name: str | None = None) -> ModelCard:
    """The card of an export folder (as export_folder_of found it; load_with_checkpoint's source)."""
    folder = Path(folder)
    card = dict(read_export_config(folder).get("card") or {})
    # What a later chargpt's card records besides these fields is left out (its README shows it):
    # an export stays readable by the chargpt before the one that wrote it.
    known = {f.name for f in fields(ModelCard)}
    try:
        return ModelCard(**{**{k: v for k, v in card.items() if k in known},
                            "name": name or card.get("name") or as_utf8(folder.resolve().name)})
    except TypeError:
        raise CheckpointError(f"{folder / CONFIG_FILE} has an unreadable model card; export again") from None


def card_for(
    path: str | Path, trained: TrainedModel, name: str | None = None, ckpt: dict[str, Any] | None = None
) -> ModelCard:
    """The model card of what `chargpt.load(path)` loaded: from an export's config.json, or from
    the checkpoint (its run directory's name, its validation loss). `ckpt`: the checkpoint already
    read from `path` (`load_with_checkpoint`), so that it is not read again."""
    folder = export_folder_of(path)
    if folder is not None:
        return card_for_export(folder, name)
    file = resolve_checkpoint(path)
    ckpt = read_checkpoint(file) if ckpt is None else ckpt
    return card_for_checkpoint(file, ckpt, trained.model.num_params(), name)


# Markdown in user text (a model's name): characters that would start markup there (emphasis, code,
# links, headings' closing #, raw HTML and entities, table cells, strikethrough, math on the
# Hugging Face Hub) are written escaped: backslashes where CommonMark and Python-Markdown both take
# them, character references for the rest.
_MARKDOWN_ESCAPES = {
    **{c: "\\" + c for c in "\\`*_[]#!"},
    "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "$": "&#36;", "~": "&#126;",
}


def markdown_text(value: object) -> str:
    """`value` as one line of Markdown that renders as the text it is: control characters and line
    breaks as spaces (a name's line break would end a heading or a table row), markup escaped."""
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in str(value))
    return "".join(_MARKDOWN_ESCAPES.get(c, c) for c in text)


def _figure_rows(card: dict[str, Any], model: dict[str, Any]) -> list[tuple[str, str]]:
    """The card's figures as they are in config.json (none made up: a figure it lacks says so)."""
    # As config.json spells them (true, null), not as Python does.
    settings = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in model.items()
                         if key != "arch")
    step, val_loss = card.get("step"), card.get("val_loss")
    rows = [
        ("name", markdown_text(card.get("name", ""))),
        ("architecture", markdown_text(f"{card.get('arch', model.get('arch'))} ({settings})")),
        ("parameters", f"{card['params']:,}"),
        ("vocabulary", f"{card['vocab_size']:,} characters (`vocab` in `{CONFIG_FILE}`, in id order)"),
        ("context", f"{card['block_size']:,} characters"),
        ("training steps", "not recorded" if step is None else f"{step:,}"),
        ("validation loss", "not measured for these weights" if val_loss is None
         else f"{val_loss:.4f} nats per character, on the held-out text of its training run"),
    ]
    if val_loss is not None:
        arithmetic = card.get("val_arithmetic")
        measured = _arithmetic_text(arithmetic) if isinstance(arithmetic, dict) else "not recorded"
        rows.append(("measured in", measured))
    if card.get("trained_on"):
        sha = card.get("text_sha256")
        rows.append(("trained on", markdown_text(card["trained_on"]) + (f" (sha256 `{sha}`)" if sha else "")))
    rows += _training_rows(card)
    if card.get("chargpt_version"):
        rows.append(("written by", f"chargpt {markdown_text(card['chargpt_version'])}"))
    known = {f.name for f in fields(ModelCard)}
    for key, value in card.items():  # what a later card records, shown as it is
        if key not in known:
            text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            rows.append((markdown_text(key), markdown_text(text)))
    return rows


def markdown_code(value: object) -> str:
    """`value` as inline code, which shows it as it is, where a code span can hold it: not a
    backtick (it would end the span), a `|` (it would end a table cell), a line break or another
    control character, or spaces at its ends (a span drops them); else as escaped text."""
    text = str(value)
    if re.search(r"[`|\x00-\x1f\x7f-\x9f\u2028\u2029]", text) or text != text.strip():
        return markdown_text(text)
    return f"`{text}`"


def _training_rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    """When and how the model was trained, as its card recorded it ("not recorded" for a card from
    before training was recorded), and what it was fine-tuned from, when it was."""
    started, ended = card.get("training_started"), card.get("training_ended")
    if started and ended:
        when = f"{markdown_text(started)} to {markdown_text(ended)} (UTC)"
    elif ended:
        when = f"until {markdown_text(ended)} (UTC; its start not recorded)"
    else:
        when = "not recorded"
    command = card.get("command")
    rows = [("trained", when), ("command", markdown_code(command) if command else "not recorded")]
    resumes = [r for r in card.get("resumed_with") or [] if isinstance(r, str)]
    if resumes:
        times = "" if len(resumes) == 1 else f"{len(resumes)} times, the last with "
        rows.append(("resumed with", times + markdown_code(resumes[-1])))
    source = card.get("fine_tuned_from")
    if isinstance(source, dict):
        rows.append(("fine-tuned from", _source_text(source)))
    return rows


def _source_text(source: dict[str, Any]) -> str:
    """The model a fine-tune started from, as its card (kept in the fine-tune's) names it: its
    name (15 training steps on input.txt, validation loss 1.7890; text sha256 `...`)."""
    steps = f"{source['step']:,} training steps" if isinstance(source.get("step"), int) else "trained"
    said = [steps + (f" on {markdown_text(source['trained_on'])}" if source.get("trained_on") else "")]
    if isinstance(source.get("val_loss"), (int, float)):
        said.append(f"validation loss {source['val_loss']:.4f}")
    details = ", ".join(said)
    if source.get("text_sha256"):
        details += f"; text sha256 {markdown_code(source['text_sha256'])}"
    return f"{markdown_text(source.get('name') or 'a model without a name')} ({details})"


def _safetensors_use(prompt: str, model: dict[str, Any]) -> str:
    tied = (
        "\nThe output head shares the token embedding: it is stored once, as `head.weight`\n"
        "(`safetensors.torch.load_model` puts it back in both places)." if model.get("tie_weights") else ""
    )
    return f"""With chargpt and its `export` extra (in chargpt's folder: `pip install -e '.[export]'`;
`chargpt-serve` needs the `serve` extra too), from inside this folder:

```python
import chargpt

model = chargpt.load(".")  # this folder (or its path)
print(model.generate({prompt}, max_new_tokens=200, temperature=0.8, seed=1)[0])
```

```bash
chargpt-sample ckpt_path=. max_new_tokens=200 temperature=0.8
chargpt-serve ckpt_path=.  # a web page at http://127.0.0.1:8000/, an OpenAI-style API at /v1
chargpt-export ckpt_path=. format=onnx out=../onnx-export  # runs without PyTorch or chargpt
```

`chargpt-serve` answers `POST /v1/completions` as OpenAI's completions API does (the `openai`
client works unchanged); a character is a token.

Without chargpt, PyTorch and safetensors give the weights, not the network that uses them:
the tensors are named as the parameters of chargpt's model (`chargpt.model.GPT`).{tied}

```python
from safetensors.torch import load_file

weights = load_file("model.safetensors")
print({{name: tuple(tensor.shape) for name, tensor in weights.items()}})
```

To run the model without chargpt, convert it to ONNX (the last command above) and use its
`README.md` recipe: NumPy and ONNX Runtime only.
"""


def _onnx_use(prompt: str, onnx: dict[str, Any], vocab_size: int) -> str:
    ids, logits, longest = onnx.get("input"), onnx.get("output"), onnx.get("max_length")
    return f"""With NumPy and ONNX Runtime only (`pip install numpy onnxruntime`; no PyTorch, no
chargpt), from inside this folder: this samples 200 characters after the prompt.

```python
import json

import numpy as np
import onnxruntime as ort

config = json.load(open("config.json", encoding="utf-8"))  # UTF-8: the vocabulary may have accents, emoji
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
vocab, block = config["vocab"], config["model"]["block_size"]
prompt = {prompt}  # the text to continue: characters of the vocabulary only
text = [vocab.index(c) for c in prompt]
window, rng = text[-block:], np.random.default_rng(1)
for _ in range(200):
    logits = session.run(["logits"], {{"input_ids": np.array([window], dtype=np.int64)}})[0][0, -1]
    p = np.exp((logits - logits.max()).astype(np.float64) / 0.8)  # temperature 0.8
    window.append(int(rng.choice(len(vocab), p=p / p.sum())))
    text.append(window[-1])
    if len(window) > block:  # chargpt's rule: past the context, the window restarts at its newest half
        window = window[-max(1, block // 2):]
print("".join(vocab[i] for i in text))
```

The graph takes `{ids}` (int64, `[batch, length]`, 1 ≤ length ≤ {longest}) and returns
`{logits}` (float32, `[batch, length, {vocab_size}]`): the scores of the next
character after each position. Where the console's encoding cannot write the vocabulary's
characters (Windows), run Python with `PYTHONIOENCODING=utf-8`. chargpt's
`scripts/onnx_generate.py` does the same with greedy decoding, top-k and its prompt checks.

`chargpt-serve` serves PyTorch weights, not this file: serve the run this model was exported
from, or a safetensors export of it (`chargpt-export ckpt_path=RUN out=DIR`, then
`chargpt-serve ckpt_path=DIR`): a web page and an OpenAI-style completions API.
"""


def export_readme(config: dict[str, Any]) -> str:
    """The README.md of an export whose config.json holds `config` (export.export_config): a
    Hugging Face style model card, its figures those of `config["card"]`, and the recipe for the
    export's own format, which runs as written from inside the folder."""
    card, model = config["card"], config["model"]
    fmt = next(name for name, file in WEIGHTS.items() if file == config["weights"])
    # The prompt chargpt starts from (a new line, else the vocabulary's first character): every
    # model knows it. As a Python literal of ASCII only, whatever the character.
    prompt = ascii(start_prompt(CharTokenizer(config["vocab"])))
    rows = "\n".join(f"| {label} | {value} |" for label, value in _figure_rows(card, model))
    weights = (
        "the weights (no pickle: reading it runs no code)" if fmt == "safetensors"
        else "the network as an ONNX graph, for ONNX Runtime (no PyTorch needed)"
    )
    use = _safetensors_use(prompt, model) if fmt == "safetensors" else _onnx_use(
        prompt, config.get("onnx", {}), card["vocab_size"])
    return f"""---
library_name: chargpt
license: unknown
pipeline_tag: text-generation
tags:
- chargpt
- character-level
- {fmt}
---

{README_MARKER}; an export with overwrite=true
replaces it. Delete this comment to make the file yours: chargpt-export then leaves the folder alone. -->

# {markdown_text(card.get("name", ""))}

A character-level language model trained with chargpt: it reads and writes text one character at
a time, knows only the {card["vocab_size"]:,} characters of its vocabulary, and sees the last
{card["block_size"]:,} characters of its text.

| figure | value |
| --- | --- |
{rows}

**License:** unknown. chargpt does not know the terms of the text this model learned from: set
`license` at the top of this file before sharing it.

## Files

| file | what |
| --- | --- |
| `{CONFIG_FILE}` | UTF-8 JSON: the settings (`model`), the vocabulary (`vocab`), these figures (`card`) |
| `{config["weights"]}` | {weights} |
| `README.md` | this card (loading never reads it) |

## Use it

{use}"""
