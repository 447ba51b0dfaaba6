"""Faults on demand for the resilience tests: an ASGI gate in front of an MCP app that counts
every JSON-RPC request it receives (by method, and `tools/call:<name>` per tool) and answers
chosen ones with an HTTP error after reading them, as a server that fails after receiving a
request does.

Control, on the same port:
  POST /_faults  {"method": "tools/list", "name": null, "status": 503, "retryAfter": "1",
                  "times": 2}   the next `times` matching requests get `status` (default
                                forever when `times` is absent); a list replaces the rules
  GET  /_counts                 {"tools/list": 3, "tools/call": 1, "tools/call:record": 1}
"""

from __future__ import annotations

import json
from collections import Counter


def faulty(app):
    counts: Counter[str] = Counter()
    rules: list[dict] = []

    async def respond(send, status: int, body: bytes, headers=()):
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def gate(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path == "/_counts":
            return await respond(send, 200, json.dumps(counts).encode())
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if path == "/_faults":
            given = json.loads(body)
            rules[:] = given if isinstance(given, list) else [given]
            return await respond(send, 200, b"{}")
        if method == "POST":
            try:
                request = json.loads(body)
            except ValueError:
                request = None
            if isinstance(request, dict) and "method" in request and "id" in request:
                rpc = request["method"]
                name = (request.get("params") or {}).get("name")
                counts[rpc] += 1
                if rpc == "tools/call":
                    counts[f"tools/call:{name}"] += 1
                for rule in rules:
                    if rule.get("method") == rpc and rule.get("name") in (None, name) and rule.get("times", 1) != 0:
                        if "times" in rule:
                            rule["times"] -= 1
                        headers = [(b"retry-after", rule["retryAfter"].encode())] if "retryAfter" in rule else []
                        return await respond(send, rule.get("status", 500), b'{"error":"injected fault"}', headers)

        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return gate
