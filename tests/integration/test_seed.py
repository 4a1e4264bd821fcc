"""The seed document's examples, run for real against each broker with a worker from the CLI.

Every example of ../shared/seed/celery-notes.rst, with ``celery`` -> ``canvas``: on the embedded
default (no server), on Redis, and on RabbitMQ with Redis results.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from canvas import states
from canvas.exceptions import RemoteError, TaskRejectedError, TaskRevokedError
from canvas.transports.base import OutgoingMessage
from tests.support.seed import CONFIGS, Seed
from tests.support.servers import AMQP_URL, REDIS_URL, require_service
from tests.support.workers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=list(CONFIGS))
def seed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seed]:
    if request.param != "embedded":
        require_service("Redis", REDIS_URL)
    if request.param.startswith("amqp"):
        require_service("RabbitMQ", AMQP_URL)
    env = Seed(request.param, tmp_path_factory.mktemp(request.param.replace("+", "-")))
    try:
        env.start_worker()
        env.tasks.add.delay(0, 0).get(timeout=20)  # the worker consumes
        yield env
    finally:
        env.close()


def test_run_task_and_read_status(seed: Seed) -> None:
    # Given a running worker, when add.delay(2, 2) is sent, then the seed's printout holds.
    res = seed.tasks.add.delay(2, 2)
    assert res.get(timeout=5) == 4
    assert isinstance(res.id, str) and len(res.id) == 36
    assert res.state == "SUCCESS"
    assert res.failed() is False
    assert res.successful() is True


def test_apply_async_args_and_kwargs(seed: Seed) -> None:
    assert seed.tasks.add.apply_async((2,), {"y": 5}).get(timeout=5) == 7


def test_countdown_runs_after_its_time(seed: Seed) -> None:
    sent = time.time()
    res = seed.tasks.add.apply_async((1, 1), countdown=1.5)
    assert res.get(timeout=15) == 2
    assert res.date_done >= sent + 1.5


def test_eta_runs_after_its_time(seed: Seed) -> None:
    eta = datetime.now(UTC) + timedelta(seconds=1.5)
    res = seed.tasks.add.apply_async((2, 2), eta=eta)
    assert res.get(timeout=15) == 4
    assert res.date_done >= eta.timestamp()


def test_countdown_with_expires_still_runs(seed: Seed) -> None:
    assert seed.tasks.add.apply_async((3, 3), countdown=0.5, expires=120).get(timeout=15) == 6


def test_expired_task_is_revoked_not_run(seed: Seed) -> None:
    res = seed.tasks.add.apply_async(
        (4, 4), countdown=1, expires=datetime.now(UTC) + timedelta(seconds=0.2)
    )
    with pytest.raises(TaskRevokedError):
        res.get(timeout=15)
    assert res.state == states.REVOKED


def test_autoretry_then_success(seed: Seed, unique: str) -> None:
    res = seed.tasks.flaky.delay(unique, 2)
    assert res.get(timeout=15) == 3


def test_autoretry_gives_up_with_the_original_exception(seed: Seed, unique: str) -> None:
    res = seed.tasks.flaky.delay(unique, 100)
    with pytest.raises(ConnectionError):
        res.get(timeout=20)
    assert res.state == states.FAILURE
    assert (seed.state / unique).read_text().count("\n") == 6  # 1 run + max_retries=5


def test_retry_backoff_respects_max_retries(seed: Seed, unique: str) -> None:
    with pytest.raises(ConnectionError):
        seed.tasks.backoff.delay(unique).get(timeout=20)
    assert (seed.state / unique).read_text().count("\n") == 4


def test_reject_to_dead_letter_queue(seed: Seed) -> None:
    res = seed.tasks.render_scene.delay("huge")
    with pytest.raises(TaskRejectedError):
        res.get(timeout=10)
    assert res.state == states.REJECTED
    dlq = seed.app.transport.consumer([seed.app.conf.task_default_queue + ".dlq"])
    try:
        delivery = wait_for(lambda: dlq.get(timeout=0.2), 10, "the rejected message in the dlq")
        assert delivery.headers["id"] == res.id
        assert "scene too big" in str(delivery.headers)
        delivery.ack()
    finally:
        dlq.close()


def test_reject_enomem_and_retry_other_errors(seed: Seed) -> None:
    with pytest.raises(TaskRejectedError):
        seed.tasks.render_scene.delay("enomem").get(timeout=10)
    assert seed.tasks.render_scene.delay("flaky").get(timeout=10) == "rendered flaky"


def test_reject_requeue_redelivers(seed: Seed) -> None:
    assert seed.tasks.requeues.delay().get(timeout=15) == "received two times"
    assert "received two times" in seed.logs()


def test_argsrepr_and_kwargsrepr_hide_real_arguments_in_logs(seed: Seed) -> None:
    res = seed.tasks.add.apply_async((2, 3), argsrepr="(<secret-x>, <secret-y>)")
    assert res.get(timeout=5) == 5
    card = "1234 5678 1234 5678"
    charged = (
        seed.tasks.charge.s("acct-9", card=card)
        .set(kwargsrepr=repr({"card": "**** **** **** 5678"}))
        .delay()
    )
    assert charged.get(timeout=5) == "charged acct-9"
    logs = wait_for(
        lambda: res.id in seed.logs() and charged.id in seed.logs() and seed.logs(), 5, "logs"
    )
    assert "<secret-x>" in logs and "**** **** **** 5678" in logs
    assert card not in logs
    received = [line for line in logs.splitlines() if res.id in line and "received" in line]
    assert received and "[2, 3]" not in received[0]


def test_synchronous_subtask_is_refused(seed: Seed) -> None:
    res = seed.tasks.update_page_info_bad.delay("http://example.invalid/a")
    with pytest.raises(RuntimeError, match="Never call result.get"):
        res.get(timeout=10)


def test_chain_instead_of_waiting(seed: Seed, unique: str) -> None:
    url = f"http://example.invalid/{unique}"
    seed.tasks.update_page_info.delay(url).get(timeout=10)
    wait_for(
        lambda: (seed.state / "pages").exists() and url in (seed.state / "pages").read_text(),
        10,
        "store_page_info",
    )
    assert f"{url} {len(f'<html>{url}</html>')}" in (seed.state / "pages").read_text()


def test_exception_types_survive_the_round_trip(seed: Seed) -> None:
    with pytest.raises(seed.tasks.RenderError, match="bad scene"):
        seed.tasks.fail.delay("bad scene").get(timeout=5)
    res = seed.tasks.fail.delay("x")
    res.get(timeout=5, propagate=False)
    assert res.failed() and "RenderError" in (res.traceback or "")
    assert not isinstance(res.result, RemoteError)


def test_bad_messages_go_to_the_dead_letter_queue(seed: Seed) -> None:
    queue = seed.app.conf.task_default_queue
    bad = [
        OutgoingMessage(queue, b"\x93\x01", {"task": "tasks.nope", "id": "unknown-1"}),
        OutgoingMessage(queue, b"\xff\xfe garbage", {"task": "tasks.add", "id": "garbage-1"}),
        OutgoingMessage(
            queue,
            b"[[1,2],{}]",
            {"task": "tasks.add", "id": "ctype-1"},
            content_type="application/x-python-serialize",
        ),
        OutgoingMessage(queue, b"whatever", {"no": "headers"}),
    ]
    seed.app.transport.publish(bad)
    assert seed.tasks.add.delay(20, 22).get(timeout=10) == 42  # the worker still serves
    dlq = seed.app.transport.consumer([queue + ".dlq"])
    reasons = {}
    try:

        def collect() -> bool:
            delivery = dlq.get(timeout=0.2)
            if delivery is not None:
                reasons[delivery.headers.get("id")] = str(delivery.headers)
                delivery.ack()
            return {"unknown-1", "garbage-1", "ctype-1", None} <= set(reasons)

        wait_for(collect, 15, "four dead letters")
    finally:
        dlq.close()
    assert "unknown task 'tasks.nope'" in reasons["unknown-1"]
    assert "cannot decode" in reasons["garbage-1"]
    assert "content type" in reasons["ctype-1"]
    assert "header 'task' is missing" in reasons[None]


def test_signature_repr_matches_celery(seed: Seed) -> None:
    add = seed.tasks.add
    assert repr(add.s(2, 2, debug=True)) == "tasks.add(2, 2, debug=True)"
    sig = add.signature((2, 2), debug=True)
    assert repr(sig) == "tasks.add(2, 2)" and sig.options == {"debug": True}


def test_killed_worker_loses_nothing_with_acks_late(seed: Seed, unique: str) -> None:
    # Given a long acks_late task running on a worker,
    res = seed.tasks.slow.delay(unique, 2.0)
    wait_for(lambda: (seed.state / f"{unique}.started").exists(), 15, "the task to start")
    # when the whole worker is killed with SIGKILL mid-task,
    victim = seed.workers[-1]
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)
    assert not (seed.state / f"{unique}.finished").exists()
    # then a new worker runs it again (at once on AMQP, after the 3 s lease elsewhere).
    seed.start_worker()
    assert res.get(timeout=30) == unique
    assert (seed.state / f"{unique}.finished").exists()
