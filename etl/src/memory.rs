//! The memory budget of reading in windows: how many windows of how many rows a run (or a
//! campaign scoring) reads at once so that it stays under a limit.
//!
//! The limit is `--memory-limit`, or the cgroup's memory limit when the process runs in one
//! that sets it (a Kubernetes pod's `resources.limits.memory`), or none. A source of windows
//! that can tell what a window costs before reading it (a Parquet file, from the sizes in its
//! footer) gets a plan that fits; one that cannot (a database query) keeps the settings asked
//! for, or picks its own.

use std::fmt;
use std::path::Path;

use polars::io::parquet::metadata::FileMetadata;
use polars::prelude::{DataType, Schema};

const MIB: u64 = 1 << 20;

/// What the process holds before any window: the binary, polars' thread pools, allocator
/// arenas (a debug build's `run` of a one-row file peaked at 49 MiB, 2026-12-01; the release
/// build's figure is for `make bench-etl` to confirm).
pub const BASELINE_BYTES: u64 = 48 * MIB;

/// The fewest rows a window is cut down to in order to fit a limit.
pub const MIN_WINDOW_ROWS: u64 = 64 * 1024;

/// A memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    Unlimited,
    Bytes(u64),
}

/// Where a limit came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// `--memory-limit` or `VOUCHER_MEMORY_LIMIT`.
    Setting,
    /// The cgroup's memory limit.
    Cgroup,
    /// Neither: no limit.
    Default,
}

impl MemoryLimit {
    /// A size with an optional unit: `300MiB`, `2GiB`, `512M` (M and MiB are both 2^20 bytes,
    /// as in Kubernetes' `Mi`), `1.5G`, `1048576` (bytes); or `unlimited`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{:?} is not a memory size; use e.g. 300MiB, 2GiB, 512M, 1.5G or a number of bytes, or `unlimited`",
                text.chars().take(40).collect::<String>()
            )
        };
        let t = text.trim();
        if ["unlimited", "max", "none"]
            .iter()
            .any(|w| t.eq_ignore_ascii_case(w))
        {
            return Ok(MemoryLimit::Unlimited);
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let unit = unit.trim().to_ascii_lowercase();
        let unit = unit.trim_end_matches('b').trim_end_matches('i');
        let scale: u64 = match unit {
            "" => 1,
            "k" => 1 << 10,
            "m" => 1 << 20,
            "g" => 1 << 30,
            "t" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = number * scale as f64;
        if !(1.0..=u64::MAX as f64).contains(&bytes) {
            return Err(bad());
        }
        Ok(MemoryLimit::Bytes(bytes as u64))
    }

    /// `setting` if given, else the cgroup's limit, else none; with where it came from.
    pub fn resolve(setting: Option<MemoryLimit>) -> (MemoryLimit, LimitSource) {
        match setting {
            Some(limit) => (limit, LimitSource::Setting),
            None => match cgroup_limit(Path::new("/"), None) {
                Some(bytes) => (MemoryLimit::Bytes(bytes), LimitSource::Cgroup),
                None => (MemoryLimit::Unlimited, LimitSource::Default),
            },
        }
    }

    fn allows(self, bytes: u64) -> bool {
        match self {
            MemoryLimit::Unlimited => true,
            MemoryLimit::Bytes(limit) => bytes <= limit,
        }
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryLimit::Unlimited => f.write_str("unlimited"),
            MemoryLimit::Bytes(bytes) => write!(f, "{}", Size(*bytes)),
        }
    }
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitSource::Setting => "from --memory-limit",
            LimitSource::Cgroup => "the cgroup's",
            LimitSource::Default => "none set",
        })
    }
}

/// A number of bytes in MiB, for messages.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.0} MiB", self.0 as f64 / MIB as f64)
    }
}

/// Limits this large mean "no limit" (cgroup v1 writes 2^63 rounded down to a page).
const NO_LIMIT: u64 = 1 << 60;

/// The memory limit of the cgroup this process is in, if one is set: cgroup v2's `memory.max`
/// or v1's `memory.limit_in_bytes`, under `root` (`/` but in tests). `proc_cgroup` is the
/// text of `/proc/self/cgroup` (read when `None`).
fn cgroup_limit(root: &Path, proc_cgroup: Option<&str>) -> Option<u64> {
    let own = match proc_cgroup {
        Some(text) => text.to_owned(),
        None => std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default(),
    };
    // `0::/path` is the v2 group; `N:...memory...:/path` the v1 memory group.
    let mut candidates = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            candidates.push(root.join("sys/fs/cgroup").join(path).join("memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            candidates.push(
                root.join("sys/fs/cgroup/memory")
                    .join(path)
                    .join("memory.limit_in_bytes"),
            );
        }
    }
    // Inside a container the group is often mounted as the root itself.
    candidates.push(root.join("sys/fs/cgroup/memory.max"));
    candidates.push(root.join("sys/fs/cgroup/memory/memory.limit_in_bytes"));
    candidates
        .iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .find_map(|text| text.trim().parse::<u64>().ok())
        .filter(|&bytes| bytes < NO_LIMIT)
}

/// Windows of rows, and how many are read at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    pub window_rows: u64,
    pub in_flight: u16,
}

/// A plan and what it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub plan: WindowPlan,
    pub limit: MemoryLimit,
    pub source: LimitSource,
    /// The peak the plan was estimated to reach, when the source could tell.
    pub estimated_peak: Option<u64>,
    /// Whether the estimate is within the limit (false: even the smallest plan is not).
    pub fits: bool,
}

impl fmt::Display for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "windows of {} rows, {} in flight (memory limit: {}, {}",
            self.plan.window_rows, self.plan.in_flight, self.limit, self.source
        )?;
        match self.estimated_peak {
            Some(peak) if self.fits => write!(f, "; estimated peak {})", Size(peak)),
            Some(peak) => write!(f, "; estimated peak {}, over the limit)", Size(peak)),
            None => f.write_str(")"),
        }
    }
}

/// The plan for reading a source under `limit`: `wanted` if its estimated peak fits, else
/// fewer windows in flight, then smaller windows (down to [`MIN_WINDOW_ROWS`]). The peak is
/// [`BASELINE_BYTES`] plus `window_bytes(rows)` per window in flight; a source that cannot
/// estimate it passes `None` and keeps `wanted`.
pub fn plan(
    (limit, source): (MemoryLimit, LimitSource),
    wanted: WindowPlan,
    window_bytes: Option<&dyn Fn(u64) -> u64>,
) -> Planned {
    let Some(window_bytes) = window_bytes else {
        return Planned {
            plan: wanted,
            limit,
            source,
            estimated_peak: None,
            fits: true,
        };
    };
    let peak = |plan: WindowPlan| {
        BASELINE_BYTES.saturating_add(u64::from(plan.in_flight) * window_bytes(plan.window_rows))
    };
    let mut rows = wanted.window_rows.max(1);
    loop {
        for in_flight in (1..=wanted.in_flight.max(1)).rev() {
            let plan = WindowPlan {
                window_rows: rows,
                in_flight,
            };
            if limit.allows(peak(plan)) {
                return Planned {
                    plan,
                    limit,
                    source,
                    estimated_peak: Some(peak(plan)),
                    fits: true,
                };
            }
        }
        if rows <= MIN_WINDOW_ROWS {
            let plan = WindowPlan {
                window_rows: rows,
                in_flight: 1,
            };
            return Planned {
                plan,
                limit,
                source,
                estimated_peak: Some(peak(plan)),
                fits: false,
            };
        }
        rows = (rows / 2).max(MIN_WINDOW_ROWS);
    }
}

/// Decoded bytes per row group of the `columns` of a Parquet file, estimated from its footer:
/// each column chunk's uncompressed size, but at least a value's in-memory width per value
/// (16 bytes for a string's view, 8 otherwise): a dictionary-encoded chunk is much smaller
/// than its decoded values.
pub fn decoded_bytes(metadata: &FileMetadata, schema: &Schema, columns: &[&str]) -> Vec<u64> {
    metadata
        .row_groups
        .iter()
        .map(|group| {
            columns
                .iter()
                .filter_map(|name| Some((group.columns_under_root_iter(name)?, schema.get(name)?)))
                .flat_map(|(chunks, dtype)| {
                    let width = match dtype {
                        DataType::String | DataType::Binary => 16,
                        _ => 8,
                    };
                    chunks.map(move |chunk| {
                        let values = u64::try_from(chunk.num_values()).unwrap_or(0);
                        let size = u64::try_from(chunk.uncompressed_size()).unwrap_or(0);
                        size.max(values * width)
                    })
                })
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_or_without_units() {
        for (text, bytes) in [
            ("300MiB", 300 * MIB),
            ("300Mi", 300 * MIB),
            ("300M", 300 * MIB),
            ("300 mb", 300 * MIB),
            ("2GiB", 2 << 30),
            ("1.5G", 3 << 29),
            ("64k", 64 << 10),
            ("1048576", MIB),
        ] {
            assert_eq!(
                MemoryLimit::parse(text),
                Ok(MemoryLimit::Bytes(bytes)),
                "{text}"
            );
        }
        assert_eq!(MemoryLimit::parse("unlimited"), Ok(MemoryLimit::Unlimited));
        for bad in ["", "MiB", "-3M", "3 apples", "0", "1e3M", "0.1"] {
            let err = MemoryLimit::parse(bad).expect_err(bad);
            assert!(err.contains("300MiB"), "{err}");
        }
    }

    fn with_files(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let file = root.path().join(path);
            std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
            std::fs::write(file, text).expect("write");
        }
        root
    }

    #[test]
    fn the_cgroup_limit_is_read_from_v2_or_v1() {
        let v2 = with_files(&[("sys/fs/cgroup/kubepods/pod1/memory.max", "314572800\n")]);
        assert_eq!(
            cgroup_limit(v2.path(), Some("0::/kubepods/pod1\n")),
            Some(300 * MIB)
        );
        let v2_max = with_files(&[("sys/fs/cgroup/memory.max", "max\n")]);
        assert_eq!(cgroup_limit(v2_max.path(), Some("0::/\n")), None);
        let v1 = with_files(&[(
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
            "268435456\n",
        )]);
        assert_eq!(
            cgroup_limit(v1.path(), Some("5:cpu:/\n4:memory:/docker/abc\n0::/\n")),
            Some(256 * MIB)
        );
        let v1_unlimited = with_files(&[(
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        )]);
        assert_eq!(
            cgroup_limit(v1_unlimited.path(), Some("4:memory:/\n")),
            None
        );
        let none = with_files(&[]);
        assert_eq!(cgroup_limit(none.path(), Some("")), None);
    }

    const WANTED: WindowPlan = WindowPlan {
        window_rows: 1 << 20,
        in_flight: 2,
    };

    fn planned(limit: MemoryLimit, per_row: u64) -> Planned {
        let cost = move |rows: u64| rows * per_row;
        plan((limit, LimitSource::Setting), WANTED, Some(&cost))
    }

    #[test]
    fn a_plan_keeps_what_fits_then_drops_windows_then_rows() {
        // 100 bytes a row: 100 MiB a 1M-row window.
        let unlimited = planned(MemoryLimit::Unlimited, 100);
        assert_eq!(unlimited.plan, WANTED);
        assert_eq!(unlimited.estimated_peak, Some(BASELINE_BYTES + 200 * MIB));
        let roomy = planned(MemoryLimit::Bytes(300 * MIB), 100);
        assert_eq!(roomy.plan, WANTED);
        let one = planned(MemoryLimit::Bytes(200 * MIB), 100);
        assert_eq!(one.plan.in_flight, 1);
        assert_eq!(one.plan.window_rows, 1 << 20);
        let smaller = planned(MemoryLimit::Bytes(100 * MIB), 100);
        assert_eq!(
            smaller.plan,
            WindowPlan {
                window_rows: 1 << 19,
                in_flight: 1
            }
        );
        assert!(smaller.fits && smaller.estimated_peak <= Some(100 * MIB));
        let hopeless = planned(MemoryLimit::Bytes(10 * MIB), 100);
        assert!(!hopeless.fits);
        assert_eq!(hopeless.plan.window_rows, MIN_WINDOW_ROWS);
        assert!(
            hopeless.to_string().contains("over the limit"),
            "{hopeless}"
        );
    }

    #[test]
    fn a_source_that_cannot_estimate_keeps_what_was_asked() {
        let kept = plan((MemoryLimit::Bytes(MIB), LimitSource::Cgroup), WANTED, None);
        assert_eq!(kept.plan, WANTED);
        assert_eq!(kept.estimated_peak, None);
        assert!(kept.to_string().contains("the cgroup's"), "{kept}");
    }
}
