"""Digit-pattern measurements of one phone number, given as a tuple of ints.

Every function takes the digits of a number (or a slice of them) and returns an int, so
that each one can be checked by hand on a few numbers.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

Digits = Sequence[int]


def longest_run(digits: Digits) -> int:
    """Return the length of the longest block of one repeated digit (1 for 1212)."""
    return _longest_step_run(digits, step=0)


def longest_ascending(digits: Digits) -> int:
    """Return the length of the longest block that counts up by one, such as 3456."""
    return _longest_step_run(digits, step=1)


def longest_descending(digits: Digits) -> int:
    """Return the length of the longest block that counts down by one, such as 9876."""
    return _longest_step_run(digits, step=-1)


def tail_run(digits: Digits, *, step: int = 0) -> int:
    """Return the length of the block at the end whose digits change by ``step`` each."""
    length = 1
    for index in range(len(digits) - 1, 0, -1):
        if digits[index] - digits[index - 1] != step:
            break
        length += 1
    return length


def _longest_step_run(digits: Digits, *, step: int) -> int:
    best = current = 1
    for previous, digit in itertools.pairwise(digits):
        current = current + 1 if digit - previous == step else 1
        best = max(best, current)
    return best


def count_steps(digits: Digits, *, step: int) -> int:
    """Return how many adjacent pairs differ by ``step`` (0 counts doubles such as 55)."""
    return sum(1 for a, b in itertools.pairwise(digits) if b - a == step)


def max_ngram_repeat(digits: Digits, size: int) -> int:
    """Return how often the most frequent block of ``size`` digits occurs (overlapping)."""
    grams = Counter(tuple(digits[i : i + size]) for i in range(len(digits) - size + 1))
    return max(grams.values(), default=0)


def repeated_ngrams(digits: Digits, size: int) -> int:
    """Return how many distinct blocks of ``size`` digits occur at least twice."""
    grams = Counter(tuple(digits[i : i + size]) for i in range(len(digits) - size + 1))
    return sum(1 for count in grams.values() if count > 1)


def is_palindrome(digits: Digits) -> int:
    """Return 1 when the digits read the same backwards (mirror numbers such as 123321)."""
    return int(list(digits) == list(digits)[::-1])


def is_xyxy(digits: Digits) -> int:
    """Return 1 for two alternating different digits: XYXY, XYXYXY."""
    return int(digits[0] != digits[1] and all(d == digits[i % 2] for i, d in enumerate(digits)))


def is_aabb(digits: Digits) -> int:
    """Return 1 for four digits AABB with A different from B."""
    a, b, c, d = digits
    return int(a == b and c == d and a != c)


def is_abba(digits: Digits) -> int:
    """Return 1 for four digits ABBA with A different from B."""
    a, b, c, d = digits
    return int(a == d and b == c and a != b)


def is_repeated_block(digits: Digits, size: int) -> int:
    """Return 1 when the digits are one block of ``size`` written twice (ABCABC for 3)."""
    block = list(digits[-2 * size : -size])
    return int(len(digits) >= 2 * size and block == list(digits[-size:]) and len(set(block)) > 1)


def is_aabbcc(digits: Digits) -> int:
    """Return 1 for six digits AABBCC with A, B and C not all equal."""
    a, b, c, d, e, f = digits
    return int(a == b and c == d and e == f and len({a, c, e}) > 1)


def digital_root(value: int) -> int:
    """Return the repeated digit sum of ``value`` (0 for 0, otherwise 1 to 9)."""
    return 0 if value == 0 else 1 + (value - 1) % 9
