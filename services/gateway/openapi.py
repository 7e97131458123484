"""The partner API's OpenAPI document, with its schemas derived from the protobuf descriptors,
so the HTTP contract is the proto3 JSON mapping of the gRPC one and cannot drift from it."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from services.common.bounds import MAX_AYAH, SURAH_COUNT
from services.common.parsing import WORDS_FORM, WORDS_RANGES
from services.common.pb import gateway_pb2

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    # proto3 JSON writes 64-bit integers as strings.
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(field: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message = field.message_type
        if message.GetOptions().map_entry:
            value_field = message.fields_by_name["value"]
            return {"type": "object", "additionalProperties": _field_schema(value_field, schemas)}
        _collect(message, schemas)
        schema: dict[str, Any] = _ref(message.name)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        _collect_enum(field.enum_type, schemas)
        schema = _ref(field.enum_type.name)
    else:
        schema = dict(_SCALARS[field.type])
    if field.is_repeated and not (
        field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
    ):
        return {"type": "array", "items": schema}
    return schema


def _collect_enum(enum: Any, schemas: dict[str, Any]) -> None:
    if enum.name not in schemas:
        schemas[enum.name] = {"type": "string", "enum": [value.name for value in enum.values]}


def _collect(message: Any, schemas: dict[str, Any]) -> None:
    if message.name in schemas:
        return
    schema: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
    schemas[message.name] = schema
    oneofs = [o for o in message.oneofs if not o.name.startswith("_")]
    for field in message.fields:
        schema["properties"][field.json_name] = _field_schema(field, schemas)
    if oneofs:
        schema["description"] = "; ".join(f"at most one of {', '.join(f.json_name for f in o.fields)}" for o in oneofs)


def _json_response(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def build() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for message in (
        gateway_pb2.AssessRequest.DESCRIPTOR,
        gateway_pb2.AssessResponse.DESCRIPTOR,
        gateway_pb2.GetReferenceResponse.DESCRIPTOR,
        gateway_pb2.GetServerInfoResponse.DESCRIPTOR,
    ):
        _collect(message, schemas)
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "the gRPC status name, e.g. INVALID_ARGUMENT"},
                    "message": {"type": "string"},
                    "requestId": {"type": "string"},
                },
                "required": ["code", "message"],
            }
        },
    }
    errors = {
        str(status): _json_response("Error", text)
        for status, text in (
            (400, "invalid request: the message names the field (and, for a number, its valid range)"),
            (401, "missing or wrong API key (checked before the body is read)"),
            (404, "no such route"),
            (405, "the route does not take this method"),
            (413, "request body too large"),
            (415, "a body in a content type the route does not read (it takes the ones listed)"),
            (422, "the request cannot be served as is"),
            (429, "rate limit or concurrency limit: retry after Retry-After seconds"),
            (503, "the gateway or a required stage is unavailable: retry after Retry-After seconds"),
        )
    }
    retry_after = {
        "Retry-After": {
            "description": "whole seconds after which the same request may pass (the limiter's own figure)",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    for status in ("429", "503"):
        errors[status]["headers"] = retry_after
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Muaalem assessment API",
            "version": version("muaalem-mesh"),
            "description": (
                "Quran recitation assessment. Bodies follow the proto3 JSON mapping of "
                "muaalem.v1.GatewayService (lowerCamelCase names, enums as names, bytes as base64)."
            ),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": security,
        "paths": {
            "/v1/assess": {
                "post": {
                    "summary": "Assess a recitation",
                    "description": (
                        "Name the passage (target, or the form's surah and ayah), or let the gateway find it: "
                        'target {"locate": {}} in JSON, locate=true in the form. Assessment.located then says '
                        "which span was found and assessed, with its score and margin; located.sure is false "
                        "(and the candidates are listed) when the search could not rule the others out. "
                        "A request with no target at all is refused."
                    ),
                    "operationId": "assess",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ref("AssessRequest")},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "description": "Each field at most once; a field not listed is refused (400).",
                                    "properties": {
                                        "audio": {"type": "string", "format": "binary"},
                                        "request": {
                                            "type": "string",
                                            "description": "AssessRequest as JSON, without audio (and without "
                                            "target when surah and ayah are given)",
                                        },
                                        "surah": {"type": "integer", "minimum": 1, "maximum": SURAH_COUNT},
                                        "ayah": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": MAX_AYAH,
                                            "description": "1..the surah's ayah count",
                                        },
                                        "words": {"type": "string", "description": f"{WORDS_FORM}; {WORDS_RANGES}"},
                                        "last_ayah": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": MAX_AYAH,
                                            "description": "assess ayah..last_ayah (instead of words)",
                                        },
                                        "locate": {
                                            "type": "boolean",
                                            "description": "true, without surah and ayah: find the passage in "
                                            "the recitation (as target.locate)",
                                        },
                                    },
                                    "additionalProperties": False,
                                    "required": ["audio"],
                                }
                            },
                        },
                    },
                    "responses": {"200": _json_response("AssessResponse", "the assessment"), **errors},
                }
            },
            "/v1/reference/{surah}/{ayah}": {
                "get": {
                    "summary": "The reference of one ayah (query parameters: MoshafAttributes fields)",
                    "operationId": "getReference",
                    "parameters": [
                        {
                            "name": "surah",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": SURAH_COUNT},
                        },
                        {
                            "name": "ayah",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_AYAH},
                        },
                    ],
                    "responses": {"200": _json_response("GetReferenceResponse", "the reference"), **errors},
                }
            },
            "/v1/info": {
                "get": {
                    "summary": "Versions and stage health",
                    "operationId": "getServerInfo",
                    "responses": {"200": _json_response("GetServerInfoResponse", "server information"), **errors},
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "up"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: every stage SERVING",
                    "security": [],
                    "responses": {"200": {"description": "ready"}, "503": {"description": "a stage is not serving"}},
                }
            },
        },
    }
