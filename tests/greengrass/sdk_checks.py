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

from stream_manager import (ExportDefinition, ExportFormat, HTTPConfig, InvalidRequestException,
                            IoTAnalyticsConfig, IoTSiteWiseConfig, KinesisConfig,
                            MessageStreamDefinition, NotEnoughMessagesException, Persistence,
                            ReadMessagesOptions, ResourceNotFoundException,
                            S3ExportTaskDefinition, S3ExportTaskExecutorConfig, Status,
                            StatusConfig, StatusLevel, StatusMessage, StrategyOnFull,
                            StreamManagerClient, UnknownFailureException,
                            UpdateNotAllowedException, Util)
from stream_manager.exceptions import ConnectFailedException

PORT = int(os.environ["FERRYTEST_GG_PORT"])


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def client():
    return StreamManagerClient(host="127.0.0.1", port=PORT, connect_timeout=5, request_timeout=30)


def fresh(c, definition):
    try:
        c.delete_message_stream(stream_name=definition.name)
    except ResourceNotFoundException:
        pass
    c.create_message_stream(definition)


def read(c, name, start, min_count=1, max_count=None, timeout_ms=0):
    return c.read_messages(name, ReadMessagesOptions(
        desired_start_sequence_number=start, min_message_count=min_count,
        max_message_count=max_count, read_timeout_millis=timeout_ms))


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


def refused(c, definition, what, needle):
    try:
        c.create_message_stream(definition)
        check(False, what)
    except InvalidRequestException as e:
        check(needle in e.message, "%s: %s" % (what, e.message))


def exports_roundtrip():
    """Creates `exported` with a Kinesis, an HTTP and an S3 task export (all disabled), updates
    it the describe → edit → update way, and leaves it for the HTTP API to show."""
    with client() as c:
        fresh(c, MessageStreamDefinition(name="exported_status", strategy_on_full=StrategyOnFull.RejectNewData))
        export = ExportDefinition(
            kinesis=[KinesisConfig(identifier="K1", kinesis_stream_name="ks", batch_size=100,
                                   priority=2, start_sequence_number=0, disabled=True)],
            http=[HTTPConfig(identifier="H1", uri="http://127.0.0.1:9/in", batch_size=50,
                             batch_interval_millis=120000, export_format=ExportFormat.JSON_BATCHED,
                             disabled=True)],
            s3_task_executor=[S3ExportTaskExecutorConfig(
                identifier="S1", size_threshold_for_multipart_upload_bytes=8 * 1024 * 1024,
                priority=3, disabled=True,
                status_config=StatusConfig(status_level=StatusLevel.DEBUG,
                                           status_stream_name="exported_status"))])
        fresh(c, MessageStreamDefinition(name="exported", strategy_on_full=StrategyOnFull.RejectNewData,
                                         export_definition=export))
        info = c.describe_message_stream("exported")
        e = info.definition.export_definition
        check([k.identifier for k in e.kinesis] == ["K1"] and e.kinesis[0].batch_size == 100
              and e.kinesis[0].priority == 2 and e.kinesis[0].start_sequence_number == 0,
              "describe shows the Kinesis config")
        check([h.uri for h in e.http] == ["http://127.0.0.1:9/in"]
              and e.http[0].export_format == ExportFormat.JSON_BATCHED
              and e.http[0].batch_interval_millis == 120000, "describe shows the HTTP config")
        s3 = e.s3_task_executor[0]
        check((s3.identifier, s3.size_threshold_for_multipart_upload_bytes, s3.priority,
               s3.status_config.status_stream_name, s3.status_config.status_level)
              == ("S1", 8 * 1024 * 1024, 3, "exported_status", StatusLevel.DEBUG),
              "describe shows the S3 task config")
        ids = sorted(x.export_config_identifier for x in info.export_statuses)
        check(ids == ["H1", "K1", "S1"], "every export has a status: %r" % ids)
        check(all(x.last_exported_sequence_number == -1 for x in info.export_statuses),
              "nothing exported yet: lastExportedSequenceNumber -1")

        definition = info.definition
        definition.export_definition.kinesis[0].priority = 5
        definition.export_definition.http = None
        c.update_message_stream(definition)
        e = c.describe_message_stream("exported").definition.export_definition
        check(e.kinesis[0].priority == 5 and not e.http and e.s3_task_executor[0].identifier == "S1",
              "an update changes K1, removes H1 and keeps S1")

        for i in range(5):
            c.append_message("exported", b"m%d" % i)
        definition = c.describe_message_stream("exported").definition
        definition.export_definition.kinesis[0].start_sequence_number = 3
        c.update_message_stream(definition)
        k1 = [x for x in c.describe_message_stream("exported").export_statuses
              if x.export_config_identifier == "K1"][0]
        check(k1.last_exported_sequence_number == 2,
              "a changed startSequenceNumber moves the export to 3: %r" % k1)
        definition.export_definition.kinesis[0].start_sequence_number = 99
        try:
            c.update_message_stream(definition)
            check(False, "a start past the newest message is refused")
        except InvalidRequestException as e:
            check("startSequenceNumber" in e.message, "a start past the newest message is refused: " + e.message)

        refused(c, MessageStreamDefinition(
            name="sitewise", strategy_on_full=StrategyOnFull.RejectNewData,
            export_definition=ExportDefinition(iot_sitewise=[IoTSiteWiseConfig(identifier="W")])),
            "an IoT SiteWise export is refused", "IoT SiteWise")
        refused(c, MessageStreamDefinition(
            name="analytics", strategy_on_full=StrategyOnFull.RejectNewData,
            export_definition=ExportDefinition(iot_analytics=[IoTAnalyticsConfig(
                identifier="A", iot_channel="ch")])),
            "an IoT Analytics export is refused", "IoT Analytics")
        refused(c, MessageStreamDefinition(
            name="raw", strategy_on_full=StrategyOnFull.RejectNewData,
            export_definition=ExportDefinition(http=[HTTPConfig(
                identifier="R", uri="http://127.0.0.1:9/", export_format=ExportFormat.RAW_NOT_BATCHED)])),
            "RAW_NOT_BATCHED is refused", "RAW_NOT_BATCHED")
        refused(c, MessageStreamDefinition(
            name="nostatus", strategy_on_full=StrategyOnFull.RejectNewData,
            export_definition=ExportDefinition(s3_task_executor=[S3ExportTaskExecutorConfig(
                identifier="S", status_config=StatusConfig(status_stream_name="missing_status"))])),
            "a status stream that does not exist is refused", "missing_status")
        check("sitewise" not in c.list_streams(), "a refused stream is not created")


def wait_export(c, stream, export, last, timeout=60):
    """Waits until `export` of `stream` has exported up to sequence number `last`."""
    deadline = time.time() + timeout
    while True:
        statuses = {s.export_config_identifier: s for s in
                    (c.describe_message_stream(stream).export_statuses or [])}
        s = statuses.get(export)
        if s is not None and s.last_exported_sequence_number >= last:
            return s
        if time.time() > deadline:
            check(False, "export %s reached %d in time (status: %r)" % (export, last, s))
        time.sleep(0.2)


def kinesis_export():
    """A Kinesis export defined through the SDK delivers to the stream FERRYTEST_GG_KINESIS."""
    kinesis = os.environ["FERRYTEST_GG_KINESIS"]
    with client() as c:
        fresh(c, MessageStreamDefinition(
            name="to_kinesis", strategy_on_full=StrategyOnFull.RejectNewData,
            export_definition=ExportDefinition(kinesis=[KinesisConfig(
                identifier="ToKinesis", kinesis_stream_name=kinesis, batch_size=5, priority=1)])))
        for i in range(12):
            c.append_message("to_kinesis", b"gg-%02d" % i)
        s = wait_export(c, "to_kinesis", "ToKinesis", 11)
        check(s.exported_messages_count == 12 and s.exported_bytes_from_stream == 12 * 5,
              "12 messages (60 bytes) exported: %r" % s)
        check(not s.error_message, "without an error: %r" % s.error_message)


def task(path, bucket, key, metadata=None):
    return Util.validate_and_serialize_to_json_bytes(S3ExportTaskDefinition(
        input_url="file:" + path, bucket=bucket, key=key, user_metadata=metadata))


def s3_task():
    """S3 tasks appended through the SDK upload files to FERRYTEST_GG_BUCKET; their status is
    read back from the status stream as StatusMessage objects."""
    d, bucket = os.environ["FERRYTEST_GG_DIR"], os.environ["FERRYTEST_GG_BUCKET"]
    with client() as c:
        fresh(c, MessageStreamDefinition(name="S3Status", strategy_on_full=StrategyOnFull.RejectNewData))
        fresh(c, MessageStreamDefinition(
            name="S3Tasks", strategy_on_full=StrategyOnFull.RejectNewData,
            export_definition=ExportDefinition(s3_task_executor=[S3ExportTaskExecutorConfig(
                identifier="S3Export", status_config=StatusConfig(
                    status_level=StatusLevel.INFO, status_stream_name="S3Status"))])))
        tasks = [
            task(d + "/small.txt", bucket, "gg/!{timestamp:yyyy}/small.txt", {"Origin": "sdk"}),
            task(d + "/big.bin", bucket, "gg/big.bin"),
            task(d + "/missing.txt", bucket, "gg/missing.txt"),
            task(d + "/small.txt", "no-such-bucket-gg", "gg/nobucket.txt"),
        ]
        seqs = [c.append_message("S3Tasks", t) for t in tasks]
        check(seqs == [0, 1, 2, 3], "4 tasks appended")
        statuses, start, deadline = {}, 0, time.time() + 120
        final = (Status.Success, Status.Failure)
        while not all(statuses.get(s, [None])[-1] in final for s in seqs):
            if time.time() > deadline:
                check(False, "every task reached a final status in time: %r" % statuses)
            try:
                msgs = read(c, "S3Status", start, 1, 100, 2000)
            except NotEnoughMessagesException:
                continue
            for m in msgs:
                sm = Util.deserialize_json_bytes_to_obj(m.payload, StatusMessage)
                ctx = sm.status_context
                check(ctx.stream_name == "S3Tasks" and ctx.export_identifier == "S3Export",
                      "status of task %d names its stream and export" % ctx.sequence_number)
                statuses.setdefault(ctx.sequence_number, []).append(sm.status)
                if sm.status in final:
                    print("task %d: %s %s" % (ctx.sequence_number, sm.status, sm.message), flush=True)
                    if ctx.sequence_number == 0:
                        check(ctx.s3_export_task_definition.key == "gg/!{timestamp:yyyy}/small.txt"
                              and ctx.s3_export_task_definition.user_metadata == {"Origin": "sdk"},
                              "the status carries the task as appended")
                    if ctx.sequence_number == 2:
                        check("missing.txt" in sm.message, "the failure names the missing file")
                    if ctx.sequence_number == 3:
                        check("NoSuchBucket" in sm.message, "the failure names the missing bucket")
            start = msgs[-1].sequence_number + 1
        for s in (0, 1):
            check(statuses[s] == [Status.InProgress, Status.Success],
                  "task %d: InProgress then Success (%r)" % (s, statuses[s]))
        for s in (2, 3):
            check(statuses[s][-1] == Status.Failure, "task %d: Failure (%r)" % (s, statuses[s]))
        s = wait_export(c, "S3Tasks", "S3Export", 3)
        check(s.exported_messages_count == 2, "2 tasks done, 2 failed: %r" % s)


CASES = {f.__name__: f for f in (acceptance, waiting_reads, trimmed, full, update, wrong_token,
                                 concurrent, sdk_write, sdk_read, exports_roundtrip,
                                 kinesis_export, s3_task)}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    print("ALL CHECKS PASSED")
