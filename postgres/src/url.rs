//! Connection URLs: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]`.
//!
//! The password may also come from `PGPASSWORD`, as with libpq, so that it stays out of
//! process listings and manifests. A [`DbUrl`] displays without its password: every message,
//! log line and manifest names the server that way.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// The URL schemes accepted, as libpq accepts them.
pub const SCHEMES: [&str; 2] = ["postgresql://", "postgres://"];

/// What a connection URL looks like, for messages.
pub const URL_FORM: &str = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]";

/// What a user name must percent-encode to be read back as itself (RFC 3986's userinfo).
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The port PostgreSQL listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 5432;

/// Whether `input` is a PostgreSQL connection URL (by its scheme alone).
pub fn is_postgres_url(input: &str) -> bool {
    SCHEMES.iter().any(|s| starts_with_scheme(input, s))
}

fn starts_with_scheme(input: &str, scheme: &str) -> bool {
    input
        .get(..scheme.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
}

/// How TLS is used, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked
    /// (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (it protects against eavesdropping,
    /// not against a server impersonating the real one).
    Require,
    /// TLS with a certificate signed by a trusted authority (`sslrootcert`, or the system's).
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host of the URL.
    VerifyFull,
}

impl SslMode {
    /// The modes accepted in `sslmode=`, for messages.
    pub const ACCEPTED: &str = "disable, prefer, require, verify-ca or verify-full";

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A parsed connection URL. `Display` shows it without the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    pub user: String,
    password: Option<String>,
    /// A host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub database: String,
    pub ssl_mode: SslMode,
    /// Trusted certificate authorities (PEM) for `verify-ca` and `verify-full`.
    pub ssl_root_cert: Option<PathBuf>,
    /// Whether `sslmode` was written in the URL (it is then shown by `Display`).
    explicit_ssl_mode: bool,
}

/// Why a connection URL was refused. Messages name the part at fault and never echo the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}; expected {URL_FORM}")]
pub struct UrlError {
    problem: String,
}

impl UrlError {
    fn new(problem: impl Into<String>) -> Self {
        UrlError {
            problem: problem.into(),
        }
    }
}

/// A bounded, printable piece of the input, for messages.
fn excerpt(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

fn decode(part: &str, what: &str) -> Result<String, UrlError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UrlError::new(format!("the {what} is not valid percent-encoded UTF-8")))
}

impl DbUrl {
    /// Parses a URL given as a command-line flag, with the password from `PGPASSWORD` when the
    /// URL holds none: clap's value parser for every flag that names a database.
    pub fn from_arg(input: &str) -> Result<Self, String> {
        Self::parse(input, crate::env_password()).map_err(|e| e.to_string())
    }

    /// Parses a URL; `env_password` (the value of `PGPASSWORD`, if set) is used when the URL
    /// holds no password.
    pub fn parse(input: &str, env_password: Option<String>) -> Result<Self, UrlError> {
        let rest = SCHEMES
            .iter()
            .find(|s| starts_with_scheme(input, s))
            .map(|s| &input[s.len()..])
            .ok_or_else(|| UrlError::new("it does not start with postgresql:// or postgres://"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| UrlError::new("it names no database (the /DB after the host)"))?;
        // The last `@` ends the user info: a password may hold an unencoded `@`.
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| UrlError::new("it names no user (the USER@ before the host)"))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(decode(password, "password")?)),
            None => (userinfo, None),
        };
        let user = decode(user, "user")?;
        if user.is_empty() {
            return Err(UrlError::new(
                "it names no user (the USER@ before the host)",
            ));
        }
        let (host, port) = split_host_port(hostport)?;
        let database = decode(database, "database name")?;
        if database.is_empty() || database.contains('/') {
            return Err(UrlError::new(format!(
                "{} is not a database name",
                excerpt(&database)
            )));
        }
        let mut url = DbUrl {
            user,
            password: password.or(env_password).filter(|p| !p.is_empty()),
            host,
            port,
            database,
            ssl_mode: SslMode::default(),
            ssl_root_cert: None,
            explicit_ssl_mode: false,
        };
        url.apply_parameters(query)?;
        Ok(url)
    }

    fn apply_parameters(&mut self, query: &str) -> Result<(), UrlError> {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value, "parameter value")?;
            match key {
                "sslmode" => {
                    self.ssl_mode = SslMode::parse(&value).ok_or_else(|| {
                        UrlError::new(format!(
                            "sslmode={} is not supported; use {}",
                            excerpt(&value),
                            SslMode::ACCEPTED
                        ))
                    })?;
                    self.explicit_ssl_mode = true;
                }
                "sslrootcert" => self.ssl_root_cert = Some(PathBuf::from(value)),
                _ => {
                    return Err(UrlError::new(format!(
                        "the parameter {} is not supported (supported: sslmode, sslrootcert)",
                        excerpt(key)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The password, from the URL or `PGPASSWORD`.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `host:port/database`, as messages name the server.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}/{}", self.host, self.port, self.database)
        } else {
            format!("{}:{}/{}", self.host, self.port, self.database)
        }
    }
}

fn split_host_port(hostport: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| UrlError::new("an IPv6 host lacks its closing ]"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::new("it names no host"));
    }
    if host.contains(',') {
        return Err(UrlError::new("several hosts are not supported"));
    }
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            UrlError::new(format!(
                "the port {} is not a number from 1 to 65535",
                excerpt(p)
            ))
        })?,
    };
    Ok((decode(host, "host")?, port))
}

impl fmt::Display for DbUrl {
    /// `postgresql://USER@HOST:PORT/DB`, with the TLS parameters if the URL had them; never
    /// the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encode = |s: &str| percent_encoding::utf8_percent_encode(s, USERINFO).to_string();
        write!(f, "postgresql://{}@{}", encode(&self.user), self.server())?;
        let mut sep = '?';
        if self.explicit_ssl_mode {
            write!(f, "{sep}sslmode={}", self.ssl_mode.name())?;
            sep = '&';
        }
        if let Some(path) = &self.ssl_root_cert {
            write!(f, "{sep}sslrootcert={}", path.display())?;
        }
        Ok(())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbUrl")
            .field("url", &self.to_string())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Whether `input` is a PostgreSQL URL holding a password itself (rather than leaving it to
/// `PGPASSWORD`). A password on a command line is shown by `ps` to every user of the machine
/// for as long as the process runs.
pub fn has_password(input: &str) -> bool {
    is_postgres_url(input) && DbUrl::parse(input, None).is_ok_and(|url| url.password.is_some())
}

/// `input` as it may be shown: a PostgreSQL URL without its password (or a note that it does
/// not parse, never the text itself), anything else as it is.
pub fn display_input(input: &str) -> String {
    if !is_postgres_url(input) {
        return input.to_owned();
    }
    match DbUrl::parse(input, None) {
        Ok(url) => url.to_string(),
        Err(_) => "(an unparsable postgresql:// URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_told_apart_from_none() {
        assert!(has_password("postgresql://etl:pw@db/orders"));
        assert!(has_password(
            "postgres://etl:p%40ss@db:5433/orders?sslmode=require"
        ));
        assert!(!has_password("postgresql://etl@db/orders"));
        assert!(!has_password("postgresql://etl:@db/orders"));
        assert!(!has_password("history/part-0.parquet"));
        assert!(!has_password("https://etl:pw@example.com/history.parquet"));
    }

    fn parse(s: &str) -> Result<DbUrl, UrlError> {
        DbUrl::parse(s, None)
    }

    #[test]
    fn a_full_url_parses_and_displays_without_its_password() {
        let url = parse("postgresql://etl:s3cr%40t@db.internal:6543/history?sslmode=require")
            .expect("valid");
        assert_eq!(
            (
                url.user.as_str(),
                url.password(),
                url.host.as_str(),
                url.port
            ),
            ("etl", Some("s3cr@t"), "db.internal", 6543)
        );
        assert_eq!(url.database, "history");
        assert_eq!(url.ssl_mode, SslMode::Require);
        let shown = url.to_string();
        assert_eq!(
            shown,
            "postgresql://etl@db.internal:6543/history?sslmode=require"
        );
        assert!(!format!("{url:?}").contains("s3cr"), "{url:?}");
    }

    #[test]
    fn defaults_and_the_other_scheme() {
        let url = parse("postgres://etl_reader@localhost/history").expect("valid");
        assert_eq!(
            (url.port, url.ssl_mode, url.password()),
            (5432, SslMode::Prefer, None)
        );
        assert_eq!(
            url.to_string(),
            "postgresql://etl_reader@localhost:5432/history"
        );
        let odd = parse("postgresql://a%40b%3Ac@h/db").expect("valid");
        assert_eq!(odd.user, "a@b:c");
        assert_eq!(odd.to_string(), "postgresql://a%40b%3Ac@h:5432/db");
        let v6 = parse("POSTGRESQL://etl@[::1]:7000/h").expect("valid");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 7000));
        assert_eq!(v6.server(), "[::1]:7000/h");
    }

    #[test]
    fn the_password_may_come_from_the_environment_but_the_url_wins() {
        let env = Some("from-env".to_owned());
        let url = DbUrl::parse("postgresql://etl@h/db", env.clone()).expect("valid");
        assert_eq!(url.password(), Some("from-env"));
        let url = DbUrl::parse("postgresql://etl:inline@h/db", env).expect("valid");
        assert_eq!(url.password(), Some("inline"));
    }

    #[test]
    fn bad_urls_name_the_part_at_fault_and_never_the_password() {
        for (input, part) in [
            ("postgresql://h/db", "no user"),
            ("postgresql://etl:pw@h", "no database"),
            ("postgresql://etl:pw@h:port/db", "port \"port\""),
            ("postgresql://etl:pw@h:70000/db", "port \"70000\""),
            ("postgresql://etl:pw@/db", "no host"),
            (
                "postgresql://etl:pw@h/db?sslmode=allow",
                "sslmode=\"allow\"",
            ),
            (
                "postgresql://etl:pw@h/db?connect_timeout=3",
                "connect_timeout",
            ),
            ("postgresql://etl:pw@a,b/db", "several hosts"),
        ] {
            let err = parse(input).expect_err(input).to_string();
            assert!(err.contains(part), "{input}: {err}");
            assert!(err.contains(URL_FORM), "{err}");
            assert!(!err.contains("pw"), "{input}: {err}");
        }
    }

    #[test]
    fn inputs_are_shown_redacted() {
        assert_eq!(
            display_input("postgresql://etl:pw@h/db"),
            "postgresql://etl@h:5432/db"
        );
        assert_eq!(display_input("history.parquet"), "history.parquet");
        assert!(!display_input("postgresql://etl:pw@h:x/db").contains("pw"));
        assert!(is_postgres_url("Postgres://x") && !is_postgres_url("s3://b/k"));
    }
}
