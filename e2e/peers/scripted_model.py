"""A scripted model server: what an LLM SDK talks to in the end-to-end tests, where no model
API is reachable.

It speaks OpenAI's Chat Completions (`POST /v1/chat/completions`) and plays a script, one
turn per request: a turn is either a tool call, {"tool": NAME, "arguments": {...}}, or a
final answer, {"text": "..."}. Like a real provider, it refuses (HTTP 400, provider-shaped
error) a request whose turn names a tool the request did not offer, or a tool name the
provider would not accept, so a route's tool names are checked as the model sees them.

Every request body is kept (`requests`), so a test can read exactly what the SDK handed the
model: the tool results are the `role: "tool"` messages.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# OpenAI's rule for function names.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ScriptedModel:
    """Serves `turns` on a free loopback port from a background thread."""

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = model.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        self._server.shutdown()

    def tool_results(self) -> list[str]:
        """The tool results the model was handed, in order, as the SDK wrote them."""
        seen: list[str] = []
        last = self.requests[-1]["messages"] if self.requests else []
        for message in last:
            if message.get("role") == "tool":
                content = message.get("content")
                seen.append(content if isinstance(content, str) else json.dumps(content))
        return seen

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path.rstrip("/") != "/v1/chat/completions":
            return 404, error(f"no such endpoint: {path}")
        with self._lock:
            self.requests.append(body)
            turn_number = len(self.requests)
            if not self.turns:
                return 500, error(f"the script has no turn {turn_number}")
            turn = self.turns.pop(0)
        offered = {t["function"]["name"] for t in body.get("tools", []) if t.get("type") == "function"}
        for name in offered:
            if not TOOL_NAME.match(name):
                return 400, error(f"Invalid 'tools[].function.name': '{name}' does not match ^[a-zA-Z0-9_-]{{1,64}}$")
        if "tool" in turn:
            if turn["tool"] not in offered:
                return 400, error(f"turn {turn_number} calls `{turn['tool']}`, not offered: {sorted(offered)}")
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{turn_number}",
                        "type": "function",
                        "function": {"name": turn["tool"], "arguments": json.dumps(turn.get("arguments", {}))},
                    }
                ],
            }
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": turn["text"]}
            finish = "stop"
        return 200, {
            "id": f"chatcmpl-{turn_number}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


def error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
