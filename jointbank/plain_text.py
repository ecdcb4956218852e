"""Free text that one person types and others read: display names and memos.

Such text lands in pages, e-mail subjects and CSV cells beside other people's words, so
characters that hide, reorder or break the text around them are refused rather than stored:
control characters (Cc: NUL, tabs, newlines), format characters (Cf: the bidi overrides and
isolates such as U+202E that make "rent" display as "tner", zero-width spaces and joiners,
the byte-order mark), line and paragraph separators, surrogates and private-use characters.
"""

from __future__ import annotations

import unicodedata

REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


def first_hidden_character(text: str) -> str | None:
    """The first character of `text` that plain text may not hold, None if there is none."""
    return next((c for c in text if unicodedata.category(c) in REFUSED_CATEGORIES), None)


def describe(char: str) -> str:
    """`U+202E (RIGHT-TO-LEFT OVERRIDE)`: what to say about a refused character."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")
