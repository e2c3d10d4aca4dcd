"""Part: one piece of a corpus (a file, or a dataset split), its text streamed in chunks; the one
sha256 of a corpus's parts and the settings that change its ids; and the error for a part whose
text, as read, is not the one its sha256 identifies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from chargpt.errors import DataError


@dataclass(frozen=True)
class Part:
    """One piece of the corpus: its name (in messages and the fingerprint), its content identity,
    and its text as (chunk, progress units) pairs; `size` is the total of those units."""

    name: str
    sha256: str
    chunks: Callable[[], Iterator[tuple[str, int]]] = field(compare=False, repr=False)
    size: int
    starts_file: bool = True  # a leading byte-order mark is dropped
    # A dataset split's identity as versions before the change of 2026-12-05 gave it (from datasets'
    # fingerprint): checkpoints they wrote still resume on the unchanged split (CharText.earlier_sha256).
    earlier_sha256: str | None = field(default=None, compare=False)


def identity(parts: list[Part], settings: dict[str, Any]) -> str:
    """One sha256 for the parts in order and the settings that change the ids."""
    record = {"parts": [[p.name, p.sha256] for p in parts], **settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def changed_while_read(name: str, how: str = "it was written to after its sha256 was taken") -> DataError:
    """A part's text read other than its sha256 says (a file written to while it was read): its
    ids would be cached, and its run recorded, under the identity of another text."""
    return DataError(f"{name} changed while it was read ({how}); run again once nothing writes to it")
