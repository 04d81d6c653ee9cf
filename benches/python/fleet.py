"""The official Python SDK side of the loadgen benchmarks.

Registers group-enrolled symmetric-key devices with azure-iot-device's asyncio
ProvisioningDeviceClient, many at once in one process as a gateway would, and prints one JSON
line with the same fields as the Rust clients (see `RunResult` in
benches/src/bin/loadgen/result.rs).

    python fleet.py --mode fleet --host localhost --ca CA.pem --scope ID_SCOPE \
        --group-key B64 --devices 1000 --concurrency 1000 --prefix py-r0

The SDK connects to port 8883 (hard-coded in azure-iot-device), so the emulator must listen
there. --mode latency registers --devices devices one after the other (after one warm-up).
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import resource
import sys
import time

from azure.iot.device.aio import ProvisioningDeviceClient


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def derive_key(group_key, registration_id):
    return base64.b64encode(
        hmac.new(group_key, registration_id.encode(), hashlib.sha256).digest()
    ).decode()


async def register(args, ca_pem, group_key, registration_id):
    """One device: returns (latency seconds, None) or (latency, error text)."""
    started = time.perf_counter()
    try:
        client = ProvisioningDeviceClient.create_from_symmetric_key(
            provisioning_host=args.host,
            registration_id=registration_id,
            id_scope=args.scope,
            symmetric_key=derive_key(group_key, registration_id),
            server_verification_cert=ca_pem,
        )
        result = await asyncio.wait_for(client.register(), timeout=args.timeout)
        if result.status != "assigned":
            return time.perf_counter() - started, f"status {result.status}"
        return time.perf_counter() - started, None
    except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
        return time.perf_counter() - started, f"{type(e).__name__}: {e}"


def quantile(samples, q):
    if not samples:
        return 0.0
    s = sorted(samples)
    rank = max(1, min(len(s), int(-(-len(s) * q // 1))))
    return s[rank - 1]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["fleet", "latency"], default="fleet")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--scope", required=True)
    parser.add_argument("--group-key", required=True)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--prefix", default="py")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--deadline", type=float, default=180.0,
        help="stop waiting after this many seconds; unfinished devices count as failed",
    )
    parser.add_argument("--messages", type=int, default=0, help="unused (hub.py)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)

    with open(args.ca) as f:
        ca_pem = f.read()
    group_key = base64.b64decode(args.group_key)
    rss_start = status_kib("VmRSS")

    latencies, errors = [], []
    if args.mode == "latency":
        await register(args, ca_pem, group_key, f"{args.prefix}-warmup")
    cpu_start = cpu_seconds()
    started = time.perf_counter()
    if args.mode == "latency":
        for n in range(args.devices):
            latency, error = await register(args, ca_pem, group_key, f"{args.prefix}-{n:05}")
            (errors.append(error) if error else latencies.append(latency))
    else:
        gate = asyncio.Semaphore(args.concurrency)

        async def one(n):
            async with gate:
                return await register(args, ca_pem, group_key, f"{args.prefix}-{n:05}")

        # A registration stuck inside the SDK can ignore cancellation: bound the whole run.
        tasks = [asyncio.ensure_future(one(n)) for n in range(args.devices)]
        done, pending = await asyncio.wait(tasks, timeout=args.deadline)
        for task in done:
            latency, error = task.result()
            (errors.append(error) if error else latencies.append(latency))
        errors.extend(["unfinished at the deadline"] * len(pending))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_start

    samples_ms = [x * 1e3 for x in latencies]
    print(
        json.dumps(
            {
                "client": "python",
                "devices": args.devices,
                "concurrency": args.concurrency,
                "ok": len(latencies),
                "failed": len(errors),
                "elapsed_s": elapsed,
                "p50_ms": quantile(samples_ms, 0.5),
                "p99_ms": quantile(samples_ms, 0.99),
                "rss_start_kib": rss_start,
                "peak_rss_kib": status_kib("VmHWM"),
                "cpu_s": cpu,
                "samples_ms": samples_ms if args.mode == "latency" else [],
                "errors": sorted(set(errors))[:5],
            }
        )
    )
    sys.stdout.flush()
    # The SDK's threads of unfinished devices would keep the interpreter alive.
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
