//! `run --from-tallies` on bad tallies: each is refused with the tally file named and what is
//! wrong, exit 1, nothing published and the live version untouched (issue 21, defect 2).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;

/// The largest count a table holds, 2^63 - 1.
const MAX: u64 = i64::MAX as u64;

/// A tables directory with one live version, made from the two good tallies in `tallies/`.
struct Tallies {
    dir: tempfile::TempDir,
}

impl Tallies {
    /// Tallies of two generated files (`part-a.json`, `part-b.json`), merged and published.
    fn new() -> Self {
        let t = Tallies {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for (name, seed) in [("a", 1), ("b", 2)] {
            let history = t.history(name);
            generate(&history, 3_000, seed);
            t.tally(&history, &format!("part-{name}.json"));
        }
        assert_success(&t.run());
        t
    }

    fn history(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.parquet"))
    }

    fn tallies(&self) -> PathBuf {
        self.dir.path().join("tallies")
    }

    fn tables(&self) -> PathBuf {
        self.dir.path().join("tables")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tallies().join(name)
    }

    /// `voucher-etl tally` of `input` (every country) into `tallies/<name>`.
    fn tally(&self, input: &Path, name: &str) {
        assert_success(
            &bin()
                .args(["tally", "--countries", "all", "--input"])
                .arg(input)
                .arg("--output")
                .arg(self.path(name))
                .output()
                .expect("run tally"),
        );
    }

    fn run(&self) -> Output {
        self.run_into(&self.tables())
    }

    fn run_into(&self, tables: &Path) -> Output {
        bin()
            .args(["run", "--from-tallies"])
            .arg(self.tallies())
            .arg("--output")
            .arg(tables)
            .output()
            .expect("run")
    }

    fn read(&self, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.path(name)).expect("read tally"))
            .expect("tally json")
    }

    fn write(&self, name: &str, tally: &Value) {
        std::fs::write(self.path(name), tally.to_string()).expect("write tally");
    }

    /// Rewrites `part-a.json` with `change`.
    fn change(&self, change: impl FnOnce(&mut Value)) {
        let mut tally = self.read("part-a.json");
        change(&mut tally);
        self.write("part-a.json", &tally);
    }

    /// The run must fail with exit 1, naming tally file `name` and saying each of `needles`
    /// in at most a few lines; the tables directory must be exactly as before.
    fn assert_refused(&self, name: &str, needles: &[&str]) {
        let before = snapshot(&self.tables());
        let out = self.run();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let file = self.path(name).display().to_string();
        assert!(
            err.contains(&format!("tally file {file} is refused")),
            "the tally file is not named:\n{err}"
        );
        for needle in needles {
            assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.len() < 4_096, "a bounded message: {} bytes", err.len());
        assert_eq!(snapshot(&self.tables()), before, "the tables changed");
    }
}

/// A tally of one input of `Peru` rows made by hand: (frequent segment number, amount, rows)
/// per group, every row kept.
fn tally_by_hand(input: &str, groups: &[(usize, i64, u64)]) -> Value {
    let segments =
        serde_json::to_value(voucher_shared::segments::SegmentSet::builtin()).expect("segments");
    let kept: u64 = groups.iter().map(|(_, _, n)| n).sum();
    json!({
        "format": "voucher-etl-tally/1",
        "countries": ["all"],
        "rows_read": kept,
        "rows_kept": kept,
        "rows_kept_by_country": {"Peru": kept},
        "dropped": {},
        "inputs": [{"file": input, "rows_read": kept, "rows_kept": kept, "dropped": {}}],
        "groups": groups.iter().map(|&(index, amount, rows)| json!({
            "country": "Peru",
            "segment_name": "frequent_segment",
            "index": index,
            "segment": segments["frequent_segment"][index],
            "amounts": [[amount, rows]],
        })).collect::<Vec<_>>(),
        "segments": segments,
    })
}

/// Replaces the tallies with hand-made ones.
fn only(t: &Tallies, tallies: &[(&str, Value)]) {
    std::fs::remove_dir_all(t.tallies()).expect("remove the tallies");
    std::fs::create_dir(t.tallies()).expect("mkdir");
    for (name, tally) in tallies {
        t.write(name, tally);
    }
}

#[test]
fn a_group_of_a_segment_the_tally_does_not_have_is_refused() {
    let t = Tallies::new();
    t.change(|tally| {
        let group = &mut tally["groups"][0];
        group["index"] = json!(7);
        group["segment"] = json!({"label": "0-4", "lower": 0, "upper": 4});
    });
    t.assert_refused(
        "part-a.json",
        &[
            "number 7",
            "the tally's segments have no frequent_segment number 7",
        ],
    );

    // A segment that is not the tally's, under a real number.
    let t = Tallies::new();
    t.change(|tally| tally["groups"][0]["segment"]["upper"] = json!(3));
    t.assert_refused(
        "part-a.json",
        &["the tally's frequent_segment number 0 is 0-4 [0, 4], not this group's segment"],
    );
}

#[test]
fn segments_that_disagree_with_the_groups_are_refused() {
    let t = Tallies::new();
    // The manifest would say 0-3 while the table holds 0-4.
    t.change(|tally| tally["segments"]["frequent_segment"][0]["upper"] = json!(3));
    t.assert_refused(
        "part-a.json",
        &["frequent_segment number 0 is 0-4 [0, 3], not this group's segment"],
    );
}

#[test]
fn rows_kept_above_rows_read_is_refused() {
    let t = Tallies::new();
    t.change(|tally| tally["rows_kept"] = json!(tally["rows_read"].as_u64().expect("n") + 1));
    t.assert_refused("part-a.json", &["its counts do not add up: rows_kept ("]);

    // Group counts above the rows kept of their country.
    let t = Tallies::new();
    t.change(|tally| {
        let rows = &mut tally["groups"][0]["amounts"][0][1];
        *rows = json!(rows.as_u64().expect("n") + 10_000);
    });
    t.assert_refused(
        "part-a.json",
        &["groups of \"Chile\" count", "rows kept of it"],
    );

    // Inputs that do not make the totals.
    let t = Tallies::new();
    t.change(|tally| {
        let read = &mut tally["inputs"][0]["rows_read"];
        *read = json!(read.as_u64().expect("n") + 5);
    });
    t.assert_refused(
        "part-a.json",
        &["its inputs' rows_read and rows_kept add up to 3005 and"],
    );
}

#[test]
fn the_same_tally_twice_is_refused() {
    let t = Tallies::new();
    std::fs::copy(t.path("part-a.json"), t.path("part-c.json")).expect("copy");
    let a = t.history("a").display().to_string();
    t.assert_refused(
        "part-c.json",
        &[&format!(
            "input {a:?} is counted by {} too",
            t.path("part-a.json").display()
        )],
    );
}

#[test]
fn two_tallies_that_count_one_input_are_refused() {
    let t = Tallies::new();
    // A shard over a directory that holds a file another shard tallied.
    let both = t.dir.path().join("both");
    std::fs::create_dir(&both).expect("mkdir");
    let b = both.join("b.parquet");
    std::fs::copy(t.history("b"), &b).expect("copy");
    t.tally(&both, "part-c.json");
    t.tally(&b, "part-d.json");
    t.assert_refused(
        "part-d.json",
        &[&format!(
            "input {:?} is counted by {} too",
            b.display().to_string(),
            t.path("part-c.json").display()
        )],
    );
}

#[test]
fn a_count_beyond_what_a_table_holds_is_refused_and_one_just_below_is_published() {
    let t = Tallies::new();
    // Today's code left the 2^63 group out of the table and published the rest.
    only(
        &t,
        &[(
            "part-a.json",
            tally_by_hand("a.parquet", &[(0, 2640, MAX + 1), (1, 3520, 5)]),
        )],
    );
    t.assert_refused(
        "part-a.json",
        &["rows_read is 9223372036854775813; a count is at most 9223372036854775807 rows"],
    );

    only(
        &t,
        &[(
            "part-a.json",
            tally_by_hand("a.parquet", &[(0, 2640, MAX - 5), (1, 3520, 5)]),
        )],
    );
    // Into a new tables directory: the gate would hold so large a change from the live one.
    let fresh = t.dir.path().join("fresh");
    assert_success(&t.run_into(&fresh));
    let (_, table, manifest) = read_live(&fresh);
    let rows: Vec<_> = table
        .rows()
        .iter()
        .map(|r| (r.segment.as_str(), r.occurrences, r.segment_rows))
        .collect();
    assert_eq!(rows, [("0-4", i64::MAX - 5, i64::MAX - 5), ("5-13", 5, 5)]);
    assert_eq!((manifest.rows_read, manifest.rows_kept), (MAX, MAX));
}

#[test]
fn counts_that_overflow_when_merged_are_refused_not_wrapped() {
    let t = Tallies::new();
    // Each fits; together the 0-4 group would count 2^63 + 1 rows. Today's code dropped the
    // group (or, in a release build, wrapped its count and chose another amount).
    let half = 1u64 << 62;
    only(
        &t,
        &[
            (
                "part-a.json",
                tally_by_hand("a.parquet", &[(0, 2640, half), (1, 3520, 5)]),
            ),
            (
                "part-b.json",
                tally_by_hand("b.parquet", &[(0, 2640, half + 1), (1, 3520, 5)]),
            ),
        ],
    );
    t.assert_refused(
        "part-b.json",
        &["its counts and the earlier tallies' cannot be added up: the counts add up to more than 9223372036854775807 rows"],
    );
}

#[test]
fn a_huge_value_in_a_tally_is_named_within_bounds() {
    let t = Tallies::new();
    let huge = "P".repeat(10 << 20);
    t.change(|tally| tally["groups"][0]["country"] = json!(huge));
    t.assert_refused(
        "part-a.json",
        &[
            "which is not a country code (it is 10485760 bytes long)",
            "… (10485760 bytes)",
        ],
    );

    let t = Tallies::new();
    t.change(|tally| tally["rows_read"] = json!(huge));
    let out = t.run();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "is not a tally file written by voucher-etl tally: invalid type: string \"PPP"
        ),
        "{err}"
    );
    assert!(err.len() < 4_096, "a bounded message: {} bytes", err.len());
}
