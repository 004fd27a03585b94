"""The official OpenADR 3.1.1 document (``../shared/openadr3/openadr3.yaml``)
as JSON Schema validators, for checking every answer of ``/openadr3``.

OpenAPI 3.0 schemas are almost JSON Schema draft 4: ``nullable: true``
becomes "or null", ``discriminator`` and ``example`` are dropped, and the
``$ref``s resolve inside one root document. Formats (date-time, uri) are
checked.

One correction, and only one: the document's ``ven`` and ``resource`` are
``allOf`` objectMetadata (objectType one of PROGRAM ... RESOURCE) and
BlVenRequest / BlResourceRequest (objectType exactly BL_VEN_REQUEST /
BL_RESOURCE_REQUEST), which no object can satisfy at once. The VTN writes
``VEN`` / ``RESOURCE`` as Definition.md's object metadata says (and the User
Guide's example 8.13-7 shows), so for those two the request's objectType
constraint is left out; every other constraint of both parts stays.
"""

from __future__ import annotations

import copy
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from entrypoints.openadr.models import NULL_AS_ABSENT

SPEC = Path(
    os.environ.get(
        "GRIDCORE_OPENADR_SPEC",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "openadr3" / "openadr3.yaml",
    )
)
# The worktrees live beside the main checkout; shared/ is beside both.
if not SPEC.exists():
    SPEC = Path("/work/shared/openadr3/openadr3.yaml")


def available() -> bool:
    return SPEC.exists()


class _TextTimes(yaml.SafeLoader):
    """YAML that keeps an unquoted ``2023-06-15T09:30:00Z`` (an example) a
    string, as in JSON, instead of a datetime."""


_TextTimes.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(SPEC.read_text(encoding="utf-8"), Loader=_TextTimes)
    return loaded


def _json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _json_schema(value)
        for key, value in node.items()
        if key not in {"nullable", "discriminator", "example", "default"}
    }
    if node.get("nullable"):
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _without_request_object_type(schema: dict[str, Any]) -> dict[str, Any]:
    fixed = copy.deepcopy(schema)
    fixed["properties"].pop("objectType")
    fixed["required"] = [r for r in fixed["required"] if r != "objectType"]
    return fixed


def _served(schemas: dict[str, Any]) -> dict[str, Any]:
    """``schemas`` with ven and resource as the VTN serves them (see above)."""
    schemas = copy.deepcopy(schemas)
    for served, request in (("ven", "BlVenRequest"), ("resource", "BlResourceRequest")):
        name = f"{request}AsServed"
        schemas[name] = _without_request_object_type(schemas[request])
        schemas[served]["allOf"] = [
            {"$ref": f"#/components/schemas/{name}"}
            if part.get("$ref", "").endswith("/" + request)
            else part
            for part in schemas[served]["allOf"]
        ]
    return schemas


@cache
def components() -> dict[str, Any]:
    return {"schemas": _json_schema(_served(document()["components"]["schemas"]))}


def _null_as_absent(schema: Any) -> None:
    """Optional properties the VTN takes null for as absent
    (entrypoints.openadr.models.NULL_AS_ABSENT) marked nullable, wherever
    they are defined, so that null there is not "negative data"."""
    if isinstance(schema, list):
        for item in schema:
            _null_as_absent(item)
        return
    if not isinstance(schema, dict):
        return
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        if name in NULL_AS_ABSENT and name not in required and not prop.get("nullable"):
            wrapped = {"allOf": [prop]} if "$ref" in prop else dict(prop)
            schema["properties"][name] = {**wrapped, "nullable": True}
    for value in schema.values():
        if isinstance(value, dict | list):
            _null_as_absent(value)


def served_document(base_path: str) -> dict[str, Any]:
    """The OpenAPI document with the VTN's base path as its server, ven and
    resource as served, and the answers of ``UNDECLARED`` declared: what
    schemathesis runs against. Optional properties given as null are
    declared nullable where the VTN takes null as absent (see
    ``_null_as_absent``)."""
    patched = copy.deepcopy(document())
    patched["servers"] = [{"url": base_path}]
    patched["components"]["schemas"] = _served(patched["components"]["schemas"])
    for schema in patched["components"]["schemas"].values():
        _null_as_absent(schema)
    for template, method, status in UNDECLARED:
        responses = patched["paths"][template][method]["responses"]
        responses[str(status)] = {"$ref": f"#/components/responses/{_RESPONSE_NAMES[status]}"}
    return patched


def validator(schema: dict[str, Any]) -> Any:
    root = {**_json_schema(schema), "components": components()}
    return jsonschema_rs.Draft4Validator(root, validate_formats=True)


def _template_of(path: str) -> str | None:
    for template in document()["paths"]:
        pattern = re.sub(r"\{[^}/]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path):
            return template
    return None


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    """The schema of this answer, or None with the reason in an AssertionError
    when the document does not declare it."""
    template = _template_of(path)
    assert template is not None, f"{path} is not a path of openadr3.yaml"
    operation = document()["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not an operation of openadr3.yaml"
    response = operation["responses"].get(str(status))
    assert response is not None, f"{method} {template} does not declare a {status} answer"
    if "$ref" in response:
        response = document()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content", {}).get("application/json")
    return None if content is None else content["schema"]


_VALIDATORS: dict[tuple[str, str, int], Any] = {}

# Answers the VTN gives that an operation of the document leaves out, each
# for a reason of Definition.md, and checked as ``problem`` objects:
# - 401 wherever no valid token is presented: the document omits it from a
#   few operations (PUT /programs/{programID}, GET /notifiers), not from the rule;
# - 409 for POST /vens: "venName is expected to be unique within the scope
#   of a VTN", and Definition.md's POST answers include 409 (PUT /vens has it).
UNDECLARED = {("/vens", "post", 409)}
_RESPONSE_NAMES = {409: "conflict"}
_PROBLEM = {"$ref": "#/components/schemas/problem"}


def check(path: str, method: str, status: int, body: Any) -> None:
    """Assert that ``body`` is what openadr3.yaml declares for this answer."""
    template = _template_of(path) or path
    key = (template, method.lower(), status)
    if key not in _VALIDATORS:
        if status == 401 or key in UNDECLARED:
            declared = document()["paths"].get(template, {}).get(method.lower(), {})
            declared = declared.get("responses", {}) if isinstance(declared, dict) else {}
            schema = response_schema(path, method, status) if str(status) in declared else _PROBLEM
        else:
            schema = response_schema(path, method, status)
        _VALIDATORS[key] = None if schema is None else validator(schema)
    found = _VALIDATORS[key]
    if found is None:
        return
    errors = [f"{e.instance_path}: {e.message}" for e in found.iter_errors(body)]
    assert not errors, f"{method} {path} {status} breaks openadr3.yaml: {errors[:5]} in {body}"


def check_notification(body: Any) -> None:
    """Assert that ``body`` is an openadr3.yaml ``notification`` whose
    ``object`` is the schema its objectType names (the yaml's discriminator,
    which JSON Schema's oneOf alone does not express)."""
    assert isinstance(body, dict), body
    errors = [e.message for e in _NOTIFICATION().iter_errors(body)]
    assert not errors, errors
    named = {
        "PROGRAM": "program",
        "EVENT": "event",
        "REPORT": "report",
        "SUBSCRIPTION": "subscription",
        "VEN": "ven",
        "RESOURCE": "resource",
    }[body["objectType"]]
    errors = [e.message for e in _object_validator(named).iter_errors(body["object"])]
    assert not errors, errors
    assert body["object"]["objectType"] == body["objectType"]


@cache
def _NOTIFICATION() -> Any:  # noqa: N802
    schema = copy.deepcopy(document()["components"]["schemas"]["notification"])
    schema["properties"]["object"] = {"type": "object"}  # checked by its objectType below
    return validator(schema)


@cache
def _object_validator(name: str) -> Any:
    return validator({"$ref": f"#/components/schemas/{name}"})
