//! The output of a Parquet customer list: each row group of the list written again with its
//! result columns, the list's own column chunks copied page by page, as they are.
//!
//! Decoding every column of the list and encoding it again (dictionaries, statistics,
//! compression) took most of the time of a scoring and a window's worth of memory per column;
//! only the request columns need decoding, to score, and only the result columns need
//! encoding. Pages keep their encoding and compression, so the output reads as the list did.
//! Columns nested in lists have pages that do not say how many rows they hold; such lists go
//! through polars' own writer instead (see [`super::write_scored`]).
//!
//! What a copied page carries besides its values depends on the list's writer: DuckDB, and
//! pyarrow or polars without statistics, write pages without statistics; pyarrow with a page
//! index writes them without a null count; Spark's INT96 timestamps have statistics that
//! polars-parquet cannot combine (it panics). So the output has no column index (which needs
//! every page's complete statistics), and a copied column chunk keeps its pages' statistics
//! only when every page has complete ones of a type that combines: the output's column
//! statistics are then exact, or absent, never made of some pages' only.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use polars::io::parquet::metadata::FileMetadata;
use polars::prelude::*;
use polars_arrow::datatypes::ArrowDataType;
use polars_buffer::Buffer;
use polars_parquet::parquet::CowBuffer;
use polars_parquet::parquet::error::ParquetError;
use polars_parquet::parquet::metadata::ColumnChunkMetadata;
use polars_parquet::parquet::metadata::RowGroupMetadata;
use polars_parquet::parquet::page::{CompressedDataPage, DataPageHeader};
use polars_parquet::parquet::read::PageReader;
use polars_parquet::parquet::schema::types::PhysicalType;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, Compressor, DynIter, DynStreamingIterator, Encoding,
    FileWriter, ParquetType, SchemaDescriptor, StatisticsOptions, Version, WriteOptions, ZstdLevel,
    array_to_columns, fallible_streaming_iterator, to_parquet_type,
};

/// The pages of one column chunk, in order.
pub(super) type ColumnPages = Vec<CompressedPage>;

/// Whether the pages of every column of a file say how many rows they hold: true unless a
/// column is nested in a list (its version 1 pages count values, not rows).
pub(super) fn copyable(metadata: &FileMetadata) -> bool {
    metadata
        .schema()
        .columns()
        .iter()
        .all(|column| column.descriptor.max_rep_level == 0)
}

/// Reads the pages of every column chunk of `group` from the file at `path`, without
/// decompressing them.
pub(super) fn read_row_group(
    path: &Path,
    group: &RowGroupMetadata,
) -> PolarsResult<Vec<ColumnPages>> {
    let range = group.full_byte_range();
    let mut bytes = vec![0; usize::try_from(range.end - range.start).unwrap_or(usize::MAX)];
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(range.start))?;
    file.read_exact(&mut bytes)?;
    let bytes = Buffer::from(bytes);
    group
        .parquet_columns()
        .iter()
        .map(|column| {
            let chunk = column.byte_range();
            let start = usize::try_from(chunk.start - range.start).unwrap_or(usize::MAX);
            let end = usize::try_from(chunk.end - range.start).unwrap_or(usize::MAX);
            if start > end || end > bytes.len() {
                polars_bail!(ComputeError: "a column chunk lies outside its row group");
            }
            let pages = PageReader::new(
                Cursor::new(bytes.clone().sliced(start..end)),
                column,
                Vec::new(),
                end - start,
            );
            let mut pages = pages
                .map(|page| {
                    let mut page = page?;
                    if let CompressedPage::Data(data) = &mut page {
                        // A page of a column that is not nested holds one row per value.
                        data.num_rows = Some(match data.header() {
                            DataPageHeader::V1(_) => data.num_values(),
                            DataPageHeader::V2(header) => usize::try_from(header.num_rows)
                                .map_err(|_| polars_err!(ComputeError: "a page has a negative row count"))?,
                        });
                    }
                    Ok(page)
                })
                .collect::<PolarsResult<ColumnPages>>()?;
            if !statistics_combine(column, &pages) {
                pages = pages.into_iter().map(|p| without_statistics(column, p)).collect();
            }
            Ok(pages)
        })
        .collect()
}

/// Whether the statistics of every data page of a column chunk can be combined into exact
/// statistics of the chunk: each page has them with a null count, and a minimum and maximum
/// unless all its values are null; and polars-parquet combines their type (not INT96's).
pub(super) fn statistics_combine(column: &ColumnChunkMetadata, pages: &[CompressedPage]) -> bool {
    if column.descriptor().descriptor.primitive_type.physical_type == PhysicalType::Int96 {
        return false;
    }
    pages.iter().all(|page| {
        let CompressedPage::Data(data) = page else {
            return true;
        };
        let Some(Ok(statistics)) = data.statistics() else {
            return false;
        };
        let statistics = statistics.serialize();
        let bounded = statistics.min_value.is_some() && statistics.max_value.is_some();
        match statistics.null_count {
            Some(nulls) => bounded || usize::try_from(nulls).ok() == Some(data.num_values()),
            None => false,
        }
    })
}

/// `page` without statistics (a data page's header without them; other pages as they are).
fn without_statistics(column: &ColumnChunkMetadata, page: CompressedPage) -> CompressedPage {
    let CompressedPage::Data(mut data) = page else {
        return page;
    };
    let mut header = data.header().clone();
    match &mut header {
        DataPageHeader::V1(header) => header.statistics = None,
        DataPageHeader::V2(header) => header.statistics = None,
    }
    let buffer = std::mem::replace(data.slice_mut(), CowBuffer::Owned(Vec::new()));
    let rows = data.num_rows().unwrap_or_else(|| data.num_values());
    CompressedPage::Data(CompressedDataPage::new(
        header,
        buffer,
        data.compression(),
        data.uncompressed_size(),
        column.descriptor().descriptor.clone(),
        rows,
    ))
}

/// How result columns are encoded: against their dictionaries (see [`super::results`]),
/// `detail` plain, zstd at level 1 (the results compress as well as at the default level, in
/// half the time), with statistics.
#[derive(Clone)]
pub(super) struct ResultEncoder {
    types: Vec<ParquetType>,
    options: WriteOptions,
}

impl ResultEncoder {
    /// Encodes and compresses the result columns of a window (any thread).
    pub(super) fn encode(&self, arrays: &[ArrayRef]) -> PolarsResult<Vec<ColumnPages>> {
        let mut encoded = Vec::with_capacity(arrays.len());
        for (array, parquet_type) in arrays.iter().zip(&self.types) {
            let encoding = match array.dtype() {
                ArrowDataType::Dictionary(..) => Encoding::RleDictionary,
                _ => Encoding::Plain,
            };
            for pages in array_to_columns(array, parquet_type.clone(), self.options, &[encoding])? {
                // The compressor takes parquet errors; the encoder's are polars' own.
                let pages = pages
                    .map(|page| page.map_err(|e| ParquetError::FeatureNotSupported(e.to_string())));
                let compressed =
                    Compressor::new_from_vec(pages, self.options.compression, Vec::new());
                encoded.push(compressed.collect::<Result<ColumnPages, _>>()?);
            }
        }
        Ok(encoded)
    }
}

/// Adds a window's pages of each result column to those of the windows before it in its row
/// group. A column chunk has one dictionary page, first: every window's is the same (the
/// dictionaries are fixed for the run), so only the first window's is kept.
pub(super) fn append(group: &mut Vec<ColumnPages>, window: Vec<ColumnPages>) {
    if group.is_empty() {
        *group = window;
        return;
    }
    for (column, pages) in group.iter_mut().zip(window) {
        column.extend(
            pages
                .into_iter()
                .filter(|page| !matches!(page, CompressedPage::Dict(_))),
        );
    }
}

/// A Parquet file of the list's columns and the result columns, written row group by row
/// group.
pub(super) struct PagedWriter<W: Write> {
    writer: FileWriter<W>,
    encoder: ResultEncoder,
}

impl<W: Write> PagedWriter<W> {
    /// A writer of the list's schema (from its footer) followed by `results`.
    pub(super) fn new(
        out: W,
        metadata: &FileMetadata,
        list: &ArrowSchema,
        results: &Schema,
    ) -> PolarsResult<Self> {
        let options = WriteOptions {
            statistics: StatisticsOptions::default(),
            version: Version::V1,
            compression: CompressionOptions::Zstd(ZstdLevel::try_new(1).ok()),
            data_page_size: None,
        };
        // No column index: it needs complete statistics on every page, which copied pages may
        // not have (see the module's documentation). The result columns keep theirs.
        let file_options = WriteOptions {
            statistics: StatisticsOptions::empty(),
            ..options
        };
        let mut arrow_schema = list.clone();
        let mut fields = metadata.schema().fields().to_vec();
        let mut types = Vec::with_capacity(results.len());
        for field in results.iter_fields() {
            let field = field.to_arrow(CompatLevel::newest());
            types.push(to_parquet_type(&field)?);
            arrow_schema.insert(field.name.clone(), field);
        }
        fields.extend(types.iter().cloned());
        let parquet_schema = SchemaDescriptor::new(metadata.schema().name().into(), fields);
        Ok(PagedWriter {
            writer: FileWriter::new_with_parquet_schema(
                out,
                arrow_schema,
                parquet_schema,
                file_options,
            ),
            encoder: ResultEncoder { types, options },
        })
    }

    pub(super) fn encoder(&self) -> ResultEncoder {
        self.encoder.clone()
    }

    /// Writes one row group of `rows` rows: the list's column chunks, then the results'.
    pub(super) fn write(&mut self, rows: u64, columns: &[ColumnPages]) -> PolarsResult<()> {
        let columns = DynIter::new(columns.iter().map(|pages| {
            Ok(DynStreamingIterator::new(
                fallible_streaming_iterator::convert(pages.iter().map(PolarsResult::Ok)),
            ))
        }));
        self.writer.write(rows, columns)
    }

    /// Writes the footer.
    pub(super) fn finish(mut self) -> PolarsResult<()> {
        self.writer.end(None).map(drop)
    }
}
