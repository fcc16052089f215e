"""moto_server on 127.0.0.1, with DynamoDB's per-item atomicity restored.

    python3 scripts/moto-server.py PORT [--exit-with-stdin]

moto serves each request on its own thread and its DynamoDB backend takes no lock, so two
concurrent UpdateItems on one item can both read the old value and one update is lost (a loop
counter decremented once for two iterations). DynamoDB applies each write to an item atomically;
this launcher restores that by running DynamoDB calls one at a time. SQS stays concurrent (its
long polls must not block everyone).

--exit-with-stdin: exit when standard input closes, so a test process that is killed (a timeout,
Ctrl-C) does not leave a server behind: the pipe closes with the process. Used by the Rust tests
(tests/src/moto.rs embeds this file); scripts/lambda-local runs it without.
"""
import os
import sys
import threading

port = sys.argv[1]
if "--exit-with-stdin" in sys.argv[2:]:
    def watch():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()

from moto.dynamodb.responses import DynamoHandler  # noqa: E402

_dynamodb_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized(self):
    with _dynamodb_lock:
        return _call_action(self)


DynamoHandler.call_action = _serialized

from moto.server import main  # noqa: E402

main(["-H", "127.0.0.1", "-p", port])
