"""The rule for a folder a command writes into (``export``, ``gallery``): new or empty, or ``--force``.

Files written into a folder that holds others mix with them silently (one left from an earlier run
looks just like a fresh one, and a hand-written file of the same name is overwritten), so that must
be asked for.
"""

from __future__ import annotations

from pathlib import Path


class OutDirError(ValueError):
    """The folder cannot be used as asked: it is a file, or a non-empty folder without ``force``."""


def check_out_dir(out_dir, force: bool, doing: str, replaced: str) -> None:
    """Refuse a file, and a non-empty folder unless ``force``; ``doing`` and ``replaced`` word the message
    (what the command does, and what ``--force`` replaces)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutDirError(f"{out_dir} exists and is not a folder; {doing} into a new or empty folder")
    entries = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() and not force else []
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
        raise OutDirError(f"{out_dir} is a folder that is not empty ({count}: {shown}); {doing} "
                          f"into a new or empty folder, or pass --force to write into it ({replaced})")
