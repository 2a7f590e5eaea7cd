//! `voucher-etl`: command-line entry point. See `voucher-etl --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use voucher_etl::clean::{self, Countries};
use voucher_etl::exit::Exit;
use voucher_etl::generate::{self, GenerateOptions};
use voucher_etl::memory::{MemoryLimit, WindowPlan};
use voucher_etl::postgres::PostgresRead;
use voucher_etl::run::{GateOptions, RunOptions, Source, run};
use voucher_etl::schedule::schedule;
use voucher_etl::score::{self, CustomerSource, ScoreOptions, score_customers};
use voucher_etl::tally::{self, ReadOptions};
use voucher_etl::versions::{self, Canary};
use voucher_postgres::{ConnectOptions, DbUrl};
use voucher_shared::canary::Percent;
use voucher_shared::gate::Bounds;
use voucher_shared::publish::{Because, Version};
use voucher_shared::segments::SegmentSet;

/// Builds the voucher table from raw voucher history and publishes it atomically.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Clean the history, compute the voucher table and publish it as a new version.
    Run(RunArgs),
    /// Run on a cron schedule until SIGTERM or Ctrl-C.
    Schedule {
        /// Six-field cron expression in UTC: second minute hour day-of-month month day-of-week.
        #[arg(long, env = "VOUCHER_CRON")]
        cron: String,
        /// Also run once right away, before the first tick.
        #[arg(long, env = "VOUCHER_RUN_AT_START")]
        run_at_start: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Write realistic synthetic voucher history in the source's messy format.
    Generate(GenerateArgs),
    /// Score a customer list (campaign) against the live table, with the API's rules.
    Score(ScoreArgs),
    /// Clean one part (shard) of the history and write its tally, for `run --from-tallies`.
    Tally(TallyArgs),
    /// List the versions, newest first, with their state and gate outcome, and the publish log.
    Versions(VersionsArgs),
    /// What changes between two versions, per segment [default: from the live version to the
    /// newest].
    Diff(DiffArgs),
    /// Make a complete version live: approve a held one, or roll back to an earlier one.
    Promote(PromoteArgs),
    /// Try a complete version (not the live one) on a share of customers beside the live one,
    /// or end the canary with --off.
    Canary(CanaryArgs),
}

#[derive(Args)]
struct VersionsArgs {
    #[command(flatten)]
    tables: TablesArg,
    /// Print a JSON array instead of a table.
    #[arg(long, env = "VOUCHER_JSON")]
    json: bool,
}

#[derive(Args)]
struct DiffArgs {
    #[command(flatten)]
    tables: TablesArg,
    /// The version to compare from [default: the live one].
    from: Option<Version>,
    /// The version to compare to [default: the newest].
    to: Option<Version>,
    /// Print a JSON object instead of a table.
    #[arg(long, env = "VOUCHER_JSON")]
    json: bool,
}

#[derive(Args)]
struct PromoteArgs {
    #[command(flatten)]
    tables: TablesArg,
    /// The version to make live.
    version: Version,
    /// Why, for the publish log.
    #[arg(long, env = "VOUCHER_PROMOTE_REASON")]
    reason: String,
    /// Who, for the publish log; $USER when not given.
    #[arg(long, env = "USER")]
    by: Option<String>,
}

#[derive(Args)]
struct CanaryArgs {
    #[command(flatten)]
    tables: TablesArg,
    /// The version to try (with --percent): held or published, not the live one.
    #[arg(required_unless_present = "off", conflicts_with = "off")]
    version: Option<Version>,
    /// The share of customers it answers, by the bucket of their customer_id: above 0 and
    /// below 100, at most two decimals (e.g. 20 or 0.5).
    #[arg(
        long,
        env = "VOUCHER_CANARY_PERCENT",
        required_unless_present = "off",
        conflicts_with = "off"
    )]
    percent: Option<Percent>,
    /// End the canary: the live version answers everyone again.
    #[arg(long, env = "VOUCHER_CANARY_OFF")]
    off: bool,
    /// Why, for the publish log.
    #[arg(long, env = "VOUCHER_CANARY_REASON", default_value = "canary")]
    reason: String,
    /// Who, for the publish log; $USER when not given.
    #[arg(long, env = "USER")]
    by: Option<String>,
}

#[derive(Args)]
struct TablesArg {
    /// The tables directory.
    #[arg(long, env = "VOUCHER_TABLES_DIR")]
    tables_dir: PathBuf,
}

#[derive(Args)]
struct TallyArgs {
    /// This shard's history: a Parquet file, a directory of them (partitions included), a
    /// glob, an s3:// object, prefix or glob, an http(s) URL, or a PostgreSQL database
    /// (postgresql://USER@HOST[:PORT]/DB, with --query).
    #[arg(long, env = "VOUCHER_INPUT", hide_env_values = true)]
    input: String,
    /// The tally file to write (JSON, replaced atomically), e.g. `tallies/part-3.json`.
    #[arg(long, env = "VOUCHER_TALLY_OUTPUT")]
    output: PathBuf,
    /// Countries to tally: `all`, or codes separated by commas (every shard the same).
    #[arg(long, env = "VOUCHER_COUNTRIES", default_value = "Peru", value_parser = Countries::parse)]
    countries: Countries,
    /// Segment definitions (TOML) instead of the built-in ones (every shard the same).
    #[arg(long, env = "VOUCHER_SEGMENTS")]
    segments: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
}

/// How history is read (for `run` and `tally`).
#[derive(Args)]
struct ReadArgs {
    /// Time limit for downloading an http(s) or s3:// input file, e.g. `90s`, `10m`.
    #[arg(long, env = "VOUCHER_DOWNLOAD_TIMEOUT", default_value_t = ReadOptions::default().download_timeout.into())]
    download_timeout: humantime::Duration,
    #[command(flatten)]
    windows: WindowArgs,
    /// With a postgresql:// input: the query whose rows are the history, its columns named as
    /// the history's (other columns are not read), e.g. `SELECT * FROM voucher_history`.
    #[arg(long, env = "VOUCHER_QUERY")]
    query: Option<String>,
    /// With a postgresql:// input: time limit for connecting and logging in, e.g. `10s`.
    #[arg(long, env = "VOUCHER_DB_CONNECT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    db_connect_timeout: Duration,
    /// With a postgresql:// input: time limit for the query on the server (its
    /// statement_timeout), e.g. `30m` [default: the server's setting].
    #[arg(long, env = "VOUCHER_DB_STATEMENT_TIMEOUT", value_parser = humantime::parse_duration)]
    db_statement_timeout: Option<Duration>,
}

/// How many rows are read at once (for `run`, `tally` and `score`).
#[derive(Args)]
struct WindowArgs {
    /// Rows decoded at a time (row groups larger than this are read in slices); memory grows
    /// by ~100 MiB per million rows (`score`: ~250 MiB).
    #[arg(long, env = "VOUCHER_WINDOW_ROWS", default_value_t = ReadOptions::default().window_rows, value_parser = clap::value_parser!(u64).range(1..))]
    window_rows: u64,
    /// Windows read at once (1 to 64): with 2, one window is decoded while the one before is
    /// processed; each adds about a window's memory.
    #[arg(long, env = "VOUCHER_WINDOWS_IN_FLIGHT", default_value_t = clean::WINDOWS_IN_FLIGHT, value_parser = clap::value_parser!(u16).range(1..=64))]
    windows_in_flight: u16,
    /// Memory to stay under, e.g. `300MiB`, `2GiB`, or `unlimited`: fewer or smaller windows
    /// than the two settings above are read at once when a Parquet footer's sizes say they
    /// would not fit [default: the cgroup's memory limit when one is set, else unlimited].
    #[arg(long, env = "VOUCHER_MEMORY_LIMIT", value_parser = MemoryLimit::parse)]
    memory_limit: Option<MemoryLimit>,
}

impl WindowArgs {
    fn plan(&self) -> WindowPlan {
        WindowPlan {
            window_rows: self.window_rows,
            in_flight: self.windows_in_flight,
        }
    }
}

impl From<ScoreArgs> for ScoreOptions {
    fn from(a: ScoreArgs) -> Self {
        ScoreOptions {
            customers: a.customers,
            tables_dir: a.tables,
            output: a.output,
            now: a.now.unwrap_or_else(chrono::Utc::now),
            windows: a.windows.plan(),
            memory_limit: a.windows.memory_limit,
            customer_store: a.customers_db.map(|url| CustomerSource {
                url,
                table: a.customers_table,
                options: ConnectOptions {
                    connect_timeout: a.customers_connect_timeout,
                    statement_timeout: None,
                    application_name: "voucher-etl score".into(),
                },
            }),
        }
    }
}

impl From<ReadArgs> for ReadOptions {
    fn from(a: ReadArgs) -> Self {
        ReadOptions {
            download_timeout: a.download_timeout.into(),
            window_rows: a.windows.window_rows,
            windows_in_flight: a.windows.windows_in_flight,
            memory_limit: a.windows.memory_limit,
            postgres: PostgresRead {
                query: a.query,
                connect_timeout: a.db_connect_timeout,
                statement_timeout: a.db_statement_timeout,
            },
        }
    }
}

#[derive(Args)]
// Scoring decodes a window's request columns and builds its results at once: smaller windows
// than `run`'s are meant to keep two in flight under 300 MiB (`make bench-score` measures it).
#[command(mut_arg("window_rows", |a| a.default_value(score::WINDOW_ROWS_TEXT)))]
struct ScoreArgs {
    /// The customer list: Parquet (`*.parquet`) or CSV (`*.csv`, with a header), with the
    /// request fields as columns (customer_id, country_code, last_order_ts, first_order_ts,
    /// total_orders, segment_name). Other columns are kept in the output.
    #[arg(long, env = "VOUCHER_SCORE_CUSTOMERS")]
    customers: PathBuf,
    /// The tables directory whose live version scores the list.
    #[arg(long, visible_alias = "tables-dir", env = "VOUCHER_TABLES_DIR")]
    tables: PathBuf,
    /// The Parquet file to write: the list with status, voucher, segment, detail and
    /// table_version columns (replaced atomically).
    #[arg(long, env = "VOUCHER_SCORE_OUTPUT")]
    output: PathBuf,
    /// The time recency is measured from (RFC 3339) [default: now].
    #[arg(long, env = "VOUCHER_SCORE_NOW")]
    now: Option<chrono::DateTime<chrono::Utc>>,
    /// PostgreSQL database holding the customer profiles, for rows that give only
    /// `customer_id` and `segment_name`: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]
    /// (the password may come from PGPASSWORD). Without it, such rows are refused as missing
    /// their fields; with it, a lookup that fails fails the run.
    #[arg(long, env = "VOUCHER_CUSTOMERS_DB", hide_env_values = true, value_parser = DbUrl::from_arg)]
    customers_db: Option<DbUrl>,
    /// The table of customer profiles (`NAME` or `SCHEMA.NAME`), with the columns customer_id
    /// (an integer type, indexed), country_code, last_order_ts, first_order_ts, total_orders.
    #[arg(long, env = "VOUCHER_CUSTOMERS_TABLE", default_value = voucher_postgres::customers::DEFAULT_TABLE)]
    customers_table: String,
    /// Time limit for connecting to the customer store and logging in, e.g. `5s`.
    #[arg(long, env = "VOUCHER_CUSTOMERS_CONNECT_TIMEOUT", default_value = "5s",
        value_parser = humantime::parse_duration)]
    customers_connect_timeout: Duration,
    #[command(flatten)]
    windows: WindowArgs,
}

#[derive(Args)]
struct RunArgs {
    /// History to read: a Parquet file, a directory of them (Hive-style partitions included),
    /// a glob (`history/*/part-*.parquet`), an s3:// object, prefix or glob (AWS_* environment),
    /// an http(s) URL, or a PostgreSQL database (postgresql://USER@HOST[:PORT]/DB, with --query;
    /// the password in the URL or PGPASSWORD).
    // Its value may hold a password: `--help` does not echo it.
    #[arg(
        long,
        env = "VOUCHER_INPUT",
        hide_env_values = true,
        required_unless_present = "from_tallies"
    )]
    input: Option<String>,
    /// Instead of history, merge the tally files (`voucher-etl tally`) in this directory.
    #[arg(long, env = "VOUCHER_FROM_TALLIES", conflicts_with_all = ["input", "segments"])]
    from_tallies: Option<PathBuf>,
    /// Tables directory to publish into (created if missing).
    #[arg(long, visible_alias = "tables-dir", env = "VOUCHER_TABLES_DIR")]
    output: PathBuf,
    /// Countries to build tables for: `all`, or codes separated by commas.
    #[arg(long, env = "VOUCHER_COUNTRIES", default_value = "Peru", value_parser = Countries::parse)]
    countries: Countries,
    /// Segment definitions (TOML) to use instead of the built-in Peru segments.
    #[arg(long, env = "VOUCHER_SEGMENTS")]
    segments: Option<PathBuf>,
    /// Versions to keep; older ones are deleted, never the live one, a held one newer than
    /// it, or the one a roll-back would return to.
    #[arg(long, env = "VOUCHER_KEEP", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    keep: u64,
    /// Gate bounds (TOML) instead of the built-in ones (docs/voucher-tables.md).
    #[arg(long, env = "VOUCHER_GATE")]
    gate: Option<PathBuf>,
    /// Publish even if the gate would hold the version (the manifest records it).
    #[arg(long, env = "VOUCHER_NO_GATE")]
    no_gate: bool,
    /// A Prometheus textfile to rewrite after each run, a failed one too, with how it ended and
    /// the gate's outcomes, e.g. in node-exporter's textfile directory.
    #[arg(long, env = "VOUCHER_METRICS_FILE")]
    metrics_file: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Args)]
struct GenerateArgs {
    /// Rows to write.
    #[arg(long, env = "VOUCHER_GENERATE_ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    rows: u64,
    /// Seed: the same seed gives the same file.
    #[arg(long, env = "VOUCHER_GENERATE_SEED", default_value_t = 42)]
    seed: u64,
    /// Countries to generate, separated by commas.
    #[arg(long, env = "VOUCHER_GENERATE_COUNTRIES", default_value = generate::DEFAULT_COUNTRIES)]
    countries: String,
    /// Segment definitions (TOML) the values are drawn around, instead of the built-in ones.
    #[arg(long, env = "VOUCHER_SEGMENTS")]
    segments: Option<PathBuf>,
    /// Parquet file to write (replaced atomically).
    #[arg(long, env = "VOUCHER_GENERATE_OUTPUT")]
    output: PathBuf,
    /// Rows per Parquet row group (Spark and pyarrow write 1M-row groups) [default: 262144].
    #[arg(long, env = "VOUCHER_GENERATE_ROW_GROUP_SIZE", value_parser = clap::value_parser!(u64).range(1..))]
    row_group_size: Option<u64>,
}

impl TryFrom<RunArgs> for RunOptions {
    type Error = anyhow::Error;

    fn try_from(a: RunArgs) -> anyhow::Result<Self> {
        Ok(RunOptions {
            source: match (a.input, a.from_tallies) {
                (_, Some(dir)) => Source::Tallies(dir),
                (input, None) => Source::History(input.unwrap_or_default()),
            },
            tables_dir: a.output,
            countries: a.countries,
            segments: a.segments,
            keep: usize::try_from(a.keep).unwrap_or(usize::MAX),
            read: a.read.into(),
            gate: GateOptions {
                bounds: Bounds::load(a.gate.as_deref())?,
                enforce: !a.no_gate,
                metrics_file: a.metrics_file,
            },
        })
    }
}

fn main() -> ExitCode {
    voucher_etl::bound_polars_memory();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match execute(Cli::parse()) {
        Ok(exit) => exit.into(),
        Err(e) => {
            log::error!("{e:#}");
            eprintln!("error: {e:#}");
            Exit::Failed.into()
        }
    }
}

/// Warns when `input` came on the command line with a password in its URL: `ps` shows a
/// process's arguments to every user for the whole run. The warning never shows the password.
fn warn_of_password_on_command_line(input: &str) {
    let on_command_line =
        std::env::args_os().any(|a| a.to_str().is_some_and(|a| a.contains(input)));
    if on_command_line && voucher_postgres::has_password(input) {
        log::warn!(
            "--input {} holds a password, which process listings (ps) show to every user of this machine for the whole run; leave it out of the URL and set PGPASSWORD, which is never logged or written to the manifest",
            voucher_postgres::display_input(input)
        );
    }
}

/// `run`: exit 0 when published, 3 when the gate held the version.
fn run_command(args: RunArgs) -> anyhow::Result<Exit> {
    if let Some(input) = &args.input {
        warn_of_password_on_command_line(input);
    }
    let report = run(&args.try_into()?)?;
    print!("{report}");
    Ok(if report.held() {
        Exit::Held
    } else {
        Exit::Success
    })
}

fn canary_command(a: CanaryArgs) -> anyhow::Result<String> {
    let because = Because::new(a.reason, who(a.by));
    let change = match (a.version, a.percent) {
        (Some(version), Some(percent)) if !a.off => Canary::Start { version, percent },
        _ => Canary::Off,
    };
    Ok(versions::canary_command(
        &a.tables.tables_dir,
        change,
        &because,
    )?)
}

/// Who, for the publish log: `--by`, else `$USER`, else "unknown".
fn who(by: Option<String>) -> String {
    by.filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn execute(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => return run_command(args),
        Command::Schedule {
            cron,
            run_at_start,
            run,
        } => {
            if let Some(input) = &run.input {
                warn_of_password_on_command_line(input);
            }
            tokio::runtime::Runtime::new()
                .context("cannot start the async runtime")?
                .block_on(schedule(&cron, run.try_into()?, run_at_start))?;
        }
        Command::Versions(a) => print!("{}", versions::list_command(&a.tables.tables_dir, a.json)?),
        Command::Diff(a) => print!(
            "{}",
            versions::diff_command(&a.tables.tables_dir, a.from, a.to, a.json)?
        ),
        Command::Promote(a) => {
            let because = Because::new(a.reason, who(a.by));
            print!(
                "{}",
                versions::promote_command(&a.tables.tables_dir, a.version, &because)?
            );
        }
        Command::Canary(a) => print!("{}", canary_command(a)?),
        Command::Tally(args) => {
            warn_of_password_on_command_line(&args.input);
            let segments = SegmentSet::load(args.segments.as_deref())?;
            let tallied =
                tally::tally_input(&args.input, &args.countries, &segments, &args.read.into())?;
            tally::write(&args.output, &tallied, &args.countries, &segments)?;
            println!(
                "tallied {} rows from {} file(s) of {}: {} kept, {} dropped; wrote {}",
                tallied.rows_read,
                tallied.inputs.len(),
                voucher_postgres::display_input(&args.input),
                tallied.tally.rows_kept,
                tallied.tally.dropped.total(),
                args.output.display()
            );
        }
        Command::Score(args) => {
            print!("{}", score_customers(&args.into())?);
        }
        Command::Generate(args) => {
            let segments = SegmentSet::load(args.segments.as_deref())?;
            let countries: Vec<String> = args
                .countries
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            let opts = GenerateOptions {
                rows: args.rows,
                seed: args.seed,
                countries,
                segments,
                output: args.output,
                row_group_size: args.row_group_size.map(|n| n as usize),
            };
            let truth = generate::generate(&opts)?;
            println!("wrote {} rows to {}", truth.rows, opts.output.display());
            print!("{truth}");
        }
    }
    Ok(Exit::Success)
}
