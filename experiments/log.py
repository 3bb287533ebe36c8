"""Progress output: the framework logs to the 'experiments' logger on stderr.

Orbax and other libraries log through absl at INFO; `setup()` keeps those at
WARNING so the progress lines stay readable.
"""

import logging
import sys


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
