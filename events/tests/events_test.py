"""voucher-events on a real Kafka-protocol broker (tansu), started here on 127.0.0.1.

Events are produced, and results and dead letters read back, with confluent-kafka (librdkafka
from PyPI), a client that shares no code with the consumer. Every answer is compared with the
real voucher-api's answer to the same fields on the same table, and every message is checked
against the JSON Schemas in docs/events/. Events by customer id are answered from a customer
table on a real PostgreSQL server (started by events_test.sh), which one test stops and starts.

    python events_test.py --events target/debug/voucher-events --api target/debug/voucher-api \
        --etl target/debug/voucher-etl --tansu PATH/tansu --docs docs/events \
        --postgres postgresql://... --psql PATH/psql --postgres-ctl PATH/ctl
"""

import argparse
import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
from confluent_kafka import Consumer, Producer, TopicPartition

ARGS = None
PARTITIONS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=60.0, every=0.1):
    """Polls `check` until it returns something truthy; fails the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def http(url, body=None):
    """(status, parsed JSON or text) of a GET, or a POST of `body` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Broker:
    """A tansu broker with SQLite storage in its own directory."""

    def __init__(self, work: Path, name: str):
        self.dir = work / name
        self.dir.mkdir()
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        url = f"tcp://{self.address}"
        self.log = open(self.dir / "tansu.log", "ab")
        self.process = subprocess.Popen(
            [ARGS.tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "sqlite://tansu.db"],
            cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "warn"})
        wait_for(f"tansu to listen on {self.address}", self.listening, timeout=30)
        return self

    def listening(self):
        if self.process.poll() is not None:
            raise AssertionError(f"tansu exited with {self.process.returncode}: "
                                 f"{(self.dir / 'tansu.log').read_text()[-2000:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self.log.close()
        self.process = None

    def create_topics(self, *names):
        for name in names:
            done = subprocess.run(
                [ARGS.tansu, "topic", "create", name, "--broker", f"tcp://{self.address}",
                 "--partitions", str(PARTITIONS)],
                cwd=self.dir, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise AssertionError(f"cannot create topic {name}: {done.stdout}{done.stderr}")

    def produce(self, topic, messages, partition=None):
        """Produces (key, value) pairs (to `partition`, or by key) and waits until the broker
        acknowledged all of them."""
        producer = Producer({"bootstrap.servers": self.address, "acks": "all",
                             "linger.ms": 20, "enable.idempotence": False})
        where = {} if partition is None else {"partition": partition}
        failures = []

        def delivered(err, _msg):
            if err is not None:
                failures.append(err)

        for key, value in messages:
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=delivered, **where)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        left = producer.flush(60)
        if failures or left:
            raise AssertionError(f"producing to {topic}: {left} left, failures {failures[:3]}")

    def collect(self, topic, done, timeout=120.0, decode=json.loads):
        """Reads `topic` from the start until `done(messages)` or `timeout`, then whatever else
        is already there (duplicates): a list of (partition, offset, key, decoded value)."""
        consumer = Consumer({"bootstrap.servers": self.address,
                             "group.id": f"reader-{uuid.uuid4()}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic])
        messages = []

        def take(batch):
            messages.extend((m.partition(), m.offset(), m.key(), decode(m.value()))
                            for m in batch if not m.error())

        deadline = time.monotonic() + timeout
        try:
            while not done(messages) and time.monotonic() < deadline:
                take(consumer.consume(1000, timeout=0.5))
            take(consumer.consume(100_000, timeout=1.0))
        finally:
            consumer.close()
        return messages

    def read(self, topic, count, timeout=120.0, decode=json.loads):
        """At least `count` messages of `topic`, read from the start."""
        messages = self.collect(topic, lambda m: len(m) >= count, timeout, decode)
        if len(messages) < count:
            raise AssertionError(f"{topic}: read {len(messages)} of {count} messages "
                                 f"in {timeout} s")
        return messages

    def committed_and_ends(self, group, topic):
        """The group's committed offset and the end offset of each partition of `topic`."""
        consumer = Consumer({"bootstrap.servers": self.address, "group.id": group,
                             "enable.auto.commit": False})
        try:
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            committed = {tp.partition: tp.offset
                         for tp in consumer.committed(partitions, timeout=30)}
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                    for p in range(PARTITIONS)}
        finally:
            consumer.close()
        return committed, ends


class Topics:
    """A test's own three topics, so that tests do not see each other's messages."""

    def __init__(self, broker, prefix, create_results=True):
        self.events = f"{prefix}-requests"
        self.results = f"{prefix}-results"
        self.dead = f"{prefix}-dead-letters"
        broker.create_topics(self.events, self.dead)
        if create_results:
            broker.create_topics(self.results)

    def flags(self):
        return ["--events-topic", self.events, "--results-topic", self.results,
                "--dead-letter-topic", self.dead]


class EventsProcess:
    """One real voucher-events process."""

    def __init__(self, work, name, brokers, topics, group, tables, *extra):
        self.log_path = work / f"{name}.log"
        self.port = free_port()
        command = [ARGS.events, "--tables-dir", str(tables),
                   "--kafka-brokers", brokers, "--group-id", group, "--port", str(self.port),
                   "--check-interval", "1s", "--reload-interval", "200ms",
                   *topics.flags(), *extra]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "RUST_LOG": "info"})
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_healthy(self):
        wait_for(f"{self.log_path.stem}'s health endpoint",
                 lambda: self.get("/healthz")[0] == 200, 30)

    def get(self, path):
        if self.process.poll() is not None:
            raise AssertionError(f"voucher-events exited with {self.process.returncode}:\n"
                                 f"{self.log()[-3000:]}")
        try:
            return http(self.url + path)
        except (urllib.error.URLError, ConnectionError):
            return None, None

    def log(self):
        return self.log_path.read_text(errors="replace")

    def metrics(self):
        """Samples of the Prometheus text format: {'name{labels}': value}."""
        status, text = self.get("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}")
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def metric(self, name):
        return self.metrics().get(name, 0.0)

    def assigned(self):
        return len(re.findall(r"assigned partitions (?!\(none\))", self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.process.send_signal(sig)
        return self.process.wait(timeout)


def iso(moment):
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def valid_event(rng, now, index):
    last = now - timedelta(days=rng.randint(31, 400), hours=rng.randint(0, 23))
    first = last - timedelta(days=rng.randint(0, 900))
    return {
        "event_id": f"e-{index}",
        "event_timestamp": (now - timedelta(seconds=index)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "customer_id": rng.randint(1, 10**9),
        "country_code": "Peru",
        "last_order_ts": iso(last),
        "first_order_ts": iso(first),
        "total_orders": rng.randint(0, 37),
        "segment_name": rng.choice(["frequent_segment", "recency_segment"]),
    }


def event_set(rng, count):
    """`count` events, mostly valid, with every kind of refusal among them: a list of
    (key, payload bytes, expected reason or None)."""
    now = datetime.now(timezone.utc)
    out = []
    for i in range(count):
        event = valid_event(rng, now, i)
        kind = i % 20
        expected = None
        if kind == 3:
            payload = b'{"event_id": "broken-' + str(i).encode() + b'", '
            out.append((str(event["customer_id"]).encode(), payload, "malformed"))
            continue
        if kind == 5:
            out.append((None, b"\xff\xfe not utf-8 " + str(i).encode(), "malformed"))
            continue
        if kind == 7:
            out.append((None, json.dumps([event]).encode(), "malformed"))
            continue
        if kind == 9:
            del event["total_orders"]
            expected = "invalid"
        elif kind == 11:
            event["first_order_ts"] = iso(now + timedelta(days=2))
            event["last_order_ts"] = "2021-02-30 00:00:00"
            expected = "invalid"
        elif kind == 13:
            event["event_timestamp"] = "yesterday"
            expected = "invalid"
        elif kind == 15:
            event["event_id"] = ""
            expected = "invalid"
        elif kind == 17:
            event["segment_name"] = "frequent_segment"
            event["total_orders"] = 500 + i
            expected = "no_segment"
        elif kind == 19:
            event["segment_name"] = "recency_segment"
            event["last_order_ts"] = iso(now - timedelta(days=2))
            expected = "no_segment"
        elif kind == 1:
            event["customer_id"] = float(event["customer_id"])
        out.append((str(int(event["customer_id"])).encode(), json.dumps(event).encode(),
                    expected))
    return out


API_FIELDS = ("customer_id", "country_code", "last_order_ts", "first_order_ts",
              "total_orders", "segment_name")


class EventsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Path(tempfile.mkdtemp(prefix="events-test-"))
        cls.schemas = {name: json.loads((ARGS.docs / f"{name}.schema.json").read_text())
                       for name in ("voucher-request-event", "voucher-result",
                                    "voucher-dead-letter")}
        for schema in cls.schemas.values():
            jsonschema.Draft202012Validator.check_schema(schema)
        # Class cleanups run even when setUpClass fails half-way: no process outlives the test.
        cls.processes = []
        cls.addClassCleanup(cls.stop_processes)
        cls.broker = Broker(cls.work, "broker")
        cls.addClassCleanup(cls.broker.stop)
        cls.broker.start()
        cls.tables = cls.work / "tables"
        history = cls.work / "history.parquet"
        etl = ARGS.etl
        for command in ([etl, "generate", "--rows", "20000", "--seed", "13", "--output",
                         str(history)],
                        [etl, "run", "--input", str(history), "--output", str(cls.tables)]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise AssertionError(f"{command}: {done.stderr}")
        cls.api_port = cls.start_api(cls.tables, "api", cls.addClassCleanup)

    @classmethod
    def start_api(cls, tables, name, cleanup):
        """A voucher-api on `tables`, ready; its port. `cleanup` registers its stop."""
        port = free_port()
        log = open(cls.work / f"{name}.log", "ab")
        api = subprocess.Popen(
            [ARGS.api, "--tables-dir", str(tables),
             "--port", str(port), "--grpc-port", "0", "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT)
        cleanup(lambda: (api.terminate(), api.wait(30), log.close()))

        def ready():
            try:
                return http(f"http://127.0.0.1:{port}/readyz")[0] == 200
            except (urllib.error.URLError, ConnectionError):
                return False
        wait_for(f"voucher-api ({name}) to be ready", ready, timeout=30)
        return port

    @classmethod
    def stop_processes(cls):
        for process in cls.processes:
            if process.process.poll() is None:
                process.process.kill()
                process.process.wait()

    def start(self, name, topics, group, *extra, tables=None, brokers=None):
        process = EventsProcess(self.work, name, brokers or self.broker.address, topics, group,
                                tables or self.tables, *extra)
        # Known to the class cleanup before anything can fail: no process outlives the test.
        self.processes.append(process)
        process.wait_healthy()
        return process

    def api_answers(self, events, port=None):
        """The batch route's answer for each event's request fields (None for payloads that
        are not a JSON object), from the class's API or the one on `port`."""
        requests, where = [], []
        for _, payload, _ in events:
            try:
                event = json.loads(payload)
            except ValueError:
                event = None
            if isinstance(event, dict):
                where.append(len(requests))
                requests.append({k: event[k] for k in API_FIELDS if k in event})
            else:
                where.append(None)
        answers = []
        for start in range(0, len(requests), 10_000):
            status, body = http(f"http://127.0.0.1:{port or self.api_port}/api/v1/vouchers",
                                requests[start:start + 10_000])
            self.assertEqual(status, 200, body)
            answers.extend(body["results"])
        return [None if w is None else answers[w] for w in where]

    def test_each_event_gets_the_apis_answer_or_a_dead_letter(self):
        topics = Topics(self.broker, "answers")
        rng = random.Random(2026)
        events = event_set(rng, 4000)
        # The schema for events accepts what the consumer accepts, and refuses the rest.
        validator = jsonschema.Draft202012Validator(self.schemas["voucher-request-event"])
        for key, payload, expected in events[:20]:
            if expected in (None, "no_segment"):
                validator.validate(json.loads(payload))
            elif expected == "invalid" and b'"event_timestamp": "yesterday"' not in payload \
                    and b"2021-02-30" not in payload:
                self.assertFalse(validator.is_valid(json.loads(payload)), payload)
        self.broker.produce(topics.events, [(k, v) for k, v, _ in events])
        consumer = self.start("answers", topics, "answers", "--batch-size", "500")

        valid = sum(1 for e in events if e[2] is None)
        results = self.broker.read(topics.results, valid)
        dead = self.broker.read(topics.dead, len(events) - valid)

        answers = self.api_answers(events)
        by_id = {}
        for _, _, key, value in results:
            jsonschema.validate(value, self.schemas["voucher-result"])
            self.assertEqual(key, str(value["customer_id"]).encode())
            by_id.setdefault(value["event_id"], []).append(value)
        expected_valid = {}
        for (key, payload, expected), answer in zip(events, answers):
            if expected is None:
                event = json.loads(payload)
                expected_valid[event["event_id"]] = (event, answer)
        self.assertEqual(set(by_id), set(expected_valid), "every valid event has a result")
        for event_id, (event, answer) in expected_valid.items():
            result = by_id[event_id][0]
            self.assertEqual(answer["status"], 200, answer)
            self.assertEqual(result["event_timestamp"], event["event_timestamp"])
            self.assertEqual(result["customer_id"], int(event["customer_id"]))
            for field in ("voucher", "country_code", "segment_name", "segment"):
                self.assertEqual(result[field], answer[field], (event, result, answer))
        version = (self.tables / "CURRENT").read_text().strip()
        self.assertEqual({r[3]["version"] for r in results}, {version})

        # Each dead letter names where its event was read, and carries it back with its key.
        produced = {(p, o): (k, v) for p, o, k, v in self.broker.read(
            topics.events, len(events), decode=lambda v: v)}
        letters = {}
        for _, _, key, value in dead:
            jsonschema.validate(value, self.schemas["voucher-dead-letter"])
            self.assertEqual(value["source"]["topic"], topics.events)
            where = (value["source"]["partition"], value["source"]["offset"])
            event_key, event_payload = produced[where]
            payload = (value["payload"].encode() if "payload" in value
                       else base64.b64decode(value["payload_base64"]))
            self.assertEqual((key, payload), (event_key, event_payload), value)
            letters[where] = (key, value)
        self.assertEqual(len(letters), len(events) - valid)
        self.assertEqual({v for _, v, e in events if e is not None},
                         {produced[where][1] for where in letters},
                         "every refused event, and only those, has a dead letter")
        reasons = Counter(v["reason"] for _, v in letters.values())
        self.assertEqual(reasons, Counter(e for _, _, e in events if e is not None))
        # The API agrees on the request's part: 422 for invalid request fields, 404 for
        # no segment (the event's own fields, event_id and event_timestamp, are ours alone).
        for (key, payload, expected), answer in zip(events, answers):
            if expected == "no_segment":
                self.assertEqual(answer["status"], 404, answer)
            elif expected == "invalid" and b"yesterday" not in payload \
                    and b'"event_id": ""' not in payload:
                self.assertEqual(answer["status"], 422, answer)
        for key, value in letters.values():
            self.assertEqual(value["version"],
                             None if value["reason"] == "malformed" else version)
            if value["reason"] == "invalid":
                self.assertTrue(value["errors"], value)

        # Metrics: every event consumed once and its output acknowledged.
        wait_for("the lag gauges to reach 0", lambda: all(
            consumer.metric(f'voucher_events_consumer_lag{{partition="{p}",topic="{topics.events}"}}')
            == 0 and f'voucher_events_consumer_lag{{partition="{p}",topic="{topics.events}"}}'
            in consumer.metrics() for p in range(PARTITIONS)), timeout=30)
        samples = consumer.metrics()
        self.assertEqual(samples["voucher_events_consumed_total"], len(events))
        self.assertEqual(samples["voucher_events_results_total"], valid)
        for reason, count in reasons.items():
            self.assertEqual(samples[f'voucher_events_dead_lettered_total{{reason="{reason}"}}'], count)
        self.assertEqual(samples["voucher_events_processing_seconds_count"], len(events))
        self.assertEqual(samples['voucher_events_scored_total{door="events",outcome="ok"}'], valid)
        # Every series says which binary exported it.
        self.assertEqual([k for k in samples if not k.startswith("voucher_events_")], [])
        self.assertEqual(samples["voucher_events_assigned_partitions"], PARTITIONS)
        self.assertEqual(samples["voucher_events_broker_up"], 1)
        self.assertEqual(consumer.get("/readyz")[0], 200)

        # SIGTERM: commits what is done and leaves the group.
        self.assertEqual(consumer.stop(), 0, consumer.log()[-3000:])
        self.assertIn("left consumer group answers", consumer.log())
        committed, ends = self.broker.committed_and_ends("answers", topics.events)
        self.assertEqual(committed, ends, "committed offsets are the end offsets")
        self.assertEqual(sum(ends.values()), len(events))

    def test_an_800_kb_event_that_is_not_utf8_is_dead_lettered_and_its_partition_moves_on(self):
        topics = Topics(self.broker, "large")
        now = datetime.now(timezone.utc)
        rng = random.Random(800)
        before = [valid_event(rng, now, i) for i in range(5)]
        after = [valid_event(rng, now, i) for i in range(5, 25)]
        large = bytes((i % 251) | 0x80 for i in range(800 * 1024))
        # All on one partition: the large event sits between the others.
        self.broker.produce(topics.events,
                            [(b"k", json.dumps(e).encode()) for e in before] + [(b"large", large)]
                            + [(b"k", json.dumps(e).encode()) for e in after], partition=1)
        consumer = self.start("large", topics, "large")
        wanted = {e["event_id"] for e in before + after}
        ids = self.answered_ids(topics, wanted, timeout=60)
        self.assertEqual(set(ids), wanted, "the events after the large one are answered")
        (_, _, key, letter), = self.broker.read(topics.dead, 1, timeout=60, decode=lambda v: v)
        print(f"\nevents_test.py: an 800 KiB event that is not UTF-8 got a dead letter of "
              f"{len(letter)} bytes", file=sys.stderr)
        self.assertLess(len(letter), 100_000)
        letter = json.loads(letter)
        jsonschema.validate(letter, self.schemas["voucher-dead-letter"])
        self.assertEqual((key, letter["reason"]), (b"large", "malformed"))
        self.assertEqual(letter["payload_bytes"], len(large))
        self.assertEqual(letter["payload_sha256"], hashlib.sha256(large).hexdigest())
        self.assertTrue(letter["payload_truncated"])
        self.assertEqual(base64.b64decode(letter["payload_base64"]), large[:65536])
        # The partition's committed offset moves past it, while the consumer runs.
        wait_for("the committed offset to reach the end", lambda: (
            lambda c, e: c[1] == e[1])(*self.broker.committed_and_ends("large", topics.events)),
            timeout=30, every=0.5)
        self.assertEqual(consumer.get("/readyz")[0], 200)
        self.assertEqual(consumer.stop(), 0, consumer.log()[-3000:])

        # A dead letter the producer refuses for good (here: larger than its 1 MB
        # message.max.bytes, as a broker's limit would) is replaced by a record without the
        # payload, and the partition moves on all the same.
        refused = Topics(self.broker, "refused")
        self.broker.produce(refused.events,
                            [(b"large", large)] + [(b"k", json.dumps(e).encode()) for e in after],
                            partition=1)
        consumer = self.start("refused", refused, "refused",
                              "--dead-letter-max-payload", str(len(large)))
        ids = self.answered_ids(refused, {e["event_id"] for e in after}, timeout=60)
        self.assertEqual(set(ids), {e["event_id"] for e in after})
        (_, _, key, record), = self.broker.read(refused.dead, 1, timeout=60)
        jsonschema.validate(record, self.schemas["voucher-dead-letter"])
        self.assertEqual((key, record["reason"], record["payload"]), (b"large", "undeliverable", ""))
        self.assertEqual(record["payload_sha256"], hashlib.sha256(large).hexdigest())
        self.assertIn("size", record["message"].lower(), record)
        wait_for("the committed offset to reach the end", lambda: (
            lambda c, e: c[1] == e[1])(*self.broker.committed_and_ends("refused", refused.events)),
            timeout=30, every=0.5)
        self.assertEqual(
            consumer.metric('voucher_events_dead_lettered_total{reason="undeliverable"}'), 1)
        self.assertEqual(consumer.stop(), 0, consumer.log()[-3000:])

    def answered_ids(self, topics, wanted, timeout=180.0):
        """How many results each event id has, once every id of `wanted` has one (or after
        `timeout`)."""
        results = self.broker.collect(
            topics.results, lambda m: {v["event_id"] for _, _, _, v in m} >= wanted, timeout)
        return Counter(value["event_id"] for _, _, _, value in results)

    def test_kill_9_mid_stream_then_restart_loses_nothing(self):
        topics = Topics(self.broker, "crash")
        events = [(k, v, e) for k, v, e in event_set(random.Random(9), 30_000) if e is None]
        self.broker.produce(topics.events, [(k, v) for k, v, _ in events])
        first = self.start("crash-1", topics, "crash", "--batch-size", "200")
        wait_for("some results before the kill",
                 lambda: first.metric("voucher_events_results_total") >= 2000, timeout=120, every=0.02)
        answered_before_kill = first.metric("voucher_events_results_total")
        first.process.kill()
        first.process.wait()
        before = first.log()
        self.assertNotIn("left consumer group", before, "kill -9 gives no chance to leave")

        second = self.start("crash-2", topics, "crash", "--batch-size", "200")
        wanted = {json.loads(v)["event_id"] for _, v, _ in events}
        ids = self.answered_ids(topics, wanted)
        missing = wanted - set(ids)
        duplicates = sum(n - 1 for n in ids.values() if n > 1)
        print(f"\nevents_test.py: kill -9 after {int(answered_before_kill)} results: "
              f"{len(wanted)} events, {len(missing)} missing, {duplicates} duplicates",
              file=sys.stderr)
        self.assertEqual(missing, set())
        self.assertEqual(second.stop(), 0, second.log()[-3000:])
        committed, ends = self.broker.committed_and_ends("crash", topics.events)
        self.assertEqual(committed, ends)

    def test_no_offset_is_committed_before_its_result_is_acknowledged(self):
        # The results topic does not exist yet: the broker cannot acknowledge any result.
        topics = Topics(self.broker, "unacked", create_results=False)
        events = [(k, v, e) for k, v, e in event_set(random.Random(5), 60) if e is None]
        self.broker.produce(topics.events, [(k, v) for k, v, _ in events])
        first = self.start("unacked-1", topics, "unacked", "--shutdown-timeout", "1s",
                           "--kafka-option", "message.timeout.ms=1500")
        wait_for("the events to be read and their results refused", lambda: (
            first.metric("voucher_events_consumed_total") == len(events)
            and first.metric("voucher_events_produce_failures_total") > 0), timeout=60)
        status, body = wait_for("readiness to name the missing topic", lambda: (
            lambda r: r if r[0] == 503 and topics.results in r[1]["detail"] else None)(
                first.get("/readyz")), timeout=30)
        self.assertEqual(body["status"], "broker_unavailable", body)
        self.assertEqual(body["checks"]["broker"]["state"], "unavailable", body)
        # Nothing can be committed: readiness says which partitions wait and why, and every
        # assigned partition has its lag, although none ever committed.
        status, body = wait_for("readiness to name the blocked partitions", lambda: (
            lambda r: r if r[1]["checks"].get("commits", {}).get("state") == "unavailable"
            else None)(first.get("/readyz")), timeout=30)
        self.assertIn("outputs not acknowledged", body["checks"]["commits"]["detail"], body)
        lags = wait_for("a lag gauge for every partition", lambda: (
            lambda m: m if len(m) == PARTITIONS else None)({
                p: v for p in range(PARTITIONS) for k, v in first.metrics().items()
                if k == f'voucher_events_consumer_lag{{partition="{p}",topic="{topics.events}"}}'}),
            timeout=30)
        self.assertEqual(sum(lags.values()), len(events), lags)
        # SIGTERM: the results are still refused, so it gives up after the shutdown timeout
        # without storing their offsets. Its last commit (synchronous) finds nothing to commit,
        # and the group has no committed offset: the automatic commits before it (every second)
        # had nothing either, or their offsets would show.
        self.assertEqual(first.stop(), 0, first.log()[-3000:])
        self.assertIn("will be read again", first.log())
        self.assertIn("nothing new to commit for group unacked", first.log())
        committed, _ = self.broker.committed_and_ends("unacked", topics.events)
        self.assertTrue(all(offset < 0 for offset in committed.values()),
                        f"offsets committed for unanswered events: {committed}")

        # With the topic there, a new consumer of the group answers every event.
        self.broker.create_topics(topics.results)
        second = self.start("unacked-2", topics, "unacked")
        ids = self.answered_ids(topics, {json.loads(v)["event_id"] for _, v, _ in events})
        self.assertEqual(set(ids), {json.loads(v)["event_id"] for _, v, _ in events})
        self.assertEqual(second.stop(), 0, second.log()[-3000:])
        committed, ends = self.broker.committed_and_ends("unacked", topics.events)
        self.assertEqual(committed, ends)

    def test_two_consumers_share_partitions_and_one_leaving_loses_nothing(self):
        topics = Topics(self.broker, "shared")
        events = [(k, v, e) for k, v, e in event_set(random.Random(4), 30_000) if e is None]
        wanted = {json.loads(v)["event_id"] for _, v, _ in events}
        one = self.start("shared-1", topics, "shared", "--batch-size", "200")
        wait_for("the first consumer's assignment", one.assigned, timeout=60)
        two = self.start("shared-2", topics, "shared", "--batch-size", "200")
        # Both in the group: the three partitions are split between them.
        wait_for("both consumers to hold partitions", lambda: (
            0 < one.metric("voucher_events_assigned_partitions") < PARTITIONS
            and 0 < two.metric("voucher_events_assigned_partitions") < PARTITIONS
            and one.metric("voucher_events_assigned_partitions")
            + two.metric("voucher_events_assigned_partitions") == PARTITIONS), timeout=90, every=0.5)
        self.broker.produce(topics.events, [(k, v) for k, v, _ in events])
        wait_for("the second consumer to answer some events",
                 lambda: two.metric("voucher_events_results_total") >= 500, timeout=120, every=0.02)
        self.assertEqual(two.stop(), 0, two.log()[-3000:])
        self.assertIn("left consumer group shared", two.log())
        wait_for("the first consumer to take every partition",
                 lambda: one.metric("voucher_events_assigned_partitions") == PARTITIONS,
                 timeout=90, every=0.5)
        ids = self.answered_ids(topics, wanted)
        duplicates = sum(n - 1 for n in ids.values() if n > 1)
        print(f"\nevents_test.py: rebalance: {len(wanted)} events, "
              f"{len(wanted - set(ids))} missing, {duplicates} duplicates", file=sys.stderr)
        self.assertEqual(wanted - set(ids), set())
        self.assertEqual(one.stop(), 0, one.log()[-3000:])

    def psql(self, sql):
        done = subprocess.run([ARGS.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", ARGS.postgres,
                               "-c", sql], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"psql: {sql[:200]}: {done.stderr}")

    def control_postgres(self, action):
        done = subprocess.run([ARGS.postgres_ctl, action], capture_output=True, text=True,
                              timeout=90)
        if done.returncode != 0:
            raise AssertionError(f"postgres {action}: {done.stderr}")

    def test_events_by_id_get_the_full_events_answer_and_wait_for_the_store(self):
        topics = Topics(self.broker, "by-id")
        rng = random.Random(26)
        now = datetime.now(timezone.utc)
        full = [valid_event(rng, now, i) for i in range(300)]
        for i, event in enumerate(full):
            event["customer_id"] = 7_000_000 + i
        # The profiles stored with the column types of a real table.
        rows = ", ".join(
            f"({e['customer_id']}, '{e['country_code']}', '{e['last_order_ts']}+00', "
            f"'{e['first_order_ts']}', {e['total_orders']})" for e in full)
        self.psql("DROP TABLE IF EXISTS event_customers; CREATE TABLE event_customers "
                  "(customer_id bigint PRIMARY KEY, country_code text, last_order_ts timestamptz, "
                  "first_order_ts timestamp, total_orders integer); "
                  f"INSERT INTO event_customers VALUES {rows}")
        keep = ("event_id", "event_timestamp", "customer_id", "segment_name")
        by_id = [{k: e[k] for k in keep} for e in full]
        unknown = [{"event_id": f"u-{i}", "event_timestamp": by_id[0]["event_timestamp"],
                    "customer_id": 9_000_000 + i, "segment_name": "frequent_segment"}
                   for i in range(5)]
        validator = jsonschema.Draft202012Validator(self.schemas["voucher-request-event"])
        for event in by_id[:5] + unknown:
            validator.validate(event)
        events = [(str(e["customer_id"]).encode(), json.dumps(e).encode(), None)
                  for e in by_id + unknown]
        self.broker.produce(topics.events, [(k, v) for k, v, _ in events])
        # Without the cache, every batch asks the store: the late events below must find it
        # down rather than be answered from the cache.
        consumer = self.start("by-id", topics, "by-id", "--batch-size", "100",
                              "--customers-db", ARGS.postgres,
                              "--customers-table", "event_customers",
                              "--customers-cache-size", "0")
        results = self.broker.read(topics.results, len(by_id))
        dead = self.broker.read(topics.dead, len(unknown))
        # The answer by id is the API's answer to the full event's request.
        answers = self.api_answers([(None, json.dumps(e).encode(), None) for e in full])
        expected = {e["event_id"]: a for e, a in zip(full, answers)}
        for _, _, key, value in results:
            jsonschema.validate(value, self.schemas["voucher-result"])
            answer = expected[value["event_id"]]
            self.assertEqual(answer["status"], 200, answer)
            for field in ("voucher", "country_code", "segment_name", "segment"):
                self.assertEqual(value[field], answer[field], (value, answer))
        self.assertEqual({v["event_id"] for _, _, _, v in results}, set(expected))
        for _, _, key, value in dead:
            jsonschema.validate(value, self.schemas["voucher-dead-letter"])
            self.assertEqual(value["reason"], "unknown_customer", value)
            self.assertIn(str(json.loads(value["payload"])["customer_id"]), value["message"])
        self.assertEqual(
            consumer.metric('voucher_events_dead_lettered_total{reason="unknown_customer"}'),
            len(unknown))
        self.assertEqual(consumer.get("/readyz")[1]["checks"]["customers"]["state"], "ok")

        # The store stops: events by id wait, nothing is produced or committed for them, and
        # readiness stays ready; it starts again: they are answered.
        self.control_postgres("stop")
        late = [dict(e, event_id=f"late-{e['event_id']}") for e in by_id[:20]]
        self.broker.produce(topics.events, [(b"k", json.dumps(e).encode()) for e in late])
        wait_for("the consumer to wait for the store", lambda: "waits (nothing of it" in consumer.log(),
                 timeout=60)
        status, ready = consumer.get("/readyz")
        self.assertEqual(status, 200, ready)
        self.assertEqual(ready["checks"]["customers"]["state"], "degraded", ready)
        committed, _ = self.broker.committed_and_ends("by-id", topics.events)
        self.assertLessEqual(sum(max(offset, 0) for offset in committed.values()), len(events),
                             f"offsets of the waiting events committed: {committed}")
        self.control_postgres("start")
        ids = self.answered_ids(topics, {e["event_id"] for e in late}, timeout=60)
        self.assertTrue({e["event_id"] for e in late} <= set(ids))
        self.assertEqual(consumer.stop(), 0, consumer.log()[-3000:])
        committed, ends = self.broker.committed_and_ends("by-id", topics.events)
        self.assertEqual(committed, ends)

    def test_a_canarys_customers_get_its_version_as_from_the_api(self):
        # Two versions from two histories; the older one is the canary for half the customers.
        tables = self.work / "canary-tables"
        other = self.work / "history-14.parquet"
        for command in ([ARGS.etl, "run", "--input", str(self.work / "history.parquet"),
                         "--output", str(tables)],
                        [ARGS.etl, "generate", "--rows", "20000", "--seed", "14", "--output",
                         str(other)],
                        [ARGS.etl, "run", "--input", str(other), "--output", str(tables),
                         "--no-gate"]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            self.assertEqual(done.returncode, 0, done.stderr)
        live = (tables / "CURRENT").read_text().strip()
        candidate, = {p.name for p in tables.iterdir() if p.is_dir() and p.name[:1].isdigit()} \
            - {live}
        done = subprocess.run([ARGS.etl, "canary", "--tables-dir", str(tables), candidate,
                               "--percent", "50", "--reason", "events test", "--by", "test"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        port = self.start_api(tables, "canary-api", self.addCleanup)
        wait_for("the API to serve the canary", lambda: http(
            f"http://127.0.0.1:{port}/api/v1/versions")[1]["canary"]["served"], timeout=30)

        topics = Topics(self.broker, "canary")
        rng = random.Random(50)
        now = datetime.now(timezone.utc)
        full = [valid_event(rng, now, i) for i in range(400)]
        self.broker.produce(topics.events,
                            [(str(e["customer_id"]).encode(), json.dumps(e).encode()) for e in full])
        consumer = self.start("canary", topics, "canary", "--batch-size", "100", tables=tables)
        results = self.broker.read(topics.results, len(full))
        answers = self.api_answers([(None, json.dumps(e).encode(), None) for e in full], port)
        expected = {e["event_id"]: a for e, a in zip(full, answers)}
        versions = Counter()
        for _, _, _, value in results:
            answer = expected[value["event_id"]]
            self.assertEqual(answer["status"], 200, answer)
            for field in ("version", "voucher", "segment"):
                self.assertEqual(value[field], answer[field], (value, answer))
            versions[value["version"]] += 1
        self.assertEqual(set(versions), {live, candidate}, versions)
        self.assertEqual(
            consumer.metric('voucher_events_canary_answers_total{arm="canary"}'), versions[candidate])
        self.assertEqual(consumer.stop(), 0, consumer.log()[-3000:])

    def test_bad_settings_exit_at_once_with_a_clear_message(self):
        for extra, expected in ((["--kafka-option", "no.such.setting=1"], "no.such.setting"),
                                (["--kafka-option", "novalue"], "is not key=value"),
                                (["--batch-size", "0"], "--batch-size")):
            done = subprocess.run(
                [ARGS.events, "--tables-dir", str(self.tables), "--kafka-brokers",
                 self.broker.address, "--port", "0", *extra],
                capture_output=True, text=True, timeout=30)
            self.assertNotEqual(done.returncode, 0, extra)
            self.assertIn(expected, done.stderr, extra)
            self.assertNotIn("panicked", done.stderr, extra)

    def test_readiness_needs_a_table_and_the_broker(self):
        broker = Broker(self.work, "readiness-broker").start()
        topics = Topics(broker, "ready")
        empty = self.work / "no-tables-yet"
        empty.mkdir()
        process = self.start("ready", topics, "ready", tables=empty, brokers=broker.address)
        status, body = process.get("/readyz")
        self.assertEqual((status, body["status"]), (503, "starting"), body)
        self.assertEqual(process.get("/healthz")[0], 200)
        # A table appears: ready without a restart.
        done = subprocess.run([ARGS.etl, "run", "--input",
                               str(self.work / "history.parquet"), "--output", str(empty)],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        wait_for("ready once a table is published",
                 lambda: process.get("/readyz")[0] == 200, timeout=30)
        # The broker goes away: not ready, and says why; it comes back: ready again.
        broker.stop()
        status, body = wait_for("not ready without the broker", lambda: (
            lambda r: r if r[0] == 503 else None)(process.get("/readyz")), timeout=60)
        self.assertEqual(body["status"], "broker_unavailable", body)
        self.assertEqual(process.metric("voucher_events_broker_up"), 0)
        self.assertEqual(process.get("/healthz")[0], 200, "alive while the broker is down")
        broker.start()
        wait_for("ready again with the broker back",
                 lambda: process.get("/readyz")[0] == 200, timeout=60)
        # Events produced after the outage are answered.
        now = datetime.now(timezone.utc)
        event = valid_event(random.Random(1), now, 1)
        broker.produce(topics.events, [(b"1", json.dumps(event).encode())])
        (_, _, _, result), = broker.read(topics.results, 1, timeout=60)
        self.assertEqual(result["event_id"], event["event_id"])
        self.assertEqual(process.stop(), 0)
        broker.stop()


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", required=True, help="the voucher-events binary")
    parser.add_argument("--api", required=True, help="the voucher-api binary")
    parser.add_argument("--etl", required=True, help="the voucher-etl binary")
    parser.add_argument("--tansu", required=True)
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--postgres", required=True, help="the test PostgreSQL's URL")
    parser.add_argument("--psql", required=True, help="psql, to set up the customer table")
    parser.add_argument("--postgres-ctl", required=True,
                        help="stops and starts the test PostgreSQL (tools/postgres.sh)")
    ARGS, rest = parser.parse_known_args()
    program = unittest.main(argv=[sys.argv[0], "-v", *rest], exit=False)
    work = getattr(EventsTest, "work", None)
    if program.result.wasSuccessful():
        if work:
            shutil.rmtree(work, ignore_errors=True)
        sys.exit(0)
    if work:
        print(f"events_test.py: logs of the processes in {work}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
