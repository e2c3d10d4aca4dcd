"""Generate text from a chargpt ONNX export with ONNX Runtime and NumPy only (no PyTorch, no chargpt).

    python scripts/onnx_generate.py EXPORT_DIR --prompt "ROMEO:" --max-new-tokens 200
    python scripts/onnx_generate.py EXPORT_DIR --prompt "ROMEO:" --temperature 0.8 --top-k 10 --seed 1

Greedy decoding (--temperature 0, the default) gives chargpt's greedy text. It follows chargpt's
context rule: the model sees the last block_size characters, and when the text outgrows that
window, the window restarts at the newest block_size // 2 characters; a prompt longer than the
context gets chargpt-sample's note (the model reads its last block_size characters alone). Sampling
draws from NumPy's generator, so its text differs from chargpt-sample's for the same seed. The
prompt is read as chargpt-sample reads it: Windows line endings and accents or Korean syllables
written as separate code points are rewritten the vocabulary's way, with a note, when that leaves
no unknown character.
A standard output whose encoding cannot write the vocabulary is refused (PYTHONIOENCODING=utf-8).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import unicodedata
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
import onnxruntime as ort


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load(folder: Path) -> tuple[ort.InferenceSession, dict]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail(f"{folder} is not an export folder (no readable config.json); export one with "
             "chargpt-export ckpt_path=RUN format=onnx out=DIR")
    if not isinstance(config, dict) or config.get("weights") != "model.onnx":
        fail(f"{folder} is not an ONNX export (export with format=onnx)")
    return ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"]), config


def _is_combining(char: str) -> bool:
    """A combining mark: an accent written after its letter, as decomposed (NFD) text has them."""
    return unicodedata.category(char).startswith("M")


def _continues_a_character(char: str) -> bool:
    """A combining mark, or a Hangul vowel or final consonant written as a jamo of its own (NFD
    Korean): part of the character before it."""
    return _is_combining(char) or 0x1160 <= ord(char) <= 0x11FF


def describe(chars: Iterable[str], limit: int = 10) -> str:
    """Characters as chargpt names them: a combining mark printed alone would join the quote before
    it, so it is named by its code point."""
    chars = sorted(set(chars))
    shown = ", ".join(f"'\\u{ord(c):04x}'" if _is_combining(c) else repr(c) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


def as_written_here(text: str, vocab: Collection[str]) -> tuple[str, list[str]]:
    """Mirrors chargpt's CharTokenizer.as_written_here (this script imports no chargpt), so that a
    prompt chargpt-sample takes is taken here too: Windows line endings as '\\n', an accented letter
    or Korean syllable given as separate code points composed (NFC; only where a character is
    unknown, so the known ones stay as they are). Returns the text and what was done, in words."""
    known = set(vocab)
    unknown, done = set(text) - known, []
    if "\r" in unknown and "\n" in known:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        done.append("its line endings as '\\n'")
    if any(_continues_a_character(c) for c in unknown):
        clusters: list[str] = []
        for char in text:
            if clusters and _continues_a_character(char):
                clusters[-1] += char
            else:
                clusters.append(char)
        composed = [unicodedata.normalize("NFC", c) if set(c) - known else c for c in clusters]
        if composed != clusters:
            text = "".join(composed)
            done.append("its accents and syllables composed (NFC)")
    return text, done


def read_prompt(prompt: str, vocab: Collection[str]) -> str:
    """The prompt as chargpt-sample reads it: rewritten the vocabulary's way, with a note on stderr
    when that leaves no unknown character (else generate refuses it, naming what is still unknown
    as written so: 'é', not the combining accent of 'e' + U+0301)."""
    written, done = as_written_here(prompt, vocab)
    if done and not set(written) - set(vocab):
        print(f"note: the prompt is read with {' and '.join(done)}, as the model's vocabulary writes them",
              file=sys.stderr)
    return written


# What `\n` and `\t` typed in a prompt were meant to be.
ESCAPES = {"\\n": ("\n", "line break"), "\\t": ("\t", "tab")}


def escape_hint(prompt: str, vocab: Collection[str]) -> str:
    r"""Mirrors chargpt-sample's advice for a prompt refused for its backslash, holding `\n` or `\t`:
    the shell passes those as two characters, not as the line break or tab meant, which the
    vocabulary has."""
    if "\\" in vocab:
        return ""
    for typed, (char, name) in ESCAPES.items():
        if typed in prompt and char in vocab:
            return (f" ({typed} is a backslash and a letter, not a {name}: bash's $'...' quoting reads "
                    f"\\n and \\t as meant, --prompt $'ROMEO:\\nJULIET:')")
    return ""


def check_output(vocab: Collection[str]) -> None:
    """Refuse, before any text, a standard output whose encoding cannot write every character the
    model may generate (a redirected output on Windows is cp1252; a Latin-1 locale): else a
    traceback would end the text halfway."""
    encoding, errors = sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict"
    unwritable = []
    for char in vocab:
        try:
            char.encode(encoding, errors)
        except UnicodeEncodeError:
            unwritable.append(char)
    if unwritable:
        fail(f"standard output's encoding ({encoding}) cannot write the model's characters "
             f"{describe(unwritable)}; set PYTHONIOENCODING=utf-8 (or run python -X utf8) to write UTF-8")


def generate(
    session: ort.InferenceSession, config: dict, prompt: str, max_new_tokens: int,
    temperature: float = 0.0, top_k: int | None = None, seed: int | None = None,
) -> Iterator[str]:
    """The characters after `prompt`, one at a time; a prompt character outside the vocabulary is
    a ValueError here, before the first one."""
    index = {ch: i for i, ch in enumerate(config["vocab"])}
    if unknown := set(prompt) - index.keys():
        raise ValueError(f"characters not in the vocabulary: {describe(unknown)}")
    return _continue(session, config, [index[ch] for ch in prompt], max_new_tokens, temperature, top_k, seed)


def _continue(
    session: ort.InferenceSession, config: dict, ids: list[int], max_new_tokens: int,
    temperature: float, top_k: int | None, seed: int | None,
) -> Iterator[str]:
    vocab: list[str] = config["vocab"]
    block = config["model"]["block_size"]
    keep = max(1, block // 2)
    window = ids[-block:]
    rng = np.random.default_rng(seed)
    for _ in range(max_new_tokens):
        logits = session.run(["logits"], {"input_ids": np.array([window], dtype=np.int64)})[0][0, -1]
        if temperature == 0:
            token = int(np.argmax(logits))
        else:
            logits = logits.astype(np.float64) / temperature
            if top_k:
                logits[logits < np.sort(logits)[-min(top_k, logits.size)]] = -np.inf
            probs = np.exp(logits - logits.max())
            token = int(rng.choice(logits.size, p=probs / probs.sum()))
        window.append(token)
        if len(window) > block:
            window = window[-keep:]
        yield vocab[token]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export_dir", type=Path)
    p.add_argument("--prompt", default=None,
                   help="default: a new line, or the vocabulary's first character for a text without one")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    if args.prompt == "":
        fail("--prompt is empty; give at least one character")
    if args.max_new_tokens < 0:
        fail(f"--max-new-tokens {args.max_new_tokens} must be >= 0")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        fail(f"--temperature {args.temperature} must be a finite number >= 0 (0 = greedy)")
    if args.top_k is not None and args.top_k < 0:
        fail(f"--top-k {args.top_k} must be >= 0 (0 = off)")
    if args.seed is not None and args.seed < 0:
        fail(f"--seed {args.seed} must be >= 0 (NumPy's seeds)")
    session, config = load(args.export_dir)
    check_output(config["vocab"])
    if args.prompt is None:  # as chargpt-sample starts (any text can be trained on, one without newlines too)
        args.prompt = "\n" if "\n" in config["vocab"] else config["vocab"][0]
    args.prompt = read_prompt(args.prompt, config["vocab"])
    options = (args.temperature, args.top_k, args.seed)
    try:
        characters = generate(session, config, args.prompt, args.max_new_tokens, *options)
    except ValueError as err:  # before the prompt is printed
        fail(f"{err}; remove them from --prompt{escape_hint(args.prompt, config['vocab'])}")
    if len(args.prompt) > (context := config["model"]["block_size"]):  # as chargpt-sample notes it
        print(f"note: the prompt is {len(args.prompt):,} characters, more than the model's context of "
              f"{context}: samples continue from its last {context}", file=sys.stderr)
    try:
        print(args.prompt, end="", flush=True)
        for ch in characters:
            print(ch, end="", flush=True)
        print()
    except BrokenPipeError:  # `| head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(141)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
