"""The desktop's job queue on disk: atomic, durable until acknowledged, recovered after a crash."""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue

from desktop.broker import queue_recover, queue_size

pytestmark = pytest.mark.desktop_only


@pytest.fixture(autouse=True)
def _fresh_broker_state():
    """The filesystem transport remembers declared bindings process-wide; each test has its own folders."""
    from desktop.broker import Transport

    Transport.global_state.clear()
    yield
    Transport.global_state.clear()


def jobs_queue() -> Queue:
    return Queue("jobs", Exchange("jobs", type="direct"), routing_key="jobs")  # fresh: entities bind to a channel


def connect(folder):
    return Connection(
        transport="desktop.broker:Transport",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder.parent / "control"),
            "polling_interval": 0.01,
        },
    )


def publish(folder, *bodies):
    with connect(folder) as conn:
        producer = conn.Producer()
        queue = jobs_queue()
        for body in bodies:
            producer.publish(body, exchange=queue.exchange, routing_key="jobs", declare=[queue])


def test_messages_are_written_whole_and_kept_in_order(tmp_path):
    folder = tmp_path / "queue"
    publish(folder, {"n": 1}, {"n": 2}, {"n": 3})
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert queue_size(folder, "jobs") == 3
    with connect(folder) as conn, conn.SimpleQueue(jobs_queue()) as q:
        got = []
        for _ in range(3):
            message = q.get(timeout=2)
            got.append(message.payload["n"])
            message.ack()
    assert got == [1, 2, 3]
    assert queue_size(folder, "jobs") == 0
    assert list((folder / "inflight").iterdir()) == []


def test_a_fetched_but_unacknowledged_message_survives_a_crash(tmp_path):
    folder = tmp_path / "queue"
    publish(folder, {"job": "send-invoice"})
    conn = connect(folder)
    channel = conn.channel()
    message = channel.basic_get("jobs")
    assert message.payload == {"job": "send-invoice"}
    # The process dies here: no ack, no clean close. The message waits in flight on disk.
    assert queue_size(folder, "jobs") == 0
    assert len(list((folder / "inflight").iterdir())) == 1
    channel.qos.restore_at_shutdown = False  # a crash restores nothing
    assert queue_recover(folder) == 1  # what the next start does before its worker runs
    assert queue_size(folder, "jobs") == 1
    with connect(folder) as again, again.SimpleQueue(jobs_queue()) as q:
        redelivered = q.get(timeout=2)
        assert redelivered.payload == {"job": "send-invoice"}
        redelivered.ack()


def test_a_clean_close_puts_unacknowledged_messages_back_under_their_names(tmp_path):
    folder = tmp_path / "queue"
    publish(folder, {"n": 1}, {"n": 2})
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".msg"))
    with connect(folder) as conn:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=2)
        assert channel.basic_get("jobs").payload == {"n": 1}
        channel.close()  # warm shutdown: unacknowledged messages are restored
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".msg")) == names
    assert list((folder / "inflight").iterdir()) == []


def test_a_rejected_message_is_requeued_or_dropped_as_asked(tmp_path):
    folder = tmp_path / "queue"
    publish(folder, {"n": 1}, {"n": 2})
    with connect(folder) as conn:
        channel = conn.channel()
        first = channel.basic_get("jobs")
        channel.basic_reject(first.delivery_tag, requeue=True)
        second = channel.basic_get("jobs")
        assert second.payload == {"n": 1}  # back at its place in the order
        channel.basic_reject(second.delivery_tag, requeue=False)
        third = channel.basic_get("jobs")
        assert third.payload == {"n": 2}
        channel.basic_ack(third.delivery_tag)
    assert queue_size(folder, "jobs") == 0
    assert list((folder / "inflight").iterdir()) == []


def test_a_corrupt_file_is_set_aside_not_fatal(tmp_path):
    folder = tmp_path / "queue"
    publish(folder, {"n": 1})
    (folder / "00000000000000000001_broken.jobs.msg").write_text("{half a mess")
    with connect(folder) as conn:
        channel = conn.channel()
        assert channel.basic_get("jobs").payload == {"n": 1}
    assert [p.name for p in (folder / "corrupt").iterdir()] == ["00000000000000000001_broken.jobs.msg"]
