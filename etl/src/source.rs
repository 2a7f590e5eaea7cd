//! The history input: local Parquet files (a file, a directory, Hive-style partitions below
//! it, or a glob), objects in S3-compatible storage (see [`crate::s3`]), or one file fetched
//! over http(s).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use polars::prelude::*;
use tempfile::NamedTempFile;
use voucher_shared::echo::Echo;

use crate::history::COLUMNS;
use crate::parquet_types::{self, Columns, arrow_type_name};
use crate::progress::Progress;
use crate::{EtlError, s3};

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

    /// The path in the form polars' scans take.
    pub fn polars_path(&self) -> PlRefPath {
        PlRefPath::new(self.path.to_string_lossy().as_ref())
    }
}

/// The files an `--input` names, in a stable (sorted) order: an http(s) URL or a file as
/// itself; a directory as every Parquet file below it, partition directories
/// (`batch=3/part-0.parquet`) included; a pattern with `*`, `?` or `[` as the files it matches.
/// Hidden files and Spark's markers (`.crc`, `_SUCCESS`) are skipped. An `s3://` input is
/// listed the same way in its bucket.
pub fn resolve(input: &str, timeout: Duration) -> Result<Vec<String>, EtlError> {
    if s3::is_s3(input) {
        return s3::resolve(input, timeout);
    }
    if is_http(input) {
        return Ok(vec![input.to_owned()]);
    }
    let path = Path::new(input);
    if path.is_dir() {
        let mut files = Vec::new();
        collect_parquet(path, &mut files).map_err(|source| EtlError::Open {
            file: input.to_owned(),
            source,
        })?;
        files.sort();
        if files.is_empty() {
            return Err(EtlError::NoInputFiles {
                input: input.to_owned(),
                what: "the directory holds no Parquet files (*.parquet, also in partition directories below it)",
            });
        }
        return Ok(files);
    }
    if input.contains(['*', '?', '[']) && !path.exists() {
        let pattern = glob::glob(input).map_err(|source| EtlError::BadPattern {
            input: input.to_owned(),
            source,
        })?;
        let mut files: Vec<String> = pattern
            .filter_map(Result::ok)
            .filter(|p| p.is_file() && !hidden(p))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(EtlError::NoInputFiles {
                input: input.to_owned(),
                what: "the pattern matches no files",
            });
        }
        return Ok(files);
    }
    Ok(vec![input.to_owned()])
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('_') || n.ends_with(".crc"))
}

fn collect_parquet(dir: &Path, files: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if hidden(&path) {
            continue;
        }
        if path.is_dir() {
            collect_parquet(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
        {
            files.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn is_http(input: &str) -> bool {
    input.starts_with("http://") || input.starts_with("https://")
}

/// Resolves one file of the input (a path, an `s3://` object or an http(s) URL) to a local
/// Parquet file.
pub fn open(input: &str, timeout: Duration) -> Result<Input, EtlError> {
    let fetched = if s3::is_s3(input) {
        Some(s3::download(input, timeout)?)
    } else if is_http(input) {
        Some(download(input, timeout)?)
    } else {
        None
    };
    let (path, download) = if let Some(file) = fetched {
        (file.path().to_owned(), Some(file))
    } else {
        // Absolute and without `..`: polars' async reader refuses `..` path segments.
        let path = std::fs::canonicalize(input).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => EtlError::InputMissing {
                file: input.to_owned(),
            },
            _ => EtlError::Open {
                file: input.to_owned(),
                source,
            },
        })?;
        (path, None)
    };
    check_parquet(&path, input)?;
    if let Some(copy) = readable_copy(&path, input)? {
        // The copy holds all the run reads: the download can go.
        return Ok(Input {
            path: copy.path().to_owned(),
            name: input.to_owned(),
            _download: Some(copy),
        });
    }
    Ok(Input {
        path,
        name: input.to_owned(),
        _download: download,
    })
}

/// A temporary copy of the history file at `path` that polars can read, when it cannot read
/// the file as it is: a column of a type polars cannot hold (a decimal, float16), even one the
/// run does not use, makes polars panic on the file's schema (see [`crate::parquet_types`]).
/// The copy holds only the columns the run reads, decimals and float16 as the numbers they
/// are, written row group by row group; the others are never decoded. A file whose footer
/// polars reads only once mended (see [`parquet_types::footer`]) is copied too.
fn readable_copy(path: &Path, name: &str) -> Result<Option<NamedTempFile>, EtlError> {
    let read_err = |source| EtlError::Read {
        file: name.to_owned(),
        source,
    };
    let open_err = |source| EtlError::Open {
        file: name.to_owned(),
        source,
    };
    let (metadata, mended) = parquet_types::footer(path).map_err(read_err)?;
    let mut reader = ParquetReader::new(File::open(path).map_err(open_err)?);
    reader.set_metadata(metadata.clone());
    let arrow = reader.schema().map_err(read_err)?;
    let columns = Columns::of(&arrow);
    if columns.all_direct() && !mended {
        return Ok(None);
    }
    let mut used = Vec::new();
    for column in COLUMNS {
        if let Some(found) = columns.unreadable(column.name) {
            return Err(EtlError::ColumnType {
                file: name.to_owned(),
                column: column.name,
                found: found.to_owned(),
                accepted: column.accepts,
            });
        }
        match columns.schema.get(column.name) {
            Some(dtype) if columns.conversion(column.name).is_some() => {
                if !column.accepts.allows(dtype) {
                    let found = arrow.get(column.name).map(|f| arrow_type_name(&f.dtype));
                    return Err(EtlError::ColumnType {
                        file: name.to_owned(),
                        column: column.name,
                        found: found.unwrap_or_default(),
                        accepted: column.accepts,
                    });
                }
                used.push((column.name, dtype.clone()));
            }
            Some(dtype) => used.push((column.name, dtype.clone())),
            // Missing: the scan names it among the columns found.
            None => {}
        }
    }
    log::info!(
        "input {name} has columns polars cannot read as they are ({}): reading the {} columns a run uses into a temporary copy",
        describe(&columns),
        used.len()
    );
    let copy = NamedTempFile::with_prefix("voucher-history-").map_err(open_err)?;
    let names: Vec<&str> = used.iter().map(|(n, _)| *n).collect();
    let write = || -> PolarsResult<()> {
        let schema: Schema = used
            .iter()
            .map(|(n, t)| {
                // Dictionaries of strings are copied as the strings.
                let t = if t.is_categorical() || t.is_enum() {
                    DataType::String
                } else {
                    t.clone()
                };
                Field::new((*n).into(), t)
            })
            .collect();
        let mut writer = ParquetWriter::new(copy.as_file())
            .with_compression(ParquetCompression::Lz4Raw)
            .batched(&schema)?;
        for group in 0..metadata.row_groups.len() {
            let frame =
                parquet_types::read_row_group(path, &metadata, &arrow, group, &names, None)?;
            writer.write_batch(&frame)?;
        }
        writer.finish().map(drop)
    };
    write().map_err(read_err)?;
    Ok(Some(copy))
}

/// The columns of `columns` that polars cannot hold, for a log line.
fn describe(columns: &Columns) -> String {
    let converted = columns
        .converted
        .iter()
        .map(|(n, c)| format!("{} read as {}", Echo(n.as_str()), c.dtype()));
    let unreadable = columns
        .unreadable
        .iter()
        .map(|(n, t)| format!("{} of type {t}, not read", Echo(n.as_str())));
    converted.chain(unreadable).collect::<Vec<_>>().join(", ")
}

/// Parquet files start and end with the magic bytes `PAR1`; checking them first turns "this is
/// a CSV" or "this was cut short" into a clear message instead of a decoder error.
fn check_parquet(path: &Path, name: &str) -> Result<(), EtlError> {
    let not_parquet = |reason: String| EtlError::NotParquet {
        file: name.to_owned(),
        reason,
    };
    let open_err = |source| EtlError::Open {
        file: name.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if meta.is_dir() {
        return Err(not_parquet("it is a directory".into()));
    }
    let len = meta.len();
    if len == 0 {
        return Err(not_parquet("it is empty".into()));
    }
    if len < 12 {
        return Err(not_parquet(format!("it is only {len} bytes long")));
    }
    let mut file = File::open(path).map_err(open_err)?;
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    file.read_exact(&mut head)
        .and_then(|_| file.seek(SeekFrom::End(-4)))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(open_err)?;
    if &head != b"PAR1" {
        return Err(not_parquet("it does not start with the bytes PAR1".into()));
    }
    if &tail != b"PAR1" {
        return Err(not_parquet(
            "it does not end with the bytes PAR1 (is it truncated?)".into(),
        ));
    }
    Ok(())
}

fn download(url: &str, timeout: Duration) -> Result<NamedTempFile, EtlError> {
    // reqwest's messages repeat the URL, which ours already names.
    let fail = |source: reqwest::Error| EtlError::Download {
        url: url.to_owned(),
        source: source.without_url(),
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(30).min(timeout))
        .user_agent(concat!("voucher-etl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(fail)?;
    log::info!("downloading {url} (timeout {}s)", timeout.as_secs());
    let mut response = client.get(url).send().map_err(fail)?;
    let status = response.status();
    if !status.is_success() {
        return Err(EtlError::DownloadStatus {
            url: url.to_owned(),
            status,
        });
    }
    let save_err = |source| EtlError::DownloadSave {
        url: url.to_owned(),
        source,
    };
    let mut file = NamedTempFile::with_prefix("voucher-history-").map_err(save_err)?;
    let progress = Progress::bytes("downloading", response.content_length());
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = response
            .read(&mut buf)
            .map_err(|source| EtlError::DownloadRead {
                url: url.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut file, &buf[..n]).map_err(save_err)?;
        total += n as u64;
        progress.set(total);
    }
    progress.finish();
    log::info!("downloaded {url}: {total} bytes");
    Ok(file)
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
