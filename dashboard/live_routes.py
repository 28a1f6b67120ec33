"""The dashboard server's own two routes, beside Streamlit's (mounted by app.py through `st.App`).

- `WebSocket /_lenet/live?run=RUN&smoothing=S&since=STAMP`: the live panel of a run (core.live_feed.feed) as
  JSON, sent whenever the run's files have changed since the last one sent (or since STAMP), looked at every
  `live_feed.PERIOD_S`. The Train page's live panel (dashboard/live_panel.py) holds one open while its tab is
  visible; no Streamlit script reruns. A socket instead of a request a second: a fetch cost the browser ~9 ms
  of CPU (3.9 ms in the page's main thread) against ~3.5 ms (1.2 ms) for a message (bench/RESULTS.md, session 16).
- `GET /_lenet/plotly.js`: the plotly.js bundle that draws the panel's charts (the report's bundle).

Read-only. Answered only for the host names in `server.allowedHosts` (a page of another site resolved to
127.0.0.1 gets 403, as its WebSocket does), and the socket only for the dashboard's own pages (any site can
open a WebSocket to 127.0.0.1 and, unlike a fetch, read what it sends: another origin gets 403). Bad
parameters, a run that does not exist or cannot be read: one message `{"error": ...}` (what is allowed, or the
store's message), then the socket closes. Nothing here calls `st.*`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path
from urllib.parse import urlparse

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from streamlit.web.server.starlette.starlette_websocket import is_host_allowed

from core import live_feed
from core.store import RunStore, StoreError

LIVE_PATH = "/_lenet/live"
PLOTLY_PATH = "/_lenet/plotly.js"
PLOTLY_JS = Path(__file__).resolve().parent.parent / "core" / "assets" / "plotly-cartesian.min.js"
_STAMP = re.compile(r"[0-9a-f]{16}")
POLICY = 1008  # WebSocket close code: refused by policy (a foreign host name or page)


def _refused(request: Request) -> Response | None:
    if not is_host_allowed(request.headers.get("host")):
        return JSONResponse({"error": "this host name is not in server.allowedHosts"}, status_code=403)
    return None


def _smoothing(text: str | None) -> float:
    try:
        value = float(text if text is not None else 0.0)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 0.99:
        raise ValueError("smoothing must be a number from 0 to 0.99")
    return value


def _own_page(websocket: WebSocket) -> bool:
    """The socket comes from one of this dashboard's pages: an allowed host name, and the page's origin is that
    host (a browser always sends Origin; a client without one is not a page of another site)."""
    host, origin = websocket.headers.get("host"), websocket.headers.get("origin")
    return is_host_allowed(host) and (origin is None or urlparse(origin).netloc == host)


def _parameters(websocket: WebSocket) -> tuple[str, float, str]:
    query = websocket.query_params
    since = query.get("since", "")
    if since and not _STAMP.fullmatch(since):
        raise ValueError("since must be the stamp of an earlier answer (16 hex digits)")
    return query.get("run", ""), _smoothing(query.get("smoothing")), since


async def live(websocket: WebSocket) -> None:
    """Send the run's live panel whenever its files change, until the page closes the socket. The store is read
    in Starlette's thread pool, so reading a run never blocks the event loop."""
    if not _own_page(websocket):
        await websocket.close(code=POLICY)
        return
    await websocket.accept()
    try:
        run_id, smoothing, since = _parameters(websocket)
    except ValueError as exc:  # bad parameters: what is allowed
        await _refuse(websocket, str(exc))
        return
    store, beat = RunStore(), time.monotonic()
    try:
        while True:
            version = await run_in_threadpool(store.version, run_id)
            if not since or live_feed.stamp(version) != since:
                feed = await run_in_threadpool(live_feed.feed, store, run_id, smoothing, version)
                await websocket.send_text(_json(feed))
                since = feed["stamp"]
            # a steady beat: a wake-up that came late (a busy machine) is not carried into every later period
            beat = max(beat + live_feed.PERIOD_S, time.monotonic())
            await _closed_within(websocket, beat - time.monotonic())
    except StoreError as exc:  # an unknown or malformed run id, a deleted or unreadable run
        await _refuse(websocket, str(exc))
    except WebSocketDisconnect:
        pass


async def _refuse(websocket: WebSocket, message: str) -> None:
    """One message `{"error": message}`, then close."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the page may have gone meanwhile
        await websocket.send_text(_json({"error": message}))
        await websocket.close()


async def _closed_within(websocket: WebSocket, seconds: float) -> None:
    """Wait `seconds`; raises WebSocketDisconnect if the page closes the socket meanwhile (anything else a client
    sends is ignored: it cannot make the route look at the run more often)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout=left)
        except TimeoutError:
            return
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))


def _json(content: dict) -> str:
    """As Starlette's JSONResponse writes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def plotly_js(request: Request) -> Response:
    refused = _refused(request)
    if refused:
        return refused
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def routes() -> list[Route]:
    return [WebSocketRoute(LIVE_PATH, live), Route(PLOTLY_PATH, plotly_js, methods=["GET"])]
