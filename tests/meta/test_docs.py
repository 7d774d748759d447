"""README.md and SPEC.md quote citations and a worked digest: they must stay true of the gallery."""

import re

import pytest

from conformance.fixtures import UNDIGESTED_FIELDS, canonical_json, resolve_citation

from helpers.repo import REPO
CITATION = re.compile(r"\b([a-z0-9][a-z0-9._-]*@sha256:[0-9a-f]{8})\b")


@pytest.mark.parametrize("doc", ["README.md", "SPEC.md"])
def test_every_quoted_citation_resolves(doc, gallery):
    cited = set(CITATION.findall((REPO / doc).read_text()))
    # my-…, id@… are placeholders; fuzz-… is the fuzzer example's fixture, written to its own folder
    real = [c for c in cited if not c.startswith(("my-", "id@", "fuzz-"))]
    assert real, f"{doc} quotes no citation of the gallery"
    for citation in real:
        resolve_citation(gallery, citation)  # raises FixtureError on a stale digest


def test_spec_worked_digest_matches_the_fixture(gallery):
    spec = (REPO / "SPEC.md").read_text()
    fixture = next(f for f in gallery if f.id == "lstm-seed-question")
    content = canonical_json({k: v for k, v in fixture.meta.items() if k not in UNDIGESTED_FIELDS})
    size = int(re.search(r"The canonical JSON is (\d+) bytes", spec).group(1))
    digest = re.search(r"Its sha256 is `([0-9a-f]{64})`", spec).group(1)
    assert size == len(content.encode())
    assert f"sha256:{digest}" == fixture.digest


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_spec_contents_number_and_link_the_headings_they_name():
    spec = (REPO / "SPEC.md").read_text()
    headings = {_slug(h): h for h in re.findall(r"^##+ (.+)$", spec, flags=re.M)}
    contents = re.search(r"^Contents: (.+?)\n\n", spec, flags=re.M | re.S).group(1)
    entries = re.findall(r"\[(\d+) [^\]]+\]\(#([^)]+)\)", contents)
    assert len(entries) >= 10
    for number, anchor in entries:
        assert anchor in headings, f"SPEC contents link #{anchor} names no heading"
        assert headings[anchor].startswith(f"{number}. "), f"contents say {number}, heading is {headings[anchor]!r}"
    local = set(re.findall(r"\]\(#([^)]+)\)", spec))
    assert local <= set(headings), f"links to missing headings: {sorted(local - set(headings))}"


def test_readme_port_skeleton_skips_what_it_does_not_implement(gallery):
    """The README's skeleton, its ``...`` filled with an LSTM computation, passes or skips every fixture."""
    from conformance.registry import Implementation
    from conformance.suite import Case, judge

    from test_readme_commands import readme_port_source
    body = readme_port_source()
    namespace: dict = {}
    exec(compile(body, "README.md skeleton", "exec"), namespace)  # noqa: S102 - the project's own README
    port = Implementation("readme-skeleton", "README.md", _loader=lambda: namespace["run"])
    verdicts = {f.id: judge(Case(port, f)) for f in gallery}
    assert {v.status for v in verdicts.values()} == {"passed", "skipped"}, \
        {k: v.message for k, v in verdicts.items() if v.status not in ("passed", "skipped")}
    stateful = [f.id for f in gallery if f.meta.get("calls") and f.layer == "LSTM"]
    assert stateful and all("stateful" in verdicts[fid].message for fid in stateful)
    assert sum(v.status == "passed" for v in verdicts.values()) > 20


# -- README: short lines, commands that parse, links that resolve, figures at today's gallery size ---------

DOCS = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _readme_words() -> list[list[str]]:
    """README's commands (one parser: tests/meta/test_readme_commands.py), each split into words."""
    import shlex
    from test_readme_commands import readme_commands
    return [shlex.split(command) for command in readme_commands()]


README_COMMANDS = _readme_words()


@pytest.mark.parametrize("doc", ["README.md", "docs/guide.md"])
def test_prose_lines_fit_in_120_characters(doc):
    """Hand-written prose (not code blocks, not table rows, which cannot wrap) stays within 120 characters."""
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), (REPO / doc).read_text(), flags=re.S)
    long = [n for n, line in enumerate(text.splitlines(), 1) if len(line) > 120 and not line.startswith("|")]
    assert not long, f"{doc} lines over 120 characters: {long}"


@pytest.mark.parametrize("words", [c for c in README_COMMANDS if c[0] == "lstm-conformance"], ids=" ".join)
def test_readme_cli_commands_parse(words):
    from conformance.cli import parser
    top = parser()
    try:
        args, unknown = top.parse_known_args(words[1:])
    except SystemExit as exc:
        pytest.fail(f"README command does not parse (exit {exc.code}): {' '.join(words)}")
    assert not unknown, f"unrecognized arguments {unknown} in README command: {' '.join(words)}"


@pytest.mark.parametrize("words", [c for c in README_COMMANDS if c[0].endswith("pytest")], ids=" ".join)
def test_readme_pytest_commands_parse(words):
    """pytest's own parser, with every plug-in the command names (``--help``: nothing is collected or run)."""
    import subprocess
    import sys
    # README's placeholders (a user's folder, a user's port) stand for real ones; every option is parsed as written
    real = {"DIR": str(REPO / "fixtures"), "my-port": "numpy-reference", "my_port:run": "conformance.reference:run",
            "cmd:./my-engine": "numpy-reference"}
    args = [real.get(w, w) for w in words[1:]]
    done = subprocess.run([sys.executable, "-m", "pytest", *args, "--help", "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(words)}: exit {done.returncode}\n{done.stderr[-2000:]}"


def test_readme_test_command_is_what_ci_runs():
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci[-1] == "tox"  # .ci/run ends with the plain default envlist
    assert ["tox"] in README_COMMANDS, "README does not give `tox` (what .ci/run runs) as the test command"


@pytest.mark.parametrize("doc", ["SPEC.md", "docs/guide.md", "docs/EXTENDING.md"])
def test_cited_source_paths_exist(doc):
    """A file of the repository named in backticks (`conformance/judge/suite.py`) exists: moves update the docs."""
    cited = re.findall(r"`((?:conformance|tests|benchmarks|examples|catalog)/[\w/.-]+\.(?:py|yaml|json|md))`",
                       (REPO / doc).read_text())
    assert cited, f"{doc} names no source file: the pattern is stale"
    missing = [p for p in cited if not (REPO / p).exists()]
    assert not missing, f"{doc}: cited files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            headings = {_slug(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)}
            if anchor not in headings:
                broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)}: links that resolve to nothing: {broken}"


GALLERY_SIZE = re.compile(r"(?:\bat|×|\bof|\bover) (\d+) fixtures|(\d+)[- ]fixture gallery|\((\d+) fixtures\)")


def test_readme_figures_are_at_the_gallery_size_counted_now(gallery):
    readme = (REPO / "README.md").read_text()
    figures = re.search(r"^## Measured figures.*?(?=^## )", readme, flags=re.M | re.S).group(0)
    sizes = {int(next(g for g in m if g)) for m in GALLERY_SIZE.findall(readme)}
    assert sizes == {len(gallery)}, f"README quotes gallery sizes {sorted(sizes)}; the gallery has {len(gallery)}"
    assert GALLERY_SIZE.search(figures), "README's measured figures do not say the gallery size"
    assert f"**{len(gallery)} seeded fixtures" in readme


def test_benchmark_figures_are_at_one_gallery_size_counted_now(gallery):
    text = (REPO / "benchmarks" / "README.md").read_text()
    sizes = {int(next(g for g in m if g)) for m in GALLERY_SIZE.findall(text)}
    assert sizes == {len(gallery)}, f"benchmarks/README.md quotes gallery sizes {sorted(sizes)}, not {len(gallery)}"
