# The template's images, one per use, each both the Flex Template launcher and the Dataflow workers' SDK container:
#   docker build --build-arg=IMAGE=cpu .              TensorFlow CPU and ONNX Runtime (fp32, int8); no CUDA
#   docker build --build-arg=IMAGE=gpu .              ONNX Runtime and TensorRT on CUDA 12; no TensorFlow
#   docker build --build-arg=IMAGE=gpu-tensorflow .   the gpu image and TensorFlow's CUDA build
#   docker build --build-arg=IMAGE=gpu-pytorch .      PyTorch and transformers (PyPI's torch: CUDA 13) alone
# Python packages: image/requirements-IMAGE.txt (every one pinned with its hash; regenerate with
# `python image/lock.py`). tests/test_image.py checks the lists, the CUDA major, cuDNN and these versions.
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0
# Debian 12 (glibc 2.36), the platform image/requirements-*.txt are resolved for.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# A dated release, never :latest. Google's own Python Flex Template sample pins this image in the same
# YYYYMMDD_RC00 form (python-docs-samples, dataflow/flex-templates/pipeline_with_dependencies/Dockerfile:
# python311-template-launcher-base:20230622_RC00); 20260122_RC00 is the newest release in Google's table of
# base images as indexed here, read from its Java rows (the Python rows were not in the index): that this
# python311 tag exists is not checked here.
ARG LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base:20260122_RC00
ARG IMAGE=gpu-tensorflow

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam
FROM ${LAUNCHER_IMAGE} AS launcher

FROM ${PYTHON_IMAGE} AS base
# Packages go into the image's one interpreter (no venv): the launcher runs it, and Beam's boot runs it in
# the workers. Boot would otherwise make a venv of its own at every worker start (sdks/python/container/boot.go).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /template
COPY image/ image/

FROM base AS packages-cpu
# Everything from PyPI, exactly as locked and hash-checked: nothing resolved or installed when a job launches.
RUN pip install --no-deps --require-hashes -r image/requirements-cpu.txt

FROM base AS gpu-driver
# The NVIDIA driver's libraries and tools, where the host mounts them (Dataflow: /usr/local/nvidia), found as
# NVIDIA's CUDA base images find them (their Dockerfiles set these; tests/test_image.py compares).
ENV PATH=/usr/local/nvidia/bin:${PATH} \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN printf '/usr/local/nvidia/lib\n/usr/local/nvidia/lib64\n' > /etc/ld.so.conf.d/nvidia.conf

FROM gpu-driver AS packages-gpu-pytorch
RUN pip install --no-deps --require-hashes -r image/requirements-gpu-pytorch.txt

FROM gpu-driver AS packages-gpu
ARG TENSORRT_VERSION=10.16.1.11
RUN pip install --no-deps --require-hashes -r image/requirements-gpu.txt
# TensorRT's libraries exist only on NVIDIA's index (no hashes are read from it here): its name is given only for
# these two packages, pinned to the bindings' version.
RUN pip install --no-deps --extra-index-url https://pypi.nvidia.com \
      "tensorrt-cu12==${TENSORRT_VERSION}" "tensorrt-cu12-libs==${TENSORRT_VERSION}"

FROM packages-gpu AS packages-gpu-tensorflow
RUN pip install --no-deps --require-hashes -r image/requirements-gpu-tensorflow.txt

# hadolint ignore=DL3006
FROM packages-${IMAGE}
ARG IMAGE
COPY pyproject.toml README.md ./
COPY template/ template/
RUN pip install --no-deps . \
    && pip check \
    && python image/check.py "${IMAGE}"

COPY --from=beam /opt/apache/beam /opt/apache/beam
COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

# BERTQA_IMAGE says what this image carries (not where it is stored): the launcher refuses a job its workers,
# which run this image, could not run.
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/template/main.py \
    BERTQA_IMAGE=${IMAGE}

ENTRYPOINT ["/opt/apache/beam/boot"]
