//! Publishes a small voucher table with the built-in segments, for scripts that need a live
//! table without running the ETL (`api/tests/schemathesis.sh`, `bench/load_test.sh`, the events
//! test and benchmark).
//!
//! Usage: `publish_table <tables-dir> [country ...]` (default countries: Peru, Latvia, China,
//! Australia). Peru's `frequent_segment` `14-37` pays 2640, as in the API contract. Prints the
//! published version.

use anyhow::{Context, bail};
use chrono::Utc;
use voucher_shared::publish::{TABLE_FILE, TablesDir};
use voucher_shared::segments::{Segment, SegmentSet, SegmentType};
use voucher_shared::table::{VoucherRow, VoucherTable};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        bail!("usage: publish_table <tables-dir> [country ...]");
    };
    let mut countries: Vec<String> = args.collect();
    if countries.is_empty() {
        countries = ["Peru", "Latvia", "China", "Australia"]
            .map(String::from)
            .to_vec();
    }
    let segments = SegmentSet::builtin();
    let all: Vec<(SegmentType, &Segment)> = segments
        .iter()
        .flat_map(|(t, list)| list.iter().map(move |s| (t, s)))
        .collect();
    let mut rows = Vec::new();
    for (c, country) in countries.iter().enumerate() {
        for (s, (segment_type, segment)) in all.iter().enumerate() {
            // Amounts in multiples of 880 as in the history; Peru 14-37 is the contract's 2640.
            let amount = 880 * (1 + ((c + s) % 6) as i64);
            rows.push(VoucherRow {
                country_code: country.clone(),
                segment_name: *segment_type,
                segment: segment.label.clone(),
                lower: segment.lower,
                upper: segment.upper,
                voucher_amount: amount,
                occurrences: 3,
                segment_rows: 7,
            });
        }
    }
    let table = VoucherTable::new(rows).context("build the table")?;
    let staged = TablesDir::new(&dir)
        .stage(Utc::now())
        .context("stage a version")?;
    let file = std::fs::File::create(staged.path(TABLE_FILE)).context("create the table file")?;
    let mut out = std::io::BufWriter::new(file);
    table.write(&mut out).context("write the table")?;
    std::io::Write::flush(&mut out).context("write the table")?;
    let published = staged.commit().context("publish the version")?;
    println!("{}", published.version);
    Ok(())
}
