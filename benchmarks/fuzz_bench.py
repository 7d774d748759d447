#!/usr/bin/env python3
"""How fast the fuzzer finds each catalogued mistake, and what the fixed gallery catches that it does not.

    python benchmarks/fuzz_bench.py                   # 5 seeds, the default budget, the numpy reference as oracle
    python benchmarks/fuzz_bench.py --seeds 10 --oracle keras

For every mistake of ``conformance/mistakes.py`` (a port with that one mistake, ``conformance.fuzz.mistaken``)
and for a few port bugs the catalogue does not list, it runs ``fuzz`` with seeds 0..N-1 and reports
the examples needed to find a counterexample (median and worst, shrinking not counted), the
counterexample seed 0 shrinks to, and how many gallery fixtures fail the same port. It ends with
the mistakes the gallery catches that fuzzing does not (within the budget), and the reverse.
Reported in README; never asserted (``tests/meta/test_fuzz.py`` asserts every mistake is found with seed 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from conformance import list_fixtures, reference, wrappers
from conformance.compare import matches
from conformance.fuzz import engine, mistaken, space
from conformance.mistakes import CATALOGUE
from conformance.registry import Implementation


# -- port bugs the catalogue does not list: what a fixed gallery can miss ------------------------------

def _port(name: str, change):
    """A port that computes the reference on ``change(layer, config, inputs)`` (None: unchanged)."""
    def run(fixture):
        layer, config, inputs = fixture.layer, dict(fixture.config), dict(fixture.inputs)
        changed = change(layer, config, inputs)
        if changed is not None:
            config, inputs = changed
        result = reference.compute(layer, config, fixture.weights, fixture.gates, fixture.activations, inputs,
                                   calls=fixture.meta.get("calls"))
        return {k: np.asarray(v, np.float32) for k, v in result.items() if k != "trace"}
    return Implementation(name, f"benchmarks:{name}", _loader=lambda: run)


def _zero_output_only_for_lstm(layer, config, inputs):
    """zero_output_for_mask honoured in the LSTM code path only (GRU and SimpleRNN repeat the previous output)."""
    if layer in ("GRU", "SimpleRNN") and config.get("zero_output_for_mask"):
        return {**config, "zero_output_for_mask": False}, inputs
    if layer == "Stacked":
        layers = [{**sub, "config": {**sub["config"], "zero_output_for_mask": False}} if sub["layer"] != "LSTM"
                  else sub for sub in config["layers"]]
        return {**config, "layers": layers}, inputs
    return None


def _simple_rnn_mask_not_reversed(layer, config, inputs):
    """SimpleRNN under go_backwards reverses the input but reads the mask forwards (LSTM and GRU are right)."""
    if layer == "SimpleRNN" and config.get("go_backwards") and "mask" in inputs:
        return config, {**inputs, "mask": np.ascontiguousarray(inputs["mask"][:, ::-1])}
    return None


def _stack_port(fixture):
    """A stack that masks its first layer only (Keras propagates the mask to every layer)."""
    if fixture.layer != "Stacked" or "mask" not in fixture.inputs:
        result = reference.compute(fixture.layer, fixture.config, fixture.weights, fixture.gates, fixture.activations,
                                   fixture.inputs, calls=fixture.meta.get("calls"))
        return {k: np.asarray(v, np.float32) for k, v in result.items() if k != "trace"}
    x, out = fixture.inputs["x"], {}
    for k, sub in enumerate(fixture.config["layers"]):
        prefix = wrappers.layer_prefix(k)
        inputs = {"x": x, **wrappers.sub_mapping(fixture.inputs, prefix)}
        if k == 0:
            inputs["mask"] = fixture.inputs["mask"]
        result = reference.forward(sub["layer"], sub["config"], wrappers.sub_mapping(fixture.weights, prefix),
                                   wrappers.sub_mapping(fixture.gates, prefix), fixture.activations[prefix], inputs)
        x = result["output"]
        out.update({f"{prefix}/{n}": np.asarray(v, np.float32) for n, v in result.items()
                    if n.startswith("state_")})
    out["output"] = np.asarray(x, np.float32)
    return out


OFF_CATALOGUE = {
    "zero-output-for-mask-lstm-only": _port("zero-output-for-mask-lstm-only", _zero_output_only_for_lstm),
    "simple-rnn-go-backwards-mask-not-reversed": _port("simple-rnn-go-backwards-mask-not-reversed",
                                                       _simple_rnn_mask_not_reversed),
    "stacked-mask-first-layer-only": Implementation("stacked-mask-first-layer-only", "benchmarks:stack",
                                                    _loader=lambda: _stack_port),
}


# -- measuring ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    name: str
    in_catalogue: bool
    gallery: int                    # gallery fixtures the port fails
    found: list                     # examples-to-find per seed (None: not found within the budget)
    shrunk: str = "-"

    @property
    def hits(self) -> list:
        return [n for n in self.found if n is not None]


def gallery_kills(impl: Implementation, gallery) -> int:
    run = impl.load()
    return sum(not matches(f, {k: v for k, v in run(f.isolated()).items() if k != "trace"}) for f in gallery)


def measure(name, impl, in_catalogue, gallery, oracle, seeds, budget) -> Row:
    row = Row(name, in_catalogue, gallery_kills(impl, gallery), [])
    for seed in range(seeds):
        result = engine.search(impl, oracle, seed=seed, budget=budget, out=None, database=False, shrink=seed == 0)
        row.found.append(result.examples if result.finding else None)
        if seed == 0 and result.finding:
            row.shrunk = space.describe(result.finding.entry).split("; values drawn")[0]
    return row


def table(rows, seeds, budget) -> list[str]:
    lines = [f"| port with | gallery fixtures failing it | fuzz: found in {seeds} seeds | median examples to find "
             f"| worst | seed 0 shrinks to |", "|---|---|---|---|---|---|"]
    for r in rows:
        hits = r.hits
        median = f"{statistics.median(hits):g}" if hits else "-"
        worst = f"{max(hits)}" if len(hits) == len(r.found) else f">{budget}"
        name = r.name if r.in_catalogue else f"{r.name} (not in the catalogue)"
        lines.append(f"| {name} | {r.gallery} | {len(hits)}/{len(r.found)} | {median} | {worst} | {r.shrunk} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per port (default 5)")
    parser.add_argument("--budget", type=int, default=engine.DEFAULT_BUDGET,
                        help=f"examples per search (default {engine.DEFAULT_BUDGET}, the fuzzer's)")
    parser.add_argument("--oracle", choices=["reference", "keras"], default="reference")
    parser.add_argument("--only", action="append", default=[], metavar="KEY", help="only these ports (repeatable)")
    args = parser.parse_args(argv)

    oracle = engine.choose_oracle(args.oracle)
    gallery = list_fixtures().fixtures
    ports = [(m.key, mistaken.implementation(m), True) for m in CATALOGUE]
    ports += [(name, impl, False) for name, impl in OFF_CATALOGUE.items()]
    ports = [p for p in ports if not args.only or p[0] in args.only]
    started = time.perf_counter()
    rows = [measure(name, impl, known, gallery, oracle, args.seeds, args.budget) for name, impl, known in ports]
    elapsed = time.perf_counter() - started
    print(f"fuzz benchmark: oracle {oracle.label}; budget {args.budget} examples; seeds 0..{args.seeds - 1}; "
          f"gallery {len(gallery)} fixtures; {elapsed:.0f} s")
    print("\n".join(table(rows, args.seeds, args.budget)))
    catalogue = [r for r in rows if r.in_catalogue and r.hits]
    if catalogue:
        medians = {r.name: statistics.median(r.hits) for r in catalogue}
        others = [m for name, m in medians.items() if not name.startswith("lstm-gate-order-")]
        print(f"\ncatalogue: {sum(len(r.hits) == len(r.found) for r in catalogue)} of "
              f"{sum(r.in_catalogue for r in rows)} mistakes found with every seed; median of the per-mistake "
              f"medians {statistics.median(medians.values()):g} (without the LSTM gate orders, "
              f"{statistics.median(others) if others else 0:g}); worst {max(n for r in catalogue for n in r.hits)}")
    gallery_only = [r.name for r in rows if r.gallery and len(r.hits) < len(r.found)]
    fuzz_only = [r.name for r in rows if not r.gallery and r.hits]
    print(f"caught by the gallery, missed by fuzzing with some seed: {', '.join(gallery_only) or 'none'}")
    print(f"caught by fuzzing, missed by the gallery: {', '.join(fuzz_only) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
