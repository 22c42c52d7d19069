"""metadata.json for the Flex Template, derived from TemplateParams (camelCase, Dataflow API fields)."""

from __future__ import annotations

import enum
import json
from typing import Any

from bertqa.params import TemplateParams

NAME = "BERT SQuAD v2 question answering"
DESCRIPTION = (
    "Answers questions about passages with an extractive QA model fine-tuned on SQuAD v2 (BERT, RoBERTa, DeBERTa, "
    "ALBERT, XLM-R; including 'no answer'), on CPU or GPU workers. Writes predictions.json, per-question rows, "
    "dead letters and summary.json."
)


def _param_type(field) -> str:
    annotation = field.annotation
    explicit = field.json_schema_extra.get("param_type")
    if explicit:
        return explicit
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "ENUM"
    if annotation is bool:
        return "BOOLEAN"
    if annotation in (int, float):
        return "NUMBER"
    return "TEXT"


def _text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Dataflow checks launch parameters against these before the job starts: they accept what the job accepts
# (each value they pass, TemplateParams takes; tests check both ways on samples).
FLOAT = r"^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
BOOLEAN = r"^(true|false|True|False|TRUE|FALSE|1|0|yes|no|on|off)$"


def _value_regexes(field, param_type: str) -> list[str]:
    if param_type == "ENUM":
        return ["^(" + "|".join(member.value for member in field.annotation) + ")$"]
    if param_type == "BOOLEAN":
        return [BOOLEAN]
    if param_type != "NUMBER":
        return []
    if field.annotation is float:
        return [FLOAT]
    non_negative = any(getattr(c, "ge", None) is not None and c.ge >= 0 for c in field.metadata)
    return [r"^[0-9]+$" if non_negative else r"^-?[0-9]+$"]


def parameter(name: str, field) -> dict:
    extra = field.json_schema_extra
    entry: dict[str, Any] = {
        "name": name,
        "label": field.title,
        "helpText": field.description,
        "isOptional": not field.is_required(),
        "paramType": _param_type(field),
        "groupName": extra["group"],
    }
    if entry["paramType"] == "ENUM":
        entry["enumOptions"] = [{"value": member.value, "label": member.value} for member in field.annotation]
    regexes = list(extra["regexes"]) + [c.pattern for c in field.metadata if getattr(c, "pattern", None)]
    regexes += _value_regexes(field, entry["paramType"])
    if regexes:
        entry["regexes"] = regexes
    if not field.is_required():
        entry["defaultValue"] = _text(field.default)
    if extra["parent"]:
        entry["parentName"], values = extra["parent"]
        entry["parentTriggerValues"] = list(values)
    return entry


def template_metadata() -> dict:
    return {
        "name": NAME,
        "description": DESCRIPTION,
        "streaming": False,
        "parameters": [parameter(name, field) for name, field in TemplateParams.model_fields.items()],
    }


def metadata_json() -> str:
    return json.dumps(template_metadata(), indent=2, ensure_ascii=False) + "\n"


def template_spec(image_uri: str, image_name: str) -> dict:
    """The Flex Template spec file of one image (what `gcloud dataflow flex-template build` writes, a v1b3
    ContainerSpec), with that same image as the jobs' worker image in its default environment: the job, not a
    name baked into the image at build time, tells the workers which image to run."""
    from bertqa.images import IMAGES

    image = IMAGES[image_name]  # KeyError: not one of the Dockerfile's images
    metadata = template_metadata()
    metadata["name"] = f"{NAME} ({image.name} image: {', '.join(image.backends)})"
    return {"image": image_uri, "sdkInfo": {"language": "PYTHON"}, "metadata": metadata,
            "defaultEnvironment": {"sdkContainerImage": image_uri}}


def parameter_reference() -> str:
    """The README's parameter table (between its `parameters` markers), from the same fields."""
    lines = ["| parameter | group | type | default | what it does |", "|---|---|---|---|---|"]
    for entry in template_metadata()["parameters"]:
        kind = entry["paramType"].lower()
        if "enumOptions" in entry:
            kind = " / ".join(option["value"] for option in entry["enumOptions"])
        default = f"`{entry['defaultValue']}`" if entry.get("defaultValue") else ("required" if not entry["isOptional"] else "")
        help_text = entry["helpText"].replace("|", "\\|")
        lines.append(f"| `{entry['name']}` | {entry['groupName']} | {kind} | {default} | {help_text} |")
    return "\n".join(lines) + "\n"
