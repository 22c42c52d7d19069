# One image for the Flex Template launcher and the Dataflow workers (sdk_container_image), GPU-ready.
# Python packages: image/requirements.txt (every one pinned, CUDA 12 from NVIDIA's pip wheels; regenerate with
# `python image/lock.py`). tests/test_image.py checks the list, the CUDA major, cuDNN and these versions.
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0
# Debian 12 (glibc 2.36), the platform image/requirements.txt is resolved for.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# A dated release from Google's table of Flex Template base images, never :latest.
ARG LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base:20260122_RC00

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam
FROM ${LAUNCHER_IMAGE} AS launcher

FROM ${PYTHON_IMAGE}
ARG TENSORRT_VERSION=10.16.1.11
# The image's own name, so that jobs started from it run their workers on it too.
ARG WORKER_IMAGE=""

# Packages go into the image's one interpreter (no venv): the launcher runs it, and Beam's boot runs it in
# the workers. Boot would otherwise make a venv of its own at every worker start (sdks/python/container/boot.go).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /template
COPY image/ image/
# Everything from PyPI, exactly as locked: nothing resolved or installed when a job launches.
RUN pip install --no-deps -r image/requirements.txt
# TensorRT's libraries exist only on NVIDIA's index; its name is given only for these two pinned packages.
RUN pip install --no-deps --extra-index-url https://pypi.nvidia.com \
      "tensorrt-cu12==${TENSORRT_VERSION}" "tensorrt-cu12-libs==${TENSORRT_VERSION}"

COPY pyproject.toml README.md ./
COPY template/ template/
RUN pip install --no-deps . \
    && pip check \
    && python image/check.py

COPY --from=beam /opt/apache/beam /opt/apache/beam
COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/template/main.py \
    BERTQA_WORKER_IMAGE=${WORKER_IMAGE}

ENTRYPOINT ["/opt/apache/beam/boot"]
