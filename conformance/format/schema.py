"""Validate a parsed ``fixture.yaml`` against the JSON Schema shipped in the package.

The schema (``conformance/schema/fixture.schema.json``) is the portable part, for
consumers in any language. Rules it cannot state are checked here: the document is
plain JSON data (string keys, finite numbers, no YAML-only types such as dates), every
gate range has ``start < stop`` and fits its weight, and every name listed in
``weights``/``inputs``/``outputs``/``trace`` has its array. The compiled validator is
cached: listing a gallery validates every fixture.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import tags
from ..errors import FixtureError

SCHEMA_NAME = "fixture.schema.json"
MAX_MESSAGE = 300  # jsonschema messages quote the instance; a whole mapping would drown the point


def schema_path() -> Path:
    """Where the fixture.yaml JSON Schema lies (inside the installed package)."""
    return Path(__file__).resolve().parent.parent / "schema" / SCHEMA_NAME


def _inline(node, defs: Mapping):
    """The schema with every local ``$ref`` replaced by its target: a third faster to validate.

    Needs a schema without recursion whose ``$ref`` siblings are annotations or keywords
    the target lacks; anything else is refused rather than silently merged.
    """
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _inline(value, defs) for key, value in node.items() if key != "$defs"}
    if "$ref" in node:
        ref = node.pop("$ref")
        target = _inline(defs[ref.removeprefix("#/$defs/")], defs)
        clash = set(target) & set(node) - {"title", "description"}
        if clash:
            raise ValueError(f"schema: {ref} has sibling keywords {sorted(clash)} that its target also uses")
        node = {**target, **node}
    return node


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema  # lazy: only loading fixtures needs it

    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(_inline(schema, schema.get("$defs", {})))


def json_path(parts) -> str:
    """``$.gates.kernel.i[0]``; keys that are not identifiers are quoted, ``$.arrays["trace/c"]``."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _non_json(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Values the canonical JSON digest cannot represent faithfully, with their paths."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield path, f"key {key!r} is not a string (quote it in YAML)"
                continue
            yield from _non_json(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_json(item, (*path, index))
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, f"{value!r} is not a finite number"
    elif not (value is None or isinstance(value, (str, int, bool))):
        yield path, f"{value!r} is a YAML {type(value).__name__}, not JSON data (quote it in YAML)"


def _inconsistent(meta: Mapping) -> Iterator[tuple[tuple, str]]:
    """Empty gate ranges, ranges past the weight's last axis, and listed names with no array."""
    arrays = meta["arrays"]
    for weight, gates in meta["gates"].items():
        shape = arrays.get(weight, {}).get("shape")
        for gate, (start, stop) in gates.items():
            if start >= stop:
                yield ("gates", weight, gate), f"range [{start}, {stop}) is empty: start must be < stop"
            elif shape is not None and (not shape or stop > shape[-1]):
                yield ("gates", weight, gate), (f"range [{start}, {stop}) runs past the last axis of array "
                                                f"{weight!r} (shape {shape})")
    for field in ("weights", "inputs", "outputs"):
        for index, name in enumerate(meta.get(field, ())):
            if name not in arrays:
                yield (field, index), f"{name!r} is not in 'arrays'"
    for index, name in enumerate(meta.get("trace", ())):
        if f"trace/{name}" not in arrays:
            yield ("trace", index), f"'trace/{name}' is not in 'arrays'"


JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
              (list, "array"), (dict, "object"), (type(None), "null"))


def describe(error) -> str:
    """One short line: jsonschema's own message, minus the full quoted instance where that is long."""
    if error.validator == "type":
        got = next((name for kind, name in JSON_TYPES if isinstance(error.instance, kind)), type(error.instance).__name__)
        value = repr(error.instance) if len(repr(error.instance)) <= 60 else "the value"
        return f"{value} is {'an' if got[0] in 'aeiou' else 'a'} {got}, expected {error.validator_value}"
    if error.validator == "pattern" and "title" in error.schema:
        pattern = f" (pattern {error.validator_value})" if len(error.validator_value) <= 40 else ""
        return f"{error.instance!r} is not {error.schema['title']}{pattern}"
    message = error.message
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def validate_meta(meta: Any, where) -> None:
    """Raise ``FixtureError(where, ...)`` naming the JSON path of the first violation; return if valid."""
    try:
        for path, problem in _non_json(meta):
            raise FixtureError(where, f"{json_path(path)}: {problem}")
        errors = list(_validator().iter_errors(meta))
    except RecursionError:
        raise FixtureError(where, "fixture.yaml nests too deeply to validate") from None
    missing = [field for e in errors if e.validator == "required" and not e.absolute_path
               for field in e.validator_value if field not in meta]
    if missing:
        raise FixtureError(where, f"missing required field(s): {', '.join(missing)}")
    if errors:
        import jsonschema

        error = jsonschema.exceptions.best_match(errors)
        path = tuple(error.absolute_path)
        if path == ("id",) and error.validator == "pattern":  # the loader's wording before the schema
            raise FixtureError(where, f"$.id: id {meta['id']!r} is not a safe folder name "
                                      f"(allowed: {error.validator_value})")
        raise FixtureError(where, f"{json_path(path)}: {describe(error)}")
    for path, problem in _inconsistent(meta):
        raise FixtureError(where, f"{json_path(path)}: {problem}")
    for index, tag in enumerate(meta.get("tags", ())):
        if tag not in tags.vocabulary():  # the spelling too: a tag is part of the digest
            known = tags.canonical(tag)
            raise FixtureError(where, f"$.tags[{index}]: {tag!r} is not a tag of the vocabulary "
                                      + (f"(it spells {known!r} so) " if known else "")
                                      + f"({tags.vocabulary_path().name} in the package)")
