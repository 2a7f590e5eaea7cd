//! `canary`: trying a held version on a share of customers, refusing what cannot be tried,
//! ending the canary, and promotion ending it.

use std::path::Path;

use voucher_shared::canary::CanaryRecord;
use voucher_shared::publish::{TablesDir, Version};
use voucher_shared::publish_log::{self, Action};

use crate::common::*;
use crate::days::*;

fn canary(tables: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["canary"];
    all.extend_from_slice(args);
    etl_on(tables, &all)
}

fn record(tables: &Path) -> Option<CanaryRecord> {
    TablesDir::new(tables).canary().expect("read CANARY")
}

#[test]
fn canary_starts_on_a_held_version_shows_in_versions_and_ends_with_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Chile");
    assert_eq!(exit_code(&run_day(&bad, &tables, &[])), Some(3));
    let [v1, v2] = all_versions(&tables)[..] else {
        panic!("two versions expected")
    };
    let (s1, s2) = (v1.to_string(), v2.to_string());

    let out = canary(
        &tables,
        &[
            &s2,
            "--percent",
            "12.5",
            "--reason",
            "try x10",
            "--by",
            "eve",
        ],
    );
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("canary {v2} answers 12.5% of customers")),
        "{}",
        stdout(&out)
    );
    let r = record(&tables).expect("a canary");
    assert_eq!((r.version, r.percent.buckets()), (v2, 1250));
    assert_eq!((r.reason.as_str(), r.by.as_str()), ("try x10", "eve"));
    assert_eq!(
        (state_of(&tables, v1), state_of(&tables, v2)),
        ("live".into(), "canary".into())
    );
    let listing = stdout(&etl_on(&tables, &["versions"]));
    assert!(
        listing.contains(&format!("{v1} -> {v2} (12.5%)  by eve: try x10")),
        "{listing}"
    );

    // The live version, bad shares and a missing version are refused; the canary stays.
    for (args, says) in [
        (vec![s1.as_str(), "--percent", "20"], "is live"),
        (
            vec![s2.as_str(), "--percent", "100"],
            "above 0 and below 100",
        ),
        (vec![s2.as_str(), "--percent", "0"], "above 0 and below 100"),
        (vec![s2.as_str()], "--percent"),
        (vec!["20200101T000000Z", "--percent", "5"], "does not exist"),
    ] {
        let out = canary(&tables, &args);
        assert_ne!(exit_code(&out), Some(0), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(record(&tables).map(|r| r.percent.buckets()), Some(1250));

    let out = canary(&tables, &["--off", "--reason", "seen enough"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("ended the canary of {v2}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(record(&tables), None);
    assert_eq!(state_of(&tables, v2), "held");
    let out = canary(&tables, &["--off"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("no canary was set"),
        "{}",
        stdout(&out)
    );
    let actions: Vec<_> = publish_log::read(&tables)
        .expect("log")
        .iter()
        .filter(|e| e.to == v2)
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, [Action::Hold, Action::Canary, Action::CanaryEnd]);
}

#[test]
fn canary_is_ended_by_promoting_it_and_survives_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tables, bad) = live_then_x10(dir.path(), "Chile");
    assert_eq!(exit_code(&run_day(&bad, &tables, &[])), Some(3));
    let v2: Version = all_versions(&tables)[1];
    let out = bin()
        .env("VOUCHER_CANARY_PERCENT", "20")
        .args(["canary", &v2.to_string(), "--tables-dir"])
        .arg(&tables)
        .output()
        .expect("canary");
    assert_success(&out);
    assert_eq!(record(&tables).map(|r| r.percent.buckets()), Some(2000));

    let out = etl_on(
        &tables,
        &["promote", &v2.to_string(), "--reason", "canary looked fine"],
    );
    assert_success(&out);
    assert_eq!(live(&tables), Some(v2));
    assert_eq!(record(&tables), None, "promoting the canary ends it");
    let last = publish_log::read(&tables)
        .expect("log")
        .pop()
        .expect("an entry");
    assert_eq!((last.action, last.to), (Action::CanaryEnd, v2));
}

#[test]
fn score_gives_the_canary_s_customers_its_version_and_names_it_per_row() {
    use voucher_shared::canary::{Bucket, Percent};
    use voucher_shared::fixtures::{contract_rows, write_version};
    use voucher_shared::manifest::GateOutcome;
    use voucher_shared::publish::Because;

    let dir = tempfile::tempdir().expect("tempdir");
    let tables = TablesDir::new(dir.path().join("tables"));
    let stage = || tables.stage(chrono::Utc::now()).expect("stage");
    let live = write_version(stage(), contract_rows(2640), GateOutcome::Passed);
    let candidate = write_version(stage(), contract_rows(3000), GateOutcome::Held);
    let percent: Percent = "30".parse().expect("percent");
    tables
        .start_canary(candidate, percent, &Because::new("try", "tester"))
        .expect("start");
    let customers = dir.path().join("customers.csv");
    let mut csv = String::from(
        "customer_id,country_code,last_order_ts,first_order_ts,total_orders,segment_name\n",
    );
    for id in 0..2000 {
        csv.push_str(&format!(
            "{id},Peru,2026-10-01,2021-10-26,14,frequent_segment\n"
        ));
    }
    std::fs::write(&customers, csv).expect("write the list");
    let output = dir.path().join("scored.parquet");
    let out = bin()
        .args(["score", "--now", "2026-11-23T12:00:00Z", "--customers"])
        .arg(&customers)
        .arg("--tables")
        .arg(tables.root())
        .arg("--output")
        .arg(&output)
        .output()
        .expect("score");
    assert_success(&out);

    let frame = read_parquet(&output);
    let versions = frame.column("table_version").and_then(|c| c.str().cloned());
    let vouchers = frame.column("voucher").and_then(|c| c.i64().cloned());
    let (versions, vouchers) = (versions.expect("versions"), vouchers.expect("vouchers"));
    let mut by_canary = 0;
    for id in 0..2000usize {
        let canary = percent.includes(Bucket::of(&id.to_string()));
        let (want, amount) = if canary {
            (candidate, 3000)
        } else {
            (live, 2640)
        };
        by_canary += usize::from(canary);
        assert_eq!(
            (versions.get(id), vouchers.get(id)),
            (Some(want.to_string().as_str()), Some(amount)),
            "customer {id}"
        );
    }
    assert!(by_canary > 400 && by_canary < 800, "{by_canary}");
    assert!(
        stdout(&out).contains(&format!(
            "the canary {candidate} scored {by_canary} of them"
        )),
        "{}",
        stdout(&out)
    );
}
