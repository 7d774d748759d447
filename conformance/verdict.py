"""What became of one (implementation, fixture) case: one status enum and one result type for every path.

The pytest plug-in, ``lstm-conformance run``, the ledger, the report and the fuzzer all
speak these; nothing else in the package defines a list of statuses.
"""

from __future__ import annotations

import dataclasses
import enum

from .text import printable


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
    message: str = ""
    max_abs_error: float | None = None
    mismatched: list[str] = dataclasses.field(default_factory=list)
    not_applicable: bool = False   # skipped by applies_to (or NotApplicable): outside the scope, not a missing feature

    def __post_init__(self):
        # messages quote fixture data (tags, folder names) and plug-in text: no terminal escapes reach pytest,
        # the CLI or the JSON summary (SPEC 13.3)
        self.message = printable(self.message)

    @property
    def ok(self) -> bool:
        return self.status == Status.PASSED

    @property
    def headline(self) -> str:
        """The message's first line: what the JSON summary keeps."""
        return self.message.splitlines()[0] if self.message else ""
