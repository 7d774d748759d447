"""The fixture tags: one closed vocabulary (``schema/tags.yaml``), matched whatever the spelling of ``_``/``-``.

The schema check refuses a tag outside the vocabulary, the fuzzer draws only tags in it, and a user may
type ``mask_trailing`` or ``mask-trailing`` (``--fixture-tag``, ``list --tag``, ``-m``): both mean the tag.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

VOCABULARY_NAME = "tags.yaml"


def vocabulary_path() -> Path:
    return Path(__file__).resolve().parent.parent / "schema" / VOCABULARY_NAME


@functools.lru_cache(maxsize=1)
def vocabulary() -> dict[str, str]:
    """Every tag with its one-line meaning."""
    return dict(yaml.safe_load(vocabulary_path().read_text(encoding="utf-8"))["tags"])


def _key(tag: str) -> str:
    return tag.replace("-", "_")


@functools.lru_cache(maxsize=1)
def _by_key() -> dict[str, str]:
    return {_key(tag): tag for tag in vocabulary()}


def canonical(tag: str) -> str | None:
    """The vocabulary's spelling of ``tag`` (either separator), or None for a tag not in it."""
    return _by_key().get(_key(tag))


def spellings(tag: str) -> list[str]:
    """``tag`` and its other spelling, e.g. ``mask-trailing`` and ``mask_trailing`` (the marks pytest gets)."""
    return list(dict.fromkeys([tag, tag.replace("-", "_"), tag.replace("_", "-")]))
