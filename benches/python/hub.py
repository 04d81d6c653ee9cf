"""The official Python SDK side of the loadgen hub benchmarks (telemetry, idle connections).

Devices `{prefix}-{n:05}` must exist on the hub (loadgen provisions them through DPS first);
their keys are derived from the enrollment group key. Prints one JSON line with the fields of
the Rust clients (see `RunResult` in benches/src/bin/loadgen/result.rs).

    python hub.py --mode telemetry --devices 1 --concurrency 16 --messages 5000 ...
    python hub.py --mode idle --devices 1000 --idle-seconds 5 ...
"""
import argparse
import asyncio
import base64
import json
import logging
import sys
import time

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient

from fleet import cpu_seconds, derive_key, status_kib

PAYLOAD = "x" * 256


def message(n):
    m = Message(PAYLOAD, message_id=f"msg-{n:06}", content_encoding="utf-8",
                content_type="application/json")
    m.correlation_id = "corr-7"
    m.custom_properties["alert"] = "true"
    m.custom_properties["zone"] = "north/7"
    return m


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["telemetry", "idle"], required=True)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--scope")
    parser.add_argument("--group-key", required=True)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    with open(args.ca) as f:
        ca_pem = f.read()
    group_key = base64.b64decode(args.group_key)

    rss_start = status_kib("VmRSS")
    errors = []
    clients = []

    async def connect(n):
        device_id = f"{args.prefix}-{n:05}"
        client = IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=derive_key(group_key, device_id),
            hostname=args.host,
            device_id=device_id,
            server_verification_cert=ca_pem,
            keep_alive=60,
        )
        try:
            await asyncio.wait_for(client.connect(), timeout=120)
            clients.append(client)
        except Exception as e:  # noqa: BLE001
            errors.append(f"connect: {type(e).__name__}: {e}")

    gate = asyncio.Semaphore(100)

    async def gated_connect(n):
        async with gate:
            await connect(n)

    cpu_start = cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(gated_connect(n) for n in range(args.devices)))
    ok = 0
    if args.mode == "idle":
        await asyncio.sleep(args.idle_seconds)
        ok = len(clients)
    else:
        cpu_start = cpu_seconds()
        started = time.perf_counter()
        per_client = args.messages // max(1, len(clients))

        async def sender(client, first, count):
            nonlocal ok
            for n in range(first, first + count):
                try:
                    await client.send_message(message(n))
                    ok += 1
                except Exception as e:  # noqa: BLE001
                    errors.append(f"send: {type(e).__name__}: {e}")

        tasks = []
        for client in clients:
            # `concurrency` senders per connection: that many messages in flight.
            share = per_client // args.concurrency
            for w in range(args.concurrency):
                tasks.append(sender(client, w * share, share))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_start
    rss_end = status_kib("VmRSS")
    peak = status_kib("VmHWM")
    for client in clients:
        try:
            await asyncio.wait_for(client.shutdown(), timeout=10)
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps({
        "client": "python",
        "devices": args.devices,
        "concurrency": args.concurrency,
        "ok": ok,
        "failed": len(errors),
        "elapsed_s": elapsed,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "rss_start_kib": rss_start,
        "rss_end_kib": rss_end,
        "peak_rss_kib": peak,
        "cpu_s": cpu,
        "errors": sorted(set(errors))[:5],
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
