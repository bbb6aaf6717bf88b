"""Test helpers for persistkit users and for persistkit's own tests.

Submodules start real storage servers on 127.0.0.1, inject storage faults and kill
processes at random points; none of them is imported by ``import persistkit``.
"""
