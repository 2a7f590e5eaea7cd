//! The customer list: a Parquet file read in windows of its row groups, or a CSV file read in
//! chunks by polars' streaming engine, so that memory follows a few windows, not the list.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use polars::io::parquet::metadata::{FileMetadata, FileMetadataRef};
use polars::prelude::*;
use polars_parquet::parquet::metadata::RowGroupMetadata;
use voucher_shared::echo::Echo;
use voucher_shared::score::VoucherRequest;

use super::{RESULT_COLUMNS, ScoreError};
use super::{cells, pages};
use crate::clean;
use crate::memory::{self, WindowPlan};
use crate::parquet_types::{self, Columns};

type ArrowSchemaRef = Arc<ArrowSchema>;

/// A customer list, checked and ready to be read.
pub(super) enum CustomerList {
    Parquet(ParquetList),
    Csv(CsvList),
}

impl CustomerList {
    /// Opens `path` (by its extension: Parquet or CSV) and checks its columns: at least one
    /// request field, each of a type a field can hold, and none of the columns the output adds.
    pub(super) fn open(path: &Path) -> Result<Self, ScoreError> {
        if !path.exists() {
            return Err(ScoreError::Missing {
                path: path.to_owned(),
            });
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let list = match extension.as_deref() {
            Some("parquet" | "pq") => CustomerList::Parquet(ParquetList::open(path)?),
            Some("csv") => CustomerList::Csv(CsvList::open(path)?),
            _ => {
                return Err(ScoreError::UnknownFormat {
                    path: path.to_owned(),
                });
            }
        };
        check_columns(path, list.schema())?;
        if let CustomerList::Parquet(parquet) = &list {
            parquet.check_types()?;
        }
        Ok(list)
    }

    /// The list's columns; the output has these, then the result columns.
    pub(super) fn schema(&self) -> &Schema {
        match self {
            CustomerList::Parquet(list) => &list.schema,
            CustomerList::Csv(list) => &list.schema,
        }
    }

    /// Rows in the list, when known before reading (Parquet).
    pub(super) fn rows(&self) -> Option<u64> {
        match self {
            CustomerList::Parquet(list) => Some(list.row_groups.iter().map(|g| g.rows).sum()),
            CustomerList::Csv(_) => None,
        }
    }

    /// Whether the list's strings are CSV cells (JSON scalars without quotes).
    pub(super) fn cells(&self) -> bool {
        matches!(self, CustomerList::Csv(_))
    }
}

/// Refuses a list with two columns of one name: which one a field is read from would be a guess.
fn check_unique<'n>(
    path: &Path,
    names: impl IntoIterator<Item = &'n str>,
) -> Result<(), ScoreError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(ScoreError::DuplicateColumn {
                path: path.to_owned(),
                column: Echo(name).to_string(),
            });
        }
    }
    Ok(())
}

fn check_columns(path: &Path, schema: &Schema) -> Result<(), ScoreError> {
    let fields = VoucherRequest::FIELDS;
    if !fields.iter().any(|f| schema.contains(f)) {
        return Err(ScoreError::NoRequestColumns {
            path: path.to_owned(),
            found: schema.iter_names().map(|n| n.to_string()).collect(),
        });
    }
    for field in fields {
        if let Some(dtype) = schema.get(field)
            && !cells::readable(dtype)
        {
            return Err(ScoreError::ColumnType {
                path: path.to_owned(),
                column: field,
                found: dtype.to_string(),
            });
        }
    }
    if let Some(column) = RESULT_COLUMNS.iter().find(|c| schema.contains(c)) {
        return Err(ScoreError::ColumnClash {
            path: path.to_owned(),
            column,
        });
    }
    Ok(())
}

/// One row group, from the footer.
#[derive(Debug, Clone, Copy)]
struct RowGroup {
    rows: u64,
    /// Decoded bytes of every column, estimated from the footer (see
    /// [`memory::decoded_bytes`]).
    decoded: u64,
    /// Decoded bytes of the request columns alone.
    decoded_requests: u64,
}

/// A part of a row group to score: `rows` rows from row `start` of the group.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slice {
    pub group: usize,
    pub start: u64,
    pub rows: u64,
    /// Whether this is the row group's last part: the group can be written.
    pub last: bool,
}

/// A Parquet customer list.
pub(super) struct ParquetList {
    path: PathBuf,
    metadata: FileMetadataRef,
    arrow_schema: ArrowSchemaRef,
    schema: Schema,
    row_groups: Vec<RowGroup>,
    /// The footer as if each row group were the only one: polars' reader visits every row
    /// group before the rows asked for, decoding their dictionaries, so a window of the
    /// 100th row group would cost 99 row groups' dictionaries.
    alone: Vec<FileMetadataRef>,
    /// The positions of the request columns among the list's.
    requests: Vec<usize>,
    /// How each column is read (see [`parquet_types`]): a request column of a type polars
    /// cannot hold (a decimal id) is decoded here.
    types: Columns,
}

impl ParquetList {
    fn open(path: &Path) -> Result<Self, ScoreError> {
        let read = |source| ScoreError::Read {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(|e| read(e.into()))?;
        let mut reader = ParquetReader::new(file);
        // The footer as polars reads it, mended where polars would refuse it.
        let (metadata, _) = parquet_types::footer(path).map_err(read)?;
        reader.set_metadata(metadata.clone());
        // The footer's own column list: polars' schemas are maps by name, which keep one of
        // two columns of the same name.
        let names = metadata.schema().fields().iter().map(|f| f.name());
        check_unique(path, names)?;
        let arrow_schema = reader.schema().map_err(read)?;
        // Not polars' own conversion of the whole schema: it panics on types it cannot hold,
        // which the list's other columns may have (they are copied, never decoded).
        let types = Columns::of(&arrow_schema);
        let schema = types.schema.clone();
        let columns: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
        let fields = VoucherRequest::FIELDS;
        let requests: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| fields.contains(c))
            .collect();
        let decoded = memory::decoded_bytes(&metadata, &schema, &columns);
        let decoded_requests = memory::decoded_bytes(&metadata, &schema, &requests);
        let row_groups = metadata
            .row_groups
            .iter()
            .zip(decoded.into_iter().zip(decoded_requests))
            .map(|(group, (decoded, decoded_requests))| RowGroup {
                rows: group.num_rows() as u64,
                decoded,
                decoded_requests,
            })
            .collect();
        // Positions in the file's columns (polars' projection), not in `schema`'s, which
        // leaves out the columns nothing reads.
        let requests = requests
            .iter()
            .filter_map(|name| arrow_schema.index_of(name))
            .collect();
        let mut without_groups = FileMetadata::clone(&metadata);
        without_groups.row_groups.clear();
        let alone = metadata
            .row_groups
            .iter()
            .map(|group| {
                Arc::new(FileMetadata {
                    num_rows: group.num_rows(),
                    max_row_group_height: group.num_rows(),
                    row_groups: vec![group.clone()],
                    ..without_groups.clone()
                })
            })
            .collect();
        Ok(ParquetList {
            path: path.to_owned(),
            metadata,
            arrow_schema,
            schema,
            types,
            row_groups,
            alone,
            requests,
        })
    }

    /// Refuses a request column of a type nothing reads (naming it), and a list that only
    /// polars' writer can write (nested columns) with a column polars cannot hold.
    fn check_types(&self) -> Result<(), ScoreError> {
        for field in VoucherRequest::FIELDS {
            if let Some(found) = self.types.unreadable(field) {
                return Err(ScoreError::ColumnType {
                    path: self.path.clone(),
                    column: field,
                    found: found.to_owned(),
                });
            }
        }
        // Such a list is written by polars' writer, which decodes every column.
        let other = self.types.unreadable.first().cloned().or_else(|| {
            let (name, _) = self.types.converted.first()?;
            let field = self.arrow_schema.get(name)?;
            Some((name.clone(), parquet_types::arrow_type_name(&field.dtype)))
        });
        if !self.copyable()
            && let Some((column, found)) = other
        {
            return Err(ScoreError::NestedWithType {
                path: self.path.clone(),
                column: Echo(&column).to_string(),
                found,
            });
        }
        Ok(())
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn metadata(&self) -> &FileMetadata {
        &self.metadata
    }

    pub(super) fn arrow_schema(&self) -> &ArrowSchema {
        &self.arrow_schema
    }

    /// Whether the output can copy the list's pages (see [`pages::copyable`]).
    pub(super) fn copyable(&self) -> bool {
        pages::copyable(&self.metadata)
    }

    /// The row ranges (offset, length) of windows of up to `window_rows` rows of whole row
    /// groups, or slices of larger ones.
    pub(super) fn windows(&self, window_rows: u64) -> Vec<(u64, u64)> {
        let rows: Vec<u64> = self.row_groups.iter().map(|g| g.rows).collect();
        clean::windows(&rows, window_rows)
    }

    /// Every row group in parts of up to `window_rows` rows, in order.
    pub(super) fn slices(&self, window_rows: u64) -> Vec<Slice> {
        let window_rows = window_rows.max(1);
        let mut slices = Vec::new();
        for (group, g) in self.row_groups.iter().enumerate() {
            let mut start = 0;
            while start < g.rows {
                let rows = window_rows.min(g.rows - start);
                slices.push(Slice {
                    group,
                    start,
                    rows,
                    last: start + rows == g.rows,
                });
                start += rows;
            }
        }
        slices
    }

    /// The most rows a window of up to `window_rows` rows holds in this file: [`Self::windows`]
    /// merge row groups up to that many rows; [`Self::slices`] cut only within one.
    pub(super) fn window_rows(&self, window_rows: u64, merged: bool) -> u64 {
        let most = if merged {
            self.row_groups.iter().map(|g| g.rows).sum()
        } else {
            self.row_groups.iter().map(|g| g.rows).max().unwrap_or(0)
        };
        window_rows.min(most)
    }

    /// The most decoded bytes a row takes, from the footer: the densest row group's estimate,
    /// of every column or of the request columns alone.
    pub(super) fn bytes_per_row(&self, requests_only: bool) -> u64 {
        self.row_groups
            .iter()
            .filter(|g| g.rows > 0)
            .map(|g| {
                let bytes = if requests_only {
                    g.decoded_requests
                } else {
                    g.decoded
                };
                bytes.div_ceil(g.rows)
            })
            .max()
            .unwrap_or(0)
    }

    /// The most compressed bytes of a row group: what writing one holds of the list.
    pub(super) fn largest_group_bytes(&self) -> u64 {
        self.metadata
            .row_groups
            .iter()
            .map(|g| g.compressed_size() as u64)
            .max()
            .unwrap_or(0)
    }

    pub(super) fn row_group(&self, group: usize) -> Option<&RowGroupMetadata> {
        self.metadata.row_groups.get(group)
    }

    /// The rows of `slice`, only the request columns, in one chunk per column.
    pub(super) fn read_requests(&self, slice: &Slice) -> PolarsResult<DataFrame> {
        if self.requests_converted() {
            let names: Vec<&str> = self
                .requests
                .iter()
                .filter_map(|&i| self.arrow_schema.get_at_index(i).map(|(n, _)| n.as_str()))
                .collect();
            let rows = (slice.start as usize, slice.rows as usize);
            let path = &self.path;
            let (metadata, arrow) = (&self.metadata, &self.arrow_schema);
            return parquet_types::read_row_group(
                path,
                metadata,
                arrow,
                slice.group,
                &names,
                Some(rows),
            );
        }
        let alone = self.alone.get(slice.group).ok_or_else(
            || polars_err!(ComputeError: "row group {} is not in the footer", slice.group),
        )?;
        let mut reader = ParquetReader::new(File::open(&self.path)?);
        reader.set_metadata(alone.clone());
        let mut frame = reader
            .with_projection(Some(self.requests.clone()))
            .with_slice(Some((slice.start as usize, slice.rows as usize)))
            .read_parallel(ParallelStrategy::None)
            .finish()?;
        frame.rechunk_mut();
        Ok(frame)
    }

    /// Whether a request column is of a type polars cannot hold, which is decoded here.
    fn requests_converted(&self) -> bool {
        VoucherRequest::FIELDS
            .iter()
            .any(|f| self.types.conversion(f).is_some())
    }

    /// Decodes the rows `(offset, length)`, every column, in one chunk per column.
    pub(super) fn read(&self, (offset, length): (u64, u64)) -> PolarsResult<DataFrame> {
        let mut reader = ParquetReader::new(File::open(&self.path)?);
        reader.set_metadata(self.metadata.clone());
        let mut frame = reader
            .with_slice(Some((offset as usize, length as usize)))
            .read_parallel(ParallelStrategy::None)
            .finish()?;
        frame.rechunk_mut();
        Ok(frame)
    }
}

/// A CSV customer list: every cell read as text.
pub(super) struct CsvList {
    path: PathBuf,
    schema: Schema,
}

impl CsvList {
    fn open(path: &Path) -> Result<Self, ScoreError> {
        let read = |source| csv_error(path, source);
        // The header as data: polars renames a repeated name (`x_duplicated_0`) as it reads it.
        let header = LazyCsvReader::new(PlRefPath::new(path.to_string_lossy().as_ref()))
            .with_has_header(false)
            .with_infer_schema_length(Some(0))
            .with_n_rows(Some(1))
            .finish()
            .and_then(LazyFrame::collect)
            .map_err(read)?;
        let names: Vec<String> = header
            .columns()
            .iter()
            .filter_map(|c| c.str().ok()?.get(0).map(str::to_owned))
            .collect();
        check_unique(path, names.iter().map(String::as_str))?;
        let schema = Self::scan(path)
            .and_then(|mut lf| lf.collect_schema())
            .map_err(read)?;
        Ok(CsvList {
            path: path.to_owned(),
            schema: Arc::unwrap_or_clone(schema),
        })
    }

    fn scan(path: &Path) -> PolarsResult<LazyFrame> {
        // Every cell as text: CSV has no types, so each is read as a JSON scalar would be.
        LazyCsvReader::new(PlRefPath::new(path.to_string_lossy().as_ref()))
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .finish()
    }

    /// Streams the list in chunks of up to `plan.window_rows` rows to `consume`, in order, with
    /// at most `plan.in_flight` chunks read ahead. Stops at the first error of either side.
    pub(super) fn stream(
        &self,
        plan: WindowPlan,
        mut consume: impl FnMut(DataFrame) -> Result<(), ScoreError>,
    ) -> Result<(), ScoreError> {
        let read = |source| csv_error(&self.path, source);
        let (sender, chunks) = mpsc::sync_channel::<DataFrame>(usize::from(plan.in_flight));
        let chunk_rows = NonZeroUsize::new(plan.window_rows as usize).unwrap_or(NonZeroUsize::MIN);
        let query = Self::scan(&self.path)
            .and_then(|lf| {
                lf.sink_batches(
                    PlanCallback::new(move |chunk: DataFrame| {
                        // A closed channel means the consumer stopped: stop reading too.
                        Ok(sender.send(chunk).is_err())
                    }),
                    true,
                    Some(chunk_rows),
                )
            })
            .map_err(read)?;
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || query.collect_with_engine(Engine::Streaming));
            let consumed = chunks.iter().try_for_each(&mut consume);
            // Dropping the receiver ends the reader's sends if the consumer stopped early.
            drop(chunks);
            let read_result = reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            consumed?;
            read_result.map(drop).map_err(read)
        })
    }
}

/// A CSV list's read error; for text that is not UTF-8 or a line of more fields than the
/// header (polars says neither where, and names an option of its own for the second), the
/// line, found by reading the file again.
fn csv_error(path: &Path, source: PolarsError) -> ScoreError {
    let message = source.to_string().to_ascii_lowercase();
    if (message.contains("more fields") || message.contains("ragged"))
        && let Some((line, fields, header)) = first_ragged(path)
    {
        return ScoreError::RaggedLine {
            path: path.to_owned(),
            line,
            fields,
            header,
        };
    }
    if (message.contains("utf-8") || message.contains("utf8"))
        && let Some((line, byte)) = first_non_utf8(path)
    {
        return ScoreError::NotUtf8 {
            path: path.to_owned(),
            line,
            byte,
        };
    }
    ScoreError::Read {
        path: path.to_owned(),
        source,
    }
}

/// The first record of the CSV file at `path` with another number of fields than its header:
/// the line it starts on (from 1), its fields, the header's. Quoted fields may hold commas,
/// quotes (doubled) and line ends.
fn first_ragged(path: &Path) -> Option<(u64, usize, usize)> {
    let mut reader = BufReader::new(File::open(path).ok()?);
    let mut header = None;
    let (mut line, mut start, mut fields) = (1u64, 1u64, 1usize);
    let (mut quoted, mut empty) = (false, true);
    let mut chunk = Vec::with_capacity(1 << 16);
    loop {
        chunk.clear();
        let n = reader.by_ref().take(1 << 16).read_to_end(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        for &b in &chunk {
            match b {
                b'"' => quoted = !quoted,
                b',' if !quoted => fields += 1,
                b'\n' => {
                    line += 1;
                    if quoted {
                        continue;
                    }
                    match header {
                        None => header = Some(fields),
                        Some(h) if fields != h && !empty => return Some((start, fields, h)),
                        Some(_) => {}
                    }
                    (start, fields, empty) = (line, 1, true);
                    continue;
                }
                b'\r' => continue,
                _ => {}
            }
            empty = false;
        }
    }
    match header {
        Some(h) if fields != h && !empty => Some((start, fields, h)),
        _ => None,
    }
}

/// The line (from 1) and byte (from 0) of the first bytes of `path` that are not UTF-8.
fn first_non_utf8(path: &Path) -> Option<(u64, usize)> {
    let mut lines = BufReader::new(File::open(path).ok()?).split(b'\n');
    let mut number = 0;
    lines.find_map(|line| {
        number += 1;
        let line = line.ok()?;
        std::str::from_utf8(&line)
            .err()
            .map(|e| (number, e.valid_up_to()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ragged(text: &str) -> Option<(u64, usize, usize)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("list.csv");
        std::fs::write(&path, text).expect("write");
        first_ragged(&path)
    }

    #[test]
    fn the_first_record_of_other_fields_than_the_header_is_found_by_its_line() {
        assert_eq!(ragged("a,b\n1,2\n3,4\n"), None);
        assert_eq!(ragged("\u{feff}a,b\r\n1,2\r\n\r\n"), None);
        assert_eq!(ragged("a,b\n1,2\n3,4,5\n"), Some((3, 3, 2)));
        assert_eq!(ragged("a,b\n1\n"), Some((2, 1, 2)));
        assert_eq!(ragged("a,b\n1,2\n3,4,5"), Some((3, 3, 2)));
        // Quoted commas, quotes and line ends are inside one field; the line is where the
        // record starts.
        assert_eq!(
            ragged("a,b\n\"x,\"\"y\"\"\nz\",2\n3,4,5\n"),
            Some((4, 3, 2))
        );
        assert_eq!(ragged("a,b\n\"x\ny\",2,9\n"), Some((2, 3, 2)));
    }
}
