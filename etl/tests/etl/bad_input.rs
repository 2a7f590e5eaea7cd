//! Bad input: one clear error, a non-zero exit, nothing published, the live version untouched.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use polars::prelude::*;

/// A tables directory with one live version, and the history that made it.
struct Live {
    dir: tempfile::TempDir,
    history: PathBuf,
}

impl Live {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let history = dir.path().join("history.parquet");
        generate(&history, 3_000, 1);
        let live = Live { dir, history };
        assert_success(&run_etl(
            live.history.to_str().expect("utf-8"),
            &live.tables(),
            &[],
        ));
        live
    }

    fn tables(&self) -> PathBuf {
        self.dir.path().join("tables")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `f`, which must fail with a message containing every one of `needles`, and checks
    /// that the tables directory is exactly as before.
    fn assert_refused(&self, needles: &[&str], f: impl FnOnce(&Path) -> Output) {
        let before = snapshot(&self.tables());
        let out = f(&self.tables());
        assert!(
            !out.status.success(),
            "expected failure, got success:\n{}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        for needle in needles {
            assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        for line in err.lines() {
            assert!(
                line.matches("(os error").count() <= 1,
                "an OS error is shown once: {line}"
            );
        }
        let error_lines = err.lines().filter(|l| l.starts_with("error: ")).count();
        assert_eq!(error_lines, 1, "one error message:\n{err}");
        assert_eq!(
            snapshot(&self.tables()),
            before,
            "the tables directory changed"
        );
        read_live(&self.tables());
    }
}

fn write_parquet(path: &Path, mut df: DataFrame) {
    ParquetWriter::new(std::fs::File::create(path).expect("create"))
        .finish(&mut df)
        .expect("write parquet");
}

fn history_frame() -> DataFrame {
    df!(
        "timestamp" => ["2021-05-01 10:00:00"],
        "country_code" => ["Peru"],
        "last_order_ts" => ["2021-03-01"],
        "first_order_ts" => ["2020-01-01"],
        "total_orders" => ["14.0"],
        "voucher_amount" => [2640.0],
    )
    .expect("frame")
}

/// Serves one HTTP response per connection, `count` times, on a free loopback port.
fn serve(status: &'static str, body: Vec<u8>, count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/history.parquet")
}

#[test]
fn a_missing_file() {
    let live = Live::new();
    live.assert_refused(
        &[
            "does not exist",
            "/no/such/file.parquet",
            "expected a Parquet file",
        ],
        |t| run_etl("/no/such/file.parquet", t, &[]),
    );
}

#[test]
fn an_unreadable_path_names_the_os_error_once() {
    let live = Live::new();
    // A path through a regular file: ENOTDIR, which even root gets.
    let through_file = live.history.join("x.parquet");
    live.assert_refused(
        &["cannot open input", "x.parquet", "Not a directory"],
        |t| run_etl(through_file.to_str().expect("utf-8"), t, &[]),
    );
}

#[test]
fn an_empty_file_a_truncated_one_and_an_empty_directory_are_refused() {
    let live = Live::new();
    let empty = live.path("empty.parquet");
    std::fs::write(&empty, b"").expect("write");
    live.assert_refused(
        &["empty.parquet", "is not a Parquet file", "it is empty"],
        |t| run_etl(empty.to_str().expect("utf-8"), t, &[]),
    );

    let truncated = live.path("truncated.parquet");
    let bytes = std::fs::read(&live.history).expect("history");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    live.assert_refused(
        &[
            "truncated.parquet",
            "is not a Parquet file",
            "does not end with the bytes PAR1",
        ],
        |t| run_etl(truncated.to_str().expect("utf-8"), t, &[]),
    );

    let dir = live.path("a-directory");
    std::fs::create_dir(&dir).expect("mkdir");
    live.assert_refused(
        &["a-directory", "the directory holds no Parquet files"],
        |t| run_etl(dir.to_str().expect("utf-8"), t, &[]),
    );
}

#[test]
fn a_row_group_corrupted_mid_file_fails_the_run_whatever_the_windows_in_flight() {
    let live = Live::new();
    let history = live.path("six-groups.parquet");
    generate_in_row_groups(&history, 60_000, 5, Some(10_000));
    // Zeros over 4 KiB in the middle: the footer still reads, a data page does not.
    let mut bytes = std::fs::read(&history).expect("history");
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0);
    let corrupt = live.path("corrupt.parquet");
    std::fs::write(&corrupt, &bytes).expect("write");
    for in_flight in ["1", "2", "6"] {
        live.assert_refused(
            &["cannot read input", "corrupt.parquet", "as voucher history"],
            |t| {
                run_etl(
                    corrupt.to_str().expect("utf-8"),
                    t,
                    &["--countries", "all", "--windows-in-flight", in_flight],
                )
            },
        );
    }
}

#[test]
fn a_file_that_is_not_parquet() {
    let live = Live::new();
    let csv = live.path("history.csv");
    std::fs::write(&csv, "timestamp,country_code\n").expect("write");
    live.assert_refused(
        &[
            "not a Parquet file",
            "history.csv",
            "does not start with the bytes PAR1",
        ],
        |t| run_etl(csv.to_str().expect("utf-8"), t, &[]),
    );
}

#[test]
fn a_missing_column_is_named() {
    let live = Live::new();
    let file = live.path("no-orders.parquet");
    write_parquet(&file, history_frame().drop("total_orders").expect("drop"));
    live.assert_refused(&["no column `total_orders`", "voucher_amount"], |t| {
        run_etl(file.to_str().expect("utf-8"), t, &[])
    });
}

#[test]
fn an_unusable_column_type_is_named_with_the_type_found() {
    let live = Live::new();
    let file = live.path("amount-as-text.parquet");
    let mut df = history_frame();
    df.with_column(Series::new("voucher_amount".into(), ["2640"]).into())
        .expect("column");
    write_parquet(&file, df);
    live.assert_refused(
        &[
            "`voucher_amount`",
            "type str",
            "accepted: a float or integer type",
        ],
        |t| run_etl(file.to_str().expect("utf-8"), t, &[]),
    );

    let file = live.path("country-as-number.parquet");
    let mut df = history_frame();
    df.with_column(Series::new("country_code".into(), [51i64]).into())
        .expect("column");
    write_parquet(&file, df);
    live.assert_refused(&["`country_code`", "i64"], |t| {
        run_etl(file.to_str().expect("utf-8"), t, &[])
    });
}

#[test]
fn an_unreachable_url() {
    let live = Live::new();
    // Bind and drop to find a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}/history.parquet");
    live.assert_refused(&["cannot download", &url, "Connection refused"], |t| {
        run_etl(&url, t, &["--download-timeout", "5s"])
    });
}

#[test]
fn a_url_that_answers_404() {
    let live = Live::new();
    let url = serve("404 Not Found", b"no such file".to_vec(), 1);
    live.assert_refused(
        &["cannot download", &url, "the server answered 404 Not Found"],
        |t| run_etl(&url, t, &[]),
    );
}

#[test]
fn a_url_that_serves_history_is_published() {
    let live = Live::new();
    let (before, _, _) = read_live(&live.tables());
    let url = serve("200 OK", std::fs::read(&live.history).expect("history"), 1);
    let out = run_etl(&url, &live.tables(), &[]);
    assert_success(&out);
    let (after, _, manifest) = read_live(&live.tables());
    assert!(after > before);
    assert_eq!(manifest.input, url);
    assert_eq!(manifest.rows_read, 3_000);
}

#[test]
fn an_output_directory_that_cannot_be_written() {
    let live = Live::new();
    let blocker = live.path("a-file");
    std::fs::write(&blocker, "not a directory").expect("write");
    let target = blocker.join("tables");
    let out = run_etl(live.history.to_str().expect("utf-8"), &target, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("a-file/tables"), "{}", stderr(&out));
    // The real tables are untouched too.
    live.assert_refused(&["a-file"], |_| {
        run_etl(live.history.to_str().expect("utf-8"), &target, &[])
    });
}

#[test]
fn malformed_segment_files() {
    let live = Live::new();
    let cases = [
        (
            "overlap.toml",
            "[[frequent_segment]]\nlabel='a'\nlower=0\nupper=5\n[[frequent_segment]]\nlabel='b'\nlower=4\nupper=9\n",
            "overlap",
        ),
        (
            "inverted.toml",
            "[[recency_segment]]\nlabel='a'\nlower=60\nupper=30\n",
            "inverted",
        ),
        (
            "unknown.toml",
            "[[vip_segment]]\nlabel='a'\nlower=0\nupper=3\n",
            "vip_segment",
        ),
        ("broken.toml", "[[frequent_segment]\nlabel=", "broken.toml"),
    ];
    for (name, text, needle) in cases {
        let file = live.path(name);
        std::fs::write(&file, text).expect("write");
        live.assert_refused(&[needle], |t| {
            bin()
                .args(["run", "--input"])
                .arg(&live.history)
                .arg("--output")
                .arg(t)
                .arg("--segments")
                .arg(&file)
                .output()
                .expect("start")
        });
    }
}

#[test]
fn a_missing_segments_file_is_named() {
    let live = Live::new();
    live.assert_refused(
        &[
            "cannot read segments file /no/such/segments.toml",
            "No such file",
        ],
        |t| {
            run_etl(
                live.history.to_str().expect("utf-8"),
                t,
                &["--segments", "/no/such/segments.toml"],
            )
        },
    );
}

#[test]
fn no_rows_of_the_country_publishes_nothing() {
    let live = Live::new();
    live.assert_refused(&["Narnia", "nothing was published"], |t| {
        run_etl(
            live.history.to_str().expect("utf-8"),
            t,
            &["--countries", "Narnia"],
        )
    });
}
