//! Exact-duplicate rows: how many rows of a run repeat an earlier row in every column the job
//! reads, for the gate's `duplicate_share` check (a batch loaded twice, a row copied thousands
//! of times).
//!
//! Each row is hashed in the polars query (see `clean::row_hash_udf`). Counting duplicates
//! exactly needs every distinct hash at once, which grows with the history, so the hashes are
//! kept by adaptive sampling (Wegman's): all of them up to [`CAPACITY`], and beyond it only
//! those whose top `level` bits are zero, `level` rising by one whenever the set fills. The
//! count is exact for histories of up to [`CAPACITY`] distinct rows and estimated beyond (the
//! distinct rows as the sample times `2^level`, within about 0.4 % of them). Counts of parts
//! merge into the counts of the whole whatever the split, as the tally's other counts do.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The most distinct row hashes kept (about 2.5 MiB).
pub const CAPACITY: usize = 1 << 17;

type Hashes = HashSet<u64, foldhash::fast::FixedState>;

/// The rows seen and a sample of their distinct hashes. The default counts nothing yet; the
/// counts of a part whose rows were not hashed (a tally file written before this count existed)
/// are [`Duplicates::unknown`], and so is anything merged with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Duplicates {
    rows: u64,
    level: u32,
    hashes: Hashes,
    unknown: bool,
}

/// Mixes a row's combined column hashes so that its top bits are as random as the rest
/// (murmur3's finaliser): the sample is chosen by the top bits.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Folds the hash of a row's next columns into the hash of its columns so far.
pub fn combine(so_far: u64, next: u64) -> u64 {
    mix(so_far ^ next.rotate_left(29))
}

impl Duplicates {
    /// Counts one row by the hash of its columns.
    pub fn add(&mut self, row_hash: u64) {
        self.rows += 1;
        self.keep(mix(row_hash));
    }

    fn keep(&mut self, h: u64) {
        if h.leading_zeros() >= self.level && self.hashes.insert(h) {
            self.trim();
        }
    }

    /// Raises the level until the sample fits.
    fn trim(&mut self) {
        while self.hashes.len() > CAPACITY {
            self.level += 1;
            let level = self.level;
            self.hashes.retain(|h| h.leading_zeros() >= level);
        }
    }

    /// The counts of rows that were not hashed.
    pub fn unknown() -> Duplicates {
        Duplicates {
            unknown: true,
            ..Duplicates::default()
        }
    }

    /// Adds the rows and hashes of another part of the history.
    pub fn merge(&mut self, other: Duplicates) {
        self.unknown |= other.unknown;
        self.rows = self.rows.saturating_add(other.rows);
        if other.level > self.level {
            self.level = other.level;
            let level = self.level;
            self.hashes.retain(|h| h.leading_zeros() >= level);
        }
        for h in other.hashes {
            self.keep(h);
        }
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows that repeat an earlier row: exact while no more than [`CAPACITY`] rows were
    /// distinct, estimated beyond; `None` when some rows were not hashed.
    pub fn duplicate_rows(&self) -> Option<u64> {
        let distinct = (self.hashes.len() as u128) << self.level;
        let duplicates = u128::from(self.rows).saturating_sub(distinct);
        (!self.unknown).then(|| u64::try_from(duplicates).unwrap_or(0))
    }

    /// Whether [`Duplicates::duplicate_rows`] is exact.
    pub fn exact(&self) -> bool {
        self.level == 0
    }
}

/// The form of [`Duplicates`] in a tally file: the rows, the level and the sampled hashes,
/// sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicatesFile {
    pub rows: u64,
    pub level: u32,
    pub hashes: Vec<u64>,
}

impl DuplicatesFile {
    /// The file form, unless the counts are unknown.
    pub fn of(d: &Duplicates) -> Option<DuplicatesFile> {
        let mut hashes: Vec<u64> = d.hashes.iter().copied().collect();
        hashes.sort_unstable();
        (!d.unknown).then_some(DuplicatesFile {
            rows: d.rows,
            level: d.level,
            hashes,
        })
    }
}

impl From<DuplicatesFile> for Duplicates {
    /// Hashes the level excludes are left out, and a sample beyond [`CAPACITY`] is trimmed,
    /// so that an edited file cannot grow the sample.
    fn from(file: DuplicatesFile) -> Self {
        let mut d = Duplicates {
            rows: file.rows,
            level: file.level.min(64),
            hashes: Hashes::default(),
            unknown: false,
        };
        for h in file.hashes {
            d.keep(h);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(rows: impl IntoIterator<Item = u64>) -> Duplicates {
        let mut d = Duplicates::default();
        for r in rows {
            d.add(r);
        }
        d
    }

    #[test]
    fn small_histories_are_counted_exactly() {
        let d = counted((0..1000).chain(0..10).chain(std::iter::repeat_n(7, 6000)));
        assert_eq!(
            (d.rows(), d.duplicate_rows(), d.exact()),
            (7010, Some(6010), true)
        );
        assert_eq!(counted(0..CAPACITY as u64).duplicate_rows(), Some(0));
        assert_eq!(Duplicates::default().duplicate_rows(), Some(0));
    }

    #[test]
    fn large_histories_are_estimated_within_half_a_percent_of_their_rows() {
        // 1,000,000 distinct rows, then 50,000 of them again.
        let d = counted((0..1_000_000u64).chain(0..50_000));
        assert!(!d.exact());
        assert!(d.hashes.len() <= CAPACITY);
        let found = d.duplicate_rows().expect("known");
        let error = found as f64 - 50_000.0;
        assert!(error.abs() < 0.005 * 1_050_000.0, "{found}");
    }

    #[test]
    fn parts_merge_into_the_count_of_the_whole_whatever_the_split() {
        let rows: Vec<u64> = (0..400_000u64).chain(1000..3000).collect();
        let whole = counted(rows.iter().copied());
        for split in [1, 150_000, 399_999] {
            let mut a = counted(rows[..split].iter().copied());
            a.merge(counted(rows[split..].iter().copied()));
            assert_eq!(a, whole, "split at {split}");
        }
        let mut small = counted([1, 2, 3]);
        small.merge(counted([3, 3, 4]));
        assert_eq!((small.rows(), small.duplicate_rows()), (6, Some(2)));
        small.merge(Duplicates::unknown());
        assert_eq!(small.duplicate_rows(), None, "a part without counts");
    }

    #[test]
    fn the_file_form_round_trips_and_an_edited_one_cannot_grow_the_sample() {
        let d = counted((0..300_000u64).chain(0..5));
        let back = Duplicates::from(DuplicatesFile::of(&d).expect("known"));
        assert_eq!(back, d);
        assert_eq!(DuplicatesFile::of(&Duplicates::unknown()), None);
        let edited = DuplicatesFile {
            rows: 10,
            level: 200,
            hashes: (0..CAPACITY as u64 * 2).collect(),
        };
        let d = Duplicates::from(edited);
        assert!(d.hashes.len() <= CAPACITY && d.level <= 64);
        assert!(d.duplicate_rows().is_some_and(|n| n <= 10));
    }

    #[test]
    fn the_row_hash_depends_on_the_order_of_columns() {
        assert_ne!(combine(1, 2), combine(2, 1));
        assert_ne!(combine(combine(5, 0), 0), combine(5, 0));
    }
}
