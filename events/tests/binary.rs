//! The real `voucher-events` binary without a broker: its health, readiness and metrics, and a
//! clean stop. (Consuming is tested on a real broker by `events_test.sh`.)

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use voucher_shared::fixtures::contract_table;
use voucher_shared::publish::{TABLE_FILE, TablesDir};

/// Generous for a loaded CI machine.
const SLACK: Duration = Duration::from_secs(10);

struct Events {
    child: Child,
    address: String,
    logs: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Events {
    /// Starts the binary on `tables` with a broker address where nothing listens.
    fn start(tables: &std::path::Path) -> Events {
        let mut command = Command::new(env!("CARGO_BIN_EXE_voucher-events"));
        for (name, _) in std::env::vars() {
            if name.starts_with("VOUCHER_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(["--tables-dir", &tables.display().to_string()])
            .args(["--kafka-brokers", "127.0.0.1:9", "--port", "0"])
            .args(["--reload-interval", "100ms", "--check-interval", "1s"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start voucher-events");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, logs) = mpsc::channel();
        // Read stderr for the whole run: a full pipe would block the process's logging.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut events = Events {
            child,
            address: String::new(),
            logs,
            seen: Vec::new(),
        };
        let line = events.wait_for_log("metrics on http://");
        events.address = line
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        events
    }

    /// Waits for a log line containing `text`, and gives it back.
    fn wait_for_log(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + SLACK;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!("no log line with {text:?}; logs:\n{}", self.seen.join("\n"));
    }

    /// GETs `path`: the status and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(&self.address).expect("connect");
        stream.set_read_timeout(Some(SLACK)).expect("read timeout");
        std::io::Write::write_all(
            &mut stream,
            format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.address).as_bytes(),
        )
        .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn ready(&self) -> (u16, serde_json::Value) {
        let (status, body) = self.get("/readyz");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, json)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(dir: &std::path::Path) -> String {
    let mut bytes = Vec::new();
    contract_table().write(&mut bytes).expect("write table");
    let staged = TablesDir::new(dir)
        .stage(chrono::Utc::now())
        .expect("stage");
    std::fs::write(staged.path(TABLE_FILE), bytes).expect("write");
    staged.commit().expect("commit").version.to_string()
}

/// Polls `condition` until it holds, for at most [`SLACK`].
fn wait_until<T>(what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SLACK;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn readiness_needs_a_table_then_the_broker_and_sigterm_stops_cleanly() {
    let tables = tempfile::tempdir().expect("tempdir");
    let mut events = Events::start(tables.path());
    assert_eq!(events.get("/healthz").0, 200);
    let (status, json) = events.ready();
    assert_eq!(
        (status, json["status"].as_str()),
        (503, Some("starting")),
        "{json}"
    );
    assert_eq!(json["checks"]["broker"]["state"], "unavailable", "{json}");

    let version = publish(tables.path());
    events.wait_for_log(&format!("table version {version} is live"));
    let (status, json) = events.ready();
    assert_eq!(
        (status, json["status"].as_str()),
        (503, Some("broker_unavailable")),
        "the table is live, the broker is not: {json}"
    );
    let (status, metrics) = events.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!(
            "voucher_events_table_info{{version=\"{version}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("voucher_events_broker_up 0"), "{metrics}");
    assert!(!metrics.contains("voucher_api_"), "{metrics}");

    let pid = events.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM");
    let status = wait_until("voucher-events to exit", || {
        events.child.try_wait().expect("try_wait")
    });
    events.wait_for_log("stopped");
    assert_eq!(status.code(), Some(0), "{}", events.seen.join("\n"));
    assert!(
        events.seen.iter().any(|l| l.contains("SIGTERM received")),
        "{}",
        events.seen.join("\n")
    );
}
