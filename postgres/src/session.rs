//! A connection to the server: connecting with timeouts and TLS, describing a query's columns,
//! and streaming its rows in the binary COPY format.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, CopyOutStream};

use crate::copy::{CopyDecoder, Family, RowSink};
use crate::error::{Failure, PgError, Step, classify};
use crate::tls;
use crate::url::{DbUrl, SslMode};

/// How to connect, besides the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Limit for reaching the server and logging in (TCP, TLS, authentication).
    pub connect_timeout: Duration,
    /// Limit for each statement on the server (`SET statement_timeout`); `None` keeps the
    /// server's setting.
    pub statement_timeout: Option<Duration>,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(30),
            statement_timeout: None,
            application_name: "voucher".into(),
        }
    }
}

/// A column of a query's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// The type's name in PostgreSQL (`text`, `timestamptz`, ...).
    pub type_name: String,
    /// How it is read, if it is read at all.
    pub family: Option<Family>,
}

/// An open connection. The connection's task ends when this is dropped.
pub struct Session {
    client: Client,
    url: DbUrl,
    options: ConnectOptions,
    connection: JoinHandle<()>,
    /// Why the connection ended, once it has: the cause behind a "connection closed".
    ended: Arc<Mutex<Option<tokio_postgres::Error>>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Session {
    /// Connects and logs in, within `options.connect_timeout`, then applies the statement
    /// timeout. Must run inside a tokio runtime (the connection is a task on it).
    pub async fn connect(url: &DbUrl, options: &ConnectOptions) -> Result<Session, PgError> {
        let fail = |failure, source| server_error(url, failure, source);
        let tls = tls::connector(url).map_err(|reason| fail(Failure::TlsSetup(reason), None))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&url.host)
            .port(url.port)
            .user(&url.user)
            .dbname(&url.database)
            .application_name(&options.application_name)
            .ssl_mode(match url.ssl_mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            })
            .connect_timeout(options.connect_timeout)
            // A server that vanishes without closing the connection (a network partition)
            // is noticed within about a minute and a half instead of hanging the job.
            .keepalives_idle(Duration::from_secs(60))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        if let Some(password) = url.password() {
            config.password(password);
        }
        let timeout = options.connect_timeout;
        let connected = tokio::time::timeout(timeout, config.connect(tls)).await;
        let (client, connection) = match connected {
            Err(_) => return Err(fail(Failure::ConnectTimeout(timeout), None)),
            Ok(Err(e)) => {
                let failure = match classify(&e, Step::Connect, None) {
                    Failure::ConnectTimeout(_) => Failure::ConnectTimeout(timeout),
                    other => other,
                };
                return Err(fail(failure, Some(Box::new(e))));
            }
            Ok(Ok(pair)) => pair,
        };
        let ended = Arc::new(Mutex::new(None));
        let ended_by = Arc::clone(&ended);
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                *ended_by.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            }
        });
        let session = Session {
            client,
            url: url.clone(),
            options: options.clone(),
            connection,
            ended,
        };
        if let Some(t) = options.statement_timeout {
            let set = format!("SET statement_timeout = {}", t.as_millis().max(1));
            session
                .client
                .batch_execute(&set)
                .await
                .map_err(|e| session.error(e, Step::Connect))?;
        }
        log::info!(
            "connected to PostgreSQL {} as {} (sslmode={})",
            url.server(),
            url.user,
            url.ssl_mode.name()
        );
        Ok(session)
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The client, for queries of one's own.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The error for a failure of `error` at `step`, naming this server. A closed connection
    /// gets the connection's own error as its cause.
    pub(crate) fn error(&self, error: tokio_postgres::Error, step: Step) -> PgError {
        let failure = classify(&error, step, self.options.statement_timeout);
        let ended = self
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (failure, source) = match ended {
            Some(cause) if error.is_closed() => {
                let failure = match classify(&cause, step, self.options.statement_timeout) {
                    Failure::Protocol | Failure::Query => failure,
                    other => other,
                };
                (failure, cause)
            }
            _ => (failure, error),
        };
        server_error(&self.url, failure, Some(Box::new(source)))
    }

    /// The error for `failure`, naming this server.
    pub fn fail(
        &self,
        failure: Failure,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> PgError {
        server_error(&self.url, failure, source)
    }

    /// The columns `query` returns, without running it (unknown tables or columns and syntax
    /// errors show here).
    pub async fn describe(&self, query: &str) -> Result<Vec<ColumnInfo>, PgError> {
        let statement = self
            .client
            .prepare(query)
            .await
            .map_err(|e| self.error(e, Step::Query))?;
        Ok(statement
            .columns()
            .iter()
            .map(|c| ColumnInfo {
                name: c.name().to_owned(),
                type_name: c.type_().name().to_owned(),
                family: Family::of(c.type_()),
            })
            .collect())
    }

    /// Starts `COPY (query's columns) TO STDOUT (FORMAT binary)`: `columns` of `query`'s
    /// result, in that order, each read as its family.
    pub async fn copy_out(
        &self,
        query: &str,
        columns: &[(&str, Family)],
    ) -> Result<CopyRows<'_>, PgError> {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let sql = copy_statement(query, &names);
        let stream = self
            .client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| self.error(e, Step::Query))?;
        Ok(CopyRows {
            session: self,
            stream: Box::pin(stream),
            decoder: CopyDecoder::new(columns.iter().map(|(_, f)| *f).collect()),
        })
    }
}

fn server_error(
    url: &DbUrl,
    failure: Failure,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> PgError {
    PgError::Server {
        server: url.server(),
        user: url.user.clone(),
        failure,
        source,
    }
}

/// The rows of a `COPY ... TO STDOUT (FORMAT binary)`, as they arrive.
pub struct CopyRows<'s> {
    session: &'s Session,
    stream: Pin<Box<CopyOutStream>>,
    decoder: CopyDecoder,
}

impl CopyRows<'_> {
    /// Waits for the next message of rows and decodes them into `sink`; `Ok(false)` once the
    /// stream has ended, complete.
    pub async fn next_into(&mut self, sink: &mut impl RowSink) -> Result<bool, PgError> {
        match self.stream.next().await {
            Some(Ok(bytes)) => {
                self.decoder.feed(&bytes, sink).map_err(|e| {
                    self.session
                        .fail(Failure::from(e.clone()), Some(Box::new(e)))
                })?;
                Ok(true)
            }
            Some(Err(e)) => Err(self.session.error(e, Step::Query)),
            None => {
                self.decoder.finish().map_err(|e| {
                    self.session
                        .fail(Failure::from(e.clone()), Some(Box::new(e)))
                })?;
                Ok(false)
            }
        }
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.decoder.rows()
    }
}

/// `COPY (SELECT columns FROM (query) AS ...) TO STDOUT (FORMAT binary)`: only the columns
/// asked for cross the network, in a known order. The query goes on lines of its own, so a
/// trailing `-- comment` ends before the parenthesis; a trailing `;` is dropped.
pub fn copy_statement(query: &str, columns: &[&str]) -> String {
    let query = query.trim_end().trim_end_matches(';').trim_end();
    let list: Vec<String> = columns.iter().map(|c| quote_identifier(c)).collect();
    format!(
        "COPY (SELECT {} FROM (\n{query}\n) AS voucher_source) TO STDOUT (FORMAT binary)",
        list.join(", ")
    )
}

/// `name` as a quoted SQL identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_statement_selects_the_columns_of_the_query() {
        assert_eq!(
            copy_statement("SELECT * FROM h -- all rows\n ; ", &["timestamp", "a\"b"]),
            "COPY (SELECT \"timestamp\", \"a\"\"b\" FROM (\nSELECT * FROM h -- all rows\n) AS voucher_source) TO STDOUT (FORMAT binary)"
        );
    }
}
