"""The measuring half of bench/events.sh: see there."""

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from confluent_kafka import Consumer, Producer
from results import add_row  # bench/results.py, beside this script

PARTITIONS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"events_bench.py: timed out waiting for {what}")
        time.sleep(0.05)


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def events(count):
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    for i in range(count):
        last = now - timedelta(days=rng.randint(31, 400))
        event = {"event_id": f"b-{i}", "event_timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "customer_id": rng.randint(1, 10**9), "country_code": "Peru",
                 "last_order_ts": last.strftime("%Y-%m-%d %H:%M:%S"),
                 "first_order_ts": (last - timedelta(days=rng.randint(0, 900))).strftime("%Y-%m-%d"),
                 "total_orders": rng.randint(0, 37),
                 "segment_name": rng.choice(["frequent_segment", "recency_segment"])}
        yield str(event["customer_id"]).encode(), json.dumps(event).encode()


def produce(broker, topic, count):
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 50, "acks": "all"})
    for key, value in events(count):
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        sys.exit("events_bench.py: the broker did not take every event")


def plain_read(broker, topic, count):
    """Seconds a plain consumer (librdkafka via confluent-kafka) takes to read `count` events."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"plain-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    read, start = 0, None
    while read < count:
        batch = consumer.consume(10_000, timeout=1.0)
        if batch and start is None:
            start = time.monotonic()
        read += sum(1 for m in batch if not m.error())
    took = time.monotonic() - start
    consumer.close()
    return took


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def consumer_round(args, broker, tables, work, count, index, tansu_pid):
    """(seconds from the first event read to the last result acknowledged, CPU seconds of
    voucher-events, CPU seconds of the broker) in that time."""
    port = free_port()
    log = open(work / f"events-{index}.log", "wb")
    process = subprocess.Popen(
        [args.events_bin, "--tables-dir", str(tables), "--kafka-brokers", broker,
         "--group-id", f"bench-{index}-{uuid.uuid4()}", "--port", str(port),
         "--events-topic", "bench-requests", "--results-topic", "bench-results",
         "--dead-letter-topic", "bench-dead-letters", "--check-interval", "1s"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_for("voucher-events", lambda: listening(port), 30)
        start = None
        while True:
            consumed = metric(port, "voucher_events_consumed_total")
            if consumed and start is None:
                start = time.monotonic()
                cpu = cpu_seconds(process.pid), cpu_seconds(tansu_pid)
            if metric(port, "voucher_events_results_total") >= count:
                return (time.monotonic() - start, cpu_seconds(process.pid) - cpu[0],
                        cpu_seconds(tansu_pid) - cpu[1])
            time.sleep(0.01)
    finally:
        process.terminate()
        process.wait(60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-bin", required=True)
    parser.add_argument("--publish-table", required=True)
    parser.add_argument("--tansu", required=True)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="events-bench-"))
    tables = work / "tables"
    subprocess.run([args.publish_table, str(tables)], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = f"127.0.0.1:{port}"
    tansu = subprocess.Popen([args.tansu, "broker", "--listener-url", url,
                              "--advertised-listener-url", url, "--storage-engine",
                              "sqlite://tansu.db"], cwd=work, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_for("tansu", lambda: listening(port), 30)
        for topic in ("bench-requests", "bench-results", "bench-dead-letters"):
            subprocess.run([args.tansu, "topic", "create", topic, "--broker", url,
                            "--partitions", str(PARTITIONS)], check=True, cwd=work,
                           capture_output=True)
        print(f"events_bench.py: producing {args.events} events", file=sys.stderr)
        produce(broker, "bench-requests", args.events)
        rows = []
        for index in range(args.rounds):
            plain = plain_read(broker, "bench-requests", args.events)
            answered, own_cpu, broker_cpu = consumer_round(args, broker, tables, work,
                                                           args.events, index, tansu.pid)
            rows.append((args.events / answered, args.events / plain, own_cpu / answered,
                         broker_cpu / answered))
            print(f"events_bench.py: round {index + 1}: voucher-events "
                  f"{args.events / answered:,.0f} events/s (using {own_cpu / answered:.2f} "
                  f"cores, the broker {broker_cpu / answered:.2f}), plain read "
                  f"{args.events / plain:,.0f} events/s", file=sys.stderr)
    finally:
        tansu.terminate()
        tansu.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    answered = statistics.median(r[0] for r in rows)
    plain = statistics.median(r[1] for r in rows)
    own_cores = statistics.median(r[2] for r in rows)
    broker_cores = statistics.median(r[3] for r in rows)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    row = (f"| {datetime.now(timezone.utc):%Y-%m-%dT%H:%MZ} | {commit} | {os.cpu_count()} | "
           f"{cpu} | {load} | {args.events} | {answered:,.0f} | {plain:,.0f} | "
           f"{answered / plain:.2f}x | {own_cores:.2f} | {broker_cores:.2f} |")
    print(row)
    if args.results:
        add_row(args.results, HEADER.splitlines(), row, replace_intro=False)


HEADER = """## Kafka events

`bench/events.sh` (`make bench-events`): one voucher-events (release build) answers events
produced beforehand to a 3-partition topic on a local tansu broker (SQLite storage), from the
first event read to the last result acknowledged (`acks=all`); a fresh consumer group per round.
Beside it, in the same rounds, a plain consumer (confluent-kafka) only reads the same events:
what the broker serves when nothing is written back. Medians of the rounds. Broker, consumer
and clients share the 2 cores; the last two columns are the cores voucher-events and the broker
kept busy while answering (CPU seconds over wall seconds).

| date (UTC) | commit | cores | CPU | load avg | events | voucher-events events/s | plain read events/s | ratio | voucher-events cores | broker cores |
|---|---|---|---|---|---|---|---|---|---|---|
"""


if __name__ == "__main__":
    main()
