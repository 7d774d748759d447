"""Fixture text made safe to print: control and format characters written as escapes.

A fixture's description, tags or folder name can hold terminal escapes (``\\x1b[2J``), C1 controls or
Unicode bidi overrides (``\\u202e``) that would repaint the terminal or reorder what a reader sees.
Everything printed from fixture data goes through ``printable`` (SPEC 13.3); the gallery's Markdown
pages also go through ``markup`` (HTML is live in Markdown).
"""

from __future__ import annotations

import html
import unicodedata

# Unicode general categories escaped: every "C" (Cc controls, C0, DEL and C1; Cf format, bidi overrides and
# zero-width characters; Cs lone surrogates, as in undecodable file names; Co private use; Cn unassigned)
# and the line and paragraph separators, which end a line in some terminals and editors.
ESCAPED_CATEGORIES = ("Zl", "Zp")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] == "C" or category in ESCAPED_CATEGORIES


def printable(text, keep: str = "\n") -> str:
    """``text`` with every control or format character except those in ``keep`` written as ``\\xNN``/``\\uNNNN``.

    Like ``repr`` for those characters only: ordinary non-ASCII letters stay as they are.
    """
    text = str(text)
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(c if c in keep or not _unsafe(c) else _escape(c) for c in text)


def markup(text) -> str:
    """``printable`` on one line, then HTML-escaped: fixture prose inside a Markdown page."""
    return html.escape(printable(text, keep=""), quote=False)
