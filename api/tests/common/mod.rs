//! Runs the real `voucher-api` binary on a free port and talks to it over HTTP.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use voucher_shared::publish::{TABLE_FILE, TablesDir, Version};
use voucher_shared::segments::SegmentType;
use voucher_shared::table::{VoucherRow, VoucherTable};

/// A running `voucher-api`; killed when dropped.
pub struct Api {
    child: Child,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    pub client: Client,
}

impl Api {
    /// Starts the binary on `tables` with `args`, and a 100 ms reload interval unless `args`
    /// set one.
    pub fn start(tables: &Path, args: &[&str]) -> Api {
        let mut command = Command::new(env!("CARGO_BIN_EXE_voucher-api"));
        for (name, _) in std::env::vars() {
            if name.starts_with("VOUCHER_") {
                command.env_remove(name);
            }
        }
        if !args.contains(&"--reload-interval") {
            command.args(["--reload-interval", "100ms"]);
        }
        let mut child = command
            .args(["--tables-dir", &tables.display().to_string()])
            .args(["--host", "127.0.0.1", "--port", "0", "--workers", "2"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start voucher-api");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        // Keep reading stderr for the whole run: a full pipe would block the server's logging.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let address = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = address_tx.send(address);
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "voucher-api did not start; logs:\n{}",
                    logs.lock().expect("lock").join("\n")
                );
            }
        };
        Api {
            child,
            base: format!("http://{address}"),
            logs,
            client: Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().expect("GET")
    }

    pub fn post_voucher(&self, body: &Value) -> Response {
        self.client
            .post(self.url("/api/v1/voucher"))
            .json(body)
            .send()
            .expect("POST")
    }

    /// POSTs raw bytes with the given content type (none when `None`).
    pub fn post_raw(&self, body: impl Into<Vec<u8>>, content_type: Option<&str>) -> Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/voucher"))
            .body(body.into());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        request.send().expect("POST")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "voucher-api did not exit; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of a metric line (`name{labels}`) in `/metrics`, if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").text().expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns how long it took.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The contract's segments for Peru (frequent 14-37 pays `base`) and frequent segments only
/// for Latvia.
pub fn contract_rows(base: i64) -> Vec<VoucherRow> {
    let row = |country: &str, t, seg: &str, lower, upper, amount| VoucherRow {
        country_code: country.into(),
        segment_name: t,
        segment: seg.into(),
        lower,
        upper,
        voucher_amount: amount,
        occurrences: 4,
        segment_rows: 10,
    };
    let f = SegmentType::Frequent;
    let r = SegmentType::Recency;
    vec![
        row("Peru", f, "0-4", 0, Some(4), base - 880),
        row("Peru", f, "5-13", 5, Some(13), base + 880),
        row("Peru", f, "14-37", 14, Some(37), base),
        row("Peru", r, "30-60", 30, Some(60), base + 1),
        row("Peru", r, "61-90", 61, Some(90), base + 2),
        row("Peru", r, "91-120", 91, Some(120), base + 3),
        row("Peru", r, "121-180", 121, Some(180), base + 4),
        row("Peru", r, "180+", 181, None, base + 5),
        row("Latvia", f, "0-4", 0, Some(4), 1000),
    ]
}

/// Publishes a table built from `rows`; returns its version.
pub fn publish(dir: &Path, rows: Vec<VoucherRow>) -> Version {
    let mut bytes = Vec::new();
    VoucherTable::new(rows)
        .expect("valid rows")
        .write(&mut bytes)
        .expect("write table");
    publish_bytes(dir, &bytes)
}

/// Publishes arbitrary bytes as a version's table, as a broken ETL might.
pub fn publish_bytes(dir: &Path, bytes: &[u8]) -> Version {
    let staged = TablesDir::new(dir).stage(Utc::now()).expect("stage");
    std::fs::write(staged.path(TABLE_FILE), bytes).expect("write");
    staged.commit().expect("commit").version
}

/// The contract's request.
pub fn contract_request() -> Value {
    json!({"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00",
           "first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"})
}

/// A time `days` days before now, as `YYYY-MM-DD HH:MM:SS`.
pub fn days_ago(days: i64) -> String {
    (Utc::now() - TimeDelta::days(days))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The response body as JSON, with the status.
pub fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}
