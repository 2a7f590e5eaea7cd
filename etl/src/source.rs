//! The history input: a local Parquet file or one fetched over http(s).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::NamedTempFile;

use crate::EtlError;
use crate::progress::Progress;

/// A history file ready to be scanned. A downloaded file is deleted when this is dropped.
#[derive(Debug)]
pub struct Input {
    path: PathBuf,
    /// How the user named it (path or URL), for the manifest and messages.
    pub name: String,
    _download: Option<NamedTempFile>,
}

impl Input {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Resolves `input` (a path or an http(s) URL) to a local Parquet file.
pub fn open(input: &str, timeout: Duration) -> Result<Input, EtlError> {
    let is_url = input.starts_with("http://") || input.starts_with("https://");
    let (path, download) = if is_url {
        let file = download(input, timeout)?;
        (file.path().to_owned(), Some(file))
    } else {
        // Absolute and without `..`: polars' async reader refuses `..` path segments.
        let path = std::fs::canonicalize(input).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EtlError::InputMissing {
                file: input.to_owned(),
            },
            _ => EtlError::Read {
                file: input.to_owned(),
                message: e.to_string(),
            },
        })?;
        (path, None)
    };
    check_parquet(&path, input)?;
    Ok(Input {
        path,
        name: input.to_owned(),
        _download: download,
    })
}

/// Parquet files start and end with the magic bytes `PAR1`; checking them first turns "this is
/// a CSV" into a clear message instead of a decoder error.
fn check_parquet(path: &Path, name: &str) -> Result<(), EtlError> {
    let not_parquet = |reason: String| EtlError::NotParquet {
        file: name.to_owned(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| EtlError::Read {
        file: name.to_owned(),
        message: e.to_string(),
    })?;
    let len = file
        .metadata()
        .map_err(|e| not_parquet(e.to_string()))?
        .len();
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(not_parquet("it is a directory".into()));
    }
    if len < 12 {
        return Err(not_parquet(format!("it is only {len} bytes long")));
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    file.read_exact(&mut head)
        .and_then(|_| file.seek(SeekFrom::End(-4)))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(|e| not_parquet(e.to_string()))?;
    if &head != b"PAR1" || &tail != b"PAR1" {
        return Err(not_parquet(
            "it does not start and end with the Parquet magic bytes PAR1".into(),
        ));
    }
    Ok(())
}

fn download(url: &str, timeout: Duration) -> Result<NamedTempFile, EtlError> {
    let fail = |message: String| EtlError::Download {
        url: url.to_owned(),
        message,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(30).min(timeout))
        .user_agent(concat!("voucher-etl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    log::info!("downloading {url} (timeout {}s)", timeout.as_secs());
    let mut response = client.get(url).send().map_err(|e| fail(describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("the server answered {status}")));
    }
    let mut file = NamedTempFile::with_prefix("voucher-history-")
        .map_err(|e| fail(format!("cannot create a temporary file: {e}")))?;
    let progress = Progress::bytes("downloading", response.content_length());
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = response.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut file, &buf[..n])
            .map_err(|e| fail(format!("cannot write the download to disk: {e}")))?;
        total += n as u64;
        progress.set(total);
    }
    progress.finish();
    log::info!("downloaded {url}: {total} bytes");
    Ok(file)
}

/// reqwest's top-level message ("error sending request") hides the cause; include it.
fn describe(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let err = open("/no/such/history.parquet", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, EtlError::InputMissing { .. }));
        assert!(
            err.to_string().contains("/no/such/history.parquet"),
            "{err}"
        );
    }

    #[test]
    fn a_csv_is_not_parquet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.csv");
        std::fs::write(&path, "timestamp,country_code\n2021-01-01,Peru\n").expect("write");
        let err = open(path.to_str().expect("utf-8"), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, EtlError::NotParquet { .. }), "{err}");
        assert!(err.to_string().contains("PAR1"), "{err}");
    }
}
