"""Downstream MCP client driver for Manifold's end-to-end tests.

Usage: client.py --url URL --sdk mcp|fastmcp [--mode auto|legacy] [--timeout SECONDS]
                 [--header "Name: value" ...] [--resume SESSION_ID]   (both: --sdk mcp)
                 [--otlp-endpoint URL]

Reads a JSON array of operations from stdin, runs them in order in ONE MCP
session (Streamable HTTP) against URL, and prints one JSON object per
operation to stdout, one per line, flushed:

  {"op": "list_tools"}                          -> {"tools": [<Tool as received>]}
  {"op": "call", "name": N, "arguments": {...}} -> {"isError": b, "content": [...], "structuredContent": x|null}
  {"op": "ping"}                                -> {"ok": true}
  {"op": "call", ..., "traced": true}           -> as call, plus "trace": {"trace_id", "span_id"}
                                                   of a span of ours around the call (needs
                                                   --otlp-endpoint)

With --sdk mcp only (the client answers the server's requests: sampling with the
text "sampled: <prompt>", elicitation by accepting with a value for every requested
field, roots with file:///e2e):
  {"op": "list", "kind": "tools|prompts|resources|templates"}
                                                -> {"items": [...], "pages": <int>}
  {"op": "call", ..., "progress": true}         -> as call, plus "progress": [{progress, total, message}]
  {"op": "call", ..., "meta": true}             -> as call, plus "_meta": the result's _meta or null
  {"op": "read", "uri": U}                      -> {"contents": [...]}
  {"op": "get_prompt", "name": N, "arguments": {...}} -> {"messages": [...]}
  {"op": "complete", "ref": {...}, "argument": {...}} -> {"completion": {...}}
  {"op": "set_level", "level": L}               -> {"ok": true}
  {"op": "subscribe", "uri": U} / {"op": "unsubscribe", "uri": U} -> {"ok": true}
  {"op": "sleep", "seconds": S}                 -> {"ok": true}
  {"op": "wait_for", "notification": N, "seconds": S}
                                                -> {"seen": true} once N (as "seen" lists it) has
                                                   arrived, else {"seen": false, "notifications": [...]}
  {"op": "seen"}                                -> {"requests": [<methods the server asked>],
                                                    "notifications": [<methods received, with
                                                    the URI for resource updates>],
                                                    "spans": [{"method", "trace_id", "span_id"}
                                                    of the spans recording how they were handled]}

A JSON-RPC error answer prints {"error": {"code": <int>, "message": ...}}; any
other exception inside one operation prints {"error": {"code": null, ...}} and
the run continues. If connecting or initializing fails it prints
{"fatal": "<message>"} and exits 1.

--sdk mcp uses the official SDK's streamable_http_client + ClientSession (the
initialize handshake). --sdk fastmcp uses fastmcp.Client, whose default
--mode auto first probes `server/discover` (2026-07-28 era) and falls back to
the initialize handshake; --mode legacy skips the probe.

With --otlp-endpoint URL the spans are exported over OTLP/HTTP as service `e2e-client`
(tracing.py): the SDK's own CLIENT span per request it sends (its context goes in
`params._meta.traceparent`), a span of ours around each traced call, and (--sdk mcp) a SERVER
span per request the server asks (sampling, elicitation, roots), its parent read from that
request's `_meta.traceparent`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from mcp import ClientSession, MCPError
from mcp.types import PaginatedRequestParams
from mcp.client.streamable_http import streamable_http_client

import tracing


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def call_output(is_error: bool, content: list[Any], structured: Any) -> dict[str, Any]:
    return {
        "isError": bool(is_error),
        "content": [dump(block) for block in content],
        "structuredContent": structured,
    }


def answer_for(schema: dict[str, Any]) -> dict[str, Any]:
    """A value for every field an elicitation asks for, by its type."""
    content: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if "enum" in prop:
            content[name] = prop["enum"][0]
        elif prop.get("oneOf"):
            content[name] = prop["oneOf"][0].get("const")
        else:
            content[name] = {"string": "e2e", "number": 1, "integer": 1, "boolean": True}.get(
                prop.get("type"), "e2e"
            )
    return content


class McpSdk:
    """Official `mcp` SDK: streamable_http_client + ClientSession."""

    def __init__(
        self, url: str, timeout: float, headers: dict[str, str] | None = None, resume: str | None = None
    ) -> None:
        self.url, self.timeout, self.headers, self.resume = url, timeout, headers or {}, resume
        self.requests: list[str] = []
        self.notifications: list[str] = []
        self.spans: list[dict[str, str]] = []

    @contextlib.contextmanager
    def handling(self, method: str, context: Any):
        """Notes a request the server asked and records a SERVER span for handling it, a child
        of the span whose context the request's `_meta` carries."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        self.requests.append(method)
        tracer = trace.get_tracer("e2e-client")
        parent = tracing.parent_from_meta(getattr(context, "meta", None))
        attributes = {"mcp.method.name": method, "jsonrpc.request.id": str(context.request_id)}
        with tracer.start_as_current_span(method, context=parent, kind=SpanKind.SERVER, attributes=attributes) as span:
            if span.get_span_context().is_valid:
                self.spans.append({"method": method, **tracing.ids(span)})
            yield

    async def connect(self, stack: contextlib.AsyncExitStack) -> None:
        from mcp import types

        async def sampling(context: Any, params: Any) -> Any:
            with self.handling("sampling/createMessage", context):
                first = params.messages[0].content
                prompt = getattr(first, "text", "") if not isinstance(first, list) else ""
                return types.CreateMessageResult(
                    role="assistant",
                    content=types.TextContent(type="text", text=f"sampled: {prompt}"),
                    model="e2e-model",
                    stop_reason="endTurn",
                )

        async def elicitation(context: Any, params: Any) -> Any:
            with self.handling("elicitation/create", context):
                schema = getattr(params, "requested_schema", None) or {}
                return types.ElicitResult(action="accept", content=answer_for(schema))

        async def roots(context: Any) -> Any:
            with self.handling("roots/list", context):
                return types.ListRootsResult(roots=[types.Root(uri="file:///e2e", name="e2e")])

        async def logging(params: Any) -> None:
            self.notifications.append("notifications/message")

        async def handler(message: Any) -> None:
            root = getattr(message, "root", message)
            method = getattr(root, "method", None)
            uri = getattr(getattr(root, "params", None), "uri", None)
            if method:
                self.notifications.append(f"{method} {uri}" if uri else method)

        from mcp.shared._httpx_utils import create_mcp_http_client

        if self.resume:
            # Go on in a session opened elsewhere (another process, another gateway replica):
            # the transport starts with its id, and the handshake is not repeated.
            from mcp.client import streamable_http

            opened, version = self.resume, "2025-11-25"
            original = streamable_http.StreamableHTTPTransport.__init__

            def preset(transport: Any, *args: Any, **kwargs: Any) -> None:
                original(transport, *args, **kwargs)
                transport.session_id = opened
                transport._protocol_version_header = version

            streamable_http.StreamableHTTPTransport.__init__ = preset  # type: ignore[method-assign]

        http_client = await stack.enter_async_context(create_mcp_http_client(headers=self.headers))
        read, write = await stack.enter_async_context(streamable_http_client(self.url, http_client=http_client))
        session = ClientSession(
            read,
            write,
            read_timeout_seconds=self.timeout,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
            list_roots_callback=roots,
            logging_callback=logging,
            message_handler=handler,
        )
        self.session = await stack.enter_async_context(session)
        if not self.resume:
            await self.session.initialize()

    async def list_kind(self, kind: str) -> dict[str, Any]:
        method, field = {
            "tools": (self.session.list_tools, "tools"),
            "prompts": (self.session.list_prompts, "prompts"),
            "resources": (self.session.list_resources, "resources"),
            "templates": (self.session.list_resource_templates, "resource_templates"),
        }[kind]
        items, cursor, pages = [], None, 0
        while True:
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            result = await method(params=params)
            pages += 1
            items.extend(dump(i) for i in getattr(result, field))
            cursor = result.next_cursor
            if not cursor:
                return {"items": items, "pages": pages}

    async def call_with_progress(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        progress: list[dict[str, Any]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append({"progress": value, "total": total, "message": message})

        r = await self.session.call_tool(name, arguments, progress_callback=on_progress)
        return {**call_output(r.is_error, r.content, r.structured_content), "progress": progress}

    async def list_tools(self) -> list[Any]:
        tools, cursor = [], None
        while True:
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            result = await self.session.list_tools(params=params)
            tools.extend(result.tools)
            cursor = result.next_cursor
            if not cursor:
                return tools

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        r = await self.session.call_tool(name, arguments)
        return call_output(r.is_error, r.content, r.structured_content)

    async def ping(self) -> None:
        await self.session.send_ping()


class FastMcpSdk:
    """`fastmcp.Client` over Streamable HTTP (non-raising call_tool)."""

    def __init__(self, url: str, timeout: float, mode: str) -> None:
        # Imported lazily: importing fastmcp patches mcp_types models, keep --sdk mcp pure.
        from fastmcp import Client
        from fastmcp.client.transports import StreamableHttpTransport

        self.client = Client(
            StreamableHttpTransport(url), timeout=timeout, init_timeout=timeout, mode=mode
        )

    async def connect(self, stack: contextlib.AsyncExitStack) -> None:
        await stack.enter_async_context(self.client)

    async def list_tools(self) -> list[Any]:
        return await self.client.list_tools()

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.call_tool(name, arguments, raise_on_error=False)
        return call_output(r.is_error, r.content, r.structured_content)

    async def ping(self) -> None:
        await self.client.ping()


async def run_op(sdk: McpSdk | FastMcpSdk, op: dict[str, Any]) -> dict[str, Any]:
    if op.get("traced"):
        from opentelemetry import trace

        # The caller's own span (an agent's step, say) around the SDK's CLIENT span.
        name = f"e2e {op.get('op')} {op.get('name', '')}".strip()
        with trace.get_tracer("e2e-client").start_as_current_span(name) as span:
            if not span.get_span_context().is_valid:
                return {"error": {"code": None, "message": "a traced op needs --otlp-endpoint"}}
            return await run_untraced_op(sdk, op) | {"trace": tracing.ids(span)}
    return await run_untraced_op(sdk, op)


async def run_untraced_op(sdk: McpSdk | FastMcpSdk, op: dict[str, Any]) -> dict[str, Any]:
    try:
        kind = op.get("op")
        if kind == "list_tools":
            return {"tools": [dump(t) for t in await sdk.list_tools()]}
        if kind == "call" and op.get("progress") and isinstance(sdk, McpSdk):
            return await sdk.call_with_progress(op["name"], op.get("arguments") or {})
        if kind == "call" and op.get("meta") and isinstance(sdk, McpSdk):
            r = await sdk.session.call_tool(op["name"], op.get("arguments") or {})
            return call_output(r.is_error, r.content, r.structured_content) | {"_meta": r.meta}
        if kind == "call":
            return await sdk.call(op["name"], op.get("arguments") or {})
        if kind == "ping":
            await sdk.ping()
            return {"ok": True}
        if not isinstance(sdk, McpSdk):
            raise ValueError(f"op {kind!r} needs --sdk mcp")
        if kind == "list":
            return await sdk.list_kind(op["kind"])
        if kind == "read":
            return dump(await sdk.session.read_resource(op["uri"]))
        if kind == "get_prompt":
            return dump(await sdk.session.get_prompt(op["name"], op.get("arguments")))
        if kind == "complete":
            from mcp import types

            ref = op["ref"]
            ref = (
                types.PromptReference(**ref) if ref["type"] == "ref/prompt" else types.ResourceTemplateReference(**ref)
            )
            return dump(await sdk.session.complete(ref, op["argument"]))
        if kind == "set_level":
            await sdk.session.set_logging_level(op["level"])
            return {"ok": True}
        if kind == "subscribe":
            await sdk.session.subscribe_resource(op["uri"])
            return {"ok": True}
        if kind == "unsubscribe":
            await sdk.session.unsubscribe_resource(op["uri"])
            return {"ok": True}
        if kind == "sleep":
            await asyncio.sleep(op["seconds"])
            return {"ok": True}
        if kind == "wait_for":
            deadline = asyncio.get_running_loop().time() + op["seconds"]
            while op["notification"] not in sdk.notifications:
                if asyncio.get_running_loop().time() > deadline:
                    return {"seen": False, "notifications": sdk.notifications}
                await asyncio.sleep(0.05)
            return {"seen": True}
        if kind == "seen":
            return {"requests": sdk.requests, "notifications": sdk.notifications, "spans": sdk.spans}
        raise ValueError(f"unknown op: {kind!r}")
    except MCPError as e:
        return {"error": {"code": e.code, "message": e.message}}
    except Exception as e:  # noqa: BLE001 - reported per op, run continues
        return {"error": {"code": None, "message": f"{type(e).__name__}: {e}"}}


def describe(exc: BaseException) -> str:
    """Innermost useful message, unwrapping anyio/asyncio exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--sdk", required=True, choices=["mcp", "fastmcp"])
    parser.add_argument("--mode", default="auto", choices=["auto", "legacy"],
                        help="fastmcp connect mode (ignored for --sdk mcp)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="per-request and initialize timeout in seconds")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                        help="an HTTP header sent on every request (--sdk mcp), for example a token")
    parser.add_argument("--resume", metavar="SESSION_ID",
                        help="go on in this existing session instead of initializing (--sdk mcp)")
    parser.add_argument("--otlp-endpoint", metavar="URL",
                        help="export this client's spans over OTLP/HTTP to URL (e.g. http://127.0.0.1:4318)")
    args = parser.parse_args()
    provider = tracing.export_spans(args.otlp_endpoint, "e2e-client")

    try:
        ops = json.load(sys.stdin)
        if not isinstance(ops, list):
            raise ValueError("stdin must be a JSON array of operations")
    except ValueError as e:
        emit({"fatal": f"bad input: {e}"})
        return 1

    if args.sdk == "mcp":
        headers = dict(h.split(":", 1) for h in args.header)
        sdk: McpSdk | FastMcpSdk = McpSdk(
            args.url, args.timeout, {k.strip(): v.strip() for k, v in headers.items()}, args.resume
        )
    else:
        sdk = FastMcpSdk(args.url, args.timeout, args.mode)

    try:
        async with contextlib.AsyncExitStack() as stack:
            await sdk.connect(stack)
            for op in ops:
                emit(await run_op(sdk, op))
    except Exception as e:  # noqa: BLE001 - anything escaping the ops is fatal
        emit({"fatal": describe(e)})
        return 1
    finally:
        if provider is not None:
            provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
