"""The pytest plug-in (``pytest11`` entry point ``conformance``): options, parametrization, header, summary.

``pytest --pyargs conformance --impl NAME`` runs ``conformance/test_conformance.py``
over every (implementation, fixture) pair, with test ids ``[<impl>-<fixture id>]`` and
the fixture's tags and layer as marks (``-m "mask and not stateful"``). The engine is
``session.py``; this module only wires it into pytest. Under pytest-xdist each worker
attaches its case's record to the test report, and the controller alone gathers the
records, prints the summary table and writes the JSON summary, once.
"""

from __future__ import annotations

import os
import re

import pytest

from . import cache
from .judge import registry
from .format import tags
from .judge.options import OPTIONS, dest
from .report.progress import Progress
from .judge.session import Results, Session, SummaryError, UsageError
from .text import printable

pytest_plugins = ["conformance.fuzz.pytest_plugin"]  # --conformance-fuzz N: the fuzzer inside the suite

SESSION = pytest.StashKey[Session]()
RESULTS = pytest.StashKey[Results]()
RECORD = pytest.StashKey[dict]()
LOOKUPS = pytest.StashKey[list]()   # the conversion cache lookups the case made (``progress``)
PROGRESS = pytest.StashKey[Progress]()
JSON_ERROR = pytest.StashKey[str]()  # why --conformance-json could not be written (one line)
REPORT_ATTR = "lstm_conformance"    # the record's attribute on a TestReport (serialized by xdist)
LOOKUPS_ATTR = "lstm_conformance_conversions"  # ...and the case's conversion cache lookups
MARK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def pytest_addoption(parser):
    group = parser.getgroup("lstm-conformance", "LSTM conformance suite")
    for flag, kwargs in OPTIONS:
        group.addoption(flag, dest=dest(flag), **kwargs)
    group.addoption("--list-impls", action="store_true", help="list registered implementations and exit")


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _active(config) -> bool:
    """Only sessions that run the suite pay for listing fixtures and loading implementations up front."""
    args = " ".join(str(a) for a in config.invocation_params.args)
    return bool(config.getoption("impl") or config.getoption("fixtures_dir")
                or "conformance" in args or os.environ.get(registry.ENV_IMPL))


def session(config) -> Session:
    """The run the options describe, opened once per process; a UsageError stops pytest with its message."""
    if SESSION not in config.stash:
        try:
            opened = Session.open(**{dest(flag): config.getoption(dest(flag)) for flag, _ in OPTIONS})
        except UsageError as exc:
            raise pytest.UsageError(printable(str(exc))) from None  # it may quote broken fixtures' folder names
        for name in sorted({m for f in opened.fixtures for m in _marks(f)}):
            config.addinivalue_line("markers", f"{name}: lstm-conformance fixture tag or layer")
        config.stash[SESSION] = opened
        config.stash[RESULTS] = Results(opened)
    return config.stash[SESSION]


def _marks(fixture) -> list[str]:
    """The fixture's tags (either spelling) and its layer, as the fixtures spell it (``LSTM``) and in lower case."""
    spelled = [s for tag in fixture.tags for s in tags.spellings(tag)]  # -m takes mask_trailing or mask-trailing
    return [m for m in dict.fromkeys([fixture.layer, fixture.layer.lower(), *spelled]) if MARK_NAME.match(m)]


# Keras 3 turns a bfloat16 tensor into numpy with np.array(copy=False), which numpy 2 warns about from inside Keras:
# nothing a user of the suite can act on, so it is not printed (only this message, only from Keras's modules)
KERAS_COPY_WARNING = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras"


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", KERAS_COPY_WARNING)
    if not _is_worker(config):
        config.pluginmanager.register(_Gatherer(config), "lstm-conformance-gatherer")
    if _active(config) and not config.getoption("list_impls"):
        session(config)  # bad options are one usage error before collection (and before xdist starts workers)


def pytest_cmdline_main(config):
    if config.getoption("list_impls"):
        default = registry.registered()
        for impl in registry.known().values():
            info = impl.info()
            extra = ", ".join(f"{k} {v}" for k, v in info.items() if k != "version" and v)
            print(f"{impl.name:20} {info.get('version') or '-':10} {impl.value}  [{impl.distribution}]"
                  + ("" if impl.name in default else "  (on request: runs only when named)")
                  + (f"  ({extra})" if extra else ""))
        return 0
    return None


def _distributed(config) -> bool:
    """pytest-xdist runs the cases in worker processes (``-n``): the controller need not load any implementation."""
    return bool(getattr(config.option, "numprocesses", None)) and not getattr(config.option, "collectonly", False)


def pytest_report_header(config):
    if _is_worker(config) or SESSION not in config.stash:
        return None
    return session(config).header_lines(load=not _distributed(config))


def pytest_generate_tests(metafunc):
    if "conformance_case" in metafunc.fixturenames:
        opened = session(metafunc.config)
        params = [pytest.param(case, id=case.id, marks=[getattr(pytest.mark, m) for m in _case_marks(case)])
                  for case in opened.cases]
        metafunc.parametrize("conformance_case", params)


def _case_marks(case) -> list[str]:
    fixture = case.fixture
    return _marks(fixture) if hasattr(fixture, "tags") else []


def run_case(item, case):
    """Judge one case (in whichever process runs it); its record rides on the test report to the controller."""
    cache.take_lookups()  # lookups made between cases belong to none
    verdict, record = session(item.config).run(case)
    item.stash[RECORD] = record.to_json()  # plain data: xdist serializes the report
    item.stash[LOOKUPS] = cache.take_lookups()
    return verdict


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    record = item.stash.get(RECORD, None)
    # on the call's report, or on the setup's when the case is an error (``conformance_verdict`` failed it)
    if record is not None and (call.when == "call" or (call.when == "setup" and report.failed)):
        setattr(report, REPORT_ATTR, record)
        setattr(report, LOOKUPS_ATTR, item.stash.get(LOOKUPS, []))
    return report


class _Gatherer:
    """Registered in the process that reports (never an xdist worker): gathers records, writes the JSON once."""

    def __init__(self, config):
        self.config = config
        config.stash[PROGRESS] = Progress()

    def pytest_runtest_logreport(self, report):
        if RESULTS not in self.config.stash:
            return
        record = getattr(report, REPORT_ATTR, None)
        if record is None and report.failed and report.when in ("call", "???"):  # xdist: its worker died (when ???)
            case = self._cases().get(_case_id(report.nodeid))
            if case is not None:
                text = str(report.longrepr).strip().splitlines()
                record = self.config.stash[SESSION].crash_record(
                    case, f"{case.id}: the process running it died: {text[0] if text else 'no report'}")
        if record is not None:
            self.config.stash[RESULTS].add(record)
        lines = self.config.stash[PROGRESS].add(getattr(report, LOOKUPS_ATTR, ()))
        terminal = self.config.pluginmanager.get_plugin("terminalreporter") if lines else None
        for line in lines if terminal is not None else ():  # once per tool, when it first converts
            terminal.write_line(f"lstm-conformance: {line}", cyan=True)

    def _cases(self) -> dict:
        if not hasattr(self, "_by_id"):
            self._by_id = {c.id: c for c in self.config.stash[SESSION].cases}
        return self._by_id

    def _selected(self, ids) -> None:
        """The selected cases, listed in the JSON summary before any runs: a process that dies leaves them
        all accounted for (``complete: false``, ``not_run``)."""
        results = self.config.stash.get(RESULTS, None)
        if results is None:
            return
        chosen = [_case_id(i) for i in ids if _case_id(i) in self._cases()]
        if not chosen or results.selected is not None:
            return
        results.selected = chosen
        path = self.config.getoption("conformance_json")
        if path:
            try:
                results.write_json(path)
            except SummaryError:
                pass  # reported once, by the write at the end (pytest_sessionfinish), after the table

    def pytest_collection_finish(self, session):
        self._selected([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self._selected(ids)

    def pytest_sessionfinish(self, session):
        results = self.config.stash.get(RESULTS, None)
        if results is not None and results.selected and results.not_run() and not self.config.option.collectonly:
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a case that never reported is no pass
        path = self.config.getoption("conformance_json")
        if path and RESULTS in self.config.stash and self.config.stash[RESULTS].records:
            try:
                self.config.stash[RESULTS].write_json(path)
            except SummaryError as exc:  # reported in the terminal summary, after the table; the run fails
                self.config.stash[JSON_ERROR] = str(exc)
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _case_id(nodeid: str) -> str:
    """``[impl-fixture]`` of a test_conformance node id ('' for any other test)."""
    head, _, param = nodeid.partition("::test_conformance[")
    return param[:-1] if param.endswith("]") else ""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and config.option.markexpr and SESSION in config.stash:
        names = sorted({m for f in config.stash[SESSION].fixtures for m in _marks(f)}, key=str.lower)
        terminalreporter.write_line(f"lstm-conformance: no case matched -m {config.option.markexpr!r}; the marks are "
                                    f"the fixtures' layers and tags: {', '.join(names)}", yellow=True)
    if _is_worker(config) or RESULTS not in config.stash or not config.stash[RESULTS].records:
        return
    results = config.stash[RESULTS]
    terminalreporter.section("lstm-conformance summary")
    if _distributed(config):
        terminalreporter.write_line("implementations (as loaded in the workers):")
        for line in results.version_lines():
            terminalreporter.write_line(line)
    for line in results.table_lines():
        terminalreporter.write_line(line)
    for line in config.stash[PROGRESS].summary_lines() if PROGRESS in config.stash else ():
        terminalreporter.write_line(line)
    unused = results.unmatched_ledger()
    if unused:
        path = results.session.ledger_path
        terminalreporter.write_line(f"ledger {path}: {len(unused)} entr{'y' if len(unused) == 1 else 'ies'} "
                                    "for this configuration matched no case in this run:", yellow=True)
        for entry in unused:
            terminalreporter.write_line(f"    WARNING unmatched ledger {entry.label}", yellow=True)
    path = config.getoption("conformance_json")
    if JSON_ERROR in config.stash:
        terminalreporter.write_line(f"ERROR {config.stash[JSON_ERROR]}", red=True)
    elif path:
        terminalreporter.write_line(f"JSON summary written to {path} ({len(results.records)} cases)")
