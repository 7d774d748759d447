"""The composition algebra of mistakes: a ``Problem`` (a layer problem and how a port computes it) changed by a
``Mistake``, and two mistakes composed (``chain`` of ``Overrides``, ``pair``): the catalogue and the search build on it."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from ..semantics import reference
from ..semantics.problem import Problem as LayerProblem
from ..semantics.reference import Overrides
from ..semantics.tolerance import close


@dataclasses.dataclass(frozen=True)
class Problem(LayerProblem):
    """A layer problem as a port computes it: the reference with ``overrides``, its result changed by ``post``."""
    overrides: Overrides = reference.KERAS
    post: Callable[[dict], dict] | None = None   # the port's result made from what the reference computed

    def outputs(self) -> dict:
        result = reference.outputs(self, self.overrides)
        return result if self.post is None else self.post(result)

    def overridden(self, **pieces) -> "Problem":
        """This problem with ``pieces`` of ``Overrides`` applied after the ones it already has (a second mistake
        composes with the first: cells wrap, layer hooks run in turn; two different merges do not compose)."""
        return dataclasses.replace(self, overrides=chain(self.overrides, Overrides(**pieces)))

    def posted(self, post: Callable[[dict], dict]) -> "Problem":
        """This problem with ``post`` applied to the result after any ``post`` it already has."""
        first = self.post
        return dataclasses.replace(self, post=post if first is None else (lambda result: post(first(result))))


class NotComposable(Exception):
    """Two mistakes that replace the same piece (two Bidirectional merges): their pair is not evaluated."""


def chain(first: Overrides, second: Overrides) -> Overrides:
    """``first``'s overrides, then ``second``'s: ``second``'s cell wraps the cell ``first`` makes, and layer hooks
    run first's then second's."""
    def then(a, b, both):
        return b if a is None else a if b is None else both
    cell = then(first.cell, second.cell,
                lambda fam: second.cell(dataclasses.replace(fam, cell=first.cell(fam))))
    before = then(first.before_layer, second.before_layer,
                  lambda layer, config, inputs: second.before_layer(layer, *first.before_layer(layer, config, inputs)))
    after = then(first.after_layer, second.after_layer,
                 lambda layer, config, inputs, result: second.after_layer(
                     layer, config, inputs, first.after_layer(layer, config, inputs, result)))
    if first.merge is not None and second.merge is not None:
        raise NotComposable("two Bidirectional merges")
    return Overrides(cell=cell, before_layer=before, after_layer=after, merge=first.merge or second.merge)


@dataclasses.dataclass(frozen=True)
class Mistake:
    key: str
    description: str                            # completes "matches the reference computed with ..."
    transform: Callable[[Problem], Problem | None]  # None: the mistake does not apply to this fixture
    fixture: str                                # the gallery fixture tagged to catch it
    # the same mistake with its parameter read from the port's result (None: it has no parameter, or the result
    # does not show one); the diagnosis recomputes it so, the catalogue's own port uses ``transform``
    fit: Callable[[object, Mapping], "Mistake | None"] | None = None    # (fixture, result) -> the fitted mistake

    def outputs(self, fixture) -> dict | None:
        problem = self.transform(Problem.of(fixture))
        return None if problem is None else problem.outputs()

    def fitted(self, fixture, result: Mapping | None) -> "Mistake":
        found = None if self.fit is None or result is None else self.fit(fixture, result)
        return found or self


def pair(first: Mistake, second: Mistake) -> Mistake:
    """``first`` then ``second`` on one problem (its outputs: None where either does not apply; NotComposable
    raised where they replace the same piece)."""
    def transform(problem):
        changed = first.transform(problem)
        return None if changed is None else second.transform(changed)
    return Mistake(f"{first.key}+{second.key}", f"{first.description}, and {second.description}", transform, "")


# -- measuring a result against another (the catalogue's fitting and the search share these) --------

def _checked(fixture, result: Mapping) -> list[str]:
    """The expected outputs the result holds, as arrays of the expected shape (a partial port returns only some)."""
    return [k for k, v in fixture.expected.items()
            if isinstance(result.get(k), np.ndarray) and result[k].shape == np.shape(v)]


def _agrees(fixture, result: Mapping, wanted: Mapping, keys) -> bool:
    return all(np.shape(wanted.get(k)) == result[k].shape and close(result[k], wanted[k], fixture.tolerance).all()
               for k in keys)


def _computed(mistake_or_problem, fixture) -> dict | None:
    """A mistake's outputs on this fixture; None where it does not apply or cannot be computed here."""
    try:
        wrong = mistake_or_problem.outputs(fixture)
    except Exception:  # noqa: BLE001 - a mistake that cannot be computed here simply does not match
        return None
    return None if wrong is None else {k: v for k, v in wrong.items() if k != "trace"}


def _squared_error(result: Mapping, want: Mapping, keys) -> float:
    return float(sum(np.sum((np.asarray(result[k], np.float64) - np.asarray(want[k], np.float64)) ** 2)
                     for k in keys))
