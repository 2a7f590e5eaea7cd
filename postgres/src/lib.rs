//! PostgreSQL for the voucher services: what `voucher-etl` needs to read history from a
//! database, and what a service needs to look rows up in one.
//!
//! - [`url`]: connection URLs (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]`,
//!   the password also from `PGPASSWORD`), shown without the password;
//! - [`Session`]: connecting with a connect and a statement timeout, TLS with rustls for
//!   `sslmode=require`/`verify-ca`/`verify-full`, describing a query, streaming its rows;
//! - [`copy`]: the binary COPY format decoded into the type families the history accepts;
//! - [`customers`]: customer profiles by id, a batch of ids in one query;
//! - [`PgError`]: every failure names the server (`host:port/database`, user) and what failed.
//!
//! No polars here: callers turn [`copy::Value`]s into whatever they need (profiles become the
//! scoring core's own type).

pub mod copy;
pub mod customers;
mod error;
mod session;
mod tls;
pub mod url;

pub use copy::{CopyDecoder, DecodeError, Family, RowSink, Value, type_list};
pub use customers::CustomerLookup;
pub use error::{ColumnType, Failure, PgError};
pub use session::{
    ColumnInfo, ConnectOptions, CopyRows, Session, copy_statement, quote_identifier,
};
pub use url::{DbUrl, SslMode, UrlError, display_input, has_password, is_postgres_url};

/// The client library, for callers' own queries on [`Session::client`].
pub use tokio_postgres;

/// The password from `PGPASSWORD`, as libpq reads it.
pub fn env_password() -> Option<String> {
    std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty())
}
