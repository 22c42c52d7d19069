"""`bertqa launch`: validated template parameters -> an exact gcloud command or a flexTemplates.launch body.

The template parameters are checked with the same model the job uses, so a bad value fails here,
before anything reaches Dataflow. Options of the job's runtime environment (workers, machine type,
locations, experiments) go where Dataflow expects them; everything else is a template parameter.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Sequence

from google.cloud import dataflow_v1beta3 as dataflow

from bertqa.arguments import split_args
from bertqa.params import ParameterError

# Beam option -> (FlexTemplateRuntimeEnvironment field, gcloud flag)
ENVIRONMENT_OPTIONS = {
    "num_workers": ("num_workers", "--num-workers"),
    "max_num_workers": ("max_workers", "--max-workers"),
    "machine_type": ("machine_type", "--worker-machine-type"),
    "worker_machine_type": ("machine_type", "--worker-machine-type"),
    "temp_location": ("temp_location", "--temp-location"),
    "staging_location": ("staging_location", "--staging-location"),
    "service_account_email": ("service_account_email", "--service-account-email"),
    "experiments": ("additional_experiments", "--additional-experiments"),
}
_INTEGER_FIELDS = {"num_workers", "max_workers"}


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
    return parser


def _pairs(args: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ParameterError(f"expected --name=value, got {arg!r}")
        name, value = arg[2:].split("=", 1)
        pairs.append((name, value))
    return pairs


def split_launch(argv: Sequence[str]):
    """(launch options, template parameters as given, environment options) after validating them all."""
    launch, rest = _launch_parser().parse_known_args(list(argv))
    if not launch.template_path.startswith("gs://"):
        raise ParameterError(f"--template_path={launch.template_path}: must be a gs:// path")
    split_args(rest)  # validates the template parameters exactly as the job will
    parameters, environment = {}, {}
    for name, value in _pairs(rest):
        if name in ENVIRONMENT_OPTIONS:
            environment[name] = value
        else:
            parameters[name] = value
    return launch, parameters, environment


def launch_parameter(launch, parameters: dict[str, str], environment: dict[str, str]):
    runtime = {}
    for option, value in environment.items():
        field = ENVIRONMENT_OPTIONS[option][0]
        if field in _INTEGER_FIELDS:
            runtime[field] = int(value)
        elif field == "additional_experiments":
            runtime[field] = value.split(",")
        else:
            runtime[field] = value
    return dataflow.LaunchFlexTemplateParameter(
        job_name=launch.job_name,
        container_spec_gcs_path=launch.template_path,
        parameters=parameters,
        environment=dataflow.FlexTemplateRuntimeEnvironment(**runtime),
    )


def rest_body(launch, parameters, environment) -> dict:
    """The JSON body of POST v1b3/projects/{project}/locations/{region}/flexTemplates:launch."""
    parameter = launch_parameter(launch, parameters, environment)
    as_json = dataflow.LaunchFlexTemplateParameter.to_json(
        parameter, use_integers_for_enums=False, always_print_fields_with_no_presence=False)
    return {"launchParameter": json.loads(as_json), "validateOnly": launch.validate_only}


def rest_url(launch) -> str:
    return (f"https://dataflow.googleapis.com/v1b3/projects/{launch.project}/locations/{launch.region}"
            "/flexTemplates:launch")


def _delimiter(values: Sequence[str]) -> str:
    """A gcloud list delimiter that no value contains (values may hold commas)."""
    for candidate in ("~", "|", "#", "@", "^^"):
        if not any(candidate in value for value in values):
            return candidate
    raise ParameterError("parameter values contain every gcloud delimiter (~ | # @ ^^)")


def gcloud_command(launch, parameters: dict[str, str], environment: dict[str, str]) -> str:
    if launch.validate_only:
        raise ParameterError("--validate_only needs --format=rest: gcloud flex-template run has no such flag")
    words = ["gcloud", "dataflow", "flex-template", "run", launch.job_name,
             f"--project={launch.project}", f"--region={launch.region}",
             f"--template-file-gcs-location={launch.template_path}"]
    for option, value in environment.items():
        words.append(f"{ENVIRONMENT_OPTIONS[option][1]}={value}")
    if parameters:
        items = [f"{name}={value}" for name, value in parameters.items()]
        delimiter = _delimiter(items)
        words.append(f"--parameters=^{delimiter}^" + delimiter.join(items))
    return " ".join(shlex.quote(word) for word in words)


def main(argv: Sequence[str]) -> int:
    try:
        launch, parameters, environment = split_launch(argv)
        if launch.format == "gcloud":
            print(gcloud_command(launch, parameters, environment))
        else:
            print(f"# POST {rest_url(launch)}", file=sys.stderr)
            print(json.dumps(rest_body(launch, parameters, environment), indent=2))
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
