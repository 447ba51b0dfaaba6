"""What the peer servers share: serving an ASGI app on 127.0.0.1 that announces
`LISTENING <port>` on stdout once it accepts connections, and gates that make a dual-era
server answer as a server of one protocol era only."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

LEGACY_VERSIONS = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}


def only_stateless(app):
    """The app as a server of the stateless revision (2026-07-28) only: a request without
    that revision's protocol header (`initialize`, a session's GET or DELETE) gets what a
    modern-only server answers, 404 with JSON-RPC -32601 (405 for GET and DELETE)."""

    async def gate(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            version = headers.get(b"mcp-protocol-version", b"").decode()
            if not version or version in LEGACY_VERSIONS:
                status, body = (405, b"") if scope["method"] in ("GET", "DELETE") else (
                    404,
                    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found"}}',
                )
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return gate


def only_sessions(app):
    """The app as a server of the session-based revisions only, as servers before
    2026-07-28 are: a request with the stateless revision's protocol header gets 400."""

    async def gate(scope, receive, send):
        if scope["type"] == "http":
            version = dict(scope["headers"]).get(b"mcp-protocol-version", b"").decode()
            if version and version not in LEGACY_VERSIONS:
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body":
                            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Unsupported protocol version"}}'})
                return
        await app(scope, receive, send)

    return gate


class AnnouncingServer(uvicorn.Server):
    """uvicorn server that prints `LISTENING <port>` once it is serving."""

    def __init__(self, config: uvicorn.Config, port: int) -> None:
        super().__init__(config)
        self.announce_port = port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(f"LISTENING {self.announce_port}", flush=True)


def serve(app, port: int) -> None:
    """Serves `app` on 127.0.0.1:`port` (0: a free one) until killed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]

    # log_config=None keeps uvicorn off stdout (its default access log writes there).
    config = uvicorn.Config(app, lifespan="on", log_config=None, timeout_graceful_shutdown=2)
    asyncio.run(AnnouncingServer(config, port).serve(sockets=[sock]))
