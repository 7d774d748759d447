"""README.md and SPEC.md quote citations and a worked digest: they must stay true of the gallery."""

import re

import pytest

from conformance.fixtures import UNDIGESTED_FIELDS, canonical_json, resolve_citation

from conftest import REPO  # noqa: E402
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

    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(# my_port/__init__.py\n.*?)```", readme, flags=re.S).group(1)
    body = code.replace("    ...", "    from conformance.reference import forward\n"
                        "    out = forward('LSTM', fixture.config, fixture.weights, fixture.gates, "
                        "fixture.activations, fixture.inputs)\n"
                        "    output, h, c = out['output'], out['state_h'], out['state_c']", 1)
    namespace: dict = {}
    exec(compile(body, "README.md skeleton", "exec"), namespace)  # noqa: S102 - the project's own README
    port = Implementation("readme-skeleton", "README.md", _loader=lambda: namespace["run"])
    verdicts = {f.id: judge(Case(port, f)) for f in gallery}
    assert {v.status for v in verdicts.values()} == {"passed", "skipped"}, \
        {k: v.message for k, v in verdicts.items() if v.status not in ("passed", "skipped")}
    stateful = [f.id for f in gallery if f.meta.get("calls") and f.layer == "LSTM"]
    assert stateful and all("stateful" in verdicts[fid].message for fid in stateful)
    assert sum(v.status == "passed" for v in verdicts.values()) > 20
