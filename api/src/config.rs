//! Command-line and environment configuration.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use subtle::ConstantTimeEq;
use voucher_serve::customers::CustomerArgs;

/// Serves the live voucher table over HTTP.
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Debug, Parser)]
#[command(
    name = "voucher-api",
    version,
    about,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the route table as JSON (method, path, whether the token guards it) and exit.
    Routes,
}

/// The settings of the server.
#[derive(Debug, Clone, Parser)]
#[command(name = "voucher-api", version, about)]
pub struct Config {
    /// The tables directory the ETL publishes to (holds `CURRENT` and version directories).
    /// Required to serve.
    #[arg(long, env = "VOUCHER_TABLES_DIR", required = true)]
    pub tables_dir: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "VOUCHER_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free one (the chosen port is logged).
    #[arg(long, env = "VOUCHER_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Port of the gRPC service (`voucher.v1.VoucherService`, health, reflection), on the same
    /// address; 0 picks a free one (the chosen port is logged).
    #[arg(long, env = "VOUCHER_GRPC_PORT", default_value_t = 50051)]
    pub grpc_port: u16,

    /// TLS certificate chain (PEM) for both HTTP and gRPC; needs --tls-key. Without it, both
    /// serve plain text.
    #[arg(long, env = "VOUCHER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM, PKCS#8, PKCS#1 or SEC1) matching --tls-cert.
    #[arg(long, env = "VOUCHER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// HTTP worker threads, and gRPC runtime threads [default: the number of CPUs].
    #[arg(long, env = "VOUCHER_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,

    /// How often to look for a new table version, e.g. `5s`, `500ms`.
    #[arg(long, env = "VOUCHER_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_interval)]
    pub reload_interval: Duration,

    /// When set, every route under `/api/v1` requires `Authorization: Bearer <token>`.
    #[arg(long, env = "VOUCHER_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<Token>,

    /// Largest accepted body of a single request (and longest line of an NDJSON stream), e.g.
    /// `16KiB`, `1MiB`, `4096`.
    #[arg(long, env = "VOUCHER_MAX_BODY", default_value = "16KiB")]
    pub max_body: ByteSize,

    /// Largest accepted body of a JSON batch (`POST /api/v1/vouchers`, at most 10,000
    /// requests). NDJSON streams have no total limit.
    #[arg(long, env = "VOUCHER_MAX_BATCH_BODY", default_value = "8MiB")]
    pub max_batch_body: ByteSize,

    /// On SIGTERM, how long to keep serving with readiness at 503 before closing the listener,
    /// so that load balancers stop sending traffic first. Ctrl-C (SIGINT) does not wait.
    #[arg(long, env = "VOUCHER_DRAIN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// How long in-flight requests and streams, HTTP and gRPC together, may take to finish once
    /// shutdown starts.
    #[arg(long, env = "VOUCHER_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// The customer store, for requests that send only `customer_id` and `segment_name`.
    #[command(flatten)]
    pub customers: CustomerArgs,
}

impl Config {
    /// The worker count to use: the flag, else the CPU count.
    pub fn worker_count(&self) -> usize {
        self.workers.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
        })
    }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < Duration::from_millis(10) {
        return Err(format!("{text} is too short; use at least 10ms"));
    }
    Ok(interval)
}

/// The bearer token. Its `Debug` and `Display` never show the secret, so the config can be
/// logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Whether an `Authorization` value (an HTTP header or gRPC metadata) is `Bearer <token>`,
    /// compared in constant time. The scheme name is case-insensitive (RFC 9110, 11.1).
    pub fn authorizes(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization.and_then(|v| {
            let (scheme, rest) = v.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
        });
        presented.is_some_and(|p| bool::from(p.ct_eq(self.0.as_bytes())))
    }
}

impl FromStr for Token {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A token with spaces or control characters could never arrive intact in a header.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be non-empty printable ASCII without spaces".into());
        }
        Ok(Token(s.to_owned()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A size in bytes, parsed from `16KiB`, `16 KiB`, `16kb`, `1MiB` or a plain byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let number: usize = number
            .parse()
            .map_err(|_| format!("{s:?} is not a size; use e.g. 16KiB, 1MiB or 4096"))?;
        let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1024,
            "m" | "mb" | "mib" => 1024 * 1024,
            other => return Err(format!("unknown size unit {other:?}; use B, KiB or MiB")),
        };
        match number.checked_mul(multiplier) {
            Some(0) | None => Err(format!("{s:?} is not a usable body limit")),
            Some(bytes) => Ok(ByteSize(bytes)),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!("16KiB".parse(), Ok(ByteSize(16 * 1024)));
        assert_eq!("16 kb".parse(), Ok(ByteSize(16 * 1024)));
        assert_eq!("1MiB".parse(), Ok(ByteSize(1024 * 1024)));
        assert_eq!("4096".parse(), Ok(ByteSize(4096)));
        for bad in [
            "",
            "KiB",
            "0",
            "12 parsecs",
            "-5",
            "99999999999999999999GiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_env_twins() {
        let config = Config::try_parse_from(["voucher-api", "--tables-dir", "/t"]).expect("parse");
        assert_eq!(config.port, 8000);
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.reload_interval, Duration::from_secs(5));
        assert_eq!(config.max_body, ByteSize(16 * 1024));
        assert!(config.api_token.is_none());
        assert!(config.worker_count() >= 1);
        assert!(config.customers.customers_db.is_none());
        assert_eq!(config.customers.customers_table, "customers");
        voucher_serve::fixtures::assert_env_twins(&<Config as clap::CommandFactory>::command());
    }

    #[test]
    fn routes_needs_no_tables_dir_but_serving_does() {
        let cli = Cli::try_parse_from(["voucher-api", "routes"]).expect("parse");
        assert!(matches!(cli.command, Some(Command::Routes)));
        let err = Cli::try_parse_from(["voucher-api", "--port", "1"]).unwrap_err();
        assert!(err.to_string().contains("--tables-dir"), "{err}");
        let cli = Cli::try_parse_from(["voucher-api", "--tables-dir", "/t"]).expect("parse");
        assert!(cli.command.is_none());
        assert_eq!(
            cli.config.tables_dir.as_deref(),
            Some(std::path::Path::new("/t"))
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let config = Config::try_parse_from([
            "voucher-api",
            "--tables-dir",
            "/t",
            "--api-token",
            "s3cret-value",
        ])
        .expect("parse");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!("has space".parse::<Token>().is_err());
    }

    #[test]
    fn the_customer_store_url_follows_the_postgresql_rules_and_hides_its_password() {
        let config = Config::try_parse_from([
            "voucher-api",
            "--tables-dir",
            "/t",
            "--customers-db",
            "postgresql://api:s3cret@db:6543/crm?sslmode=require",
            "--customers-table",
            "crm.customers",
        ])
        .expect("parse");
        let url = config.customers.customers_db.as_ref().expect("a URL");
        assert_eq!(url.server(), "db:6543/crm");
        assert!(!format!("{config:?}").contains("s3cret"));
        let err = Config::try_parse_from([
            "voucher-api",
            "--tables-dir",
            "/t",
            "--customers-db",
            "mysql://db/crm",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("postgresql://"), "{err}");
    }

    #[test]
    fn too_short_reload_intervals_are_refused() {
        assert!(parse_interval("1ms").is_err());
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
    }
}
