"""An agent built with the OpenAI Agents SDK whose tools are a Manifold route: the SDK's own MCP
client (`MCPServerStreamableHttp`) lists and calls the route's tools.

Run it against OpenAI:

    MANIFOLD_URL=https://mcp.example.com/acme/tools/mcp MANIFOLD_TOKEN=<route key or JWT> \
    OPENAI_API_KEY=<key> python openai_agents_agent.py "What is the weather in Oslo?"

OPENAI_BASE_URL points it at another endpoint (Chat Completions), OPENAI_MODEL picks the model.
Watch for: the SDK's strict-schema conversion is off by default and falls back to non-strict
silently; OpenAI's tool-name rule applies (set `spec.compatibility: [openai]` on the route);
Chat Completions takes at most 128 tools a request.
"""

from __future__ import annotations

import asyncio
import os
import sys

from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from agents.mcp import MCPServerStreamableHttp
from openai import AsyncOpenAI


def route_headers() -> dict[str, str]:
    token = os.environ.get("MANIFOLD_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


async def run(prompt: str) -> str:
    # The SDK exports traces to OpenAI's platform with the key it finds; another endpoint's key
    # (OPENAI_BASE_URL set) would be refused there, so tracing is on only against OpenAI itself.
    set_tracing_disabled("OPENAI_BASE_URL" in os.environ)
    model = OpenAIChatCompletionsModel(
        model=os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"), openai_client=AsyncOpenAI()
    )
    async with MCPServerStreamableHttp(
        params={"url": os.environ["MANIFOLD_URL"], "headers": route_headers()}, name="manifold"
    ) as route:
        agent = Agent(name="assistant", instructions="Use the tools.", mcp_servers=[route], model=model)
        result = await Runner.run(agent, prompt)
        return str(result.final_output)


def main() -> None:
    print(asyncio.run(run(" ".join(sys.argv[1:]) or "Which tools do you have?")))


if __name__ == "__main__":
    main()
