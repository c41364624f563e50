# syntax=docker/dockerfile:1
# keizoku's image: a builder stage makes the wheel and a virtual environment with the
# extras asked for; the runtime stage copies only that environment onto python:3.11-slim
# (no compilers, no pip cache, no source tree) and runs as an unprivileged user.
# Step by step, build arguments and volumes: docs/deployment.md.
#
#   docker build -t keizoku:0.1.0 .
#   docker build -t keizoku:0.1.0-torch --build-arg EXTRAS=postgres,torch .

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# Comma-separated extras of pyproject.toml (postgres, eval, torch, rag, onnx, forecast, ...).
ARG EXTRAS=postgres
# Extra requirements outside the extras (for example the S3 client for s3:// artifacts).
ARG EXTRA_PACKAGES=""
# The deep-learning extras (torch, rag) get PyTorch's CPU wheel from this index, never the
# CUDA build that PyPI serves by default (gigabytes of GPU libraries a CPU server never uses).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/keizoku
WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
RUN /opt/keizoku/bin/pip wheel --no-deps --wheel-dir /build/dist .
RUN set -eu; \
    case ",${EXTRAS}," in \
      *,torch,*|*,rag,*|*,text,*) \
        /opt/keizoku/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" ;; \
    esac; \
    wheel="$(ls /build/dist/keizoku-*.whl)"; \
    if [ -n "${EXTRAS}" ]; then wheel="${wheel}[${EXTRAS}]"; fi; \
    /opt/keizoku/bin/pip install "${wheel}" ${EXTRA_PACKAGES}; \
    /opt/keizoku/bin/keizoku --help >/dev/null

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# LightGBM and XGBoost load OpenMP at import; the slim image lacks it. Nothing else is added.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 keizoku \
    && useradd --system --uid 10001 --gid keizoku --home-dir /home/keizoku --create-home \
       --shell /usr/sbin/nologin keizoku \
    && install -d -o keizoku -g keizoku -m 0750 /var/lib/keizoku \
    && install -d -o keizoku -g keizoku -m 0755 /project

COPY --from=builder /opt/keizoku /opt/keizoku

# KEIZOKU_HOME: the state that stays local (or all state without KEIZOKU_STORE); a volume.
# /project: where a project (keizoku.yaml, schema.yaml, data) is mounted for train/loop.
ENV PATH=/opt/keizoku/bin:${PATH} \
    KEIZOKU_HOME=/var/lib/keizoku \
    HOME=/home/keizoku \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:8000/healthz
VOLUME ["/var/lib/keizoku"]
WORKDIR /project
USER 10001:10001
EXPOSE 8000

# /healthz answers once the server is up (docs/serving.md); HEALTHCHECK_URL for another port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4)"

ENTRYPOINT ["keizoku"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
