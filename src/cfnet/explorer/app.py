"""The explorer's web layer: one static page and a small JSON API over ``Explorer``, served by
uvicorn on 127.0.0.1 (docs/explore.md says why Starlette + uvicorn and not Gradio).

Offline by construction: the page is three files of this package (HTML, JS, CSS: no CDN, no web
font, no telemetry), and a Content-Security-Policy of ``'self'`` holds the browser to them. On a
loopback address, requests naming another host are refused (a web page elsewhere cannot reach
the explorer through DNS rebinding).

    GET  /                                  the page
    GET  /api/info                          the model, its classes and colours, the split
    POST /api/open      {"index": i} | {"name": n}   open an image of the split: one forward pass
    POST /api/upload    the file's bytes (header X-Filename)   open an uploaded picture
    GET  /api/images/<key>/image.png        the image as the model saw it (resized if large)
    GET  /api/images/<key>/prediction.png   the predicted classes (palette PNG)
    GET  /api/images/<key>/query?y=&x=      a click: answered from what the server holds
    GET  /api/cooccurrence                  the split's class co-occurrence (computed once)

Every error is JSON ``{"error": "<one line>"}`` with its status (400 a bad request or upload, 404
an image not held, 413 an upload over the limit, 500 anything else, its traceback on the server's
console); the server goes on serving.
"""

from __future__ import annotations

import functools
import io
import json
import os
import socket
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cfnet.analysis.viz import palette_png
from cfnet.explorer.session import Inspected
from cfnet.explorer.state import Explorer
from cfnet.explorer.uploads import UploadError, too_large

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Endpoint = Callable[[Request], Awaitable[Response]]


class UploadTooLarge(UploadError):
    """An upload over ``max_upload_mb``: 413, not 400."""


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def answers(endpoint: Endpoint) -> Endpoint:
    """Any exception of ``endpoint`` as a JSON error with its status; the server goes on."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except UploadTooLarge as err:
            return error(413, str(err))
        except LookupError as err:
            return error(404, str(err.args[0]) if err.args else "not found")
        except ValueError as err:  # a bad request, an upload that is not a usable picture
            return error(400, str(err))
        except MemoryError:
            return error(507, "out of memory for this image: restart with a smaller max_size")
        except Exception as err:
            traceback.print_exc()
            return error(500, f"internal error ({type(err).__name__}: {err}); see the console")

    return wrapped


class SecurityHeaders:
    """Adds ``HEADERS`` to every response (pure ASGI: streaming responses stay streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.encode(), v.encode()) for k, v in HEADERS.items()),
                ]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def png(image: Image.Image) -> Response:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")


def integer(request: Request, name: str) -> int:
    value = request.query_params.get(name)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: an integer pixel coordinate is required") from None


def create_app(explorer: Explorer, host: str = "127.0.0.1") -> Starlette:
    """The web app over ``explorer``; ``host``: the address it will listen on (on a loopback
    address, only requests naming a loopback host are answered)."""

    def inspected(request: Request) -> Inspected:
        key = request.path_params["key"]
        found = explorer.held(key)
        if found is None:
            keep = explorer.limits.keep_images
            raise LookupError(
                f"image {key!r} is not open (the explorer holds the last {keep} opened, "
                "keep_images); open it again"
            )
        return found

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    @answers
    async def info(request: Request) -> Response:
        return JSONResponse(explorer.info())

    @answers
    async def open_sample(request: Request) -> Response:
        try:
            body: Any = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as err:
            raise ValueError(f"the request is not JSON: {err}") from None
        if not isinstance(body, dict) or not ({"index", "name"} & body.keys()):
            raise ValueError('open needs {"index": <number>} or {"name": <sample name>}')
        index, name = body.get("index"), body.get("name")
        found = await run_in_threadpool(explorer.open_sample, index, name)
        return JSONResponse(found.summary(explorer.card))

    @answers
    async def upload(request: Request) -> Response:
        name = unquote(request.headers.get("x-filename", "upload")) or "upload"
        limit = int(explorer.limits.max_upload_mb * 2**20)
        data, size = bytearray(), 0
        # read to the end (a client still sending would not see the answer), keep <= the limit
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                data += chunk
        if size > limit:
            raise UploadTooLarge(str(too_large(name, size, limit)))
        found = await run_in_threadpool(explorer.open_upload, bytes(data), name)
        return JSONResponse(found.summary(explorer.card))

    @answers
    async def picture(request: Request) -> Response:
        return png(Image.fromarray(inspected(request).image))

    @answers
    async def prediction(request: Request) -> Response:
        return png(palette_png(np.asarray(inspected(request).prediction), explorer.card.palette))

    @answers
    async def query(request: Request) -> Response:
        found = inspected(request)
        y, x = integer(request, "y"), integer(request, "x")
        return JSONResponse(await run_in_threadpool(found.query, y, x, explorer.card))

    @answers
    async def matrix(request: Request) -> Response:
        return JSONResponse(explorer.matrix())

    routes = [
        Route("/", page),
        Route("/favicon.ico", lambda request: Response(status_code=204)),  # none: no 404 noise
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/info", info),
        Route("/api/open", open_sample, methods=["POST"]),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/images/{key}/image.png", picture),
        Route("/api/images/{key}/prediction.png", prediction),
        Route("/api/images/{key}/query", query),
        Route("/api/cooccurrence", matrix),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if host in LOOPBACK:
        hosts = ["127.0.0.1", "localhost", "[::1]", "testserver"]  # testserver: TestClient's
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    return Starlette(routes=routes, middleware=middleware)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port); a one-line error if it cannot."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as err:  # (create_server's message repeats the address: the system's words)
        why = os.strerror(err.errno) if err.errno else str(err)
        raise ValueError(
            f"cannot listen on host={host} port={port}: {why} (port=0 picks a free port)"
        ) from None


def address(sock: socket.socket) -> str:
    """The page's address for a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (uvicorn: only its warnings and errors printed)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
