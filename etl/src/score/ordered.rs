//! Work on a list of items by a few threads, handed on in the list's order, with a bound on how
//! many items are in memory at once.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Runs `produce` on the items, `in_flight` at a time on as many threads, and hands each result
/// to `consume` on this thread in item order. An item is taken only while fewer than
/// `in_flight` items are being produced, waiting, or consumed, so that this many results at
/// most are in memory. Stops at the first error, which it returns.
pub(super) fn map_in_order<I: Sync, T: Send, E: Send>(
    items: &[I],
    in_flight: usize,
    produce: impl Fn(&I) -> Result<T, E> + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let in_flight = in_flight.clamp(1, items.len().max(1));
    let shared = Shared {
        state: Mutex::new(State {
            taken: 0,
            consumed: 0,
            done: BTreeMap::new(),
            stopped: false,
        }),
        changed: Condvar::new(),
    };
    let worker = || {
        let _guard = StopOnPanic(&shared);
        while let Some(index) = shared.take(items.len(), in_flight) {
            let result = produce(&items[index]);
            shared.update(|state| {
                state.done.insert(index, result);
            });
        }
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..in_flight).map(|_| scope.spawn(worker)).collect();
        let mut outcome = Ok(());
        for index in 0..items.len() {
            let Some(result) = shared.wait_for(index) else {
                break;
            };
            outcome = result.and_then(&mut consume);
            shared.update(|state| {
                state.consumed = index + 1;
                state.stopped |= outcome.is_err();
            });
            if outcome.is_err() {
                break;
            }
        }
        shared.update(|state| state.stopped = true);
        for w in workers {
            w.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        outcome
    })
}

/// Stops the work when a worker panics, so that the consumer does not wait for its item; the
/// panic is raised again when the worker is joined.
struct StopOnPanic<'a, T, E>(&'a Shared<T, E>);

impl<T, E> Drop for StopOnPanic<'_, T, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.update(|state| state.stopped = true);
        }
    }
}

struct Shared<T, E> {
    state: Mutex<State<T, E>>,
    changed: Condvar,
}

struct State<T, E> {
    /// Items taken by a worker so far: the next one to take.
    taken: usize,
    /// Items consumed so far.
    consumed: usize,
    /// Results not consumed yet, by item.
    done: BTreeMap<usize, Result<T, E>>,
    /// Set when the consumer stopped: workers take nothing more.
    stopped: bool,
}

impl<T, E> Shared<T, E> {
    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        // A worker that panicked is re-raised on join; the state stays consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut State<T, E>)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// The next item for a worker, once fewer than `in_flight` are taken and not consumed.
    fn take(&self, items: usize, in_flight: usize) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if state.stopped || state.taken >= items {
                return None;
            }
            if state.taken < state.consumed + in_flight {
                state.taken += 1;
                return Some(state.taken - 1);
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The result of item `index`, once produced; `None` if the workers stopped first.
    fn wait_for(&self, index: usize) -> Option<Result<T, E>> {
        let mut state = self.lock();
        loop {
            if let Some(result) = state.done.remove(&index) {
                return Some(result);
            }
            if state.stopped {
                return None;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn results_come_in_order_with_a_bounded_number_in_memory() {
        let items: Vec<usize> = (0..200).collect();
        for in_flight in [1, 2, 3, 8] {
            let alive = AtomicUsize::new(0);
            let most = AtomicUsize::new(0);
            let mut seen = Vec::new();
            map_in_order(
                &items,
                in_flight,
                |&i| {
                    let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Later items finish first now and then.
                    if i % 7 == 0 {
                        std::thread::yield_now();
                    }
                    Ok::<_, String>(i * 2)
                },
                |value| {
                    seen.push(value);
                    alive.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                },
            )
            .expect("no error");
            assert_eq!(seen, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            assert!(most.load(Ordering::SeqCst) <= in_flight, "{in_flight}");
        }
    }

    #[test]
    fn the_first_error_in_order_stops_the_work() {
        let items: Vec<usize> = (0..100).collect();
        let produced = AtomicUsize::new(0);
        let mut consumed = Vec::new();
        let result = map_in_order(
            &items,
            2,
            |&i| {
                produced.fetch_add(1, Ordering::SeqCst);
                if i == 10 {
                    Err(format!("item {i}"))
                } else {
                    Ok(i)
                }
            },
            |i| {
                consumed.push(i);
                Ok(())
            },
        );
        assert_eq!(result, Err("item 10".to_owned()));
        assert_eq!(consumed, (0..10).collect::<Vec<_>>());
        assert!(produced.load(Ordering::SeqCst) <= 12);

        let result = map_in_order(
            &items,
            3,
            |&i| Ok(i),
            |i| {
                if i == 5 { Err("full disk") } else { Ok(()) }
            },
        );
        assert_eq!(result, Err("full disk"));
        assert_eq!(
            map_in_order(&[] as &[usize], 2, |&i| Ok::<_, ()>(i), |_| Ok(())),
            Ok(())
        );
    }
}
