"""AXIS trainer service: fine-tunes on exported datasets, registers model versions in MLflow."""

from axis_core.omp import prefer_passive_omp_wait

prefer_passive_omp_wait()  # the model runs in a worker thread: before torch is imported (axis_core.omp)
