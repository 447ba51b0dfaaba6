"""A Claude agent whose tools are a Manifold route: anthropic's MCP helpers turn each of the
route's tools into a runnable tool (`async_mcp_tool`), and the beta tool runner calls them
until Claude answers.

Run it against Anthropic:

    MANIFOLD_URL=https://mcp.example.com/acme/tools/mcp MANIFOLD_TOKEN=<route key or JWT> \
    ANTHROPIC_API_KEY=<key> python anthropic_agent.py "What is the weather in Oslo?"

ANTHROPIC_BASE_URL points it at another endpoint, ANTHROPIC_MODEL picks the model.
Watch for: the helpers turn `resource_link` and `audio` results into errors; Anthropic's
tool-name rule is OpenAI's (set `spec.compatibility: [anthropic]` on the route).
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx2
from anthropic import AsyncAnthropic
from anthropic.lib.tools.mcp import async_mcp_tool
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PaginatedRequestParams


def route_headers() -> dict[str, str]:
    token = os.environ.get("MANIFOLD_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


async def list_all_tools(session: ClientSession) -> list:
    """Every page of the route's tools."""
    tools, cursor = [], None
    while True:
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


async def run(prompt: str) -> str:
    client = AsyncAnthropic()  # ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
    async with (
        httpx2.AsyncClient(headers=route_headers()) as http,
        streamable_http_client(os.environ["MANIFOLD_URL"], http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        runner = client.beta.messages.tool_runner(
            model=os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-5"),
            max_tokens=1024,
            tools=[async_mcp_tool(tool, session) for tool in await list_all_tools(session)],
            messages=[{"role": "user", "content": prompt}],
            # Each request carries the whole conversation (not a server-side thread), so any
            # Messages API endpoint serves it.
            thread=False,
        )
        final = await runner.until_done()
        return "".join(block.text for block in final.content if block.type == "text")


def main() -> None:
    print(asyncio.run(run(" ".join(sys.argv[1:]) or "Which tools do you have?")))


if __name__ == "__main__":
    main()
