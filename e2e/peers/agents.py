"""Runs one agent example of examples/agents/ through an MCP route, its model scripted
(scripted_model.py): what each LLM SDK really hands its model through a route.

Usage: agents.py EXAMPLE --url URL [--header "Authorization: Bearer TOKEN"]

EXAMPLE is a file of examples/agents/ (gemini_agent.py, gemini_agent.mjs, ...). Reads
{"input": "...", "turns": [<scripted model turns>]} from stdin, starts the scripted model, and
points the example at it and at URL through the variables a user sets (MANIFOLD_URL,
MANIFOLD_TOKEN, the SDK's own key and base-URL variables). A Python example is imported by path
and its `run(prompt)` awaited; a JavaScript one runs under Node 22 (e2e/peers/node), the prompt
as its argument. Prints one JSON object:

  {"final": <the example's answer>, "offered": [[tool names offered to the model], one list per
   request], "tool_results": [<tool results handed to the model in the last request>],
   "requests": <model requests>, "refusals": [<requests the model refused, as answered>]}

When the example raises (the SDK turned something into an exception instead of a tool result),
"final" is replaced by "raised": "<type>: <message>" and the process still exits 0: that is an
outcome the tests assert on, not a failure of this driver.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

from scripted_model import ScriptedModel

# This file's folder goes off the import path once the model is imported: its name, agents.py,
# would shadow the OpenAI Agents SDK's package `agents` in the examples.
sys.path.remove(str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "agents"
NODE_PEERS = REPO / "e2e" / "peers" / "node"

# The provider each example's SDK talks to, by file name prefix.
PROVIDERS = {"gemini": "gemini", "anthropic": "anthropic", "openai": "openai", "pydantic_ai": "openai"}
KEY_VARIABLES = {"openai": "OPENAI", "anthropic": "ANTHROPIC", "gemini": "GEMINI"}


def provider_of(example: str) -> str:
    for prefix, provider in PROVIDERS.items():
        if example.startswith(prefix):
            return provider
    raise SystemExit(f"agents.py: no provider known for example `{example}` (prefixes: {', '.join(PROVIDERS)})")


def route_token(headers: list[str]) -> str | None:
    """The bearer token of `--header "Authorization: Bearer X"`, the one header the examples
    send (MANIFOLD_TOKEN)."""
    token = None
    for header in headers:
        name, _, value = header.partition(": ")
        if name.lower() != "authorization" or not value.startswith("Bearer "):
            raise SystemExit(f"agents.py: the examples send only `Authorization: Bearer`, not `{header}`")
        token = value.removeprefix("Bearer ")
    return token


def offered_in(request: dict) -> list[str]:
    """The tool names a model request offered, in order, whatever the API."""
    tools = request["body"].get("tools") or []
    if request["api"] == "gemini":
        return [d["name"] for tool in tools for d in tool.get("functionDeclarations") or []]
    if request["api"] == "chat":
        return [t["function"]["name"] for t in tools if t.get("type") == "function"]
    return [t["name"] for t in tools if "name" in t]


def innermost(error: BaseException) -> BaseException:
    """The exception a task group wrapped (anyio's ExceptionGroup of one), else `error`."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def run_python(path: Path, prompt: str) -> dict:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader, f"{path} is a Python module"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return {"final": await module.run(prompt)}
    except Exception as exc:  # the outcome under test: what did the SDK raise?
        traceback.print_exc()  # to stderr, for whoever reads a failed test
        error = innermost(exc)
        return {"raised": f"{type(error).__name__}: {error}"}


def run_node(path: Path, prompt: str) -> dict:
    node = NODE_PEERS / "node_modules" / ".bin" / "node"
    hook = NODE_PEERS / "resolve_from_peers.mjs"
    done = subprocess.run(
        [str(node), "--import", str(hook), str(path), prompt], capture_output=True, text=True, timeout=100
    )
    if done.returncode != 0:
        # The example prints `<name>: <message>` of what it raised as its last line.
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        sys.stderr.write(done.stderr)
        return {"raised": lines[-1]}
    return {"final": done.stdout.removesuffix("\n")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("example", help="a file of examples/agents/")
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    path = EXAMPLES / args.example
    if not path.is_file():
        raise SystemExit(f"agents.py: no example {path}")
    provider = provider_of(args.example)
    token = route_token(args.header)
    script = json.load(sys.stdin)

    model = ScriptedModel(script["turns"])
    try:
        os.environ["MANIFOLD_URL"] = args.url
        if token:
            os.environ["MANIFOLD_TOKEN"] = token
        variable = KEY_VARIABLES[provider]
        os.environ[f"{variable}_API_KEY"] = "scripted"
        os.environ[f"{variable}_BASE_URL"] = model.url(provider)
        if path.suffix == ".mjs":
            outcome = run_node(path, script["input"])
        else:
            outcome = asyncio.run(run_python(path, script["input"]))
        outcome |= {
            "offered": [offered_in(request) for request in model.requests],
            "tool_results": model.tool_results(),
            "requests": len(model.requests),
            "refusals": model.refusals,
        }
    finally:
        model.close()
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
