#!/usr/bin/env python3
"""Print jobsd's lifecycle events as they happen, resuming where it left off.

    python watch_events.py POSITION_FILE [SOCKET]

The seq of the last event handled is saved in POSITION_FILE; the next start (or a
reconnect after the daemon restarted) asks for events with seq > that position, so no
event is missed or seen twice. Without a saved position it starts with the next event.
SOCKET defaults to $JOBSD_SOCKET, else ~/.local/state/jobsd/jobsd.sock. Stop with Ctrl-C.
"""
import os
import sys
import time

import grpc

from jobsd_lib.rpc import jobsd_pb2 as pb
from jobsd_lib.rpc import jobsd_pb2_grpc as pb_grpc


def load(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except FileNotFoundError:
        return 0


def save(path: str, seq: int) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(f"{seq}\n")
    os.replace(path + ".tmp", path)  # a crash leaves the old or the new position


def main() -> int:
    position_file = sys.argv[1]
    socket = (sys.argv[2] if len(sys.argv) > 2 else os.environ.get("JOBSD_SOCKET")
              or os.path.expanduser("~/.local/state/jobsd/jobsd.sock"))
    position = load(position_file)
    try:
        while True:
            try:
                with grpc.insecure_channel(f"unix:{socket}") as channel:
                    request = pb.WatchEventsRequest(after_seq=position, follow=True)
                    for event in pb_grpc.JobsStub(channel).WatchEvents(request):
                        attrs = " ".join(f"{k}={v}" for k, v in sorted(event.attrs.items()))
                        print(f"{event.seq} {event.ts.ToJsonString()} {event.type} "
                              f"{event.run or event.job or '-'} {attrs}", flush=True)
                        position = event.seq
                        save(position_file, position)
                # A normal end of a follow stream: the daemon is stopping.
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:  # daemon down: retry; anything else: give up
                    raise
            print(f"(disconnected; resuming after seq {position})", file=sys.stderr, flush=True)
            time.sleep(2)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
