//! Against a real server (`make postgres-test` starts one and sets VOUCHER_TEST_POSTGRES_URL;
//! without it these tests print a notice and pass): every type family decoded from the binary
//! COPY stream, and failures named for what they are.

use std::time::Duration;

use voucher_postgres::{ConnectOptions, DbUrl, Failure, Family, PgError, RowSink, Session, Value};

fn server() -> Option<DbUrl> {
    match std::env::var("VOUCHER_TEST_POSTGRES_URL") {
        Ok(url) => Some(DbUrl::parse(&url, None).expect("VOUCHER_TEST_POSTGRES_URL parses")),
        Err(_) => {
            eprintln!("skipped: VOUCHER_TEST_POSTGRES_URL is not set (run `make postgres-test`)");
            None
        }
    }
}

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(10),
        ..ConnectOptions::default()
    }
}

#[derive(Default)]
struct Rows(Vec<Vec<String>>, Vec<String>);

impl RowSink for Rows {
    fn value(&mut self, _column: usize, value: Value<'_>) {
        self.1.push(match value {
            Value::Null => "null".to_owned(),
            Value::Text(s) => s.to_owned(),
            Value::Int(v) => v.to_string(),
            Value::Float(v) => v.to_string(),
            Value::Date(d) => format!("day {d}"),
            Value::Timestamp(t) => format!("us {t}"),
            Value::Infinite { negative } => if negative { "-infinity" } else { "infinity" }.into(),
        });
    }
    fn end_row(&mut self) {
        self.0.push(std::mem::take(&mut self.1));
    }
}

/// One row per case: each family's value, as PostgreSQL computes it, beside what the decoder
/// must make of it.
const CASES: &str = "
    DROP DOMAIN IF EXISTS amount CASCADE;
    CREATE DOMAIN amount AS numeric;
    CREATE TEMP TABLE cases (n int, t text, v varchar(9), c char(6), i2 smallint, i8 bigint,
        f4 real, f8 float8, num numeric, dom amount, d date, ts timestamp, tz timestamptz);
    INSERT INTO cases VALUES
      (1, 'Peru', 'Chile', 'Mexico', -7, 9007199254740993, 2.5, 2640, 12345.678, 14,
       '2021-03-01', '2021-05-01 10:00:00.123456', '2021-03-31 23:30:00-05'),
      (2, NULL, NULL, 'ab', NULL, NULL, 'NaN', '-Infinity', 'NaN', -0.0005,
       'infinity', '-infinity', 'infinity'),
      (3, 'ñandú', '', NULL, 0, 0, NULL, NULL, NULL, NULL,
       '1969-12-31', '1900-01-01 00:00:00', NULL);
";

#[tokio::test]
async fn postgres_every_family_decodes_as_postgresql_computes_it() {
    let Some(url) = server() else { return };
    let session = Session::connect(&url, &options()).await.expect("connect");
    session.client().batch_execute(CASES).await.expect("cases");
    let query = "SELECT * FROM cases ORDER BY n";
    let described = session.describe(query).await.expect("describe");
    let columns: Vec<(&str, Family)> = described
        .iter()
        .skip(1)
        .map(|c| (c.name.as_str(), c.family.expect("a readable type")))
        .collect();
    assert_eq!(
        described[9].family,
        Some(Family::Numeric),
        "a domain reads as its base type"
    );
    let mut copy = session.copy_out(query, &columns).await.expect("copy");
    let mut rows = Rows::default();
    while copy.next_into(&mut rows).await.expect("rows") {}
    assert_eq!(copy.rows(), 3);
    let want: [&[&str]; 3] = [
        &[
            "Peru",
            "Chile",
            "Mexico",
            "-7",
            "9007199254740993",
            "2.5",
            "2640",
            "12345.678",
            "14",
            // 2021-03-01; 2021-05-01 10:00:00.123456; 2021-04-01 04:30 UTC.
            "day 18687",
            "us 1619863200123456",
            "us 1617251400000000",
        ],
        &[
            "null",
            "null",
            "ab    ",
            "null",
            "null",
            "NaN",
            "-inf",
            "NaN",
            "-0.0005",
            "infinity",
            "-infinity",
            "infinity",
        ],
        &[
            "ñandú",
            "",
            "null",
            "0",
            "0",
            "null",
            "null",
            "null",
            "null",
            "day -1",
            "us -2208988800000000",
            "null",
        ],
    ];
    assert_eq!(
        rows.0,
        want.map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    );
}

#[tokio::test]
async fn postgres_unreadable_types_have_no_family() {
    let Some(url) = server() else { return };
    let session = Session::connect(&url, &options()).await.expect("connect");
    let described = session
        .describe("SELECT true AS b, '{}'::jsonb AS j, ARRAY[1] AS a, 'x'::bytea AS y")
        .await
        .expect("describe");
    let found: Vec<(&str, Option<Family>)> = described
        .iter()
        .map(|c| (c.type_name.as_str(), c.family))
        .collect();
    assert_eq!(
        found,
        [
            ("bool", None),
            ("jsonb", None),
            ("_int4", None),
            ("bytea", None)
        ]
    );
}

fn failure(result: Result<Session, PgError>) -> (Failure, String) {
    let err = result.err().expect("an error");
    let text = err.to_string();
    (err.failure().cloned().expect("a server failure"), text)
}

#[tokio::test]
async fn postgres_failures_name_the_server_and_what_failed() {
    let Some(url) = server() else { return };
    let mut wrong_db = url.clone();
    wrong_db.database = "no_such_db".into();
    let (what, text) = failure(Session::connect(&wrong_db, &options()).await);
    assert_eq!(what, Failure::UnknownDatabase, "{text}");
    assert!(
        text.contains(&format!("{}:{}/no_such_db", url.host, url.port)),
        "{text}"
    );

    let session = Session::connect(&url, &options()).await.expect("connect");
    for (query, want) in [
        ("SELECT * FROM no_such_table", Failure::UnknownTable),
        (
            "SELECT no_such_column FROM pg_class",
            Failure::UnknownColumn,
        ),
        ("SELEC 1", Failure::Syntax),
    ] {
        let err = session.describe(query).await.expect_err(query);
        assert_eq!(err.failure(), Some(&want), "{err}");
    }

    let statement = ConnectOptions {
        statement_timeout: Some(Duration::from_millis(50)),
        ..options()
    };
    let session = Session::connect(&url, &statement).await.expect("connect");
    let mut copy = session
        .copy_out("SELECT 1 AS x FROM pg_sleep(2)", &[("x", Family::Integer)])
        .await;
    let err = match &mut copy {
        Err(e) => e.to_string(),
        Ok(rows) => loop {
            match rows.next_into(&mut Rows::default()).await {
                Ok(true) => continue,
                Ok(false) => panic!("the statement timeout did not stop the query"),
                Err(e) => break e.to_string(),
            }
        },
    };
    assert!(err.contains("statement timeout (0.05s)"), "{err}");
}
