"""`bertqa launch`: validated template parameters -> an exact gcloud command or a flexTemplates.launch body.

The template parameters are checked with the same model the job uses, and against the metadata's
regexes that Dataflow itself applies, so a bad value fails here, before anything reaches Dataflow.
Beam options that are fields of the launch's runtime environment (workers, machine type, network,
labels, experiments, ...) go there; every other Beam option goes through `additionalPipelineOptions`
(gcloud: `--additional-pipeline-options`). Only declared template parameters go in `parameters`:
Dataflow refuses any other ("Unrecognized parameter").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import sys
from typing import Sequence

from google.cloud import dataflow_v1beta3 as dataflow

from bertqa.dataflow.arguments import split_args
from bertqa.dataflow.resources import dataflow_problems, gpu_pipeline_args
from bertqa.dataflow.metadata import template_metadata
from bertqa.params import GCS_PATH, ParameterError, TemplateParams


@dataclasses.dataclass(frozen=True)
class EnvironmentField:
    """Where a Beam option goes in a launch: its FlexTemplateRuntimeEnvironment field and gcloud flag."""

    field: str
    gcloud: str | None  # None: gcloud has no flag; it goes through --additional-pipeline-options
    kind: str = "text"  # text | count (a whole number >= 1) | list (comma-separated, repeatable) | labels | flag


_MACHINE_TYPE = EnvironmentField("machine_type", "--worker-machine-type")
_EXPERIMENTS = EnvironmentField("additional_experiments", "--additional-experiments", "list")
_LABELS = EnvironmentField("additional_user_labels", "--additional-user-labels", "labels")
# Beam option -> the runtime environment's field (names as in the v1b3 API; the client library checks them)
ENVIRONMENT_OPTIONS = {
    "num_workers": EnvironmentField("num_workers", "--num-workers", "count"),
    "max_num_workers": EnvironmentField("max_workers", "--max-workers", "count"),
    "machine_type": _MACHINE_TYPE,
    "worker_machine_type": _MACHINE_TYPE,
    "temp_location": EnvironmentField("temp_location", "--temp-location"),
    "staging_location": EnvironmentField("staging_location", "--staging-location"),
    "service_account_email": EnvironmentField("service_account_email", "--service-account-email"),
    "network": EnvironmentField("network", "--network"),
    "subnetwork": EnvironmentField("subnetwork", "--subnetwork"),
    "worker_region": EnvironmentField("worker_region", "--worker-region"),
    "worker_zone": EnvironmentField("worker_zone", "--worker-zone"),
    "dataflow_kms_key": EnvironmentField("kms_key_name", "--dataflow-kms-key"),
    "flexrs_goal": EnvironmentField("flexrs_goal", "--flexrs-goal"),
    "sdk_container_image": EnvironmentField("sdk_container_image", None),
    "experiments": _EXPERIMENTS,
    "experiment": _EXPERIMENTS,
    "labels": _LABELS,
    "label": _LABELS,
    "no_use_public_ips": EnvironmentField("ip_configuration", "--disable-public-ips", "flag"),
}
_FLAGS = {"no_use_public_ips"}  # Beam options given without a value
# Not a Beam option (the launcher VM runs before Beam): a flag of `bertqa launch` itself.
_LAUNCHER_MACHINE_TYPE = EnvironmentField("launcher_machine_type", "--launcher-machine-type")


def _launch_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertqa launch", allow_abbrev=False,
        description="Print the gcloud command or REST body that launches the Flex Template with these "
        "parameters (validated first). Template parameters and Beam options follow as --name=value.")
    parser.add_argument("--format", choices=("gcloud", "rest"), required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--template_path", required=True, help="gs:// path of the template spec file")
    parser.add_argument("--job_name", required=True)
    parser.add_argument("--validate_only", action="store_true", help="REST only: check, do not start the job")
    parser.add_argument("--launcher_machine_type",
                        help="the Flex launcher VM's machine type (Dataflow's default: n1-standard-1); the launcher "
                        "pulls this template's image, several GB, before the job starts")
    return parser


@dataclasses.dataclass
class Launch:
    """One validated launch: template parameters, runtime environment fields and other Beam options."""

    options: argparse.Namespace
    parameters: dict[str, str] = dataclasses.field(default_factory=dict)
    environment: dict[str, object] = dataclasses.field(default_factory=dict)  # field -> value
    gcloud_flags: list[str] = dataclasses.field(default_factory=list)
    pipeline_options: list[str] = dataclasses.field(default_factory=list)  # "name=value"


def _pairs(args: Sequence[str]) -> list[tuple[str, str | None]]:
    pairs = []
    for arg in args:
        name, has_value, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not name or (not has_value and name not in _FLAGS):
            raise ParameterError(f"expected --name=value, got {arg!r}")
        pairs.append((name, value if has_value else None))
    return pairs


def _check_against_metadata(parameters: dict[str, str]) -> None:
    """Dataflow refuses a launch whose parameter values miss the metadata's regexes: refuse it first."""
    regexes = {entry["name"]: entry.get("regexes", []) for entry in template_metadata()["parameters"]}
    problems = []
    for name, value in parameters.items():
        for regex in regexes[name]:
            if not re.fullmatch(regex, value):
                wanted = "a gs:// path (workers cannot read this machine's files)" if regex == GCS_PATH \
                    else f"a value matching {regex}"
                problems.append(f"--{name}={value}: the template takes {wanted}")
                break
    if problems:
        raise ParameterError("bad template parameter(s) for Dataflow:\n  " + "\n  ".join(problems))


def _add_environment(launch: Launch, name: str, value: str | None) -> None:
    target = ENVIRONMENT_OPTIONS[name]
    field = target.field
    if target.kind == "count":
        if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
            raise ParameterError(f"--{name}={value}: must be a whole number of at least 1")
        launch.environment[field] = int(value)
    elif target.kind == "list":
        launch.environment.setdefault(field, []).extend(item for item in value.split(",") if item)
    elif target.kind == "labels":
        key, equals, label = value.partition("=")
        if not key or not equals:
            raise ParameterError(f"--{name}={value}: a label is key=value")
        launch.environment.setdefault(field, {})[key] = label
    elif target.kind == "flag":
        launch.environment[field] = dataflow.WorkerIPAddressConfiguration.WORKER_IP_PRIVATE
    else:
        if field in launch.environment:
            raise ParameterError(f"--{name}: given twice (or with its other name); give it once")
        launch.environment[field] = value


def split_launch(argv: Sequence[str]) -> Launch:
    """The launch, after validating everything as the job and Dataflow will."""
    options, rest = _launch_parser().parse_known_args(list(argv))
    if not options.template_path.startswith("gs://"):
        raise ParameterError(f"--template_path={options.template_path}: must be a gs:// path")
    params, beam_args = split_args(rest)  # validates the template parameters and Beam options as the job will
    problems = dataflow_problems(params, beam_args)
    if problems:
        raise ParameterError("bad template parameter(s) for Dataflow:\n  " + "\n  ".join(problems))
    gpu_pipeline_args(params, beam_args)  # the launcher adds these; here only its checks (a GPU's machine type)
    launch = Launch(options)
    if options.launcher_machine_type:
        if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)+", options.launcher_machine_type):
            raise ParameterError(f"--launcher_machine_type={options.launcher_machine_type!r}: not a Compute Engine "
                                 "machine type (e.g. n1-standard-4)")
        launch.environment[_LAUNCHER_MACHINE_TYPE.field] = options.launcher_machine_type
    for name, value in _pairs(rest):
        if name in TemplateParams.model_fields:
            launch.parameters[name] = value
        elif name in ENVIRONMENT_OPTIONS:
            _add_environment(launch, name, value)
        else:
            launch.pipeline_options.append(f"{name}={value}")
    _check_against_metadata(launch.parameters)
    return launch


def launch_parameter(launch: Launch) -> dataflow.LaunchFlexTemplateParameter:
    environment = dict(launch.environment)
    if launch.pipeline_options:
        environment["additional_pipeline_options"] = list(launch.pipeline_options)
    return dataflow.LaunchFlexTemplateParameter(
        job_name=launch.options.job_name,
        container_spec_gcs_path=launch.options.template_path,
        parameters=launch.parameters,
        environment=dataflow.FlexTemplateRuntimeEnvironment(**environment),
    )


def rest_body(launch: Launch) -> dict:
    """The JSON body of POST v1b3/projects/{project}/locations/{region}/flexTemplates:launch."""
    as_json = dataflow.LaunchFlexTemplateParameter.to_json(
        launch_parameter(launch), use_integers_for_enums=False, always_print_fields_with_no_presence=False)
    return {"launchParameter": json.loads(as_json), "validateOnly": launch.options.validate_only}


def rest_url(launch: Launch) -> str:
    return (f"https://dataflow.googleapis.com/v1b3/projects/{launch.options.project}/locations/"
            f"{launch.options.region}/flexTemplates:launch")


def _delimiter(values: Sequence[str]) -> str:
    """A gcloud list delimiter that no value contains (values may hold commas)."""
    for candidate in ("~", "|", "#", "@", "^^"):
        if not any(candidate in value for value in values):
            return candidate
    raise ParameterError("parameter values contain every gcloud delimiter (~ | # @ ^^)")


def _gcloud_list(flag: str, items: Sequence[str]) -> str:
    """`--flag=^D^a D b` with a delimiter D that none of the items holds (gcloud's escaping of lists)."""
    delimiter = _delimiter(items)
    return f"{flag}=^{delimiter}^" + delimiter.join(items)


def gcloud_command(launch: Launch) -> str:
    options = launch.options
    if options.validate_only:
        raise ParameterError("--validate_only needs --format=rest: gcloud flex-template run has no such flag")
    words = ["gcloud", "dataflow", "flex-template", "run", options.job_name, f"--project={options.project}",
             f"--region={options.region}", f"--template-file-gcs-location={options.template_path}"]
    pipeline_options = list(launch.pipeline_options)
    flags = {target.field: target for target in (*ENVIRONMENT_OPTIONS.values(), _LAUNCHER_MACHINE_TYPE)}
    for field, value in launch.environment.items():
        target = flags[field]
        if target.gcloud is None:
            pipeline_options.append(f"{next(n for n, t in ENVIRONMENT_OPTIONS.items() if t is target)}={value}")
        elif target.kind == "flag":
            words.append(target.gcloud)
        elif target.kind == "list":
            words.append(_gcloud_list(target.gcloud, value))
        elif target.kind == "labels":
            words.append(_gcloud_list(target.gcloud, [f"{key}={label}" for key, label in value.items()]))
        else:
            words.append(f"{target.gcloud}={value}")
    if pipeline_options:
        words.append(_gcloud_list("--additional-pipeline-options", pipeline_options))
    if launch.parameters:
        words.append(_gcloud_list("--parameters", [f"{name}={value}" for name, value in launch.parameters.items()]))
    return " ".join(shlex.quote(word) for word in words)


def main(argv: Sequence[str]) -> int:
    try:
        launch = split_launch(argv)
        if launch.options.format == "gcloud":
            print(gcloud_command(launch))
        else:
            print(f"# POST {rest_url(launch)}", file=sys.stderr)
            # Sorted: protobuf map fields (parameters, labels) come out in hash order, different each run.
            print(json.dumps(rest_body(launch), indent=2, sort_keys=True))
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
