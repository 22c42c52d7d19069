"""The template's images as jobs see them: the spec each writes, the launches each refuses, the disks they get,
and GPU facts read from the driver's NVML."""

import json

import pytest
from google.cloud import dataflow_v1beta3 as dataflow

from bertqa.cli import main as bertqa_main
from bertqa.images import IMAGES, image_for

DATAFLOW = ["--input=gs://b/q.jsonl", "--output=gs://b/out", "--model_path=gs://b/model", "--vocab_path=gs://b/v.txt",
            "--runner=DataflowRunner", "--project=p", "--region=us-central1", "--temp_location=gs://b/tmp"]
IMAGE_URI = "us-central1-docker.pkg.dev/p/dataflow/bertqa-gpu:7"


def test_each_spec_names_its_own_image_as_the_workers_and_carries_the_templates_metadata(capsys):
    assert bertqa_main(["metadata", f"--spec_image={IMAGE_URI}", "--image_kind=gpu"]) == 0
    text = capsys.readouterr().out
    spec = dataflow.ContainerSpec.from_json(text)  # the v1b3 type Dataflow reads the spec file as
    assert spec.image == IMAGE_URI and spec.default_environment.sdk_container_image == IMAGE_URI
    assert spec.sdk_info.language == dataflow.SDKInfo.Language.PYTHON
    assert "gpu image: onnxruntime, tensorrt" in spec.metadata.name
    assert [p["name"] for p in json.loads(text)["metadata"]["parameters"]] == [
        p.name for p in dataflow.TemplateMetadata.from_json(open("metadata.json").read()).parameters]
    with pytest.raises(SystemExit) as refused:  # which image it is must be said
        bertqa_main(["metadata", f"--spec_image={IMAGE_URI}"])
    assert refused.value.code == 2 and "--spec_image needs --image_kind" in capsys.readouterr().err


@pytest.mark.parametrize("image, args, refusal", [
    ("gpu", ["--gpu_type=nvidia-l4", "--backend=tensorflow"],
     "--backend=tensorflow on a GPU: this template's image (gpu: onnxruntime, tensorrt, CUDA) cannot run it; launch "
     "from the gpu-tensorflow image's template (bertqa-gpu-tensorflow-TAG.json)"),
    ("cpu", ["--gpu_type=nvidia-l4", "--backend=onnxruntime"],
     "--backend=onnxruntime on a GPU: this template's image (cpu: tensorflow, onnxruntime, no CUDA) cannot run it; "
     "launch from the gpu image's template (bertqa-gpu-TAG.json)"),
    ("gpu-tensorflow", ["--backend=tensorflow"],
     "--backend=tensorflow on CPU workers: this template's image (gpu-tensorflow: tensorflow, onnxruntime, tensorrt, "
     "CUDA) cannot run it; launch from the cpu image's template (bertqa-cpu-TAG.json)"),
    ("gpu", ["--gpu_type=nvidia-l4", "--backend=pytorch"],
     "--backend=pytorch on a GPU: this template's image (gpu: onnxruntime, tensorrt, CUDA) cannot run it; launch "
     "from the gpu-pytorch image's template (bertqa-gpu-pytorch-TAG.json)"),
    ("cpu", ["--backend=pytorch"],
     "--backend=pytorch on CPU workers: this template's image (cpu: tensorflow, onnxruntime, no CUDA) cannot run it; "
     "no image of this template carries it yet: launch from a template built on an image with torch and "
     "transformers"),
])
def test_a_launch_the_images_workers_could_not_run_is_refused_before_the_job_exists(monkeypatch, capsys, image, args,
                                                                                    refusal):
    monkeypatch.setenv("BERTQA_IMAGE", image)
    given = [a for a in DATAFLOW if not (a.startswith("--vocab_path") and "--backend=pytorch" in args)]
    assert bertqa_main(["run", *given, *args, f"--sdk_container_image={IMAGE_URI}"]) == 2
    assert refusal in capsys.readouterr().err


def test_a_job_with_no_worker_image_is_refused_in_the_template_image(monkeypatch, capsys):
    monkeypatch.setenv("BERTQA_IMAGE", "cpu")
    assert bertqa_main(["run", *DATAFLOW, "--backend=onnxruntime"]) == 2
    assert ("the job names no worker image (--sdk_container_image), so its workers would run Beam's own image, "
            "which has no bertqa") in capsys.readouterr().err


@pytest.mark.parametrize("given", [["--sdk_container_image", IMAGE_URI], [f"--worker_harness_container_image={IMAGE_URI}"]])
def test_a_worker_image_given_in_any_form_beam_takes_counts(monkeypatch, given):
    from bertqa.params import build_params
    from bertqa.dataflow.preflight import check_worker_image

    monkeypatch.setenv("BERTQA_IMAGE", "gpu")
    params = build_params({"input": "gs://b/q", "output": "gs://b/o", "model_path": "gs://b/m.onnx",
                           "vocab_path": "gs://b/v", "backend": "onnxruntime", "gpu_type": "nvidia-l4"})
    check_worker_image(params, ["--runner=DataflowRunner", *given], local=False)  # no refusal


def test_every_backend_has_an_image_for_the_device_it_runs_on_but_pytorch_on_cpus():
    assert {(b, gpu): image_for(b, gpu).name for b in ("tensorflow", "onnxruntime") for gpu in (False, True)} == {
        ("tensorflow", False): "cpu", ("onnxruntime", False): "cpu", ("tensorflow", True): "gpu-tensorflow",
        ("onnxruntime", True): "gpu"}
    assert image_for("tensorrt", True).name == "gpu" and image_for("tensorrt", False) is None
    assert image_for("pytorch", True).name == "gpu-pytorch" and image_for("pytorch", False) is None


def test_boot_disks_fit_twice_the_image_and_the_parameters_help_says_which(monkeypatch):
    from bertqa.params import TemplateParams, build_params

    for image in IMAGES.values():
        assert image.boot_disk_gb >= 2 * image.installed_bytes / 1e9 + 20 and image.boot_disk_gb % 10 == 0
    assert IMAGES["cpu"].boot_disk_gb == 30
    assert {image.boot_disk_gb for image in IMAGES.values() if image.gpu} == {IMAGES["gpu"].boot_disk_gb}
    help_text = TemplateParams.model_fields["disk_size_gb"].description
    assert f"{IMAGES['cpu'].boot_disk_gb} GB for the CPU image, {IMAGES['gpu'].boot_disk_gb} GB for the GPU" in help_text
    required = {"input": "gs://b/q", "output": "gs://b/o", "model_path": "gs://b/m", "vocab_path": "gs://b/v"}
    monkeypatch.setenv("BERTQA_IMAGE", "cpu")
    assert build_params(required).worker_disk_size_gb == 30  # CPU jobs too, not Dataflow's default
    assert build_params({**required, "disk_size_gb": "80"}).worker_disk_size_gb == 80


def test_without_a_gpu_driver_nvml_says_what_is_missing():
    from bertqa.backends import nvml

    with pytest.raises(nvml.NoGpuError, match=r"libnvidia-ml\.so\.1.*LD_LIBRARY_PATH \(/usr/local/nvidia/lib64"):
        nvml.gpus()
    assert nvml.gpu_present() is False


@pytest.mark.parametrize("machine, accepted", [
    ("n1-standard-4", True), ("n1-highmem-32", True), ("custom-8-30720", True), ("custom-48-65536", True),
    ("n1-standard-64", False), ("n1-highcpu-96", False), ("n1-custom-8-30720", False), ("custom-64-65536", False),
    ("g2-standard-8", False)])
def test_t4_workers_take_the_machine_types_compute_engine_gives_one_t4(machine, accepted):
    from bertqa.params import ParameterError, build_params

    required = {"input": "gs://b/q", "output": "gs://b/o", "model_path": "gs://b/m", "vocab_path": "gs://b/v",
                "gpu_type": "nvidia-tesla-t4", "gpu_machine_type": machine}
    if accepted:
        assert build_params(required).gpu_worker_machine_type == machine
    else:
        with pytest.raises(ParameterError, match="an n1 machine type of up to 48 vCPUs"):
            build_params(required)
