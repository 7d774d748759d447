"""The pytest plug-in (``pytest11`` entry point ``conformance``): options, parametrization, header, summary.

``pytest --pyargs conformance --impl NAME`` runs ``conformance/test_conformance.py``
over every (implementation, fixture) pair, with test ids ``[<impl>-<fixture id>]``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from . import __version__, ledger, registry
from .errors import FixtureError
from .fixtures import gallery_dir, list_fixtures, select
from .suite import DEFAULT_TIMEOUT_S, ENV_FIXTURES, ENV_TIMEOUT, Case, per_fixture_timeout

ENV_SHOWN = (registry.ENV_IMPL, ENV_FIXTURES, ENV_TIMEOUT, "KERAS_BACKEND", "TF_USE_LEGACY_KERAS")
STATE = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("lstm-conformance", "LSTM conformance suite")
    group.addoption("--impl", action="append", default=[], metavar="NAME",
                    help="implementation to check: a registered name, module:attr or cmd:COMMAND "
                         f"(repeatable; default ${registry.ENV_IMPL} or every registered one)")
    group.addoption("--list-impls", action="store_true", help="list registered implementations and exit")
    group.addoption("--fixtures-dir", default=None, metavar="DIR",
                    help=f"folder of fixtures to run (default ${ENV_FIXTURES} or the shipped gallery)")
    group.addoption("--fixture-id", action="append", default=[], metavar="PATTERN",
                    help="only fixtures whose id matches this glob (repeatable)")
    group.addoption("--fixture-tag", action="append", default=[], metavar="TAG",
                    help="only fixtures carrying this tag (repeatable: all must match)")
    group.addoption("--impl-timeout", type=float, default=None, metavar="SECONDS",
                    help=f"per-fixture timeout for run() (default ${ENV_TIMEOUT} or {DEFAULT_TIMEOUT_S:g})")
    group.addoption("--conformance-json", default=None, metavar="PATH",
                    help="write a JSON summary (outcome and max error per case) to PATH")
    group.addoption("--ledger", default=None, metavar="PATH",
                    help="divergence ledger of expected Keras failures (default: the one shipped in the package)")
    group.addoption("--no-ledger", action="store_true", help="apply no divergence ledger")


def _fixtures_dir(config) -> Path:
    chosen = config.getoption("fixtures_dir") or os.environ.get(ENV_FIXTURES)
    return Path(chosen) if chosen else gallery_dir()


def state(config) -> dict:
    """Implementations, fixtures and cases, computed once per session."""
    if STATE not in config.stash:
        root = _fixtures_dir(config)
        try:
            listing = list_fixtures(root)
            fixtures, errors, set_digest = listing.fixtures, listing.errors, listing.set_digest
        except FixtureError as exc:
            fixtures, errors, set_digest = [], [exc], None
        patterns = config.getoption("fixture_id")
        chosen = select(fixtures, patterns, config.getoption("fixture_tag"))
        if patterns:  # a broken fixture is still reported when its folder name was asked for
            errors = [e for e in errors if any(fnmatch.fnmatchcase(Path(e.where).parent.name, p)
                                               or fnmatch.fnmatchcase(Path(e.where).name, p) for p in patterns)]
        if not chosen and not errors:
            errors = [FixtureError(root, "no fixtures to run (empty folder, or no id/tag matched)")]
        impls = registry.select(config.getoption("impl"))
        timeout = _timeout(config)
        cases = [Case(impl, item, root) for impl in impls for item in [*chosen, *errors]]
        entries, ledger_path = _ledger(config)
        config.stash[STATE] = {"ledger": entries, "ledger_path": ledger_path, "ledger_used": set(), "ledger_scope": set(), "root": root, "fixtures": chosen, "errors": errors, "set_digest": set_digest,
                               "impls": impls, "cases": cases, "timeout": timeout, "records": []}
    return config.stash[STATE]


def _ledger(config):
    """The ledger entries and their file; a malformed ledger stops the run with a message naming the entry."""
    if config.getoption("no_ledger"):
        return [], None
    path = config.getoption("ledger") or ledger.default_path()
    try:
        return ledger.load(path), str(path)
    except ledger.LedgerError as exc:
        raise pytest.UsageError(str(exc)) from None


def apply_ledger(config, case: Case, verdict):
    """Strict xfail for cases the ledger explains; a stale entry or a changed kind fails the case."""
    s = state(config)
    if not s["ledger"]:
        return verdict
    try:
        keras_version, backend = case.impl.keras_semantics()
    except Exception:  # noqa: BLE001 - an implementation that cannot load has no Keras semantics
        keras_version, backend = None, None
    s["ledger_scope"].update(e.index for e in s["ledger"] if e.in_scope(case.impl.name, keras_version, backend))
    if verdict.status == "skipped":  # applies_to or Unsupported: the ledger has nothing to explain
        return verdict
    entry = ledger.find(s["ledger"], case.impl.name, case.fixture_name, keras_version, backend)
    if entry is not None:
        s["ledger_used"].add(entry.index)
    return ledger.apply(entry, verdict)


def pytest_configure(config):
    _timeout(config)  # a bad timeout is a usage error before anything runs


def _timeout(config) -> float:
    try:
        return per_fixture_timeout(config.getoption("impl_timeout"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _active(config) -> bool:
    """Only sessions that run the suite pay for loading implementations in the header."""
    args = " ".join(str(a) for a in config.invocation_params.args)
    return bool(config.getoption("impl") or config.getoption("fixtures_dir")
                or "conformance" in args or os.environ.get(registry.ENV_IMPL))


def pytest_cmdline_main(config):
    if config.getoption("list_impls"):
        for impl in registry.registered().values():
            info = impl.info()
            extra = ", ".join(f"{k} {v}" for k, v in info.items() if k != "version" and v)
            print(f"{impl.name:20} {info.get('version') or '-':10} {impl.value}  [{impl.distribution}]"
                  + (f"  ({extra})" if extra else ""))
        return 0
    return None


def pytest_report_header(config):
    if not _active(config):
        return None
    s = state(config)
    lines = [f"lstm-conformance {__version__}: fixtures {s['root']} ({len(s['fixtures'])} selected, "
             f"{len(s['errors'])} broken; set {s['set_digest'] and s['set_digest'][:15]})"]
    for impl in s["impls"]:
        info = impl.info()
        extra = ", ".join(f"{k} {v}" for k, v in info.items() if k != "version" and v)
        lines.append(f"  implementation {impl.name} {info.get('version') or '?'} = {impl.value}"
                     + (f" ({extra})" if extra else ""))
    shown = [f"{k}={os.environ[k]}" for k in ENV_SHOWN if k in os.environ]
    lines.append("  env: " + (" ".join(shown) if shown else "(none of " + ", ".join(ENV_SHOWN) + " set)"))
    lines.append(f"  per-fixture timeout {s['timeout']:g} s")
    return lines


def pytest_generate_tests(metafunc):
    if "conformance_case" in metafunc.fixturenames:
        cases = state(metafunc.config)["cases"]
        metafunc.parametrize("conformance_case", cases, ids=[c.id for c in cases])


def record(config, case: Case, verdict) -> None:
    state(config)["records"].append({
        "impl": case.impl.name, "fixture": case.fixture_name,
        "digest": getattr(case.fixture, "digest", None), "status": verdict.status,
        "max_abs_error": verdict.max_abs_error, "mismatched": verdict.mismatched,
        "message": verdict.message.splitlines()[0] if verdict.message else "",
        "impl_notes": _impl_notes(case),
    })


def _impl_notes(case: Case) -> str | None:
    """``run.notes(fixture_id)`` where the implementation offers it (e.g. the ops TFLite's converter produced)."""
    try:
        notes = getattr(case.impl.load(), "notes", None)
    except Exception:  # noqa: BLE001 - an implementation that cannot load has no notes (its case says why)
        return None
    try:
        return notes(case.fixture_name) if callable(notes) else None
    except Exception as exc:  # noqa: BLE001 - notes are extra; a broken one must not break the summary
        return f"notes() raised {type(exc).__name__}: {exc}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if STATE not in config.stash or not config.stash[STATE]["records"]:
        return
    s = config.stash[STATE]
    per_impl: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    for r in s["records"]:
        per_impl[r["impl"]][r["status"]] += 1
        if r["status"] == "skipped":
            reasons[r["impl"]][r["message"].split(": ", 1)[-1]] += 1
    terminalreporter.section("lstm-conformance summary")
    terminalreporter.write_line(f"{'implementation':24} {'passed':>7} {'failed':>7} {'error':>7} {'skipped':>8} {'xfail':>6}")
    for name, counts in per_impl.items():
        terminalreporter.write_line(f"{name:24} {counts['passed']:7} {counts['failed']:7} {counts['error']:7} "
                                    f"{counts['skipped']:8} {counts['xfailed']:6}")
        for reason, n in reasons[name].most_common():
            terminalreporter.write_line(f"    skipped {n}x: {reason}")
    # entries whose condition (impl, Keras version, backend) held in this run but matched no fixture
    unused = [e for e in s["ledger"] if e.index in s["ledger_scope"] and e.index not in s["ledger_used"]]
    if unused:
        terminalreporter.write_line(f"ledger {s['ledger_path']}: {len(unused)} entr{'y' if len(unused) == 1 else 'ies'} "
                                    "for this configuration matched no case in this run:", yellow=True)
        for entry in unused:
            terminalreporter.write_line(f"    WARNING unmatched ledger {entry.label}", yellow=True)
            warnings.warn(ledger.LedgerWarning(f"ledger {s['ledger_path']}: {entry.label} matched no case"))
    path = config.getoption("conformance_json")
    if path:
        summary = {"lstm_conformance": __version__, "fixtures_dir": str(s["root"]), "fixture_set": s["set_digest"],
                   "implementations": {i.name: i.info() for i in s["impls"]},
                   "env": {k: os.environ[k] for k in ENV_SHOWN if k in os.environ}, "cases": s["records"],
                   "ledger": {"path": s["ledger_path"], "unmatched": [e.label for e in unused]}}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
        terminalreporter.write_line(f"JSON summary written to {path}")
