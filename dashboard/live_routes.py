"""The dashboard server's own two HTTP routes, beside Streamlit's (mounted by app.py through `st.App`).

- `GET /_lenet/live?run=RUN&smoothing=S&since=STAMP`: the live panel of a run (core.live_feed.feed) as JSON,
  or `{"unchanged": true}` when the run's files have not changed since STAMP. The Train page's live panel
  (dashboard/live_panel.py) asks for it once a second while its tab is visible; no Streamlit script reruns.
- `GET /_lenet/plotly.js`: the plotly.js bundle that draws the panel's charts (the report's bundle).

Read-only, and answered only for the host names in `server.allowedHosts` (a page of another site resolved to
127.0.0.1 gets 403, as its WebSocket does). Bad parameters get 400 with what is allowed; a run that does not
exist or cannot be read gets 404 with the store's message. Nothing here calls `st.*`.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from streamlit.web.server.starlette.starlette_websocket import is_host_allowed

from core import live_feed
from core.store import RunStore, StoreError

LIVE_PATH = "/_lenet/live"
PLOTLY_PATH = "/_lenet/plotly.js"
PLOTLY_JS = Path(__file__).resolve().parent.parent / "core" / "assets" / "plotly-cartesian.min.js"
_STAMP = re.compile(r"[0-9a-f]{16}")
_NO_STORE = {"Cache-Control": "no-store"}
# Streamlit's gzip middleware compressed every answer at level 9: 9 ms of the server's CPU per answer once the batch
# chart holds 1,500 points (300 kB), once a second per watching tab, for a page on the same machine
_FEED = {**_NO_STORE, "Content-Encoding": "identity"}


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


def live(request: Request) -> Response:
    """Sync on purpose: Starlette runs it in its thread pool, so reading the run never blocks the event loop."""
    refused = _refused(request)
    if refused:
        return refused
    query = request.query_params
    run_id, since = query.get("run", ""), query.get("since", "")
    try:
        smoothing = _smoothing(query.get("smoothing"))
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400, headers=_NO_STORE)
    if since and not _STAMP.fullmatch(since):
        return JSONResponse({"error": "since must be the stamp of an earlier answer (16 hex digits)"},
                            status_code=400, headers=_NO_STORE)
    store = RunStore()
    try:
        version = store.version(run_id)
        if since and live_feed.stamp(version) == since:
            return JSONResponse({"unchanged": True}, headers=_NO_STORE)
        return JSONResponse(live_feed.feed(store, run_id, smoothing, version), headers=_FEED)
    except StoreError as exc:  # an unknown or malformed run id, a deleted or unreadable run
        return JSONResponse({"error": str(exc)}, status_code=404, headers=_NO_STORE)


def plotly_js(request: Request) -> Response:
    refused = _refused(request)
    if refused:
        return refused
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def routes() -> list[Route]:
    return [Route(LIVE_PATH, live, methods=["GET"]), Route(PLOTLY_PATH, plotly_js, methods=["GET"])]
