"""Hypothesis strategies the property tests share (needs ``hypothesis``, a dev dependency)."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["huge_text", "any_text", "any_float"]

# Text up to 60k characters: fields far larger than any real title.
huge_text = st.integers(1_000, 60_000).map(lambda n: "lorem ipsum dolor " * (n // 18))
# Any text a cell may hold, the empty and the NaN-looking ones included.
any_text = st.one_of(st.text(max_size=30), huge_text, st.sampled_from(["", "   ", "\t\n", "NaN", "null"]))
any_float = st.floats(allow_nan=True, allow_infinity=True)
