//! The Kafka side: read a batch of events, score each, produce every result and dead letter,
//! wait until the broker has acknowledged all of them, and only then store the batch's offsets
//! for the next commit (a few batches are in flight at once; offsets are stored in read order).
//! A crash anywhere before that point means the batch is read again: at least once, never lost.
//!
//! The events of a batch that ask by customer id are resolved with one lookup of the customer
//! store. While the store cannot answer, the batch waits and tries again: nothing of it is
//! produced or committed, and the batches behind it wait too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::{Partition, Statistics};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use voucher_serve::customers::Customers;
use voucher_serve::health::{Check, CheckState};
use voucher_serve::metrics::DoorCounters;
use voucher_serve::tables::Tables;
use voucher_shared::score::{Outcome, now_secs};

use crate::commits::Commits;
use crate::config::EventsConfig;
use crate::event::{self, Routed, Source, Undeliverable};
use crate::metrics::EventMetrics;
use crate::{EventsError, Refused};

/// How long to wait before producing refused messages again.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// Batches produced at once, waiting for the broker's acknowledgements, while the next is read.
const MAX_IN_FLIGHT: usize = 4;

/// How long a message may wait in the producer's queue when the queue is full.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many `--check-interval`s a partition may stay blocked before readiness fails.
const BLOCKED_CHECKS: u32 = 3;

/// What the readiness endpoint reports about the broker.
#[derive(Debug)]
pub struct BrokerStatus {
    /// `Ok` once a check reached the broker and found the topics; else why not.
    state: Mutex<Result<(), String>>,
}

impl BrokerStatus {
    fn new() -> Self {
        BrokerStatus {
            state: Mutex::new(Err("the broker has not been checked yet".into())),
        }
    }

    /// `Ok`, or why the broker is not usable.
    pub fn get(&self) -> Result<(), String> {
        self.state
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |s| s.clone())
    }

    /// Records a check's result; logs only changes, so a lasting outage is one line.
    fn set(&self, result: Result<(), String>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if *state != result {
            match &result {
                Ok(()) => log::info!("the broker is reachable and the topics exist"),
                Err(why) => log::warn!("the broker is not usable: {why}"),
            }
            *state = result;
        }
    }
}

/// Readiness needs the broker: events can be neither read nor answered without it.
impl Check for BrokerStatus {
    fn name(&self) -> &'static str {
        "broker"
    }

    fn state(&self) -> CheckState {
        self.get()
            .map_or_else(CheckState::Unavailable, |()| CheckState::Ok)
    }
}

/// Logs rebalances, follows the assignment, turns librdkafka's statistics into the lag gauges
/// and commit results into the `commits` readiness check.
pub struct Context {
    metrics: EventMetrics,
    commits: Arc<Commits>,
    /// The assigned partitions, as (topic, partition).
    assigned: Mutex<BTreeSet<(String, i32)>>,
}

impl Context {
    fn assigned(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, i32)>> {
        self.assigned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for Context {
    /// One lag gauge per assigned partition, also before its first commit.
    fn stats(&self, statistics: Statistics) {
        let assigned = self.assigned().clone();
        self.metrics.lag.reset();
        for (topic, partition) in &assigned {
            let lag = statistics
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(partition))
                .and_then(lag_of);
            if let Some(lag) = lag {
                self.metrics
                    .lag
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set(lag);
            }
        }
    }
}

/// Events of a partition not yet committed: from the committed offset, or, before the first
/// commit, from the partition's start, to its end. `None` until the end is known.
fn lag_of(p: &Partition) -> Option<i64> {
    if p.consumer_lag >= 0 {
        return Some(p.consumer_lag);
    }
    // librdkafka measures to the last stable offset (the end, less open transactions).
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    let start = if p.committed_offset >= 0 {
        p.committed_offset
    } else {
        p.lo_offset.max(0)
    };
    (end >= 0).then(|| (end - start).max(0))
}

impl ConsumerContext for Context {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                log::info!("assigned partitions {}", partitions(list));
            }
            Rebalance::Revoke(list) => {
                log::info!("revoked partitions {}", partitions(list));
                self.commits
                    .revoked(list.elements().iter().map(|e| e.partition()));
            }
            Rebalance::Error(e) => log::warn!("rebalance failed: {e}"),
        }
        let assignment: BTreeSet<(String, i32)> = consumer
            .assignment()
            .map(|a| {
                a.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        self.metrics
            .assigned
            .set(i64::try_from(assignment.len()).unwrap_or(i64::MAX));
        *self.assigned() = assignment;
    }

    /// Each partition's commit result feeds the `commits` readiness check.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) = result {
            return;
        }
        for element in offsets.elements() {
            let why = result.as_ref().err().map(ToString::to_string);
            let outcome = match why.or_else(|| element.error().err().map(|e| e.to_string())) {
                None => Ok(()),
                Some(why) => Err(why),
            };
            if let Err(why) = &outcome {
                log::warn!(
                    "cannot commit the offset of {}/{}: {why}",
                    element.topic(),
                    element.partition()
                );
            }
            self.commits.committed(element.partition(), outcome);
        }
    }
}

fn partitions(list: &TopicPartitionList) -> String {
    let names: Vec<String> = list
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// What one output is.
enum Kind {
    Result,
    /// A dead letter for `reason`, and what replaces it if the broker refuses it for good.
    DeadLetter {
        reason: Outcome,
        undeliverable: Box<Undeliverable>,
    },
    /// The record that replaced a refused dead letter.
    Undeliverable,
}

/// One event's output, waiting to be produced, with where the event was read.
struct Pending {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    kind: Kind,
    partition: i32,
    offset: i64,
}

/// What became of a batch's outputs.
enum Delivery {
    /// Every output was acknowledged: the batch's next offsets, to store.
    Done(BTreeMap<i32, i64>),
    /// Shutdown ran out of time first; the batch will be read again.
    GaveUp,
    /// The broker refused an output for good and nothing can replace it: stop.
    Refused(EventsError),
}

/// One event as read: what its output needs once it is scored.
struct Read {
    payload: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    partition: i32,
    offset: i64,
}

/// A batch read from the events topic: its events in read order, the next offset of each
/// partition it covers, and when it was read (its events are read within microseconds).
struct Batch {
    reads: Vec<Read>,
    next_offsets: BTreeMap<i32, i64>,
    read_at: Instant,
}

/// The consumer and producer of one `voucher-events` process.
pub struct EventLoop {
    consumer: Arc<StreamConsumer<Context>>,
    producer: FutureProducer,
    config: EventsConfig,
    tables: Arc<Tables>,
    customers: Customers,
    metrics: EventMetrics,
    counters: DoorCounters,
    broker: Arc<BrokerStatus>,
    commits: Arc<Commits>,
}

impl EventLoop {
    /// Creates the clients; nothing is read until [`EventLoop::run`].
    pub fn new(
        config: &EventsConfig,
        tables: Arc<Tables>,
        customers: Customers,
        metrics: EventMetrics,
        counters: DoorCounters,
    ) -> Result<Self, EventsError> {
        let commits = Arc::new(Commits::new(
            &config.events_topic,
            config.check_interval * BLOCKED_CHECKS,
        ));
        // Our defaults, then the operator's --kafka-option settings, then what at-least-once
        // rests on, which no option may change.
        let client = |defaults: &[(&str, String)], enforced: &[(&str, &str)]| {
            let mut client = ClientConfig::new();
            client
                .set("bootstrap.servers", &config.kafka_brokers)
                .set("client.id", "voucher-events");
            for (key, value) in defaults {
                client.set(*key, value);
            }
            for (key, value) in &config.kafka_option {
                client.set(key, value);
            }
            for (key, value) in enforced {
                client.set(*key, *value);
            }
            client
        };
        let consumer: StreamConsumer<Context> = client(
            &[
                // Stored offsets are committed every second and when the consumer leaves.
                ("auto.commit.interval.ms", "1000".into()),
                ("auto.offset.reset", "earliest".into()),
                (
                    "statistics.interval.ms",
                    config.check_interval.as_millis().max(1000).to_string(),
                ),
            ],
            // Offsets are stored by hand, once a batch's outputs are acknowledged.
            &[
                ("group.id", &config.group_id),
                ("enable.auto.offset.store", "false"),
                ("enable.auto.commit", "true"),
            ],
        )
        .create_with_context(Context {
            metrics: metrics.clone(),
            commits: Arc::clone(&commits),
            assigned: Mutex::new(BTreeSet::new()),
        })
        .map_err(|source| EventsError::Client {
            role: "consumer",
            source,
        })?;
        let producer: FutureProducer = client(
            &[
                ("linger.ms", "5".into()),
                // A message not acknowledged in 30 s is reported and produced again.
                ("message.timeout.ms", "30000".into()),
            ],
            // A result counts as delivered only once every in-sync replica has it.
            &[("acks", "all")],
        )
        .create()
        .map_err(|source| EventsError::Client {
            role: "producer",
            source,
        })?;
        Ok(EventLoop {
            consumer: Arc::new(consumer),
            producer,
            config: config.clone(),
            tables,
            customers,
            metrics,
            counters,
            broker: Arc::new(BrokerStatus::new()),
            commits,
        })
    }

    pub fn broker_status(&self) -> Arc<BrokerStatus> {
        Arc::clone(&self.broker)
    }

    /// Whether each partition's offsets can be committed, for readiness.
    pub fn commits(&self) -> Arc<Commits> {
        Arc::clone(&self.commits)
    }

    /// Reads, scores and answers events until `stop` turns true; then answers what was read,
    /// commits, and leaves the group.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), EventsError> {
        let checker = actix_web::rt::spawn(check_broker(
            Arc::clone(&self.consumer),
            self.topics(),
            self.config.check_interval,
            Arc::clone(&self.broker),
            self.metrics.clone(),
        ));
        let result = self.serve(&mut stop).await;
        checker.abort();
        self.leave();
        result
    }

    async fn serve(&self, stop: &mut watch::Receiver<bool>) -> Result<(), EventsError> {
        if !self.wait_for_table(stop).await {
            return Ok(());
        }
        self.consumer
            .subscribe(&[&self.config.events_topic])
            .map_err(|source| EventsError::Subscribe {
                topic: self.config.events_topic.clone(),
                source,
            })?;
        log::info!(
            "consuming {} in group {}; results to {}, dead letters to {}",
            self.config.events_topic,
            self.config.group_id,
            self.config.results_topic,
            self.config.dead_letter_topic
        );
        // Reading goes on while earlier batches wait for the broker's acknowledgements (one
        // batch at a time would leave both the broker and us idle for a round trip each), and
        // the offsets of acknowledged batches are stored in read order, so that no offset is
        // stored past a batch still unanswered.
        let deliveries_stop = stop.clone();
        let mut in_flight = FuturesOrdered::new();
        loop {
            tokio::select! {
                biased;
                Some(delivered) = in_flight.next() => {
                    if !self.settle(delivered)? {
                        return Ok(());
                    }
                }
                _ = stop.changed() => break,
                message = self.consumer.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                    let batch = self.read_batch(message);
                    if !batch.next_offsets.is_empty() {
                        in_flight.push_back(self.deliver(batch, deliveries_stop.clone()));
                    }
                }
            }
        }
        // Stopping: answer what was read before leaving.
        while let Some(delivered) = in_flight.next().await {
            if !self.settle(delivered)? {
                break;
            }
        }
        Ok(())
    }

    /// Stores the offsets of a delivered batch; `false` for a batch given up at shutdown,
    /// after which nothing more may be stored (later batches are read again too); an error for
    /// an output refused for good, which stops the consumer before it stores anything more.
    fn settle(&self, delivered: Delivery) -> Result<bool, EventsError> {
        match delivered {
            Delivery::Done(next_offsets) => {
                self.store(&next_offsets);
                self.commits.delivered(next_offsets.keys().copied());
                Ok(true)
            }
            Delivery::GaveUp => Ok(false),
            Delivery::Refused(error) => Err(error),
        }
    }

    /// Waits until a table is live (events cannot be answered before); `false` if stopped
    /// first.
    async fn wait_for_table(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut changes = self.tables.subscribe();
        if changes.borrow_and_update().is_some() {
            return true;
        }
        log::info!(
            "waiting for a voucher table in {} before consuming",
            self.tables.dir().root().display()
        );
        tokio::select! {
            _ = stop.changed() => false,
            loaded = changes.wait_for(Option::is_some) => loaded.is_ok(),
        }
    }

    /// Reads the first message and whatever else is already buffered, up to a batch.
    fn read_batch(&self, first: Result<BorrowedMessage<'_>, KafkaError>) -> Batch {
        let mut batch = Batch {
            reads: Vec::new(),
            next_offsets: BTreeMap::new(),
            read_at: Instant::now(),
        };
        let limit = self.config.batch_size as usize;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Ok(message) => {
                    self.metrics.consumed.inc();
                    batch.reads.push(Read {
                        payload: message.payload().map(<[u8]>::to_vec),
                        key: message.key().map(<[u8]>::to_vec),
                        partition: message.partition(),
                        offset: message.offset(),
                    });
                    batch
                        .next_offsets
                        .insert(message.partition(), message.offset() + 1);
                }
                // Transport errors are retried by librdkafka; the consumer goes on.
                Err(e) => log::warn!("reading {} failed: {e}", self.config.events_topic),
            }
            if batch.reads.len() >= limit {
                break;
            }
            next = self.consumer.recv().now_or_never();
        }
        batch
    }

    /// Scores a batch against one table version, its events by id resolved with one lookup
    /// of the customer store; while the store cannot answer, waits and tries again. `None` if
    /// shutdown ran out of time first (the batch will then be read again).
    async fn answer(&self, batch: &Batch, stop: &watch::Receiver<bool>) -> Option<Vec<Pending>> {
        let ids: Vec<i64> = batch
            .reads
            .iter()
            .filter_map(|read| event::lookup_id(read.payload.as_deref()))
            .collect();
        let max_payload = self.config.dead_letter_max_payload as usize;
        let mut stopping_since: Option<Instant> = None;
        loop {
            let served = self.tables.served()?;
            let profiles = self.customers.resolve(ids.clone()).await;
            let now = now_secs();
            let routed: Vec<Routed> = batch
                .reads
                .iter()
                .map(|read| {
                    let source = Source {
                        topic: &self.config.events_topic,
                        partition: read.partition,
                        offset: read.offset,
                    };
                    let payload = read.payload.as_deref();
                    event::route(payload, source, &served, &profiles, now, max_payload)
                })
                .collect();
            let retry = routed.iter().find_map(|r| match r {
                Routed::Retry { why } => Some(why.clone()),
                _ => None,
            });
            let Some(why) = retry else {
                return Some(self.pending(batch, routed));
            };
            if *stop.borrow() {
                let since = *stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.config.shutdown_timeout {
                    log::error!(
                        "shutting down while the customer store cannot answer; {} events will be read again",
                        batch.reads.len()
                    );
                    return None;
                }
            }
            log::warn!(
                "{why}: a batch of {} events waits (nothing of it is produced or committed); trying again in {RETRY_BACKOFF:?}",
                batch.reads.len()
            );
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// The outputs of a batch's events, counted by outcome.
    fn pending(&self, batch: &Batch, routed: Vec<Routed>) -> Vec<Pending> {
        batch
            .reads
            .iter()
            .zip(routed)
            .filter_map(|(read, routed)| {
                let (key, value, kind) = match routed {
                    Routed::Result { key, value } => {
                        self.counters.count(Outcome::Ok);
                        (Some(key), value, Kind::Result)
                    }
                    Routed::DeadLetter {
                        reason,
                        value,
                        undeliverable,
                    } => {
                        self.counters.count(reason);
                        let undeliverable = Box::new(undeliverable);
                        let kind = Kind::DeadLetter {
                            reason,
                            undeliverable,
                        };
                        (read.key.clone(), value, kind)
                    }
                    Routed::Retry { .. } => return None,
                };
                Some(Pending {
                    key,
                    value,
                    kind,
                    partition: read.partition,
                    offset: read.offset,
                })
            })
            .collect()
    }

    /// Scores a batch, then produces its outputs until the broker has acknowledged every one,
    /// and gives back the batch's next offsets to store. Outputs the broker refuses for a while
    /// are produced again; a dead letter it refuses for good is replaced by a record without
    /// the payload (see [`Undeliverable`]); a result, or that record, refused for good stops
    /// the consumer.
    async fn deliver(&self, batch: Batch, stop: watch::Receiver<bool>) -> Delivery {
        let Some(mut waiting) = self.answer(&batch, &stop).await else {
            return Delivery::GaveUp;
        };
        let Batch {
            next_offsets,
            read_at,
            ..
        } = batch;
        let mut stopping_since: Option<Instant> = None;
        loop {
            let sends = waiting.iter().map(|p| {
                let mut record = FutureRecord::<[u8], [u8]>::to(self.topic_of(p)).payload(&p.value);
                if let Some(key) = &p.key {
                    record = record.key(key);
                }
                self.producer.send(record, QUEUE_TIMEOUT)
            });
            let outcomes = futures_util::future::join_all(sends).await;
            let waited = read_at.elapsed();
            let tried = waiting.len();
            let mut failed = Vec::new();
            let mut transient = None;
            for (pending, outcome) in waiting.into_iter().zip(outcomes) {
                match outcome {
                    Ok(_) => self.acknowledged(&pending, waited),
                    Err((e, _)) if refused_for_good(&e) => match self.replace(pending, &e) {
                        Ok(replacement) => failed.push(replacement),
                        Err(refused) => return Delivery::Refused(refused),
                    },
                    Err((e, _)) => {
                        transient.get_or_insert(e);
                        failed.push(pending);
                    }
                }
            }
            if failed.is_empty() {
                break;
            }
            self.metrics.produce_failures.inc_by(failed.len() as u64);
            // Replacements are produced at once; outputs refused for a while, after a pause.
            if let Some(error) = transient {
                let error = error.to_string();
                self.commits
                    .delivery_failed(next_offsets.keys().copied(), &error);
                if *stop.borrow() {
                    let since = *stopping_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.config.shutdown_timeout {
                        log::error!(
                            "shutting down with {} outputs not acknowledged; their events will be read again",
                            failed.len()
                        );
                        return Delivery::GaveUp;
                    }
                }
                log::warn!(
                    "the broker did not acknowledge {} of {tried} outputs ({error}); producing them again in {RETRY_BACKOFF:?}",
                    failed.len(),
                );
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            waiting = failed;
        }
        Delivery::Done(next_offsets)
    }

    fn topic_of(&self, pending: &Pending) -> &str {
        match pending.kind {
            Kind::Result => &self.config.results_topic,
            Kind::DeadLetter { .. } | Kind::Undeliverable => &self.config.dead_letter_topic,
        }
    }

    /// What to produce instead of an output the broker refused for good: for a dead letter,
    /// the record without its payload; for anything else, nothing (an error that stops).
    fn replace(&self, pending: Pending, error: &KafkaError) -> Result<Pending, EventsError> {
        let (partition, offset) = (pending.partition, pending.offset);
        let event = format!("{}/{partition} offset {offset}", self.config.events_topic);
        match pending.kind {
            Kind::DeadLetter { undeliverable, .. } => {
                log::warn!(
                    "the broker refused the dead letter of {event} for good ({error}); producing a record without its payload instead"
                );
                Ok(Pending {
                    value: undeliverable.to_json(&error.to_string()),
                    kind: Kind::Undeliverable,
                    ..pending
                })
            }
            Kind::Result | Kind::Undeliverable => Err(EventsError::Refused(Box::new(Refused {
                output: match pending.kind {
                    Kind::Result => "result",
                    _ => "dead letter (even without its payload)",
                },
                topic: self.topic_of(&pending).to_owned(),
                event,
                source: error.clone(),
            }))),
        }
    }

    fn acknowledged(&self, pending: &Pending, waited: Duration) {
        match &pending.kind {
            Kind::Result => self.metrics.results.inc(),
            Kind::DeadLetter { reason, .. } => self.metrics.dead_lettered(*reason),
            Kind::Undeliverable => self.metrics.undeliverable.inc(),
        }
        self.metrics.processing.observe(waited.as_secs_f64());
    }

    /// Stores offsets for the next commit. A partition revoked meanwhile refuses its offset;
    /// its new owner reads those events again (at least once).
    fn store(&self, next_offsets: &BTreeMap<i32, i64>) {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next_offsets {
            if let Err(e) = list.add_partition_offset(
                &self.config.events_topic,
                *partition,
                Offset::Offset(*offset),
            ) {
                log::warn!("cannot note offset {offset} of partition {partition}: {e}");
            }
        }
        if let Err(e) = self.consumer.store_offsets(&list) {
            log::info!(
                "offsets {} not stored ({e}): the partition moved to another consumer, which reads those events again",
                partitions(&list)
            );
        }
    }

    /// Commits what was stored and leaves the group, so that the partitions move at once.
    fn leave(&self) {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => log::info!("committed offsets of group {}", self.config.group_id),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                log::info!("nothing new to commit for group {}", self.config.group_id);
            }
            Err(e) => log::warn!(
                "cannot commit offsets of group {}: {e}; events since the last commit will be read again",
                self.config.group_id
            ),
        }
        self.consumer.unsubscribe();
        log::info!("left consumer group {}", self.config.group_id);
    }

    fn topics(&self) -> [String; 3] {
        [
            self.config.events_topic.clone(),
            self.config.results_topic.clone(),
            self.config.dead_letter_topic.clone(),
        ]
    }
}

/// Whether the broker (or the client, before sending) refused a message for a reason that
/// producing it again cannot change: its size, its form, or the topic's authorization or
/// policy. Anything else (a broker away, a topic not there yet, a timeout) may pass.
fn refused_for_good(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as Code;
    matches!(
        error,
        KafkaError::MessageProduction(
            Code::MessageSizeTooLarge
                | Code::MessageBatchTooLarge
                | Code::InvalidMessageSize
                | Code::InvalidRecord
                | Code::InvalidTopic
                | Code::InvalidRequiredAcks
                | Code::TopicAuthorizationFailed
                | Code::ClusterAuthorizationFailed
                | Code::PolicyViolation
                | Code::UnsupportedForMessageFormat
        )
    )
}

/// Checks every `interval` that the broker answers and that the three topics exist.
async fn check_broker(
    consumer: Arc<StreamConsumer<Context>>,
    topics: [String; 3],
    interval: Duration,
    status: Arc<BrokerStatus>,
    metrics: EventMetrics,
) {
    loop {
        let consumer = Arc::clone(&consumer);
        let topics_checked = topics.clone();
        // Fetching metadata blocks, so off the event loop's thread.
        let result = actix_web::rt::task::spawn_blocking(move || {
            let metadata = consumer
                .fetch_metadata(None, Duration::from_secs(5))
                .map_err(|e| format!("cannot reach the brokers: {e}"))?;
            let missing: Vec<&str> = topics_checked
                .iter()
                .filter(|t| {
                    !metadata
                        .topics()
                        .iter()
                        .any(|m| m.name() == t.as_str() && !m.partitions().is_empty())
                })
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing topics: {}", missing.join(", ")))
            }
        })
        .await
        .unwrap_or_else(|e| Err(format!("the broker check failed: {e}")));
        metrics.broker_up.set(i64::from(result.is_ok()));
        status.set(result);
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use clap::Parser;

    use super::*;
    use voucher_serve::metrics::{Binary, Door, Metrics};

    #[test]
    fn a_setting_librdkafka_does_not_know_is_refused_naming_the_flag_and_setting() {
        let config = EventsConfig::try_parse_from([
            "voucher-events",
            "--tables-dir",
            "/nonexistent",
            "--kafka-brokers",
            "127.0.0.1:9",
            "--kafka-option",
            "no.such.setting=1",
        ])
        .expect("flags");
        let metrics = Metrics::new(Binary::Events).expect("metrics");
        let events = EventMetrics::register(metrics.registry()).expect("event metrics");
        let tables = Arc::new(Tables::new(&config.tables_dir));
        let counters = metrics.door(Door::Events).clone();
        let Err(error) = EventLoop::new(&config, tables, Customers::none(), events, counters)
        else {
            panic!("an unknown librdkafka setting was accepted");
        };
        assert!(error.to_string().contains("--kafka-option"), "{error}");
        let cause = error.source().map(ToString::to_string).unwrap_or_default();
        assert!(cause.contains("no.such.setting"), "{cause}");
    }
}
