"""A Gemini agent whose tools are a Manifold route: google-genai calls the route's tools itself
(automatic function calling) through an `mcp` ClientSession passed as a tool.

Run it against Gemini:

    MANIFOLD_URL=https://mcp.example.com/acme/tools/mcp MANIFOLD_TOKEN=<route key or JWT> \
    GEMINI_API_KEY=<key> python gemini_agent.py "What is the weather in Oslo?"

GEMINI_BASE_URL points it at another endpoint, GEMINI_MODEL picks the model.
Watch for: google-genai reads only the first page of `tools/list`, and rejects the whole request
when a tool's input schema has a boolean `additionalProperties` (set `spec.compatibility` on the
route to get schemas Gemini takes).
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx2
from google import genai
from google.genai import types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def route_headers() -> dict[str, str]:
    token = os.environ.get("MANIFOLD_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


async def run(prompt: str) -> str:
    base_url = os.environ.get("GEMINI_BASE_URL")
    client = genai.Client(
        api_key=os.environ["GEMINI_API_KEY"],
        http_options=types.HttpOptions(base_url=base_url) if base_url else None,
    )
    async with (
        httpx2.AsyncClient(headers=route_headers()) as http,
        streamable_http_client(os.environ["MANIFOLD_URL"], http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        # A dict config: the SDK deep-copies a GenerateContentConfig, and a session cannot be copied.
        response = await client.aio.models.generate_content(
            model=os.environ.get("GEMINI_MODEL", "gemini-2.5-flash"),
            contents=prompt,
            config={"tools": [session]},
        )
        return response.text or ""


def main() -> None:
    print(asyncio.run(run(" ".join(sys.argv[1:]) or "Which tools do you have?")))


if __name__ == "__main__":
    main()
