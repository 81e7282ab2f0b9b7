"""The export cases of sdk_checks.py: export definitions through the SDK (described, updated,
refused), a Kinesis export delivering to moto and S3 export tasks with their status stream.
Environment: FERRYTEST_GG_KINESIS (the Kinesis stream of `kinesis_export`), FERRYTEST_GG_DIR and
FERRYTEST_GG_BUCKET (the input files and the bucket of `s3_task`)."""
import os
import time

from stream_manager import (ExportDefinition, ExportFormat, HTTPConfig, InvalidRequestException,
                            IoTAnalyticsConfig, IoTSiteWiseConfig, KinesisConfig,
                            MessageStreamDefinition, NotEnoughMessagesException,
                            S3ExportTaskDefinition, S3ExportTaskExecutorConfig, Status,
                            StatusConfig, StatusLevel, StatusMessage, StrategyOnFull, Util)

from sdk_common import check, client, fresh, read


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


EXPORT_CASES = (exports_roundtrip, kinesis_export, s3_task)
