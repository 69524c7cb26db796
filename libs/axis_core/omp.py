"""OpenMP's wait policy for torch on CPU, set before torch is imported.

The services run the model in a worker thread (the event loop stays free). With libgomp's default (active)
wait policy, the threads of one OpenMP team spin between parallel regions, and a team driven from a worker thread
measured 1.7x slower than the same forward pass on the main thread on this 2-core machine (int8 DINOv2-base at
224 px: ~215 vs ~125 ms/image); with ``OMP_WAIT_POLICY=PASSIVE`` the worker thread matched the main thread
(~117 ms/image). A value set by the operator is kept.
"""

from __future__ import annotations

import os
import sys


def prefer_passive_omp_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless set already; False (and nothing set) when torch is already imported,
    since OpenMP reads the variable once, when torch loads it."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True
