//! The test fixtures of voucher-api, in one place: the app in-process or as its binary, and
//! the tables it serves.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use clap::Parser;
use voucher_api::config::Config;
use voucher_api::server::Application;

use chrono::{TimeDelta, Utc};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use voucher_shared::publish::{TABLE_FILE, TablesDir, Version};
use voucher_shared::table::{VoucherRow, VoucherTable};

/// An HTTP client pointed at one running API.
pub struct Http {
    pub base: String,
    pub client: Client,
}

impl Http {
    fn new(address: &str) -> Http {
        Http::with_client(format!("http://{address}"), Client::builder())
    }

    /// A client of `base` built from `builder` (e.g. one that trusts a test certificate).
    pub fn with_client(base: String, builder: reqwest::blocking::ClientBuilder) -> Http {
        Http {
            base,
            client: builder
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

    /// POSTs `body` to `path` with the given content type.
    pub fn post_to(&self, path: &str, body: impl Into<Vec<u8>>, content_type: &str) -> Response {
        self.client
            .post(self.url(path))
            .header("Content-Type", content_type)
            .body(body.into())
            .send()
            .expect("POST")
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

    /// The value of a metric line (`name{labels}`) in `/metrics`, if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").text().expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

/// Log lines of every in-process app, captured once for the whole test binary.
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("[{}] {}", record.level(), record.args());
            LOGS.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

/// `voucher-api` running in this process on a free port (zero2prod's `spawn_app`), in a thread
/// of its own with its own actix system. Stopped when dropped.
pub struct TestApp {
    http: Http,
    /// The gRPC listener.
    pub grpc: std::net::SocketAddr,
    tables: PathBuf,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for TestApp {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl TestApp {
    /// Starts the app on `tables` with `args` (flags as on the command line), two workers and
    /// a 100 ms reload interval unless `args` set one.
    pub fn spawn(tables: &Path, args: &[&str]) -> TestApp {
        static LOGGER: OnceLock<()> = OnceLock::new();
        LOGGER.get_or_init(|| {
            if log::set_logger(&CaptureLogger).is_ok() {
                log::set_max_level(log::LevelFilter::Info);
            }
        });
        let mut argv = vec!["voucher-api", "--host", "127.0.0.1", "--port", "0"];
        argv.extend(["--workers", "2"]);
        if !args.contains(&"--grpc-port") {
            argv.extend(["--grpc-port", "0"]);
        }
        if !args.contains(&"--reload-interval") {
            argv.extend(["--reload-interval", "100ms"]);
        }
        let dir = tables.display().to_string();
        argv.extend(["--tables-dir", &dir]);
        argv.extend(args);
        let mut config = Config::try_parse_from(argv).expect("test config");
        // A token or customer store in the developer's environment must not leak into tests
        // that set none.
        if !args.contains(&"--api-token") {
            config.api_token = None;
        }
        if !args.contains(&"--customers-db") {
            config.customers.customers_db = None;
        }
        let (started, ready) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(&config).expect("build the app");
                let _ = started.send((app.addresses()[0], app.grpc_address(), app.handle()));
                app.run().await.expect("serve");
            });
        });
        let (address, grpc, handle) = ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the app did not start");
        TestApp {
            http: Http::new(&address.to_string()),
            grpc,
            tables: tables.to_owned(),
            handle,
            thread: Some(thread),
        }
    }

    /// Captured log lines about this app's tables directory.
    pub fn logs(&self) -> String {
        let dir = self.tables.display().to_string();
        let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
        let mine: Vec<&str> = logs
            .iter()
            .filter(|l| l.contains(&dir))
            .map(String::as_str)
            .collect();
        mine.join("\n")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sending the stop command happens now; its completion is awaited by joining.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The real `voucher-api` binary on a free port, for what only a process shows (signals,
/// exit codes, its whole log). Killed when dropped.
pub struct BinaryApp {
    http: Http,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl std::ops::Deref for BinaryApp {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl BinaryApp {
    /// Starts the binary on `tables` with `args`.
    pub fn start(tables: &Path, args: &[&str]) -> BinaryApp {
        let mut command = Command::new(env!("CARGO_BIN_EXE_voucher-api"));
        for (name, _) in std::env::vars() {
            if name.starts_with("VOUCHER_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(["--tables-dir", &tables.display().to_string()])
            .args(["--host", "127.0.0.1", "--port", "0", "--workers", "2"])
            .args(["--grpc-port", "0"])
            .args(["--reload-interval", "100ms"])
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
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = address_tx.send(address.to_owned());
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let Ok(address) = address_rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "voucher-api did not start; logs:\n{}",
                logs.lock().expect("lock").join("\n")
            );
        };
        BinaryApp {
            http: Http::new(&address),
            child,
            logs,
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
    }

    /// The gRPC address the binary logged.
    pub fn grpc_address(&self) -> String {
        let mut found = None;
        wait_until(
            Duration::from_secs(10),
            "the gRPC address in the log",
            || {
                found = self
                    .logs()
                    .lines()
                    .find_map(|l| l.split("gRPC listening on ").nth(1))
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned);
                found.is_some()
            },
        );
        found.unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
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
}

impl Drop for BinaryApp {
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

pub use voucher_shared::fixtures::contract_rows;

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
