"""NATS JetStream as the source tests use it (tests/it/sources_nats.rs), through the nats-py
client: create a stream, publish numbered events to it (each acknowledged by the server), and
read a consumer's state. Prints one JSON line.

    nats_tool.py stream URL STREAM SUBJECTS
    nats_tool.py publish URL SUBJECT START COUNT [--shape object|array|ndjson]
    nats_tool.py consumer URL STREAM CONSUMER
    nats_tool.py consumers URL STREAM

A server with authentication or TLS: NATS_USER and NATS_PASSWORD, or NATS_TOKEN; NATS_CA, the
CA file a tls:// server is verified with.
"""

import asyncio
import json
import os
import ssl
import sys

import nats

# Publishes in flight at once: enough to keep the server busy, few enough to stay in memory.
WINDOW = 500
T0 = 1_700_000_000_000


def connect(url):
    options = {}
    if os.environ.get("NATS_USER"):
        options["user"] = os.environ["NATS_USER"]
        options["password"] = os.environ["NATS_PASSWORD"]
    if os.environ.get("NATS_TOKEN"):
        options["token"] = os.environ["NATS_TOKEN"]
    if os.environ.get("NATS_CA"):
        options["tls"] = ssl.create_default_context(cafile=os.environ["NATS_CA"])
    return nats.connect(url, **options)


def event(i):
    return {"timestamp": T0 + i, "i": i, "device": "d%d" % (i % 16)}


def payload(i, shape):
    if shape == "array":
        return json.dumps([event(i), event(i + 1_000_000_000)]).encode()
    if shape == "ndjson":
        return (json.dumps(event(i)) + "\n" + json.dumps(event(i + 1_000_000_000))).encode()
    return json.dumps(event(i)).encode()


async def stream(url, name, subjects):
    nc = await connect(url)
    js = nc.jetstream()
    await js.add_stream(name=name, subjects=subjects.split(","))
    await nc.close()
    return {"stream": name}


async def publish(url, subject, start, count, shape):
    nc = await connect(url)
    js = nc.jetstream()
    done = 0
    for first in range(start, start + count, WINDOW):
        last = min(first + WINDOW, start + count)
        acks = [js.publish(subject, payload(i, shape)) for i in range(first, last)]
        await asyncio.gather(*acks)
        done += last - first
    await nc.close()
    return {"published": done}


async def consumer(url, stream_name, name):
    nc = await connect(url)
    js = nc.jetstream()
    info = await js.consumer_info(stream_name, name)
    await nc.close()
    return {
        "num_pending": info.num_pending,
        "num_ack_pending": info.num_ack_pending,
        "delivered": info.delivered.stream_seq,
        "ack_floor": info.ack_floor.stream_seq,
    }


async def consumers(url, stream_name):
    nc = await connect(url)
    js = nc.jetstream()
    infos = await js.consumers_info(stream_name)
    await nc.close()
    return {"consumers": sorted(info.name for info in infos)}


def main(argv):
    command = argv[1]
    if command == "stream":
        result = stream(argv[2], argv[3], argv[4])
    elif command == "publish":
        shape = argv[7] if len(argv) > 7 and argv[6] == "--shape" else "object"
        result = publish(argv[2], argv[3], int(argv[4]), int(argv[5]), shape)
    elif command == "consumer":
        result = consumer(argv[2], argv[3], argv[4])
    elif command == "consumers":
        result = consumers(argv[2], argv[3])
    else:
        raise SystemExit("unknown command " + command)
    print(json.dumps(asyncio.run(result)))


if __name__ == "__main__":
    main(sys.argv)
