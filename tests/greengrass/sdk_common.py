"""What every case of sdk_checks.py and sdk_exports.py shares: the client on the test's port
(FERRYTEST_GG_PORT) and the PASS/FAIL check."""
import os
import sys

from stream_manager import (ReadMessagesOptions, ResourceNotFoundException, StreamManagerClient)

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
