"""Console output of the command-line tools (demo, benchmarks)."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """No download / weight-loading progress bars, run URLs or library deprecation chatter in a tool's output.

    For command-line entry points only: it changes process-wide environment, warning filters and log levels.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import mlflow  # noqa: F401 - configures its loggers on import; quieten them afterwards

    logging.getLogger("mlflow").setLevel(logging.WARNING)
