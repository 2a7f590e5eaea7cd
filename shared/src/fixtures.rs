//! Fixtures for tests of both programs (feature `fixtures`): a small voucher table (the built-in
//! segments for Peru, and only the frequent segment `0-4` for Latvia) and a generated set of
//! requests of every kind, which every door must answer alike.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::publish::Version;
use crate::score::Snapshot;
use crate::segments::{SegmentSet, SegmentType};
use crate::table::{VoucherRow, VoucherTable};

/// The version name of [`contract_snapshot`].
pub const CONTRACT_VERSION: &str = "20261123T101000Z";

/// [`contract_rows`] with base 2640, as a table.
pub fn contract_table() -> VoucherTable {
    VoucherTable::new(contract_rows(2640)).expect("the contract rows make a valid table")
}

/// [`contract_table`] as version [`CONTRACT_VERSION`], without a manifest.
pub fn contract_snapshot() -> Snapshot {
    let version = Version::parse(CONTRACT_VERSION).expect("a valid version name");
    Snapshot::new(version, &contract_table(), None)
}

/// Peru's `frequent_segment` `14-37` pays `base` (the contract's example answers 2640 with
/// `base` 2640), `0-4` pays `base - 880` and `5-13` `base + 880`; the recency segments pay
/// `base + 1` to `base + 5` in bound order; Latvia's `0-4` pays 1000.
pub fn contract_rows(base: i64) -> Vec<VoucherRow> {
    let row = |country: &str, segment_type, segment: &crate::segments::Segment, amount| {
        VoucherRow::of_segment(country, segment_type, segment, amount, 4, 10)
    };
    let segments = SegmentSet::builtin();
    let frequent = segments.get(SegmentType::Frequent).unwrap_or(&[]);
    let recency = segments.get(SegmentType::Recency).unwrap_or(&[]);
    let mut rows = Vec::new();
    for (segment, amount) in frequent.iter().zip([base - 880, base + 880, base]) {
        rows.push(row("Peru", SegmentType::Frequent, segment, amount));
    }
    for (segment, amount) in recency.iter().zip(1..) {
        rows.push(row("Peru", SegmentType::Recency, segment, base + amount));
    }
    if let Some(first) = frequent.first() {
        rows.push(row("Latvia", SegmentType::Frequent, first, 1000));
    }
    rows
}

/// A small deterministic generator (64-bit LCG), so that a failure can be replayed.
pub struct Lcg(pub u64);

impl Lcg {
    /// One of `items` (not empty), the next in the sequence.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        &items[((self.0 >> 33) % items.len() as u64) as usize]
    }
}

/// `count` requests (JSON objects; a field of `None` is left out) mixing valid values with
/// every kind of invalid one, against [`contract_table`], with times relative to `now`. The same
/// `seed` gives the same requests. With `json_only`, also values only JSON can carry (wrong
/// types, fractions, null); otherwise only integers, strings and absent fields, which gRPC,
/// Parquet and CSV can carry too.
pub fn door_requests(count: usize, seed: u64, json_only: bool, now: DateTime<Utc>) -> Vec<Value> {
    let s = |v: &str| Some(json!(v));
    let days_ago = |days: i64| {
        Some(json!(
            (now - TimeDelta::days(days))
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        ))
    };
    let customer_ids = vec![Some(json!(1)), Some(json!(987_654)), None];
    let countries = vec![
        s("Peru"),
        s("Peru"),
        s("Latvia"),
        s("Atlantis"),
        s(""),
        None,
    ];
    let lasts = [
        days_ago(3),
        days_ago(45),
        days_ago(100),
        days_ago(400),
        s("2021-10-26"),
        s("2021-10-26T00:00:00Z"),
        days_ago(-2),
        s("2021-02-30"),
        s("yesterday"),
        None,
    ];
    let firsts = [
        s("2020-01-01 00:00:00"),
        s("2020-01-01"),
        s("2099-01-01"),
        s("x"),
        None,
    ];
    let totals: Vec<Option<Value>> = [0, 4, 5, 14, 37, 38, -1]
        .into_iter()
        .map(|n| Some(json!(n)))
        .chain([None])
        .collect();
    let types = [
        s("frequent_segment"),
        s("recency_segment"),
        s("bogus"),
        None,
    ];
    let (mut ids, mut countries, mut totals) = (customer_ids, countries, totals);
    if json_only {
        totals.extend([
            Some(json!(14.0)),
            Some(json!(2.5)),
            s("14"),
            Some(json!(true)),
            Some(Value::Null),
        ]);
        ids.extend([s("abc"), Some(json!(1.5)), Some(json!([1]))]);
        countries.extend([Some(json!(5)), Some(json!({"a": 1}))]);
    }
    let mut rng = Lcg(seed);
    (0..count)
        .map(|_| {
            let fields = [
                ("customer_id", rng.pick(&ids)),
                ("country_code", rng.pick(&countries)),
                ("last_order_ts", rng.pick(&lasts)),
                ("first_order_ts", rng.pick(&firsts)),
                ("total_orders", rng.pick(&totals)),
                ("segment_name", rng.pick(&types)),
            ];
            let request: serde_json::Map<String, Value> = fields
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
                .collect();
            Value::Object(request)
        })
        .collect()
}

/// Writes a staged version complete, as a run does (the table, a manifest with its content hash
/// and the gate's outcome), then publishes it (`Passed`) or holds it (`Held`).
pub fn write_version(
    staged: crate::publish::Staged,
    rows: Vec<VoucherRow>,
    outcome: crate::manifest::GateOutcome,
) -> Version {
    use crate::manifest::{GateOutcome, GateRecord, Manifest, Profile};
    use crate::publish::{Because, MANIFEST_FILE, TABLE_FILE};
    let table = VoucherTable::new(rows).expect("valid rows");
    let mut bytes = Vec::new();
    table.write(&mut bytes).expect("encode the table");
    let manifest = Manifest {
        version: staged.version().to_string(),
        table_rows: table.rows().len() as u64,
        profile: Profile {
            table_sha256: Some(crate::versions::sha256_hex(&bytes)),
            ..Profile::default()
        },
        gate: Some(GateRecord {
            outcome,
            baseline: None,
            failed: usize::from(outcome == GateOutcome::Held),
        }),
        ..Manifest::default()
    };
    std::fs::write(staged.path(TABLE_FILE), &bytes).expect("write the table");
    let json = serde_json::to_vec(&manifest).expect("encode the manifest");
    std::fs::write(staged.path(MANIFEST_FILE), json).expect("write the manifest");
    let because = Because::new("written by a test", "tester");
    if outcome == GateOutcome::Held {
        staged.hold(&because).expect("hold")
    } else {
        staged.publish(&because).expect("publish").version
    }
}

/// An edge value of `customer_id` and friends as a raw request body (so that a body can give a
/// field twice), with what every door must make of it. The four-door test (voucher-api) and the
/// events door's tests (voucher-events) check their doors against these same cases.
#[derive(Debug, Clone)]
pub struct EdgeCase {
    pub body: String,
    /// Whether gRPC's `int64` fields can carry it.
    pub grpc: bool,
    /// The field and error type it is refused with; `None` when it is answered.
    pub refused: Option<(&'static str, &'static str)>,
}

/// The edge cases, with `last_order_ts` as their last order (a few days before now makes them
/// answerable from [`contract_table`]).
pub fn edge_cases(last_order_ts: &str) -> Vec<EdgeCase> {
    let with = |customer_id: &str, total_orders: &str| {
        format!(
            r#"{{"customer_id": {customer_id}, "country_code": "Peru", "last_order_ts": "{last_order_ts}", "first_order_ts": "2021-10-26 00:00:00", "total_orders": {total_orders}, "segment_name": "frequent_segment"}}"#
        )
    };
    let edge = |body, grpc, refused| EdgeCase {
        body,
        grpc,
        refused,
    };
    let too_large = Some(("customer_id", "int_too_large"));
    vec![
        edge(with("9223372036854775807", "14"), true, None),
        edge(with("-1", "14"), true, None),
        edge(with("-9223372036854775808", "5"), true, None),
        edge(with("9223372036854775808", "14"), false, too_large),
        edge(with("18446744073709551615", "14"), false, too_large),
        edge(with("1e300", "14"), false, too_large),
        edge(with("14.0", "14.0"), false, None),
        edge(
            with("1", "1e300"),
            false,
            Some(("total_orders", "int_too_large")),
        ),
        edge(
            with("1, \"customer_id\": 2", "14"),
            false,
            Some(("customer_id", "duplicate_field")),
        ),
        edge(
            with("1", "14, \"segment_name\": \"recency_segment\""),
            false,
            Some(("segment_name", "duplicate_field")),
        ),
    ]
}
