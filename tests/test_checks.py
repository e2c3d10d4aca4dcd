"""Typed setting checks: what each accepts, and the one message for what it does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chargpt.checks import TRAINING_SEED_MAX, check_seed, real_number, training_seed, whole_number, yes_no
from chargpt.errors import ConfigError


@pytest.mark.parametrize("value", [True, False])
def test_yes_no_takes_booleans_only(value: bool) -> None:
    assert yes_no("overwrite", value) is value


@pytest.mark.parametrize("value", ["no", "off", "yes", "maybe", 0, 1, None])
def test_yes_no_refuses_words_and_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^overwrite=.* must be true or false$"):
        yes_no("overwrite", value)


def test_whole_number_bounds_and_null() -> None:
    assert whole_number("n", 3, low=1) == 3 and whole_number("n", 1, low=1) == 1  # the bound itself
    assert whole_number("n", None, optional=True) is None
    for bad in ("abc", 2.5, True, 0, None):
        with pytest.raises(ConfigError, match=r"must be a whole number >= 1$"):
            whole_number("n", bad, low=1)
    with pytest.raises(ConfigError, match=r"^n=-2 must be a whole number >= -1, or null$"):
        whole_number("n", -2, low=-1, optional=True)


def test_a_whole_number_typed_as_a_decimal_or_exponent_is_told_how_to_type_it() -> None:
    # Hydra reads trainer.max_steps=1e6 as 1000000.0.
    with pytest.raises(ConfigError, match=r"^trainer.max_steps=1000000.0 must be a whole number >= -1, "
                       r"or null; write it without a decimal point or exponent: trainer.max_steps=1000000$"):
        whole_number("trainer.max_steps", 1e6, low=-1, optional=True)
    # No hint where the whole number is refused too.
    with pytest.raises(ConfigError, match=r"^n=0.0 must be a whole number >= 1$"):
        whole_number("n", 0.0, low=1)


def test_real_number_takes_ints_and_floats_but_not_text_booleans_or_infinities() -> None:
    assert real_number("lr", 3, low=0) == 3.0 and real_number("lr", 1e-3) == 1e-3
    assert real_number("lr", 0, low=0) == 0.0  # the bound itself
    assert real_number("lr", None, optional=True) is None
    for bad in ("abc", True, math.inf, math.nan, -1e-3):
        with pytest.raises(ConfigError, match=r"^lr=.* must be a finite number >= 0$"):
            real_number("lr", bad, low=0)


def test_numpy_numbers_count_as_numbers_and_huge_ints_are_not_finite() -> None:
    assert whole_number("n", np.int64(2), low=1) == 2 and type(whole_number("n", np.int64(2))) is int
    assert real_number("t", np.float32(0.5), low=0) == 0.5
    with pytest.raises(ConfigError, match="must be a finite number"):
        real_number("t", 10**400)


def test_seed_is_any_64_bit_value_torch_takes() -> None:
    assert check_seed("seed", -(2**63)) == -(2**63) and check_seed("seed", 2**64 - 1) == 2**64 - 1
    with pytest.raises(ConfigError, match="outside the 64-bit range"):
        check_seed("seed", 2**64)
    with pytest.raises(ConfigError, match="must be a whole number"):
        check_seed("seed", "abc")
    assert check_seed("seed", None, optional=True) is None  # a fresh seed from the OS
    with pytest.raises(ConfigError, match=r"must be a whole number$"):
        check_seed("seed", None)


def test_a_training_seed_is_one_numpy_takes() -> None:
    # Outside it Lightning warns and trains with seed 0: every such seed would be one run.
    assert training_seed("seed", 0) == 0 and training_seed("seed", TRAINING_SEED_MAX) == TRAINING_SEED_MAX
    for bad in (-1, TRAINING_SEED_MAX + 1):
        with pytest.raises(ConfigError, match=rf"^seed={bad} must be a whole number from 0 to \d+$"):
            training_seed("seed", bad)
