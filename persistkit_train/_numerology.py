"""Digit-pair meanings from Thai phone-number numerology (เลขศาสตร์เบอร์มงคล).

Thai sellers of "auspicious numbers" (เบอร์มงคล) read a number as overlapping pairs of
adjacent digits. They price numbers whose pairs are "good" (คู่เลขดี) higher than numbers
with "bad" pairs (คู่เลขเสีย), and read each pair in both orders, so 24 and 42 share a
meaning. The convention is folk belief and sellers differ on some pairs. The tables
below keep pairs that number-selling sites commonly list; they were written down from
that convention, not copied from one published source. Zero is widely described as the
digit of loss (สูญ) and avoided after the operator prefix, so every pair with a 0 is bad.

NOTE: the tables were fixed from the convention alone, not fitted to prices, so they
carry no target information. A pair in neither table counts as neutral.
"""

from __future__ import annotations

__all__ = ["BAD_PAIRS", "GOOD_PAIRS", "pair_meaning"]


def _both_orders(pairs: str) -> frozenset[str]:
    items = pairs.split()
    return frozenset(items) | frozenset(item[::-1] for item in items)


# Pairs described as bringing money, work, charm or support (commonly listed as good).
GOOD_PAIRS: frozenset[str] = _both_orders(
    "14 15 16 19 22 23 24 26 28 29 35 36 39 44 45 46 49 55 56 59 66 69 78 79 89 99"
)

# Pairs described as bringing conflict, loss, accidents or illness (commonly listed as bad),
# plus every pair that contains a 0.
BAD_PAIRS: frozenset[str] = (
    _both_orders("12 13 17 18 25 27 34 37 38 47 48 57 58 67 68 77")
    | frozenset(f"0{digit}" for digit in range(10))
    | frozenset(f"{digit}0" for digit in range(10))
)


def pair_meaning(pair: str) -> int:
    """Return 1 for a good pair, -1 for a bad pair and 0 for a neutral one."""
    if pair in GOOD_PAIRS:
        return 1
    if pair in BAD_PAIRS:
        return -1
    return 0
