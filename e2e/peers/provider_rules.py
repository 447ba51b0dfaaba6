"""What each LLM provider's API refuses in a request's tools, as that API says it: OpenAI
(Chat Completions and Responses, strict mode included), Anthropic Messages and Gemini
generateContent. The scripted model (scripted_model.py) runs these on every request and
`validate_tools` runs them on exported tools, so both fail exactly where the provider would.

Each validator takes the `tools` of a request and returns the problems in order, as `Refused`
(the status and the provider's message, param and code); the caller answers with the first
(OpenAI, Anthropic) or all (Gemini) in the provider's error shape.
"""

from __future__ import annotations

import json
import re
from typing import Any


class Refused(Exception):
    """A request refused: the HTTP status, and the message, param and code the provider's
    error shape carries."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


# ---------------------------------------------------------------------------------------------
# JSON Schema checks shared by OpenAI and Anthropic (both take JSON Schema as is).

JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_ONES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")


def json_schema_problem(schema: Any, where: str = "") -> str | None:
    """Why `schema` is not a JSON Schema (the metaschema's structural rules), or None."""
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{where or 'the schema'}: {json.dumps(schema)} is not of type 'object', 'boolean'"
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for k in kinds:
        if k not in JSON_TYPES:
            return f"{where}.type: {json.dumps(k)} is not one of {sorted(JSON_TYPES)}"
    required = schema.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        return f"{where}.required: {json.dumps(required)} is not an array of strings"
    if "enum" in schema and not isinstance(schema["enum"], list):
        return f"{where}.enum: {json.dumps(schema['enum'])} is not of type 'array'"
    for key in SCHEMA_MAPS:
        if key in schema:
            if not isinstance(schema[key], dict):
                return f"{where}.{key}: {json.dumps(schema[key])} is not of type 'object'"
            for name, sub in schema[key].items():
                if problem := json_schema_problem(sub, f"{where}.{key}.{name}"):
                    return problem
    for key in SCHEMA_LISTS:
        if key in schema:
            if not isinstance(schema[key], list):
                return f"{where}.{key}: {json.dumps(schema[key])} is not of type 'array'"
            for i, sub in enumerate(schema[key]):
                if problem := json_schema_problem(sub, f"{where}.{key}[{i}]"):
                    return problem
    for key in SCHEMA_ONES:
        if key in schema and (problem := json_schema_problem(schema[key], f"{where}.{key}")):
            return problem
    return None


def resolve_ref(root: Any, ref: str) -> Any:
    """The subschema `ref` (a local JSON pointer, `#...`) points at in `root`, or KeyError."""
    if not ref.startswith("#"):
        raise KeyError(ref)
    node = root
    for token in [t for t in ref[1:].split("/") if t]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(ref)
    return node


def refs(schema: Any) -> list[str]:
    """Every `$ref` in `schema`."""
    if isinstance(schema, dict):
        found = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []
        return found + [r for v in schema.values() for r in refs(v)]
    if isinstance(schema, list):
        return [r for v in schema for r in refs(v)]
    return []


# ---------------------------------------------------------------------------------------------
# OpenAI: validators (Chat Completions and Responses share them).

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
STRICT_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
STRICT_REFUSED = (
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "default",
)
# Keywords OpenAI refuses at the root of any function's parameters, strict or not.
OPENAI_ROOT_REFUSED = ("oneOf", "anyOf", "allOf", "enum", "const", "not")
# Chat Completions takes at most 128 tools (Responses has no documented bound).
CHAT_MAX_TOOLS = 128
STRICT_MAX_DEPTH = 10
STRICT_MAX_PROPERTIES = 5000


def openai_function_errors(function: Any, at: str) -> list[Refused]:
    """`function` ({name, description, parameters, strict}) as OpenAI checks it; `at` is the
    param path of the object holding those fields (`tools[3].function` or `tools[3]`)."""
    name = function.get("name")
    if not isinstance(name, str):
        return [Refused(400, f"Missing required parameter: '{at}.name'.", f"{at}.name", "missing_required_parameter")]
    if len(name) > 64:
        message = (
            f"Invalid '{at}.name': string too long. Expected a string with maximum length 64, "
            f"but got a string with length {len(name)} instead."
        )
        return [Refused(400, message, f"{at}.name", "string_above_max_length")]
    if not OPENAI_NAME.match(name):
        message = (
            f"Invalid '{at}.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
        )
        return [Refused(400, message, f"{at}.name", "invalid_value")]
    if "parameters" not in function:
        return []
    schema = function["parameters"]
    param = f"{at}.parameters"

    def bad(why: str) -> Refused:
        return Refused(400, f"Invalid schema for function '{name}': {why}", param, "invalid_function_parameters")

    if not isinstance(schema, dict) or schema.get("type") != "object":
        got = json.dumps(schema.get("type")) if isinstance(schema, dict) else json.dumps(schema)
        return [bad(f"schema must be a JSON Schema of 'type: \"object\"', got 'type: {got}'.")]
    if any(keyword in schema for keyword in OPENAI_ROOT_REFUSED):
        refused = "/".join(f"'{keyword}'" for keyword in OPENAI_ROOT_REFUSED)
        return [bad(f"schema must have type 'object' and not have {refused} at the top level.")]
    if problem := json_schema_problem(schema):
        return [bad(problem.lstrip("."))]
    if "properties" not in schema:
        return [bad("In context=(), object schema missing properties.")]
    for ref in refs(schema):
        try:
            resolve_ref(schema, ref)
        except KeyError:
            return [bad(f"reference to component '{ref}' which was not found in the schema.")]
    if function.get("strict") is True:
        # Like the API, one problem per function: the first it meets.
        return [bad(why) for why in strict_problems(schema)[:1]]
    return []


def strict_problems(root: dict[str, Any]) -> list[str]:
    """Why `root` breaks OpenAI's strict mode (structured outputs' schema subset)."""
    problems: list[str] = []
    total = 0

    def context(path: tuple[Any, ...]) -> str:
        return f"In context={path!r}," if path else "In context=(),"

    def walk(node: Any, path: tuple[Any, ...], depth: int) -> None:
        nonlocal total
        if not isinstance(node, dict):
            problems.append(f"{context(path)} schema must be an object.")
            return
        if "$ref" in node:
            ref = node["$ref"]
            if ref != "#" and not str(ref).startswith("#/$defs/"):
                problems.append(f"{context(path)} '$ref' must be '#' or point into '#/$defs/', got '{ref}'.")
            return
        for keyword in STRICT_REFUSED:
            if keyword in node:
                problems.append(f"{context(path)} '{keyword}' is not permitted.")
        if not any(keyword in node for keyword in ("type", "anyOf", "enum", "const")):
            problems.append(f"{context(path)} schema must have a 'type' key.")
        if "format" in node and node["format"] not in STRICT_FORMATS:
            problems.append(f"{context(path)} '{node['format']}' is not a valid format.")
        kinds = node["type"] if isinstance(node.get("type"), list) else [node.get("type")]
        if "object" in kinds:
            if depth > STRICT_MAX_DEPTH:
                problems.append(f"{context(path)} objects nest deeper than {STRICT_MAX_DEPTH} levels.")
                return
            properties = node.get("properties")
            if not isinstance(properties, dict):
                problems.append(f"{context(path)} object schema missing properties.")
                properties = {}
            if node.get("additionalProperties") is not False:
                problems.append(
                    f"{context(path)} 'additionalProperties' is required to be supplied and to be false."
                )
            missing = [k for k in properties if k not in (node.get("required") or [])]
            if missing:
                problems.append(
                    f"{context(path)} 'required' is required to be supplied and to be an array including "
                    f"every key in properties. Missing '{missing[0]}'."
                )
            total += len(properties)
            for key, sub in properties.items():
                walk(sub, path + ("properties", key), depth + 1)
        if "items" in node:
            walk(node["items"], path + ("items",), depth)
        for i, sub in enumerate(node.get("anyOf") or []):
            walk(sub, path + ("anyOf", i), depth)
        for key in ("$defs", "definitions"):
            for name, sub in (node.get(key) or {}).items():
                walk(sub, path + (key, name), depth)

    walk(root, (), 1)
    if total > STRICT_MAX_PROPERTIES:
        problems.append(f"In context=(), {total} properties in all: at most {STRICT_MAX_PROPERTIES} are allowed.")
    return problems


def chat_tool_errors(tools: Any, require_strict_flag: bool = False) -> list[Refused]:
    if not isinstance(tools, list):
        return [Refused(400, "Invalid type for 'tools': expected an array.", "tools", "invalid_type")]
    if len(tools) > CHAT_MAX_TOOLS:
        message = (
            f"Invalid 'tools': array too long. Expected an array with maximum length {CHAT_MAX_TOOLS}, "
            f"but got an array with length {len(tools)} instead."
        )
        return [Refused(400, message, "tools", "array_above_max_length")]
    errors: list[Refused] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or "type" not in tool:
            errors.append(Refused(400, f"Missing required parameter: 'tools[{i}].type'.", f"tools[{i}].type"))
        elif tool["type"] == "function":
            function = tool.get("function")
            if not isinstance(function, dict):
                message = f"Missing required parameter: 'tools[{i}].function'."
                errors.append(Refused(400, message, f"tools[{i}].function", "missing_required_parameter"))
                continue
            errors += openai_function_errors(function, f"tools[{i}].function")
            if require_strict_flag and not isinstance(function.get("strict"), bool):
                message = f"tools[{i}].function.strict: openai-strict marks each tool `strict: true` or `false`."
                errors.append(Refused(400, message, f"tools[{i}].function.strict"))
        elif tool["type"] != "custom":
            message = f"Invalid value: '{tool['type']}'. Supported values are: 'function' and 'custom'."
            errors.append(Refused(400, message, f"tools[{i}].type", "invalid_value"))
    return errors


def responses_tool_errors(tools: Any) -> list[Refused]:
    if not isinstance(tools, list):
        return [Refused(400, "Invalid type for 'tools': expected an array.", "tools", "invalid_type")]
    errors: list[Refused] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or "type" not in tool:
            errors.append(Refused(400, f"Missing required parameter: 'tools[{i}].type'.", f"tools[{i}].type"))
        elif tool["type"] == "function":
            errors += openai_function_errors(tool, f"tools[{i}]")
    return errors


# ---------------------------------------------------------------------------------------------
# Anthropic.

ANTHROPIC_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ANTHROPIC_MAX_STRICT = 20


def anthropic_tool_errors(tools: Any) -> list[Refused]:
    if not isinstance(tools, list):
        return [Refused(400, "tools: Input should be a valid list")]
    errors: list[Refused] = []
    names: list[str] = []
    for i, tool in enumerate(tools):
        at = f"tools.{i}.custom"
        if not isinstance(tool, dict):
            errors.append(Refused(400, f"tools.{i}: Input should be a valid dictionary"))
            continue
        if tool.get("type", "custom") != "custom":
            continue  # a server tool (bash, web search...): not a function the model calls here
        name = tool.get("name")
        if not isinstance(name, str):
            errors.append(Refused(400, f"{at}.name: Field required"))
        elif not ANTHROPIC_NAME.match(name):
            errors.append(Refused(400, f"{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"))
        else:
            names.append(name)
        schema = tool.get("input_schema")
        if schema is None:
            errors.append(Refused(400, f"{at}.input_schema: Field required"))
        elif not isinstance(schema, dict):
            errors.append(Refused(400, f"{at}.input_schema: Input should be a valid dictionary"))
        elif schema.get("type") != "object":
            errors.append(Refused(400, f"{at}.input_schema.type: Input should be 'object'"))
        elif any(keyword in schema for keyword in ("oneOf", "allOf", "anyOf")):
            message = f"{at}.input_schema: input_schema does not support oneOf, allOf, or anyOf at the top level"
            errors.append(Refused(400, message))
        elif json_schema_problem(schema) or any(not _resolves(schema, r) for r in refs(schema)):
            errors.append(
                Refused(
                    400,
                    f"{at}.input_schema: JSON schema is invalid. It must match JSON Schema draft 2020-12 "
                    "(https://json-schema.org/draft/2020-12).",
                )
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        errors.append(Refused(400, f"tools: Tool names must be unique. Repeated: {duplicates}"))
    strict = sum(1 for t in tools if isinstance(t, dict) and t.get("strict") is True)
    if strict > ANTHROPIC_MAX_STRICT:
        message = f"tools: at most {ANTHROPIC_MAX_STRICT} tools may set `strict: true` in a request, got {strict}"
        errors.append(Refused(400, message))
    return errors


def _resolves(schema: Any, ref: str) -> bool:
    try:
        resolve_ref(schema, ref)
        return True
    except KeyError:
        return False


# ---------------------------------------------------------------------------------------------
# Gemini: the `Schema` proto (OpenAPI subset) parsed as the API parses JSON into it.

# The shared contract's rule: 128 characters. The API's own message says 64 (seen since late 2025).
GEMINI_NAME_MAX = 128
GEMINI_NAME = re.compile(rf"^[a-zA-Z_][a-zA-Z0-9_.:-]{{0,{GEMINI_NAME_MAX - 1}}}$")
GEMINI_PROPERTY = re.compile(r"^[a-zA-Z0-9_]+$")
GEMINI_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
GEMINI_FORMATS = {"STRING": ("enum", "date-time"), "NUMBER": ("float", "double"), "INTEGER": ("int32", "int64")}
SCHEMA_PB = "type.googleapis.com/google.ai.generativelanguage.v1beta"


def snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


# Schema fields (lowerCamel, as JSON names them) and what each holds.
GEMINI_SCHEMA_FIELDS = {
    "type": "type",
    "format": "string",
    "title": "string",
    "description": "string",
    "nullable": "bool",
    "enum": "strings",
    "maxItems": "int",
    "minItems": "int",
    "properties": "schemas",
    "required": "strings",
    "minProperties": "int",
    "maxProperties": "int",
    "minLength": "int",
    "maxLength": "int",
    "pattern": "string",
    "example": "value",
    "anyOf": "schema_list",
    "propertyOrdering": "strings",
    "default": "value",
    "items": "schema",
    "minimum": "number",
    "maximum": "number",
}
# The proto parser takes a field by its JSON name or its proto (snake_case) name.
GEMINI_FIELD_BY_NAME = {**{k: k for k in GEMINI_SCHEMA_FIELDS}, **{snake(k): k for k in GEMINI_SCHEMA_FIELDS}}
GEMINI_DECLARATION_FIELDS = {
    "name",
    "description",
    "behavior",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
}
GEMINI_DECLARATION_BY_NAME = {
    **{k: k for k in GEMINI_DECLARATION_FIELDS},
    **{snake(k): k for k in GEMINI_DECLARATION_FIELDS},
}


INVALID_JSON = "Invalid JSON payload received. "
PROTO_INVALID = "The GenerateContentRequest proto is invalid:\n"
GEMINI_MAX_DECLARATIONS = 512
GEMINI_NAME_RULE = (
    "Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain "
    f"underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of {GEMINI_NAME_MAX}."
)


def invalid_json(message: str) -> Refused:
    return Refused(400, INVALID_JSON + message)


def gemini_parse_errors(schema: Any, at: str) -> list[Refused]:
    """What the JSON-to-proto parser refuses in a `Schema` at proto path `at`."""
    if not isinstance(schema, dict):
        return [invalid_json(f"Invalid value at '{at}' ({SCHEMA_PB}.Schema), {json.dumps(schema)}")]
    errors: list[Refused] = []
    for key, value in schema.items():
        field_name = GEMINI_FIELD_BY_NAME.get(key)
        if field_name is None:
            errors.append(invalid_json(f"Unknown name \"{key}\" at '{at}': Cannot find field."))
            continue
        here = f"{at}.{snake(field_name)}"
        kind = GEMINI_SCHEMA_FIELDS[field_name]
        if kind == "type":
            if not isinstance(value, str) or value.upper() not in GEMINI_TYPES:
                errors.append(invalid_json(f"Invalid value at '{here}' ({SCHEMA_PB}.Type), {json.dumps(value)}"))
        elif kind == "string" and not isinstance(value, str):
            errors.append(invalid_json(f"Invalid value at '{here}' (TYPE_STRING), {json.dumps(value)}"))
        elif kind == "bool" and not isinstance(value, bool):
            errors.append(invalid_json(f"Invalid value at '{here}' (TYPE_BOOL), {json.dumps(value)}"))
        elif kind == "int" and not (
            isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.isdigit()
        ):
            errors.append(invalid_json(f"Invalid value at '{here}' (TYPE_INT64), {json.dumps(value)}"))
        elif kind == "number" and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            errors.append(invalid_json(f"Invalid value at '{here}' (TYPE_DOUBLE), {json.dumps(value)}"))
        elif kind == "strings":
            if not isinstance(value, list):
                errors.append(invalid_json(f"Invalid value at '{here}' (TYPE_STRING), {json.dumps(value)}"))
            else:
                errors += [
                    invalid_json(f"Invalid value at '{here}[{i}]' (TYPE_STRING), {json.dumps(v)}")
                    for i, v in enumerate(value)
                    if not isinstance(v, str)
                ]
        elif kind == "schema":
            errors += gemini_parse_errors(value, here)
        elif kind == "schema_list":
            if not isinstance(value, list):
                errors.append(invalid_json(f"Invalid value at '{here}' ({SCHEMA_PB}.Schema), {json.dumps(value)}"))
            else:
                for i, sub in enumerate(value):
                    errors += gemini_parse_errors(sub, f"{here}[{i}]")
        elif kind == "schemas":
            if not isinstance(value, dict):
                errors.append(invalid_json(f"Invalid value at '{here}' ({SCHEMA_PB}.Schema), {json.dumps(value)}"))
            else:
                # A proto map: entries are addressed by position, their schema as `.value`.
                for i, sub in enumerate(value.values()):
                    errors += gemini_parse_errors(sub, f"{here}[{i}].value")
    return errors


def gemini_schema_problems(schema: dict[str, Any], at: str) -> list[Refused]:
    """What the API refuses in a parsed `Schema` at `at` (names keyed by property)."""

    def bad(where: str, why: str) -> Refused:
        return Refused(400, f"* GenerateContentRequest.{where}: {why}\n")

    field_of = {GEMINI_FIELD_BY_NAME[k]: v for k, v in schema.items()}
    kind = str(field_of.get("type", "")).upper() or None
    errors: list[Refused] = []
    properties = field_of.get("properties")
    if properties is not None and kind not in (None, "OBJECT"):
        errors.append(bad(f"{at}.properties", "only allowed for OBJECT type"))
    if "required" in field_of and kind not in (None, "OBJECT"):
        errors.append(bad(f"{at}.required", "only allowed for OBJECT type"))
    if "items" in field_of and kind not in (None, "ARRAY"):
        errors.append(bad(f"{at}.items", "only allowed for ARRAY type"))
    if kind == "ARRAY" and "items" not in field_of:
        errors.append(bad(f"{at}.items", "missing field."))
    if "enum" in field_of and kind not in (None, "STRING"):
        errors.append(bad(f"{at}.enum", "only allowed for STRING type"))
    if "format" in field_of and kind in GEMINI_FORMATS and field_of["format"] not in GEMINI_FORMATS[kind]:
        allowed = " and ".join(f"'{f}'" for f in GEMINI_FORMATS[kind])
        errors.append(bad(f"{at}.format", f"only {allowed} are supported for {kind} type"))
    for i, name in enumerate(field_of.get("required", [])):
        if name not in (properties or {}):
            errors.append(bad(f"{at}.required[{i}]", "property is not defined"))
    for name, sub in (properties or {}).items():
        if not GEMINI_PROPERTY.match(name):
            errors.append(bad(f"{at}.properties[{name}]", f"property name must match {GEMINI_PROPERTY.pattern}"))
        errors += gemini_schema_problems(sub, f"{at}.properties[{name}]")
    if "items" in field_of:
        errors += gemini_schema_problems(field_of["items"], f"{at}.items")
    for i, sub in enumerate(field_of.get("anyOf", [])):
        errors += gemini_schema_problems(sub, f"{at}.any_of[{i}]")
    return errors


def gemini_tool_errors(tools: Any) -> list[Refused]:
    """What the API refuses in `tools`, in its three stages: the JSON parser, the proto's field
    rules (names, counts), then the checks of each schema. A stage runs only when the one
    before it found nothing, as the API answers."""
    if not isinstance(tools, list):
        return [invalid_json(f"Invalid value at 'tools' ({SCHEMA_PB}.Tool), {json.dumps(tools)}")]
    parse: list[Refused] = []
    fields_invalid: list[Refused] = []
    names: list[str] = []
    parsed: list[tuple[dict[str, Any], str]] = []
    for t, tool in enumerate(tools):
        if not isinstance(tool, dict):
            parse.append(invalid_json(f"Invalid value at 'tools[{t}]' ({SCHEMA_PB}.Tool), {json.dumps(tool)}"))
            continue
        declarations = tool.get("functionDeclarations", tool.get("function_declarations", []))
        if not isinstance(declarations, list):
            parse.append(invalid_json(f"Invalid value at 'tools[{t}].function_declarations'"))
            continue
        if len(declarations) > GEMINI_MAX_DECLARATIONS:
            why = f"At most {GEMINI_MAX_DECLARATIONS} function declarations can be specified."
            fields_invalid.append(field_invalid(f"tools[{t}].function_declarations", why))
        for d, declaration in enumerate(declarations):
            at = f"tools[{t}].function_declarations[{d}]"
            if not isinstance(declaration, dict):
                parse.append(invalid_json(f"Invalid value at '{at}' ({SCHEMA_PB}.FunctionDeclaration)"))
                continue
            fields = {}
            for key, value in declaration.items():
                if key not in GEMINI_DECLARATION_BY_NAME:
                    parse.append(invalid_json(f"Unknown name \"{key}\" at '{at}': Cannot find field."))
                else:
                    fields[GEMINI_DECLARATION_BY_NAME[key]] = value
            if "parameters" in fields:
                parse += gemini_parse_errors(fields["parameters"], f"{at}.parameters")
            name = fields.get("name")
            if not isinstance(name, str) or not GEMINI_NAME.match(name):
                fields_invalid.append(field_invalid(f"{at}.name", GEMINI_NAME_RULE))
            else:
                names.append(name)
            parsed.append((fields, at))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fields_invalid.append(field_invalid("tools", f"Duplicate function declaration names: {duplicates}"))
    if parse or fields_invalid:
        return parse or fields_invalid
    return [problem for fields, at in parsed for problem in gemini_declaration_problems(fields, at, schema_check)]


def schema_check(where: str, why: str) -> Refused:
    return Refused(400, f"* GenerateContentRequest.{where}: {why}\n")


def field_invalid(where: str, why: str) -> Refused:
    return Refused(400, f"{PROTO_INVALID}  * {where}: [FIELD_INVALID] {why}")


def gemini_declaration_problems(fields: dict[str, Any], at: str, bad: Any) -> list[Refused]:
    """The API's checks on one parsed declaration's `parameters` or `parametersJsonSchema`."""
    if "parameters" in fields and "parametersJsonSchema" in fields:
        return [bad(at, "parameters and parameters_json_schema cannot both be set")]
    if "parameters" in fields:
        parameters = fields["parameters"]
        kind = str(parameters.get("type", "")).upper()
        if kind != "OBJECT":
            return [bad(f"{at}.parameters.type", "function parameters schema must be of type OBJECT")]
        return gemini_schema_problems(parameters, f"{at}.parameters")
    if "parametersJsonSchema" in fields:
        schema = fields["parametersJsonSchema"]
        where = f"{at}.parameters_json_schema"
        if not isinstance(schema, dict):
            return [bad(where, "must be a JSON object")]
        errors = [
            bad(where, f"$ref '{ref}' does not resolve within this schema")
            for ref in refs(schema)
            if not _resolves(schema, ref)
        ]
        if problem := json_schema_problem(schema):
            errors.append(bad(where, f"invalid JSON Schema: {problem.lstrip('.')}"))
        properties = schema.get("properties")
        for name in properties if isinstance(properties, dict) else []:
            if not GEMINI_PROPERTY.match(name):
                errors.append(bad(f"{where}.properties[{name}]", f"property name must match {GEMINI_PROPERTY.pattern}"))
        return errors
    return []


# ---------------------------------------------------------------------------------------------
# Exported tools, checked by the same validators as a request carrying them.


def validate_tools(format: str, tools: Any) -> list[str]:
    """Why a request whose `tools` are `tools` (as exported in `format`) would be refused."""
    validators = {
        "openai": lambda: chat_tool_errors(tools),
        "openai-strict": lambda: chat_tool_errors(tools, require_strict_flag=True),
        "openai-responses": lambda: responses_tool_errors(tools),
        "anthropic": lambda: anthropic_tool_errors(tools),
        "gemini": lambda: gemini_tool_errors(tools),
    }
    if format not in validators:
        return [f"unknown format `{format}`: one of {sorted(validators)}"]
    return [e.message.strip() for e in validators[format]()]
