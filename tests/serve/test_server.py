"""The server end to end over loopback: openpi's own client, bad requests, concurrency, batching, health,
graceful shutdown. Every server runs in a background thread on a free port."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.sync.client import ClientConnection, connect

from dreamvlx.serve import RemotePolicy, ScriptedPolicy
from dreamvlx.serve.protocol import packb, unpackb


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as connections:
        yield connections


def _connect(port: int, stack: ExitStack) -> ClientConnection:
    """A raw websocket to the server, closed with ``stack``; checks the metadata frame."""
    connection = stack.enter_context(connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None))
    assert unpackb(connection.recv(timeout=10))["server"] == "dreamvlx"
    return connection


def _ask(connection: ClientConnection, frame: bytes | str) -> bytes | str:
    connection.send(frame)
    return connection.recv(timeout=10)


# openpi-client's own connect() call triggers websockets 17's legacy-API deprecation warning.
@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")
def test_openpi_client_gets_correct_actions(serve_policy, make_observation, expected_actions) -> None:
    with serve_policy() as background:
        client = WebsocketClientPolicy("127.0.0.1", background.port)
        metadata = client.get_server_metadata()
        assert metadata["robot"] == "libero"
        assert (metadata["action_chunk"], metadata["action_dim"]) == (8, 7)
        assert metadata["observation_keys"]["images"] == ["observation/image", "observation/wrist_image"]
        first_obs, second_obs = make_observation(nonce=11.0), make_observation(nonce=12.0, brightness=200)
        first, second = client.infer(first_obs), client.infer(second_obs)
        client._ws.close()
    assert first["actions"].shape == (8, 7) and first["actions"].dtype == np.float32
    np.testing.assert_allclose(first["actions"], expected_actions(first_obs), rtol=1e-6)
    np.testing.assert_allclose(second["actions"], expected_actions(second_obs), rtol=1e-6)
    assert first["server_timing"]["infer_ms"] >= 0 and "prev_total_ms" not in first["server_timing"]
    assert second["server_timing"]["prev_total_ms"] > 0


def _obs_with(make_observation, key: str, value: object) -> dict:
    obs = make_observation()
    obs[key] = value
    return obs


BAD_FRAMES = {
    "not msgpack": (lambda mk: b"\xc1\xc1", "not a valid msgpack"),
    "not a map": (lambda mk: packb([1, 2, 3]), "must be a map"),
    "text frame": (lambda mk: "hello", "text frame"),
    "corrupt array": (
        lambda mk: packb(
            {"observation/image": {b"__ndarray__": True, b"data": b"12", b"dtype": "|u1", b"shape": [3]}}
        ),
        "needs 3",
    ),
    "wrong image shape": (
        lambda mk: packb(_obs_with(mk, "observation/image", np.zeros((3, 224, 224), np.uint8))),
        r"'observation/image' has shape \(3, 224, 224\)",
    ),
    "wrong image dtype": (
        lambda mk: packb(_obs_with(mk, "observation/wrist_image", np.zeros((224, 224, 3), np.int16))),
        "'observation/wrist_image' has dtype int16; expected uint8",
    ),
    "missing key": (
        lambda mk: packb({k: v for k, v in mk().items() if k != "prompt"}),
        "missing key 'prompt'",
    ),
    "NaN state": (
        lambda mk: packb(_obs_with(mk, "observation/state", np.array([0, 1, np.nan, 3, 4, 5, 6, 7.0]))),
        r"'observation/state' has non-finite values \(NaN or inf\) at indices \[2\]",
    ),
    "oversized": (
        lambda mk: packb({**mk(), "padding": b"\0" * 400_000}),
        "exceeds the server's limit of 600000 bytes",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_request_gets_error_and_connection_keeps_working(
    case, serve_policy, stack, make_observation, expected_actions
) -> None:
    build, message = BAD_FRAMES[case]
    with serve_policy(max_message_bytes=600_000) as background:
        connection = _connect(background.port, stack)
        reply = _ask(connection, build(make_observation))
        assert isinstance(reply, str), "an error must come back as a text frame"
        assert re.search(message, reply), reply
        good = make_observation(nonce=5.0)
        answer = unpackb(_ask(connection, packb(good)))
        np.testing.assert_allclose(answer["actions"], expected_actions(good), rtol=1e-6)


def test_frame_over_transport_limit_closes_only_that_connection(
    serve_policy, stack, make_observation
) -> None:
    with serve_policy(max_message_bytes=400_000, transport_max_bytes=500_000) as background:
        bystander = _connect(background.port, stack)
        offender = _connect(background.port, stack)
        offender.send(b"\0" * 600_000)
        with pytest.raises(ConnectionClosedError) as closed:
            offender.recv(timeout=10)
        assert closed.value.rcvd.code == 1009  # message too big
        assert isinstance(_ask(bystander, packb(make_observation())), bytes)
        assert isinstance(_ask(_connect(background.port, stack), packb(make_observation())), bytes)


class FailingPolicy(ScriptedPolicy):
    """Raises for one instruction, as a model bug would."""

    def predict_action(self, images, instruction, proprio=None, unnorm_key=None):
        if instruction == "explode":
            raise ValueError("unknown unnorm_key 'nope'")
        return super().predict_action(images, instruction, proprio, unnorm_key)


def test_policy_exception_is_reported_and_server_keeps_serving(serve_policy, stack, make_observation) -> None:
    with serve_policy(FailingPolicy(), max_batch=1) as background:
        connection = _connect(background.port, stack)
        reply = _ask(connection, packb({**make_observation(), "prompt": "explode"}))
        assert isinstance(reply, str) and "policy error: ValueError: unknown unnorm_key 'nope'" in reply
        assert unpackb(_ask(connection, packb(make_observation(nonce=2.0))))["actions"][0, 0] == 2.0


class KeyCheckingPolicy(ScriptedPolicy):
    """Fails at warm-up unless the server passes the expected normalisation key, as DreamVLA would."""

    def predict_action(self, images, instruction, proprio=None, unnorm_key=None):
        if unnorm_key != "libero_10_no_noops":
            raise KeyError(f"no normalisation statistics for {unnorm_key!r}")
        return super().predict_action(images, instruction, proprio, unnorm_key)


def test_unnorm_key_reaches_the_policy_and_warm_up_failure_stops_start(
    serve_policy, make_observation
) -> None:
    with (
        serve_policy(KeyCheckingPolicy(), max_batch=1, unnorm_key="libero_10_no_noops") as background,
        RemotePolicy("127.0.0.1", background.port) as policy,
    ):
        assert policy.predict_action(make_observation(1.0))[0, 0] == 1.0
    failing_server = serve_policy(KeyCheckingPolicy(), max_batch=1, unnorm_key="bridge_orig")
    with pytest.raises(RuntimeError, match="failed to start") as failed:
        failing_server.__enter__()
    assert "bridge_orig" in str(failed.value.__cause__)


def _run_clients(port: int, n_clients: int, n_requests: int, make_observation, expected_actions) -> list[str]:
    """Each client sends its own nonces at the same moment; returns the mismatches found."""
    barrier = threading.Barrier(n_clients)
    problems: list[str] = []

    def client(index: int) -> None:
        with RemotePolicy("127.0.0.1", port, connect_timeout_s=10) as policy:
            barrier.wait(timeout=10)
            for step in range(n_requests):
                obs = make_observation(nonce=float(1000 * index + step), brightness=(index * 37 + step) % 256)
                actions = policy.predict_action(obs)
                if not np.allclose(actions, expected_actions(obs), rtol=1e-6):
                    problems.append(f"client {index} request {step} got actions[0,0]={actions[0, 0]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return problems


class RecordingPolicy(ScriptedPolicy):
    """Tallies the batch sizes of the calls it receives (warm-up calls excluded)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sizes: Counter[int] = Counter()

    def predict_action(self, images, instruction, proprio=None, unnorm_key=None):
        if instruction != "warm up":
            self.sizes[1] += 1
        return super().predict_action(images, instruction, proprio, unnorm_key)

    def predict_action_batch(self, images, instructions, proprio=None, unnorm_key=None):
        if "warm up" not in instructions:
            self.sizes[len(images)] += 1
        return super().predict_action_batch(images, instructions, proprio, unnorm_key)


def test_concurrent_clients_are_batched_and_get_their_own_replies(
    serve_policy, make_observation, expected_actions
) -> None:
    policy = RecordingPolicy(latency_s=0.05)
    with serve_policy(policy, max_batch=4, batch_window_ms=30) as background:
        problems = _run_clients(background.port, 6, 4, make_observation, expected_actions)
        server_tally = background.server.batcher.batch_sizes
    assert problems == []
    assert sum(size * calls for size, calls in policy.sizes.items()) == 6 * 4
    assert max(policy.sizes) > 1, f"no request was batched: {dict(policy.sizes)}"
    assert max(policy.sizes) <= 4
    assert policy.sizes == server_tally


class UnbatchedPolicy:
    """Only the single-observation call; the server must not batch."""

    def __init__(self) -> None:
        self.inner = ScriptedPolicy(latency_s=0.01)

    def predict_action(self, images, instruction, proprio=None, unnorm_key=None):
        return self.inner.predict_action(images, instruction, proprio, unnorm_key)


def test_policy_without_batch_call_serves_clients_one_by_one(
    serve_policy, make_observation, expected_actions
) -> None:
    with serve_policy(UnbatchedPolicy(), max_batch=8) as background:
        assert background.server.metadata["max_batch"] == 1
        problems = _run_clients(background.port, 4, 3, make_observation, expected_actions)
        assert background.server.batcher.batch_sizes == Counter({1: 12})
    assert problems == []


def test_health_endpoint(serve_policy) -> None:
    with serve_policy() as background:
        with urllib.request.urlopen(f"http://127.0.0.1:{background.port}/healthz", timeout=10) as response:
            assert response.status == 200 and response.read().decode().strip() == "ok"
        with pytest.raises(urllib.error.HTTPError) as not_websocket:
            urllib.request.urlopen(f"http://127.0.0.1:{background.port}/", timeout=10)
        not_websocket.value.close()
        assert not_websocket.value.code == 426  # upgrade required


class SlowPolicy(ScriptedPolicy):
    """Signals when a real (non-warm-up) request starts, then takes ``latency_s``."""

    def __init__(self, latency_s: float) -> None:
        super().__init__(latency_s=latency_s)
        self.started = threading.Event()

    def predict_action(self, images, instruction, proprio=None, unnorm_key=None):
        if instruction != "warm up":
            self.started.set()
        return super().predict_action(images, instruction, proprio, unnorm_key)


def _health_refused(port: int) -> bool:
    """True when a health check is not served: refused, reset, or left unanswered (a connection the kernel
    queued just before the listening socket closed is never read, so its request times out)."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return True
    return False


def test_graceful_shutdown_finishes_in_flight_requests(serve_policy, stack, make_observation) -> None:
    # the in-flight request must outlast the probing below (a probe can wait its 1 s timeout) and the late ask
    policy = SlowPolicy(latency_s=3.0)
    with serve_policy(policy, max_batch=1) as background:
        port = background.port
        busy, idle = _connect(port, stack), _connect(port, stack)
        busy.send(packb(make_observation(nonce=7.0)))
        assert policy.started.wait(10)
        stopper = threading.Thread(target=background.stop)
        stopper.start()
        deadline = time.monotonic() + 5
        while not _health_refused(port):  # the listening socket closes as the drain begins
            assert time.monotonic() < deadline, "the server kept accepting connections during shutdown"
            time.sleep(0.01)
        late = _ask(idle, packb(make_observation()))
        answer = busy.recv(timeout=10)
        stopper.join(timeout=10)
        assert not stopper.is_alive()
    assert isinstance(late, str) and "shutting down" in late
    assert isinstance(answer, bytes) and unpackb(answer)["actions"][0, 0] == 7.0
    for connection in (busy, idle):
        with pytest.raises(ConnectionClosedOK) as closed:
            connection.recv(timeout=10)
        assert closed.value.rcvd.code == 1001  # going away
