"""The images' packages, checked from their own metadata as pip resolves them (PyPI, no large downloads).

The images cannot be built here; what they depend on is read from the wheels' metadata, exactly as the
build's pip reads it, so that a wrong CUDA major, an old cuDNN or an inconsistent pin fails here.
"""

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bertqa.images import IMAGES

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "image"))

import lock  # noqa: E402

CUDA_PACKAGE = re.compile(r"^(nvidia-[a-z\-]+|tensorrt)-cu(\d+)(-[a-z]+)?$")


# pip's reports, kept by the hash of the lock they resolve and of image/lock.py (how pip is asked): a lock pins every
# package with its hashes, so its resolution cannot change while neither does. A clean machine (CI) asks PyPI.
RESOLVE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bertqa" / "image-resolve"


def cached_resolve(lines: list[str]) -> list[dict]:
    asked = (ROOT / "image" / "lock.py").read_text() + "\n".join(lines)
    path = RESOLVE_CACHE / (hashlib.sha256(asked.encode()).hexdigest() + ".json")
    if path.exists():
        return json.loads(path.read_text())
    report = lock.resolve(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(report))
    os.replace(partial, path)
    return report


@pytest.fixture(scope="module")
def resolved() -> dict[str, dict[str, dict]]:
    """pip's resolution of each image's lock for the image's platform: image -> name -> report entry."""
    return {image: {canonicalize_name(item["metadata"]["name"]): item
                    for item in cached_resolve(lock.locked_lines(image))} for image in IMAGES}


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


def test_every_lock_is_complete_consistent_and_hashed(resolved):
    for image in IMAGES:
        # Resolving the pinned list adds nothing and changes nothing: the --no-deps install is whole, every
        # package's requirements hold (what `pip check` checks in the build), and each line carries the hash
        # of the file pip takes (the Dockerfile installs with --require-hashes).
        assert lock.pins(list(resolved[image].values())) == lock.locked_lines(image), image
        assert all(re.search(r" --hash=sha256:[0-9a-f]{64}$", line) for line in lock.locked_lines(image))
    dockerfile = (ROOT / "Dockerfile").read_text()
    for image in IMAGES:
        assert f"RUN pip install --no-deps --require-hashes -r image/requirements-{image}.txt" in dockerfile


def test_each_lock_satisfies_its_images_project_requirements():
    for image in IMAGES:
        pinned = lock.locked_versions(image)
        for text in lock.project_requirements(image):
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in pinned and requirement.specifier.contains(pinned[name]), (image, text)


def test_the_tensorflow_image_adds_to_the_gpu_image_and_changes_none_of_its_versions():
    # packages-gpu-tensorflow installs its lock over the gpu image's packages: the same ONNX Runtime/TensorRT stack.
    gpu, with_tensorflow = lock.locked_versions("gpu"), lock.locked_versions("gpu-tensorflow")
    assert {name: with_tensorflow.get(name) for name in gpu} == gpu
    assert "tensorflow" in with_tensorflow and "tensorflow" not in gpu and "tensorflow-cpu" not in gpu


def test_the_cpu_image_carries_no_cuda_and_the_gpu_images_one_cuda_major(resolved):
    assert not [name for name in resolved["cpu"] if CUDA_PACKAGE.match(name) or name == "onnxruntime-gpu"]
    assert {"tensorflow-cpu", "onnxruntime"} <= set(resolved["cpu"])
    for image in ("gpu", "gpu-tensorflow"):  # gpu-pytorch: CUDA 13, below
        majors = {name: CUDA_PACKAGE.match(name).group(2) for name in resolved[image] if CUDA_PACKAGE.match(name)}
        assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12",
                "tensorrt-cu12-bindings"} <= set(majors)
        assert set(majors.values()) == {"12"}, majors
        # onnxruntime-gpu's own CUDA requirements (builds from 1.27 on ask for CUDA 13 and would not load).
        onnx_cuda = [r.name for r in requirements_of(resolved[image]["onnxruntime-gpu"], {"cuda", "cudnn"})
                     if r.name.startswith("nvidia-")]
        assert onnx_cuda and all(name.endswith("-cu12") for name in onnx_cuda), onnx_cuda
    # TensorRT's libraries (NVIDIA's index) are installed at the bindings' version, for the same CUDA.
    dockerfile = (ROOT / "Dockerfile").read_text()
    tensorrt_version = re.search(r"^ARG TENSORRT_VERSION=(\S+)", dockerfile, re.M).group(1)
    assert lock.locked_versions("gpu")["tensorrt-cu12-bindings"] == tensorrt_version
    assert '"tensorrt-cu12-libs==${TENSORRT_VERSION}"' in dockerfile


def test_cudnn_is_the_one_tensorflow_and_onnx_runtime_ask_for(resolved):
    packages = resolved["gpu-tensorflow"]
    cudnn_version = lock.locked_versions("gpu-tensorflow")["nvidia-cudnn-cu12"]
    (cudnn,) = [r for r in requirements_of(packages["tensorflow"], {"and-cuda"}) if r.name == "nvidia-cudnn-cu12"]
    assert cudnn.marker is not None and Marker(str(cudnn.marker)).evaluate({"extra": "and-cuda"})
    assert cudnn.specifier.contains(cudnn_version), (str(cudnn), cudnn_version)
    (onnx_cudnn,) = [r for r in requirements_of(packages["onnxruntime-gpu"], {"cudnn"}) if "cudnn" in r.name]
    assert onnx_cudnn.specifier.contains(cudnn_version)


def test_image_sizes_are_the_ones_measured_from_the_locked_wheels(resolved):
    """data/images.json (which sizes the workers' boot disks) holds what the wheels measure now: their
    download size and their files' uncompressed size, read from each wheel's zip directory by range requests."""
    recorded = json.loads(lock.SIZES.read_text())["images"]
    for image in IMAGES:
        download, installed = lock.sizes(list(resolved[image].values()))
        assert recorded[image] == {"packages": len(resolved[image]), "download_bytes": download,
                                   "installed_bytes": installed}, image
    # The targets (Python packages; TensorRT's libraries from NVIDIA's index are not counted).
    assert recorded["cpu"]["installed_bytes"] < 2.5e9 and recorded["gpu"]["installed_bytes"] < 7e9


def test_the_readme_states_the_images_versions_and_sizes():
    readme = (ROOT / "README.md").read_text()
    pinned = lock.locked_versions("gpu-tensorflow")
    for name in ("tensorflow", "onnxruntime-gpu", "nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12",
                 "tensorrt-cu12-bindings", "apache-beam"):
        assert f"`{name}=={pinned[name]}`" in readme, name
    for image in IMAGES.values():
        row = (f"| `{image.name}` | {', '.join(image.backends)} | {image.download_bytes / 1e9:.2f} GB | "
               f"{image.installed_bytes / 1e9:.2f} GB | {image.boot_disk_gb} GB |")
        assert row in readme, row


def test_pytorch_has_an_image_of_its_own_because_pypis_torch_is_a_cuda_13_build(resolved):
    packages = resolved["gpu-pytorch"]
    wanted = [str(r) for r in requirements_of(packages["torch"], set())]
    assert any(r.startswith("nvidia-cudnn-cu13") for r in wanted) and any("cuda-toolkit" in r and "==13." in r
                                                                          for r in wanted), wanted
    assert not [name for name in packages if name.endswith("-cu12") or name == "onnxruntime-gpu"]
    assert "nvidia-cudnn-cu13" in packages and lock.locked_versions("gpu-pytorch")["torch"] == "2.13.0"
    assert [image for image, found in resolved.items() if "torch" in found] == ["gpu-pytorch"]


def test_gpu_images_find_the_drivers_libraries_as_nvidias_cuda_images_do():
    """NVIDIA's CUDA base image Dockerfile (gitlab.com/nvidia/container-images/cuda, dist/12.0.0/ubuntu2204/
    base/Dockerfile, as transcribed in wordslab-org/wordslab doc/infra/containers/nvidia-cuda-base-install.sh)
    sets these, where the host's driver is mounted (/usr/local/nvidia); the CUDA toolkit paths it also sets
    do not apply (CUDA comes from pip wheels here)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    gpu_stage = dockerfile[dockerfile.index("FROM base AS gpu-driver"):dockerfile.index("FROM gpu-driver AS")]
    for setting in ("PATH=/usr/local/nvidia/bin:${PATH}", "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
                    "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
                    r"printf '/usr/local/nvidia/lib\n/usr/local/nvidia/lib64\n' > /etc/ld.so.conf.d/nvidia.conf"):
        assert setting in gpu_stage, setting
    cpu_stage = dockerfile[dockerfile.index("FROM base AS packages-cpu"):dockerfile.index("FROM base AS gpu-driver")]
    # Every GPU image is built on the driver stage.
    assert set(re.findall(r"^FROM (\S+) AS packages-gpu(?:-\w+)?$", dockerfile, re.M)) <= {"gpu-driver", "packages-gpu"}
    assert "nvidia" not in cpu_stage.lower()
    # The final stage is the one the IMAGE argument names, and says which it is.
    assert "FROM packages-${IMAGE}" in dockerfile and "BERTQA_IMAGE=${IMAGE}" in dockerfile
    assert 'python image/check.py "${IMAGE}"' in dockerfile
    assert set(re.findall(r"^FROM \S+ AS packages-(\S+)$", dockerfile, re.M)) == set(IMAGES)
