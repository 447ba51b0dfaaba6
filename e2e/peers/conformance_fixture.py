"""MCP server fixture for the official MCP conformance suite, for Manifold's end-to-end tests.

Usage: conformance_fixture.py [--port N] [--dns-rebinding-protection]

The script binds 127.0.0.1 on a free port (or --port N), prints exactly one
line `LISTENING <port>` to stdout once uvicorn accepts connections, then serves
until killed. All logging goes to stderr.

It implements everything `@modelcontextprotocol/conformance` 0.2.0-alpha.12
expects of a server (`server --requirements 2025-11-25`, and
`--requirements 2026-07-28`), built on the low-level `mcp` 2.3.0 `Server`.
One Streamable HTTP endpoint, /mcp, serves both protocol eras:

* 2025-11-25 (and older handshake versions): stateful. A POST `initialize`
  opens a session (`Mcp-Session-Id`); later POSTs are answered as SSE streams
  that carry, related to the request, the tool's `notifications/message` log
  entries, `notifications/progress`, and server-to-client `sampling/createMessage`
  and `elicitation/create` requests whose answers the client POSTs back. A GET
  opens the standalone stream (list-changed notifications). Every session has its
  own event store, so each POST stream starts with a priming event (`id:`, empty
  `data:`, `retry:`) and a dropped stream can be resumed with GET + `Last-Event-ID`.
  DELETE ends the session.
* 2026-07-28: stateless. A POST whose `MCP-Protocol-Version` header names a
  2026 version is one self-contained exchange with no session: `_meta` carries
  the protocol version and client capabilities, server-to-client requests are
  replaced by `InputRequiredResult` rounds (MRTR; `requestState` is sealed by the
  SDK), change notifications flow only on `subscriptions/listen` streams, and
  cacheable results carry `ttlMs`/`cacheScope`.

Host/Origin checking is off by default, because the gateway in front of this
fixture does DNS-rebinding protection and forwards requests with its own Host.
`--dns-rebinding-protection` turns on the SDK's localhost allowlist, for
running the suite's `dns-rebinding-protection` scenario against the fixture
directly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import sys
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp_types import INVALID_PARAMS, MISSING_REQUIRED_CLIENT_CAPABILITY, JSONRPCMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from mcp.server import CacheHint, NotificationOptions, Server, ServerRequestContext
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ToolsListChanged,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from starlette.applications import Starlette
from starlette.routing import Route

from serving import only_sessions, serve

# The fixture deliberately serves the features 2026-07-28 deprecates (logging,
# sampling and elicitation requests, roots); the SDK warns on each use.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

log = logging.getLogger("conformance_fixture")

SERVER_NAME = "manifold-conformance-fixture"

# A 1x1 PNG and a minimal (silent) WAV file.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

# The 2025-11-25 error code for an unknown resource URI (2026-07-28 uses -32602, SEP-2164).
RESOURCE_NOT_FOUND = -32002

EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

# Severity order of `notifications/message` levels (RFC 5424, ascending).
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

LEGACY = "2025"  # the handshake era: 2025-11-25 and older
MODERN = "2026"  # the stateless era: 2026-07-28
BOTH = frozenset({LEGACY, MODERN})


def era_of(ctx: ServerRequestContext[Any, Any]) -> str:
    return MODERN if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS else LEGACY


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def text_result(value: str) -> dict[str, Any]:
    return {"content": [text(value)]}


# --------------------------------------------------------------------------------------------
# Per-process state shared by the handlers.


@dataclass
class FixtureState:
    bus: InMemorySubscriptionBus
    # 2025 sessions: the `logging/setLevel` level and `resources/subscribe` URIs, by session id.
    log_levels: dict[str, str]
    subscriptions: dict[str, set[str]]


def session_key(ctx: ServerRequestContext[Any, Any]) -> str:
    """The `Mcp-Session-Id` the request arrived with ("" when there is none)."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    return headers.get("mcp-session-id", "") if headers is not None else ""


# --------------------------------------------------------------------------------------------
# Tools.

ToolHandler = Callable[[ServerRequestContext[Any, Any], dict[str, Any], FixtureState], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    handler: ToolHandler
    eras: frozenset[str] = BOTH
    input_schema: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema if self.input_schema is not None else EMPTY_OBJECT_SCHEMA,
        }


async def tool_simple_text(ctx, args, state):
    return text_result("This is a simple text response for testing.")


async def tool_image_content(ctx, args, state):
    return {"content": [{"type": "image", "data": PNG_BASE64, "mimeType": "image/png"}]}


async def tool_audio_content(ctx, args, state):
    return {"content": [{"type": "audio", "data": WAV_BASE64, "mimeType": "audio/wav"}]}


async def tool_embedded_resource(ctx, args, state):
    resource = {
        "uri": "test://embedded-resource",
        "mimeType": "text/plain",
        "text": "This is an embedded resource content.",
    }
    return {"content": [{"type": "resource", "resource": resource}]}


async def tool_multiple_content_types(ctx, args, state):
    resource = {
        "uri": "test://mixed-content-resource",
        "mimeType": "application/json",
        "text": json.dumps({"test": "data", "value": 123}, separators=(",", ":")),
    }
    return {
        "content": [
            text("Multiple content types test:"),
            {"type": "image", "data": PNG_BASE64, "mimeType": "image/png"},
            {"type": "resource", "resource": resource},
        ]
    }


async def tool_error_handling(ctx, args, state):
    return {"isError": True, "content": [text("This tool intentionally returns an error for testing")]}


async def tool_with_progress(ctx, args, state):
    # Request-scoped: on 2025 the notifications ride the POST's SSE stream, on
    # 2026 they are SSE events of the same response, before the result. Nothing
    # is sent when the request carried no `_meta.progressToken`.
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await anyio.sleep(0.05)
        await ctx.session.report_progress(progress, 100, f"Progress {progress}%")
    return text_result("Tool with progress executed successfully")


async def tool_json_schema_2020_12(ctx, args, state):
    return text_result(f"json_schema_2020_12_tool received: {json.dumps(args, sort_keys=True)}")


JSON_SCHEMA_2020_12_INPUT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


async def notify_trigger(ctx, state: FixtureState, event, legacy_send: str) -> None:
    """Announce a (pretend) list change: on the 2026 listen streams, or the 2025 standalone stream."""
    if era_of(ctx) == MODERN:
        await state.bus.publish(event)
    else:
        await getattr(ctx.session, legacy_send)()


async def tool_trigger_tool_change(ctx, args, state):
    await notify_trigger(ctx, state, ToolsListChanged(), "send_tool_list_changed")
    return text_result("Sent a tools list_changed notification")


async def tool_trigger_prompt_change(ctx, args, state):
    await notify_trigger(ctx, state, PromptsListChanged(), "send_prompt_list_changed")
    return text_result("Sent a prompts list_changed notification")


async def tool_trigger_resource_change(ctx, args, state):
    await notify_trigger(ctx, state, ResourcesListChanged(), "send_resource_list_changed")
    return text_result("Sent a resources list_changed notification")


# ---- 2025-only tools: logging, sampling and elicitation over the session's back-channel.


def client_lacks(ctx, capability: str) -> dict[str, Any] | None:
    caps = ctx.session.client_capabilities
    if caps is None or getattr(caps, capability) is None:
        return {"isError": True, "content": [text(f"The client did not declare the {capability} capability")]}
    return None


async def tool_with_logging(ctx, args, state):
    minimum = state.log_levels.get(session_key(ctx), "debug")
    messages = ("Tool execution started", "Tool processing data", "Tool execution completed")
    for step, message in enumerate(messages):
        if step:
            await anyio.sleep(0.05)
        if LOG_LEVELS.index("info") >= LOG_LEVELS.index(minimum):
            # related_request_id puts the entry on this request's POST SSE stream.
            await ctx.session.send_log_message("info", message, logger=SERVER_NAME, related_request_id=ctx.request_id)
    return text_result("Tool with logging executed successfully")


async def tool_sampling(ctx, args, state):
    if (missing := client_lacks(ctx, "sampling")) is not None:
        return missing
    prompt = str(args.get("prompt", "Test prompt for sampling"))
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=100,
        related_request_id=ctx.request_id,
    )
    content = result.content
    reply = content.text if isinstance(content, types.TextContent) else json.dumps(content.model_dump(mode="json"))
    return text_result(f"LLM response: {reply}")


async def elicit(ctx, message: str, schema: dict[str, Any]) -> types.ElicitResult:
    # The schema dict is sent verbatim (`requestedSchema` is an untyped mapping in the SDK).
    return await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)


def elicit_summary(prefix: str, result: types.ElicitResult) -> dict[str, Any]:
    content = json.dumps(result.content, sort_keys=True) if result.content is not None else "null"
    return text_result(f"{prefix}: action={result.action}, content={content}")


async def tool_elicitation(ctx, args, state):
    if (missing := client_lacks(ctx, "elicitation")) is not None:
        return missing
    schema = {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    }
    result = await elicit(ctx, str(args.get("message", "Please provide your information")), schema)
    return elicit_summary("User response", result)


async def tool_elicitation_sep1034_defaults(ctx, args, state):
    if (missing := client_lacks(ctx, "elicitation")) is not None:
        return missing
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
        "required": [],
    }
    result = await elicit(ctx, "Please review and update the form fields with defaults", schema)
    return elicit_summary("Elicitation completed", result)


async def tool_elicitation_sep1330_enums(ctx, args, state):
    if (missing := client_lacks(ctx, "elicitation")) is not None:
        return missing
    schema = {
        "type": "object",
        "properties": {
            # Untitled single-select: plain enum.
            "untitledSingle": {
                "type": "string",
                "description": "Untitled single-select",
                "enum": ["option1", "option2", "option3"],
            },
            # Titled single-select: oneOf const/title.
            "titledSingle": {
                "type": "string",
                "description": "Titled single-select",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            # Legacy titled enum: enum plus parallel enumNames.
            "legacyEnum": {
                "type": "string",
                "description": "Legacy titled enum",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            # Untitled multi-select: array of enum items.
            "untitledMulti": {
                "type": "array",
                "description": "Untitled multi-select",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            # Titled multi-select: array items as anyOf const/title.
            "titledMulti": {
                "type": "array",
                "description": "Titled multi-select",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
        "required": [],
    }
    result = await elicit(ctx, "Please select options from the enum fields", schema)
    return elicit_summary("Elicitation completed", result)


async def tool_reconnection(ctx, args, state):
    # SEP-1699 polling: end this request's SSE stream before the result exists;
    # the result is kept in the session's event store and delivered when the
    # client resumes with GET + Last-Event-ID. Without resumability (a client
    # older than 2025-11-25) the stream simply stays open.
    if ctx.close_sse_stream is not None:
        await ctx.close_sse_stream()
        await anyio.sleep(0.2)
    return text_result("Reconnection test completed successfully")


# ---- 2026-only tools.


async def tool_missing_capability(ctx, args, state):
    caps = ctx.session.client_capabilities
    if caps is None or caps.sampling is None:
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="This tool requires the client's sampling capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return text_result("The client declared the sampling capability")


async def tool_logging_2026(ctx, args, state):
    # The SDK sends this only if the request's `_meta` opted in with
    # `io.modelcontextprotocol/logLevel` (at or below "info"), and then on this
    # request's response stream.
    await ctx.session.send_log_message("info", "test_logging_tool was called", logger=SERVER_NAME)
    return text_result("Logging tool executed")


async def tool_custom_header(ctx, args, state):
    return text_result(f"Region: {args.get('region', '')}")


def elicitation_request(message: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": schema}}


def sampling_request(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": text(prompt)}], "maxTokens": max_tokens},
    }


ROOTS_REQUEST: dict[str, Any] = {"method": "roots/list", "params": {}}


def input_required(requests: dict[str, Any], request_state: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if request_state is not None:
        result["requestState"] = request_state
    return result


class MrtrRound:
    """The MRTR retry fields of a request: `inputResponses` and (already unsealed) `requestState`."""

    def __init__(self, ctx: ServerRequestContext[Any, Any]) -> None:
        params = ctx.params or {}
        responses = params.get("inputResponses")
        if responses is not None and not isinstance(responses, dict):
            raise MCPError(code=INVALID_PARAMS, message="inputResponses must be an object")
        self.responses: dict[str, Any] = responses or {}
        self.state: str | None = params.get("requestState")

    def accepted(self, key: str, field: str, kind: type | tuple[type, ...] = str) -> Any:
        """The `content[field]` of an accepted elicitation answer under `key`, else None."""
        answer = self.responses.get(key)
        if not isinstance(answer, dict) or answer.get("action") != "accept":
            return None
        content = answer.get("content")
        value = content.get(field) if isinstance(content, dict) else None
        if kind is bool:
            return value if isinstance(value, bool) else None
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    def sampled(self, key: str) -> str | None:
        answer = self.responses.get(key)
        if not isinstance(answer, dict) or not isinstance(answer.get("content"), dict):
            return None
        return answer["content"].get("text") if answer["content"].get("type") == "text" else "(non-text sample)"

    def roots(self, key: str) -> list[dict[str, Any]] | None:
        answer = self.responses.get(key)
        roots = answer.get("roots") if isinstance(answer, dict) else None
        return roots if isinstance(roots, list) else None


NAME_REQUEST = elicitation_request("What is your name?", {"name": {"type": "string"}}, ["name"])


async def tool_irr_elicitation(ctx, args, state):
    name = MrtrRound(ctx).accepted("user_name", "name")
    if not isinstance(name, str):
        return input_required({"user_name": NAME_REQUEST})
    return text_result(f"Hello, {name}!")


async def tool_irr_sampling(ctx, args, state):
    answer = MrtrRound(ctx).sampled("capital_question")
    if answer is None:
        return input_required({"capital_question": sampling_request("What is the capital of France?", 100)})
    return text_result(f"The client's model answered: {answer}")


async def tool_irr_list_roots(ctx, args, state):
    roots = MrtrRound(ctx).roots("client_roots")
    if roots is None:
        return input_required({"client_roots": ROOTS_REQUEST})
    uris = [str(root.get("uri")) for root in roots if isinstance(root, dict)]
    return text_result(f"The client has {len(uris)} root(s): {', '.join(uris)}")


CONFIRM_REQUEST = elicitation_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])


async def tool_irr_request_state(ctx, args, state):
    mrtr = MrtrRound(ctx)
    if mrtr.state != "awaiting-confirmation" or mrtr.accepted("confirm", "ok", bool) is None:
        return input_required({"confirm": CONFIRM_REQUEST}, "awaiting-confirmation")
    return text_result(f"state-ok: confirmed={mrtr.accepted('confirm', 'ok', bool)}")


async def tool_irr_multiple_inputs(ctx, args, state):
    mrtr = MrtrRound(ctx)
    name, greeting, roots = mrtr.accepted("user_name", "name"), mrtr.sampled("greeting"), mrtr.roots("client_roots")
    if mrtr.state != "awaiting-all-three" or not isinstance(name, str) or greeting is None or roots is None:
        requests = {
            "user_name": NAME_REQUEST,
            "greeting": sampling_request("Generate a greeting", 50),
            "client_roots": ROOTS_REQUEST,
        }
        return input_required(requests, "awaiting-all-three")
    return text_result(f"name={name}; greeting={greeting}; roots={len(roots)}")


async def tool_irr_multi_round(ctx, args, state):
    mrtr = MrtrRound(ctx)
    if mrtr.state is not None and mrtr.state.startswith("round-2:"):
        color = mrtr.accepted("step2", "color")
        if isinstance(color, str):
            return text_result(f"Finished after 2 rounds: name={mrtr.state[len('round-2:'):]}, color={color}")
    name = mrtr.accepted("step1", "name")
    if mrtr.state == "round-1" and isinstance(name, str):
        step2 = elicitation_request("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
        return input_required({"step2": step2}, f"round-2:{name}")
    step1 = elicitation_request("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
    return input_required({"step1": step1}, "round-1")


async def tool_irr_tampered_state(ctx, args, state):
    # The SDK's RequestStateBoundary rejects a modified requestState with -32602
    # before this handler runs.
    mrtr = MrtrRound(ctx)
    if mrtr.state != "integrity-protected" or mrtr.accepted("confirm", "ok", bool) is None:
        return input_required({"confirm": CONFIRM_REQUEST}, "integrity-protected")
    return text_result("requestState verified")


async def tool_irr_capabilities(ctx, args, state):
    mrtr = MrtrRound(ctx)
    caps = ctx.session.client_capabilities
    requests: dict[str, Any] = {}
    if caps is not None and caps.elicitation is not None and mrtr.accepted("user_name", "name") is None:
        requests["user_name"] = NAME_REQUEST
    if caps is not None and caps.sampling is not None and mrtr.sampled("greeting") is None:
        requests["greeting"] = sampling_request("Generate a greeting", 50)
    if caps is not None and caps.roots is not None and mrtr.roots("client_roots") is None:
        requests["client_roots"] = ROOTS_REQUEST
    if requests:
        return input_required(requests)
    return text_result("Every input the client's capabilities allow was provided")


async def tool_streaming_elicitation(ctx, args, state):
    # 2026 forbids server-to-client requests on the response stream; the
    # elicitation is asked for with an InputRequiredResult instead.
    caps = ctx.session.client_capabilities
    name = MrtrRound(ctx).accepted("user_name", "name")
    if isinstance(name, str):
        return text_result(f"Hello, {name}!")
    if caps is None or caps.elicitation is None:
        return text_result("The client cannot elicit; nothing to ask")
    return input_required({"user_name": NAME_REQUEST})


TOOLS: list[ToolSpec] = [
    # test_simple_text first: the 2026 header-validation scenario calls tools[0] with {}.
    ToolSpec("test_simple_text", "Returns a simple text content block", tool_simple_text),
    ToolSpec("test_image_content", "Returns an image content block (1x1 PNG)", tool_image_content),
    ToolSpec("test_audio_content", "Returns an audio content block (WAV)", tool_audio_content),
    ToolSpec("test_embedded_resource", "Returns an embedded text resource", tool_embedded_resource),
    ToolSpec("test_multiple_content_types", "Returns text, image and resource content", tool_multiple_content_types),
    ToolSpec("test_error_handling", "Returns a tool result with isError: true", tool_error_handling),
    ToolSpec("test_tool_with_progress", "Sends three progress notifications, then returns", tool_with_progress),
    ToolSpec(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features",
        tool_json_schema_2020_12,
        input_schema=JSON_SCHEMA_2020_12_INPUT,
    ),
    ToolSpec("test_trigger_tool_change", "Announces a tools list change", tool_trigger_tool_change),
    ToolSpec("test_trigger_prompt_change", "Announces a prompts list change", tool_trigger_prompt_change),
    ToolSpec("test_trigger_resource_change", "Announces a resources list change", tool_trigger_resource_change),
    # 2025-11-25 only.
    ToolSpec(
        "test_tool_with_logging",
        "Sends three info-level log notifications during execution",
        tool_with_logging,
        eras=frozenset({LEGACY}),
    ),
    ToolSpec(
        "test_sampling",
        "Asks the client to sample an LLM completion for the prompt",
        tool_sampling,
        eras=frozenset({LEGACY}),
        input_schema={
            "type": "object",
            "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
            "required": ["prompt"],
        },
    ),
    ToolSpec(
        "test_elicitation",
        "Asks the client (user) for a username and an email address",
        tool_elicitation,
        eras=frozenset({LEGACY}),
        input_schema={
            "type": "object",
            "properties": {"message": {"type": "string", "description": "The message to show the user"}},
            "required": ["message"],
        },
    ),
    ToolSpec(
        "test_elicitation_sep1034_defaults",
        "Elicitation whose primitive fields carry default values (SEP-1034)",
        tool_elicitation_sep1034_defaults,
        eras=frozenset({LEGACY}),
    ),
    ToolSpec(
        "test_elicitation_sep1330_enums",
        "Elicitation with every enum schema variant (SEP-1330)",
        tool_elicitation_sep1330_enums,
        eras=frozenset({LEGACY}),
    ),
    ToolSpec(
        "test_reconnection",
        "Closes its SSE stream before answering; resume with Last-Event-ID (SEP-1699)",
        tool_reconnection,
        eras=frozenset({LEGACY}),
    ),
    # 2026-07-28 only.
    ToolSpec(
        "test_missing_capability",
        "Requires the client's sampling capability; -32021 without it",
        tool_missing_capability,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_streaming_elicitation",
        "Needs user input; asks for it with an InputRequiredResult",
        tool_streaming_elicitation,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_logging_tool",
        "Logs at info level, only if the request opted in to logging",
        tool_logging_2026,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_custom_header",
        "Takes a parameter mirrored in the Mcp-Param-Region header",
        tool_custom_header,
        eras=frozenset({MODERN}),
        input_schema={
            "type": "object",
            "properties": {"region": {"type": "string", "description": "A region name", "x-mcp-header": "Region"}},
            "required": ["region"],
        },
    ),
    ToolSpec(
        "test_input_required_result_elicitation",
        "MRTR: asks for the user's name with elicitation",
        tool_irr_elicitation,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_input_required_result_sampling",
        "MRTR: asks the client to sample a completion",
        tool_irr_sampling,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_input_required_result_list_roots",
        "MRTR: asks for the client's roots",
        tool_irr_list_roots,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_input_required_result_request_state",
        "MRTR: asks for confirmation and carries requestState",
        tool_irr_request_state,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_input_required_result_multiple_inputs",
        "MRTR: asks for elicitation, sampling and roots at once",
        tool_irr_multiple_inputs,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_input_required_result_multi_round",
        "MRTR: needs two rounds of input",
        tool_irr_multi_round,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_input_required_result_tampered_state",
        "MRTR: rejects a modified requestState",
        tool_irr_tampered_state,
        eras=frozenset({MODERN}),
    ),
    ToolSpec(
        "test_input_required_result_capabilities",
        "MRTR: asks only for inputs the client's capabilities allow",
        tool_irr_capabilities,
        eras=frozenset({MODERN}),
    ),
]
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}


# --------------------------------------------------------------------------------------------
# Resources.

STATIC_RESOURCES: list[dict[str, Any]] = [
    {
        "uri": "test://static-text",
        "name": "static-text",
        "title": "Static Text Resource",
        "description": "A static text resource for testing",
        "mimeType": "text/plain",
    },
    {
        "uri": "test://static-binary",
        "name": "static-binary",
        "title": "Static Binary Resource",
        "description": "A static binary resource (1x1 PNG) for testing",
        "mimeType": "image/png",
    },
    {
        "uri": "test://watched-resource",
        "name": "watched-resource",
        "title": "Watched Resource",
        "description": "A resource that can be subscribed to",
        "mimeType": "text/plain",
    },
]

RESOURCE_CONTENTS: dict[str, dict[str, Any]] = {
    "test://static-text": {"mimeType": "text/plain", "text": "This is the content of the static text resource."},
    "test://static-binary": {"mimeType": "image/png", "blob": PNG_BASE64},
    "test://watched-resource": {"mimeType": "text/plain", "text": "This is the content of the watched resource."},
}

TEMPLATE = {
    "uriTemplate": "test://template/{id}/data",
    "name": "template",
    "title": "Template Resource",
    "description": "A resource template with an {id} parameter",
    "mimeType": "application/json",
}
TEMPLATE_PATTERN = re.compile(r"^test://template/([^/]+)/data$")


# --------------------------------------------------------------------------------------------
# Prompts.

PROMPTS: list[dict[str, Any]] = [
    {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
    {
        "name": "test_prompt_with_arguments",
        "description": "A prompt with two required arguments",
        "arguments": [
            {"name": "arg1", "description": "First test argument", "required": True},
            {"name": "arg2", "description": "Second test argument", "required": True},
        ],
    },
    {
        "name": "test_prompt_with_embedded_resource",
        "description": "A prompt that embeds a resource",
        "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": True}],
    },
    {"name": "test_prompt_with_image", "description": "A prompt that contains an image"},
]
MODERN_PROMPTS: list[dict[str, Any]] = [
    {
        "name": "test_input_required_result_prompt",
        "description": "MRTR: asks for context with elicitation before rendering",
    },
]

ARG1_COMPLETIONS = ["test-value-1", "test-value-2", "testing", "other-value"]


# --------------------------------------------------------------------------------------------
# The server.


def wire_result(handler):
    """Adapt a handler that returns a wire-form (camelCase) dict.

    On 2026-07-28 every result carries `resultType`; the SDK's result models
    default it, but a plain dict has to say it (the SDK rejects one without it
    as an invalid result). Handshake-era results go out without it.
    """

    async def handle(ctx, params):
        result = await handler(ctx, params)
        if isinstance(result, dict) and era_of(ctx) == MODERN and "resultType" not in result:
            result = {"resultType": "complete", **result}
        return result

    return handle


class FixtureServer(Server[Any]):
    """Low-level server whose 2025 handshake also announces listChanged for tools, prompts and resources.

    (On 2026-07-28 the SDK derives those flags from `subscriptions/listen` being served.)
    """

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server() -> FixtureServer:
    state = FixtureState(bus=InMemorySubscriptionBus(), log_levels={}, subscriptions={})

    async def list_tools(ctx, params):
        era = era_of(ctx)
        return {"tools": [tool.wire() for tool in TOOLS if era in tool.eras]}

    async def call_tool(ctx, params: types.CallToolRequestParams):
        tool = TOOLS_BY_NAME.get(params.name)
        log.info("tools/call %s (protocol %s)", params.name, ctx.protocol_version)
        if tool is None or era_of(ctx) not in tool.eras:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        return await tool.handler(ctx, dict(params.arguments or {}), state)

    async def list_resources(ctx, params):
        return {"resources": STATIC_RESOURCES}

    async def list_resource_templates(ctx, params):
        return {"resourceTemplates": [TEMPLATE]}

    async def read_resource(ctx, params: types.ReadResourceRequestParams):
        uri = params.uri
        if uri in RESOURCE_CONTENTS:
            return {"contents": [{"uri": uri, **RESOURCE_CONTENTS[uri]}]}
        if match := TEMPLATE_PATTERN.match(uri):
            item_id = match.group(1)
            body = {"id": item_id, "templateTest": True, "data": f"Data for ID: {item_id}"}
            return {"contents": [{"uri": uri, "mimeType": "application/json", "text": json.dumps(body)}]}
        # 2025-11-25 names -32002 for an unknown resource; 2026-07-28 (SEP-2164) -32602.
        code = INVALID_PARAMS if era_of(ctx) == MODERN else RESOURCE_NOT_FOUND
        raise MCPError(code=code, message=f"Resource not found: {uri}", data={"uri": uri})

    async def subscribe_resource(ctx, params: types.SubscribeRequestParams):
        state.subscriptions.setdefault(session_key(ctx), set()).add(params.uri)
        return types.EmptyResult()

    async def unsubscribe_resource(ctx, params: types.UnsubscribeRequestParams):
        state.subscriptions.get(session_key(ctx), set()).discard(params.uri)
        return types.EmptyResult()

    async def list_prompts(ctx, params):
        return {"prompts": PROMPTS + (MODERN_PROMPTS if era_of(ctx) == MODERN else [])}

    async def get_prompt(ctx, params: types.GetPromptRequestParams):
        args = params.arguments or {}
        name = params.name
        if name == "test_simple_prompt":
            messages = [{"role": "user", "content": text("This is a simple prompt for testing.")}]
        elif name == "test_prompt_with_arguments":
            arg1, arg2 = args.get("arg1", ""), args.get("arg2", "")
            messages = [{"role": "user", "content": text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")}]
        elif name == "test_prompt_with_embedded_resource":
            resource = {
                "uri": args.get("resourceUri", "test://example-resource"),
                "mimeType": "text/plain",
                "text": "Embedded resource content for testing.",
            }
            messages = [
                {"role": "user", "content": {"type": "resource", "resource": resource}},
                {"role": "user", "content": text("Please process the embedded resource above.")},
            ]
        elif name == "test_prompt_with_image":
            messages = [
                {"role": "user", "content": {"type": "image", "data": PNG_BASE64, "mimeType": "image/png"}},
                {"role": "user", "content": text("Please analyze the image above.")},
            ]
        elif name == "test_input_required_result_prompt" and era_of(ctx) == MODERN:
            context = MrtrRound(ctx).accepted("user_context", "context")
            if not isinstance(context, str):
                request = elicitation_request(
                    "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                )
                return input_required({"user_context": request})
            messages = [{"role": "user", "content": text(f"Answer using this context: {context}")}]
        else:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name}")
        return {"description": f"Rendered {name}", "messages": messages}

    async def complete(ctx, params: types.CompleteRequestParams):
        values: list[str] = []
        ref = params.ref
        if (
            isinstance(ref, types.PromptReference)
            and ref.name == "test_prompt_with_arguments"
            and params.argument.name == "arg1"
        ):
            values = [v for v in ARG1_COMPLETIONS if v.startswith(params.argument.value)]
        return {"completion": {"values": values, "total": len(values), "hasMore": False}}

    async def set_logging_level(ctx, params: types.SetLevelRequestParams):
        state.log_levels[session_key(ctx)] = params.level
        return types.EmptyResult()

    list_hint = CacheHint(ttl_ms=300_000, scope="public")
    server = FixtureServer(
        SERVER_NAME,
        version="1.0.0",
        instructions="Fixture server for the MCP conformance suite (tools, resources and prompts named test_*).",
        cache_hints={
            "tools/list": list_hint,
            "prompts/list": list_hint,
            "resources/list": list_hint,
            "resources/templates/list": list_hint,
            "server/discover": list_hint,
            "resources/read": CacheHint(ttl_ms=300_000, scope="private"),
        },
        on_list_tools=wire_result(list_tools),
        on_call_tool=wire_result(call_tool),
        on_list_resources=wire_result(list_resources),
        on_list_resource_templates=wire_result(list_resource_templates),
        on_read_resource=wire_result(read_resource),
        on_subscribe_resource=subscribe_resource,
        on_unsubscribe_resource=unsubscribe_resource,
        on_subscriptions_listen=ListenHandler(state.bus),
        on_list_prompts=wire_result(list_prompts),
        on_get_prompt=wire_result(get_prompt),
        on_completion=wire_result(complete),
        on_set_logging_level=set_logging_level,
    )
    # Seals/verifies the 2026 MRTR `requestState` (handlers see plaintext; a
    # tampered token is answered with -32602 before any handler runs).
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=SERVER_NAME))
    return server


# --------------------------------------------------------------------------------------------
# HTTP plumbing.


class SessionEventStore(EventStore):
    """In-memory event store for ONE session (stream ids are request ids, unique only per session)."""

    MAX_EVENTS = 2000
    _ids = itertools.count(1)  # process-wide, so event ids never repeat

    def __init__(self) -> None:
        self._events: dict[EventId, tuple[StreamId, JSONRPCMessage | None]] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(next(self._ids))
        self._events[event_id] = (stream_id, message)
        if len(self._events) > self.MAX_EVENTS:
            del self._events[next(iter(self._events))]
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        if last_event_id not in self._events:
            return None
        stream_id = self._events[last_event_id][0]
        after = False
        for event_id, (event_stream, message) in list(self._events.items()):
            if after and event_stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream_id


class SessionManager(StreamableHTTPSessionManager):
    """Session manager that gives every stateful session its own `SessionEventStore`.

    The base class reads `self.event_store` exactly once per new session, when
    it builds that session's transport, so a property handing out a fresh store
    per read keeps sessions' request-id stream names apart (and lets a store
    be freed with its session).
    """

    @property
    def event_store(self) -> EventStore:  # type: ignore[override]
        return SessionEventStore()

    @event_store.setter
    def event_store(self, value: EventStore | None) -> None:
        pass  # the base __init__ assigns the constructor argument; ignored


def build_app(dns_rebinding_protection: bool) -> Starlette:
    server = build_server()
    if dns_rebinding_protection:
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    else:
        # A gateway forwards requests with its own Host/Origin; it does the checking.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    manager = SessionManager(app=server, security_settings=security, retry_interval=1000)
    return Starlette(
        routes=[Route("/mcp", endpoint=StreamableHTTPASGIApp(manager))],
        lifespan=lambda app: manager.run(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument(
        "--dns-rebinding-protection",
        action="store_true",
        help="reject requests whose Host/Origin is not localhost (off by default: the gateway checks)",
    )
    parser.add_argument(
        "--only-sessions",
        action="store_true",
        help="serve only the session-based revisions, as servers before 2026-07-28 do",
    )
    args = parser.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="[conformance-fixture] %(levelname)s %(name)s: %(message)s",
    )

    app = build_app(args.dns_rebinding_protection)
    if args.only_sessions:
        app = only_sessions(app)
    serve(app, args.port)


if __name__ == "__main__":
    main()
