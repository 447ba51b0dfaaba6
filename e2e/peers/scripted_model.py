"""A scripted model server: what an LLM SDK talks to in the end-to-end tests, where no model
API is reachable.

One loopback port speaks four provider APIs (non-streaming JSON):
  Gemini            POST /v1beta/models/{model}:generateContent (and /v1/models/...)
  OpenAI Chat       POST /v1/chat/completions
  OpenAI Responses  POST /v1/responses
  Anthropic         POST /v1/messages

What flows through, per request: the SDK's body, with any conversation the provider holds
for it put back in front (Anthropic threads, Responses' `previous_response_id`), is checked
by its provider's validators (provider_rules.py: tool names and counts, schemas, strict
rules) and read by its API's section into the common view (the tools offered, with their
schemas, and the tool results handed back); the next turn of the script is played against
that view and the API's section writes the reply in the provider's shape. A request the
provider would refuse is answered with its error shape and status (400 mostly), and the turn
is not consumed; so is a script that does not fit the request (a tool it did not offer: 400;
arguments missing a required property: 500, a bug in the test).

A turn is {"tool": NAME, "arguments": {...}}, {"tool_like": TEXT, "arguments": {...}} (the
first offered tool whose name contains TEXT) or {"text": "..."}, where `{result}` becomes
the last tool result the model was handed.

Python API: `ScriptedModel(turns)`, `.url(api)`, `.requests`, `.offered_tools(index=-1)`,
`.tool_results(index=-1)`, `.refusals`, `.close()`; `validate_tools(format, tools)` runs the same
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

from provider_rules import (
    GEMINI_DECLARATION_BY_NAME,
    GEMINI_FIELD_BY_NAME,
    INVALID_JSON,
    PROTO_INVALID,
    Refused,
    anthropic_tool_errors,
    chat_tool_errors,
    gemini_tool_errors,
    responses_tool_errors,
    validate_tools,
)

__all__ = ["ScriptedModel", "validate_tools"]

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
    # Offered but ruled out by the request's tool choice: say so, the names alone would puzzle.
    narrowed = f" (its tool choice allows {offered})" if len(offered) < len(request.tools) else ""
    if "tool" in turn:
        name = turn["tool"]
        if name not in offered:
            offers = [t.name for t in request.tools]
            message = f"turn {number} calls `{name}`, which this request does not offer (offered: {offers}){narrowed}"
            raise Refused(400, message)
    elif "tool_like" in turn:
        name = next((n for n in offered if turn["tool_like"] in n), None)
        if name is None:
            offers = [t.name for t in request.tools]
            message = f"turn {number} calls a tool like `{turn['tool_like']}`: none offered ({offers}){narrowed}"
            raise Refused(400, message)
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
        # What each request came to once read (None: refused before), beside `requests`.
        self._views: list[Request | None] = []
        # Conversations held server-side, as the provider holds them: Anthropic threads and
        # Responses' `previous_response_id`, keyed by (api, id of the reply to continue from).
        self._held: dict[tuple[str, str], Any] = {}
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

    def offered_tools(self, index: int = -1) -> list[str]:
        """The tool names offered to the model in request `index` (the last by default), in
        order; a continued conversation offers the tools it holds."""
        view = self._view(index)
        return [t.name for t in view.tools] if view else []

    def tool_results(self, index: int = -1) -> list[str]:
        """The tool results handed back in request `index` (the last by default), as text, in
        order; a continued conversation includes those it holds."""
        view = self._view(index)
        return view.results if view else []

    def _view(self, index: int) -> Request | None:
        try:
            return self._views[index]
        except IndexError:  # no such request (yet)
            return None

    def answer(self, path: str, body: Any) -> tuple[int, Any]:
        api = route(path)
        with self._lock:
            self.requests.append({"api": api.name if api else None, "path": path, "body": body})
            self._views.append(None)
            if api is None:
                answer = {"error": {"message": f"no such endpoint: POST {path}"}}
                self.refusals.append({"api": None, "status": 404, "error": answer})
                return 404, answer
            try:
                if not isinstance(body, dict):
                    raise Refused(400, "the request body is not a JSON object")
                body = api.history(body, self._held)
                self._views[-1] = readable(api, body, path)
                errors = api.validate(body)
                if errors:
                    raise api.answering(errors)
                request = api.read(body, path)
                if request.results:
                    self._last_result = request.results[-1]
                if self._played >= len(self.turns):
                    raise Refused(500, f"test bug: the script has no turn {self._played + 1}")
                turn = play(self.turns[self._played], self._played + 1, request, self._last_result)
                self._played += 1
                reply = api.reply(body, request, turn)
                api.hold(body, reply, self._held)
                return 200, reply
            except Refused as refused:
                answer = api.error(refused)
                self.refusals.append({"api": api.name, "status": refused.status, "error": answer})
                return refused.status, answer


def readable(api: Api, body: dict[str, Any], path: str) -> Request | None:
    """The request as read, as far as a malformed one can be (its refusal says why)."""
    try:
        return api.read(body, path)
    except (KeyError, TypeError, AttributeError):
        return None


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


GEMINI_PATH = re.compile(r"/(v1beta|v1)/models/[^/:]+:generateContent")


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
# The APIs: parse a request into the common view, reply in the provider's shape.


class Api:
    name = ""

    def answering(self, errors: list[Refused]) -> Refused:
        """The one answer to a request with these problems: OpenAI and Anthropic name the first."""
        return errors[0]

    def history(self, body: dict[str, Any], held: dict[tuple[str, str], Any]) -> dict[str, Any]:
        """The request as the provider reads it: a conversation it continues, held server-side,
        put back in front. Most requests carry their whole history."""
        return body

    def hold(self, body: dict[str, Any], reply: dict[str, Any], held: dict[tuple[str, str], Any]) -> None:
        """Keep what a later request may continue from."""

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


def openai_error(refused: Refused) -> dict[str, Any]:
    kind = "invalid_request_error" if refused.status < 500 else "server_error"
    return {"error": {"message": refused.message, "type": kind, "param": refused.param, "code": refused.code}}


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


def input_items(body: dict[str, Any]) -> list[Any]:
    """A Responses request's `input` as items (a string is one user message)."""
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return list(given) if isinstance(given, list) else []


class Responses(Api):
    """OpenAI Responses: tools `{"type":"function", name, parameters, strict}`, results as
    `function_call_output` input items, a call as a `function_call` output item."""

    name = "responses"

    def history(self, body: dict[str, Any], held: dict[tuple[str, str], Any]) -> dict[str, Any]:
        previous = body.get("previous_response_id")
        if previous is None:
            return body
        if ("responses", previous) not in held:
            message = f"Previous response with id '{previous}' not found."
            raise Refused(400, message, "previous_response_id", "previous_response_not_found")
        return {**body, "input": held[("responses", previous)] + input_items(body)}

    def hold(self, body: dict[str, Any], reply: dict[str, Any], held: dict[tuple[str, str], Any]) -> None:
        held[("responses", reply["id"])] = input_items(body) + reply["output"]

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
        items = input_items(body)
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


class Anthropic(Api):
    """Anthropic Messages: tools `{name, description, input_schema}`, results as user
    `tool_result` blocks, a call as a `tool_use` content block."""

    name = "anthropic"
    # What a thread keeps from the request that created it; a `continue` may not send them.
    thread_fields = ("system", "tools")

    def history(self, body: dict[str, Any], held: dict[tuple[str, str], Any]) -> dict[str, Any]:
        thread = body.get("thread")
        if not (isinstance(thread, dict) and thread.get("type") == "continue"):
            return body
        previous = held.get(("anthropic", str(thread.get("previous_message_id"))))
        if previous is None:
            message = f"thread: no message `{thread.get('previous_message_id')}` to continue"
            raise Refused(404, message, code="thread_not_found")
        return {**body, **previous, "messages": previous["messages"] + list(body.get("messages", []))}

    def hold(self, body: dict[str, Any], reply: dict[str, Any], held: dict[tuple[str, str], Any]) -> None:
        if isinstance(body.get("thread"), dict):
            answered = {"role": "assistant", "content": reply["content"]}
            kept = {f: body[f] for f in self.thread_fields if f in body}
            held[("anthropic", reply["id"])] = {**kept, "messages": list(body.get("messages", [])) + [answered]}

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
        kinds = {400: "invalid_request_error", 404: "not_found_error"}
        error = {"type": kinds.get(refused.status, "api_error"), "message": refused.message}
        if refused.code is not None:
            error["details"] = {"error_code": refused.code}
        return {"type": "error", "error": error}


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


def gemini_result_text(response: Any) -> str:
    """A functionResponse's `response` as text: its `output` or `result`, and of an MCP tool
    result its content (google-genai wraps a session's result as `{"result": ...}`,
    @google/genai hands it as is); JSON otherwise (an `error`, say)."""
    if isinstance(response, dict) and len(response) == 1 and ("output" in response or "result" in response):
        response = next(iter(response.values()))
    if isinstance(response, dict) and isinstance(response.get("content"), list) and not response.get("isError"):
        return result_text(response["content"])
    return result_text(response)


class Gemini(Api):
    """Gemini generateContent: `tools[].functionDeclarations`, results as `functionResponse`
    parts, a call as a `functionCall` part (with an `id`, as Gemini 3 sends)."""

    name = "gemini"

    def answering(self, errors: list[Refused]) -> Refused:
        """Gemini lists every problem of a stage: parser and field errors under one heading, one
        per line; schema checks as `* path: why` lines."""
        for heading, separator in ((INVALID_JSON, "\n"), (PROTO_INVALID, "\n")):
            if errors[0].message.startswith(heading):
                return Refused(400, heading + separator.join(e.message.removeprefix(heading) for e in errors))
        return Refused(400, "".join(e.message for e in errors))

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
            gemini_result_text(part["functionResponse"].get("response"))
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
