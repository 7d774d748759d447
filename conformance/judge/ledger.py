"""The divergence ledger: known, explained ways Keras itself differs from the gallery.

Each entry names fixtures (a glob on the id), a condition (implementation, Keras
version specifier, backend), the kind of divergence (``mismatch``: outputs out of
tolerance; ``error``: the implementation raised or returned unusable output), a
one-sentence reason and a link. An ``error`` entry also names the error it explains:
``message``, a regular expression searched in the case's message. Kind alone would
explain any error of a matching case (a refused hostile model file, a broken
fixture); an error the pattern does not find stays what it was. Entries apply as
*strict* expected failures: a matching case that fails the recorded way is
``xfailed``; one that passes means the entry is stale, and one that fails another way
is a new failure. Both fail the run. Of the entries whose condition a case meets, the first
that explains it (its kind, and its message found in the error) applies, else the first: so
two causes of one port (an unimplemented op, a crash in another graph) are two entries keyed
on their messages, whatever the order of their fixture globs.

Two keys serve ports: ``when`` (a mapping of the implementation's ``info()`` values the
entry needs, e.g. ``{inference_precision: bf16}``: the divergence depends on how the tool
ran on this machine) and ``strict: false`` (a matching case may pass: reduced precision
lands within tolerance on some fixtures). A non-strict entry still turns another kind of
failure into a new failure.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from pathlib import Path
from typing import Iterable, Mapping

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ..records import Ledger
from .verdict import Status

FORMAT_VERSION = 1
KINDS = ("mismatch", "error")
KEYS = {"fixture", "impl", "keras", "backend", "when", "strict", "kind", "reason", "link", "message"}


class LedgerError(ValueError):
    """The ledger file is unreadable or an entry is malformed; the message names the file and entry."""


@dataclasses.dataclass(frozen=True)
class Entry:
    fixture: str
    kind: str
    reason: str
    link: str
    impl: tuple[str, ...] = ("keras",)   # implementation names or globs: one port sharing another's divergence
    keras: str | None = None
    backend: tuple[str, ...] = ()
    index: int = 0          # position in the file, 1-based, to name it in messages
    when: tuple[tuple[str, str], ...] = ()   # (info key, value) pairs the implementation must report
    strict: bool = True
    message: str | None = None   # kind error: a regular expression the case's message must contain

    @property
    def label(self) -> str:
        cond = [f"impl {'|'.join(self.impl)}"]
        if self.keras:
            cond.append(f"keras {self.keras}")
        if self.backend:
            cond.append(f"backend {'|'.join(self.backend)}")
        cond += [f"{k} {v}" for k, v in self.when]
        return f"entry {self.index} ({self.fixture}; {', '.join(cond)}; {self.kind})"

    def matches(self, impl: str, fixture: str, keras_version: str | None, backend: str | None,
                info: Mapping | None = None) -> bool:
        return fnmatch.fnmatchcase(fixture, self.fixture) and self.in_scope(impl, keras_version, backend, info)

    def in_scope(self, impl: str, keras_version: str | None, backend: str | None, info: Mapping | None = None) -> bool:
        """The condition holds for this implementation (whatever the fixture)."""
        if not any(fnmatch.fnmatchcase(impl, pattern) for pattern in self.impl):
            return False
        if any(str((info or {}).get(key)) != value for key, value in self.when):
            return False
        if self.keras:
            try:
                if keras_version is None or Version(keras_version) not in SpecifierSet(self.keras, prereleases=True):
                    return False
            except InvalidVersion:
                return False
        return not self.backend or backend in self.backend


def default_path() -> Path:
    """The ledger shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "ledger.yaml"


def _entry(raw, index: int, where: str) -> Entry:
    name = f"{where}: entry {index}"
    if not isinstance(raw, dict):
        raise LedgerError(f"{name} is a {type(raw).__name__}, expected a mapping with keys {', '.join(sorted(KEYS))}")
    if isinstance(raw.get("fixture"), str):
        name += f" (fixture {raw['fixture']!r})"
    unknown = sorted(set(map(str, raw)) - KEYS)
    if unknown:
        raise LedgerError(f"{name}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(KEYS))})")
    for key in ("fixture", "kind", "reason", "link"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise LedgerError(f"{name}: {key!r} is required and must be a non-empty string")
    if raw["kind"] not in KINDS:
        raise LedgerError(f"{name}: kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
    if "\n" in raw["reason"].strip():
        raise LedgerError(f"{name}: 'reason' must be one sentence on one line")
    message = raw.get("message")
    if raw["kind"] == "error":
        if not isinstance(message, str) or not message.strip():
            raise LedgerError(f"{name}: an error entry needs 'message', a regular expression found in the error it "
                              "explains (kind alone would explain any error of a matching case)")
        try:
            re.compile(message)
        except re.error as exc:
            raise LedgerError(f"{name}: 'message' {message!r} is not a regular expression ({exc})") from None
    elif message is not None:
        raise LedgerError(f"{name}: 'message' is for error entries; a mismatch entry is matched by its outputs")
    if not raw["link"].startswith("https://"):
        raise LedgerError(f"{name}: 'link' {raw['link']!r} must be an https:// URL (issue, PR or release note)")
    impl = raw.get("impl", "keras")
    if isinstance(impl, str):
        impl = (impl,)
    if not isinstance(impl, (list, tuple)) or not impl or not all(isinstance(i, str) and i for i in impl):
        raise LedgerError(f"{name}: 'impl' must be an implementation name or glob, or a list of them")
    keras = raw.get("keras")
    if keras is not None:
        try:
            SpecifierSet(str(keras))
        except InvalidSpecifier:
            raise LedgerError(f"{name}: 'keras' {keras!r} is not a version specifier (e.g. '>=3', '<3.6')") from None
        keras = str(keras)
    backend = raw.get("backend", ())
    if isinstance(backend, str):
        backend = (backend,)
    if not isinstance(backend, (list, tuple)) or not all(isinstance(b, str) and b for b in backend):
        raise LedgerError(f"{name}: 'backend' must be a backend name or a list of them")
    when = raw.get("when", {})
    if not isinstance(when, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                             for k, v in when.items()):
        raise LedgerError(f"{name}: 'when' must map implementation info() keys to values")
    strict = raw.get("strict", True)
    if not isinstance(strict, bool):
        raise LedgerError(f"{name}: 'strict' must be true or false")
    return Entry(raw["fixture"], raw["kind"], raw["reason"].strip(), raw["link"], tuple(impl), keras, tuple(backend), index,
                 tuple(sorted((k, str(v)) for k, v in when.items())), strict, message)


def load(path: str | Path | None = None) -> list[Entry]:
    """Read and validate a ledger (default: the shipped one); LedgerError names the file and entry."""
    path = Path(path) if path is not None else default_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise LedgerError(f"ledger {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise LedgerError(f"ledger {path}: expected a mapping with 'format_version: {FORMAT_VERSION}' and 'entries'")
    entries = data.get("entries") or []
    if not isinstance(entries, list):
        raise LedgerError(f"ledger {path}: 'entries' must be a list")
    return [_entry(raw, i, str(path)) for i, raw in enumerate(entries, start=1)]


def find(entries: Iterable[Entry], impl: str, fixture: str, keras_version: str | None,
         backend: str | None, info: Mapping | None = None, verdict=None) -> Entry | None:
    """The entry for this case: the first matching one that explains ``verdict`` (when given), else the first
    matching one (which then calls the case stale, changed in kind or failing another way), or None."""
    matching = [e for e in entries if e.matches(impl, fixture, keras_version, backend, info)]
    if verdict is not None:
        explaining = next((e for e in matching if explains(e, verdict)), None)
        if explaining is not None:
            return explaining
    return matching[0] if matching else None


def explains(entry: Entry, verdict) -> bool:
    """The verdict is the divergence the entry records: its kind, and for an error its message pattern."""
    return kind_of(verdict) == entry.kind and (entry.message is None or bool(re.search(entry.message, verdict.message)))


def kind_of(verdict) -> str | None:
    """``mismatch`` when outputs were compared and out of tolerance, ``error`` when there was nothing to compare."""
    if verdict.status == Status.FAILED and verdict.mismatched:
        return "mismatch"
    if verdict.status in (Status.FAILED, Status.ERROR, Status.CRASHED):
        return "error"
    return None


def note(entry: Entry, outcome: str) -> Ledger:
    """The entry as the verdict carries it (``records.Ledger``), with what it made of the case."""
    return Ledger(entry.index, entry.label, entry.kind, entry.reason, entry.link, entry.strict, outcome)


def apply(entry: Entry | None, verdict):
    """The verdict after the ledger: xfailed, or failed because the entry is stale or the kind changed; the
    entry rides on it (``verdict.ledger``) whatever it made of the case."""
    if entry is None or verdict.status == Status.SKIPPED:
        return verdict
    where = f"ledger {entry.label}"
    kind = kind_of(verdict)
    if kind is None and not entry.strict:
        return dataclasses.replace(verdict, ledger=note(entry, "passed"))  # this fixture lands within tolerance
    if kind is None:
        stale = f"ledger entry is stale: {where} expects a {entry.kind}, but the case passed"
        return dataclasses.replace(verdict, status=Status.FAILED, ledger=note(entry, "stale"), reason=stale, message=(
            f"{stale} (max abs error {verdict.max_abs_error}); remove or narrow the entry ({entry.link})"))
    if kind != entry.kind:
        changed = f"divergence changed kind: {where} expects a {entry.kind}, got a {kind}"
        return dataclasses.replace(verdict, status=Status.FAILED, ledger=note(entry, "changed-kind"), reason=changed,
                                   message=f"{changed}:\n{verdict.message}")
    if entry.message is not None and not re.search(entry.message, verdict.message):
        return dataclasses.replace(verdict, ledger=note(entry, "other-error"), message=(
            f"{verdict.message}\n(not the error {where} explains: its message pattern {entry.message!r} "
            "is not in this one)"))
    return dataclasses.replace(verdict, status=Status.XFAILED, ledger=note(entry, "explained"), reason=entry.reason,
                               message=f"{entry.reason} ({entry.link})")


class LedgerWarning(UserWarning):
    """A ledger entry matched no case in the run (the fixture is gone, or the run did not cover it)."""
