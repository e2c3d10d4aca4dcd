"""The name a misspelt one meant, for an error's "did you mean"."""

from __future__ import annotations

import pytest

from chargpt.spelling import nearest_name

TRAINER = ["gradient_clip_val", "gradient_clip_algorithm", "max_steps", "min_steps", "detect_anomaly"]


@pytest.mark.parametrize(("typed", "meant"), [
    ("gradient_clip_algo", "gradient_clip_algorithm"),  # cut short: difflib alone ranked _val first
    ("gradient_clip_value", "gradient_clip_val"),  # one held in the typed name
    ("max_step", "max_steps"),
    ("detect_anomalie", "detect_anomaly"),  # neither holds the other: the closest
    ("limit_val_batches", None),  # none close
])
def test_the_name_meant_is_the_close_one_that_holds_or_is_held_in_the_typed_one(typed, meant) -> None:
    assert nearest_name(typed, TRAINER) == meant


def test_a_short_name_held_in_a_far_one_is_not_offered() -> None:
    # Containment only reorders the close names: "clip" is in both, and close to neither.
    assert nearest_name("clip", TRAINER) is None


def test_a_name_held_in_the_typed_one_does_not_beat_a_closer_one() -> None:
    # "muon" is held in "muon_shrt": it was offered for optimizer=muon_shrt, not muon_short.
    assert nearest_name("muon_shrt", ["adamw", "muon", "muon_short"]) == "muon_short"
