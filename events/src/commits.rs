//! Whether each partition's committed offset can move on: readiness reports a partition whose
//! events wait for the broker to acknowledge their outputs, or whose offsets the broker refuses
//! to commit. Briefly, that is only reported (`degraded`); past a grace period, the process is
//! not ready (`commits_unavailable`), so that a partition stuck behind one event shows on
//! `/readyz` and not only as growing lag.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use voucher_serve::health::{Check, CheckState};
use voucher_shared::echo::cut;

/// Since when a partition is blocked, and the last reason.
#[derive(Debug, Clone)]
struct Blocked {
    since: Instant,
    why: String,
}

#[derive(Debug, Default)]
struct State {
    /// Partitions with outputs the broker has not acknowledged (each is produced again).
    delivery: BTreeMap<i32, Blocked>,
    /// Partitions whose last commit failed.
    commit: BTreeMap<i32, Blocked>,
}

/// The readiness check `commits` of the events topic's partitions.
#[derive(Debug)]
pub struct Commits {
    topic: String,
    grace: Duration,
    state: Mutex<State>,
}

impl Commits {
    /// Partitions of `topic` blocked for longer than `grace` make the process not ready.
    pub fn new(topic: &str, grace: Duration) -> Self {
        Commits {
            topic: topic.to_owned(),
            grace,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Outputs of events of `partitions` were not acknowledged, because of `why`.
    pub fn delivery_failed(&self, partitions: impl IntoIterator<Item = i32>, why: &str) {
        block(&mut self.lock().delivery, partitions, why);
    }

    /// The outputs of events of `partitions` were acknowledged and their offsets stored.
    pub fn delivered(&self, partitions: impl IntoIterator<Item = i32>) {
        let mut state = self.lock();
        for partition in partitions {
            state.delivery.remove(&partition);
        }
    }

    /// The result of committing the offset of `partition`.
    pub fn committed(&self, partition: i32, result: Result<(), String>) {
        let mut state = self.lock();
        match result {
            Ok(()) => {
                state.commit.remove(&partition);
            }
            Err(why) => block(&mut state.commit, [partition], &why),
        }
    }

    /// `partitions` moved to another consumer: what blocked them is no longer ours.
    pub fn revoked(&self, partitions: impl IntoIterator<Item = i32>) {
        let mut state = self.lock();
        for partition in partitions {
            state.delivery.remove(&partition);
            state.commit.remove(&partition);
        }
    }

    /// What readiness says at `now`.
    fn at(&self, now: Instant) -> CheckState {
        let state = self.lock();
        let mut detail = String::new();
        let mut past_grace = false;
        let kinds = [
            ("outputs not acknowledged", &state.delivery),
            ("offsets not committed", &state.commit),
        ];
        for (what, blocked) in kinds {
            for (partition, b) in blocked {
                let waited = now.saturating_duration_since(b.since);
                past_grace |= waited > self.grace;
                let sep = if detail.is_empty() { "" } else { "; " };
                let _ = write!(
                    detail,
                    "{sep}partition {} of {}: {what} for {} s ({})",
                    partition,
                    self.topic,
                    waited.as_secs(),
                    b.why
                );
            }
        }
        match (detail.is_empty(), past_grace) {
            (true, _) => CheckState::Ok,
            (false, false) => CheckState::Degraded(detail),
            (false, true) => CheckState::Unavailable(detail),
        }
    }
}

fn block(map: &mut BTreeMap<i32, Blocked>, partitions: impl IntoIterator<Item = i32>, why: &str) {
    let why = cut(why, 200);
    for partition in partitions {
        let entry = map.entry(partition).or_insert_with(|| Blocked {
            since: Instant::now(),
            why: String::new(),
        });
        why.clone_into(&mut entry.why);
    }
}

impl Check for Commits {
    fn name(&self) -> &'static str {
        "commits"
    }

    fn state(&self) -> CheckState {
        self.at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_partition_is_reported_then_makes_the_process_not_ready() {
        let commits = Commits::new("voucher-requests", Duration::from_secs(3));
        assert_eq!(commits.state(), CheckState::Ok);
        commits.delivery_failed([2], "Broker: Message size too large");
        let now = Instant::now();
        let CheckState::Degraded(detail) = commits.at(now) else {
            panic!("{:?}", commits.at(now));
        };
        assert!(
            detail.starts_with("partition 2 of voucher-requests: outputs not acknowledged for 0 s")
                && detail.contains("Message size too large"),
            "{detail}"
        );
        // Failing again keeps the first failure's time.
        commits.delivery_failed([2], "again");
        let CheckState::Unavailable(detail) = commits.at(now + Duration::from_secs(4)) else {
            panic!("not unavailable past the grace period");
        };
        assert!(detail.contains("for 4 s (again)"), "{detail}");
        commits.delivered([2]);
        assert_eq!(commits.at(now + Duration::from_secs(4)), CheckState::Ok);
    }

    #[test]
    fn commit_failures_count_per_partition_until_a_commit_or_a_revocation() {
        let commits = Commits::new("t", Duration::from_secs(3));
        commits.committed(0, Err("Broker: Not coordinator".into()));
        commits.committed(1, Err("Broker: Not coordinator".into()));
        commits.committed(0, Ok(()));
        let later = Instant::now() + Duration::from_secs(10);
        let CheckState::Unavailable(detail) = commits.at(later) else {
            panic!("{:?}", commits.at(later));
        };
        assert!(
            detail.starts_with("partition 1 of t: offsets not committed")
                && !detail.contains("partition 0"),
            "{detail}"
        );
        commits.revoked([1]);
        assert_eq!(commits.at(later), CheckState::Ok);
    }
}
