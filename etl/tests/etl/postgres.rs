//! History from a real PostgreSQL server (`make postgres-test` starts Debian's PostgreSQL and
//! sets VOUCHER_TEST_POSTGRES_URL; without it these tests print a notice and pass). Each read
//! is compared with the run over a Parquet file holding the same rows; each failure must give
//! one message naming the server and what failed, exit 1 and publish nothing.

use std::path::Path;
use std::process::Output;
use std::sync::Mutex;

use chrono::DateTime;
use polars::prelude::*;
use voucher_postgres::tokio_postgres::types::ToSql;
use voucher_postgres::{ConnectOptions, DbUrl, Session};
use voucher_shared::manifest::Manifest;
use voucher_shared::publish::TablesDir;

use crate::common::*;

/// A connection for setting up tables, and the server's URL.
pub(crate) struct Db {
    runtime: tokio::runtime::Runtime,
    session: Session,
    pub(crate) url: String,
}

pub(crate) fn db() -> Option<Db> {
    let Ok(url) = std::env::var("VOUCHER_TEST_POSTGRES_URL") else {
        eprintln!("skipped: VOUCHER_TEST_POSTGRES_URL is not set (run `make postgres-test`)");
        return None;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let parsed = DbUrl::parse(&url, None).expect("test URL");
    let session = runtime
        .block_on(Session::connect(&parsed, &ConnectOptions::default()))
        .expect("connect to the test server");
    Some(Db {
        runtime,
        session,
        url,
    })
}

impl Db {
    pub(crate) fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.session.client().batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// `host:port/database`, as messages name the server.
    fn server(&self) -> String {
        DbUrl::parse(&self.url, None).expect("url").server()
    }

    /// The URL with another user (and password) in it.
    fn url_as(&self, userinfo: &str) -> String {
        self.url.replacen("voucher@", &format!("{userinfo}@"), 1)
    }

    /// Creates `table` with the columns of `frame` named in `types` (name, SQL type) and
    /// loads the frame's rows into it, in order.
    fn load(&self, table: &str, frame: &DataFrame, types: &[(&str, &str)]) {
        let columns: Vec<String> = types.iter().map(|(n, t)| format!("\"{n}\" {t}")).collect();
        self.execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (n bigint, {})",
            columns.join(", ")
        ));
        let mut params: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(
            (0..frame.height() as i64).map(Some).collect::<Vec<_>>(),
        )];
        let mut unnest = vec!["$1::int8[]".to_owned()];
        let mut select = vec!["c0".to_owned()];
        for (i, (name, sql_type)) in types.iter().enumerate() {
            let (param, array) = sql_array(frame.column(name).expect(name));
            params.push(param);
            unnest.push(format!("${}::{array}", i + 2));
            select.push(format!("c{}::{sql_type}", i + 1));
        }
        let aliases: Vec<String> = (0..select.len()).map(|i| format!("c{i}")).collect();
        let sql = format!(
            "INSERT INTO {table} SELECT {} FROM unnest({}) AS u({})",
            select.join(", "),
            unnest.join(", "),
            aliases.join(", ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        self.runtime
            .block_on(self.session.client().execute(sql.as_str(), &refs))
            .unwrap_or_else(|e| panic!("loading {table}: {e:?}"));
    }
}

/// A column as an array parameter: numbers as themselves, times as text PostgreSQL reads
/// back to the same microsecond, everything else as text.
fn sql_array(column: &Column) -> (Box<dyn ToSql + Sync>, &'static str) {
    match column.dtype() {
        DataType::Float64 => (Box::new(values(column.f64().expect("f64"))), "float8[]"),
        DataType::Int64 => (Box::new(values(column.i64().expect("i64"))), "int8[]"),
        DataType::Date => {
            let days = column.to_physical_repr();
            let text: Vec<Option<String>> = values(days.i32().expect("days"))
                .into_iter()
                .map(|d| d.map(date_text))
                .collect();
            (Box::new(text), "text[]")
        }
        DataType::Datetime(unit, _) => {
            let per_micro = match unit {
                TimeUnit::Nanoseconds => 1000,
                TimeUnit::Microseconds => 1,
                TimeUnit::Milliseconds => unimplemented!("no millisecond columns in these tests"),
            };
            let times = column.to_physical_repr();
            let text: Vec<Option<String>> = values(times.i64().expect("i64"))
                .into_iter()
                .map(|v| {
                    v.map(|v| {
                        DateTime::from_timestamp_micros(v.div_euclid(per_micro))
                            .expect("in range")
                            .format("%Y-%m-%d %H:%M:%S%.6f+00")
                            .to_string()
                    })
                })
                .collect();
            (Box::new(text), "text[]")
        }
        _ => (
            Box::new({
                let text = column.str().expect("a string column");
                (0..text.len())
                    .map(|i| text.get(i).map(str::to_owned))
                    .collect::<Vec<_>>()
            }),
            "text[]",
        ),
    }
}

/// A numeric column's values, in order.
fn values<T: PolarsNumericType>(ca: &ChunkedArray<T>) -> Vec<Option<T::Native>> {
    (0..ca.len()).map(|i| ca.get(i)).collect()
}

fn date_text(days: i32) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
        + chrono::TimeDelta::days(i64::from(days)))
    .to_string()
}

/// The real sample's column types in the database: text for the messy columns, a timestamp
/// and a double, as the source table has them.
const REAL_TYPES: [(&str, &str); 6] = [
    ("timestamp", "text"),
    ("country_code", "text"),
    ("last_order_ts", "text"),
    ("first_order_ts", "timestamp"),
    ("total_orders", "text"),
    ("voucher_amount", "double precision"),
];

/// The real sample, loaded once into `peru_sample` (tests run in parallel).
fn peru_table(db: &Db) -> &'static str {
    static LOADED: Mutex<bool> = Mutex::new(false);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if !*loaded {
        db.load("peru_sample", &read_parquet(&real_sample()), &REAL_TYPES);
        *loaded = true;
    }
    "peru_sample"
}

fn write_parquet(frame: &mut DataFrame, path: &Path) {
    let file = std::fs::File::create(path).expect("create");
    ParquetWriter::new(file).finish(frame).expect("write");
}

/// Runs `voucher-etl run` on the database with `query`, into a new tables directory.
fn run_query(url: &str, query: &str, extra: &[&str]) -> (tempfile::TempDir, Output) {
    let tables = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args(["run", "--input", url, "--query", query, "--output"])
        .arg(tables.path())
        .args(extra)
        .env_remove("PGPASSWORD")
        .output()
        .expect("start voucher-etl");
    (tables, out)
}

/// The live table and counts in `tables` equal those of a run over `parquet` with `extra`;
/// returns both manifests.
fn assert_same_tables(tables: &Path, parquet: &Path, extra: &[&str]) -> (Manifest, Manifest) {
    let from_file = tempfile::tempdir().expect("tempdir");
    assert_success(&run_etl(
        parquet.to_str().expect("utf-8"),
        from_file.path(),
        extra,
    ));
    let (_, table, manifest) = read_live(tables);
    let (_, want_table, want) = read_live(from_file.path());
    assert_eq!(table.rows(), want_table.rows());
    assert_eq!(
        (manifest.rows_read, manifest.rows_kept, manifest.dropped),
        (want.rows_read, want.rows_kept, want.dropped)
    );
    (manifest, want)
}

/// The live table and counts of a successful run from the database equal those of the run
/// over `parquet`, with the same extra arguments.
fn assert_same_as_parquet(db: &Db, query: &str, parquet: &Path, extra: &[&str]) {
    let (from_db, out) = run_query(&db.url, query, extra);
    assert_success(&out);
    let (manifest, want) = assert_same_tables(from_db.path(), parquet, extra);
    assert!(manifest.rows_kept > 0 && manifest.dropped.total() > 0);
    // The manifest names the database and the query, never more.
    let input = &manifest.inputs[0];
    assert_eq!(input.file, format!("postgresql://voucher@{}", db.server()));
    assert_eq!(manifest.input, input.file);
    assert_eq!(input.query.as_deref(), Some(query));
    assert_eq!(input.rows_read, want.rows_read);
}

#[test]
fn postgres_the_real_sample_gives_the_table_of_its_parquet_file() {
    let Some(db) = db() else { return };
    let table = peru_table(&db);
    // Small windows: many of them, counted while the next arrive.
    assert_same_as_parquet(
        &db,
        &format!("SELECT * FROM {table} ORDER BY n"),
        &real_sample(),
        &["--window-rows", "1000"],
    );
}

#[test]
fn postgres_generated_history_of_every_country_gives_the_table_of_its_parquet_file() {
    let Some(db) = db() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.parquet");
    generate(&path, 120_000, 25);
    let frame = read_parquet(&path);
    db.load("generated_history", &frame, &REAL_TYPES);
    assert_same_as_parquet(
        &db,
        "TABLE generated_history",
        &path,
        &["--countries", "all", "--window-rows", "30000"],
    );
}

/// Typed columns of every family, with the values that break the rules: a Parquet file with
/// the polars types these read as, and a table of the PostgreSQL types.
fn typed_history(rows: usize) -> DataFrame {
    let day = 86_400_000_000i64;
    // 2021-05-01 in microseconds; a simple generator spreads the other values around it.
    let base = 18_748 * day;
    let pick = |i: usize, k: usize| (i * 7919 + k * 104_729) % 1000;
    let ts: Vec<Option<i64>> = (0..rows)
        .map(|i| (pick(i, 1) > 20).then(|| base + (pick(i, 2) as i64 - 500) * day / 3))
        .collect();
    let last: Vec<Option<i32>> = (0..rows)
        .map(|i| (pick(i, 3) > 20).then(|| 18_748 - (pick(i, 4) as i32 % 300) + 5))
        .collect();
    let first: Vec<Option<i64>> = (0..rows)
        .map(|i| (pick(i, 5) > 300).then(|| base - (pick(i, 6) as i64) * day))
        .collect();
    let orders: Vec<Option<i64>> = (0..rows)
        .map(|i| (pick(i, 7) > 20).then(|| pick(i, 8) as i64 % 45 - 2))
        .collect();
    let amounts: Vec<Option<f64>> = (0..rows)
        .map(|i| match pick(i, 9) % 50 {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(2640.5),
            3 => Some(-100.0),
            k => Some([1320.0, 2640.0, 3960.0][k % 3]),
        })
        .collect();
    let countries: Vec<&str> = (0..rows)
        .map(|i| ["Peru", "Peru", "Chile", "Mexico"][pick(i, 10) % 4])
        .collect();
    let datetime = |name: &str, values: Vec<Option<i64>>, zone: Option<TimeZone>| {
        Series::new(name.into(), values)
            .cast(&DataType::Datetime(TimeUnit::Microseconds, zone))
            .expect("datetime")
            .into_column()
    };
    DataFrame::new(
        rows,
        vec![
            datetime("timestamp", ts, Some(TimeZone::UTC)),
            Series::new("country_code".into(), countries).into_column(),
            Series::new("last_order_ts".into(), last)
                .cast(&DataType::Date)
                .expect("date")
                .into_column(),
            datetime("first_order_ts", first, None),
            Series::new("total_orders".into(), orders).into_column(),
            Series::new("voucher_amount".into(), amounts).into_column(),
        ],
    )
    .expect("frame")
}

#[test]
fn postgres_typed_columns_read_as_their_parquet_types() {
    let Some(db) = db() else { return };
    let mut frame = typed_history(20_000);
    db.load(
        "typed_history",
        &frame,
        &[
            ("timestamp", "timestamptz"),
            ("country_code", "varchar(12)"),
            ("last_order_ts", "date"),
            ("first_order_ts", "timestamp"),
            ("total_orders", "integer"),
            ("voucher_amount", "numeric"),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("typed.parquet");
    write_parquet(&mut frame, &path);
    assert_same_as_parquet(
        &db,
        "SELECT * FROM typed_history",
        &path,
        &["--countries", "all"],
    );
}

#[test]
fn postgres_tally_shards_each_take_a_query_and_merge_into_one_run() {
    let Some(db) = db() else { return };
    let table = peru_table(&db);
    let tallies = tempfile::tempdir().expect("tempdir");
    let shards = [
        format!("SELECT * FROM {table} WHERE voucher_amount < 3000"),
        format!("SELECT * FROM {table} WHERE NOT voucher_amount < 3000 OR voucher_amount IS NULL"),
    ];
    for (i, query) in shards.iter().enumerate() {
        let out = bin()
            .args(["tally", "--input", &db.url, "--query", query, "--output"])
            .arg(tallies.path().join(format!("part-{i}.json")))
            .output()
            .expect("start voucher-etl");
        assert_success(&out);
    }
    let merged = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .arg("run")
        .arg("--from-tallies")
        .arg(tallies.path())
        .arg("--output")
        .arg(merged.path())
        .output()
        .expect("start voucher-etl");
    assert_success(&out);
    let (manifest, _) = assert_same_tables(merged.path(), &real_sample(), &[]);
    let queries: Vec<Option<&str>> = manifest.inputs.iter().map(|i| i.query.as_deref()).collect();
    assert_eq!(
        queries,
        shards.iter().map(|q| Some(q.as_str())).collect::<Vec<_>>()
    );
}

/// Asserts that `out` is a failure with one error line holding every part of `want`, and that
/// `tables` holds no published version.
fn assert_fails(out: &Output, tables: &Path, want: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    for part in want {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        TablesDir::new(tables).current().expect("readable"),
        None,
        "a failed run published"
    );
}

#[test]
fn postgres_login_failures_name_the_server_and_never_the_password() {
    let Some(db) = db() else { return };
    let table = peru_table(&db);
    db.execute(
        "DROP ROLE IF EXISTS etl_reader;
         CREATE ROLE etl_reader LOGIN PASSWORD 'right-pass' IN ROLE password_login",
    );
    db.execute(&format!("GRANT SELECT ON {table} TO etl_reader"));
    let query = format!("SELECT * FROM {table}");
    let server = db.server();
    let on_server = format!("PostgreSQL server {server} (user etl_reader)");

    let (tables, out) = run_query(&db.url_as("etl_reader:wrong-pass"), &query, &[]);
    assert_fails(
        &out,
        tables.path(),
        &[&on_server, "the password was refused"],
    );
    assert!(!stderr(&out).contains("wrong-pass"), "{}", stderr(&out));

    let (tables, out) = run_query(&db.url_as("etl_reader"), &query, &[]);
    assert_fails(&out, tables.path(), &[&on_server, "asks for a password"]);

    // The password from PGPASSWORD: the run works, and no file or output shows it.
    let tables = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args([
            "run",
            "--input",
            &db.url_as("etl_reader"),
            "--query",
            &query,
        ])
        .arg("--output")
        .arg(tables.path())
        .env("PGPASSWORD", "right-pass")
        .output()
        .expect("start voucher-etl");
    assert_success(&out);
    let (version, _, manifest) = read_live(tables.path());
    let text = std::fs::read_to_string(TablesDir::new(tables.path()).manifest_path(version))
        .expect("manifest");
    assert!(!text.contains("right-pass") && !stderr(&out).contains("right-pass"));
    assert_eq!(manifest.input, format!("postgresql://etl_reader@{server}"));

    let mut other = DbUrl::parse(&db.url, None).expect("url");
    other.database = "no_such_db".into();
    let (tables, out) = run_query(&db.url.replace("/vouchers", "/no_such_db"), &query, &[]);
    assert_fails(
        &out,
        tables.path(),
        &[&other.server(), "the database does not exist"],
    );
}

#[test]
fn postgres_query_failures_say_what_is_wrong_with_the_query() {
    let Some(db) = db() else { return };
    let table = peru_table(&db);
    let server = format!("PostgreSQL server {} (user voucher)", db.server());
    let all_but = |column: &str, instead: &str| {
        let list: Vec<String> = REAL_TYPES
            .iter()
            .map(|(name, _)| {
                if *name == column {
                    format!("{instead} AS {name}")
                } else {
                    format!("\"{name}\"")
                }
            })
            .collect();
        format!("SELECT {} FROM {table}", list.join(", "))
    };
    for (query, want) in [
        (
            "SELECT * FROM no_such_table".to_owned(),
            vec![
                server.as_str(),
                "names a table that does not exist",
                "no_such_table",
            ],
        ),
        (
            format!("SELECT nope FROM {table}"),
            vec![
                server.as_str(),
                "names a column that does not exist",
                "nope",
            ],
        ),
        (
            format!("SELECT * FORM {table}"),
            vec![server.as_str(), "the query has a syntax error", "FORM"],
        ),
        (
            format!("SELECT \"timestamp\", country_code FROM {table}"),
            vec![
                "no column `last_order_ts`",
                "timestamp, country_code",
                &db.server(),
            ],
        ),
        (
            all_but("voucher_amount", "voucher_amount::text"),
            vec![
                "`voucher_amount` has type text",
                "smallint, integer, bigint, real, double precision or numeric",
                &db.server(),
            ],
        ),
        (
            all_but("first_order_ts", "true"),
            vec![
                "`first_order_ts` has type bool",
                "date, timestamp or timestamptz",
            ],
        ),
    ] {
        let (tables, out) = run_query(&db.url, &query, &[]);
        assert_fails(&out, tables.path(), &want);
    }
}

#[test]
fn postgres_timeouts_and_broken_connections_fail_the_run() {
    let Some(db) = db() else { return };
    let table = peru_table(&db);
    let server = format!("PostgreSQL server {} (user voucher)", db.server());

    let sleepy = format!("SELECT h.* FROM {table} h CROSS JOIN pg_sleep(3)");
    let (tables, out) = run_query(&db.url, &sleepy, &["--db-statement-timeout", "200ms"]);
    assert_fails(&out, tables.path(), &[&server, "statement timeout (0.2s)"]);

    // The server ends the connection after 30,000 rows: three windows were counted already.
    let dying = "SELECT '2021-05-01' AS timestamp, 'Peru' AS country_code, \
        '2021-03-01' AS last_order_ts, NULL::timestamp AS first_order_ts, '14' AS total_orders, \
        2640::float8 AS voucher_amount FROM generate_series(1, 1000000) AS g \
        WHERE g <= 30000 OR pg_terminate_backend(pg_backend_pid())";
    let (tables, out) = run_query(&db.url, dying, &["--window-rows", "10000"]);
    assert_fails(&out, tables.path(), &[&server, "the connection broke off"]);

    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let down = format!("postgresql://voucher@127.0.0.1:{port}/vouchers");
    let (tables, out) = run_query(&down, "SELECT 1", &[]);
    assert_fails(
        &out,
        tables.path(),
        &[&format!("127.0.0.1:{port}/vouchers"), "cannot connect"],
    );

    // A server that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = silent.local_addr().expect("addr").port();
    let mute = format!("postgresql://voucher@127.0.0.1:{port}/vouchers");
    let (tables, out) = run_query(&mute, "SELECT 1", &["--db-connect-timeout", "300ms"]);
    assert_fails(
        &out,
        tables.path(),
        &["no answer within the connect timeout (0.3s)"],
    );
    drop(silent);
}

#[test]
fn postgres_tls_modes_encrypt_and_verify_as_libpq_does() {
    let Some(db) = db() else { return };
    let Ok(cert) = std::env::var("VOUCHER_TEST_POSTGRES_CERT") else {
        eprintln!("skipped: VOUCHER_TEST_POSTGRES_CERT is not set (the test server has no TLS)");
        return;
    };
    let table = peru_table(&db);
    let query = format!("SELECT * FROM {table}");
    for params in [
        "sslmode=disable".to_owned(),
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={cert}"),
        format!("sslmode=verify-ca&sslrootcert={cert}"),
    ] {
        let url = format!("{}?{params}", db.url);
        let (tables, out) = run_query(&url, &query, &[]);
        assert_success(&out);
        let (_, _, manifest) = read_live(tables.path());
        assert_eq!(manifest.rows_read, 10_655, "{params}");
    }
    // The certificate names 127.0.0.1, not localhost: verify-ca does not check the name,
    // verify-full does.
    let by_name = db.url.replace("@127.0.0.1:", "@localhost:");
    let url = format!("{by_name}?sslmode=verify-ca&sslrootcert={cert}");
    let (_, out) = run_query(&url, &query, &[]);
    assert_success(&out);
    let url = format!("{by_name}?sslmode=verify-full&sslrootcert={cert}");
    let (tables, out) = run_query(&url, &query, &[]);
    assert_fails(&out, tables.path(), &["the TLS handshake failed"]);
    // The self-signed certificate is no system authority's.
    let url = format!("{}?sslmode=verify-full", db.url);
    let (tables, out) = run_query(&url, &query, &[]);
    assert_fails(
        &out,
        tables.path(),
        &[&db.server(), "the TLS handshake failed"],
    );
}

#[test]
fn a_database_input_needs_a_query_and_a_query_needs_a_database() {
    let tables = tempfile::tempdir().expect("tempdir");
    let out = run_etl("postgresql://etl:secret@127.0.0.1:1/db", tables.path(), &[]);
    assert_fails(
        &out,
        tables.path(),
        &["postgresql://etl@127.0.0.1:1/db", "--query"],
    );
    assert!(!stderr(&out).contains("secret"));

    let out = run_etl(
        real_sample().to_str().expect("utf-8"),
        tables.path(),
        &["--query", "SELECT 1"],
    );
    assert_fails(
        &out,
        tables.path(),
        &["not a postgresql:// or postgres:// URL"],
    );

    let out = run_etl(
        "postgresql://etl:secret@db:port/history",
        tables.path(),
        &["--query", "SELECT 1"],
    );
    assert_fails(&out, tables.path(), &["the port \"port\" is not a number"]);
    assert!(!stderr(&out).contains("secret"));
}

#[test]
fn a_url_error_says_its_problem_once() {
    let tables = tempfile::tempdir().expect("tempdir");
    let out = run_etl(
        "postgresql://etl@127.0.0.1:1/db?application_name=etl",
        tables.path(),
        &["--query", "SELECT 1"],
    );
    let problem = "the parameter \"application_name\" is not supported";
    assert_fails(&out, tables.path(), &[problem]);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .expect("an error line");
    assert_eq!(line.matches(problem).count(), 1, "{line}");
    assert_eq!(line.matches("expected postgresql://").count(), 1, "{line}");
}

#[test]
fn a_password_in_the_input_url_is_warned_of_and_never_shown() {
    let tables = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1: the run fails after the warning.
    let url = "postgresql://etl:pw-on-the-command-line@127.0.0.1:1/db";
    let run = |input: Option<&str>, env: Option<&str>| {
        let mut cmd = bin();
        cmd.args(["run", "--query", "SELECT 1", "--output"])
            .arg(tables.path())
            .env_remove("PGPASSWORD");
        if let Some(input) = input {
            cmd.args(["--input", input]);
        }
        if let Some(env) = env {
            cmd.env("VOUCHER_INPUT", env);
        }
        cmd.output().expect("start voucher-etl")
    };
    let out = run(Some(url), None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("PGPASSWORD")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("(ps)")
            && warnings[0].contains("postgresql://etl@127.0.0.1:1/db"),
        "{}",
        warnings[0]
    );
    let shown = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!shown.contains("pw-on-the-command-line"), "{shown}");

    // From the environment (not in ps), or without a password: no warning.
    for (input, env) in [
        (None, Some(url)),
        (Some("postgresql://etl@127.0.0.1:1/db"), None),
    ] {
        let out = run(input, env);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(!stderr(&out).contains("(ps)"), "{}", stderr(&out));
    }
}
