"""A callback's fixed prompt (a sample's, the attention maps') on the text a run trains on."""

from __future__ import annotations

import logging

from chargpt.data.tokenizer import CharTokenizer, describe_chars
from chargpt.distributed import is_rank_zero

log = logging.getLogger(__name__)

_SAID: set[tuple[str, str, str]] = set()  # (callback, prompt, vocabulary) already reported


def known_prompt(prompt: str, tokenizer: CharTokenizer, what: str) -> str:
    """The prompt without characters the vocabulary lacks (any corpus can be trained on); says
    so in one plain line, once, not at every validation."""
    prompt = tokenizer.as_written_here(prompt)[0]  # (an accent given as a combining mark is composed)
    unknown = tokenizer.unknown_chars(prompt)
    if unknown:
        key = (what, prompt, "".join(tokenizer.chars))
        if key not in _SAID:
            _SAID.add(key)
            if is_rank_zero():  # (chargpt's logger: the line is in train.log, as the console's are)
                log.info("%s: leaving out of its prompt the characters this text lacks: %s", what,
                         describe_chars(unknown))
        prompt = "".join(c for c in prompt if c not in unknown)
    return prompt or tokenizer.chars[0]
