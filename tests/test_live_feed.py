"""The Train page's live panel without reruns (issue 20, item 3): the feed it is drawn from (core/live_feed.py)
and the server's WebSocket the browser follows it on (dashboard/live_routes.py)."""

import asyncio
import json
from urllib.parse import urlencode

import numpy as np
import pytest
from starlette.requests import Request
from streamlit import config

from core import figures_training as figures
from core import live_feed
from core.config import TrainConfig
from core.store import RunStore
from dashboard import live_routes
from dashboard_apptest import decode


def curve(chart: dict, index: int) -> dict:
    """A curve of a feed's chart as the panel draws it: with what every curve shares (core.live_feed._plain)."""
    return {**chart["data"][index], **chart.get("shared", {})}


def batches(start: int, count: int) -> list[dict]:
    return [{"type": "batch", "epoch": 1, "batch": step, "step": step, "loss": 1 / step, "accuracy": step / 100,
             "batches": 1, "time": step / 10} for step in range(start, start + count)]


@pytest.fixture
def live_run(lenet_runs):
    store = RunStore()
    run_id = store.create_run(TrainConfig(epochs=2, train_subset=600, validation_split=0.1), "watched")
    store.write_status(run_id, status="running", phase="training", epochs=2, steps_per_epoch=50, batch_size=64)
    store.append_metrics(run_id, batches(1, 10))
    return store, run_id


def test_the_feed_holds_the_progress_and_both_charts_of_the_stored_records(live_run):
    store, run_id = live_run
    feed = live_feed.feed(store, run_id, 0.0)
    assert (feed["run"], feed["status"], feed["phase"], feed["active"]) == (run_id, "running", "training", True)
    assert feed["progress"]["fraction"] == pytest.approx(10 / 100)
    assert feed["progress"]["text"].startswith("epoch 1/2 · batch 10/50")
    values = {m["label"]: m["value"] for m in feed["progress"]["metrics"]}
    assert values["Epoch"] == "1/2" and values["Batch"] == "10/50"
    loss = curve(feed["batch"], 0)
    assert decode(loss["x"]) == list(range(1, 11)) and decode(loss["y"]) == pytest.approx([1 / s for s in range(1, 11)])
    assert "template" not in feed["batch"]["layout"]  # Streamlit's template has placeholder colours plotly.js lacks


def test_the_feed_is_built_once_per_change_and_its_stamp_follows_the_files(live_run):
    store, run_id = live_run
    first = live_feed.feed(store, run_id, 0.6)
    assert live_feed.feed(RunStore(), run_id, 0.6) is first  # another tab: the same build
    assert live_feed.feed(store, run_id, 0.0) is not first  # another smoothing: its own
    store.append_metrics(run_id, batches(11, 5))
    later = live_feed.feed(store, run_id, 0.6)
    assert later["stamp"] != first["stamp"] and len(decode(curve(later["batch"], -1)["x"])) == 15
    assert later["epoch"] is first["epoch"]  # no new epoch record: the epoch chart is not built again


def test_a_live_runs_axes_span_the_run_and_stay_put_while_points_arrive(live_run):
    """While the run trains its axes are fixed (x: the whole run; loss from 0; accuracy up to 100%), so the
    browser redraws only the curves; the ended run's charts are autoscaled again."""
    store, run_id = live_run
    first = live_feed.feed(store, run_id, 0.0)["batch"]["layout"]
    assert first["xaxis"]["range"][0] < 0 < 100 < first["xaxis"]["range"][1] < 102  # 2 epochs of 50 steps
    assert first["xaxis2"]["range"] == first["xaxis"]["range"]
    assert first["yaxis"]["range"][0] == 0 and first["yaxis"]["range"][1] >= 1.0  # the first loss is 1
    assert first["yaxis2"]["range"][0] <= 0.01 and first["yaxis2"]["range"][1] > 1.0  # accuracy step/100
    look = live_feed.feed(store, run_id, 0.0)["batch"]["look"]  # the browser redraws the whole chart when it changes
    store.append_metrics(run_id, batches(11, 30))  # lower losses, accuracy within range
    within = live_feed.feed(store, run_id, 0.0)["batch"]
    assert within["layout"] == first and within["look"] == look
    store.append_metrics(run_id, [{**batches(41, 1)[0], "loss": 7.5}])  # a loss above the range: new axes
    beyond = live_feed.feed(store, run_id, 0.0)["batch"]
    assert beyond["layout"]["yaxis"]["range"][1] >= 7.5 and beyond["look"] != look
    store.write_status(run_id, status="completed", phase="completed")
    ended = live_feed.feed(store, run_id, 0.0)["batch"]["layout"]
    assert "range" not in ended["xaxis"] and "range" not in ended.get("yaxis", {})


def test_a_live_batch_chart_is_drawn_from_fewer_points_than_the_ended_runs(live_run):
    """While the run trains, the batch chart the browser gets every second has at most LIVE_BATCH_POINTS points
    per curve (means of consecutive records, so every batch still counts); the ended run's chart has up to
    MAX_BATCH_POINTS for zooming in."""
    store, run_id = live_run
    store.write_status(run_id, epochs=2, steps_per_epoch=3000)
    store.append_metrics(run_id, batches(11, 2990))
    curves = lambda feed: [decode(curve(feed["batch"], i)["x"]) for i in range(len(feed["batch"]["data"]))]  # noqa: E731
    live = curves(live_feed.feed(store, run_id, 0.6))
    assert len(live) == 4 and all(len(x) == figures.LIVE_BATCH_POINTS for x in live)
    assert live[0][-1] == 3000  # the curve reaches the last record
    store.write_status(run_id, status="completed", phase="completed")
    ended = curves(live_feed.feed(store, run_id, 0.6))
    assert all(len(x) == figures.MAX_BATCH_POINTS for x in ended) and ended[0][-1] == 3000
    assert figures.LIVE_BATCH_POINTS < figures.MAX_BATCH_POINTS


def test_what_every_curve_shares_is_sent_once_and_values_as_32_bit_floats(live_run):
    """The batch chart's four curves (raw and smoothed loss and accuracy) share their steps and hover texts: the
    feed holds them once, in the chart's `shared`, which the panel gives each curve (tests/test_browser_live.py);
    the values go as 32-bit floats, half the bytes of 64-bit ones."""
    store, run_id = live_run
    chart = live_feed.feed(store, run_id, 0.6)["batch"]
    assert len(chart["data"]) == 4 and all("text" not in trace and "x" not in trace for trace in chart["data"])
    assert chart["shared"]["text"] == [f"epoch 1, batch {b}" for b in range(1, 11)]
    assert decode(chart["shared"]["x"]) == list(range(1, 11))
    assert all(trace["y"]["dtype"] == "f4" for trace in chart["data"])
    figure = figures.batch_figure(store.read_metrics(run_id)[0], 0.6)  # the pages' figure: a text per curve
    assert all(list(trace.text) == chart["shared"]["text"] for trace in figure.data)
    assert decode(curve(chart, 1)["y"]) == pytest.approx(list(figure.data[1].y), rel=1e-6)


def test_a_shared_array_of_floats_goes_as_32_bit_floats_too():
    times = np.linspace(0.0, 1.0, 5)  # a chart whose curves share float x values (the batch chart's are steps)
    spec = {"data": [{"x": times, "y": times * 2}, {"x": times, "y": times * 3}], "layout": {}}
    chart = live_feed._plain(spec)
    assert "x" not in chart["data"][0] and chart["shared"]["x"]["dtype"] == "f4"
    assert decode(chart["shared"]["x"]) == pytest.approx(list(times))


def test_the_epoch_chart_spans_the_planned_epochs_while_the_run_trains(live_run):
    store, run_id = live_run
    store.append_metrics(run_id, [{"type": "epoch", "epoch": 1, "loss": 0.5, "accuracy": 0.8, "test_loss": 0.4,
                                   "test_accuracy": 0.85, "time": 3.0}])
    layout = live_feed.feed(store, run_id, 0.0)["epoch"]["layout"]
    assert layout["xaxis"]["range"][0] < 0.5 and 2.5 < layout["xaxis"]["range"][1] < 2.6  # epochs 1 and 2
    assert layout["yaxis2"]["range"][0] <= 0.8 < 1.0 < layout["yaxis2"]["range"][1]


def epoch_record(epoch: int) -> dict:
    return {"type": "epoch", "epoch": epoch, "loss": 1 / epoch, "accuracy": 1 - 0.1 / epoch, "time": 3.0 * epoch}


def test_short_epochs_redraw_the_epoch_chart_at_most_every_few_seconds_while_the_batch_chart_follows(
        live_run, monkeypatch):
    """Epochs shorter than EPOCH_CHART_EVERY_S changed the epoch chart at every ask: while the run trains it
    takes new epochs at most that often (its first at once); the batch chart and the numbers follow every
    change, and the ended run shows every epoch."""
    clock = [1000.0]
    monkeypatch.setattr(live_feed.time, "monotonic", lambda: clock[0])
    store, run_id = live_run
    store.write_status(run_id, epochs=9)
    drawn = lambda feed: len(decode(feed["epoch"]["data"][0]["x"]))  # noqa: E731 - epochs on the loss curve
    store.append_metrics(run_id, [epoch_record(1)])
    first = live_feed.feed(store, run_id, 0.0)
    assert drawn(first) == 1  # the first epoch at once
    clock[0] += 1.0
    store.append_metrics(run_id, [epoch_record(2)] + batches(11, 5))
    soon = live_feed.feed(store, run_id, 0.0)
    assert soon["epoch"] is first["epoch"] and soon["keys"]["epoch"] == first["keys"]["epoch"]  # not redrawn
    assert len(decode(curve(soon["batch"], 0)["x"])) == 15  # the batch chart follows
    batch, epoch = store.read_metrics(run_id)  # the numbers follow every record
    status = store.read_status(run_id)
    every_record = figures.progress(status, batch, epoch, 2)
    assert len(epoch) == 2 and soon["progress"]["fraction"] == every_record.fraction
    assert soon["progress"]["text"] == live_feed._progress_text(every_record, status)
    clock[0] += live_feed.EPOCH_CHART_EVERY_S
    store.append_metrics(run_id, [epoch_record(3)])
    assert drawn(live_feed.feed(store, run_id, 0.0)) == 3  # both new epochs, a few seconds later
    store.append_metrics(run_id, [epoch_record(4)])
    assert drawn(live_feed.feed(store, run_id, 0.0)) == 3
    store.write_status(run_id, status="completed", phase="completed")
    assert drawn(live_feed.feed(store, run_id, 0.0)) == 4  # the ended run: every epoch, at once


def test_the_panel_names_the_phase_while_the_run_is_not_training(live_run):
    store, run_id = live_run
    assert live_feed.feed(store, run_id, 0.0)["progress"]["text"].startswith("epoch 1/2")
    store.write_status(run_id, phase="saving")
    assert live_feed.feed(store, run_id, 0.0)["progress"]["text"] == "saving…"


class Client:
    """Calls the bundle route's endpoint as Starlette does, with a request of the given host name."""

    endpoints = {route.path: route.endpoint for route in live_routes.routes()}

    def get(self, path: str, host: str = "localhost:8501"):
        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [(b"host", host.encode())]}
        return self.endpoints[path](Request(scope))


@pytest.fixture
def hosts():
    allowed = config.get_option("server.allowedHosts")
    config.set_option("server.allowedHosts", ["localhost", "127.0.0.1"])
    yield
    config.set_option("server.allowedHosts", allowed)


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(live_feed, "PERIOD_S", 0.05)  # the route looks at the run every 50 ms


def talk(params: dict, during=(), host="localhost:8501", origin="http://localhost:8501", wait=0.4) -> list:
    """Open the live socket as a page of `origin` would, call each of `during` (changes to the store) `wait` s
    apart while it is open, then close it as the page does. Returns what the route sent: "accept", each message
    as a dict, ("close", code); it must have ended once the page closed the socket."""
    app = {route.path: route for route in live_routes.routes()}[live_routes.LIVE_PATH].app
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    scope = {"type": "websocket", "path": live_routes.LIVE_PATH, "query_string": urlencode(params).encode(),
             "headers": headers, "subprotocols": []}

    async def session():
        incoming, sent = asyncio.Queue(), []
        await incoming.put({"type": "websocket.connect"})

        async def send(message):
            kind = message["type"]
            sent.append("accept" if kind == "websocket.accept" else ("close", message.get("code", 1000))
                        if kind == "websocket.close" else json.loads(message["text"]))

        route = asyncio.create_task(app(scope, incoming.get, send))
        for change in during:
            await asyncio.sleep(wait)
            change()
        await asyncio.sleep(wait)
        await incoming.put({"type": "websocket.disconnect", "code": 1001})
        await asyncio.wait_for(route, 5)
        return sent

    return asyncio.run(session())


def test_the_socket_sends_the_feed_then_only_when_the_run_moves(live_run, hosts, quick):
    store, run_id = live_run
    sent = talk({"run": run_id, "smoothing": "0.6"}, during=[lambda: store.append_metrics(run_id, batches(11, 1))])
    assert sent[0] == "accept" and len(sent) == 3  # 16 looks at the run: two changes, two messages
    first, moved = sent[1:]
    assert first["stamp"] != moved["stamp"] and first["progress"]["metrics"][1]["value"] == "10/50"
    assert moved["progress"]["metrics"][1]["value"] == "11/50"
    again = talk({"run": run_id, "smoothing": "0.6", "since": moved["stamp"]})
    assert again == ["accept"]  # the page has this one: nothing to send
    bundle = Client().get("/_lenet/plotly.js")  # the bundle the report embeds too
    assert bundle.status_code == 200 and open(bundle.path, "rb").read(40).startswith(b"/**\n* plotly.js")


def test_a_run_deleted_while_watched_gets_a_message_and_the_socket_closes(live_run, hosts, quick):
    store, run_id = live_run
    store.write_status(run_id, status="stopped", phase="stopped")  # a training run cannot be deleted
    sent = talk({"run": run_id}, during=[lambda: store.delete(run_id)])
    assert sent[0] == "accept" and sent[1]["run"] == run_id
    assert run_id in sent[2]["error"] and sent[3] == ("close", 1000) and len(sent) == 4


def test_a_run_whose_loss_went_non_finite_is_still_followed(live_run, hosts, quick):
    """NaN and infinite losses (a diverging run) stay out of the JSON the socket sends: JSON has no NaN, and an
    error message would make the page take the run for gone."""
    store, run_id = live_run
    diverged = [{**record, "loss": loss} for record, loss in zip(batches(11, 3), [float("inf"), float("nan"), 1e308])]
    store.append_metrics(run_id, diverged)
    sent = talk({"run": run_id, "smoothing": "0.6"}, during=[lambda: store.append_metrics(run_id, batches(14, 1))])
    assert sent[0] == "accept" and len(sent) == 3 and all("error" not in message for message in sent[1:])
    assert sent[2]["progress"]["metrics"][1]["value"] == "14/50"
    loss_range = sent[2]["batch"]["layout"]["yaxis"]["range"]
    assert all(isinstance(end, (int, float)) and np.isfinite(end) for end in loss_range) and loss_range[1] > 1


@pytest.mark.parametrize(("params", "message"), [
    ({"run": "x", "smoothing": "1.5"}, "smoothing must be a number from 0 to 0.99"),
    ({"run": "x", "smoothing": "high"}, "smoothing must be a number from 0 to 0.99"),
    ({"run": "x", "since": "../../etc"}, "since must be the stamp of an earlier answer"),
    ({"run": "../etc"}, "is not valid; allowed:"),
    ({"run": "20990101-000000-nothing-0000"}, "20990101-000000-nothing-0000"),
])
def test_bad_parameters_get_a_message_not_a_traceback(lenet_runs, hosts, quick, params, message):
    sent = talk(params)
    assert sent[0] == "accept" and message in sent[1]["error"] and sent[2] == ("close", 1000) and len(sent) == 3


@pytest.mark.parametrize(("host", "origin"), [
    ("evil.test:8501", "http://evil.test:8501"),  # DNS rebinding: another site's name for 127.0.0.1
    ("localhost:8501", "http://evil.test"),  # another site's page opening a socket to the dashboard
    ("localhost:8501", "null"),  # a sandboxed page or a file
])
def test_a_foreign_host_name_or_page_gets_nothing(live_run, hosts, quick, host, origin):
    _, run_id = live_run
    assert talk({"run": run_id}, host=host, origin=origin) == [("close", live_routes.POLICY)]
    answer = Client().get("/_lenet/plotly.js", host="evil.test:8501")
    assert answer.status_code == 403


def test_the_socket_keeps_its_beat_when_wake_ups_come_late(live_run, hosts, monkeypatch):
    """The route looks at the run every PERIOD_S on a fixed beat: on a busy machine its waits end late, and
    carrying that lateness into every period stretched the chart's period past its 1 s."""
    store, run_id = live_run
    monkeypatch.setattr(live_feed, "PERIOD_S", 0.06)
    looks, wait = [], live_routes._closed_within
    version = store.version

    async def late(websocket, seconds):
        await wait(websocket, seconds + 0.03)  # every wait ends 30 ms late

    monkeypatch.setattr(live_routes, "_closed_within", late)
    monkeypatch.setattr(RunStore, "version", lambda self, run: looks.append(run) or version(run))
    talk({"run": run_id}, wait=1.2)
    assert len(looks) >= 17, f"{len(looks)} looks in 1.2 s, every 0.06 s: 20 on the beat, 13 if it drifts"
