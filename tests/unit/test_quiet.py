"""TensorFlow's native log lines stay out of runs and failure reports (``conformance/adapters/quiet.py``).

The filter is tested on lines TensorFlow, XLA and TFLite really print, and on what must
survive it (real errors, Python warnings and tracebacks); then the suite itself runs in a
child process with ``TF_CPP_MIN_LOG_LEVEL`` unset, on a passing case and on a failing one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conformance import writer
from conformance.adapters import quiet

from helpers.venvs import clean_env

# as printed by TensorFlow 2.21 (import, first masked call), TFLite, XLA beside jaxlib, and TF 2.12
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796062884.686719   17077 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n",
    "I0000 00:00:1796062884.723418   17077 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.\n",
    "E0000 00:00:1796063054.936436   21339 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. "
    "Falling back to the default Eigen-based implementation if present.\n",
    "W0000 00:00:1753176247.520234   34999 computation_placer.cc:177] computation placer already registered. "
    "Please check linkage and avoid linking the same target more than once.\n",
    "E0000 00:00:1753176247.509156   34999 cuda_blas.cc:1407] Unable to register cuBLAS factory: Attempting to "
    "register factory for plugin cuBLAS when one has already been registered\n",
    "I0000 00:00:1753176247.600000   34999 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.\n",
    "E1130 18:02:11.123456   34999 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)\n",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
    "2023-05-01 12:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary "
    "is optimized to use available CPU instructions in performance-critical operations.\n",
    "2023-05-01 12:00:01.000001: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: "
    "Could not find TensorRT\n",
]
KEPT = [
    "E0000 00:00:1796063054.936436   21339 op_kernel.cc:1840] OP_REQUIRES failed at strided_slice_op.cc:117 : "
    "INVALID_ARGUMENT: slice index 5 of dimension 1 out of bounds.\n",
    "F0000 00:00:1796063054.936436   21339 tensor.cc:12] Check failed: dtype() == expected_dtype\n",
    "2023-05-01 12:00:00.123456: E tensorflow/core/framework/op_kernel.cc:1830] OP_REQUIRES failed\n",
    "Traceback (most recent call last):\n",
    "/x/keras/src/backend/common/variables.py:252: DeprecationWarning: __array__ implementation doesn't accept\n",
    "WARNING:tensorflow:5 out of the last 5 calls to <function f> triggered tf.function retracing.\n",
    "Segmentation fault (core dumped)\n",
    "INFO: something a plug-in prints\n",
]
# what must never reach a run's output or a failure report
TF_LOG_LINE = re.compile(r"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+|\d{4}-\d\d-\d\d .*: [IWE] )|oneDNN|cuda|cuInit|absl::"
                         r"|XNNPACK|computation placer|rebuild TensorFlow", re.IGNORECASE | re.MULTILINE)


@pytest.mark.parametrize("line", NOISE)
def test_tensorflow_notices_are_noise_at_the_default_level(line):
    assert quiet.is_noise(line, 2), line
    assert TF_LOG_LINE.search(line), "the pattern the subprocess tests use must see this line"


@pytest.mark.parametrize("line", KEPT)
def test_real_errors_warnings_and_other_output_are_kept(line):
    assert not quiet.is_noise(line, 2), line


def test_the_level_is_obeyed_as_tensorflow_reads_it(monkeypatch):
    info, warning, notice = NOISE[1], NOISE[5], NOISE[4]
    assert not any(quiet.is_noise(line, 0) for line in NOISE)                # 0: everything shows
    assert quiet.is_noise(info, 1) and not quiet.is_noise(warning, 1) and not quiet.is_noise(notice, 1)
    assert quiet.is_noise(KEPT[0], 3) and not quiet.is_noise(KEPT[1], 3)      # 3: errors too, never FATAL
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    assert quiet.min_log_level() == 1 and not quiet.is_noise(warning)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert quiet.min_log_level() == 0


def test_set_defaults_keeps_a_level_the_user_chose(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet.set_defaults()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    quiet.set_defaults()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_native_stderr_is_filtered_and_restored(capfd):
    with quiet.filtered_native_stderr(2):
        os.write(2, "".join(NOISE[:3] + KEPT[:2] + NOISE[3:]).encode())
    os.write(2, NOISE[1].encode())   # after the block: untouched
    err = capfd.readouterr().err
    assert err == KEPT[0] + KEPT[1] + NOISE[1]


def test_an_exception_propagates_and_what_was_printed_still_shows(capfd):
    with pytest.raises(ImportError, match="broken"):
        with quiet.filtered_native_stderr(2):
            os.write(2, (NOISE[1] + "real problem\n").encode())
            raise ImportError("broken")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "real problem\nafter\n"


def test_nothing_is_redirected_at_level_zero(capfd):
    with quiet.filtered_native_stderr(0):
        os.write(2, NOISE[1].encode())
    assert capfd.readouterr().err == NOISE[1]


def test_calls_never_wait_for_another_thread(monkeypatch, capfd):
    """A call the suite's timeout abandoned may still hold stderr: the next call runs at once, unfiltered by itself."""
    import threading
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow") or object())
    held, release = threading.Event(), threading.Event()

    def hung_call():
        with quiet._LOCK:
            held.set()
            release.wait(10)

    worker = threading.Thread(target=hung_call, daemon=True)
    worker.start()
    assert held.wait(10)
    try:
        with quiet.calls():   # would deadlock if it waited
            os.write(2, b"still shown\n")
    finally:
        release.set()
        worker.join(10)
    assert capfd.readouterr().err == "still shown\n"


def test_a_window_left_open_at_exit_is_written_back(capfd):
    window = quiet._Window(2)
    assert window.open()
    os.write(2, (NOISE[1] + "written before a hang\n").encode())
    quiet._close_abandoned_windows()   # the atexit hook
    window.close()                     # a late return afterwards is harmless
    assert capfd.readouterr().err == "written before a hang\n"


# -- the suite in a child process, TF_CPP_MIN_LOG_LEVEL unset ------------------------------------

def _child_env() -> dict:
    env = clean_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    env["KERAS_BACKEND"] = "tensorflow"
    return env


def _suite(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "--impl", "keras",
                           "-p", "no:cacheprovider", "-k", "test_conformance", *args],
                          cwd=cwd, env=_child_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow   # a child process importing TensorFlow
def test_a_keras_run_prints_no_tensorflow_log_lines(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    done = _suite(tmp_path, "--fixture-id", "lstm-seed-question", "-rA")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "1 passed" in output and "backend tensorflow" in output, output[-3000:]
    assert not TF_LOG_LINE.search(output), output[:3000]


def _failing_masked_fixture(root, gallery):
    """lstm-mask-trailing with one expected output element moved: keras fails it, on its first masked call."""
    fixture = next(f for f in gallery if f.id == "lstm-mask-trailing")
    arrays = dict(fixture.arrays)
    arrays["output"] = arrays["output"].copy()
    arrays["output"].flat[0] += np.float32(0.5)
    meta = {k: v for k, v in fixture.meta.items() if k not in ("arrays", "digest", "format_version", "model_file")}
    meta.update(id="lstm-mask-trailing-moved", description="made by tests/test_quiet.py: one output element moved")
    writer.write_fixture(root, writer.finish_meta(meta, arrays), arrays)


@pytest.mark.slow   # a child process importing TensorFlow
def test_a_failing_keras_case_reports_no_tensorflow_log_lines(tmp_path, gallery):
    """In an xdist worker TensorFlow is imported inside the first test, and the first masked call prints
    oneDNN's DT_BOOL notice: both would land in this failure's captured output, so in its report."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")
    pytest.importorskip("xdist")
    fixtures = tmp_path / "fixtures"
    _failing_masked_fixture(fixtures, gallery)
    done = _suite(tmp_path, "--fixtures-dir", str(fixtures), "-n", "1", "-rA")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "lstm-mask-trailing-moved" in output and "does not match Keras" in output, output[-3000:]
    assert "1 failed" in output, output[-3000:]
    assert not TF_LOG_LINE.search(output), output[:5000]


@pytest.mark.slow   # a child process importing TensorFlow
def test_the_child_check_would_see_the_lines(tmp_path):
    """Control: with TensorFlow's own level and no filtering the same run does print them (TensorFlow 2.16+),
    so the two tests above prove the filtering, not a quiet TensorFlow."""
    tf = pytest.importorskip("tensorflow")
    if int(tf.__version__.split(".")[1]) < 16:
        pytest.skip("the pre-absl-init lines are a TensorFlow >= 2.16 behaviour")
    done = subprocess.run([sys.executable, "-c", "import tensorflow"], cwd=tmp_path, env=_child_env(),
                          capture_output=True, text=True, timeout=300)
    assert TF_LOG_LINE.search(done.stdout + done.stderr), (
        "TensorFlow printed nothing at import: the subprocess tests above prove nothing here")


# -- the jax backend: one compilation per distinct computation (conformance/adapters/keras.py) -------

def test_jax_backend_gets_a_private_compilation_cache_unless_the_user_has_one(monkeypatch, tmp_path):
    """Measured in the ``jax`` tox env: every layer call compiled its lax.scan afresh (the step function is
    new each call); with JAX's persistent cache in a private folder identical computations compile once
    and the outputs are bitwise the same. Here with a stand-in ``jax``: what is configured, and when not."""
    import shutil
    import types

    from conformance.adapters import keras as adapter

    class Config:
        jax_compilation_cache_dir = None
        jax_enable_compilation_cache = True
        jax_persistent_cache_min_compile_time_secs = 1.0

        def update(self, name, value):
            setattr(self, name, value)

    def keras_on(backend):
        return types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: backend))

    fake = types.SimpleNamespace(config=Config())
    monkeypatch.setitem(sys.modules, "jax", fake)
    adapter._share_jax_compilations(keras_on("tensorflow"))
    assert fake.config.jax_compilation_cache_dir is None
    adapter._share_jax_compilations(keras_on("jax"))
    folder = fake.config.jax_compilation_cache_dir
    try:
        assert folder and os.path.isdir(folder) and "lstm-conformance-jax-cache-" in folder
        assert fake.config.jax_persistent_cache_min_compile_time_secs == 0.0
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    fake.config = Config()   # the user's own folder, or the cache switched off: left alone
    fake.config.jax_compilation_cache_dir = str(tmp_path)
    adapter._share_jax_compilations(keras_on("jax"))
    assert fake.config.jax_compilation_cache_dir == str(tmp_path)
    assert fake.config.jax_persistent_cache_min_compile_time_secs == 1.0
    fake.config = Config()
    fake.config.jax_enable_compilation_cache = False
    adapter._share_jax_compilations(keras_on("jax"))
    assert fake.config.jax_compilation_cache_dir is None
