//! History in S3-compatible object storage: `s3://bucket/key` (one object),
//! `s3://bucket/prefix/` (every Parquet object below it, Hive partitions included) or
//! `s3://bucket/prefix/*.parquet` (a glob over keys).
//!
//! Configured the way every AWS tool is: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` for an
//! S3-compatible server, and `AWS_ALLOW_HTTP=true` when that server speaks plain HTTP.
//!
//! Objects are listed with `object_store` and each is streamed into a temporary file that the
//! cleaner then reads like a local one: one object on disk at a time, never one in memory.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as KeyPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt as _, RetryConfig};
use tempfile::NamedTempFile;

use crate::EtlError;
use crate::progress::Progress;

const SCHEME: &str = "s3://";

/// Whether `input` names object storage.
pub fn is_s3(input: &str) -> bool {
    input.starts_with(SCHEME)
}

/// An `s3://bucket/key` split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct S3Url {
    bucket: String,
    key: String,
}

impl S3Url {
    fn parse(input: &str) -> Result<Self, EtlError> {
        let rest = input.strip_prefix(SCHEME).unwrap_or(input);
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(EtlError::BadS3Url {
                input: input.to_owned(),
            });
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    fn object(&self, key: &str) -> String {
        format!("{SCHEME}{}/{key}", self.bucket)
    }
}

/// The client for one bucket, with retries short enough that a server that is down is
/// reported within seconds rather than after object_store's default three minutes.
fn store(url: &S3Url, input: &str, timeout: Duration) -> Result<AmazonS3, EtlError> {
    let mut client = ClientOptions::new()
        .with_timeout(timeout)
        .with_connect_timeout(Duration::from_secs(10).min(timeout));
    if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        client = client.with_allow_http(true);
    }
    let retry = RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(20),
        ..RetryConfig::default()
    };
    AmazonS3Builder::from_env()
        .with_bucket_name(&url.bucket)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|source| EtlError::S3Config {
            input: input.to_owned(),
            source,
        })
}

/// Runs one object-storage call to completion. The ETL is synchronous (a scheduled run sits
/// on a blocking thread), so each call gets a small runtime of its own.
fn block_on<T>(input: &str, f: impl Future<Output = T>) -> Result<T, EtlError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| EtlError::Open {
            file: input.to_owned(),
            source,
        })?;
    Ok(runtime.block_on(f))
}

/// The objects an `s3://` input names, as `s3://bucket/key` URLs in key order.
pub fn resolve(input: &str, timeout: Duration) -> Result<Vec<String>, EtlError> {
    let url = S3Url::parse(input)?;
    let store = Arc::new(store(&url, input, timeout)?);
    let keys = block_on(input, list_keys(&store, &url, input))??;
    Ok(keys.iter().map(|key| url.object(key)).collect())
}

async fn list_keys(store: &AmazonS3, url: &S3Url, input: &str) -> Result<Vec<String>, EtlError> {
    let fail = |source| classify(input, source);
    if let Some(star) = url.key.find(['*', '?', '[']) {
        let pattern = glob::Pattern::new(&url.key).map_err(|source| EtlError::BadPattern {
            input: input.to_owned(),
            source,
        })?;
        let prefix = &url.key[..url.key[..star].rfind('/').map_or(0, |i| i + 1)];
        let mut keys = list(store, prefix).await.map_err(fail)?;
        keys.retain(|k| pattern.matches(k) && !hidden(k));
        return nonempty(keys, input, "the pattern matches no objects");
    }
    if !url.key.is_empty() && !url.key.ends_with('/') {
        match store.head(&KeyPath::from(url.key.as_str())).await {
            Ok(_) => return Ok(vec![url.key.clone()]),
            // Not an object: perhaps a prefix written without its trailing slash.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(fail(source)),
        }
    }
    let prefix = match url.key.as_str() {
        "" => String::new(),
        key if key.ends_with('/') => key.to_owned(),
        key => format!("{key}/"),
    };
    let mut keys = list(store, &prefix).await.map_err(fail)?;
    keys.retain(|k| is_parquet(k) && !hidden(k));
    let what = if url.key.is_empty() || url.key.ends_with('/') {
        "no Parquet objects (*.parquet) under this prefix"
    } else {
        "no such object, and no Parquet objects (*.parquet) under it as a prefix"
    };
    nonempty(keys, input, what)
}

async fn list(store: &AmazonS3, prefix: &str) -> object_store::Result<Vec<String>> {
    let prefix = (!prefix.is_empty()).then(|| KeyPath::from(prefix.trim_end_matches('/')));
    let mut stream = store.list(prefix.as_ref());
    let mut keys = Vec::new();
    while let Some(meta) = stream.next().await {
        keys.push(meta?.location.to_string());
    }
    keys.sort();
    Ok(keys)
}

fn nonempty(keys: Vec<String>, input: &str, what: &'static str) -> Result<Vec<String>, EtlError> {
    if keys.is_empty() {
        return Err(EtlError::NoInputFiles {
            input: input.to_owned(),
            what,
        });
    }
    Ok(keys)
}

fn is_parquet(key: &str) -> bool {
    key.rsplit_once('.').is_some_and(|(_, ext)| {
        ext.eq_ignore_ascii_case("parquet") || ext.eq_ignore_ascii_case("pq")
    })
}

/// Spark's markers (`_SUCCESS`, `.crc`) and hidden files, in any directory of the key.
fn hidden(key: &str) -> bool {
    key.split('/')
        .any(|part| part.starts_with('.') || part.starts_with('_'))
        || key.ends_with(".crc")
}

/// Streams one object into a temporary file.
pub fn download(object: &str, timeout: Duration) -> Result<NamedTempFile, EtlError> {
    let url = S3Url::parse(object)?;
    let store = store(&url, object, timeout)?;
    log::info!("downloading {object}");
    let file = block_on(object, fetch(&store, &url, object))??;
    Ok(file)
}

async fn fetch(store: &AmazonS3, url: &S3Url, object: &str) -> Result<NamedTempFile, EtlError> {
    let result = store
        .get(&KeyPath::from(url.key.as_str()))
        .await
        .map_err(|source| classify(object, source))?;
    let save_err = |source| EtlError::DownloadSave {
        url: object.to_owned(),
        source,
    };
    let mut file = NamedTempFile::with_prefix("voucher-history-").map_err(save_err)?;
    let progress = Progress::bytes("downloading", Some(result.meta.size));
    let mut total = 0u64;
    let mut stream = result.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| classify(object, source))?;
        file.write_all(&chunk).map_err(save_err)?;
        total += chunk.len() as u64;
        progress.set(total);
    }
    progress.finish();
    log::info!("downloaded {object}: {total} bytes");
    Ok(file)
}

/// Turns object_store's error into one that says what to check: by its kind where
/// object_store gives one, else by the S3 error code the server sent.
fn classify(input: &str, source: object_store::Error) -> EtlError {
    let input = input.to_owned();
    let source = S3Cause::new(source);
    let code = source.server.as_ref().map(|s| s.code.as_str());
    match (&source.error, code) {
        (object_store::Error::PermissionDenied { .. }, _)
        | (object_store::Error::Unauthenticated { .. }, _)
        | (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied")) => {
            EtlError::S3Denied { input, source }
        }
        // Before `NotFound`: a GET in a missing bucket is a 404 too, told apart by its code.
        (_, Some("NoSuchBucket")) => EtlError::S3NoBucket { input, source },
        (object_store::Error::NotFound { .. }, _) => EtlError::InputMissing { file: input },
        _ => EtlError::S3 { input, source },
    }
}

/// An object-storage failure, said once. object_store's errors repeat their whole chain in
/// each level's message (and the server's XML with it), so this prints the server's error code
/// and message, or the innermost cause (the OS error of a refused connection), and keeps the
/// full error for `{:?}`.
#[derive(Debug)]
pub struct S3Cause {
    pub error: object_store::Error,
    /// What the server said, when it answered with an S3 error document (boxed: `EtlError`
    /// holds this by value and stays small).
    pub server: Option<Box<ServerError>>,
}

impl S3Cause {
    fn new(error: object_store::Error) -> Self {
        let server = ServerError::find(&error.to_string()).map(Box::new);
        S3Cause { error, server }
    }
}

/// An S3 error document's `<Code>` and `<Message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: String,
    pub message: String,
}

impl ServerError {
    /// The S3 error document in an error's text.
    ///
    /// Read from text because that is the only place object_store leaves it: the response
    /// body is kept in a private type (`client::retry::RetryError`), and only the HTTP status
    /// of a GET or HEAD becomes a kind (`NotFound`, `PermissionDenied`, `Unauthenticated`). A
    /// failed LIST is `Generic` whatever the status, and a 404 does not say whether the key
    /// or the bucket is missing: the code (`NoSuchBucket`, `AccessDenied`...) does.
    fn find(text: &str) -> Option<Self> {
        let field = |name: &str| {
            let open = format!("<{name}>");
            let start = text.find(&open)? + open.len();
            let end = start + text[start..].find(&format!("</{name}>"))?;
            Some(text[start..end].to_owned())
        };
        Some(ServerError {
            code: field("Code")?,
            message: field("Message").unwrap_or_default(),
        })
    }
}

impl std::fmt::Display for S3Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(server) = &self.server {
            return write!(f, "the server answered {}: {}", server.code, server.message);
        }
        let mut inner: &dyn std::error::Error = &self.error;
        while let Some(next) = inner.source() {
            inner = next;
        }
        write!(f, "{inner}")
    }
}

impl std::error::Error for S3Cause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_key() {
        let url = S3Url::parse("s3://history/batch=3/part-0.parquet").expect("url");
        assert_eq!(url.bucket, "history");
        assert_eq!(url.key, "batch=3/part-0.parquet");
        assert_eq!(S3Url::parse("s3://history").expect("url").key, "");
        let err = S3Url::parse("s3:///key").expect_err("no bucket");
        assert!(err.to_string().contains("s3:///key"), "{err}");
    }

    const NO_SUCH_BUCKET: &str = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                   <Message>The specified bucket does not exist</Message></Error>";

    fn generic(text: String) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.into(),
        }
    }

    #[test]
    fn the_server_s_code_and_message_are_found_in_an_error_s_text() {
        let text = format!("list failed: {NO_SUCH_BUCKET}: list failed: {NO_SUCH_BUCKET}");
        assert_eq!(
            ServerError::find(&text),
            Some(ServerError {
                code: "NoSuchBucket".into(),
                message: "The specified bucket does not exist".into(),
            })
        );
        let code_only = ServerError::find("<Error><Code>AccessDenied</Code></Error>");
        assert_eq!(
            code_only.map(|s| (s.code, s.message)),
            Some(("AccessDenied".into(), String::new()))
        );
        assert_eq!(ServerError::find("connection refused"), None);
        assert_eq!(ServerError::find("<Code>unterminated"), None);
    }

    #[test]
    fn server_errors_are_said_once_by_their_code() {
        let err = generic(format!(
            "list failed: {NO_SUCH_BUCKET}: list failed: {NO_SUCH_BUCKET}"
        ));
        let err = classify("s3://gone/history/", err);
        assert!(matches!(err, EtlError::S3NoBucket { .. }), "{err:?}");
        let cause = std::error::Error::source(&err).expect("cause").to_string();
        assert_eq!(
            cause,
            "the server answered NoSuchBucket: The specified bucket does not exist"
        );
    }

    #[test]
    fn object_store_s_kinds_decide_without_a_code() {
        let denied = object_store::Error::PermissionDenied {
            path: "history/a.parquet".into(),
            source: "403 Forbidden".into(),
        };
        let err = classify("s3://b/history/a.parquet", denied);
        assert!(matches!(err, EtlError::S3Denied { .. }), "{err:?}");
        let unauthenticated = object_store::Error::Unauthenticated {
            path: "history/a.parquet".into(),
            source: "401".into(),
        };
        let err = classify("s3://b/history/a.parquet", unauthenticated);
        assert!(matches!(err, EtlError::S3Denied { .. }), "{err:?}");
        let missing = object_store::Error::NotFound {
            path: "history/a.parquet".into(),
            source: "404 Not Found".into(),
        };
        let err = classify("s3://b/history/a.parquet", missing);
        assert!(
            matches!(&err, EtlError::InputMissing { file } if file == "s3://b/history/a.parquet"),
            "{err:?}"
        );
        // A LIST refused is `Generic`: only its code tells.
        let err = classify(
            "s3://b/history/",
            generic(
                "<Error><Code>InvalidAccessKeyId</Code><Message>no such key id</Message></Error>"
                    .into(),
            ),
        );
        assert!(matches!(err, EtlError::S3Denied { .. }), "{err:?}");
    }

    #[test]
    fn other_failures_show_their_innermost_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = object_store::Error::Generic {
            store: "S3",
            source: Box::new(io),
        };
        let err = classify("s3://b/history/", err);
        assert!(matches!(err, EtlError::S3 { .. }), "{err:?}");
        let msg = voucher_shared::errors::Chain(&err).to_string();
        assert!(
            msg.starts_with("cannot read s3://b/history/ from object storage")
                && msg.ends_with(": connection refused"),
            "{msg}"
        );
    }

    #[test]
    fn markers_and_hidden_objects_are_skipped() {
        assert!(hidden("history/_SUCCESS"));
        assert!(hidden("history/.part-0.parquet.crc"));
        assert!(hidden("history/_temporary/0/part-0.parquet"));
        assert!(!hidden("history/batch=3/part-0.parquet"));
        assert!(is_parquet("a/part-0.PARQUET"));
        assert!(!is_parquet("a/part-0.csv"));
    }
}
