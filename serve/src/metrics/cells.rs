//! Counts that every thread adds to in cells of its own and that a scrape sums.
//!
//! A series that every request adds to, shared by the workers, is one cache line that their
//! cores pass back and forth: on the single route, the scoring counter's `lock incq` alone took
//! about 40 ns of some 8 us of CPU per request on 2 cores (perf, bench/RESULTS.md), and the
//! cost grows with the cores. A thread's own cell costs a plain load and store.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use voucher_shared::score::Outcome;

use super::Door;

/// A count that one thread adds to and scrapes read: the writer's add is a plain load and
/// store (no lock-prefixed instruction), which a reader on another thread sees whole. Only
/// one thread may add to a cell.
#[derive(Debug, Default)]
pub struct Cell(AtomicU64);

impl Cell {
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A metric with these labels, for a hand-written collector.
pub fn labelled(labels: &[(&str, &str)]) -> proto::Metric {
    let mut metric = proto::Metric::default();
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect(),
    );
    metric
}

/// The family of `desc` holding `metrics`.
pub fn family(desc: &Desc, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(desc.fq_name.clone());
    family.set_help(desc.help.clone());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// One thread's scoring counts, by door and outcome.
#[derive(Debug, Default)]
struct ThreadCounts([[Cell; Outcome::ALL.len()]; Door::ALL.len()]);

/// The scoring counter `scored_total{door, outcome}`: every series exists from the start.
#[derive(Debug, Clone)]
pub(super) struct ScoredCounts(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    desc: Desc,
    /// Every thread's counts, kept after the thread ends (a counter never goes down).
    threads: Mutex<Vec<Arc<ThreadCounts>>>,
}

thread_local! {
    /// This thread's counts in each [`ScoredCounts`] it counted into: one per process, but
    /// tests run many side by side.
    static COUNTS: RefCell<Vec<(Weak<Shared>, Arc<ThreadCounts>)>> =
        const { RefCell::new(Vec::new()) };
}

impl ScoredCounts {
    pub(super) fn new(name: &str, help: &str) -> Result<Self, prometheus::Error> {
        Ok(ScoredCounts(Arc::new(Shared {
            desc: Desc::new(
                name.to_owned(),
                help.to_owned(),
                vec!["door".to_owned(), "outcome".to_owned()],
                HashMap::new(),
            )?,
            threads: Mutex::default(),
        })))
    }

    /// Counts one item of `door` on this thread.
    pub(super) fn count(&self, door: Door, outcome: Outcome) {
        COUNTS.with(|counts| {
            let mut counts = counts.borrow_mut();
            let mine = match counts
                .iter()
                .position(|(of, _)| std::ptr::eq(of.as_ptr(), Arc::as_ptr(&self.0)))
            {
                Some(at) => at,
                None => {
                    // Counts of collectors gone (tests' earlier apps) are only kept by them.
                    counts.retain(|(of, _)| of.strong_count() > 0);
                    let fresh = Arc::new(ThreadCounts::default());
                    self.0
                        .threads
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Arc::clone(&fresh));
                    counts.push((Arc::downgrade(&self.0), fresh));
                    counts.len() - 1
                }
            };
            counts[mine].1.0[door as usize][outcome as usize].add(1);
        });
    }
}

impl Collector for ScoredCounts {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut totals = [[0u64; Outcome::ALL.len()]; Door::ALL.len()];
        for thread in self
            .0
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for (total, cells) in totals.iter_mut().zip(&thread.0) {
                for (total, cell) in total.iter_mut().zip(cells) {
                    *total += cell.get();
                }
            }
        }
        let metrics = Door::ALL
            .iter()
            .flat_map(|door| Outcome::ALL.iter().map(move |outcome| (door, outcome)))
            .map(|(door, outcome)| {
                let mut counter = proto::Counter::default();
                counter.set_value(totals[*door as usize][*outcome as usize] as f64);
                let mut metric = labelled(&[("door", door.label()), ("outcome", outcome.label())]);
                metric.set_counter(counter);
                metric
            })
            .collect();
        vec![family(&self.0.desc, MetricType::COUNTER, metrics)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_of(counts: &ScoredCounts, door: Door, outcome: Outcome) -> f64 {
        let family = counts.collect().remove(0);
        let want = [door.label(), outcome.label()];
        family
            .get_metric()
            .iter()
            .find(|m| {
                m.get_label()
                    .iter()
                    .map(proto::LabelPair::value)
                    .eq(want.iter().copied())
            })
            .map_or(f64::NAN, |m| m.get_counter().get_value())
    }

    #[test]
    fn a_scrape_sums_every_threads_counts_and_keeps_those_of_ended_threads() {
        let counts = ScoredCounts::new("scored_total", "help").expect("desc");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        counts.count(Door::Http, Outcome::Ok);
                    }
                    counts.count(Door::Grpc, Outcome::Invalid);
                });
            }
        });
        counts.count(Door::Http, Outcome::Ok);
        assert_eq!(count_of(&counts, Door::Http, Outcome::Ok), 4001.0);
        assert_eq!(count_of(&counts, Door::Grpc, Outcome::Invalid), 4.0);
        assert_eq!(count_of(&counts, Door::Events, Outcome::Ok), 0.0);
        let series = counts.collect().remove(0).get_metric().len();
        assert_eq!(series, Door::ALL.len() * Outcome::ALL.len());
    }

    #[test]
    fn two_collectors_on_one_thread_count_apart() {
        let first = ScoredCounts::new("scored_total", "help").expect("desc");
        let second = ScoredCounts::new("scored_total", "help").expect("desc");
        first.count(Door::Http, Outcome::Ok);
        second.count(Door::Http, Outcome::Ok);
        second.count(Door::Http, Outcome::Ok);
        drop(first);
        let third = ScoredCounts::new("scored_total", "help").expect("desc");
        third.count(Door::Http, Outcome::Ok);
        assert_eq!(count_of(&second, Door::Http, Outcome::Ok), 2.0);
        assert_eq!(count_of(&third, Door::Http, Outcome::Ok), 1.0);
        COUNTS.with(|counts| {
            assert_eq!(
                counts.borrow().len(),
                2,
                "the dropped collector's counts are let go"
            );
        });
    }
}
