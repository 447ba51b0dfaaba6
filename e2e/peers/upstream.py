"""FastMCP upstream server for Manifold's end-to-end tests.

Usage: upstream.py --profile alpha|beta|legacy|bulk|counted|flaky|agents [--transport http|sse]
                   [--only-stateless | --only-sessions] [--faults] [--port N]
                   [--otlp-endpoint URL]

The script binds 127.0.0.1 on a free port itself, prints exactly one line
`LISTENING <port>` to stdout once uvicorn accepts connections, then serves
until killed. MCP requests from the gateway (or a test client) flow in over
Streamable HTTP at /mcp (default for alpha/beta) or legacy SSE at /sse with
messages POSTed to /messages/?session_id=... (default for legacy); tool results
flow back the same way. All logging goes to stderr.

With --otlp-endpoint, FastMCP's own spans (a SERVER span per request, its parent read from
`params._meta.traceparent`; a CLIENT span per request it sends the gateway, such as an
elicitation) are exported over OTLP/HTTP as service `e2e-upstream-<profile>` (tracing.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import Middleware
from fastmcp.tools.base import Tool, ToolResult
from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult, ToolListChangedNotification

from faults import faulty
from serving import only_sessions, only_stateless, serve
from tracing import export_spans


def build_alpha() -> FastMCP:
    mcp = FastMCP("upstream-alpha")

    @mcp.tool
    def echo(text: str) -> str:
        """Echo the text back, prefixed with 'alpha:'."""
        return "alpha:" + text

    @mcp.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool
    def whoami() -> str:
        """Return the name of this upstream."""
        return "alpha"

    @mcp.tool
    def fail():
        """Always fail with a tool error."""
        raise ToolError("alpha failed on purpose")

    @mcp.tool
    async def slow(seconds: float) -> str:
        """Sleep for the given number of seconds, then return 'done'."""
        await asyncio.sleep(seconds)
        return "done"

    @mcp.tool
    def greet(ctx: Context):
        """Ask the user's name, then greet them. Only the stateless revision (2026-07-28) can
        ask this way: the tool returns an InputRequiredResult and is called again with the
        answer."""
        answer = (ctx.input_responses or {}).get("name")
        if answer is None:
            schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
            ask = ElicitRequest(params=ElicitRequestFormParams(message="What is your name?", requested_schema=schema))
            return InputRequiredResult(input_requests={"name": ask})
        content = getattr(answer, "content", None) or {}
        return f"Hello, {content.get('name', 'stranger')}!"

    @mcp.tool
    def header(name: str) -> str:
        """Return the value of an HTTP request header this server received ('' if absent)."""
        from fastmcp.server.dependencies import get_http_headers

        return get_http_headers(include_all=True).get(name.lower(), "")

    return mcp


def build_beta() -> FastMCP:
    mcp = FastMCP("upstream-beta")

    @mcp.tool
    def echo(text: str) -> str:
        """Echo the text back, prefixed with 'beta:'."""
        return "beta:" + text

    @mcp.tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    @mcp.tool
    def whoami() -> str:
        """Return the name of this upstream."""
        return "beta"

    return mcp


def build_legacy() -> FastMCP:
    mcp = FastMCP("upstream-legacy")

    @mcp.tool
    def echo(text: str) -> str:
        """Echo the text back, prefixed with 'legacy:'."""
        return "legacy:" + text

    @mcp.tool
    def reverse(text: str) -> str:
        """Return the text reversed."""
        return text[::-1]

    @mcp.tool
    async def ask(ctx: Context) -> str:
        """Ask the user's name (elicitation, a request to the client), then greet them."""
        answer = await ctx.elicit("What is your name?", response_type=str)
        return f"Hello, {getattr(answer, 'data', None) or 'stranger'}!"

    return mcp


def build_bulk() -> FastMCP:
    """250 tools `t000`..`t249`, listed in pages of 40: for merged pagination."""
    mcp = FastMCP("upstream-bulk", list_page_size=40)

    def numbered(i: int):
        def tool() -> str:
            return f"tool {i}"

        return tool

    for i in range(250):
        mcp.tool(numbered(i), name=f"t{i:03}", description=f"Tool number {i}.")
    return mcp


def build_counted() -> FastMCP:
    """alpha, counting the requests it receives by method (`counts` tells them), and able to
    announce that its tools changed (`touch_tools`): for the gateway's cache."""
    mcp = build_alpha()
    counts: dict[str, int] = {}

    class Counting(Middleware):
        async def on_request(self, context, call_next):
            counts[context.method or ""] = counts.get(context.method or "", 0) + 1
            return await call_next(context)

    mcp.add_middleware(Counting())

    @mcp.tool
    def tally() -> dict:
        """The requests this server received, by method (this call included)."""
        return dict(counts)

    @mcp.tool
    async def touch_tools(ctx: Context) -> str:
        """Announce that this server's tools changed (notifications/tools/list_changed)."""
        await ctx.send_notification(ToolListChangedNotification())
        return "announced"

    return mcp


def build_flaky() -> FastMCP:
    """Tools, a resource and a prompt for the resilience tests, meant to be served behind
    `--faults` (faults.py): `record` changes something and must not run twice; `lookup`
    declares `idempotentHint`."""
    mcp = FastMCP("upstream-flaky")

    @mcp.tool
    def record(text: str) -> str:
        """Record the text (not idempotent)."""
        return "recorded:" + text

    @mcp.tool(annotations={"idempotentHint": True})
    def lookup(key: str) -> str:
        """Look a key up (idempotent)."""
        return "found:" + key

    @mcp.tool
    async def wait(seconds: float) -> str:
        """Sleep for the given number of seconds (a request held in flight)."""
        await asyncio.sleep(seconds)
        return "waited"

    @mcp.resource("flaky://status")
    def status() -> str:
        """The server's status."""
        return "fine"

    @mcp.prompt
    def hello(name: str) -> str:
        """Say hello."""
        return f"Hello, {name}"

    return mcp


# What LLM SDKs and providers trip on (e2e/tests/local_agents.rs): one tool per schema case, each
# schema exactly as written here (a raw JSON Schema, not one FastMCP derives).
AGENT_SCHEMAS: dict[str, dict] = {
    "echo": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    # `$ref` into `$defs` (what pydantic emits for a nested model).
    "ship_order": {
        "type": "object",
        "properties": {"address": {"$ref": "#/$defs/Address"}},
        "required": ["address"],
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["city"],
            }
        },
    },
    # draft-07 `definitions` (older generators).
    "legacy_lookup": {
        "type": "object",
        "properties": {"key": {"$ref": "#/definitions/Key"}},
        "required": ["key"],
        "definitions": {"Key": {"type": "string", "minLength": 1}},
    },
    # A closed object: what zod and pydantic `extra="forbid"` emit.
    "closed_note": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    },
    # An open map: any keys, string values.
    "tag_resource": {
        "type": "object",
        "properties": {
            "resource": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["resource", "labels"],
    },
    # A string enum and an integer enum.
    "set_unit": {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "precision": {"type": "integer", "enum": [0, 1, 2]},
        },
        "required": ["unit"],
    },
    # Nullable, both ways: a type array and an `anyOf` with null.
    "update_note": {
        "type": "object",
        "properties": {
            "title": {"type": ["string", "null"]},
            "body": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["title"],
    },
    # Objects in objects, and an array of objects.
    "create_shipment": {
        "type": "object",
        "properties": {
            "sender": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
                "required": ["name", "address"],
            },
            "parcels": {
                "type": "array",
                "items": {"type": "object", "properties": {"kg": {"type": "number"}}, "required": ["kg"]},
            },
        },
        "required": ["sender", "parcels"],
    },
    # Dotted and long: `agents_` + this is 70 characters, over OpenAI's and Anthropic's 64, and
    # the dots break their character rule too (Gemini takes both).
    "billing.invoices.reconcile_outstanding_balances_for_customer_id": {
        "type": "object",
        "properties": {"customer": {"type": "string"}},
        "required": ["customer"],
    },
}
AGENTS_TOOL_COUNT = 300


class EchoingTool(Tool):
    """A tool whose input schema is given as is; its result is its name and the arguments it
    received (sorted JSON), so a test reads what reached the upstream."""

    async def run(self, arguments: dict) -> ToolResult:
        return ToolResult(content=f"{self.name}:{json.dumps(arguments, sort_keys=True, separators=(',', ':'))}")


class FailingTool(Tool):
    """A tool whose every call fails upstream (a tool error: `isError` with this text)."""

    async def run(self, arguments: dict) -> ToolResult:
        raise ToolError("the warehouse is unreachable")


def build_agents() -> FastMCP:
    """300 tools: the schema cases of AGENT_SCHEMAS (plus a long dotted name), `fail` (an
    upstream failure), then `f000`.. filler tools, for the agent SDK tests."""
    mcp = FastMCP("upstream-agents")
    for name, schema in AGENT_SCHEMAS.items():
        mcp.add_tool(EchoingTool(name=name, description=f"The {name} case.", parameters=schema))
    plain = {"type": "object", "properties": {"n": {"type": "integer"}}}
    mcp.add_tool(FailingTool(name="fail", description="Always fails upstream.", parameters=plain))
    for i in range(AGENTS_TOOL_COUNT - len(AGENT_SCHEMAS) - 1):
        mcp.add_tool(EchoingTool(name=f"f{i:03}", description=f"Filler tool {i}.", parameters=plain))
    return mcp


PROFILES = {
    "alpha": build_alpha,
    "beta": build_beta,
    "legacy": build_legacy,
    "bulk": build_bulk,
    "counted": build_counted,
    "flaky": build_flaky,
    "agents": build_agents,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES))
    parser.add_argument("--transport", choices=["http", "sse"])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--only-stateless", action="store_true",
                        help="serve only the stateless revision 2026-07-28 (refuse initialize)")
    parser.add_argument("--only-sessions", action="store_true",
                        help="serve only the session-based revisions (refuse 2026-07-28)")
    parser.add_argument("--faults", action="store_true",
                        help="count requests and fail chosen ones on demand (see faults.py)")
    parser.add_argument("--otlp-endpoint", metavar="URL",
                        help="export this server's spans over OTLP/HTTP to URL (e.g. http://127.0.0.1:4318)")
    args = parser.parse_args()
    transport = args.transport or ("sse" if args.profile == "legacy" else "http")

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"[upstream {args.profile}] %(levelname)s %(name)s: %(message)s",
    )

    export_spans(args.otlp_endpoint, f"e2e-upstream-{args.profile}")

    # host_origin_protection=False: the gateway may forward any Host header.
    app = PROFILES[args.profile]().http_app(transport=transport, host_origin_protection=False)
    if args.only_stateless:
        app = only_stateless(app)
    if args.only_sessions:
        app = only_sessions(app)
    if args.faults:
        app = faulty(app)

    serve(app, args.port)


if __name__ == "__main__":
    main()
