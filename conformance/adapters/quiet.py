"""Keep TensorFlow's native log lines out of runs and failure messages.

TensorFlow (directly, through Keras on the TensorFlow backend, or tf-keras) prints C++ log
lines on stderr: at import the oneDNN notice, the CPU-instructions notice, "could not find
cuda drivers", "computation placer already registered", "Unable to register cuDNN
factory"; at the first masked call "oneDNN supports DT_BOOL only on platforms with
AVX-512"; at the first TFLite interpreter "INFO: Created TensorFlow Lite XNNPACK delegate".
They say nothing about the fixture under test, yet they land at the top of every run and,
when they happen inside a test, in that test's captured output, so in its failure report.

``TF_CPP_MIN_LOG_LEVEL=2`` is meant to drop INFO and WARNING lines, but TensorFlow 2.16+ logs
through absl, and what it logs before absl is initialised (the oneDNN notice, from a static
initialiser, and the "All log messages before absl::InitializeLog() is called are written
to STDERR" banner) reaches stderr whatever the level (measured with TensorFlow 2.21). So:

* :func:`set_defaults` sets ``TF_CPP_MIN_LOG_LEVEL=2`` when it is unset (a value the user set
  is kept and obeyed) and quiets the Python ``absl`` logger, and after the import the
  ``tensorflow`` logger, to ERROR where nobody set their level (tf.function retracing notices,
  TFLite converter notices);
* :func:`importing` (around the import) and :func:`calls` (around a computation) point file
  descriptor 2 at a temporary file and afterwards write back every line except the native
  log lines below that level and a short list of ERROR-level notices that report no error
  (:data:`NOTICES`). Only what C/C++ code writes to the descriptor passes through here: a
  Python exception still propagates, and a Python warning, a real TensorFlow error line or
  anything unexpected still shows.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
import threading
from typing import Iterator

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "2"   # drop INFO and WARNING, keep ERROR and FATAL

# absl / glog: "I0000 00:00:1796062884.686719   17077 port.cc:153] ..." (TensorFlow >= 2.16, XLA, jaxlib);
# before absl is initialised the time reads "00:00:<seconds since the epoch>"
_ABSL_LINE = re.compile(r"(?P<severity>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s\]]+:\d+\] ")
# TensorFlow's own format up to 2.15: "2023-05-01 12:00:00.000000: I tensorflow/core/...cc:182] ..."
_TF_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<severity>[IWEF]) [^\s\]]+:\d+\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_BANNER = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR")
# the second line of cpu_feature_guard.cc's INFO message (the first carries the log prefix)
_CPU_FEATURES_TAIL = re.compile(r"To enable the following instructions: [A-Za-z0-9_ ,.]+, in other operations, "
                                r"rebuild TensorFlow with the appropriate compiler flags\.")
# TFLite's own minimal logger, which ignores TF_CPP_MIN_LOG_LEVEL
_TFLITE_INFO = re.compile(r"INFO: (?:Created|Initialized) TensorFlow Lite .*")
# ERROR-level lines that report no error: no usable GPU, a CUDA plug-in or XLA placer registered twice
# (TensorFlow beside jaxlib or torch), oneDNN falling back to Eigen for a dtype
NOTICES = re.compile(r"Unable to register cu(?:DNN|FFT|BLAS) factory|failed call to cuInit"
                     r"|computation placer already registered|oneDNN supports \w+ only on platforms with")

_LOCK = threading.RLock()   # one thread at a time redirects the process's stderr (nesting in one thread is fine)


def min_log_level() -> int:
    """TensorFlow's ``TF_CPP_MIN_LOG_LEVEL`` as it reads it (0 when unset or not a number)."""
    try:
        return max(0, int(os.environ.get(LOG_LEVEL_VARIABLE, "0")))
    except ValueError:
        return 0


def is_noise(line: str, level: int | None = None) -> bool:
    """Whether ``line`` is a native log line that ``TF_CPP_MIN_LOG_LEVEL`` (``level``) is meant to hide."""
    level = min_log_level() if level is None else level
    if level <= 0:
        return False
    line = line.rstrip("\r\n")
    match = _ABSL_LINE.match(line) or _TF_LINE.match(line)
    if match:
        severity = _SEVERITY[match["severity"]]
        return severity < level or (severity == 2 and level >= 2 and bool(NOTICES.search(line)))
    return any(pattern.fullmatch(line) for pattern in (_ABSL_BANNER, _CPU_FEATURES_TAIL, _TFLITE_INFO))


def set_defaults() -> None:
    """``TF_CPP_MIN_LOG_LEVEL=2`` if unset; the ``absl`` Python logger to ERROR if nobody set its level.

    Call before TensorFlow is imported (its C++ side reads the variable once).
    """
    os.environ.setdefault(LOG_LEVEL_VARIABLE, DEFAULT_LEVEL)
    try:  # absl first: a plain logging.Logger named "absl", made before absl is imported, would break it
        importlib.import_module("absl.logging")   # TensorFlow's dependency; without it there is nothing to quiet
    except ImportError:
        return
    _quiet_logger("absl")


def _quiet_logger(name: str) -> None:
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


@contextlib.contextmanager
def importing(*modules: str) -> Iterator[None]:
    """Around an import of TensorFlow (or of what imports it): its native start-up lines are filtered.

    A no-op once every module named is imported, so it costs nothing on later calls.
    """
    if modules and all(name in sys.modules for name in modules):
        yield
        return
    set_defaults()
    with _holding_stderr() as holding, filtered_native_stderr(None if holding else 0):
        yield
    if "tensorflow" in sys.modules:
        _quiet_logger("tensorflow")   # tf.get_logger(): TensorFlow sets no level itself outside interactive use


@contextlib.contextmanager
def calls() -> Iterator[None]:
    """Around a computation on TensorFlow: the notices TensorFlow prints at first use are filtered.

    Nothing is redirected when TensorFlow is not loaded (JAX, torch backends), or while another
    thread holds stderr (the suite's timeout may have left a hung call behind): never waits.
    """
    if "tensorflow" not in sys.modules:
        yield
        return
    with _holding_stderr() as holding, filtered_native_stderr(None if holding else 0):
        yield


@contextlib.contextmanager
def _holding_stderr() -> Iterator[bool]:
    """Whether this thread may redirect stderr: no other thread is doing so (never waits for one).

    Another thread's redirection already catches what this one prints, so it is filtered all the same.
    """
    holding = _LOCK.acquire(blocking=False)
    try:
        yield holding
    finally:
        if holding:
            _LOCK.release()


@contextlib.contextmanager
def filtered_native_stderr(level: int | None = None) -> Iterator[None]:
    """File descriptor 2 goes to a temporary file; when the block ends every line that is not noise is written back.

    Python's ``sys.stderr`` is flushed at both ends, so Python output written meanwhile comes back in
    order (where pytest has replaced ``sys.stderr`` it never passes through here). A block still open
    at interpreter exit (a call abandoned by the suite's timeout) is written back by an atexit hook.
    """
    level = min_log_level() if level is None else level
    window = _Window(level)
    if level <= 0 or not window.open():
        yield
        return
    try:
        yield
    finally:
        window.close()


class _Window:
    """One redirection of file descriptor 2 into a temporary file."""

    opened: list["_Window"] = []   # innermost last

    def __init__(self, level: int):
        self.level = level
        self.saved: int | None = None
        self.sink = None

    def open(self) -> bool:
        _flush_python_stderr()
        try:
            self.saved = os.dup(2)
        except OSError:   # no stderr at all: nothing to filter
            return False
        try:
            self.sink = tempfile.TemporaryFile()
            os.dup2(self.sink.fileno(), 2)
        except OSError:
            os.close(self.saved)
            if self.sink is not None:
                self.sink.close()
            return False
        _Window.opened.append(self)
        return True

    def close(self) -> None:
        if self not in _Window.opened:   # already written back at exit
            return
        _Window.opened.remove(self)
        _flush_python_stderr()
        try:
            os.dup2(self.saved, 2)
        finally:
            os.close(self.saved)
            with self.sink:
                self.sink.seek(0)
                data = self.sink.read()
        kept = [line for line in data.splitlines(keepends=True)
                if not is_noise(line.decode("utf-8", "replace"), self.level)]
        _write_all(2, b"".join(kept))


@atexit.register
def _close_abandoned_windows() -> None:
    for window in reversed(list(_Window.opened)):
        with contextlib.suppress(Exception):
            window.close()


def _flush_python_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except OSError:
            return
        data = data[written:]
