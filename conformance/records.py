"""What the suite found in one case, as structure: the parts of a verdict and the JSON summary's record.

``compare``, the diagnosis and the ledger fill these in as they decide, the terminal text is rendered from
them, and the JSON summary (format ``SUMMARY_FORMAT``, ``schema/summary.schema.json``, SPEC 14) writes them
as they are: ``report``, ``ports`` and ``findings`` read fields, never prose.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any, Mapping

SUMMARY_FORMAT = 2      # 1: the summaries before records (no "format" key; messages kept their first line only)
SCHEMA_NAME = "summary.schema.json"
FLOAT32_DIGITS = 7      # what a failure line shows at least; more where two values would print alike


def digits(expected: float, got: float) -> tuple[str, str]:
    """Both values with the fewest significant digits (at least 7) that tell them apart.

    17 digits tell any two float64 numbers apart, so a float64 fixture's failure line never reads
    ``expected 0.5433592, got 0.5433592`` (issue 21.5).
    """
    for n in range(FLOAT32_DIGITS, 18):
        shown = f"{expected:.{n}g}", f"{got:.{n}g}"
        if shown[0] != shown[1] or expected == got:
            return shown
    return repr(expected), repr(got)


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One output out of tolerance: how far, and its first offending element."""
    output: str
    dtype: str                  # the fixture's dtype for this output
    count: int                  # elements out of tolerance
    size: int
    max_abs_error: float
    max_rel_error: float        # over the non-zero expected values (relative error is undefined at 0)
    atol: float
    rtol: float
    index: tuple[int, ...]      # the first offending element, in the family's axes: (batch, timestep, unit...)
    where: str                  # that index in words: ``[batch 0, timestep 2, unit 1]``
    expected: float
    got: float
    time_major: bool = False    # the array is stored (timestep, batch, unit): Keras 2's time_major

    def lines(self) -> list[str]:
        expected, got = digits(self.expected, self.got)
        return [f"  output {self.output!r}: {self.count} of {self.size} elements out of tolerance; "
                f"max abs error {self.max_abs_error:.3g} (atol {self.atol:g}), "
                f"max rel error {self.max_rel_error:.3g} over non-zero expected values (rtol {self.rtol:g})",
                f"    first offending element {self.where}: expected {expected}, got {got}"
                + (" (a time-major sequence: at [timestep, batch, unit] in the array)" if self.time_major else "")]


@dataclasses.dataclass(frozen=True)
class Trace:
    """What the implementation's trace says: the first (gate, timestep, batch row) leaving the fixture's trace,
    or that every entry compared agrees, and each entry that could not be compared (a wrong name or layout is
    never taken for agreement)."""
    stored: bool = True                 # the fixture stores a trace (else nothing was compared)
    compared: tuple[str, ...] = ()      # the entries compared, in computation order
    gate: str | None = None             # the first diverging gate; None when every entry compared agrees
    timestep: int | None = None
    step: str = ""                      # that timestep in words (processing order, go_backwards)
    batch: int | None = None
    element: str = ""                   # ``unit 3``, ``row 1, col 2, filter 0``
    index: tuple[int, ...] = ()
    expected: float | None = None
    got: float | None = None
    max_abs_error: float | None = None  # over that gate at that timestep
    not_compared: tuple[tuple[str, tuple[str, ...]], ...] = ()   # (why, entry names)
    wanted: str = ""                    # the fixture's trace names and shapes, said when some entry did not fit

    def lines(self) -> list[str]:
        if not self.stored:
            return ["trace: not compared (this fixture stores no trace)"]
        if self.gate is not None:
            expected, got = digits(self.expected, self.got)
            head = (f"trace: first diverging gate is {self.gate!r} at {self.step} in batch row {self.batch}, "
                    f"{self.element}: expected {expected}, got {got} "
                    f"(max abs error {self.max_abs_error:.3g} at that timestep)")
        elif self.compared:
            head = f"trace: every entry compared agrees with the fixture's trace ({', '.join(self.compared)})"
        else:
            head = "trace: not compared: no returned entry has a name and shape of the fixture's trace"
        if not self.not_compared:
            return [head]
        return [head, *(f"  not compared, {why}: {', '.join(names)}" for why, names in self.not_compared),
                f"  {self.wanted}"]


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What explains a failure: the catalogued mistake it reproduces, the precision its error is the size of,
    or what else was found; ``findings`` is each finding in words, as the failure message shows them."""
    findings: tuple[str, ...]
    cause: str | None = None            # the finding naming a cause, without per-case numbers: what every case
                                        # wrong for the same reason shares (None: nothing named)
    mistake: str | None = None          # the catalogued mistake's key; ``a+b`` for two at once
    also: tuple[str, ...] = ()          # other mistakes equally consistent with the result
    explained: float | None = None      # the share of the squared error the closest mistake removes
    residual: float | None = None       # the max abs error left after it
    precision: str | None = None        # the precision the error is consistent with (bfloat16, float16)
    median_rel_error: float | None = None

    @classmethod
    def of_text(cls, text: str) -> "Diagnosis":
        """A diagnosis given as words only (a ``diagnose`` callable returning text): findings, nothing named."""
        return cls(tuple(line.strip() for line in text.splitlines() if line.strip()))


@dataclasses.dataclass(frozen=True)
class Precision:
    """The error of a float64 fixture is the size of float32 rounding: the port computes in float32."""
    fixture: str                        # what the fixture computes in (float64)
    computed: str                       # what the error says the port computed in (float32)
    error: float                        # the max abs error

    def line(self) -> str:
        return (f"precision: the error ({self.error:.2g}) is the size of {self.computed} rounding; this layer "
                f"computes in {self.fixture} (config dtype {self.fixture}) and its tolerance asks for "
                f"{self.fixture} (SPEC 6.1)")


@dataclasses.dataclass(frozen=True)
class OutputError:
    """One output's error against the reference, absolute and in steps of the port's numeric format."""
    output: str
    max_abs_error: float
    median_abs_error: float
    max_steps: float | None = None      # None: the format's step is not known
    median_steps: float | None = None


@dataclasses.dataclass(frozen=True)
class Approximate:
    """An approximate port's case (SPEC 7.8): its error profile, and how much nearer Keras its output is than
    the nearest catalogued mistake (RMS distances over every output checked)."""
    format: str                         # ``int8``, ``ap_fixed<16,6>``
    step: float | None                  # the format's step (the tool's quantization scale for int8)
    outputs: tuple[OutputError, ...]
    rms_to_reference: float
    nearest_mistake: str | None         # None: no catalogued mistake applies to this fixture
    rms_to_nearest: float | None
    margin: float | None                # rms_to_nearest / rms_to_reference (null in JSON where infinite)
    required_margin: float
    mistakes_compared: int
    unresolved: tuple[str, ...]         # mistakes that move the outputs by less than the format resolves: not compared
    holds: bool

    def lines(self) -> list[str]:
        unit = f"step {self.step:.3g}" if self.step else "step not known"
        rows = [f"error profile ({self.format}, {unit}): " + "; ".join(
            f"{o.output!r} max {o.max_abs_error:.3g}, median {o.median_abs_error:.3g}"
            + (f" ({o.max_steps:.3g} / {o.median_steps:.3g} steps)" if o.max_steps is not None else "")
            for o in self.outputs)]
        if self.nearest_mistake is None:
            return rows + ["semantics: no catalogued mistake applies to this fixture"]
        shown = "inf" if self.margin is None or not math.isfinite(self.margin) else f"{self.margin:.3g}"
        return rows + [f"semantics: RMS distance to Keras {self.rms_to_reference:.3g}, to the nearest of "
                       f"{self.mistakes_compared} catalogued mistakes ({self.nearest_mistake}) "
                       f"{self.rms_to_nearest:.3g}: margin {shown} (required {self.required_margin:g})"
                       + (f"; not resolved at this step: {', '.join(self.unresolved)}" if self.unresolved else "")]

    @classmethod
    def from_json(cls, data: Mapping) -> "Approximate":
        values = {k: _tuples(v) for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        values["outputs"] = tuple(part(OutputError, o) for o in values.get("outputs") or ())
        if values.get("margin") is None and values.get("nearest_mistake") is not None:
            values["margin"] = math.inf   # written as null: a port exactly equal to the reference
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Ledger:
    """The ledger entry that matched the case, and what it made of the verdict."""
    entry: int                          # 1-based position in the ledger file
    label: str                          # ``entry 3 (lstm-*; impl keras, keras <3; mismatch)``
    kind: str                           # mismatch or error
    reason: str
    link: str
    strict: bool
    outcome: str                        # explained, stale, changed-kind, other-error, or passed (not strict)


OUTCOMES = ("explained", "stale", "changed-kind", "other-error", "passed")
PARTS = {"mismatches": Mismatch, "trace": Trace, "diagnosis": Diagnosis, "precision": Precision, "ledger": Ledger}


def _tuples(value):
    """JSON arrays back to the tuples the frozen parts hold."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def part(cls, data: Mapping | None):
    """One part from its JSON object (None stays None)."""
    if data is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _tuples(v) for k, v in data.items() if k in names})


def plain(value):
    """A part, or a list of them, as JSON data (tuples as lists; a non-finite float as null)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclasses.dataclass
class Record:
    """One case in the JSON summary: the whole verdict as structure, and what the report groups it by."""
    fixture: str                        # the fixture's id (a broken fixture's folder name)
    impl: str
    status: str                         # a Status value
    reason: str = ""                    # the cause in words shared by every case with that cause (no citation,
                                        # no implementation name, no per-case numbers where it can)
    headline: str = ""                  # the message's first line
    message: str = ""                   # the whole message, as the terminal shows it
    digest: str | None = None
    citation: str | None = None         # ``id@sha256:8hex``
    impl_version: str | None = None
    max_abs_error: float | None = None
    not_applicable: bool = False
    mismatches: list[Mismatch] = dataclasses.field(default_factory=list)
    trace: Trace | None = None
    diagnosis: Diagnosis | None = None
    precision: Precision | None = None
    ledger: Ledger | None = None
    repro: str | None = None
    approximate: Approximate | None = None   # an approximate port's profile and margin (SPEC 7.8)
    duration_s: float | None = None     # how long judging took (never part of the verdict)
    layer: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    size: int | None = None             # expected values: the report cites the smallest fixture showing a divergence
    keras_version: str | None = None
    backend: str | None = None
    impl_notes: str | None = None
    impl_info: dict = dataclasses.field(default_factory=dict)   # the summary keeps it once per implementation

    def to_json(self) -> dict:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> "Record":
        """The record from its JSON (an xdist worker's, or a summary's case)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["approximate"] = (Approximate.from_json(values["approximate"]) if values.get("approximate")
                                 else None)
        for name, kind in PARTS.items():
            if name == "mismatches":
                values[name] = [part(kind, m) for m in values.get(name) or ()]
            else:
                values[name] = part(kind, values.get(name))
        return cls(**values)


class SummaryFormatError(ValueError):
    """A file that is not a JSON summary of this format; the message names the file and what is wrong."""


def schema_path() -> Path:
    """Where the summary's JSON Schema lies (inside the installed package)."""
    return Path(__file__).resolve().parent / "schema" / SCHEMA_NAME


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_summary(data: Any, where) -> None:
    """Raise SummaryFormatError naming ``where`` unless ``data`` is a summary of format SUMMARY_FORMAT."""
    from .format.schema import describe, json_path

    if isinstance(data, dict) and "format" not in data and isinstance(data.get("cases"), list):
        written = data.get("lstm_conformance")
        raise SummaryFormatError(
            f"{where}: a JSON summary of format 1 (no 'format' key" + (f"; lstm-conformance {written}" if written
                                                                       else "")
            + f"); this version reads format {SUMMARY_FORMAT} only: rerun the suite with --conformance-json")
    if isinstance(data, dict) and data.get("format") != SUMMARY_FORMAT and isinstance(data.get("format"), int):
        raise SummaryFormatError(f"{where}: a JSON summary of format {data['format']}; this version reads format "
                                 f"{SUMMARY_FORMAT} only")
    import jsonschema

    errors = list(_validator().iter_errors(data))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise SummaryFormatError(f"{where}: not a JSON summary of format {SUMMARY_FORMAT} "
                                 f"({SCHEMA_NAME}): {json_path(error.absolute_path)}: {describe(error)}")
