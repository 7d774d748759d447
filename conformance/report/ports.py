"""The ports matrix: which third-party ports compute what Keras computes, feature by feature.

Rows are ports (an implementation in an env: ``ports-tf2onnx tf2onnx``), columns are
features (a fixture shows a feature by its layer or its tags), a cell counts that port's
cases on those fixtures: ``pass``, ``wrong`` (failed, or a divergence the ledger already
explains: the port is still wrong there), ``crash`` (the tool raised or refused),
``partial`` and ``unsupported`` (the port says it cannot express the feature). Findings come
first (``findings.py``), then this table, then the notes.

``lstm-conformance report RESULTS_DIR --ports-md docs/ports.md --ports-html docs/ports.html``.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Callable

import yaml

from . import findings
from ..judge.verdict import Status

# the implementations that are Keras itself or our reference: not ports
NOT_PORTS = {"numpy-reference", "keras"}


def _tag(name: str) -> Callable[[dict], bool]:
    return lambda case: name in (case.get("tags") or ())


def _layer(name: str) -> Callable[[dict], bool]:
    return lambda case: case.get("layer") == name


FEATURES: list[tuple[str, Callable[[dict], bool]]] = [
    ("LSTM", _layer("LSTM")),
    ("GRU reset_after", lambda c: c.get("layer") == "GRU" and "reset_after" in (c.get("tags") or ())),
    ("GRU reset_before", lambda c: c.get("layer") == "GRU" and "reset_before" in (c.get("tags") or ())),
    ("SimpleRNN", _layer("SimpleRNN")),
    ("ConvLSTM", _tag("conv_lstm")),
    ("Bidirectional", _tag("bidirectional")),
    ("stacked", _tag("stacked")),
    ("stateful", _tag("stateful")),
    ("masking", _tag("mask")),
    ("go_backwards", _tag("go_backwards")),
    ("hard_sigmoid", _tag("hard_sigmoid")),
    ("initial state", _tag("initial_state")),
    ("mixed precision", lambda c: bool({"mixed_float16", "mixed_bfloat16"} & set(c.get("tags") or ()))),
    ("float64", _tag("float64")),
    ("scale", _tag("scale")),
    ("all", lambda c: True),
]

def _not_applicable(case: dict) -> bool:
    """Skipped by ``applies_to``: the fixture is for another Keras than the one the port follows."""
    return case["status"] == Status.SKIPPED.value and bool(case.get("not_applicable"))


COUNTED: list[tuple[str, Callable[[dict], bool]]] = [
    ("pass", lambda c: c["status"] == Status.PASSED.value),
    ("wrong", lambda c: c["status"] in (Status.FAILED.value, Status.XFAILED.value)),
    ("crash", lambda c: c["status"] == Status.CRASHED.value),
    ("error", lambda c: c["status"] == Status.ERROR.value),
    ("partial", lambda c: c["status"] == Status.PARTIAL.value),
    ("unsupported", lambda c: c["status"] == Status.SKIPPED.value and not _not_applicable(c)),
    ("n/a", _not_applicable),
]


def ports_of(summaries: dict[str, dict]) -> list[tuple[str, str]]:
    """(env, impl) pairs that are ports, sorted."""
    return sorted({(env, case["impl"]) for env, data in summaries.items() for case in data["cases"]
                   if case["impl"] not in NOT_PORTS})


def cell(cases: list[dict]) -> dict[str, int]:
    counts = {label: sum(map(test, cases)) for label, test in COUNTED}
    return {k: v for k, v in counts.items() if v}


def cell_text(counts: dict[str, int]) -> str:
    if not counts:
        return "—"
    if set(counts) == {"pass"}:
        return f"✓ {counts['pass']}"
    if set(counts) == {"unsupported"}:
        return "unsupported"
    if set(counts) == {"n/a"}:
        return "n/a"
    return " · ".join(f"{n} {label}" for label, n in counts.items())


def table(summaries: dict[str, dict]) -> tuple[list[tuple[str, str]], dict[tuple[str, str, str], dict[str, int]]]:
    ports = ports_of(summaries)
    cells = {}
    for env, impl in ports:
        cases = [c for c in summaries[env]["cases"] if c["impl"] == impl]
        for feature, belongs in FEATURES:
            cells[(env, impl, feature)] = cell([c for c in cases if belongs(c)])
    return ports, cells


def unsupported_reasons(cases: list[dict], impl: str) -> list[tuple[str, int]]:
    """The port's own skip reasons (``Unsupported``, ``supports()``), most frequent first; ``applies_to`` apart."""
    counts: dict[str, int] = {}
    for case in cases:
        if case["impl"] == impl and case["status"] == Status.SKIPPED.value and not _not_applicable(case):
            reason = findings.shared_message(case)
            counts[reason] = counts.get(reason, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _versions(summaries: dict[str, dict], env: str, impl: str) -> str:
    info = (summaries[env].get("implementations") or {}).get(impl) or {}
    # versions and settings; not the long op lists or this machine's folders
    return ", ".join(f"{k} {v}" for k, v in info.items()
                     if v and not k.endswith("_ops") and not str(v).startswith(("/", "~")))


NOT_RUN_FIELDS = ("tool", "version", "tried", "error", "why", "until")


def not_run(source=None) -> list[dict]:
    """The tools the matrix does not run, with the error that stops each (``not_run.yaml``, data, not prose)."""
    source = source or resources.files("conformance.report") / "not_run.yaml"
    entries = yaml.safe_load(source.read_text()) or []
    for n, entry in enumerate(entries, 1):
        missing = [k for k in NOT_RUN_FIELDS if not isinstance(entry, dict) or not entry.get(k)]
        if missing:
            raise ValueError(f"{source}: entry {n} lacks {', '.join(missing)}")
    return entries


def agreement(summaries: dict[str, dict], env: str, impl: str) -> str:
    """How much of what a port ran it got right, in counts: the one-line verdict on that port."""
    cases = [c for c in summaries[env]["cases"] if c["impl"] == impl]
    counts = cell(cases)
    ran = sum(n for label, n in counts.items() if label not in ("unsupported", "n/a"))
    known = sum(c["status"] == Status.XFAILED.value for c in cases)
    in_ledger = "all" if known == counts.get("wrong") else known
    rest = [f"{counts[k]} {k}" + (f", {in_ledger} in the ledger" if k == "wrong" and known else "")
            for k in ("wrong", "crash", "error", "partial") if counts.get(k)]
    aside = [f"{counts[k]} {label}" for k, label in (("unsupported", "it cannot express"),
                                                      ("n/a", "for another Keras")) if counts.get(k)]
    if not ran:
        return f"`{impl}` ({env}): ran no fixture; not run: {', '.join(aside)}"
    verdict = "computes what Keras computes on every fixture it ran" if not rest else \
        f"computes what Keras computes on {counts.get('pass', 0)} of the {ran} fixtures it ran ({', '.join(rest)})"
    return f"`{impl}` ({env}): {verdict}, {ran} fixtures" + (f"; not run: {', '.join(aside)}" if aside else "")


def to_markdown(summaries: dict[str, dict]) -> str:
    ports, cells = table(summaries)
    names = {impl for _, impl in ports}
    found = findings.divergences(summaries, names)
    wide = {k: v for k, v in findings.column_wide(summaries).items() if k[1] in names}
    out = ["# Which ports are right", "",
           f"{len(ports)} ports × {len({c['fixture'] for d in summaries.values() for c in d['cases']})} fixtures, "
           "each checked against what Keras computes (`lstm-conformance report`).", "",
           f"## Divergences found ({len(found)})", ""]
    out += [f"- {d.line(markdown=True)}" for d in found] or ["None: every port computed what Keras computes where it ran."]
    out += [f"- {line}" for line in findings.wide_lines(wide)]
    out += ["", "## Each port in one line", ""]
    out += [f"- {agreement(summaries, env, impl)}" for env, impl in ports if (env, impl) not in wide]
    out += ["", "## Tools not run", "",
            "Each with the exact error that stops it here (`conformance/report/not_run.yaml`).", ""]
    out += [f"- **{e['tool']} {e['version']}**: `{e['error']}` ({e['tried']}). {e['why']} Until {e['until']}."
            for e in not_run()]
    feature_names = [f for f, _ in FEATURES]
    out += ["", "## Port × feature", "",
            "Cells count fixtures: ✓ all pass; *wrong* = failed or a known divergence (ledger); *crash* = the tool "
            "raised or refused the model; *unsupported* = the port says it cannot express it; *n/a* = the fixture "
            "is for another Keras than the one the port follows (`applies_to`, e.g. Keras 2's `hard_sigmoid`).", "",
            "| port | " + " | ".join(feature_names) + " |", "|---|" + "---|" * len(feature_names)]
    for env, impl in ports:
        if (env, impl) in wide:
            continue
        row = [cell_text(cells[(env, impl, f)]) for f in feature_names]
        out.append(f"| `{impl}` ({env}) | " + " | ".join(row) + " |")
    out += ["", "## What each port says it cannot express", ""]
    for env, impl in ports:
        reasons = unsupported_reasons(summaries[env]["cases"], impl)
        if reasons and (env, impl) not in wide:
            out.append(f"- `{impl}` ({env}): " + "; ".join(f"{n}× {reason}" for reason, n in reasons))
    out += ["", "## Versions", ""]
    out += [f"- `{impl}` ({env}): {_versions(summaries, env, impl) or '?'}" for env, impl in ports]
    return "\n".join(out) + "\n"


def to_html(summaries: dict[str, dict], css: str = "") -> str:
    e = html.escape
    ports, cells = table(summaries)
    names = {impl for _, impl in ports}
    found = findings.divergences(summaries, names)
    wide = {k: v for k, v in findings.column_wide(summaries).items() if k[1] in names}
    feature_names = [f for f, _ in FEATURES]
    items = "".join(f"<li>{e(d.line())}</li>" for d in found) or "<li>None.</li>"
    items += "".join(f"<li><code>{e(env)} {e(impl)}</code>: {e(text)}</li>" for (env, impl), text in sorted(wide.items()))

    def klass(counts):
        return "passed" if set(counts) == {"pass"} else "skipped" if set(counts) <= {"unsupported", "n/a"} else "failed"

    rows = "".join(
        f"<tr><td class=\"fixture\">{e(impl)} <small>{e(env)}</small></td>"
        + "".join(f"<td class=\"{klass(cells[(env, impl, f)])}\">{e(cell_text(cells[(env, impl, f)]))}</td>"
                  for f in feature_names) + "</tr>"
        for env, impl in ports if (env, impl) not in wide)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Which ports are right</title>"
            f"<style>{css}</style></head><body>\n<h1>Which ports are right</h1>\n"
            f"<h2>Divergences found ({len(found)})</h2><ul>{items}</ul>\n<h2>Port × feature</h2>\n"
            f"<table><thead><tr><th>port</th>{''.join(f'<th>{e(f)}</th>' for f in feature_names)}</tr></thead>"
            f"<tbody>{rows}</tbody></table>\n</body></html>\n")
