"""An agent built with the OpenAI Agents SDK, its tools coming from an MCP route, its model
a scripted one (scripted_model.py): what an agent really receives through a route.

Usage: agent.py --url URL [--header "Name: value" ...]

Reads {"input": "...", "turns": [<scripted model turns>]} from stdin, runs the agent once
(Chat Completions model; the SDK's own MCP client, `MCPServerStreamableHttp`, talks to URL)
and prints one JSON object:

  {"final": <the agent's final output>, "tool_results": [<each tool result as the SDK
   handed it to the model, in order>], "model_requests": <int>}

If the run raises (the SDK turned something into an exception instead of a tool result),
it prints {"raised": "<type>: <message>", "tool_results": [...]} and exits 0: that is an
outcome the tests assert on, not a failure of this driver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from agents.mcp import MCPServerStreamableHttp
from openai import AsyncOpenAI

from scripted_model import ScriptedModel


async def run(url: str, headers: dict[str, str], script: dict) -> dict:
    model = ScriptedModel(script["turns"])
    try:
        client = AsyncOpenAI(base_url=model.base_url, api_key="scripted", max_retries=0)
        async with MCPServerStreamableHttp(params={"url": url, "headers": headers}, name="route") as route:
            agent = Agent(
                name="assistant",
                instructions="Use the tools.",
                mcp_servers=[route],
                model=OpenAIChatCompletionsModel(model="scripted", openai_client=client),
            )
            try:
                result = await Runner.run(agent, script["input"], max_turns=len(script["turns"]) + 1)
            except Exception as exc:  # the outcome under test: what did the SDK raise?
                return {"raised": f"{type(exc).__name__}: {exc}", "tool_results": model.tool_results()}
            return {
                "final": result.final_output,
                "tool_results": model.tool_results(),
                "model_requests": len(model.requests),
            }
    finally:
        model.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    # Or the SDK exports traces to OpenAI's API, which is not reachable here.
    set_tracing_disabled(True)
    out = asyncio.run(run(args.url, headers, json.load(sys.stdin)))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
