"""An OpenAI agent (Chat Completions) whose tools are a Manifold route: the tools are built
from the route's `tools/list`, and the agent loop calls each tool the model asks for with
`session.call_tool`.

Run it against OpenAI:

    MANIFOLD_URL=https://mcp.example.com/acme/tools/mcp MANIFOLD_TOKEN=<route key or JWT> \
    OPENAI_API_KEY=<key> python openai_chat_agent.py "What is the weather in Oslo?"

OPENAI_BASE_URL points it at another endpoint, OPENAI_MODEL picks the model.
Watch for: OpenAI takes tool names matching `^[a-zA-Z0-9_-]{1,64}$`, and a route's prefixed
names can break it (set `spec.compatibility: [openai]` on the route). Chat Completions takes at
most 128 tools a request: narrow the route (a mount's `tools`) or use the Responses API
(openai_responses_agent.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx2
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PaginatedRequestParams
from openai import AsyncOpenAI

MAX_TURNS = 10


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


async def call_tool(session: ClientSession, name: str, arguments: str) -> str:
    """What the model reads of a tool call: the result's text parts (or its structured content),
    marked when the tool failed, or why the route refused the call (a denied tool), so the
    model can go on."""
    try:
        result = await session.call_tool(name, json.loads(arguments or "{}"))
    except MCPError as refused:
        return f"error: {refused}"
    texts = [block.text for block in result.content if block.type == "text"]
    text = "\n".join(texts) if texts else json.dumps(result.structured_content)
    # A failed tool says so, or the model may take the error text for the answer.
    return f"error: {text}" if result.is_error else text


async def run(prompt: str) -> str:
    client = AsyncOpenAI()  # OPENAI_API_KEY, OPENAI_BASE_URL
    model = os.environ.get("OPENAI_MODEL", "gpt-4.1-mini")
    async with (
        httpx2.AsyncClient(headers=route_headers()) as http,
        streamable_http_client(os.environ["MANIFOLD_URL"], http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description or "", "parameters": t.input_schema},
            }
            for t in await list_all_tools(session)
        ]
        messages: list[dict] = [{"role": "user", "content": prompt}]
        for _ in range(MAX_TURNS):
            response = await client.chat.completions.create(model=model, messages=messages, tools=tools)
            message = response.choices[0].message
            if not message.tool_calls:
                return message.content or ""
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                content = await call_tool(session, call.function.name, call.function.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        raise RuntimeError(f"no final answer after {MAX_TURNS} turns")


def main() -> None:
    print(asyncio.run(run(" ".join(sys.argv[1:]) or "Which tools do you have?")))


if __name__ == "__main__":
    main()
