"""A scripted model server: what an LLM SDK talks to in the end-to-end tests, where no model
API is reachable.

One loopback port speaks four provider APIs (non-streaming JSON):
  Gemini            POST /v1beta/models/{model}:generateContent (and /v1/models/...)
  OpenAI Chat       POST /v1/chat/completions
  OpenAI Responses  POST /v1/responses
  Anthropic         POST /v1/messages

What flows through, per request: the SDK's body is parsed by its API's section into the
common view (the tools it offers, with their schemas, and the tool results it hands back),
validated on the way as that provider does (tool names, schemas, strict rules); then the
next turn of the script is played against that view and the API's section writes the reply
in the provider's shape. A request the provider would refuse is answered with its error
shape and HTTP 400, and the turn is not consumed; a script that does not fit the request
(a tool it did not offer: 400; arguments missing a required property: 500, a test bug).

A turn is {"tool": NAME, "arguments": {...}}, {"tool_like": TEXT, "arguments": {...}} (the
first offered tool whose name contains TEXT) or {"text": "..."}, where `{result}` becomes
the last tool result the model was handed.

Python API: `ScriptedModel(turns)`, `.url(api)`, `.requests`, `.offered_tools()`,
`.tool_results()`, `.refusals`, `.close()`; `validate_tools(format, tools)` runs the same
validators over exported tools. CLI: `scripted_model.py serve` (turns on stdin, prints
{"url"}, serves until stdin closes; GET /_scripted returns {"requests", "refusals"}) and
`scripted_model.py validate FORMAT` (tools on stdin, prints {"errors"}).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ---------------------------------------------------------------------------------------------
# The common view of a request, and the script played against it.


@dataclass
class Tool:
    name: str
    # The JSON Schema of its arguments (Gemini's `parameters` is read as one too).
    schema: Any


@dataclass
class Request:
    model: str
    tools: list[Tool]
    # The tool names the model may call now (tool_choice / toolConfig narrow `tools`).
    callable: list[str]
    results: list[str]


@dataclass
class Play:
    """What the turn makes the model say: a tool call or a text."""

    number: int
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str | None = None


class Refused(Exception):
    """The answer to a request that is not played: `status` and the provider's error."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def result_text(content: Any) -> str:
    """A tool result as text: a string as is, text blocks joined, anything else JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) and isinstance(b.get("text"), str) for b in content):
        return "\n".join(b["text"] for b in content)
    return json.dumps(content)


def play(turn: Any, number: int, request: Request, last_result: str | None) -> Play:
    """The turn against the request, or Refused when the script does not fit it."""
    if not isinstance(turn, dict):
        raise Refused(500, f"test bug: turn {number} is not an object: {turn!r}")
    if "text" in turn:
        text = str(turn["text"])
        if "{result}" in text:
            if last_result is None:
                raise Refused(500, f"test bug: turn {number} quotes {{result}} but no tool result was handed back yet")
            text = text.replace("{result}", last_result)
        return Play(number, text=text)
    offered = request.callable
    if "tool" in turn:
        name = turn["tool"]
        if name not in offered:
            raise Refused(400, f"turn {number} calls `{name}`, which this request does not offer (offered: {offered})")
    elif "tool_like" in turn:
        name = next((n for n in offered if turn["tool_like"] in n), None)
        if name is None:
            raise Refused(400, f"turn {number} calls a tool like `{turn['tool_like']}`: none offered ({offered})")
    else:
        raise Refused(500, f"test bug: turn {number} has none of `tool`, `tool_like`, `text`: {turn}")
    arguments = turn.get("arguments", {})
    schema = next(t.schema for t in request.tools if t.name == name)
    required = schema.get("required", []) if isinstance(schema, dict) else []
    missing = [r for r in required if not isinstance(arguments, dict) or r not in arguments]
    if missing:
        raise Refused(500, f"test bug: turn {number} calls `{name}` without its required arguments {missing}")
    return Play(number, tool=name, arguments=arguments)


# ---------------------------------------------------------------------------------------------
# The server.


class ScriptedModel:
    """Serves `turns` on a free loopback port from a background thread."""

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []
        self._played = 0
        self._last_result: str | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, api: str) -> str:
        """The base URL an SDK of `api` (openai, anthropic, gemini) is given."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1" if api == "openai" else f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.url("openai")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def offered_tools(self) -> list[str]:
        """The tool names offered to the model in the last request, in order."""
        last = self._last_parsed()
        return [t.name for t in last.tools] if last else []

    def tool_results(self) -> list[str]:
        """The tool results handed back in the last request, as text, in order."""
        last = self._last_parsed()
        return last.results if last else []

    def _last_parsed(self) -> Request | None:
        for entry in reversed(self.requests):
            api = APIS.get(entry["api"])
            if api is not None:
                return api.read(entry["body"], entry["path"])
        return None

    def answer(self, path: str, body: Any) -> tuple[int, Any]:
        api = route(path)
        with self._lock:
            self.requests.append({"api": api.name if api else None, "path": path, "body": body})
            if api is None:
                answer = {"error": {"message": f"no such endpoint: POST {path}"}}
                self.refusals.append({"api": None, "status": 404, "error": answer})
                return 404, answer
            try:
                if not isinstance(body, dict):
                    raise Refused(400, "the request body is not a JSON object")
                errors = api.validate(body)
                if errors:
                    raise errors[0] if len(errors) == 1 or not api.joins_errors else joined(errors)
                request = api.read(body, path)
                if request.results:
                    self._last_result = request.results[-1]
                if self._played >= len(self.turns):
                    raise Refused(500, f"test bug: the script has no turn {self._played + 1}")
                turn = play(self.turns[self._played], self._played + 1, request, self._last_result)
                self._played += 1
                return 200, api.reply(body, request, turn)
            except Refused as refused:
                answer = api.error(refused)
                self.refusals.append({"api": api.name, "status": refused.status, "error": answer})
                return refused.status, answer


def joined(errors: list[Refused]) -> Refused:
    return Refused(errors[0].status, "".join(e.message for e in errors))


def _handler(model: ScriptedModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError as error:
                self._send(400, {"error": {"message": f"the request body is not JSON: {error}"}})
                return
            self._send(*model.answer(self.path, body))

        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] == "/_scripted":
                self._send(200, {"requests": model.requests, "refusals": model.refusals})
            else:
                self._send(404, {"error": {"message": f"no such endpoint: GET {self.path}"}})

        def _send(self, status: int, answer: Any) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def route(path: str) -> Api | None:
    bare = path.split("?")[0].rstrip("/")
    if bare == "/v1/chat/completions":
        return APIS["chat"]
    if bare == "/v1/responses":
        return APIS["responses"]
    if bare == "/v1/messages":
        return APIS["anthropic"]
    if GEMINI_PATH.fullmatch(bare):
        return APIS["gemini"]
    return None


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
        return [bad(why) for why in strict_problems(schema)]
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

    if "anyOf" in root or isinstance(root.get("type"), list):
        problems.append("In context=(), the root schema must be a non-nullable object, not 'anyOf' or a type list.")
    walk(root, (), 1)
    if total > STRICT_MAX_PROPERTIES:
        problems.append(f"In context=(), {total} properties in all: at most {STRICT_MAX_PROPERTIES} are allowed.")
    return problems


def chat_tool_errors(tools: Any, require_strict_flag: bool = False) -> list[Refused]:
    if not isinstance(tools, list):
        return [Refused(400, "Invalid type for 'tools': expected an array.", "tools", "invalid_type")]
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


def openai_error(refused: Refused) -> dict[str, Any]:
    kind = "invalid_request_error" if refused.status < 500 else "server_error"
    return {"error": {"message": refused.message, "type": kind, "param": refused.param, "code": refused.code}}


# ---------------------------------------------------------------------------------------------
# The APIs: parse a request into the common view, reply in the provider's shape.


class Api:
    name = ""
    # Gemini lists every problem in one answer; OpenAI and Anthropic name the first.
    joins_errors = False

    def validate(self, body: dict[str, Any]) -> list[Refused]:
        raise NotImplementedError

    def read(self, body: dict[str, Any], path: str) -> Request:
        raise NotImplementedError

    def reply(self, body: dict[str, Any], request: Request, turn: Play) -> dict[str, Any]:
        raise NotImplementedError

    def error(self, refused: Refused) -> dict[str, Any]:
        raise NotImplementedError


def narrowed(names: list[str], only: str | None, none: bool) -> list[str]:
    if none:
        return []
    return [n for n in names if n == only] if only is not None else names


class Chat(Api):
    """OpenAI Chat Completions: tools `{"type":"function","function":{...}}`, results in
    `role: "tool"` messages, a call in `choices[0].message.tool_calls`."""

    name = "chat"

    def validate(self, body: dict[str, Any]) -> list[Refused]:
        return chat_tool_errors(body.get("tools", []))

    def read(self, body: dict[str, Any], path: str) -> Request:
        tools = [
            Tool(t["function"]["name"], t["function"].get("parameters", {}))
            for t in body.get("tools", [])
            if isinstance(t, dict) and t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        only = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        results = [
            result_text(m.get("content"))
            for m in body.get("messages", [])
            if isinstance(m, dict) and m.get("role") == "tool"
        ]
        callable_ = narrowed([t.name for t in tools], only, choice == "none")
        return Request(body.get("model", "scripted"), tools, callable_, results)

    def reply(self, body: dict[str, Any], request: Request, turn: Play) -> dict[str, Any]:
        if turn.tool is not None:
            call = {
                "id": f"call_{turn.number}",
                "type": "function",
                "function": {"name": turn.tool, "arguments": json.dumps(turn.arguments)},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": turn.text}, "stop"
        return {
            "id": f"chatcmpl-{turn.number}",
            "object": "chat.completion",
            "created": 0,
            "model": request.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def error(self, refused: Refused) -> dict[str, Any]:
        return openai_error(refused)


class Responses(Api):
    """OpenAI Responses: tools `{"type":"function", name, parameters, strict}`, results as
    `function_call_output` input items, a call as a `function_call` output item."""

    name = "responses"

    def validate(self, body: dict[str, Any]) -> list[Refused]:
        return responses_tool_errors(body.get("tools", []))

    def read(self, body: dict[str, Any], path: str) -> Request:
        tools = [
            Tool(t["name"], t.get("parameters", {}))
            for t in body.get("tools", [])
            if isinstance(t, dict) and t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        only = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "function" else None
        items = body.get("input") if isinstance(body.get("input"), list) else []
        results = [
            result_text(i.get("output"))
            for i in items
            if isinstance(i, dict) and i.get("type") == "function_call_output"
        ]
        callable_ = narrowed([t.name for t in tools], only, choice == "none")
        return Request(body.get("model", "scripted"), tools, callable_, results)

    def reply(self, body: dict[str, Any], request: Request, turn: Play) -> dict[str, Any]:
        if turn.tool is not None:
            item: dict[str, Any] = {
                "type": "function_call",
                "id": f"fc_{turn.number}",
                "call_id": f"call_{turn.number}",
                "name": turn.tool,
                "arguments": json.dumps(turn.arguments),
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "id": f"msg_{turn.number}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}],
            }
        return {
            "id": f"resp_{turn.number}",
            "object": "response",
            "created_at": 0,
            "status": "completed",
            "model": request.model,
            "output": [item],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": body.get("metadata") or {},
            "previous_response_id": body.get("previous_response_id"),
            "temperature": body.get("temperature", 1.0),
            "top_p": body.get("top_p", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "truncation": body.get("truncation", "disabled"),
            "usage": {
                "input_tokens": 1,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 1,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 2,
            },
        }

    def error(self, refused: Refused) -> dict[str, Any]:
        return openai_error(refused)


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
        errors.append(
            Refused(400, f"tools: at most {ANTHROPIC_MAX_STRICT} tools may set `strict: true` per request, got {strict}")
        )
    return errors


def _resolves(schema: Any, ref: str) -> bool:
    try:
        resolve_ref(schema, ref)
        return True
    except KeyError:
        return False


class Anthropic(Api):
    """Anthropic Messages: tools `{name, description, input_schema}`, results as user
    `tool_result` blocks, a call as a `tool_use` content block."""

    name = "anthropic"

    def validate(self, body: dict[str, Any]) -> list[Refused]:
        return anthropic_tool_errors(body.get("tools", []))

    def read(self, body: dict[str, Any], path: str) -> Request:
        tools = [
            Tool(t["name"], t.get("input_schema", {}))
            for t in body.get("tools", [])
            if isinstance(t, dict) and t.get("type", "custom") == "custom"
        ]
        choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
        only = choice.get("name") if choice.get("type") == "tool" else None
        results = [
            result_text(block.get("content"))
            for m in body.get("messages", [])
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), list)
            for block in m["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]
        callable_ = narrowed([t.name for t in tools], only, choice.get("type") == "none")
        return Request(body.get("model", "scripted"), tools, callable_, results)

    def reply(self, body: dict[str, Any], request: Request, turn: Play) -> dict[str, Any]:
        if turn.tool is not None:
            block = {"type": "tool_use", "id": f"toolu_{turn.number}", "name": turn.tool, "input": turn.arguments}
            stop = "tool_use"
        else:
            block, stop = {"type": "text", "text": turn.text}, "end_turn"
        return {
            "id": f"msg_{turn.number}",
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }

    def error(self, refused: Refused) -> dict[str, Any]:
        kind = "invalid_request_error" if refused.status < 500 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": refused.message}}


# ---------------------------------------------------------------------------------------------
# Gemini: the `Schema` proto (OpenAPI subset) parsed as the API parses JSON into it.

GEMINI_PATH = re.compile(r"/(v1beta|v1)/models/[^/:]+:generateContent")
GEMINI_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}$")
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


def invalid_json(message: str) -> Refused:
    return Refused(400, f"Invalid JSON payload received. {message}\n")


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
    if not isinstance(tools, list):
        return [invalid_json(f"Invalid value at 'tools' ({SCHEMA_PB}.Tool), {json.dumps(tools)}")]
    parse: list[Refused] = []
    semantic: list[Refused] = []
    names: list[str] = []

    def bad(where: str, why: str) -> Refused:
        return Refused(400, f"* GenerateContentRequest.{where}: {why}\n")

    for t, tool in enumerate(tools):
        if not isinstance(tool, dict):
            parse.append(invalid_json(f"Invalid value at 'tools[{t}]' ({SCHEMA_PB}.Tool), {json.dumps(tool)}"))
            continue
        declarations = tool.get("functionDeclarations", tool.get("function_declarations", []))
        if not isinstance(declarations, list):
            parse.append(invalid_json(f"Invalid value at 'tools[{t}].function_declarations'"))
            continue
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
                semantic.append(
                    bad(
                        f"{at}.name",
                        "Invalid function name. Must start with a letter or an underscore. Must be alphameric "
                        "(a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum "
                        "length of 128.",
                    )
                )
            else:
                names.append(name)
            semantic += gemini_declaration_problems(fields, at, bad)
    if parse:
        return parse
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        semantic.append(bad("tools", f"duplicate function declaration names: {duplicates}"))
    return semantic


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


def gemini_declarations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {GEMINI_DECLARATION_BY_NAME.get(k, k): v for k, v in d.items()}
        for tool in body.get("tools", [])
        if isinstance(tool, dict)
        for d in tool.get("functionDeclarations", tool.get("function_declarations", []))
        if isinstance(d, dict)
    ]


def gemini_as_json_schema(schema: Any) -> Any:
    """Gemini's `parameters` read as JSON Schema, for the script's `required` check."""
    if not isinstance(schema, dict):
        return {}
    return {GEMINI_FIELD_BY_NAME.get(k, k): v for k, v in schema.items()}


class Gemini(Api):
    """Gemini generateContent: `tools[].functionDeclarations`, results as `functionResponse`
    parts, a call as a `functionCall` part (with an `id`, as Gemini 3 sends)."""

    name = "gemini"
    joins_errors = True

    def validate(self, body: dict[str, Any]) -> list[Refused]:
        return gemini_tool_errors(body.get("tools", []))

    def read(self, body: dict[str, Any], path: str) -> Request:
        tools = [
            Tool(d["name"], gemini_as_json_schema(d.get("parameters", d.get("parametersJsonSchema", {}))))
            for d in gemini_declarations(body)
            if isinstance(d.get("name"), str)
        ]
        config = body.get("toolConfig", body.get("tool_config")) or {}
        calling = config.get("functionCallingConfig", config.get("function_calling_config")) or {}
        mode = str(calling.get("mode", "AUTO")).upper()
        allowed = calling.get("allowedFunctionNames", calling.get("allowed_function_names"))
        callable_ = [] if mode == "NONE" else [t.name for t in tools if allowed is None or t.name in allowed]
        results = [
            json.dumps(part["functionResponse"].get("response"))
            for content in body.get("contents", [])
            if isinstance(content, dict)
            for part in content.get("parts", [])
            if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict)
        ]
        model = path.split("/models/", 1)[-1].split(":", 1)[0]
        return Request(model, tools, callable_, results)

    def reply(self, body: dict[str, Any], request: Request, turn: Play) -> dict[str, Any]:
        if turn.tool is not None:
            part: dict[str, Any] = {
                "functionCall": {"id": f"call_{turn.number}", "name": turn.tool, "args": turn.arguments}
            }
        else:
            part = {"text": turn.text}
        return {
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
            "modelVersion": request.model,
            "responseId": f"scripted-{turn.number}",
        }

    def error(self, refused: Refused) -> dict[str, Any]:
        status = "INVALID_ARGUMENT" if refused.status < 500 else "INTERNAL"
        return {"error": {"code": refused.status, "message": refused.message, "status": status}}


APIS: dict[str, Api] = {api.name: api for api in (Chat(), Responses(), Anthropic(), Gemini())}


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


# ---------------------------------------------------------------------------------------------
# CLI.


def read_one_json_value() -> Any:
    """The first JSON value on stdin, without waiting for stdin to close."""
    decoder = json.JSONDecoder()
    text = ""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            return json.loads(text)  # raises with the reason when it is incomplete
        text += chunk.decode()
        try:
            value, _ = decoder.raw_decode(text.lstrip())
            return value
        except ValueError:
            continue


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "serve":
        model = ScriptedModel(read_one_json_value()["turns"])
        print(json.dumps({"url": model.url("gemini")}), flush=True)
        while os.read(0, 65536):
            pass
        model.close()
        return 0
    if len(argv) == 2 and argv[0] == "validate":
        try:
            errors = validate_tools(argv[1], json.loads(sys.stdin.read()))
        except ValueError as error:
            errors = [f"the tools are not JSON: {error}"]
        print(json.dumps({"errors": errors}), flush=True)
        return 0
    print("usage: scripted_model.py serve | validate FORMAT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
