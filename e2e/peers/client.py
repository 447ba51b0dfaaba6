"""Downstream MCP client driver for Manifold's end-to-end tests.

Usage: client.py --url URL --sdk mcp|fastmcp [--mode auto|legacy] [--timeout SECONDS]

Reads a JSON array of operations from stdin, runs them in order in ONE MCP
session (Streamable HTTP) against URL, and prints one JSON object per
operation to stdout, one per line, flushed:

  {"op": "list_tools"}                          -> {"tools": [<Tool as received>]}
  {"op": "call", "name": N, "arguments": {...}} -> {"isError": b, "content": [...], "structuredContent": x|null}
  {"op": "ping"}                                -> {"ok": true}

A JSON-RPC error answer prints {"error": {"code": <int>, "message": ...}}; any
other exception inside one operation prints {"error": {"code": null, ...}} and
the run continues. If connecting or initializing fails it prints
{"fatal": "<message>"} and exits 1.

--sdk mcp uses the official SDK's streamable_http_client + ClientSession (the
initialize handshake). --sdk fastmcp uses fastmcp.Client, whose default
--mode auto first probes `server/discover` (2026-07-28 era) and falls back to
the initialize handshake; --mode legacy skips the probe.
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


class McpSdk:
    """Official `mcp` SDK: streamable_http_client + ClientSession."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout

    async def connect(self, stack: contextlib.AsyncExitStack) -> None:
        read, write = await stack.enter_async_context(streamable_http_client(self.url))
        session = ClientSession(read, write, read_timeout_seconds=self.timeout)
        self.session = await stack.enter_async_context(session)
        await self.session.initialize()

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
    try:
        kind = op.get("op")
        if kind == "list_tools":
            return {"tools": [dump(t) for t in await sdk.list_tools()]}
        if kind == "call":
            return await sdk.call(op["name"], op.get("arguments") or {})
        if kind == "ping":
            await sdk.ping()
            return {"ok": True}
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
    args = parser.parse_args()

    try:
        ops = json.load(sys.stdin)
        if not isinstance(ops, list):
            raise ValueError("stdin must be a JSON array of operations")
    except ValueError as e:
        emit({"fatal": f"bad input: {e}"})
        return 1

    if args.sdk == "mcp":
        sdk: McpSdk | FastMcpSdk = McpSdk(args.url, args.timeout)
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
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
