//! Query results as downloads. CSV, NDJSON and Parquet are encoded batch by batch while the
//! query runs, with no row cap: a client that reads slowly slows the query (a few chunks wait
//! for it, no more), and the download stops at the query's time limit or at the export's byte
//! limit by failing, so what arrives is either the whole result or a broken download, never a
//! file that looks whole but is cut. JSON is the API's answer, capped as every answer is.

use super::QueryError;
use crate::model::QueryResult;
use bytes::Bytes;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::arrow::json::writer::LineDelimited;
use deltalake::arrow::json::{Writer as JsonWriter, WriterBuilder};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;

/// How a query's result is downloaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportFormat {
    /// A header of column names, then one line per row (NULL as empty); streamed.
    #[default]
    Csv,
    /// The result as the API answers it, up to the row cap.
    Json,
    /// One JSON object per row and line; streamed.
    Ndjson,
    /// A Parquet file with the result's own column types; streamed.
    Parquet,
}

/// A query's result, as a download.
pub struct Export {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its file name.
    pub file_name: String,
    /// Its bytes.
    pub body: ExportBody,
}

/// The bytes of a download: whole, or in chunks as the query runs.
pub enum ExportBody {
    /// The whole file.
    Whole(Vec<u8>),
    /// Chunks as they are encoded; an error ends the download unfinished.
    Streamed(mpsc::Receiver<Result<Bytes, QueryError>>),
}

impl ExportFormat {
    /// Every format, as `parse` reads it.
    pub const NAMES: &'static str = "csv, json, ndjson or parquet";

    /// `csv`, `json`, `ndjson` or `parquet`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "csv" => Some(ExportFormat::Csv),
            "json" => Some(ExportFormat::Json),
            "ndjson" => Some(ExportFormat::Ndjson),
            "parquet" => Some(ExportFormat::Parquet),
            _ => None,
        }
    }

    pub(super) fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Parquet => "parquet",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Parquet => "application/vnd.apache.parquet",
        }
    }

    pub(super) fn download(self, body: ExportBody) -> Export {
        Export {
            content_type: self.content_type(),
            file_name: format!("lakepulse-query.{}", self.extension()),
            body,
        }
    }

    /// `result` as the API's JSON answer, whole.
    pub(super) fn whole(self, result: &QueryResult) -> Result<Export, QueryError> {
        let json = serde_json::to_vec(result)
            .map_err(|e| QueryError::Export(self.extension(), e.to_string()))?;
        Ok(self.download(ExportBody::Whole(json)))
    }
}

/// Writes batches in one of the streamed formats; each call hands back the bytes ready.
pub(super) enum Encoder {
    Csv {
        /// Which columns hold text, the cells a spreadsheet might run.
        text_columns: Vec<bool>,
        /// The header, until the first batch takes it along.
        header: Vec<u8>,
    },
    Ndjson(JsonWriter<Vec<u8>, LineDelimited>),
    Parquet(Box<ArrowWriter<Vec<u8>>>),
}

/// Rows of a Parquet row group: an export holds about one group in memory at a time.
const PARQUET_GROUP_ROWS: usize = 64 * 1024;

impl Encoder {
    pub(super) fn new(format: ExportFormat, schema: &SchemaRef) -> Result<Self, QueryError> {
        let failed = |e: String| QueryError::Export(format.extension(), e);
        match format {
            ExportFormat::Json => Err(failed("the JSON answer is written whole".into())),
            ExportFormat::Csv => {
                let mut header = csv::Writer::from_writer(Vec::new());
                header
                    .write_record(
                        schema
                            .fields()
                            .iter()
                            .map(|f| inert_in_a_spreadsheet(f.name())),
                    )
                    .map_err(|e| failed(e.to_string()))?;
                Ok(Encoder::Csv {
                    text_columns: schema
                        .fields()
                        .iter()
                        .map(|f| {
                            matches!(
                                f.data_type(),
                                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                            )
                        })
                        .collect(),
                    header: header.into_inner().map_err(|e| failed(e.to_string()))?,
                })
            }
            ExportFormat::Ndjson => Ok(Encoder::Ndjson(
                WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, LineDelimited>(Vec::new()),
            )),
            ExportFormat::Parquet => {
                let properties = WriterProperties::builder()
                    .set_max_row_group_row_count(Some(PARQUET_GROUP_ROWS))
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))
                    .map(|writer| Encoder::Parquet(Box::new(writer)))
                    .map_err(|e| failed(e.to_string()))
            }
        }
    }

    fn format(&self) -> &'static str {
        match self {
            Encoder::Csv { .. } => "csv",
            Encoder::Ndjson(_) => "ndjson",
            Encoder::Parquet(_) => "parquet",
        }
    }

    /// Encodes `batch`; the bytes ready to send (a Parquet file's come a row group at a time).
    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<Bytes, QueryError> {
        let format = self.format();
        let failed = |e: String| QueryError::Export(format, e);
        match self {
            Encoder::Csv {
                text_columns,
                header,
            } => {
                let options = FormatOptions::default().with_null("");
                let cells = batch
                    .columns()
                    .iter()
                    .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| failed(e.to_string()))?;
                let mut rows = csv::Writer::from_writer(std::mem::take(header));
                let mut record = Vec::with_capacity(cells.len());
                for row in 0..batch.num_rows() {
                    record.clear();
                    for (cell, text) in cells.iter().zip(text_columns.iter()) {
                        let value = cell.value(row).to_string();
                        record.push(match text {
                            true => inert_in_a_spreadsheet(&value),
                            false => value,
                        });
                    }
                    rows.write_record(&record)
                        .map_err(|e| failed(e.to_string()))?;
                }
                Ok(rows.into_inner().map_err(|e| failed(e.to_string()))?.into())
            }
            Encoder::Ndjson(writer) => {
                writer.write(batch).map_err(|e| failed(e.to_string()))?;
                Ok(std::mem::take(writer.get_mut()).into())
            }
            Encoder::Parquet(writer) => {
                writer.write(batch).map_err(|e| failed(e.to_string()))?;
                Ok(std::mem::take(writer.inner_mut()).into())
            }
        }
    }

    /// The bytes that end the file: the header of an empty CSV, a Parquet file's footer.
    pub(super) fn finish(self) -> Result<Bytes, QueryError> {
        let format = self.format();
        let failed = |e: String| QueryError::Export(format, e);
        match self {
            Encoder::Csv { header, .. } => Ok(header.into()),
            Encoder::Ndjson(mut writer) => {
                writer.finish().map_err(|e| failed(e.to_string()))?;
                Ok(writer.into_inner().into())
            }
            Encoder::Parquet(writer) => writer
                .into_inner()
                .map(Bytes::from)
                .map_err(|e| failed(e.to_string())),
        }
    }
}

/// Text a spreadsheet would run as a formula (a logged path or user agent such as
/// `=HYPERLINK(...)` is producer-controlled) starts with a quote, as OWASP advises; numbers,
/// negative ones among them, are written as they are.
fn inert_in_a_spreadsheet(text: &str) -> String {
    match text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        true => format!("'{text}"),
        false => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "endpoint",
                Arc::new(StringArray::from(vec![
                    Some("=HYPERLINK(\"http://evil.example\")"),
                    Some("@SUM(A1)"),
                    None,
                ])) as _,
            ),
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(-3), Some(1), None])) as _,
            ),
        ])
        .unwrap()
    }

    fn encode(format: ExportFormat, batches: &[RecordBatch]) -> Vec<u8> {
        let mut encoder = Encoder::new(format, &batches[0].schema()).unwrap();
        let mut out = Vec::new();
        for batch in batches {
            out.extend_from_slice(&encoder.write(batch).unwrap());
        }
        out.extend_from_slice(&encoder.finish().unwrap());
        out
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_are_made_inert_and_the_header_comes_once() {
        let csv = String::from_utf8(encode(ExportFormat::Csv, &[batch(), batch()])).unwrap();
        let rows = "\"'=HYPERLINK(\"\"http://evil.example\"\")\",-3\n'@SUM(A1),1\n,\n";
        assert_eq!(csv, format!("endpoint,n\n{rows}{rows}"));
        let empty = encode(ExportFormat::Csv, &[batch().slice(0, 0)]);
        assert_eq!(empty, b"endpoint,n\n");
    }

    #[test]
    fn ndjson_is_a_line_per_row_and_parquet_reads_back_row_for_row() {
        let ndjson = String::from_utf8(encode(ExportFormat::Ndjson, &[batch()])).unwrap();
        let lines: Vec<serde_json::Value> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            serde_json::json!({"endpoint": "@SUM(A1)", "n": 1})
        );
        assert_eq!(lines[2], serde_json::json!({"endpoint": null, "n": null}));

        let parquet = Bytes::from(encode(ExportFormat::Parquet, &[batch(), batch()]));
        let read: Vec<RecordBatch> =
            deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                parquet,
            )
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let rows: usize = read.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 6);
        assert_eq!(read[0].schema(), batch().schema());
    }
}
