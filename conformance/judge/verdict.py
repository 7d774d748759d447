"""What became of one (implementation, fixture) case: one status enum and one result type for every path.

The pytest plug-in, ``lstm-conformance run``, the ledger, the report and the fuzzer all
speak these; nothing else in the package defines a list of statuses. A verdict carries what
was found as structure (``records``): the message is its text for a person.
"""

from __future__ import annotations

import dataclasses
import enum

from ..records import Approximate, Diagnosis, Ledger, Mismatch, Precision, Trace
from ..text import printable


class Status(str, enum.Enum):
    """The value is what the JSON summary and the matrix report carry."""
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"      # Unsupported, or applies_to excludes this Keras
    ERROR = "error"          # the plug-in or the fixture is broken
    XFAILED = "xfailed"      # a ledger entry explains the divergence
    CRASHED = "crashed"      # the port's tool raised or refused to convert (ConversionError): no numbers to compare
    PARTIAL = "partial"      # every output the port declares it returns agrees, but it returns only some (never a pass)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclasses.dataclass
class Verdict:
    status: Status
    message: str = ""              # the text for a person, rendered from the fields below where they are set
    max_abs_error: float | None = None
    mismatches: tuple[Mismatch, ...] = ()
    not_applicable: bool = False   # skipped by applies_to (or NotApplicable): outside the scope, not a missing feature
    reason: str = ""               # the cause in words every case with that cause shares: no citation, no
                                   # implementation name (the report groups and notes by it)
    trace: Trace | None = None
    diagnosis: Diagnosis | None = None
    precision: Precision | None = None
    ledger: Ledger | None = None
    repro: str | None = None
    impl_version: str | None = None
    approximate: Approximate | None = None   # an approximate port's error profile and margin (SPEC 7.8)

    def __post_init__(self):
        # messages quote fixture data (tags, folder names) and plug-in text: no terminal escapes reach pytest,
        # the CLI or the JSON summary (SPEC 13.3)
        self.message = printable(self.message)
        first = next((line.strip() for line in self.reason.splitlines() if line.strip()), "")
        self.reason = printable(first, keep="")  # one line: a multi-line cause keeps its first
        self.mismatches = tuple(self.mismatches)

    @property
    def ok(self) -> bool:
        return self.status == Status.PASSED

    @property
    def mismatched(self) -> list[str]:
        """The outputs out of tolerance."""
        return [m.output for m in self.mismatches]

    @property
    def headline(self) -> str:
        """The message's first line: what a table note shows."""
        return self.message.splitlines()[0] if self.message else ""
