"""AXIS inference service: scores images with the champion models, publishes CrystalScored."""

from axis_core.omp import prefer_passive_omp_wait

prefer_passive_omp_wait()  # the model runs in a worker thread: before torch is imported (axis_core.omp)
