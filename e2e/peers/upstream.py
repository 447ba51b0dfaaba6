"""FastMCP upstream server for Manifold's end-to-end tests.

Usage: upstream.py --profile alpha|beta|legacy|bulk [--transport http|sse]

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
from fastmcp import FastMCP
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
    args = parser.parse_args()
    transport = args.transport or ("sse" if args.profile == "legacy" else "http")

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"[upstream {args.profile}] %(levelname)s %(name)s: %(message)s",
    )

    # host_origin_protection=False: the gateway may forward any Host header.
    app = PROFILES[args.profile]().http_app(transport=transport, host_origin_protection=False)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]

    # log_config=None keeps uvicorn off stdout (its default access log writes there).
    config = uvicorn.Config(app, lifespan="on", log_config=None, timeout_graceful_shutdown=2)
    asyncio.run(AnnouncingServer(config, port).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
