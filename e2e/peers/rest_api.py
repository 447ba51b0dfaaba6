"""Real REST apps (FastAPI, served by uvicorn) whose generated `/openapi.json` Manifold mounts
as OpenAPI sub-servers. Prints `LISTENING <port>` once it accepts connections.

Apps:
- `items`: the reference guide's example (GET /items/{item_id}, POST /items with a Pydantic
  body) and /admin paths for a route map to exclude.
- `kitchen`: what real APIs also do (query styles, a header parameter, a form body, text and
  binary responses, redirects, failures, an oversized response).
- `orders`: a second API for multi-API routes.

With --otlp-endpoint URL, each request gets an HTTP SERVER span (OpenTelemetry's FastAPI
instrumentation), its parent read from the `traceparent` header, exported over OTLP/HTTP as
service `e2e-rest-<app>` (tracing.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Annotated

from fastapi import FastAPI, Form, Header, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from pydantic import BaseModel

from serving import serve
from tracing import export_spans


class Item(BaseModel):
    name: str
    price: float
    description: str | None = None


def items_app() -> FastAPI:
    """The guide's example, as written there, plus admin paths a route map excludes."""
    app = FastAPI(title="Items API", version="1.0.0")
    items: dict[int, Item] = {1: Item(name="Example Item", price=9.5)}

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict:
        if item_id not in items:
            raise HTTPException(status_code=404, detail=f"no item {item_id}")
        return {"item_id": item_id, **items[item_id].model_dump()}

    @app.post("/items")
    async def create_item(item: Item) -> dict:
        item_id = max(items) + 1
        items[item_id] = item
        return {"status": "created", "item_id": item_id, "item": item.model_dump()}

    @app.get("/admin/users", tags=["admin"])
    async def admin_users() -> list[str]:
        return ["root"]

    @app.delete("/admin/items/{item_id}", tags=["admin"])
    async def admin_delete(item_id: int) -> dict:
        items.pop(item_id, None)
        return {"deleted": item_id}

    return app


def kitchen_app() -> FastAPI:
    """Everything else a real API does: query styles, headers, forms, text and binary
    responses, redirects, failures."""
    app = FastAPI(title="Kitchen API", version="1.0.0")

    @app.get("/search", operation_id="search", summary="Search by name")
    async def search(
        q: str,
        tags: Annotated[list[str] | None, Query()] = None,
        limit: int = 10,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> dict:
        return {"q": q, "tags": tags or [], "limit": limit, "request_id": x_request_id}

    @app.get("/whoami", operation_id="whoami", summary="What credentials arrived")
    async def whoami(request: Request) -> dict:
        return {
            "authorization": request.headers.get("authorization"),
            "x_api_key": request.headers.get("x-api-key"),
            "x_tenant": request.headers.get("x-tenant"),
            "query": dict(request.query_params),
        }

    @app.get("/trace", operation_id="trace", summary="What trace context arrived")
    async def trace(request: Request) -> dict:
        return {"traceparent": request.headers.get("traceparent")}

    @app.get("/files/{name}", operation_id="get_file", summary="A path parameter that needs encoding")
    async def get_file(name: str) -> dict:
        return {"name": name}

    @app.post("/login", operation_id="login", summary="Form login")
    async def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> dict:
        return {"user": username, "password_length": len(password)}

    @app.get("/readme", operation_id="readme", response_class=PlainTextResponse, summary="Plain text")
    async def readme() -> str:
        return "Kitchen API: see /docs"

    @app.get("/logo", operation_id="logo", summary="A binary image")
    async def logo() -> Response:
        return Response(content=bytes([0x89, 0x50, 0x4E, 0x47, 0x00, 0xFF]), media_type="image/png")

    @app.get("/moved", operation_id="moved", summary="Redirects within the API")
    async def moved() -> RedirectResponse:
        return RedirectResponse(url="/readme")

    @app.get("/elsewhere", operation_id="elsewhere", summary="Redirects to another host")
    async def elsewhere() -> RedirectResponse:
        return RedirectResponse(url="http://example.invalid/steal")

    @app.get("/broken", operation_id="broken", summary="Fails")
    async def broken() -> dict:
        raise HTTPException(status_code=503, detail="the kitchen is closed")

    @app.get("/huge", operation_id="huge", response_class=PlainTextResponse, summary="Too big to read")
    async def huge() -> str:
        return "x" * (11 * 1024 * 1024)

    return app


class Order(BaseModel):
    item_id: int
    quantity: int = 1


def orders_app() -> FastAPI:
    app = FastAPI(title="Orders API", version="1.0.0")
    orders: list[Order] = []

    @app.post("/orders", operation_id="place_order", summary="Place an order")
    async def place(order: Order) -> dict:
        orders.append(order)
        return {"order_id": len(orders), "order": order.model_dump()}

    @app.get("/orders", operation_id="list_orders", summary="List orders")
    async def list_orders() -> list[dict]:
        return [{"order_id": i + 1, **o.model_dump()} for i, o in enumerate(orders)]

    return app


APPS = {"items": items_app, "kitchen": kitchen_app, "orders": orders_app}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, choices=sorted(APPS))
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--otlp-endpoint", metavar="URL",
                        help="export a span per request over OTLP/HTTP to URL (e.g. http://127.0.0.1:4318)")
    args = parser.parse_args()
    print(f"[rest {args.app}] starting", file=sys.stderr)
    app = APPS[args.app]()
    provider = export_spans(args.otlp_endpoint, f"e2e-rest-{args.app}")
    if provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # One SERVER span per request: the ASGI receive/send spans under it say nothing here.
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["receive", "send"])
    serve(app, args.port)


if __name__ == "__main__":
    main()
