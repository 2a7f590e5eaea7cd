//! Errors that name the server and say what failed, in the user's terms.

use std::error::Error as StdError;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::copy::DecodeError;
use crate::url::UrlError;

/// A PostgreSQL failure: the URL was unusable, or the server named in the message failed
/// at one step. The underlying error, when there is one, is the source.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    // Not a source: the message holds the URL's problem, and a chain of causes would repeat it.
    #[error("the PostgreSQL URL is not usable: {0}")]
    Url(UrlError),
    #[error("PostgreSQL server {server} (user {user}): {failure}")]
    Server {
        /// `host:port/database`.
        server: String,
        user: String,
        failure: Failure,
        #[source]
        source: Option<Box<dyn StdError + Send + Sync + 'static>>,
    },
}

impl PgError {
    /// What failed, unless the URL did.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            PgError::Url(_) => None,
            PgError::Server { failure, .. } => Some(failure),
        }
    }
}

impl From<UrlError> for PgError {
    fn from(e: UrlError) -> Self {
        PgError::Url(e)
    }
}

/// What failed at the server.
/// A column of a table the caller reads (the customer store's) whose type it cannot read.
/// Boxed in [`Failure`], so that every error carrying one stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub table: String,
    pub column: &'static str,
    pub found: String,
    pub accepted: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("cannot connect; is the server running and accepting TCP connections there?")]
    Unreachable,
    #[error("no answer within the connect timeout ({}s)", .0.as_secs_f64())]
    ConnectTimeout(Duration),
    #[error("the password was refused (it comes from the URL or PGPASSWORD)")]
    WrongPassword,
    #[error("the server asks for a password; give it in the URL or in PGPASSWORD")]
    PasswordMissing,
    #[error(
        "the login was refused (no such role, or pg_hba.conf does not let it in from this host)"
    )]
    LoginRefused,
    #[error("the database does not exist")]
    UnknownDatabase,
    #[error("the server does not accept TLS connections, and the URL's sslmode requires TLS")]
    TlsUnsupported,
    #[error(
        "the TLS handshake failed (with sslmode=verify-ca or verify-full: is the server's certificate signed by sslrootcert or a system authority, and does it name the host?)"
    )]
    TlsHandshake,
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    #[error("the query names a table that does not exist")]
    UnknownTable,
    #[error("the query names a column that does not exist")]
    UnknownColumn,
    #[error("the query has a syntax error")]
    Syntax,
    #[error(
        "table {}: column {} has type {}; accepted: {}",
        .0.table, .0.column, .0.found, .0.accepted
    )]
    ColumnType(Box<ColumnType>),
    #[error("the user may not read what the query reads")]
    PermissionDenied,
    #[error("the query ran longer than the statement timeout{}", timeout_text(.0))]
    StatementTimeout(Option<Duration>),
    #[error("the query failed")]
    Query,
    #[error("the server has too many connections")]
    TooManyConnections,
    #[error("the connection broke off (the server stopped, or dropped the connection)")]
    ConnectionLost,
    #[error("the rows the server sent could not be decoded")]
    BadCopyData,
    #[error("the server did not answer as PostgreSQL does")]
    Protocol,
}

fn timeout_text(timeout: &Option<Duration>) -> String {
    timeout.map_or_else(String::new, |t| format!(" ({}s)", t.as_secs_f64()))
}

/// The step a failure happened at, which tells apart e.g. a refused connection from one lost
/// mid-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Connect,
    Query,
}

/// What `error` means, at `step`.
pub(crate) fn classify(
    error: &tokio_postgres::Error,
    step: Step,
    statement_timeout: Option<Duration>,
) -> Failure {
    if let Some(db) = error.as_db_error() {
        return classify_db(db.code(), step, statement_timeout);
    }
    if error.is_closed() {
        return Failure::ConnectionLost;
    }
    // tokio-postgres' error kinds are private; their descriptions are its stable API here.
    let text = error.to_string();
    let cause = error.source().map(ToString::to_string).unwrap_or_default();
    if text.contains("TLS handshake") {
        return if cause.contains("does not support TLS") {
            Failure::TlsUnsupported
        } else {
            Failure::TlsHandshake
        };
    }
    if cause.contains("password missing") {
        return Failure::PasswordMissing;
    }
    if text.contains("timeout") {
        return Failure::ConnectTimeout(Duration::ZERO);
    }
    let io = source_of::<std::io::Error>(error);
    match (step, io) {
        (Step::Connect, Some(_)) => Failure::Unreachable,
        (_, Some(_)) => Failure::ConnectionLost,
        (Step::Connect, None) if text.contains("connecting") => Failure::Unreachable,
        _ => Failure::Protocol,
    }
}

fn classify_db(code: &SqlState, step: Step, statement_timeout: Option<Duration>) -> Failure {
    match *code {
        SqlState::INVALID_PASSWORD => Failure::WrongPassword,
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION => Failure::LoginRefused,
        SqlState::INVALID_CATALOG_NAME => Failure::UnknownDatabase,
        SqlState::UNDEFINED_TABLE => Failure::UnknownTable,
        SqlState::UNDEFINED_COLUMN => Failure::UnknownColumn,
        SqlState::SYNTAX_ERROR => Failure::Syntax,
        SqlState::INSUFFICIENT_PRIVILEGE => Failure::PermissionDenied,
        SqlState::QUERY_CANCELED => Failure::StatementTimeout(statement_timeout),
        SqlState::TOO_MANY_CONNECTIONS => Failure::TooManyConnections,
        SqlState::ADMIN_SHUTDOWN
        | SqlState::CRASH_SHUTDOWN
        | SqlState::CANNOT_CONNECT_NOW
        | SqlState::IDLE_SESSION_TIMEOUT => match step {
            Step::Connect => Failure::Unreachable,
            Step::Query => Failure::ConnectionLost,
        },
        _ => Failure::Query,
    }
}

/// The first error of type `T` in `error`'s chain of sources.
fn source_of<'e, T: StdError + 'static>(error: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

impl From<DecodeError> for Failure {
    fn from(_: DecodeError) -> Self {
        Failure::BadCopyData
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error and its causes, as `anyhow`'s `{:#}` prints them.
    fn chain(e: &(dyn StdError + 'static)) -> String {
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            text.push_str(&format!(": {cause}"));
            next = cause.source();
        }
        text
    }

    #[test]
    fn a_url_error_says_its_problem_once() {
        let e = PgError::from(
            crate::DbUrl::parse("postgresql://etl@db/orders?application_name=x", None)
                .expect_err("an unsupported parameter"),
        );
        assert_eq!(
            chain(&e),
            "the PostgreSQL URL is not usable: the parameter \"application_name\" is not supported (supported: sslmode, sslrootcert); expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]"
        );
    }

    #[test]
    fn server_errors_map_to_what_failed() {
        let t = Some(Duration::from_millis(1500));
        for (code, step, want) in [
            (
                SqlState::INVALID_PASSWORD,
                Step::Connect,
                Failure::WrongPassword,
            ),
            (
                SqlState::INVALID_CATALOG_NAME,
                Step::Connect,
                Failure::UnknownDatabase,
            ),
            (
                SqlState::UNDEFINED_TABLE,
                Step::Query,
                Failure::UnknownTable,
            ),
            (
                SqlState::UNDEFINED_COLUMN,
                Step::Query,
                Failure::UnknownColumn,
            ),
            (SqlState::SYNTAX_ERROR, Step::Query, Failure::Syntax),
            (
                SqlState::QUERY_CANCELED,
                Step::Query,
                Failure::StatementTimeout(t),
            ),
            (
                SqlState::ADMIN_SHUTDOWN,
                Step::Query,
                Failure::ConnectionLost,
            ),
            (
                SqlState::CANNOT_CONNECT_NOW,
                Step::Connect,
                Failure::Unreachable,
            ),
            (SqlState::DIVISION_BY_ZERO, Step::Query, Failure::Query),
        ] {
            assert_eq!(classify_db(&code, step, t), want, "{code:?}");
        }
        assert_eq!(
            Failure::StatementTimeout(t).to_string(),
            "the query ran longer than the statement timeout (1.5s)"
        );
    }
}
