"""The GPU image's packages, checked from their own metadata as pip resolves them (PyPI, no large downloads).

The image cannot be built here; what it depends on is read from the wheels' metadata, exactly as the
build's pip reads it, so that a wrong CUDA major, an old cuDNN or an inconsistent pin fails here.
"""

import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "image"))

import lock  # noqa: E402

CUDA_PACKAGE = re.compile(r"^(nvidia-[a-z\-]+|tensorrt)-cu(\d+)(-[a-z]+)?$")


def locked_lines() -> list[str]:
    return [line for line in lock.LOCK.read_text().splitlines() if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def resolved() -> dict[str, dict]:
    """pip's resolution of image/requirements.txt for the image's platform: name -> report entry."""
    return {canonicalize_name(item["metadata"]["name"]): item for item in lock.resolve(locked_lines())}


def versions() -> dict[str, str]:
    return {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in locked_lines()}


def requirements_of(entry: dict, extras: set[str]) -> list[Requirement]:
    """An installed package's requirements that apply on the image's platform with these extras."""
    result = []
    for text in entry["metadata"].get("requires_dist", []):
        requirement = Requirement(text)
        environment = {"python_version": "3.11", "platform_system": "Linux", "sys_platform": "linux",
                       "platform_machine": "x86_64"}
        if requirement.marker is None or any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras | {""}):
            result.append(requirement)
    return result


def test_the_lock_is_complete_and_consistent(resolved):
    # Resolving the pinned list adds nothing and changes nothing: the --no-deps install is whole, and
    # every package's requirements hold (what `pip check` checks in the build).
    assert lock.pins(list(resolved.values())) == locked_lines()


def test_the_lock_satisfies_every_project_requirement():
    pinned = versions()
    for text in lock.project_requirements():
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned and requirement.specifier.contains(pinned[name]), text


def test_one_cuda_major_for_tensorflow_onnx_runtime_and_tensorrt(resolved):
    majors = {name: CUDA_PACKAGE.match(name).group(2) for name in resolved if CUDA_PACKAGE.match(name)}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "tensorrt-cu12-bindings"} <= set(
        majors)
    assert set(majors.values()) == {"12"}, majors
    assert versions()["nvidia-cuda-runtime-cu12"].split(".")[0] == "12"
    # onnxruntime-gpu's own CUDA requirements (builds from 1.27 on ask for CUDA 13 and would not load).
    onnx_cuda = [r.name for r in requirements_of(resolved["onnxruntime-gpu"], {"cuda", "cudnn"})
                 if r.name.startswith("nvidia-")]
    assert onnx_cuda and all(name.endswith("-cu12") for name in onnx_cuda), onnx_cuda
    # TensorRT's libraries (NVIDIA's index) are installed at the bindings' version, for the same CUDA.
    dockerfile = (ROOT / "Dockerfile").read_text()
    tensorrt_version = re.search(r"^ARG TENSORRT_VERSION=(\S+)", dockerfile, re.M).group(1)
    assert versions()["tensorrt-cu12-bindings"] == tensorrt_version
    assert '"tensorrt-cu12-libs==${TENSORRT_VERSION}"' in dockerfile


def test_cudnn_is_the_one_tensorflow_asks_for(resolved):
    (cudnn,) = [r for r in requirements_of(resolved["tensorflow"], {"and-cuda"}) if r.name == "nvidia-cudnn-cu12"]
    assert cudnn.marker is not None and Marker(str(cudnn.marker)).evaluate({"extra": "and-cuda"})
    assert cudnn.specifier.contains(versions()["nvidia-cudnn-cu12"]), (str(cudnn), versions()["nvidia-cudnn-cu12"])
    (onnx_cudnn,) = [r for r in requirements_of(resolved["onnxruntime-gpu"], {"cudnn"}) if "cudnn" in r.name]
    assert onnx_cudnn.specifier.contains(versions()["nvidia-cudnn-cu12"])


def test_the_readme_states_the_image_versions_and_its_download_size(resolved):
    readme = (ROOT / "README.md").read_text()
    pinned = versions()
    for name in ("tensorflow", "onnxruntime-gpu", "nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12",
                 "tensorrt-cu12-bindings", "apache-beam"):
        assert f"`{name}=={pinned[name]}`" in readme, name
    gigabytes = lock.download_bytes(list(resolved.values())) / 1e9
    assert f"{gigabytes:.1f} GB of wheels" in readme, gigabytes


def test_pytorch_from_pypi_is_a_cuda_13_build_that_this_cuda_12_image_does_not_carry(resolved):
    # What the README says of putting --backend=pytorch's torch into this image, read from the wheels' metadata.
    torch_stack = {canonicalize_name(item["metadata"]["name"]): item for item in lock.resolve(["torch==2.13.0"])}
    wanted = [str(r) for r in requirements_of(torch_stack["torch"], set())]
    assert any(r.startswith("nvidia-cudnn-cu13") for r in wanted) and any("cuda-toolkit" in r and "==13." in r
                                                                          for r in wanted), wanted
    assert not any(CUDA_PACKAGE.match(name) and CUDA_PACKAGE.match(name).group(2) == "12" for name in torch_stack)
    assert "torch" not in resolved
    added = [item for name, item in torch_stack.items() if name not in resolved]
    gigabytes = lock.download_bytes(added) / 1e9
    readme = (ROOT / "README.md").read_text()
    assert f"{gigabytes:.1f} GB more wheels" in readme and "`torch==2.13.0`" in readme, gigabytes
