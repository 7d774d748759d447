"""The differential fuzzer: draw configurations, compare the implementation with the oracle, shrink, write.

Each example is a catalog entry drawn by Hypothesis (``space.entries``), made into an in-memory
fixture exactly as the generator makes a gallery one (``entries.parts``: seeded weights and inputs,
gate map, activations; expected outputs from the oracle; trace from the numpy reference), checked by
``Fixture.from_memory`` as a folder on disk would be, and judged by the suite's own engine
(``suite.judge``: isolation, timeout, ``Unsupported`` as a skip, ``compare``). A failure is shrunk by
Hypothesis to the smallest configuration that still fails, then written as a format-v1 fixture folder
and judged again from disk with the mistake catalogue's diagnosis, so what is printed is exactly what
the ordinary suite says about the written fixture.

The oracle is Keras (3, TensorFlow backend: the gallery's semantics) when it is importable, the
layer built and called directly by the ``keras`` adapter, else the numpy reference; with Keras, every
example also checks that the numpy reference agrees, and a disagreement is itself a finding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import platform
import shlex
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import __version__
from ..semantics import reference
from ..format import tags as vocabulary
from ..cache import user_cache_dir
from ..judge.compare import compare
from ..errors import Unsupported
from ..format.fixtures import Fixture, load_fixture
from ..judge.registry import Implementation
from ..judge.suite import Case, judge
from ..judge.verdict import Status
from ..format.writer import finish_meta, write_fixture
from . import DEFAULT_BUDGET, DEFAULT_OUT as DEFAULT_OUT_NAME, space
from ..generate.entries import fixture_meta, keras2_hard_sigmoid, parts, saved_model

TOLERANCE = {"atol": 1e-05, "rtol": 0.0001}   # the gallery's
ROUND = 100                                   # examples per round under --seconds (each round has its own seed)
DEFAULT_OUT = Path(DEFAULT_OUT_NAME)
REFERENCE_IMPL = Implementation("numpy-reference", "conformance.reference:run", _loader=lambda: reference.run)


class FuzzUsageError(ValueError):
    """Options that cannot make a search (an unknown layer or tag, Keras asked for but missing)."""


# -- the oracle ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Oracle:
    name: str                    # "keras" or "numpy-reference"
    label: str                   # for the report and generated_by
    provenance: tuple            # (key, value) pairs for generated_by
    expected: Callable           # (Parts, reference result) -> {name: float32 array}

    @property
    def is_keras(self) -> bool:
        return self.name == "keras"


@functools.lru_cache(maxsize=None)
def _register_overrides() -> None:
    """Make the Keras 2 hard_sigmoid override serializable: Bidirectional copies its layer through its config."""
    from ..adapters.keras import keras_module
    keras_module().saving.register_keras_serializable("lstm_conformance", "keras2_hard_sigmoid")(keras2_hard_sigmoid)


def _keras_expected(p, ref) -> dict:
    from ..adapters import keras as keras_adapter
    _register_overrides()
    values = keras_adapter.compute_any(p.layer, p.config, p.weights, p.inputs, p.overrides, calls=p.calls)
    return {k: np.asarray(v, np.float32) for k, v in values.items()}


def _reference_expected(p, ref) -> dict:
    return {k: np.asarray(v, np.float32) for k, v in ref.items() if k != "trace"}


def reference_oracle(why: str = "") -> Oracle:
    label = "the numpy reference (conformance.reference), not Keras" + (f": {why}" if why else "")
    return Oracle("numpy-reference", label, (), _reference_expected)


def choose_oracle(requested: str = "auto") -> Oracle:
    """Keras 3 with the TensorFlow backend (the semantics the gallery records) if importable, else the reference."""
    if requested == "reference":
        return reference_oracle("asked for with --oracle reference")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")       # as generate_fixtures.py: quiet, and plain Eigen
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")      # kernels (the same bits on every x86 CPU)
    from ..adapters import keras as keras_adapter
    try:
        version, backend = keras_adapter.keras_version(), keras_adapter.backend_name()
    except Unsupported as exc:
        why = str(exc)
    else:
        if not keras_adapter.is_keras3():
            why = f"Keras {version} is Keras 2; the gallery's semantics are Keras 3's"
        elif backend != "tensorflow":
            why = f"Keras {version} runs the {backend} backend; the gallery's semantics are the TensorFlow backend's"
        else:
            import tensorflow as tf
            provenance = (("tensorflow", tf.__version__), ("keras", version), ("backend", backend))
            return Oracle("keras", f"Keras {version} ({backend} backend)", provenance, _keras_expected)
    if requested == "keras":
        raise FuzzUsageError(f"--oracle keras: {why}")
    return reference_oracle(why)


# -- one example: a catalog entry made into a fixture ----------------------------------------------

def _slug(layer: str) -> str:
    slugs = {"SimpleRNN": "simple-rnn", "ConvLSTM1D": "conv-lstm1d", "ConvLSTM2D": "conv-lstm2d"}  # as the gallery
    return slugs.get(layer, layer.lower())


def complete(entry: dict, oracle: Oracle) -> dict:
    """The drawn entry with what a catalog entry also holds: description, tags, tolerance (the id comes later)."""
    what = space.describe(entry)
    source = ("expected values from Keras" if oracle.is_keras
              else "expected values from the numpy reference, NOT Keras")
    tags = space.tags_of(entry) + ([] if oracle.is_keras else ["reference-oracle"])
    return {"id": "fuzz", **entry, "description": f"Found by lstm-conformance fuzz ({source}): {what}.",
            "tags": sorted(tags), "tolerance": dict(TOLERANCE)}


def build(entry: dict, oracle: Oracle, generated_by: dict | None = None, model: bool = False):
    """(metadata, arrays, extra files, reference result) of the fixture for ``entry``; its id names its content."""
    entry = complete(entry, oracle)
    p = parts(entry)
    ref = reference.outputs(p)
    meta, arrays = fixture_meta(entry, p, oracle.expected(p, ref), ref["trace"])
    meta["id"] = f"fuzz-{_slug(p.layer)}-{finish_meta(meta, arrays)['digest'][7:19]}"  # content-addressed
    files = {}
    if model and oracle.is_keras and not any(p.overrides.values()):
        try:  # as the generator does: the layer as a .keras file, for keras-load
            meta["model_file"], files = saved_model(p.layer, p.config, p.weights, p.inputs, p.calls)
        except Unsupported:
            pass
    if generated_by:
        meta["generated_by"] = generated_by
    return finish_meta(meta, arrays), arrays, files, ref


def in_memory(entry: dict, oracle: Oracle) -> tuple[Fixture, str | None]:
    """The fixture for ``entry``, and (Keras oracle) the reference's failure message if it disagrees with Keras."""
    meta, arrays, _, ref = build(entry, oracle)
    fixture = Fixture.from_memory(meta, arrays)
    if not oracle.is_keras:
        return fixture, None
    outcome = compare(fixture, _reference_expected(None, ref), REFERENCE_IMPL.name, __version__)
    return fixture, None if outcome.ok else outcome.message


# -- the search ------------------------------------------------------------------------------------

class _Found(Exception):
    """Raised inside the property: Hypothesis shrinks the example that raised it."""


@dataclasses.dataclass
class Finding:
    kind: str                    # "failed"/"error": the implementation's; "disagreement": Keras vs the reference;
    #                              "fuzzer-error": the oracle raised on a drawn configuration (nothing written)
    entry: dict                  # the shrunk catalog entry
    message: str                 # the suite's message for the written fixture (or the in-memory one)
    path: Path | None = None     # the fixture folder written
    citation: str | None = None
    reproduced: bool = True      # the written fixture, judged from disk, fails as the search did


@dataclasses.dataclass
class Result:
    impl: Implementation
    oracle: Oracle
    seed: int
    budget: int | None
    seconds: float | None
    layers: tuple
    tags: tuple
    database: str | None
    examples: int = 0            # examples run before the first failure (all of them if none failed);
    #                              an example the implementation does not support is not counted (``skipped``)
    shrink_examples: int = 0     # examples run while shrinking
    skipped: Counter = dataclasses.field(default_factory=Counter)   # Unsupported reasons
    rounds: int = 0
    round_seed: int | None = None
    round_budget: int | None = None
    elapsed: float = 0.0
    finding: Finding | None = None

    def replay_command(self) -> str:
        seed = self.seed if self.round_seed is None else self.round_seed
        budget = self.budget if self.round_budget is None else self.round_budget
        words = ["lstm-conformance", "fuzz", "--impl", self.impl.name, "--seed", str(seed), "--budget", str(budget)]
        for layer in self.layers if set(self.layers) != set(space.LAYERS) else ():
            words += ["--layer", layer]
        for tag in self.tags:
            words += ["--tag", tag]
        if not self.oracle.is_keras:
            words += ["--oracle", "reference"]
        return shlex.join(words)

    def text(self) -> str:
        """The report: what was searched, and the counterexample with its fixture, citation and repro commands."""
        limit = (f"budget {self.budget} examples" if self.seconds is None else
                 f"{self.seconds:g} s in {self.rounds} round(s) of {ROUND} examples (seeds from {self.seed})")
        lines = [f"lstm-conformance fuzz: implementation {self.impl.name!r} against {self.oracle.label}",
                 f"  seed {self.seed}, {limit}; layers {', '.join(self.layers)}; tags {', '.join(self.tags) or '-'}; "
                 f"hypothesis {_hypothesis_version()}; database {self.database or 'off'}"]
        skipped = sum(self.skipped.values())
        skips = [f"  {n} skipped: {reason}" for reason, n in self.skipped.most_common(5)]
        if self.finding is None:
            lines.append(f"no counterexample in {self.examples} examples ({skipped} more skipped as unsupported), "
                         f"{self.elapsed:.1f} s")
            return "\n".join([*lines, *skips])
        f = self.finding
        what = {"disagreement": "KERAS AND THE NUMPY REFERENCE DISAGREE (a finding for lstm-conformance itself)",
                "fuzzer-error": "THE ORACLE FAILED ON A DRAWN CONFIGURATION (a bug in lstm-conformance's fuzzer)",
                "error": "ERROR", "failed": "COUNTEREXAMPLE"}[f.kind]
        lines += [f"{what} after {self.examples} example{'' if self.examples == 1 else 's'}, shrunk in "
                  f"{self.shrink_examples} more "
                  f"({self.elapsed:.1f} s):", f"  {space.describe(f.entry)}", ""]
        lines += f.message.splitlines()
        lines.append("")
        if f.path is not None:
            lines.append(f"fixture written: {f.path}   cite as {f.citation}")
            if not f.reproduced:
                lines.append("  WARNING: the written fixture, judged from disk, did not fail as the search did "
                             "(is the implementation deterministic?)")
        lines.append(f"replay the search: {self.replay_command()}")
        return "\n".join([*lines, *skips])


def _hypothesis_version() -> str:
    import hypothesis
    return hypothesis.__version__


def cache_dir() -> Path:
    """``hypothesis`` in the project's user cache folder (``cache.user_cache_dir``: ``$LSTM_CONFORMANCE_CACHE``,
    else ``$XDG_CACHE_HOME/lstm-conformance``, else ``~/.cache/lstm-conformance``)."""
    return user_cache_dir() / "hypothesis"


def _database(impl: Implementation, oracle: Oracle, layers, tags, use: bool):
    """Hypothesis's example database for this (implementation, oracle, search space), in the user's cache.

    Hypothesis writes it atomically (a file per example, renamed into place), so concurrent runs
    (pytest-xdist workers) can share the folder.
    """
    if not use:
        return None, None
    from hypothesis.database import DirectoryBasedExampleDatabase
    key = json.dumps([impl.value, oracle.name, sorted(layers), sorted(tags), 1])
    path = cache_dir() / hashlib.sha256(key.encode()).hexdigest()[:16]
    return DirectoryBasedExampleDatabase(path), str(path)


@contextlib.contextmanager
def _seed_alone_decides():
    """Make a seed draw the same examples on every installation.

    Hypothesis (since 6.131) now and then draws a constant found in the source of the *local* modules
    loaded: an editable install, the user's port, anything under the working directory, cached in
    ``./.hypothesis/constants``. The same seed would then draw other examples in another checkout (and
    write to the working directory). The fuzzer turns that off while it searches; a Hypothesis without
    it is left as it is.
    """
    try:
        from hypothesis.internal.conjecture import providers
        original, cache, empty = providers._get_local_constants, providers.CONSTANTS_CACHE, providers.Constants()
    except (ImportError, AttributeError):
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.cache.clear()  # permitted constants computed with local ones
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.cache.clear()


def check_space(layers: Sequence[str] = (), tags: Sequence[str] = ()) -> tuple[tuple, tuple]:
    """The layers and tags to search, or FuzzUsageError naming what cannot be drawn."""
    layers = tuple(dict.fromkeys(layers)) or space.LAYERS
    unknown = [layer for layer in layers if layer not in space.LAYERS]
    if unknown:
        raise FuzzUsageError(f"--layer {unknown[0]!r}: the fuzzer draws {', '.join(space.LAYERS)}")
    tags = [vocabulary.canonical(tag) or tag for tag in tags]  # mask_trailing or mask-trailing
    unknown = [tag for tag in tags if tag not in space.TAGS]
    if unknown:
        raise FuzzUsageError(f"--tag {unknown[0]!r}: the fuzzer draws these tags: {', '.join(space.TAGS)}")
    if not space.layers_for(layers, tags):
        raise FuzzUsageError(f"no layer among {', '.join(layers)} can carry every tag of {', '.join(tags)} "
                             "(e.g. Keras refuses go_backwards under Bidirectional; stateful is single layers only; "
                             "a ConvLSTM layer is drawn alone, and with strides or dilation, one padding)")
    return layers, tuple(dict.fromkeys(tags))


def search(impl: Implementation, oracle: Oracle, *, seed: int = 0, budget: int | None = DEFAULT_BUDGET,
           seconds: float | None = None, layers: Sequence[str] = (), tags: Sequence[str] = (),
           out: Path | None = DEFAULT_OUT, database: bool = True, timeout: float = 60.0, shrink: bool = True) -> Result:
    """Fuzz ``impl`` against ``oracle``: ``budget`` examples with ``seed``, or rounds of ``ROUND`` examples
    (seeds ``seed``, ``seed + 1``, ...) for ``seconds``. A counterexample is shrunk and, unless ``out`` is
    None, written there as a fixture folder and judged again from disk (``shrink=False``: the first failing
    example as it was drawn, for benchmarks)."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.errors import Unsatisfiable

    layers, tags = check_space(layers, tags)
    db, db_path = _database(impl, oracle, layers, tags, database)
    result = Result(impl, oracle, seed, None if seconds is not None else budget, seconds, layers, tags, db_path)
    started = time.perf_counter()
    failing: dict = {}

    def count() -> None:
        if failing:
            result.shrink_examples += 1
        else:
            result.examples += 1

    def check(entry):
        try:
            fixture, disagreement = in_memory(entry, oracle)
        except Exception as exc:  # noqa: BLE001 - the oracle refused a drawn configuration: the fuzzer's bug
            detail = "".join(traceback.format_exception(exc)[-4:])
            count()
            failing.update(kind="fuzzer-error", entry=entry,
                           message=f"building the fixture with {oracle.label} raised {type(exc).__name__}:\n{detail}")
            raise _Found(str(exc)) from None
        if disagreement:
            count()
            failing.update(kind="disagreement", entry=entry, message=disagreement)
            raise _Found(disagreement)
        verdict = judge(Case(impl, fixture, out), timeout)
        if verdict.status is Status.SKIPPED:  # not an example: the budget counts what the implementation runs
            if not failing:
                result.skipped[verdict.reason] += 1
            reject()
        count()
        if verdict.status in (Status.FAILED, Status.ERROR):
            failing.update(kind=str(verdict.status), entry=entry, message=verdict.message)
            raise _Found(verdict.message)

    phases = [Phase.explicit, *([Phase.reuse] if db else []), Phase.generate, *([Phase.shrink] if shrink else [])]
    with _seed_alone_decides():
        round_index = 0
        while True:
            round_seed = seed + round_index
            examples = budget if seconds is None else ROUND
            property_ = settings(max_examples=examples, database=db, deadline=None, phases=phases, derandomize=False,
                                 verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False,
                                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                        HealthCheck.data_too_large])(
                hypothesis_seed(round_seed)(given(space.entries(layers, frozenset(tags)))(check)))
            result.rounds += 1
            try:
                property_()
            except Unsatisfiable:
                if result.skipped and not result.examples:
                    break  # the implementation supports none of the configurations drawn
                raise FuzzUsageError("Hypothesis could not draw configurations carrying every tag of "
                                     + ", ".join(tags)) from None
            except Exception:
                if not failing:
                    raise
            if failing or seconds is None or time.perf_counter() - started >= seconds:
                break
            round_index += 1
    if seconds is not None:
        result.round_seed, result.round_budget = round_seed, ROUND
    if failing:
        result.finding = _conclude(impl, oracle, result, failing, out, timeout)
    result.elapsed = time.perf_counter() - started
    return result


def _conclude(impl, oracle, result: Result, failing: dict, out: Path | None, timeout: float) -> Finding:
    """Write the shrunk counterexample and judge the written folder with the diagnosis, as the suite would."""
    from ..diagnosis.search import diagnose

    entry, kind = failing["entry"], failing["kind"]
    if kind == "fuzzer-error":  # no expected values to write
        return Finding(kind, entry, failing["message"])
    judged_impl = REFERENCE_IMPL if kind == "disagreement" else impl
    if out is None:
        fixture, _ = in_memory(entry, oracle)
        verdict = judge(Case(judged_impl, fixture), timeout, diagnose)
        return Finding(kind, entry, verdict.message, reproduced=verdict.status is not Status.PASSED)
    generated_by = {
        "generator": f"lstm-conformance fuzz {__version__}", "oracle": oracle.label,
        "implementation": impl.name,
        "fuzz_seed": str(result.seed if result.round_seed is None else result.round_seed),
        "fuzz_budget": str(result.budget if result.round_budget is None else result.round_budget),
        "replay": result.replay_command(), "hypothesis": _hypothesis_version(), **dict(oracle.provenance),
        "numpy": np.__version__, "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
    }
    meta, arrays, files, _ = build(entry, oracle, generated_by, model=True)
    try:
        folder = write_fixture(Path(out), meta, arrays, files)
    except OSError:  # another process (an xdist worker) wrote the same id at once: the same content
        folder = Path(out) / meta["id"]
        if not folder.is_dir():
            raise
    fixture = load_fixture(folder)
    fixture.verify_files()
    verdict = judge(Case(judged_impl, fixture, Path(out)), timeout, diagnose)
    return Finding(kind, entry, verdict.message, folder, fixture.citation, verdict.status is not Status.PASSED)

