"""A pydantic-ai agent whose tools are a Manifold route: `MCPToolset` (on FastMCP's client)
lists and calls the route's tools; the model is OpenAI's (Chat Completions).

Run it against OpenAI:

    MANIFOLD_URL=https://mcp.example.com/acme/tools/mcp MANIFOLD_TOKEN=<route key or JWT> \
    OPENAI_API_KEY=<key> python pydantic_ai_agent.py "What is the weather in Oslo?"

OPENAI_BASE_URL points it at another endpoint, OPENAI_MODEL picks the model.
Watch for: OpenAI's tool-name rule (set `spec.compatibility: [openai]` on the route), and Chat
Completions takes at most 128 tools a request.
"""

from __future__ import annotations

import asyncio
import os
import sys

from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider


def route_headers() -> dict[str, str]:
    token = os.environ.get("MANIFOLD_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


async def run(prompt: str) -> str:
    route = MCPToolset(Client(StreamableHttpTransport(os.environ["MANIFOLD_URL"], headers=route_headers())))
    model = OpenAIChatModel(os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"), provider=OpenAIProvider())
    agent = Agent(model, toolsets=[route], instructions="Use the tools.")
    async with agent:
        result = await agent.run(prompt)
    return result.output


def main() -> None:
    print(asyncio.run(run(" ".join(sys.argv[1:]) or "Which tools do you have?")))


if __name__ == "__main__":
    main()
