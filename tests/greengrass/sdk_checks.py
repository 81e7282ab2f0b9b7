#!/usr/bin/env python3
"""Drives Ferry's Greengrass port with the official Stream Manager SDK (stream-manager==1.1.2).

    python sdk_checks.py CASE          (run by tests/greengrass.rs with the venv's python)

Environment: FERRYTEST_GG_PORT (the port), AWS_CONTAINER_AUTHORIZATION_TOKEN (as a Greengrass
component gets it), FERRYTEST_GG_WRONG_TOKEN (for the `wrong_token` case), FERRYTEST_GG_KINESIS
(the Kinesis stream of `kinesis_export`), FERRYTEST_GG_DIR and FERRYTEST_GG_BUCKET (the input
files and the bucket of `s3_task`). Every check prints PASS or FAIL; the first FAIL exits 1. The
last line of a run that passed is ALL CHECKS PASSED.
"""
import os
import sys
import threading
import time

from stream_manager import (ExportDefinition, InvalidRequestException, KinesisConfig,
                            MessageStreamDefinition, NotEnoughMessagesException, Persistence,
                            ResourceNotFoundException, StrategyOnFull, UnknownFailureException,
                            UpdateNotAllowedException)
from stream_manager.exceptions import ConnectFailedException

from sdk_common import check, client, fresh, read
from sdk_exports import EXPORT_CASES


def acceptance():
    """The spec's acceptance script (section 6) on the test's port, with a few more checks on
    what describe echoes. The daemon gives exports made through this port a region and keys
    ([greengrass.exports]), so the disabled Kinesis export is defined without reaching AWS."""
    stream = "AcceptanceStream_" + str(int(time.time()))
    payloads = [b"first", b"\x00\x01\x02binary", "third-\u00e9".encode("utf-8")]
    with client() as c:
        try:
            c.delete_message_stream(stream_name=stream)
        except ResourceNotFoundException:
            pass
        export = ExportDefinition(kinesis=[KinesisConfig(
            identifier="KinesisExport" + stream, kinesis_stream_name="my-kinesis-stream",
            batch_size=10, batch_interval_millis=60000, priority=1,
            disabled=True)])            # keep the test offline; set False to exercise the exporter
        c.create_message_stream(MessageStreamDefinition(
            name=stream, max_size=64 * 1024 * 1024, stream_segment_size=1024 * 1024,
            strategy_on_full=StrategyOnFull.OverwriteOldestData, persistence=Persistence.File,
            flush_on_write=True, export_definition=export))
        check(stream in (c.list_streams() or []), "list_streams contains the new stream")

        seqs = [c.append_message(stream_name=stream, data=p) for p in payloads]
        check(seqs == list(range(seqs[0], seqs[0] + 3)), "consecutive sequence numbers %r" % seqs)

        msgs = read(c, stream, seqs[0], 3, 3, 5000)
        check([m.payload for m in msgs] == payloads, "3 payloads round-trip byte-exact")
        check([m.sequence_number for m in msgs] == seqs, "sequence numbers match")
        check(all(m.stream_name == stream and m.ingest_time > 1_500_000_000_000 for m in msgs),
              "stream_name and epoch-ms ingest_time set")

        first = c.read_messages(stream)
        check(len(first) == 1 and first[0].payload == payloads[0], "default read returns 1 message")

        try:
            read(c, stream, seqs[-1] + 1, 1, None, 0)
            check(False, "NotEnoughMessagesException expected")
        except NotEnoughMessagesException:
            check(True, "NotEnoughMessages with timeout 0")

        def late_append():
            time.sleep(0.5)
            c.append_message(stream_name=stream, data=b"late")
        t = threading.Thread(target=late_append)
        started = time.time()
        t.start()
        late = read(c, stream, seqs[-1] + 1, 1, 10, 10000)
        t.join()
        check(len(late) == 1 and late[0].payload == b"late", "long-poll sees the concurrent append")
        check(time.time() - started < 5, "long-poll returns once min_message_count is met")
        seqs.append(late[0].sequence_number)

        info = c.describe_message_stream(stream)
        check(info.definition.name == stream and info.definition.persistence == Persistence.File,
              "describe echoes the definition")
        check(info.definition.flush_on_write is True and info.definition.max_size == 64 << 20,
              "describe echoes the limits")
        check(info.storage_status.newest_sequence_number == seqs[-1], "newest_sequence_number")
        check(info.storage_status.oldest_sequence_number <= seqs[0], "oldest_sequence_number")
        check("KinesisExport" + stream in [e.export_config_identifier for e in (info.export_statuses or [])],
              "export status listed")
        k = (info.definition.export_definition.kinesis or [None])[0]
        check(k is not None and (k.identifier, k.kinesis_stream_name, k.batch_size,
                                 k.batch_interval_millis, k.priority, k.disabled)
              == ("KinesisExport" + stream, "my-kinesis-stream", 10, 60000, 1, True),
              "describe echoes the Kinesis export config")

        c.delete_message_stream(stream_name=stream)
        try:
            c.describe_message_stream(stream)
            check(False, "ResourceNotFoundException expected")
        except ResourceNotFoundException:
            check(True, "describe after delete -> ResourceNotFound")


def waiting_reads():
    with client() as c:
        fresh(c, MessageStreamDefinition(name="waits", strategy_on_full=StrategyOnFull.RejectNewData))

        def append_later():
            time.sleep(0.3)
            for i in range(3):
                c.append_message("waits", b"m%d" % i)
        t = threading.Thread(target=append_later)
        t.start()
        msgs = read(c, "waits", 0, 3, 10, 10000)
        t.join()
        check([m.payload for m in msgs] == [b"m0", b"m1", b"m2"], "a read waits for 3 messages")

        started = time.time()
        try:
            read(c, "waits", 3, 1, 1, 400)
            check(False, "NotEnoughMessages after the timeout")
        except NotEnoughMessagesException:
            elapsed = time.time() - started
            check(0.35 <= elapsed < 5, "a read past the end waits its timeout (%.2fs)" % elapsed)
        try:
            read(c, "waits", 2, 2, 5, 300)
            check(False, "NotEnoughMessages when fewer than the minimum arrive")
        except NotEnoughMessagesException:
            check(True, "one message where two were asked for is NotEnoughMessages")
        msgs = read(c, "waits", 0, 1, None, 0)
        check(len(msgs) == 1, "without maxMessageCount a read returns max(min, 1) messages")
        msgs = read(c, "waits", 0, 2, None, 0)
        check(len(msgs) == 2, "min 2 without max returns 2")
        try:
            read(c, "nosuchstream", 0)
            check(False, "a read of a missing stream fails")
        except ResourceNotFoundException:
            check(True, "a read of a missing stream is ResourceNotFound")


def trimmed():
    with client() as c:
        fresh(c, MessageStreamDefinition(name="trimmed", max_size=4096, stream_segment_size=1024,
                                         strategy_on_full=StrategyOnFull.OverwriteOldestData))
        for i in range(100):
            c.append_message("trimmed", b"%04d" % i + b"x" * 96)
        info = c.describe_message_stream("trimmed")
        oldest = info.storage_status.oldest_sequence_number
        check(oldest > 0, "retention trimmed the oldest messages (oldest is %d)" % oldest)
        msgs = read(c, "trimmed", 0, 1, 5, 0)
        check(msgs[0].sequence_number == oldest,
              "a read from trimmed number 0 starts at the oldest, %d" % oldest)
        check(msgs[0].payload.startswith(b"%04d" % oldest), "with that message's payload")


def full():
    with client() as c:
        fresh(c, MessageStreamDefinition(name="full_reject", max_size=4096, stream_segment_size=1024,
                                         strategy_on_full=StrategyOnFull.RejectNewData))
        stored = 0
        try:
            for i in range(1000):
                c.append_message("full_reject", b"%04d" % i + b"r" * 96)
                stored += 1
            check(False, "a full RejectNewData stream refuses appends")
        except UnknownFailureException as e:
            check("full" in e.message, "RejectNewData: the append is refused as full: " + e.message)
        check(0 < stored < 1000, "%d messages were stored before it was full" % stored)
        msgs = read(c, "full_reject", 0, 1, 1000, 0)
        check(len(msgs) == stored and msgs[0].sequence_number == 0, "nothing stored was dropped")

        fresh(c, MessageStreamDefinition(name="full_overwrite", max_size=4096,
                                         stream_segment_size=1024,
                                         strategy_on_full=StrategyOnFull.OverwriteOldestData))
        for i in range(1000):
            c.append_message("full_overwrite", b"%04d" % i + b"o" * 96)
        info = c.describe_message_stream("full_overwrite")
        check(info.storage_status.newest_sequence_number == 999, "OverwriteOldestData accepts every append")
        check(info.storage_status.oldest_sequence_number > 0, "and drops the oldest")
        check(info.storage_status.total_bytes <= 4096, "within maxSize")


def update():
    with client() as c:
        definition = MessageStreamDefinition(name="updated", max_size=4096, stream_segment_size=1024,
                                             strategy_on_full=StrategyOnFull.RejectNewData)
        fresh(c, definition)
        try:
            for i in range(1000):
                c.append_message("updated", b"u" * 100)
        except UnknownFailureException:
            pass
        check(c.describe_message_stream("updated").storage_status.total_bytes > 3000, "the stream is full")
        info = c.describe_message_stream("updated")
        info.definition.max_size = 65536
        info.definition.time_to_live_millis = 3600000
        c.update_message_stream(info.definition)
        c.append_message("updated", b"fits now")
        after = c.describe_message_stream("updated").definition
        check(after.max_size == 65536 and after.time_to_live_millis == 3600000,
              "describe shows the new maxSize and timeToLiveMillis")

        lower = c.describe_message_stream("updated").definition
        lower.max_size = 2048
        try:
            c.update_message_stream(lower)
            check(False, "a maxSize below the stored bytes is refused under RejectNewData")
        except InvalidRequestException as e:
            check("maxSize" in e.message, "a maxSize below the stored bytes is refused: " + e.message)

        memory = c.describe_message_stream("updated").definition
        memory.persistence = Persistence.Memory
        try:
            c.update_message_stream(memory)
            check(False, "persistence cannot change")
        except UpdateNotAllowedException:
            check(True, "changing persistence is UpdateNotAllowed")

        try:
            c.update_message_stream(MessageStreamDefinition(
                name="neverexisted", strategy_on_full=StrategyOnFull.RejectNewData))
            check(False, "updating a missing stream fails")
        except ResourceNotFoundException:
            check(True, "updating a missing stream is ResourceNotFound")
        try:
            c.create_message_stream(definition)
            check(False, "creating an existing stream fails")
        except InvalidRequestException:
            check(True, "creating an existing stream is InvalidRequest")


def wrong_token():
    os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = os.environ["FERRYTEST_GG_WRONG_TOKEN"]
    try:
        client()
        check(False, "a wrong token is refused")
    except ConnectFailedException:
        check(True, "a wrong token fails the connection")
    del os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    try:
        client()
        check(False, "no token is refused")
    except ConnectFailedException:
        check(True, "no token fails the connection")


def concurrent():
    n = 200
    with client() as setup:
        fresh(setup, MessageStreamDefinition(name="shared", strategy_on_full=StrategyOnFull.RejectNewData))
    failures, seen = [], {}

    def writer(tag):
        try:
            with client() as c:
                for i in range(n):
                    c.append_message("shared", b"%s-%d" % (tag, i))
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append("writer %s: %r" % (tag, e))

    def reader(tag):
        try:
            with client() as c:
                got, start = [], 0
                while len(got) < 2 * n:
                    msgs = read(c, "shared", start, 1, 50, 10000)
                    got.extend(msgs)
                    start = msgs[-1].sequence_number + 1
                seen[tag] = got
        except Exception as e:  # noqa: BLE001
            failures.append("reader %s: %r" % (tag, e))

    threads = [threading.Thread(target=f, args=(t,)) for f in (writer, reader) for t in (b"A", b"B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not failures, "two writers and two readers on one stream: %s" % failures)
    for tag, got in seen.items():
        seqs = [m.sequence_number for m in got]
        check(seqs == list(range(2 * n)), "reader %s saw every sequence number once, in order" % tag)
        for w in (b"A", b"B"):
            mine = [m.payload for m in got if m.payload.startswith(w + b"-")]
            check(mine == [b"%s-%d" % (w, i) for i in range(n)],
                  "reader %s saw writer %s's messages in its order" % (tag, w))


INTEROP = [b"from the sdk", b"\x00\xff binary", b"third"]


def sdk_write():
    """Writes the stream `interop_sdk` for the HTTP API and the CLI to read."""
    with client() as c:
        fresh(c, MessageStreamDefinition(name="interop_sdk", strategy_on_full=StrategyOnFull.RejectNewData))
        seqs = [c.append_message("interop_sdk", p) for p in INTEROP]
        check(seqs == [0, 1, 2], "appended through the SDK at 0, 1, 2")


def sdk_read():
    """Reads the stream `interop_api` that the HTTP API created and wrote."""
    with client() as c:
        check("interop_api" in c.list_streams(), "a stream created through the API is listed")
        msgs = read(c, "interop_api", 0, 3, 3, 5000)
        check([m.payload for m in msgs] == [b"one", b"two", b"three"], "its records are read through the SDK")
        info = c.describe_message_stream("interop_api")
        check(info.definition.max_size == 65536, "its definition is described: %r" % info.definition.max_size)
        check(info.definition.strategy_on_full == StrategyOnFull.OverwriteOldestData, "with its strategy")


CASES = {f.__name__: f for f in (acceptance, waiting_reads, trimmed, full, update, wrong_token,
                                 concurrent, sdk_write, sdk_read) + EXPORT_CASES}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    print("ALL CHECKS PASSED")
