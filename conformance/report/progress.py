"""One line per conversion tool, not one per fixture: what a cold run is converting, where it is kept, what it cost.

A port's first run converts every fixture's model (minutes per tool) and prints nothing but dots.
``cache.entry`` notes each lookup; the process that runs a case takes the notes after it
(``cache.take_lookups``) and ships them with the case (under pytest-xdist, on the test report);
the process that prints, the only one under xdist, keeps a ``Progress``: a line when a tool
first converts, and a closing line per tool with what was built, what was reused and how long it took.
"""

from __future__ import annotations

import dataclasses

from .. import cache


@dataclasses.dataclass
class _Tally:
    built: int = 0
    reused: int = 0
    seconds: float = 0.0


class Progress:
    """The conversion lookups of a run, tallied per tool."""

    def __init__(self):
        self.tools: dict[str, _Tally] = {}

    def add(self, lookups) -> list[str]:
        """Tally one case's lookups; the lines to print now (a tool's first conversion in this run)."""
        lines = []
        for tool, hit, seconds in lookups:
            tally = self.tools.setdefault(tool, _Tally())
            if not hit and not tally.built:
                lines.append(f"{tool}: converting each fixture's model once; {_kept(tool)}")
            tally.built += not hit
            tally.reused += bool(hit)
            tally.seconds += float(seconds)
        return lines

    def summary_lines(self) -> list[str]:
        """A line per tool: conversions built (and their time) and reused from the cache."""
        lines = []
        for tool, tally in sorted(self.tools.items()):
            built = f"{tally.built} built in {tally.seconds:.0f} s" if tally.built else "none built"
            lines.append(f"conversions: {tool}: {built}, {tally.reused} reused from the cache"
                         + (f"; {_kept(tool)}" if tally.built else ""))
        return lines


def _kept(tool: str) -> str:
    if not cache.enabled():
        return f"not kept ({cache.ENV_OFF} is set): every run converts again"
    return f"kept in {cache.conversions_dir(tool)}, so the next run reuses them"
