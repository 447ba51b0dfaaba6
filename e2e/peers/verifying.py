"""Upstreams that demand a bearer token and verify it, the way real resource servers do, for
the outbound identity tests: whatever credential the gateway sends must pass a real verifier.
Prints `LISTENING <port>` once it accepts connections.

Apps (`--app`):
- `mcp`: a FastMCP server whose `auth` is FastMCP's own `JWTVerifier`; its tool `whoami`
  returns the verified token's claims as JSON text. A request without a valid token gets
  FastMCP's 401 (with `WWW-Authenticate: Bearer`).
- `api`: a FastAPI app verifying `Authorization: Bearer` with PyJWT (keys from `PyJWKClient`
  for `--jwks-uri`); `GET /whoami` (operation `whoami`) returns the claims, anything else gets
  401 with `WWW-Authenticate: Bearer error="invalid_token"`. Its OpenAPI document is at
  `/openapi.json`.

The key is one of `--jwks-uri URL` (RS256/ES256 by the token's `kid`), `--public-key-file PEM`
(with `--algorithm RS256|ES256`) or `--hs256-secret-file FILE` (the file's bytes are the secret).
`--issuer` and `--audience` are checked when given. Both apps answer `GET /stats` with
`{"accepted": n, "refused": n}`: the requests whose token was accepted and refused.
"""

# No `from __future__ import annotations`: FastAPI must evaluate the dependency annotations,
# which name locals of api_app.
import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

from serving import serve


class Stats:
    """Counts of requests by verdict (the app is single-threaded: plain ints suffice)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.refused = 0

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "refused": self.refused}


def mcp_app(args: argparse.Namespace, stats: Stats):
    from fastmcp import FastMCP
    from fastmcp.server.auth.providers.jwt import JWTVerifier
    from fastmcp.server.dependencies import get_access_token
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    if args.hs256_secret_file:
        verifier = JWTVerifier(public_key=Path(args.hs256_secret_file).read_bytes(), algorithm="HS256",
                               issuer=args.issuer, audience=args.audience)
    elif args.public_key_file:
        verifier = JWTVerifier(public_key=Path(args.public_key_file).read_text(), algorithm=args.algorithm,
                               issuer=args.issuer, audience=args.audience)
    else:
        verifier = JWTVerifier(jwks_uri=args.jwks_uri, algorithm=args.algorithm,
                               issuer=args.issuer, audience=args.audience)

    server = FastMCP("verifying", auth=verifier)

    @server.tool
    def whoami() -> str:
        """The claims of the token this request carried, as JSON."""
        token = get_access_token()
        return json.dumps(token.claims if token else None, sort_keys=True)

    @server.custom_route("/stats", methods=["GET"])
    async def stats_route(_: Request) -> JSONResponse:
        return JSONResponse(stats.as_dict())

    app = server.http_app(transport="http", host_origin_protection=False)

    async def counting(scope, receive, send):
        """Counts `/mcp` requests: a 401 is a refused token, anything else an accepted one."""
        if scope["type"] != "http" or not scope["path"].startswith("/mcp"):
            await app(scope, receive, send)
            return

        async def watch(message):
            if message["type"] == "http.response.start":
                if message["status"] == 401:
                    stats.refused += 1
                else:
                    stats.accepted += 1
            await send(message)

        await app(scope, receive, watch)

    return counting


def api_app(args: argparse.Namespace, stats: Stats):
    import jwt
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    if args.hs256_secret_file:
        fixed_key: Any = Path(args.hs256_secret_file).read_bytes()
        algorithms = ["HS256"]
        jwks = None
    elif args.public_key_file:
        fixed_key = Path(args.public_key_file).read_text()
        algorithms = [args.algorithm]
        jwks = None
    else:
        fixed_key = None
        algorithms = ["RS256", "ES256"] if args.algorithm is None else [args.algorithm]
        jwks = jwt.PyJWKClient(args.jwks_uri, cache_keys=True)

    bearer = HTTPBearer(auto_error=False)

    def refuse(why: str) -> HTTPException:
        stats.refused += 1
        return HTTPException(
            status_code=401,
            detail=why,
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{why}"'},
        )

    def claims(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> dict:
        if credentials is None:
            stats.refused += 1
            raise HTTPException(status_code=401, detail="no bearer token", headers={"WWW-Authenticate": "Bearer"})
        token = credentials.credentials
        try:
            key = jwks.get_signing_key_from_jwt(token).key if jwks else fixed_key
            verified = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=args.issuer,
                audience=args.audience,
                options={"require": ["exp"], "verify_aud": args.audience is not None},
            )
        except jwt.PyJWTError as error:
            raise refuse(type(error).__name__) from None
        stats.accepted += 1
        return verified

    app = FastAPI(title="Verifying API", version="1.0.0")

    @app.get("/whoami", operation_id="whoami", summary="The claims of the verified bearer token")
    async def whoami(verified: Annotated[dict, Depends(claims)]) -> dict:
        return verified

    @app.get("/stats", include_in_schema=False)
    async def stats_route() -> dict:
        return stats.as_dict()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, choices=["mcp", "api"])
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--jwks-uri", metavar="URL", help="verify with the keys of this JWKS")
    key.add_argument("--public-key-file", metavar="PEM", help="verify with this public key")
    key.add_argument("--hs256-secret-file", metavar="FILE", help="verify HS256 with this file's bytes")
    parser.add_argument("--algorithm", choices=["RS256", "ES256"],
                        help="the accepted algorithm (default: RS256; the api app takes RS256 and ES256 from a JWKS)")
    parser.add_argument("--issuer", help="the required `iss`")
    parser.add_argument("--audience", help="the required `aud` (one of its values)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = parser.parse_args()
    if args.public_key_file and args.algorithm is None:
        args.algorithm = "RS256"

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"[verifying {args.app}] %(levelname)s %(name)s: %(message)s")
    stats = Stats()
    serve(mcp_app(args, stats) if args.app == "mcp" else api_app(args, stats), args.port)


if __name__ == "__main__":
    main()
