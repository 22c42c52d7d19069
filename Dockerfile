# One image for the Flex Template launcher and the Dataflow workers (sdk_container_image), GPU-ready.
# Versions: Python and Beam come from pyproject.toml; tests/test_packaging.py fails when these disagree.
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0
ARG CUDA_IMAGE=nvidia/cuda:12.5.1-cudnn-runtime-ubuntu22.04
ARG LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base:latest

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam
FROM ${LAUNCHER_IMAGE} AS launcher

# CUDA runtime and cuDNN (no compilers): what TensorFlow's and TensorRT's GPU kernels need.
FROM ${CUDA_IMAGE}
ARG PYTHON_VERSION
ARG TENSORRT_VERSION=10.16.1.11
# The image's own name, so that jobs started from it run their workers on it too.
ARG WORKER_IMAGE=""

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Python 3.11 (the version of the Beam SDK image and the launcher) from the deadsnakes archive.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" \
    && apt-get purge -y software-properties-common gpg-agent && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* \
    && "python${PYTHON_VERSION}" -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv

WORKDIR /template
COPY pyproject.toml README.md ./
COPY template/ template/
# Everything is installed now: nothing is installed when a job launches.
# TensorRT wheels come from NVIDIA's package index; TensorFlow uses the base image's CUDA libraries.
RUN pip install --extra-index-url https://pypi.nvidia.com ".[gpu,onnx,tensorrt]" "tensorrt-cu12==${TENSORRT_VERSION}" \
    && python -c "import apache_beam, tensorflow, tokenizers, polygraphy, bertqa"

COPY --from=beam /opt/apache/beam /opt/apache/beam
COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/template/main.py \
    BERTQA_WORKER_IMAGE=${WORKER_IMAGE}

ENTRYPOINT ["/opt/apache/beam/boot"]
