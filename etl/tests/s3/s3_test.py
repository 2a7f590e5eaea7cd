"""voucher-etl against a real S3-compatible server (moto), started here on 127.0.0.1.

On one of its two servers authentication is on (moto checks keys and signatures once its IAM
user exists), so wrong credentials are refused the way AWS refuses them. Each s3:// run is compared with a run of the
same binary over the same files on local disk: the published table must be byte-for-byte the
same and the manifest's counts equal. Each failure must exit non-zero, say what to check, and
leave the live version as it was.

    python s3_test.py --etl target/debug/voucher-etl --moto VENV/bin/moto_server
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import boto3

ARGS = None
BUCKET = "voucher-history"
REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etl(*args, env=None, timeout=300):
    return subprocess.run([ARGS.etl, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def published(tables):
    version = (tables / "CURRENT").read_text().strip()
    manifest = json.loads((tables / version / "manifest.json").read_text())
    return version, (tables / version / "vouchers.parquet").read_bytes(), manifest


COUNTS = ("rows_read", "rows_kept", "dropped")


class S3Input(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Path(tempfile.mkdtemp(prefix="s3-test-"))
        cls.servers = []
        # Two servers: moto with authentication on computes a wrong signature for keys with
        # `=` (Hive partitions), so the partitioned history lives on one without it, and the
        # credential tests run against one that checks keys and signatures as AWS does.
        cls.endpoint, open_keys = cls.start_moto("open", authenticated=False)
        cls.guarded, cls.keys = cls.start_moto("guarded", authenticated=True)
        open_s3, guarded_s3 = cls.s3(cls.endpoint, open_keys), cls.s3(cls.guarded, cls.keys)
        open_s3.create_bucket(Bucket=BUCKET)
        guarded_s3.create_bucket(Bucket=BUCKET)

        # History: one file, and three partitions of another history plus Spark's marker.
        cls.local = cls.work / "local"
        (cls.local / "parts").mkdir(parents=True)
        cls.generate(cls.local / "one.parquet", rows=30_000, seed=11)
        for s3 in (open_s3, guarded_s3):
            s3.upload_file(str(cls.local / "one.parquet"), BUCKET, "one/history.parquet")
        for batch, seed in enumerate((21, 22, 23)):
            part = cls.local / "parts" / f"batch={batch}" / "part-0.parquet"
            part.parent.mkdir()
            cls.generate(part, rows=8_000 + 1_000 * batch, seed=seed)
            open_s3.upload_file(str(part), BUCKET, f"parts/batch={batch}/part-0.parquet")
        open_s3.put_object(Bucket=BUCKET, Key="parts/_SUCCESS", Body=b"")
        open_s3.put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"not history")

    @classmethod
    def start_moto(cls, name, authenticated):
        """Starts moto_server; returns its endpoint and keys that may read and write."""
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        if authenticated:
            # Three calls run without authentication: the IAM setup below. After them every
            # request must be signed with the user's keys.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        log = open(cls.work / f"moto-{name}.log", "w")
        server = subprocess.Popen([ARGS.moto, "-H", "127.0.0.1", "-p", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        cls.servers.append((server, log))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto_server did not start; see {log.name}")
                time.sleep(0.1)
        if not authenticated:
            return endpoint, ("open-key", "open-secret")
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="voucher-etl")
        iam.put_user_policy(UserName="voucher-etl", PolicyName="read-history",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="voucher-etl")["AccessKey"]
        return endpoint, (key["AccessKeyId"], key["SecretAccessKey"])

    @staticmethod
    def s3(endpoint, keys):
        return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                            aws_access_key_id=keys[0], aws_secret_access_key=keys[1])

    @classmethod
    def tearDownClass(cls):
        for server, log in cls.servers:
            server.terminate()
            server.wait(timeout=10)
            log.close()
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def generate(cls, path, rows, seed):
        done = etl("generate", "--rows", str(rows), "--seed", str(seed), "--output", str(path))
        if done.returncode != 0:
            raise RuntimeError(f"generate failed: {done.stderr}")

    def env(self, **overrides):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID="open-key", AWS_SECRET_ACCESS_KEY="open-secret",
                   AWS_REGION=REGION, AWS_ENDPOINT_URL=self.endpoint, AWS_ALLOW_HTTP="true",
                   RUST_LOG="info")
        env.update(overrides)
        return env

    def tables(self, name):
        path = self.work / "tables" / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def run_ok(self, source, tables, env=None):
        done = etl("run", "--input", source, "--output", str(tables), "--countries", "all",
                   env=env or self.env())
        self.assertEqual(done.returncode, 0, f"voucher-etl run --input {source}:\n{done.stderr}")
        return published(tables)

    def assert_same_as_local(self, s3_input, local_input):
        _, table, manifest = self.run_ok(s3_input, self.tables("s3"))
        _, local_table, local_manifest = self.run_ok(str(local_input), self.tables("local"))
        self.assertEqual(table, local_table, "the table from S3 differs from the local one")
        for field in COUNTS:
            self.assertEqual(manifest[field], local_manifest[field], field)
        return manifest

    def test_one_object_gives_the_local_file_result(self):
        url = f"s3://{BUCKET}/one/history.parquet"
        manifest = self.assert_same_as_local(url, self.local / "one.parquet")
        self.assertEqual([i["file"] for i in manifest["inputs"]], [url])
        self.assertEqual(manifest["rows_read"], 30_000)

    def test_a_partitioned_prefix_gives_the_local_directory_result(self):
        manifest = self.assert_same_as_local(f"s3://{BUCKET}/parts/", self.local / "parts")
        self.assertEqual([i["file"] for i in manifest["inputs"]],
                         [f"s3://{BUCKET}/parts/batch={b}/part-0.parquet" for b in range(3)])
        self.assertEqual([i["rows_read"] for i in manifest["inputs"]], [8_000, 9_000, 10_000])

    def test_a_prefix_without_its_slash_and_a_glob_read_the_same_parts(self):
        _, whole, _ = self.run_ok(f"s3://{BUCKET}/parts/", self.tables("slash"))
        for source in (f"s3://{BUCKET}/parts", f"s3://{BUCKET}/parts/batch=*/part-*.parquet"):
            with self.subTest(source=source):
                _, table, _ = self.run_ok(source, self.tables("other"))
                self.assertEqual(table, whole)
        _, table, manifest = self.run_ok(f"s3://{BUCKET}/parts/batch=[02]/*.parquet",
                                         self.tables("two"))
        self.assertEqual(len(manifest["inputs"]), 2)
        self.assertEqual(manifest["rows_read"], 18_000)

    def assert_refused(self, source, env, *expected):
        tables = self.tables("refused")
        live, live_table, _ = self.run_ok(str(self.local / "one.parquet"), tables)
        log = tables / "publish-log.jsonl"
        log_before = log.read_bytes()
        started = time.monotonic()
        done = etl("run", "--input", source, "--output", str(tables), "--countries", "all",
                   env=env, timeout=120)
        took = time.monotonic() - started
        self.assertNotEqual(done.returncode, 0, f"{source} was accepted:\n{done.stderr}")
        for text in expected:
            self.assertIn(text, done.stderr)
        self.assertNotIn("panicked", done.stderr)
        self.assertLess(took, 90, f"the failure took {took:.0f} s to report")
        version, table, _ = published(tables)
        self.assertEqual((version, table), (live, live_table), "the live version changed")
        self.assertEqual(sorted(p.name for p in tables.iterdir() if not p.name.startswith(".")),
                         sorted(["CURRENT", "publish-log.jsonl", live]))
        self.assertEqual(log.read_bytes(), log_before, "a failed run logged a publish")
        return done.stderr

    def guarded_env(self, key_id=None, secret=None):
        return self.env(AWS_ENDPOINT_URL=self.guarded, AWS_ACCESS_KEY_ID=key_id or self.keys[0],
                        AWS_SECRET_ACCESS_KEY=secret or self.keys[1])

    def test_the_right_credentials_read_from_a_server_that_checks_them(self):
        url = f"s3://{BUCKET}/one/history.parquet"
        _, table, _ = self.run_ok(url, self.tables("guarded"), env=self.guarded_env())
        _, local_table, _ = self.run_ok(str(self.local / "one.parquet"), self.tables("local"))
        self.assertEqual(table, local_table)

    def test_wrong_credentials_are_refused_naming_the_keys(self):
        for env in (self.guarded_env(secret="not-the-secret"),
                    self.guarded_env(key_id="AKIANOTAKEY", secret="x")):
            with self.subTest(key=env["AWS_ACCESS_KEY_ID"]):
                self.assert_refused(f"s3://{BUCKET}/one/history.parquet", env,
                                    f"s3://{BUCKET}/one/history.parquet",
                                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")

    def test_a_missing_bucket_is_named(self):
        self.assert_refused("s3://no-such-bucket/history/", self.env(),
                            "s3://no-such-bucket/history/", "bucket", "does not exist")

    def test_a_missing_prefix_or_object_is_named(self):
        for source in (f"s3://{BUCKET}/no/such/prefix/", f"s3://{BUCKET}/one/missing.parquet"):
            with self.subTest(source=source):
                self.assert_refused(source, self.env(), source, "no Parquet objects")
        self.assert_refused(f"s3://{BUCKET}/notes/", self.env(), "no Parquet objects")
        self.assert_refused(f"s3://{BUCKET}/parts/*.csv", self.env(),
                            "the pattern matches no objects")

    def test_a_server_that_is_down_is_reported(self):
        down = f"http://127.0.0.1:{free_port()}"
        self.assert_refused(f"s3://{BUCKET}/one/history.parquet", self.env(AWS_ENDPOINT_URL=down),
                            f"s3://{BUCKET}/one/history.parquet", "reachable")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--etl", required=True)
    ap.add_argument("--moto", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])


if __name__ == "__main__":
    main()
