# Market-data feeder image. Build from the repository root (the uv workspace):
#   docker build -f deploy/docker/md_feeder.Dockerfile -t chimera/md-feeder .
#
# Builder: uv (pinned, from PyPI) installs exactly what uv.lock says for the md-feeder package
# and its workspace dependencies (tradekit, svckit; never S3, S4 or the simulator) into
# /app/.venv. Runtime: the venv and the sources it points at, on the same python:3.11-slim
# base, as uid 10001. No compilers, no uv, no curl.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_PROGRESS=1
RUN pip install "uv==0.13.9"
WORKDIR /app

# 1) Third-party dependencies only: this layer is reused until uv.lock or a pyproject changes.
#    Every workspace member's pyproject.toml is needed for uv to read the workspace.
COPY pyproject.toml uv.lock ./
COPY libs/tradekit/pyproject.toml libs/tradekit/pyproject.toml
COPY libs/svckit/pyproject.toml libs/svckit/pyproject.toml
COPY libs/venue/pyproject.toml libs/venue/pyproject.toml
COPY services/s3_strategy/pyproject.toml services/s3_strategy/pyproject.toml
COPY services/s4_router/pyproject.toml services/s4_router/pyproject.toml
COPY services/md_feeder/pyproject.toml services/md_feeder/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package md-feeder --no-install-workspace

# 2) The workspace packages themselves (installed editable, pointing at /app/...).
COPY libs libs
COPY services/md_feeder services/md_feeder
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package md-feeder


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MD_HOST=0.0.0.0 \
    MD_PORT=8080 \
    MD_LOG_LEVEL=INFO
RUN groupadd --system --gid 10001 chimera \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin chimera
WORKDIR /app
# Same paths as in the builder: the editable installs in the venv resolve to these sources.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/libs /app/libs
COPY --from=builder /app/services/md_feeder /app/services/md_feeder
USER 10001:10001
EXPOSE 8080
# python, not curl (slim has none). urlopen raises on 503 (Redis unreachable).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MD_PORT', '8080') + '/health', timeout=4)"]
CMD ["python", "-m", "md_feeder"]
