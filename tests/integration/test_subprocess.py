"""The subprocess protocol (``--impl cmd:...``) and the JavaScript port that proves it.

The well-behaved engine is the real Node.js port in ``examples/js-port``; the misbehaving
ones (hang, garbage, crash, unsupported) are tiny Python programs run as real processes.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conformance import ImplementationError, Unsupported, list_fixtures, mistakes, reference, registry
from conformance.compare import close
from conformance.errors import EngineError
from conformance.suite import Case, judge
from conformance.subprocess_impl import command_implementation
from conformance.writer import finish_meta, write_fixture

from helpers.repo import REPO as ROOT
JS_PORT = ROOT / "examples" / "js-port" / "main.js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node (Node.js) is not installed; the JS port needs it")
JS_COMMAND = shlex.join(["node", str(JS_PORT)])


def python_command(source: str) -> str:
    """A command line that runs ``source`` with this interpreter."""
    return shlex.join([sys.executable, "-c", textwrap.dedent(source)])


def run_suite(tmp_path, *args, env=None):
    """Run the real conformance suite in a fresh pytest; returns (process, JSON summary, wall seconds)."""
    summary = tmp_path / "summary.json"
    command = [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-p", "no:cacheprovider", "-q",
               "--conformance-json", str(summary), *args]
    start = time.monotonic()
    outer = {k: v for k, v in os.environ.items() if not k.startswith(("LSTM_CONFORMANCE_", "PYTEST_"))}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**outer, **(env or {})})
    wall = time.monotonic() - start
    assert summary.exists(), f"the suite wrote no summary:\n{done.stdout}\n{done.stderr}"
    return done, json.loads(summary.read_text()), wall


@pytest.fixture(scope="module")
def basic():
    (fixture,) = [f for f in list_fixtures().fixtures if f.id == "lstm-basic"]
    return fixture


def process_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


# -- (a) the JavaScript port over the gallery -------------------------------------------------

def js_port_claims(fixture) -> bool:
    """What the port implements: plain LSTM and GRU layers (no wrappers, not stateful, not Keras 2's time_major
    layout); built from a cell (``cell_wrapper``) or not, which changes nothing."""
    return (fixture.layer in ("LSTM", "GRU") and not fixture.config.get("stateful", False)
            and not fixture.config.get("time_major", False))


@needs_node
def test_js_port_passes_every_fixture_it_claims(tmp_path):
    """Every LSTM and GRU fixture of the gallery passes; every other one is skipped with the port's reason."""
    gallery = list_fixtures().fixtures
    assert any(f.layer == "LSTM" for f in gallery), "the gallery has no LSTM fixtures"
    done, summary, wall = run_suite(tmp_path, "--impl", f"cmd:{JS_COMMAND}")
    statuses = {case["fixture"]: case["status"] for case in summary["cases"]}
    expected = {f.id: "passed" if js_port_claims(f) else "skipped" for f in gallery}
    assert statuses == expected, done.stdout[-4000:]
    skips = [c["message"] for c in summary["cases"] if c["status"] == "skipped"]
    assert all("js-port: " in m and "not implemented" in m for m in skips), skips
    assert done.returncode == 0
    print(f"JS port: {len(gallery)} fixtures ({sum(map(js_port_claims, gallery))} claimed) in {wall:.1f} s "
          "(one node process per fixture, pytest start included)")


@needs_node
def test_js_port_trace_matches_the_gallery_trace():
    """The port's per-step gate values agree too, so a port author can copy its trace format."""
    run = command_implementation(JS_COMMAND)
    # every sixth of the fixtures that store a trace (the 500-step scale fixture stores none)
    fixtures = [f for f in list_fixtures().fixtures if js_port_claims(f) and f.trace][::6]
    assert fixtures, "no LSTM or GRU fixture with a trace in the gallery: nothing was checked"
    for fixture in fixtures:
        trace = run(fixture.isolated())["trace"]
        for gate, want in fixture.trace.items():
            assert close(trace[gate], want, fixture.tolerance).all(), f"{fixture.id}: trace {gate!r} differs"


# -- the JavaScript port's GRU, on fixtures made here ------------------------------------------

def make_gru_fixture(root, fid, *, reset_after, seed, units=3, features=2, batch=3, steps=5, mask=False,
                     initial_state=False, go_backwards=False, return_sequences=True, use_bias=True,
                     hard_sigmoid=False, mistake=None):
    """Write a GRU fixture whose expected values come from the numpy reference (with ``mistake``, if any)."""
    rng = np.random.default_rng(seed)
    weights = {"kernel": rng.uniform(-0.8, 0.8, (features, 3 * units)),
               "recurrent_kernel": rng.uniform(-0.8, 0.8, (units, 3 * units))}
    if use_bias:
        weights["bias"] = rng.uniform(-0.5, 0.5, (2, 3 * units) if reset_after else (3 * units,))
    weights = {k: v.astype(np.float32) for k, v in weights.items()}
    inputs = {"x": rng.normal(size=(batch, steps, features)).astype(np.float32)}
    if mask:
        keep = np.ones((batch, steps), bool)
        keep[0, :2] = False          # leading masked steps
        keep[1, 2] = False           # a hole
        keep[2, -2:] = False         # trailing padding
        inputs["mask"] = keep
    if initial_state:
        inputs["initial_state_h"] = rng.uniform(-0.5, 0.5, (batch, units)).astype(np.float32)
    blocks = {"z": [0, units], "r": [units, 2 * units], "h": [2 * units, 3 * units]}
    gates = {name: dict(blocks) for name in weights}
    recurrent = ({"name": "hard_sigmoid", "formula": "clip(slope*x + offset, 0, 1)", "slope": 0.2, "offset": 0.5}
                 if hard_sigmoid else {"name": "sigmoid", "formula": "1 / (1 + exp(-x))"})
    activations = {"activation": {"name": "tanh", "formula": "tanh(x)"}, "recurrent_activation": recurrent}
    config = {"units": units, "activation": "tanh", "recurrent_activation": recurrent["name"],
              "use_bias": use_bias, "return_sequences": return_sequences, "return_state": True,
              "go_backwards": go_backwards, "reset_after": reset_after}
    if mistake is None:
        result = reference.forward("GRU", config, weights, gates, activations, inputs)
    else:
        result = mistakes.BY_KEY[mistake].transform(
            mistakes.Problem("GRU", config, weights, gates, activations, inputs, None)).outputs()
    arrays = {**weights, **inputs, "output": result["output"].astype(np.float32),
              "state_h": result["state_h"].astype(np.float32),
              **{f"trace/{k}": v.astype(np.float32) for k, v in result["trace"].items()}}
    meta = {"id": fid, "description": "made by tests/test_subprocess.py to exercise the JS port's GRU",
            "layer": "GRU", "config": config, "activations": activations, "weights": sorted(weights),
            "gates": gates, "inputs": sorted(inputs), "outputs": ["output", "state_h"],
            "trace": sorted(result["trace"]), "tolerance": {"atol": 1e-5, "rtol": 1e-4}, "tags": ["reset_after" if reset_after else "reset_before"]}
    write_fixture(root, finish_meta(meta, arrays), arrays)


@needs_node
def test_js_port_gru_through_the_suite(tmp_path):
    """The JS port's GRU (reset_after True and False) against GRU fixtures made here from the numpy reference.

    These fixtures exist only to exercise the JS GRU independently of the gallery's (Keras-made)
    GRU fixtures; they check the port against the reference, not against Keras. The last one is a
    negative control built with a deliberate mistake, which the port must fail.
    """
    root = tmp_path / "fixtures"
    make_gru_fixture(root, "gru-reset-after", reset_after=True, seed=1)
    make_gru_fixture(root, "gru-reset-before", reset_after=False, seed=2)
    make_gru_fixture(root, "gru-mask-initial-state", reset_after=True, seed=3, mask=True, initial_state=True)
    make_gru_fixture(root, "gru-mask-go-backwards", reset_after=False, seed=4, mask=True, go_backwards=True)
    make_gru_fixture(root, "gru-hard-sigmoid-last", reset_after=True, seed=5, hard_sigmoid=True,
                     return_sequences=False, initial_state=True)
    make_gru_fixture(root, "gru-no-bias", reset_after=True, seed=6, use_bias=False)
    make_gru_fixture(root, "gru-control-wrong-reset", reset_after=True, seed=7,
                     mistake="gru-reset-after-mixed-up")
    done, summary, _ = run_suite(tmp_path, "--impl", f"cmd:{JS_COMMAND}", "--fixtures-dir", str(root))
    statuses = {case["fixture"]: case["status"] for case in summary["cases"]}
    expected = {p.name: "passed" for p in root.iterdir() if not p.name.startswith(".")}
    expected["gru-control-wrong-reset"] = "failed"
    assert statuses == expected, done.stdout[-4000:]

    run = command_implementation(JS_COMMAND)
    for fixture in list_fixtures(root).fixtures:
        if fixture.id != "gru-control-wrong-reset":
            trace = run(fixture.isolated())["trace"]
            for gate, want in fixture.trace.items():
                assert close(trace[gate], want, fixture.tolerance).all(), f"{fixture.id}: trace {gate!r} differs"


@needs_node
def test_js_port_declines_other_layers(basic, tmp_path):
    """A layer the port lacks is an honest ``unsupported`` answer, which becomes a skip."""
    fixture = basic.isolated()
    fixture.meta["layer"] = "SimpleRNN"
    with pytest.raises(Unsupported, match="layer SimpleRNN is not implemented"):
        command_implementation(JS_COMMAND)(fixture)


# -- what the engine is sent -------------------------------------------------------------------

def test_request_holds_weights_and_inputs_but_no_answers(basic):
    """An engine that echoes the array names it received shows no expected output or trace is sent."""
    echo = python_command("""
        import json, sys
        request = json.load(sys.stdin)
        print(json.dumps({"unsupported": ",".join(sorted(request["arrays"]))}))
    """)
    with pytest.raises(Unsupported) as caught:
        command_implementation(echo)(basic.isolated())
    assert str(caught.value) == ",".join(sorted([*basic.meta["weights"], *basic.meta["inputs"]]))


# -- (b) to (e): engines that misbehave --------------------------------------------------------

def test_hanging_command_is_killed_with_its_children(basic, tmp_path):
    pids = tmp_path / "pids"
    hang = python_command(f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("engine: loading weights, then waiting forever", file=sys.stderr, flush=True)
        time.sleep(60)
    """)
    run = command_implementation(hang, timeout=2)
    start = time.monotonic()
    with pytest.raises(ImplementationError) as caught:
        run(basic.isolated())
    elapsed = time.monotonic() - start
    message = str(caught.value)
    assert elapsed < 5, f"the timeout took {elapsed:.1f} s"
    assert "timed out" in message and repr(hang) in message and "exit code -9" in message, message
    assert "engine: loading weights" in message, "the stderr tail is missing"
    left = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 3
    while not all(process_gone(p) for p in left) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(process_gone(p) for p in left), f"processes left behind: {left}"


def test_garbage_on_stdout_fails_with_the_stderr_tail(basic):
    garbage = python_command("""
        import sys
        sys.stdin.read()
        for n in range(30):
            print(f"warning {n}: float16 fallback", file=sys.stderr)
        print("hello, this is not JSON")
    """)
    with pytest.raises(ImplementationError) as caught:
        command_implementation(garbage)(basic.isolated())
    message = str(caught.value)
    assert "not a JSON object" in message and "hello, this is not JSON" in message, message
    assert "exit code 0" in message and repr(garbage) in message and "'lstm-basic'" in message
    assert "last 20 of 30 lines" in message and "warning 29:" in message and "warning 9:" not in message


def test_json_followed_by_more_output_fails(basic):
    chatty = python_command("""
        import json, sys
        sys.stdin.read()
        print(json.dumps({"unsupported": "x"}))
        print("done!")
    """)
    with pytest.raises(ImplementationError, match="more after the JSON object"):
        command_implementation(chatty)(basic.isolated())


def test_malformed_outputs_name_the_output(basic):
    ragged = python_command("""
        import json, sys
        sys.stdin.read()
        print(json.dumps({"outputs": {"output": {"shape": [2, 2], "data": [[1.0, 2.0], [3.0]]}}}))
    """)
    with pytest.raises(ImplementationError, match="output 'output': 'data' is not a rectangular"):
        command_implementation(ragged)(basic.isolated())


def test_non_zero_exit_fails_with_code_and_stderr(basic):
    crash = python_command("""
        import sys
        sys.stdin.read()
        print("engine: cannot parse recurrent_kernel", file=sys.stderr)
        sys.exit(3)
    """)
    with pytest.raises(ImplementationError) as caught:
        command_implementation(crash)(basic.isolated())
    message = str(caught.value)
    assert "exit code 3" in message and "engine: cannot parse recurrent_kernel" in message and repr(crash) in message


def test_unsupported_becomes_unsupported(basic):
    decline = python_command("""
        import json, sys
        sys.stdin.read()
        print(json.dumps({"unsupported": "masking is not implemented"}))
    """)
    with pytest.raises(Unsupported, match="^masking is not implemented$"):
        command_implementation(decline)(basic.isolated())


def test_missing_command_fails_at_load():
    with pytest.raises(ImplementationError, match="not an executable file or on PATH"):
        command_implementation("./no-such-engine --flag")


def test_misbehaving_commands_through_the_suite(tmp_path):
    """In the real suite: hang and garbage and crash fail, unsupported skips with its reason; all quickly."""
    commands = {
        "hang": python_command("import time; time.sleep(60)"),
        "garbage": python_command("import sys; sys.stdin.read(); print('garbage')"),
        "crash": python_command("import sys; sys.exit(2)"),
        "decline": python_command("import json, sys; sys.stdin.read(); "
                                  "print(json.dumps({'unsupported': 'no LSTM in this engine'}))"),
    }
    args = [a for c in commands.values() for a in ("--impl", f"cmd:{c}")]
    done, summary, wall = run_suite(tmp_path, *args, "--fixture-id", "lstm-basic",
                                    env={"LSTM_CONFORMANCE_TIMEOUT": "2"})
    by_impl = {case["impl"][len("cmd:"):]: case for case in summary["cases"]}
    assert {k: by_impl[c]["status"] for k, c in commands.items()} == {
        "hang": "failed", "garbage": "failed", "crash": "failed", "decline": "skipped"}, done.stdout[-4000:]
    assert "timed out after 1.8 s" in by_impl[commands["hang"]]["message"]
    assert "not a JSON object" in by_impl[commands["garbage"]]["message"]
    assert "exit code 2" in by_impl[commands["crash"]]["message"]
    assert by_impl[commands["decline"]]["message"].endswith(": no LSTM in this engine")
    assert "stderr" in done.stdout and done.returncode == 1
    assert wall < 30, f"the suite took {wall:.1f} s for four one-fixture cases"


def test_command_that_cannot_start_fails_clearly(basic, tmp_path):
    script = tmp_path / "engine.sh"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    with pytest.raises(ImplementationError, match="could not start"):
        command_implementation(str(script))(basic.isolated())


# -- how an engine's failure reads ---------------------------------------------------------------

def test_wrong_shapes_fail_with_the_stderr_tail(basic):
    """The engine's log is what explains a wrong shape, so the failure carries it like any other."""
    small = python_command("""
        import json, sys
        sys.stdin.read()
        print("engine: guessed units=1 from the bias", file=sys.stderr)
        one = {"shape": [1, 1], "data": [[0.5]]}
        print(json.dumps({"outputs": {"output": one, "state_h": one}}))
    """)
    with pytest.raises(EngineError) as caught:
        command_implementation(small)(basic.isolated())
    message = str(caught.value)
    assert "returned unusable output (exit code 0):" in message, message
    assert "  - output 'output' has shape (1, 1), expected" in message and "missing output 'state_c'" in message
    assert message.endswith("stderr:\n  | engine: guessed units=1 from the bias"), message


def test_engine_failures_are_engine_errors(basic):
    """The type tells the suite that the message is complete and a Python traceback would be noise."""
    crash = python_command("import sys; sys.stdin.read(); sys.exit(3)")
    with pytest.raises(EngineError):
        command_implementation(crash)(basic.isolated())
    assert issubclass(EngineError, ImplementationError)


def test_engine_failure_shows_its_stderr_once_and_no_traceback(basic):
    """Through the suite's judge: the engine's message once, then the repro; none of our frames."""
    crash = python_command("""
        import sys
        sys.stdin.read()
        print("engine: cannot parse", "recurrent_kernel", file=sys.stderr)  # the line is not in the command
        sys.exit(3)
    """)
    verdict = judge(Case(registry.from_spec(f"cmd:{crash}", {}), basic), 30)
    assert verdict.status == "failed", verdict
    assert verdict.message.count("engine: cannot parse recurrent_kernel") == 1, verdict.message
    assert "Traceback" not in verdict.message and "subprocess_impl.py" not in verdict.message, verdict.message


def test_the_command_is_not_repeated_as_a_version(basic, tmp_path):
    """A cmd: engine has no version; the command is its name and is said once per line."""
    zeros = {name: {"shape": list(a.shape), "data": np.zeros(a.shape).tolist()} for name, a in basic.expected.items()}
    script = tmp_path / "zeros.py"
    script.write_text(f"import sys\nsys.stdin.read()\nprint({json.dumps({'outputs': zeros})!r})\n")
    engine = shlex.join([sys.executable, str(script)])
    impl = registry.from_spec(f"cmd:{engine}", {})
    assert getattr(impl.load(), "version", None) is None and impl.info()["version"] is None
    verdict = judge(Case(impl, basic), 30)
    head = verdict.message.splitlines()[0]
    assert verdict.status == "failed" and "does not match Keras" in head, verdict.message
    assert head.count(engine) == 1, head
