"""What the matrix found, before the tables: one line per distinct divergence, and column-wide notes.

A divergence is a group of cases that are wrong for one reason: the ledger entry that
explains them (its reason and link), else the cause the diagnosis names, else the case's
recorded reason (the failure in words, without citation or implementation), with the names a
tool gives a fixture's nodes made the same for every fixture (``normalised``). Everything is
read from the records' fields (SPEC 14), never parsed out of messages. Each line says what, where (env and implementation),
how many fixtures, and cites the smallest fixture that shows it (``id@sha256:8hex``: fewest
expected values). A ledger entry or skip reason that covers a whole column (every case in
it) is one line, and the column leaves the tables.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict

from ..judge.verdict import Status

WRONG = (Status.FAILED.value, Status.XFAILED.value, Status.CRASHED.value)  # the port gave wrong numbers, or none
MAX_WHAT = 300   # a crash's reason quotes the tool, which can say a lot
# A tool names a node by its index and a quoted name with counters that differ per fixture:
# `#7 "LSTM__27613"`, `'fixture_1/rnn_1/zeros_1'`. Only those become `…`: the words, values and shapes stay.
NODE_INDEX = re.compile(r"#\d+(?= [\"'])")
QUOTED = re.compile(r'"[^"\n]*"|\'[^\'\n]*\'')
COUNTER = re.compile(r"(?<=_)\d+\b")


@dataclasses.dataclass
class Divergence:
    what: str
    status: str                     # failed, xfailed (known, in the ledger) or crashed
    where: list[str]                # "env impl" columns
    fixtures: set[str]
    smallest: str                   # citation of the smallest fixture showing it
    link: str | None = None         # the ledger entry's link, for a known divergence

    def line(self, markdown: bool = False) -> str:
        """One line: what, where, how many fixtures, the smallest one's citation; a ledger link as a Markdown link."""
        known = {"xfailed": "known, in the ledger", "crashed": "the tool crashed", "failed": "NEW"}[self.status]
        n = len(self.fixtures)
        what = self.what
        if self.link:
            what += f" ([source]({self.link}))" if markdown else f" ({self.link})"
        return (f"**{', '.join(self.where)}**: {what} — {n} fixture{'s' * (n != 1)}, smallest "
                f"`{self.smallest}` ({known})" if markdown else
                f"{', '.join(self.where)}: {what} — {n} fixture{'s' * (n != 1)}, smallest {self.smallest} ({known})")


def citation(case: dict) -> str:
    return case.get("citation") or case["fixture"]


def reason(case: dict) -> str:
    """What makes this case wrong, in words shared by every case wrong for the same reason."""
    if case["status"] == Status.XFAILED.value and case.get("ledger"):
        return case["ledger"]["reason"]
    cause = (case.get("diagnosis") or {}).get("cause")
    if cause:
        return f"diagnosis: {cause}"
    return normalised(case.get("reason", ""))[:MAX_WHAT]


def normalised(text: str) -> str:
    """The text with node indices and the counters in quoted node names as ``…``, so one error a tool raises on
    many fixtures reads the same for each; anything else that differs (an op, a value, a shape) keeps them apart."""
    return QUOTED.sub(lambda quoted: COUNTER.sub("…", quoted.group()), NODE_INDEX.sub("#…", text))


def link(case: dict) -> str | None:
    """The link of the ledger entry explaining the case, if one does."""
    return case["ledger"]["link"] if case["status"] == Status.XFAILED.value and case.get("ledger") else None


def divergences(summaries: dict[str, dict], impls: set[str] | None = None) -> list[Divergence]:
    """Distinct divergences across the envs' summaries (only ``impls`` when given), new ones first, then
    by how many fixtures show them. Column-wide reasons (``column_wide``) are their own lines, not here."""
    wide = column_wide(summaries)
    groups: dict[tuple[str, str], dict] = {}
    for env, data in summaries.items():
        for case in data["cases"]:
            if case["status"] not in WRONG or (impls is not None and case["impl"] not in impls):
                continue
            if (env, case["impl"]) in wide:
                continue
            key = (reason(case), case["status"], link(case))
            group = groups.setdefault(key, {"where": [], "fixtures": set(), "cases": []})
            column = f"{env} {case['impl']}"
            if column not in group["where"]:
                group["where"].append(column)
            group["fixtures"].add(case["fixture"])
            group["cases"].append(case)
    found = []
    for (what, status, source), group in groups.items():
        smallest = min(group["cases"], key=lambda c: (c.get("size") or 1 << 60, c["fixture"]))
        found.append(Divergence(what, status, group["where"], group["fixtures"], citation(smallest), source))
    order = {"failed": 0, "crashed": 1, "xfailed": 2}
    return sorted(found, key=lambda d: (order[d.status], -len(d.fixtures), d.what))


def column_wide(summaries: dict[str, dict]) -> dict[tuple[str, str], str]:
    """(env, impl) columns whose every case that ran is a known divergence: the ledger's reasons (one, or each with
    its count), so a column that only ever xfails is one line, not a column of the table; or one skip reason."""
    cases: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for env, data in summaries.items():
        for case in data["cases"]:
            cases[(env, case["impl"])].append(case)
    wide = {}
    for column, members in cases.items():
        ran = [c for c in members if c["status"] != Status.SKIPPED.value]
        kinds = {(c["status"], shared_message(c)) for c in ran}
        skipped = len(members) - len(ran)
        if len(ran) > 1 and all(status == Status.XFAILED.value and message for status, message in kinds):
            counts = Counter(shared_message(c) for c in ran)   # the ledger entries that explain every case that ran
            reasons = (next(iter(counts)) if len(counts) == 1 else "each by a ledger entry: "
                       + "; ".join(f"{n} by: {message}" for message, n in counts.most_common()))
            wide[column] = (f"xfailed on all {len(ran)} fixtures it ran"
                            + (f" ({skipped} skipped)" if skipped else "") + (": " if len(counts) == 1 else ", ")
                            + reasons)
        elif not ran and len(members) > 1:     # every case skipped for one reason
            reasons = {shared_message(c) for c in members}
            if len(reasons) == 1:
                wide[column] = f"skipped on all {len(members)} fixtures: {reasons.pop()}"
    return wide


def shared_message(case: dict) -> str:
    """A case's reason as one line reads in every row: a ledger entry's reason with its link, else the
    recorded reason (no fixture citation, no implementation name)."""
    source = link(case)
    return f"{case['ledger']['reason']} ({source})" if source else normalised(case.get("reason", ""))


def wide_lines(wide: dict[tuple[str, str], str]) -> list[str]:
    """Column-wide reasons as Markdown lines, columns with the same reason on one line."""
    by_text: dict[str, list[str]] = defaultdict(list)
    for (env, impl), text in sorted(wide.items()):
        by_text[text].append(f"{env} {impl}")
    return [f"`{', '.join(columns)}`: {text}" for text, columns in by_text.items()]
