//! Canaries: a complete version, other than the live one, that answers a share of customers
//! while everyone else keeps the live version.
//!
//! ```text
//! <tables-dir>/CANARY   {"version": "...", "percent": 20, "since": "...", "reason": "...", "by": "..."}
//! ```
//!
//! The record is written like `CURRENT` (a temporary file, fsync, rename) under the directory's
//! writer lock, and every start and end is appended to the publish log
//! ([`crate::publish_log`]). A promotion of the canary's version ends the canary (it is live for
//! everyone then); retention never deletes the canary's version.
//!
//! # The bucket rule
//!
//! A customer's bucket is the first 8 bytes of the SHA-256 of the decimal string of its
//! `customer_id` (`"123"`, no sign for positive ids, no leading zeros), read as a big-endian
//! unsigned integer, modulo 10,000. A canary of P percent answers the customers whose bucket is
//! below `P × 100` (so P may have two decimals, and raising P keeps the customers already in
//! it). The rule depends on nothing but the id: every door, replica and restart gives a customer
//! the same version for as long as the canary lasts. A request whose `customer_id` is not a
//! valid integer has no bucket: the live version answers it (and refuses it).

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::publish::{Because, PublishError, TablesDir, Version};
use crate::publish_log::{Action, After, LogEntry, Pending};
use crate::score::VoucherRequest;
use crate::versions::{self, VersionError};

pub const CANARY: &str = "CANARY";
const CANARY_TMP: &str = ".CANARY.tmp";
/// The number of buckets customers are spread over.
pub const BUCKETS: u16 = 10_000;

/// A customer's bucket, `0..BUCKETS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(u16);

impl Bucket {
    /// The bucket of a customer id written as its decimal string (see the module's rule).
    pub fn of(customer_id: &str) -> Bucket {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(customer_id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let bucket = u64::from_be_bytes(first) % u64::from(BUCKETS);
        Bucket(u16::try_from(bucket).unwrap_or(0))
    }

    /// The bucket of a request's customer, when its `customer_id` is a valid integer.
    pub fn of_request(request: &VoucherRequest<'_>) -> Option<Bucket> {
        request.customer_key().map(|key| Bucket::of(&key))
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

/// A share of customers: a whole number of buckets, above 0 and below [`BUCKETS`], written as a
/// percentage with at most two decimals (`20`, `0.5`, `99.99`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u16);

impl Percent {
    /// A share of `buckets` buckets; `None` unless `0 < buckets < BUCKETS`.
    pub fn from_buckets(buckets: u16) -> Option<Percent> {
        (buckets > 0 && buckets < BUCKETS).then_some(Percent(buckets))
    }

    /// The buckets a canary of this share answers: those below this number.
    pub fn buckets(self) -> u16 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Whether a customer in `bucket` is in this share.
    pub fn includes(self, bucket: Bucket) -> bool {
        bucket.0 < self.0
    }

    fn from_f64(value: f64) -> Option<Percent> {
        let buckets = (value * 100.0).round();
        if !value.is_finite() || (value * 100.0 - buckets).abs() > 1e-6 {
            return None;
        }
        if buckets <= 0.0 || buckets >= f64::from(BUCKETS) {
            return None;
        }
        Percent::from_buckets(buckets as u16)
    }
}

const PERCENT_ACCEPTED: &str =
    "a percentage above 0 and below 100 with at most two decimals, e.g. 20 or 0.5";

impl std::str::FromStr for Percent {
    type Err = String;

    fn from_str(text: &str) -> Result<Percent, String> {
        let shown: String = text.chars().take(32).collect();
        let bad = || format!("{shown:?} is not {PERCENT_ACCEPTED}");
        let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 3 || fraction.len() > 2 || !digits(whole) {
            return Err(bad());
        }
        if !digits(fraction) {
            return Err(bad());
        }
        let whole: u16 = whole.parse().map_err(|_| bad())?;
        let fraction: u16 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
        whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(fraction))
            .and_then(Percent::from_buckets)
            .ok_or_else(bad)
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, fraction) = (self.0 / 100, self.0 % 100);
        match fraction {
            0 => write!(f, "{whole}%"),
            n if n.is_multiple_of(10) => write!(f, "{whole}.{}%", n / 10),
            n => write!(f, "{whole}.{n:02}%"),
        }
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(100) {
            serializer.serialize_u16(self.0 / 100)
        } else {
            serializer.serialize_f64(self.as_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Percent::from_f64(value)
            .ok_or_else(|| serde::de::Error::custom(format!("{value} is not {PERCENT_ACCEPTED}")))
    }
}

/// The canary record: which version answers which share of customers, since when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryRecord {
    pub version: Version,
    pub percent: Percent,
    /// When it started (or its share last changed), RFC 3339 UTC.
    pub since: String,
    pub reason: String,
    pub by: String,
}

impl CanaryRecord {
    /// Whether the canary answers this request (see the bucket rule).
    pub fn answers(&self, request: &VoucherRequest<'_>) -> bool {
        Bucket::of_request(request).is_some_and(|b| self.percent.includes(b))
    }
}

/// What [`TablesDir::end_canary`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Record(CanaryRecord),
    /// `CANARY` could not be read (`problem`); `version` is the canary the publish log names.
    Unreadable {
        version: Option<Version>,
        problem: String,
    },
}

impl Ended {
    /// The version whose canary ended, when known.
    pub fn version(&self) -> Option<Version> {
        match self {
            Ended::Record(r) => Some(r.version),
            Ended::Unreadable { version, .. } => *version,
        }
    }
}

/// What [`TablesDir::start_canary`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryStart {
    pub record: CanaryRecord,
    /// The live version, which answers everyone else.
    pub live: Version,
    /// The canary this one replaced, if any.
    pub replaced: Option<CanaryRecord>,
    /// False for a version written before content hashes (see [`versions::Verified`]).
    pub hash_checked: bool,
}

impl TablesDir {
    fn canary_path(&self) -> PathBuf {
        self.root().join(CANARY)
    }

    /// The canary, or `None` when there is none.
    pub fn canary(&self) -> Result<Option<CanaryRecord>, PublishError> {
        let path = self.canary_path();
        let Some(bytes) = crate::publish::read_if_any(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| PublishError::BadCanary { path, source })
    }

    /// Makes `version` answer `percent` of customers beside the live version, once [`verify`]
    /// accepts it. Replaces any canary there was (whose end is logged). The record is written
    /// atomically and logged, under the writer lock.
    ///
    /// [`verify`]: crate::versions::verify
    pub fn start_canary(
        &self,
        version: Version,
        percent: Percent,
        because: &Because,
    ) -> Result<CanaryStart, VersionError> {
        let _lock = self.lock()?;
        let verified = versions::verify(self, version)?;
        let live = self.current()?.ok_or_else(|| VersionError::NothingLive {
            dir: self.root().to_owned(),
        })?;
        if live == version {
            return Err(VersionError::CanaryIsLive { version });
        }
        // An unreadable record is replaced; the log says which canary it was.
        let (replaced, replaced_version) = match self.canary() {
            Ok(record) => (record.clone(), record.map(|r| r.version)),
            Err(e) => {
                log::warn!("replacing it: {}", crate::errors::Chain(&e));
                (None, self.logged_canary()?)
            }
        };
        let now = Utc::now();
        let record = CanaryRecord {
            version,
            percent,
            since: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            reason: because.reason.clone(),
            by: because.by.clone(),
        };
        let mut entries = Vec::new();
        if let Some(old) = replaced_version.filter(|old| *old != version) {
            let reason = format!("replaced by the canary of {version}");
            entries.push(LogEntry::new(
                now,
                Action::CanaryEnd,
                Some(live),
                old,
                reason,
                &because.by,
            ));
        }
        let entry = LogEntry::new(
            now,
            Action::Canary,
            Some(live),
            version,
            &because.reason,
            &because.by,
        );
        entries.push(entry.with_percent(percent));
        let pending = Pending {
            after: After::Canary {
                record: record.clone(),
            },
            entries,
        };
        self.change_and_log(&pending, || self.write_canary(&record))?;
        Ok(CanaryStart {
            record,
            live,
            replaced,
            hash_checked: verified.hash_checked,
        })
    }

    /// Ends the canary: everyone is answered by the live version again. Returns the canary
    /// that ended, or `None` when there was none. An unreadable record is removed too.
    pub fn end_canary(&self, because: &Because) -> Result<Option<Ended>, PublishError> {
        let _lock = self.lock()?;
        self.end_canary_locked(because)
    }

    /// [`TablesDir::end_canary`] for a caller that holds the writer lock.
    pub(crate) fn end_canary_locked(
        &self,
        because: &Because,
    ) -> Result<Option<Ended>, PublishError> {
        let (ended, version) = match self.canary() {
            Ok(None) => return Ok(None),
            Ok(Some(record)) => {
                let version = record.version;
                (Ended::Record(record), Some(version))
            }
            Err(e) => {
                let version = self.logged_canary()?;
                let problem = crate::errors::Chain(&e).to_string();
                (Ended::Unreadable { version, problem }, version)
            }
        };
        let entries = version
            .map(|version| {
                LogEntry::new(
                    Utc::now(),
                    Action::CanaryEnd,
                    self.current().ok().flatten(),
                    version,
                    &because.reason,
                    &because.by,
                )
            })
            .into_iter()
            .collect();
        let pending = Pending {
            after: After::NoCanary,
            entries,
        };
        self.change_and_log(&pending, || self.remove_canary())?;
        Ok(Some(ended))
    }

    /// The canary the publish log started last and did not end, if any.
    pub(crate) fn logged_canary(&self) -> Result<Option<Version>, PublishError> {
        let mut canary = None;
        for e in crate::publish_log::read(self.root())? {
            match e.action {
                Action::Canary => canary = Some(e.to),
                Action::CanaryEnd if canary == Some(e.to) => canary = None,
                _ => {}
            }
        }
        Ok(canary)
    }

    fn remove_canary(&self) -> Result<(), PublishError> {
        let path = self.canary_path();
        fs::remove_file(&path).map_err(|source| PublishError::Io {
            action: "cannot delete",
            path,
            source,
        })?;
        crate::publish::fsync_dir(self.root()).map_err(|source| PublishError::Io {
            action: "cannot fsync",
            path: self.root().to_owned(),
            source,
        })
    }

    /// Writes the record to a temporary file, fsyncs it and renames it over `CANARY`.
    fn write_canary(&self, record: &CanaryRecord) -> Result<(), PublishError> {
        let tmp = self.root().join(CANARY_TMP);
        let io_err = |action, path: &PathBuf| {
            let path = path.clone();
            move |source| PublishError::Io {
                action,
                path,
                source,
            }
        };
        let mut json = serde_json::to_vec_pretty(record)
            .map_err(|e| io_err("cannot encode", &tmp)(e.into()))?;
        json.push(b'\n');
        let mut file = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        file.write_all(&json)
            .map_err(io_err("cannot write", &tmp))?;
        file.sync_all().map_err(io_err("cannot fsync", &tmp))?;
        let path = self.canary_path();
        fs::rename(&tmp, &path).map_err(io_err("cannot rename into place", &path))?;
        crate::publish::fsync_dir(self.root()).map_err(io_err("cannot fsync", &path))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::manifest::GateOutcome;
    use crate::publish_log;
    use crate::score::Json;
    use crate::versions::tests::version;
    use crate::versions::{State, list};

    #[test]
    fn buckets_are_pinned() {
        // Fixed by the documented rule (and computed apart from this code, with Python's
        // hashlib): changing them would move customers between versions.
        let pinned: Vec<(&str, u16)> = ["0", "1", "123", "987654321", "-5"]
            .into_iter()
            .map(|id| (id, Bucket::of(id).value()))
            .collect();
        assert_eq!(
            pinned,
            [
                ("0", 6040),
                ("1", 2913),
                ("123", 6717),
                ("987654321", 9024),
                ("-5", 5011)
            ]
        );
    }

    fn request(customer_id: Json<'static>) -> VoucherRequest<'static> {
        VoucherRequest {
            customer_id,
            country_code: Json::Str(Cow::Borrowed("Peru")),
            ..VoucherRequest::default()
        }
    }

    #[test]
    fn a_request_s_bucket_is_its_id_s_decimal_string_s() {
        let b = Bucket::of("123");
        assert_eq!(Bucket::of_request(&request(Json::Int(123))), Some(b));
        assert_eq!(Bucket::of_request(&request(Json::Float(123.0))), Some(b));
        assert_eq!(
            Bucket::of_request(&request(Json::UInt(u64::MAX))),
            Some(Bucket::of("18446744073709551615"))
        );
        for bad in [
            Json::Missing,
            Json::Null,
            Json::Float(1.5),
            Json::Str(Cow::Borrowed("123")),
        ] {
            assert_eq!(Bucket::of_request(&request(bad.clone())), None, "{bad:?}");
        }
    }

    #[test]
    fn a_share_of_buckets_holds_about_its_share_of_ids() {
        let percent: Percent = "20".parse().expect("percent");
        let inside = (0..100_000)
            .filter(|id: &u32| percent.includes(Bucket::of(&id.to_string())))
            .count();
        assert!((19_000..=21_000).contains(&inside), "{inside}");
    }

    #[test]
    fn percentages_parse_with_two_decimals_and_round_trip() {
        for (text, buckets, shown) in [
            ("20", 2000, "20%"),
            ("0.5", 50, "0.5%"),
            ("99.99", 9999, "99.99%"),
            ("0.01", 1, "0.01%"),
        ] {
            let p: Percent = text.parse().expect(text);
            assert_eq!((p.buckets(), p.to_string().as_str()), (buckets, shown));
            let json = serde_json::to_string(&p).expect("json");
            assert_eq!(serde_json::from_str::<Percent>(&json).expect("back"), p);
        }
        for bad in ["0", "100", "-1", "12.345", "abc", "", "1e2", "1000", ".5"] {
            let err = bad.parse::<Percent>().expect_err(bad);
            assert!(err.contains("above 0 and below 100"), "{err}");
        }
        assert!(serde_json::from_str::<Percent>("100").is_err());
    }

    #[test]
    fn a_canary_starts_ends_is_logged_and_shows_in_states() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let v1 = version(&tables, 0, 2640, GateOutcome::Passed);
        let v2 = version(&tables, 1, 3000, GateOutcome::Held);
        let because = Because::new("try it", "alice");
        let percent: Percent = "20".parse().expect("percent");
        let err = tables
            .start_canary(v1, percent, &because)
            .expect_err("live");
        assert!(matches!(err, VersionError::CanaryIsLive { .. }), "{err}");
        let start = tables.start_canary(v2, percent, &because).expect("start");
        assert_eq!((start.live, start.replaced), (v1, None));
        let record = tables.canary().expect("read").expect("a canary");
        assert_eq!((record.version, record.percent), (v2, percent));
        assert_eq!(
            (record.reason.as_str(), record.by.as_str()),
            ("try it", "alice")
        );
        let states: Vec<_> = list(&tables)
            .expect("list")
            .versions
            .iter()
            .map(|v| v.state)
            .collect();
        assert_eq!(states, [State::Canary, State::Live]);

        let ended = tables.end_canary(&Because::new("enough", "bob"));
        assert_eq!(ended.expect("end").and_then(|e| e.version()), Some(v2));
        assert_eq!(tables.canary().expect("read"), None);
        assert_eq!(tables.end_canary(&because).expect("end"), None);
        let log = publish_log::read(tables.root()).expect("log");
        let canary: Vec<_> = log
            .iter()
            .filter(|e| matches!(e.action, Action::Canary | Action::CanaryEnd))
            .map(|e| (e.action, e.from, e.to, e.percent, e.by.as_str()))
            .collect();
        assert_eq!(
            canary,
            [
                (Action::Canary, Some(v1), v2, Some(percent), "alice"),
                (Action::CanaryEnd, Some(v1), v2, None, "bob"),
            ]
        );
    }

    #[test]
    fn promoting_the_canary_ends_it_and_retention_keeps_its_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let old = version(&tables, 0, 2000, GateOutcome::Passed);
        let v: Vec<Version> = (1..4)
            .map(|i| version(&tables, i, 2640, GateOutcome::Passed))
            .collect();
        let because = Because::new("x", "y");
        let percent: Percent = "5".parse().expect("percent");
        tables.start_canary(old, percent, &because).expect("start");
        let removed = tables.prune(1).expect("prune");
        assert!(!removed.contains(&old), "{removed:?}");
        assert!(tables.version_dir(old).exists());

        tables
            .start_canary(v[1], percent, &because)
            .expect("replace");
        assert_eq!(
            tables.canary().expect("read").map(|c| c.version),
            Some(v[1])
        );
        tables.promote(v[1], &because).expect("promote");
        assert_eq!(tables.canary().expect("read"), None);
        let log = publish_log::read(tables.root()).expect("log");
        let ends: Vec<_> = log
            .iter()
            .filter(|e| e.action == Action::CanaryEnd)
            .map(|e| e.to)
            .collect();
        assert_eq!(ends, [old, v[1]]);
    }

    #[test]
    fn a_canary_of_an_unknown_or_tampered_version_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let v1 = version(&tables, 0, 2640, GateOutcome::Passed);
        let v2 = version(&tables, 1, 3000, GateOutcome::Held);
        let because = Because::new("x", "y");
        let percent: Percent = "5".parse().expect("percent");
        let unknown = Version::parse("20200101T000000Z").expect("version");
        let err = tables.start_canary(unknown, percent, &because);
        assert!(matches!(err, Err(VersionError::Unknown { .. })), "{err:?}");
        fs::copy(tables.table_path(v1), tables.table_path(v2)).expect("copy");
        let err = tables.start_canary(v2, percent, &because);
        assert!(matches!(err, Err(VersionError::Tampered { .. })), "{err:?}");
        assert_eq!(tables.canary().expect("read"), None);
        assert!(!tables.root().join(CANARY).exists());
    }
}
