"""Progress output and a quiet startup.

The framework logs to the 'experiments' logger on stderr. Orbax and other
libraries log through absl at INFO; `setup()` keeps those at WARNING so the
progress lines stay readable.

`quiet_startup()` (run when the `experiments` package is imported, before
TensorFlow or libtpu load) drops only their INFO-level startup banners: the
TensorFlow oneDNN and "Could not find cuda drivers" lines and the libtpu INFO
line. Their warnings and errors still print. A value the user already set in
the environment wins.
"""

import logging
import os
import sys

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "1",  # TensorFlow C++: hide INFO, keep WARNING and ERROR
    "TPU_MIN_LOG_LEVEL": "1",  # libtpu: the same
    "TPU_STDERR_LOG_LEVEL": "1",
}


def quiet_startup() -> None:
  for key, value in QUIET_ENV.items():
    os.environ.setdefault(key, value)


def setup(level: int = logging.INFO) -> None:
  logger = logging.getLogger("experiments")
  if not any(getattr(h, "_experiments", False) for h in logger.handlers):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler._experiments = True
    logger.addHandler(handler)
  logger.setLevel(level)
  logger.propagate = False
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.WARNING)


# INFO banners TensorFlow's C++ runtime prints at import through absl logging,
# which ignores TF_CPP_MIN_LOG_LEVEL before absl::InitializeLog().
_BANNERS = ("port.cc", "cudart_stub.cc", "cpu_feature_guard.cc")
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"


def _is_banner(line: str) -> bool:
  if line.startswith(_ABSL_NOTICE):
    return True
  return line[:1] == "I" and line[1:5].isdigit() and any(b in line for b in _BANNERS)


def import_quietly(name: str):
  """Imports module `name` with TensorFlow's INFO startup banners removed from stderr.

  Everything else written to stderr during the import (warnings, errors) is
  passed on unchanged after the import.
  """
  import importlib
  import tempfile
  if name in sys.modules:
    return sys.modules[name]
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      return importlib.import_module(name)
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      kept = [l for l in capture.read().decode(errors="replace").splitlines(keepends=True)
              if not _is_banner(l)]
      if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()
