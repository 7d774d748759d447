"""The lstm-conformance command: list, show, explain, verify and run fixtures without pytest or TensorFlow.

Each subcommand is a thin layer over the package (loader, reference, suite);
output is plain text that also pastes into GitHub Markdown (fenced blocks).
Exit status: 0 fine, 1 something failed (a fixture, an implementation), 2 bad usage.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from pathlib import Path

from . import __version__, fuzz
from .errors import FixtureError, Unsupported
from .format.fixtures import SAFE_ID, Fixture, list_fixtures, load_fixture, resolve_citation, select, short_digest
from .judge import options, registry, session
from .judge.options import ENV_FIXTURES, OPTIONS, dest
from .report.gallery import DEFAULT_MAX_BYTES, shape_text
from .text import printable


class UsageError(session.UsageError):
    """Bad input from the command line (unknown fixture, wrong digest, missing folder): exit 2."""


def fixtures_dir(args) -> Path:
    return options.fixtures_dir(args.fixtures_dir)


def load_listing(args):
    try:
        return list_fixtures(fixtures_dir(args))
    except FixtureError as exc:
        raise UsageError(str(exc)) from None


def find(args) -> Fixture:
    """The fixture cited as ``ID`` or ``ID@sha256:prefix``, with its arrays loaded (verified).

    Only the cited folder is read (a full listing parses every YAML); the digest is checked as in a listing.
    """
    root = fixtures_dir(args)
    if not root.is_dir():
        raise UsageError(f"{root}: fixtures folder does not exist")
    fid = args.citation.partition("@")[0]
    folder = root / fid
    if not SAFE_ID.fullmatch(fid) or not folder.is_dir():
        raise UsageError(f"{fid}: no fixture with this id (in {root})")
    try:
        fixture = resolve_citation([load_fixture(folder)], args.citation)
        fixture.arrays  # noqa: B018 - reading loads and verifies the arrays
    except FixtureError as exc:
        raise UsageError(str(exc)) from None
    return fixture


# -- list -----------------------------------------------------------------------------------------

def _list_shapes(fixture: Fixture) -> tuple[str, str]:
    """x's shape and the first output's, with a count of the rest (the table stays one screen wide);
    ``?`` where the YAML's arrays table is malformed (the schema, checked on opening, says how)."""
    try:
        return _shapes_of(fixture)
    except Exception:  # noqa: BLE001 - listing checks only the YAML's digest: one odd row must not stop the table
        return "?", "?"


def _shapes_of(fixture: Fixture) -> tuple[str, str]:
    spec, outs = fixture.meta["arrays"], [n for n in fixture.meta["outputs"] if n in fixture.meta["arrays"]]
    first = f"{outs[0]} {shape_text(spec[outs[0]]['shape'])}" if outs else "-"
    return shape_text(spec["x"]["shape"]), first + (f" +{len(outs) - 1}" if len(outs) > 1 else "")


def cmd_list(args) -> int:
    listing = load_listing(args)
    chosen = [f for f in select(listing.fixtures, args.fixture_id, args.fixture_tag)
              if not args.layer or f.layer.lower() == args.layer.lower()]
    rows = [tuple(printable(cell, keep="") for cell in (f.id, f.layer, *_list_shapes(f), short_digest(f.digest),
                                                         ", ".join(map(str, f.tags))))
            for f in chosen]
    header = ("id", "layer", "x", "output", "digest", "tags")
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"({len(rows)} of {len(listing.fixtures)} fixtures in {listing.root})")
    for error in listing.errors:
        print(printable(f"ERROR {error}", keep=""), file=sys.stderr)
    return 1 if listing.errors else 0


# -- show -----------------------------------------------------------------------------------------

def precision_arg(text: str) -> int:
    """``--precision N``: fixed decimals instead of the default float32-exact values."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of decimals (0 or more), got {text!r}")
    return value


def cmd_show(args) -> int:
    fixture = find(args)
    if args.format == "json":  # the export's document of this one fixture (SPEC 11), to attach to an issue
        from .format.export import dumps, fixture_to_json
        sys.stdout.write(dumps(fixture_to_json(fixture)))
        return 0
    from .report.gallery import fixture_markdown
    print(printable(fixture_markdown(fixture, precision=args.precision)))
    return 0


# -- explain --------------------------------------------------------------------------------------

def explain_text(fixture: Fixture, batch: int = 0, precision: int | None = None) -> str:
    """``report.explain.explain_text``, its refusals as usage errors (exit 2)."""
    from .report.explain import ExplainError, explain_text as text
    try:
        return text(fixture, batch, precision)
    except ExplainError as exc:
        raise UsageError(str(exc)) from None


def cmd_explain(args) -> int:
    print(printable(explain_text(find(args), args.batch, args.precision)))
    return 0


# -- verify ---------------------------------------------------------------------------------------

def cmd_verify(args) -> int:
    """Every file each fixture's YAML lists: the YAML digest, every array's sha256, the model file's sha256 and,
    where Keras 3 is importable, that the model file holds the fixture's weight arrays; and the Keras 2 file
    the gallery's keras2-h5.yaml lists for it: its binding to the fixture's digest and its sha256 (SPEC 12).
    Every model file's config is checked first, without Keras (SPEC 13.1): only built-in recurrent models.

    Keras is imported only when a model file has passed its sha256 and its config check. The set digest covers
    the verified fixtures.
    """
    from .format.fixtures import Listing
    listing = load_listing(args)
    if not listing.fixtures and not listing.errors:
        raise UsageError(f"{listing.root}: no fixture in this folder (a fixture is a folder holding fixture.yaml)")
    check_weights, keras = None, ""
    failed = len(listing.errors)
    for error in listing.errors:
        print(printable(f"FAILED {error}", keep=""))
    verified, unchecked = [], []  # unchecked: .h5 files whose config h5py is not here to read
    for fixture in listing.fixtures:
        try:
            model = fixture.verify_files()[1:]  # [model file name] when the fixture lists one
            if model:  # what it asks Keras to build, checked without Keras (SPEC 13.1)
                check_model_config(fixture.path / model[0], fixture.model_file()[1])
            legacy_file = keras2_file(fixture, unchecked)  # the Keras 2 model.h5 where keras2-h5.yaml lists one
            if model and not keras:
                from .adapters.keras_load import weights_checker
                check_weights, keras = weights_checker()
            if model and check_weights is not None:
                check_weights(fixture)
        except FixtureError as exc:
            failed += 1
            print(printable(f"FAILED {fixture.id}: {exc}", keep=""))
            continue
        verified.append(fixture)
        print(f"OK     {fixture.citation} ({', '.join([f'{len(fixture.arrays)} arrays', *model, *legacy_file])})")
    digest = f"set {Listing(listing.root, verified, []).set_digest}" if verified else "no valid fixture, no set digest"
    print(f"{len(verified)} of {len(verified) + failed} fixtures verified in {listing.root}; {digest}")
    if keras:
        print(f"model files: sha256 and weights checked ({keras})" if check_weights is not None else
              f"model files: sha256 and config checked, not their weights ({keras})")
    if unchecked:
        print(f"Keras 2 model files: config not checked for {len(unchecked)} ({unchecked[0]}), h5py is not "
              "installed (nor is a Keras that could load them)")
    return 1 if failed else 0


def check_model_config(where: Path, data: bytes) -> None:
    """The model file's config allows only built-in recurrent models (``model_config``); FixtureError otherwise."""
    from .format.model_config import check_file
    check_file(data, where)


def keras2_file(fixture, unchecked: list) -> list[str]:
    """``[file]`` when keras2-h5.yaml lists a Keras 2 file for the fixture (bound, sha256- and config-checked),
    else []. A file whose config cannot be read here (no h5py) is added to ``unchecked``."""
    from .errors import NotApplicable
    from .format.keras2_h5 import h5_file
    try:
        entry, data = h5_file(fixture)
    except NotApplicable:
        return []
    try:
        check_model_config(fixture.path.parent / entry["file"], data)
    except Unsupported:
        unchecked.append(entry["file"])
    return [entry["file"].rpartition("/")[2]]


# -- run ------------------------------------------------------------------------------------------

def cmd_run(args) -> int:
    """The suite without pytest: the same session, ledger, table and JSON summary as the plug-in."""
    from . import cache
    from .judge.options import OPTIONS, dest
    from .report.progress import Progress
    from .judge.session import Results, Session

    run = Session.open(**{dest(flag): getattr(args, dest(flag)) for flag, _ in OPTIONS})
    print("\n".join(run.header_lines()))
    started = time.perf_counter()
    results = Results(run)
    progress = Progress()
    results.selected = [case.id for case in run.cases]
    if args.conformance_json:  # written first too: a process killed mid-run leaves every case listed as not run
        try:
            results.write_json(args.conformance_json)
        except session.SummaryError:
            pass  # reported once, by the write at the end, after the table
    for case in run.cases:
        cache.take_lookups()
        verdict, record = run.run(case)
        results.add(record)
        for line in progress.add(cache.take_lookups()):
            print(line, flush=True)
        if verdict.status in ("failed", "error", "crashed"):
            print(printable(f"\n{verdict.status.upper()} {case.id}\n{verdict.message}"))
    print("", *results.table_lines(), *progress.summary_lines(), sep="\n")
    for entry in results.unmatched_ledger():
        print(f"    WARNING unmatched ledger {entry.label} ({run.ledger_path})")
    print(f"{len(results.records)} cases in {time.perf_counter() - started:.2f} s")
    if args.conformance_json:
        try:
            results.write_json(args.conformance_json)
        except session.SummaryError as exc:  # the table is printed above; the run fails with one line
            print(f"ERROR {exc}", file=sys.stderr)
            return 1
        print(f"JSON summary written to {args.conformance_json} ({len(results.records)} cases)")
    return 1 if results.bad else 0


# -- export, report, gallery ----------------------------------------------------------------------

def cmd_export(args) -> int:
    """Write ``DIR/<id>.json`` per fixture; DIR must be new or empty unless ``--force`` (``check_out_dir``)."""
    from .format.export import ExportTargetError, check_out_dir, export_json  # imported only when asked for
    try:
        check_out_dir(args.out_dir, force=args.force)
    except ExportTargetError as exc:
        raise UsageError(str(exc)) from None
    listing = load_listing(args)
    chosen, errors = chosen_fixtures(listing, args.fixture_id)
    for error in errors:
        print(printable(f"ERROR {error}", keep=""), file=sys.stderr)
    try:
        written = export_json(chosen, Path(args.out_dir))
    except OSError as exc:  # e.g. a parent that is a file, no permission, a folder named <id>.json
        raise UsageError(f"cannot write the export to {args.out_dir}: {exc}") from None
    print(f"exported {len(written)} fixture{'s' * (len(written) != 1)} as {args.format} to {args.out_dir}")
    return 1 if errors else 0


def chosen_fixtures(listing, patterns: list[str]):
    """The fixtures (and broken ones) whose id matches any of ``patterns`` (all when none); a pattern that
    matches nothing is a usage error, as in the suite's ``--fixture-id``."""
    if not patterns:
        return listing.fixtures, listing.errors
    names = [f.id for f in listing.fixtures] + [Path(e.where).parent.name for e in listing.errors]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise UsageError(f"--fixture-id {', '.join(unmatched)}: no fixture in {listing.root} matches"
                         f"{registry.did_you_mean(unmatched[0], names)}")
    keep = lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)  # noqa: E731
    return ([f for f in listing.fixtures if keep(f.id)],
            [e for e in listing.errors if keep(Path(e.where).parent.name)])


def cmd_report(args) -> int:
    from .report import matrix as report
    argv = [args.results_dir] + [item for flag, value in (("--md", args.md), ("--html", args.html),
                                                          ("--ports-md", args.ports_md), ("--ports-html", args.ports_html))
                                 if value for item in (flag, value)]
    return int(report.main(argv) or 0)


def cmd_cache(args) -> int:
    from . import cache
    if args.action == "clear":
        where, count = cache.clear(args.tool)
        print(f"removed {count} cached conversion{'s' * (count != 1)} from {where}")
        return 0
    print(f"conversion cache: {cache.conversions_dir()}" + ("" if cache.enabled() else f" (off: ${cache.ENV_OFF})"))
    rows = cache.summary()
    for tool, entries, size in rows:
        print(f"  {tool:16} {entries:6} entries {size / 1e6:9.1f} MB")
    if not rows:
        print("  (empty)")
    left = cache.leftovers()
    if left:  # building folders: a live conversion's, or a killed one's (swept at that tool's next conversion)
        stale = [item for item in left if item.stale]
        print(f"  {len(left)} building folder{'s' * (len(left) != 1)} ({sum(i.size for i in left) / 1e6:.1f} MB), "
              f"{len(stale)} left by a killed process (swept at the next conversion for that tool)")
        for item in left:
            print(f"    {item.path} {'stale' if item.stale else 'in use'}")
    return 0


GALLERY_REPLACED = ("README.md and files named <id>.md and <id>.png are replaced, pages this command wrote "
                    "earlier for fixtures no longer there are removed, everything else is left as it is")


def cmd_gallery(args) -> int:
    """Render into OUT_DIR, which must be new or empty unless ``--force`` (export's rule, ``outdir``)."""
    from .report.gallery import render
    from .outdir import OutDirError, check_out_dir
    try:
        check_out_dir(args.out_dir, args.force, "render the gallery", GALLERY_REPLACED)
    except OutDirError as exc:
        raise UsageError(str(exc)) from None
    listing = load_listing(args)
    summary = render(listing.fixtures, Path(args.out_dir), plots=not args.no_plots, max_bytes=args.max_bytes,
                     errors=listing.errors)
    print(f"gallery: {summary['fixtures']} pages, {summary['plots']} plots ({summary['png_bytes'] / 1e3:.0f} kB), "
          f"{summary['total_bytes'] / 1e3:.0f} kB in {args.out_dir}")
    if summary["note"]:
        print(summary["note"])
    for error in summary["errors"]:
        print(printable(f"ERROR {error}", keep=""), file=sys.stderr)
    return 1 if summary["errors"] else 0


# -- argument parsing -----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--fixtures-dir", metavar="DIR", default=None,
                        help=f"folder of fixtures (default ${ENV_FIXTURES} or the shipped gallery)")
    top = argparse.ArgumentParser(prog="lstm-conformance", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"lstm-conformance {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="table of fixtures (id, layer, shapes, tags, digest)")
    p.add_argument("--fixture-id", "--id", action="append", default=[], metavar="GLOB",
                   help="only ids matching this glob (repeatable)")
    p.add_argument("--fixture-tag", "--tag", action="append", default=[], metavar="TAG",
                   help="only fixtures with this tag (repeatable: all must match)")
    p.add_argument("--layer", help="only fixtures of this layer (LSTM, GRU, SimpleRNN, ...)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", parents=[common], help="a Markdown snippet of one fixture for a bug report")
    p.add_argument("citation", metavar="ID[@[sha256:]PREFIX]")
    p.add_argument("--precision", type=precision_arg, default=None, metavar="N",
                   help="N fixed decimals (default: every value exactly, as the shortest float32 repr)")
    p.add_argument("--format", choices=["markdown", "json"], default="markdown",
                   help="markdown (default): the snippet for a bug report; json: the fixture as `export` writes it")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("explain", parents=[common], help="step by step: gate columns, gate values, c and h")
    p.add_argument("citation", metavar="ID[@[sha256:]PREFIX]")
    p.add_argument("--batch", type=int, default=0, metavar="N", help="batch row to walk through (default 0)")
    p.add_argument("--precision", type=precision_arg, default=None, metavar="N",
                   help="N fixed decimals (default: every value exactly, as the shortest float32 repr)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("verify", parents=[common],
                       help="check every file each fixture lists: YAML digest, arrays and model file sha256, "
                            "and (with Keras 3) the model file's weights")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("run", help="run the suite without pytest: the plug-in's options, table and JSON summary")
    for flag, kwargs in OPTIONS:
        p.add_argument(flag, dest=dest(flag), **kwargs)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("fuzz", help="differential fuzzing: shrink a disagreement with Keras to a fixture "
                                    "for the bug report")
    fuzz.add_arguments(p)
    p.set_defaults(func=fuzz.main)

    p = sub.add_parser("export", parents=[common], help="write every fixture as plain JSON for non-Python ports",
                       description="Write DIR/<id>.json for every fixture. DIR must be a new or empty folder, "
                                   "unless --force.")
    p.add_argument("--format", choices=["json"], default="json")
    p.add_argument("--fixture-id", "--id", action="append", default=[], metavar="GLOB",
                   help="only fixtures whose id matches this glob (repeatable: any may match)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder: files named <id>.json are replaced, everything else "
                        "(including documents of other fixtures from an earlier export) is left as it is")
    p.add_argument("out_dir", metavar="DIR", help="a new or empty folder (see --force)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="build the version-matrix report from JSON results")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--md", metavar="PATH")
    p.add_argument("--html", metavar="PATH")
    p.add_argument("--ports-md", metavar="PATH", help="the 'which ports are right' table (Markdown)")
    p.add_argument("--ports-html", metavar="PATH", help="the same as a self-contained HTML page")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("cache", help="the conversion cache in the user's cache folder: where, how big, clear it")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("tool", nargs="?", help="only this tool's conversions (clear)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("gallery", parents=[common], help="render the browsable gallery (Markdown index and pages)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="a new or empty folder (see --force)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder (regenerating docs/gallery): README.md, <id>.md and "
                        "<id>.png are replaced, stale pages this command wrote are removed, the rest is left")
    p.add_argument("--no-plots", action="store_true", help="skip the trace plots (needs matplotlib otherwise)")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"drop the plots if the gallery would be larger than this (default {DEFAULT_MAX_BYTES / 1e6:g} MB)")
    p.set_defaults(func=cmd_gallery)
    return top


def main(argv=None) -> int:
    top = parser()
    args, unknown = top.parse_known_args(argv)
    if unknown:  # said by the command's own parser, so the usage shown is that command's
        commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except session.UsageError as exc:
        print(printable(f"lstm-conformance {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lstm-conformance list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
