"""The ``tfjs`` port: TensorFlow.js 4.22.0 in a real Node.js process, on real gallery fixtures.

Needs ``node`` on PATH and the pinned node modules (``python -m conformance.adapters.tfjs --install``,
into ``$LSTM_CONFORMANCE_TFJS_MODULES`` or the user cache); without them the tests that run tfjs
skip, and the tests of the skip itself still run. No TensorFlow is needed.
"""

from __future__ import annotations

import numpy as np
import pytest

from conformance import gallery_dir, list_fixtures
from conformance.adapters import tfjs
from conformance.errors import ConversionError
from conformance.mistakes import diagnose
from conformance.registry import Implementation
from conformance.suite import Case, judge
from conformance.verdict import Status

FIXTURES = {f.id: f for f in list_fixtures(gallery_dir()).fixtures}
# a plain LSTM, a Bidirectional with initial states and five outputs, a stateful layer with a reset (tfjs's own
# stateful layer), a ConvLSTM1D (run as a ConvLSTM2D of width 1)
PASSING = ["lstm-seed-question", "bidirectional-lstm-return-state", "stateful-simple-rnn", "conv-lstm1d-basic"]

needs_tfjs = pytest.mark.skipif(tfjs.readiness() is not None, reason=f"tfjs port not runnable here: {tfjs.readiness()}")


def _judge(fixture_id):
    impl = Implementation("tfjs", "conformance.adapters.tfjs:run", tfjs.run.version, None, _loader=lambda: tfjs.run)
    return judge(Case(impl, FIXTURES[fixture_id]), 60, diagnose)


@pytest.fixture
def fresh_runner():
    """No node process left from an earlier test; none left behind either."""
    tfjs.shutdown()
    yield
    tfjs.shutdown()


@needs_tfjs
def test_fixtures_pass_in_one_reused_node_process(fresh_runner):
    starts = tfjs.starts()
    pids, tensors = set(), []
    for fixture_id in PASSING * 2:
        verdict = _judge(fixture_id)
        assert verdict.status == Status.PASSED, verdict.message
        pids.add(tfjs.runner_pid())
        tensors.append(tfjs.ask({"op": "hello"}, "a greeting")["hello"]["tensors"])
    assert len(pids) == 1 and None not in pids, pids
    assert tfjs.starts() == starts + 1
    assert len(set(tensors)) == 1, f"tensors left in node after each fixture: {tensors}"  # nothing kept between fixtures
    assert tfjs.notes("conv-lstm1d-basic").startswith("ConvLSTM1D run as tf.layers.convLstm2d")
    info = tfjs.run.info()
    assert info["tfjs"] == "4.22.0" and info["node"].startswith("v"), info


@needs_tfjs
def test_a_real_divergence_is_a_failure_with_its_diagnosis(fresh_runner):
    """tfjs's hardSigmoid is Keras 2's, clip(0.2x + 0.5, 0, 1): the Keras 3 fixture fails and says why."""
    verdict = _judge("lstm-hard-sigmoid-keras3")
    assert verdict.status == Status.FAILED, verdict.message
    assert "[mistake hard-sigmoid-keras2]" in verdict.message
    assert _judge("lstm-hard-sigmoid-keras2").status == Status.PASSED


@needs_tfjs
def test_what_tfjs_refuses_is_a_skip_naming_it(fresh_runner):
    verdict = _judge("gru-reset-after-basic")  # tfjs's own GRUCell throws for resetAfter: true
    assert verdict.status == Status.SKIPPED
    assert "GRUCell does not support reset_after parameter set to true" in verdict.message, verdict.message
    skipped = _judge("lstm-mask-zero-output-for-mask")
    assert "tfjs: tfjs's recurrent layers have no zero_output_for_mask" in skipped.message, skipped.message


@needs_tfjs
def test_a_throw_inside_tfjs_is_a_crash_naming_tfjs_and_the_fixture(fresh_runner, monkeypatch):
    """Weights of the wrong shape: tfjs's own setWeights throws; the node process survives it."""
    real = tfjs.translate._layer_weights

    def wrong_shape(layer, weights, prefix=""):
        found = real(layer, weights, prefix)
        found["kernel"] = tfjs.translate.encode_array(np.zeros((7, 16), np.float32))
        return found
    monkeypatch.setattr(tfjs.translate, "_layer_weights", wrong_shape)
    with pytest.raises(ConversionError) as caught:
        tfjs.run(FIXTURES["lstm-basic"].isolated())
    message = str(caught.value)
    assert message.startswith("tfjs 4.22.0 threw while setting the weights for fixture 'lstm-basic': "), message
    assert "7,16" in message  # tfjs's own words about the shape
    pid = tfjs.runner_pid()
    monkeypatch.setattr(tfjs.translate, "_layer_weights", real)
    assert _judge("lstm-basic").status == Status.PASSED
    assert tfjs.runner_pid() == pid  # a throw is answered, not fatal


@needs_tfjs
def test_a_real_tfjs_throw_is_crashed_in_the_suite(fresh_runner):
    """tfjs's rnn() cannot apply a (batch, time) mask to a 5-D ConvLSTM input (recurrent.ts 170-176)."""
    verdict = _judge("conv-lstm1d-mask")
    assert verdict.status == Status.CRASHED, verdict.message
    assert "tfjs 4.22.0 threw while running the layer for fixture 'conv-lstm1d-mask'" in verdict.message
    assert "Error in transpose" in verdict.message


@needs_tfjs
def test_a_dead_node_process_is_reported_with_its_stderr_and_replaced(fresh_runner, monkeypatch):
    assert _judge("lstm-basic").status == Status.PASSED
    first = tfjs.runner_pid()
    monkeypatch.setattr(tfjs, "request_for", lambda fixture: ({"op": "crash"}, ["LSTM"]))
    with pytest.raises(ConversionError) as caught:
        tfjs.run(FIXTURES["lstm-basic"].isolated())
    message = str(caught.value)
    assert f"the node runner (pid {first}) died while running fixture 'lstm-basic'" in message, message
    assert "exited with code 3" in message and "runner: crashing on request, as asked" in message, message
    monkeypatch.undo()
    assert _judge("lstm-basic").status == Status.PASSED
    assert tfjs.runner_pid() not in (None, first)


@needs_tfjs
def test_a_silent_node_process_is_killed_before_the_suite_gives_up(fresh_runner):
    tfjs.ask({"op": "hello"}, "a greeting", timeout=30)
    pid = tfjs.runner_pid()
    with pytest.raises(TimeoutError) as caught:
        tfjs.ask({"op": "hang"}, "fixture 'x'", timeout=2)
    assert f"the node runner (pid {pid}) gave fixture 'x' no answer within" in str(caught.value)
    assert "runner: hanging on request, as asked" in str(caught.value)
    assert tfjs.runner_pid() is None
    assert _judge("simple-rnn-basic").status == Status.PASSED


def test_missing_node_modules_skip_with_the_install_command(tmp_path, monkeypatch, fresh_runner):
    monkeypatch.setenv(tfjs.ENV_MODULES, str(tmp_path / "empty"))
    verdict = _judge("lstm-basic")
    assert verdict.status == Status.SKIPPED
    if tfjs.node_executable() is not None:
        assert f"needs @tensorflow/tfjs 4.22.0 in {tmp_path / 'empty'}, which is not installed" in verdict.message
    assert "python -m conformance.adapters.tfjs --install" in verdict.message
    assert f"npm ci --prefix {tmp_path / 'empty'}" in verdict.message
    assert tfjs.runner_pid() is None  # nothing was started


def test_missing_node_skips_with_an_install_hint(monkeypatch, fresh_runner):
    monkeypatch.setattr(tfjs.install, "node_executable", lambda: None)
    verdict = _judge("lstm-basic")
    assert verdict.status == Status.SKIPPED
    assert "needs Node.js, which is not on PATH" in verdict.message, verdict.message


def test_keras_options_map_to_tfjs_arguments():
    args = tfjs.layer_args("GRU", {"units": 3, "activation": "tanh", "recurrent_activation": "hard_sigmoid",
                                   "use_bias": False, "reset_after": False, "go_backwards": True,
                                   "return_sequences": True, "return_state": False})
    assert args == {"units": 3, "activation": "tanh", "recurrentActivation": "hardSigmoid", "useBias": False,
                    "resetAfter": False, "goBackwards": True, "returnSequences": True, "returnState": True}
    conv = tfjs.layer_args("ConvLSTM1D", {"filters": 2, "kernel_size": [3], "strides": [2], "dilation_rate": [1],
                                          "padding": "same", "data_format": "channels_last"})
    assert conv["kernelSize"] == [3, 1] and conv["strides"] == [2, 1] and conv["dataFormat"] == "channelsLast"
    with pytest.raises(tfjs.Unsupported, match="no counterpart of Keras LSTM option time_major"):
        tfjs.layer_args("LSTM", {"units": 2, "time_major": True})
