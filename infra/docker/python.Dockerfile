# One image for every AXIS Loop Python process (services, migrate job, topic job, MLflow server).
# Build from the repository root:  docker build -f infra/docker/python.Dockerfile --target inference .
# Each target only changes the default command; docker-compose.yml builds them all from this file.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin axis
WORKDIR /app

# torch first, from the CPU wheel index: the default index would pull the CUDA build (several GB).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
# The full lock next (torch==2.13.0 is already satisfied by 2.13.0+cpu), then the repository itself.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY infra ./infra
COPY services ./services
RUN pip install --no-deps . \
    && python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 'wrong torch')"

ENV AXIS_MIGRATIONS_DIR=/app/infra/migrations \
    HF_HOME=/home/axis/.cache/huggingface
USER axis

FROM base AS inference
CMD ["python", "-m", "axis_inference"]

FROM base AS discrepancy
CMD ["python", "-m", "axis_discrepancy"]

FROM base AS lims-gateway
EXPOSE 8081
CMD ["python", "-m", "axis_discrepancy.lims_gateway"]

FROM base AS curation
EXPOSE 8080
CMD ["python", "-m", "axis_curation"]

FROM base AS trainer
CMD ["python", "-m", "axis_trainer"]

FROM base AS tools
# migrate / create-topics jobs and the MLflow server: the command comes from docker-compose.yml.
CMD ["python", "-m", "axis_stack", "--help"]
