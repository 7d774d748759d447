"""One run of the suite, for pytest and ``lstm-conformance run`` alike.

``Session.open`` turns the options (``options.OPTIONS``) into cases, or a ``UsageError``
naming what was mistyped; ``Session.run`` judges a case and applies the ledger, giving the
verdict and its ``records.Record``; ``Results`` gathers records (on pytest-xdist's controller
they arrive from the workers as JSON) and writes the one summary table and the one JSON summary
(format ``records.SUMMARY_FORMAT``, checked against its schema before it is written: SPEC 14).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import __version__
from ..diagnosis import search as mistakes
from . import ledger, registry
from ..errors import FixtureError
from ..format.fixtures import Fixture, list_fixtures, select
from .options import explicit_timeout, fixtures_dir, per_fixture_timeout, scaled_timeout, shown_env
from ..records import SUMMARY_FORMAT, Record, SummaryFormatError, check_summary
from .suite import Case, judge
from .verdict import Status, Verdict

TABLE_NAME_WIDTH = 24


class UsageError(ValueError):
    """The options cannot make a run (unknown implementation, a pattern matching nothing, a bad timeout)."""


class SummaryError(OSError):
    """The JSON summary could not be written; one line naming the path and why (the run itself is reported)."""


def _unknown_patterns(patterns: Iterable[str], names: list[str]) -> list[str]:
    return [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]


@dataclasses.dataclass
class Session:
    root: Path
    fixtures: list[Fixture]
    errors: list[FixtureError]          # broken fixtures that were selected: each is an error case
    set_digest: str | None
    impls: list[registry.Implementation]
    timeout: float
    ledger: list[ledger.Entry]
    ledger_path: str | None
    explicit_timeout: bool = False     # --impl-timeout or the variable: used as given, not scaled

    @classmethod
    def open(cls, impl: Iterable[str] = (), fixtures_dir: str | None = None, fixture_id: Iterable[str] = (),
             fixture_tag: Iterable[str] = (), impl_timeout: float | None = None, ledger: str | None = None,
             no_ledger: bool = False, isolate: bool | None = None, **_other) -> "Session":
        """The run these options describe; UsageError (one message, before anything runs) if they cannot."""
        try:
            timeout = per_fixture_timeout(impl_timeout)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        entries, ledger_path = _ledger(ledger, no_ledger)
        root = _fixtures_root(fixtures_dir)
        try:
            listing = list_fixtures(root)
        except FixtureError as exc:
            raise UsageError(str(exc)) from None
        fixture_id, fixture_tag = list(fixture_id), list(fixture_tag)
        chosen, errors = _choose(listing, fixture_id, fixture_tag)
        impls = [registry.isolated(i) if (registry.third_party(i) if isolate is None else isolate) else i
                 for i in _implementations(impl)]
        return cls(root, chosen, errors, listing.set_digest, impls, timeout, entries, ledger_path,
                   explicit_timeout(impl_timeout))

    def case_timeout(self, case: Case) -> float:
        """This case's timeout: as given, or the default scaled with the fixture's declared size."""
        return scaled_timeout(self.timeout, getattr(case.fixture, "meta", {}), self.explicit_timeout)

    @property
    def cases(self) -> list[Case]:
        return [Case(impl, item, self.root) for impl in self.impls for item in [*self.fixtures, *self.errors]]

    def header_lines(self, load: bool = True) -> list[str]:
        """What the run is about to do: fixtures, implementations with versions, env, timeout.

        ``load=False`` (pytest-xdist's controller) names the implementations without importing them:
        the workers load them, and their versions arrive with the records (summary table, JSON).
        """
        lines = [f"lstm-conformance {__version__}: fixtures {self.root} ({len(self.fixtures)} selected, "
                 f"{len(self.errors)} broken; set {self.set_digest and self.set_digest[:15]})"]
        for impl in self.impls:
            if not load:
                lines.append(f"  implementation {impl.name} = {impl.value} (loaded in the workers)")
                continue
            where = " (isolated)" if _isolated(impl) else ""
            lines.append(f"  implementation {impl.name} {describe(impl.info())} = {impl.value}{where}")
        env = shown_env()
        lines.append("  env: " + (" ".join(f"{k}={v}" for k, v in env.items()) or "(none of the suite's variables set)"))
        lines.append(f"  per-fixture timeout {self.timeout:g} s" + ("" if self.explicit_timeout else
                     " plus 1 s per 1000 values the fixture declares"))
        return lines

    def run(self, case: Case, diagnose=None) -> tuple[Verdict, Record]:
        """Judge the case, apply the ledger; the verdict and the record the JSON summary keeps."""
        started = time.perf_counter()
        verdict = judge(case, self.case_timeout(case), diagnose or mistakes.diagnosis)
        duration = time.perf_counter() - started
        try:
            keras_version, backend = case.impl.keras_semantics()
        except Exception:  # noqa: BLE001 - an implementation that cannot load has no Keras semantics
            keras_version, backend = None, None
        info = _plain(case.impl.info())  # asked after every case: info may grow (tflite's ops, OpenVINO's precision)
        if self.ledger and verdict.status != Status.SKIPPED:
            entry = ledger.find(self.ledger, case.impl.name, case.fixture_name, keras_version, backend, info,
                                verdict)
            verdict = ledger.apply(entry, verdict)
        record = Record(
            fixture=case.fixture_name, impl=case.impl.name, status=Status(verdict.status).value,
            reason=verdict.reason, headline=verdict.headline, message=verdict.message,
            digest=getattr(case.fixture, "digest", None), citation=getattr(case.fixture, "citation", None),
            impl_version=verdict.impl_version or info.get("version"),
            max_abs_error=None if verdict.max_abs_error is None else float(verdict.max_abs_error),
            not_applicable=verdict.not_applicable, mismatches=list(verdict.mismatches), trace=verdict.trace,
            diagnosis=verdict.diagnosis,  # kept when the ledger explains the case: the report groups divergences by it
            precision=verdict.precision, ledger=verdict.ledger, repro=verdict.repro,
            approximate=verdict.approximate, duration_s=round(duration, 6),
            layer=getattr(case.fixture, "layer", None), tags=list(getattr(case.fixture, "tags", ())),
            size=_size(case.fixture), keras_version=None if keras_version is None else str(keras_version),
            backend=None if backend is None else str(backend), impl_notes=_impl_notes(case), impl_info=info)
        return verdict, record

    def crash_record(self, case: Case, message: str) -> Record:
        """The record of a case whose process died under it (pytest-xdist's crashed worker): ``crashed``."""
        verdict = Verdict(Status.CRASHED, message, reason="crashed: the worker process running it died")
        return Record(
            fixture=case.fixture_name, impl=case.impl.name, status=Status.CRASHED.value, reason=verdict.reason,
            headline=verdict.headline, message=verdict.message, digest=getattr(case.fixture, "digest", None),
            citation=getattr(case.fixture, "citation", None), impl_version=None, max_abs_error=None,
            not_applicable=False, mismatches=[], trace=None, diagnosis=None, precision=None, ledger=None,
            repro=case.repro(), duration_s=None, layer=getattr(case.fixture, "layer", None),
            tags=list(getattr(case.fixture, "tags", ())), size=_size(case.fixture), keras_version=None,
            backend=None, impl_notes=None, impl_info={})


def _isolated(impl) -> bool:
    from .isolation import isolated_loader
    return getattr(impl._loader, "__qualname__", "").startswith(isolated_loader.__name__)


def _size(fixture) -> int | None:
    """How many expected values the fixture holds: the report cites the smallest fixture showing a divergence."""
    try:
        return int(sum(np.size(a) for a in fixture.expected.values()))
    except Exception:  # noqa: BLE001 - a broken fixture has no size (its case says why)
        return None


def _ledger(path, off: bool):
    if off:
        return [], None
    path = path or ledger.default_path()
    try:
        return ledger.load(path), str(path)
    except ledger.LedgerError as exc:
        raise UsageError(str(exc)) from None


def _fixtures_root(option) -> Path:
    root = fixtures_dir(option)
    if not root.is_dir():
        raise UsageError(f"fixtures folder {root} does not exist" if not root.exists()
                         else f"{root} is not a folder of fixtures")
    return root


def _choose(listing, patterns: list[str], tags: list[str]) -> tuple[list[Fixture], list[FixtureError]]:
    """The fixtures and broken fixtures the patterns and tags select; a pattern matching nothing is a UsageError."""
    broken = {_broken_name(e): e for e in listing.errors}
    names = [f.id for f in listing.fixtures] + list(broken)
    missing = _unknown_patterns(patterns, names)
    if missing:
        raise UsageError("; ".join(f"--fixture-id {p!r} matches no fixture in {listing.root}"
                                   + registry.did_you_mean(p, names) for p in missing))
    chosen = select(listing.fixtures, patterns, tags)
    errors = [e for name, e in broken.items() if not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    if tags:
        errors = []  # a broken fixture's tags are unknown: it is reported by id, or by a run without --fixture-tag
    if not chosen and not errors:
        if not listing.fixtures and not listing.errors:
            raise UsageError(f"no fixtures in {listing.root} (each fixture is a folder with a fixture.yaml)")
        known = sorted({t for f in listing.fixtures for t in f.tags})
        raise UsageError(f"no fixture carries every tag of --fixture-tag {', '.join(map(repr, tags))}"
                         + (f" among those matching --fixture-id {', '.join(map(repr, patterns))}" if patterns else "")
                         + f" (tags in {listing.root}: {', '.join(known)})")
    return chosen, errors


def _broken_name(error: FixtureError) -> str:
    where = Path(error.where)
    return where.parent.name if where.name.endswith(".yaml") else where.name


def _implementations(specs) -> list[registry.Implementation]:
    try:
        impls = registry.select(specs)
    except ValueError as exc:  # registry.UnknownImplementation: a typo, named with the closest match
        raise UsageError(str(exc)) from None
    if not impls:
        raise UsageError("no implementation is registered; name one with --impl (a name, module:attr or cmd:COMMAND)")
    return impls


def describe(info: dict) -> str:
    """``0.1.0 (keras 3.15.1, backend tensorflow)`` from an implementation's info(); for a port whose library
    is missing only ``not installed: needs X, ...: <the command that installs it>`` (no version: nothing runs)."""
    if info.get("not_installed"):  # requires.missing's wording: "needs X, which is not installed: <command>"
        need, _, command = str(info["not_installed"]).partition(", which is not installed: ")
        return f"not installed ({need}): {command}" if command else f"not installed: {need}"
    extra = ", ".join(f"{k} {v}" for k, v in info.items() if k != "version" and v)
    return f"{info.get('version') or '?'}" + (f" ({extra})" if extra else "")


def _plain(info: dict) -> dict:
    """info() as plain strings: records cross process boundaries (pytest-xdist) and land in JSON."""
    return {str(k): (None if v is None else str(v)) for k, v in info.items()}


def _plain_all(infos: dict) -> dict:
    return {str(name): _plain(info) for name, info in infos.items()}


def _impl_notes(case: Case) -> str | None:
    """``run.notes(fixture_id)`` where the implementation offers it (e.g. the ops TFLite's converter produced)."""
    try:
        notes = case.impl.contract().notes
    except Exception:  # noqa: BLE001 - an implementation that cannot load has no notes (its case says why)
        return None
    try:
        return str(notes(case.fixture_name)) if callable(notes) else None
    except Exception as exc:  # noqa: BLE001 - notes are extra; a broken one must not break the summary
        return f"notes() raised {type(exc).__name__}: {exc}"


def short_name(name: str, width: int = TABLE_NAME_WIDTH) -> str:
    """``name`` in at most ``width`` characters, shortened in the middle (long ``cmd:`` names keep columns)."""
    if len(name) <= width:
        return name
    keep = width - 1
    return name[: (keep + 1) // 2] + "\u2026" + name[len(name) - keep // 2:]


class Results:
    """The records of one run, gathered in one process (pytest's controller under xdist)."""

    def __init__(self, session: Session):
        self.session = session
        self.records: list[Record] = []
        self.selected: list[str] | None = None  # the case ids the run selected (None: not known yet)

    def not_run(self) -> list[str]:
        """Selected cases with no record: a run that ends with any is incomplete, and fails (SPEC 13.2)."""
        done = {f"{r.impl}-{r.fixture}" for r in self.records}
        return [cid for cid in self.selected or () if cid not in done]

    def add(self, record: Record | dict) -> None:
        """A record, or its JSON (``Record.to_json``: from an xdist worker)."""
        self.records.append(record if isinstance(record, Record) else Record.from_json(record))

    def sorted_records(self) -> list[Record]:
        """In case order (implementation as given, then fixture id), however the workers finished."""
        order = {impl.name: k for k, impl in enumerate(self.session.impls)}
        return sorted(self.records, key=lambda r: (order.get(r.impl, len(order)), r.fixture))

    def counts(self) -> dict[str, Counter]:
        per_impl: dict[str, Counter] = {impl.name: Counter() for impl in self.session.impls}
        for r in self.records:
            per_impl.setdefault(r.impl, Counter())[r.status] += 1
        return per_impl

    @property
    def bad(self) -> int:
        """Failed, error and crashed cases, and every selected case that has no record."""
        return (sum(1 for r in self.records if r.status in (Status.FAILED, Status.ERROR, Status.CRASHED))
                + len(self.not_run()))

    def unmatched_ledger(self) -> list[ledger.Entry]:
        """Entries whose condition (impl, Keras version, backend) held for a case that ran, yet matched no case.

        A case that was skipped does not count: an entry for a port that is not installed (every case skipped
        with the install command) is not stale, only unused.
        """
        if not self.session.ledger:
            return []
        used = {r.ledger.entry for r in self.records if r.ledger is not None}
        ran = [r for r in self.records if r.status != Status.SKIPPED]
        return [e for e in self.session.ledger if e.index not in used
                and any(e.in_scope(r.impl, r.keras_version, r.backend, r.impl_info) for r in ran)]

    def implementations(self) -> dict[str, dict]:
        """Each implementation's info() as the process that ran it saw it (no import here when it ran elsewhere)."""
        seen = {r.impl: r.impl_info for r in self.records if r.impl_info}
        return {i.name: seen[i.name] if i.name in seen else i.info() for i in self.session.impls}

    def version_lines(self) -> list[str]:
        return [f"  {name}: {describe(info)}" for name, info in self.implementations().items()]

    def table_lines(self) -> list[str]:
        statuses = list(Status)
        w = TABLE_NAME_WIDTH
        lines = [f"{'implementation':{w}} " + " ".join(f"{s.value:>8}" for s in statuses)]
        reasons: dict[str, Counter] = {}
        for r in self.records:
            if r.status == Status.SKIPPED:
                reasons.setdefault(r.impl, Counter())[r.reason] += 1
        for name, counts in self.counts().items():
            lines.append(f"{short_name(name, w):{w}} " + " ".join(f"{counts[s.value]:8}" for s in statuses))
            for reason, n in reasons.get(name, Counter()).most_common():
                lines.append(f"    skipped {n}x: {reason}")
        missing = self.not_run()
        if missing:
            lines.append(f"INCOMPLETE: {len(missing)} selected case{'s' * (len(missing) != 1)} never reported: "
                         + ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else ""))
        return lines

    def summary(self) -> dict:
        """The JSON summary (SPEC 14): one record per case, each implementation's info() once."""
        s = self.session
        return {"format": SUMMARY_FORMAT, "lstm_conformance": __version__, "fixtures_dir": str(s.root),
                "fixture_set": s.set_digest, "implementations": _plain_all(self.implementations()),
                "env": shown_env(),
                "cases": [{k: v for k, v in r.to_json().items() if k != "impl_info"} for r in self.sorted_records()],
                "complete": not self.not_run(), "not_run": self.not_run(),
                "ledger": {"path": s.ledger_path, "unmatched": [e.label for e in self.unmatched_ledger()]}}

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the summary once, atomically: a reader sees the old file or the whole new one.

        A path that cannot be written (a file where a folder should be, no permission, a full disk) is a
        SummaryError: one line, so the caller still prints the table and exits non-zero, never a traceback.
        """
        path = Path(path)
        data = json.loads(json.dumps(self.summary(), default=str))  # as a reader will see it
        try:
            check_summary(data, "the JSON summary")
        except SummaryFormatError as exc:  # the writer and its schema disagree: a bug, said before writing
            raise SummaryError(f"--conformance-json {path}: not written, {exc} (a bug: please report it)") from None
        text = json.dumps(data, indent=1, sort_keys=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            blocked = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
            why = (f"{blocked} is a file, not a folder" if blocked else
                   f"{exc.strerror or exc} ({exc.filename or path.parent})")
            raise SummaryError(f"--conformance-json {path}: cannot write the JSON summary: {why}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise SummaryError(f"--conformance-json {path}: cannot write the JSON summary: "
                                   f"{exc.strerror or exc}") from None
            raise
        return path
