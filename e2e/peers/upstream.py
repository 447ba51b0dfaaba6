"""FastMCP upstream server for Manifold's end-to-end tests.

Usage: upstream.py --profile alpha|beta|legacy|bulk [--transport http|sse]
                   [--only-stateless | --only-sessions] [--port N]

The script binds 127.0.0.1 on a free port itself, prints exactly one line
`LISTENING <port>` to stdout once uvicorn accepts connections, then serves
until killed. MCP requests from the gateway (or a test client) flow in over
Streamable HTTP at /mcp (default for alpha/beta) or legacy SSE at /sse with
messages POSTed to /messages/?session_id=... (default for legacy); tool results
flow back the same way. All logging goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys

import uvicorn
from fastmcp import Context, FastMCP
from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult
from fastmcp.exceptions import ToolError


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


PROFILES = {"alpha": build_alpha, "beta": build_beta, "legacy": build_legacy, "bulk": build_bulk}


LEGACY_VERSIONS = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}


def only_stateless(app):
    """The app as a server of the stateless revision (2026-07-28) only: a request without
    that revision's protocol header (`initialize`, a session's GET or DELETE) gets what a
    modern-only server answers, 404 with JSON-RPC -32601 (405 for GET and DELETE)."""

    async def gate(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            version = headers.get(b"mcp-protocol-version", b"").decode()
            if not version or version in LEGACY_VERSIONS:
                status, body = (405, b"") if scope["method"] in ("GET", "DELETE") else (
                    404,
                    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found"}}',
                )
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return gate


def only_sessions(app):
    """The app as a server of the session-based revisions only, as servers before
    2026-07-28 are: a request with the stateless revision's protocol header gets 400."""

    async def gate(scope, receive, send):
        if scope["type"] == "http":
            version = dict(scope["headers"]).get(b"mcp-protocol-version", b"").decode()
            if version and version not in LEGACY_VERSIONS:
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body":
                            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Unsupported protocol version"}}'})
                return
        await app(scope, receive, send)

    return gate


class AnnouncingServer(uvicorn.Server):
    """uvicorn server that prints `LISTENING <port>` once it is serving."""

    def __init__(self, config: uvicorn.Config, port: int) -> None:
        super().__init__(config)
        self.announce_port = port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(f"LISTENING {self.announce_port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES))
    parser.add_argument("--transport", choices=["http", "sse"])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--only-stateless", action="store_true",
                        help="serve only the stateless revision 2026-07-28 (refuse initialize)")
    parser.add_argument("--only-sessions", action="store_true",
                        help="serve only the session-based revisions (refuse 2026-07-28)")
    args = parser.parse_args()
    transport = args.transport or ("sse" if args.profile == "legacy" else "http")

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"[upstream {args.profile}] %(levelname)s %(name)s: %(message)s",
    )

    # host_origin_protection=False: the gateway may forward any Host header.
    app = PROFILES[args.profile]().http_app(transport=transport, host_origin_protection=False)
    if args.only_stateless:
        app = only_stateless(app)
    if args.only_sessions:
        app = only_sessions(app)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]

    # log_config=None keeps uvicorn off stdout (its default access log writes there).
    config = uvicorn.Config(app, lifespan="on", log_config=None, timeout_graceful_shutdown=2)
    asyncio.run(AnnouncingServer(config, port).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
