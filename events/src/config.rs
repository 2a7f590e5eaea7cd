//! The flags of `voucher-events` and their environment twins.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use voucher_serve::customers::CustomerArgs;

/// The largest `--dead-letter-max-payload`: 16 MiB, more than any broker is usually set to take.
pub const MAX_DEAD_LETTER_PAYLOAD: i64 = 16 << 20;

/// Scores voucher request events from Kafka: one result (or dead letter) per event, at least
/// once.
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Debug, Clone, Parser)]
#[command(name = "voucher-events", version, about)]
pub struct EventsConfig {
    /// The tables directory the ETL publishes to (holds `CURRENT` and version directories).
    #[arg(long, env = "VOUCHER_TABLES_DIR")]
    pub tables_dir: PathBuf,

    /// Kafka bootstrap servers, comma-separated `host:port`.
    #[arg(long, env = "VOUCHER_KAFKA_BROKERS")]
    pub kafka_brokers: String,

    /// The topic of voucher request events (JSON: the request fields plus `event_id` and
    /// `event_timestamp`).
    #[arg(long, env = "VOUCHER_EVENTS_TOPIC", default_value = "voucher-requests")]
    pub events_topic: String,

    /// Where each answered event's result goes, keyed by `customer_id`.
    #[arg(long, env = "VOUCHER_RESULTS_TOPIC", default_value = "voucher-results")]
    pub results_topic: String,

    /// Where events that cannot be answered go, with the reason and the original payload.
    #[arg(
        long,
        env = "VOUCHER_DEAD_LETTER_TOPIC",
        default_value = "voucher-dead-letters"
    )]
    pub dead_letter_topic: String,

    /// Most bytes of an event's payload a dead letter carries; a longer payload is cut (the dead
    /// letter says so, with the whole payload's length and SHA-256). The default keeps a dead
    /// letter well under Kafka's default 1 MB message limit, even as base64.
    #[arg(long, env = "VOUCHER_DEAD_LETTER_MAX_PAYLOAD", default_value_t = 65_536,
        value_parser = clap::value_parser!(u32).range(0..=MAX_DEAD_LETTER_PAYLOAD))]
    pub dead_letter_max_payload: u32,

    /// The consumer group: consumers in one group share the events topic's partitions.
    #[arg(long, env = "VOUCHER_GROUP_ID", default_value = "voucher-events")]
    pub group_id: String,

    /// Address of the health, readiness and metrics endpoints.
    #[arg(long, env = "VOUCHER_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port of `/healthz`, `/readyz` and `/metrics`; 0 picks a free one (the chosen port is
    /// logged).
    #[arg(long, env = "VOUCHER_PORT", default_value_t = 8001)]
    pub port: u16,

    /// Most events scored between two waits for the broker's acknowledgements.
    #[arg(long, env = "VOUCHER_BATCH_SIZE", default_value_t = 2000,
        value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,

    /// How often to look for a new table version, e.g. `5s`, `500ms`.
    #[arg(long, env = "VOUCHER_RELOAD_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,

    /// How often the consumer lag per partition is refreshed, and the broker checked for
    /// readiness.
    #[arg(long, env = "VOUCHER_CHECK_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub check_interval: Duration,

    /// On SIGTERM, how long the events already read may take to be answered before the
    /// consumer leaves the group without committing them (they are then read again).
    #[arg(long, env = "VOUCHER_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Extra librdkafka settings, `key=value`, repeatable (e.g. `security.protocol=ssl`,
    /// `message.timeout.ms=10000`), for the consumer and the producer both. They override the
    /// defaults, but not what at-least-once rests on (`group.id`, `enable.auto.offset.store`,
    /// `enable.auto.commit`, `acks`).
    #[arg(long = "kafka-option", env = "VOUCHER_KAFKA_OPTION", value_delimiter = ',', value_parser = parse_option)]
    pub kafka_option: Vec<(String, String)>,

    /// The customer store, for events that send only `customer_id` and `segment_name`.
    #[command(flatten)]
    pub customers: CustomerArgs,
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!(
            "{text:?} is not key=value, e.g. client.id=voucher-events"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_options_and_env_twins() {
        let config = EventsConfig::try_parse_from([
            "voucher-events",
            "--tables-dir",
            "/t",
            "--kafka-brokers",
            "127.0.0.1:9092",
            "--kafka-option",
            "client.id=a,socket.timeout.ms=5000",
        ])
        .expect("parse");
        assert_eq!(config.events_topic, "voucher-requests");
        assert_eq!(config.group_id, "voucher-events");
        assert_eq!(config.batch_size, 2000);
        assert_eq!(config.dead_letter_max_payload, 65_536);
        assert_eq!(
            config.kafka_option,
            [
                ("client.id".to_owned(), "a".to_owned()),
                ("socket.timeout.ms".to_owned(), "5000".to_owned())
            ]
        );
        let err = EventsConfig::try_parse_from([
            "voucher-events",
            "--tables-dir",
            "/t",
            "--kafka-brokers",
            "b:9092",
            "--kafka-option",
            "novalue",
        ])
        .expect_err("bad option");
        assert!(err.to_string().contains("is not key=value"), "{err}");
        let err = EventsConfig::try_parse_from(["voucher-events", "--tables-dir", "/t"])
            .expect_err("no brokers");
        assert!(err.to_string().contains("--kafka-brokers"), "{err}");

        voucher_serve::fixtures::assert_env_twins(
            &<EventsConfig as clap::CommandFactory>::command(),
        );
    }
}
