//! Loading a data file into a validated [`Table`].
//!
//! CSV is read with the `csv` crate as raw bytes so that every problem can be reported with its
//! exact line, column and value (including non-UTF-8 bytes); Parquet (feature `polars`) goes
//! through the same validator, with rows numbered from 1.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use crate::error::{FeaturesError, Result};
use crate::hash::FxBuildHasher;
use crate::schema::{ColumnKind, ColumnSpec, Schema};
use crate::table::{Column, ColumnValues, Table};
use crate::text::{self, clip};
use crate::validate::{Issue, IssueKind, OnInvalid, TargetPresence, ValidationReport};

/// How to load a file.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// What to do with invalid rows.
    pub on_invalid: OnInvalid,
    /// Whether the target column must be present.
    pub target: TargetPresence,
    /// Where rejected rows go with [`OnInvalid::Quarantine`]; default
    /// `<file stem>.rejects.csv` beside the input.
    pub rejects: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            on_invalid: OnInvalid::Fail,
            target: TargetPresence::Required,
            rejects: None,
        }
    }
}

/// A loaded file: the valid rows and the report on all rows.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The valid rows.
    pub table: Table,
    /// Counts, duplicates, problems.
    pub report: ValidationReport,
}

/// Loads and validates `path` (CSV, or Parquet with the `polars` feature) against `schema`.
///
/// File-level problems (empty file, header only, BOM, missing / extra / duplicate columns) are
/// always errors. Row-level problems fail the load under [`OnInvalid::Fail`]; under
/// [`OnInvalid::Quarantine`] the bad rows are written with a `reason` column to the rejects
/// file and the rest is returned. No row is dropped without being counted.
pub fn load_table(path: &Path, schema: &Schema, options: &LoadOptions) -> Result<Loaded> {
    load_table_mapped(path, schema, options, &BTreeMap::new())
}

/// [`load_table`] of a file whose columns have other names: `columns` maps a column of the
/// file to the schema's name for it (`{"Gender_" = "Gender"}`); unmapped columns keep their
/// names. A mapped column the file does not have is an error naming it and the file.
pub fn load_table_mapped(
    path: &Path,
    schema: &Schema,
    options: &LoadOptions,
    columns: &BTreeMap<String, String>,
) -> Result<Loaded> {
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if is_parquet {
        let (header, records) = read_parquet(path)?;
        let header = rename_header(path, &header, columns)?;
        let rows = records.len();
        let mut records = records.into_iter();
        let mut next = |buf: &mut ByteRecord| {
            Ok(records.next().map(|(line, record)| {
                *buf = record;
                line
            }))
        };
        return validate_records(path, schema, options, &header, rows, &mut next);
    }

    let mut bytes = std::fs::read(path)
        .map_err(|e| FeaturesError::bad_file(path, format!("cannot read the input file: {e}")))?;
    // Excel's "CSV UTF-8" starts with a byte-order mark; pandas and polars skip it, so do we
    // (and say so in the report and the log).
    let bom = bytes.starts_with(UTF8_BOM);
    if bom {
        bytes.drain(..UTF8_BOM.len());
        tracing::info!("{}: {BOM_NOTE}", path.display());
    }
    check_encoding(path, &bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut lines = LineCounter::default();
    // Records are validated as they are read (no copy of the file's rows is kept).
    let mut next = |buf: &mut ByteRecord| match reader.read_byte_record(buf) {
        Ok(false) => Ok(None),
        Ok(true) => Ok(Some(
            lines.line_at(&bytes, buf.position().map_or(0, |p| p.byte() as usize)),
        )),
        Err(e) => {
            let line = e.position().map_or(0, |p| p.line() as usize);
            Err(FeaturesError::bad_file(
                path,
                format!("row {line}: cannot be read as CSV: {e}"),
            ))
        }
    };
    let mut header = ByteRecord::new();
    next(&mut header)?;
    let header = rename_header(path, &header, columns)?;
    let mut loaded = validate_records(
        path,
        schema,
        options,
        &header,
        bytecount(&bytes, b'\n'),
        &mut next,
    )?;
    loaded.report.blank_lines = lines.finish(&bytes);
    if bom {
        loaded.report.notes.push(BOM_NOTE.to_owned());
    }
    Ok(loaded)
}

/// The header with the `columns` mapping applied (file name -> schema name).
fn rename_header(
    path: &Path,
    header: &ByteRecord,
    columns: &BTreeMap<String, String>,
) -> Result<ByteRecord> {
    if columns.is_empty() {
        return Ok(header.clone());
    }
    let names: Vec<String> = header
        .iter()
        .map(|f| String::from_utf8_lossy(f).trim().to_owned())
        .collect();
    for from in columns.keys() {
        if !names.contains(from) {
            return Err(FeaturesError::bad_file(
                path,
                format!(
                    "the column mapping renames `{from}`, which is not a column of this file (it has: {})",
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(names
        .iter()
        .map(|n| columns.get(n).unwrap_or(n).as_bytes().to_vec())
        .collect())
}

/// A source of records: fills the buffer and returns its row number, `None` at the end.
type NextRecord<'a> = dyn FnMut(&mut ByteRecord) -> Result<Option<usize>> + 'a;

#[cfg(feature = "polars")]
fn read_parquet(path: &Path) -> Result<(ByteRecord, Vec<(usize, ByteRecord)>)> {
    super::parquet::read_as_records(path)
}

#[cfg(not(feature = "polars"))]
fn read_parquet(path: &Path) -> Result<(ByteRecord, Vec<(usize, ByteRecord)>)> {
    Err(FeaturesError::bad_file(
        path,
        "Parquet input needs tabtune-features' `polars` feature; this build reads CSV only",
    ))
}

/// The UTF-8 byte-order mark Excel and Notepad write at the start of "UTF-8 with BOM" files.
const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// The note a report carries when the file started with a UTF-8 byte-order mark.
pub const BOM_NOTE: &str = "the file starts with a UTF-8 byte-order mark (BOM, as Excel writes \
                            \"CSV UTF-8\"); it was skipped";

/// File-level checks before parsing (the UTF-8 byte-order mark is already stripped): UTF-16
/// byte-order marks and emptiness.
fn check_encoding(path: &Path, bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(FeaturesError::bad_file(
            path,
            "row 1, column 1: the file starts with a UTF-16 byte-order mark; expected UTF-8 text",
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FeaturesError::bad_file(
            path,
            "the file is empty; expected a header row and data rows",
        ));
    }
    Ok(())
}

/// Line numbers from byte offsets, and the blank lines between records. The `csv` crate's own
/// line numbers lag by one after CRLF line endings (a record's start offset can point at the
/// `\n` of the previous `\r\n`), so lines are counted here: 1 + the number of `\n` before the
/// record's first byte. The csv reader skips empty lines; they are found here so that they can
/// be reported (only the stretches with more than one `\n` are scanned line by line).
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: usize,
    blank: Vec<usize>,
}

impl LineCounter {
    /// The 1-based line of a record starting at `offset` (offsets only grow).
    fn line_at(&mut self, bytes: &[u8], offset: usize) -> usize {
        let mut start = offset.min(bytes.len());
        while start < bytes.len() && (bytes[start] == b'\n' || bytes[start] == b'\r') {
            start += 1;
        }
        if start > self.offset {
            let stretch = &bytes[self.offset..start];
            let count = bytecount(stretch, b'\n');
            if count > 1 {
                self.find_blank(stretch);
            }
            self.newlines += count;
            self.offset = start;
        }
        self.newlines + 1
    }

    /// Records the empty lines (`""` or `"\r"`) of a stretch that starts at a line start; the
    /// end of its last line does not count as an empty line after it.
    fn find_blank(&mut self, stretch: &[u8]) {
        let body = stretch.strip_suffix(b"\n").unwrap_or(stretch);
        for (k, line) in body.split(|&b| b == b'\n').enumerate() {
            if k > 0 && (line.is_empty() || line == b"\r") {
                self.blank.push(self.newlines + 1 + k);
            }
        }
    }

    /// The blank lines, after scanning the rest of the file.
    fn finish(mut self, bytes: &[u8]) -> Vec<usize> {
        let tail = &bytes[self.offset.min(bytes.len())..];
        self.find_blank(tail);
        self.blank
    }
}

/// How often `needle` occurs in `haystack`.
fn bytecount(haystack: &[u8], needle: u8) -> usize {
    haystack
        .iter()
        .fold(0, |n, &b| n + usize::from(b == needle))
}

/// Where each schema column sits in the file.
struct Layout<'a> {
    /// `(file field index, spec)` for the feature columns, in schema order.
    features: Vec<(usize, &'a ColumnSpec)>,
    target: Option<(usize, &'a ColumnSpec)>,
    id: Option<usize>,
}

fn layout<'a>(
    path: &Path,
    schema: &'a Schema,
    header: &ByteRecord,
    target: TargetPresence,
) -> Result<Layout<'a>> {
    let mut names = Vec::with_capacity(header.len());
    for (i, field) in header.iter().enumerate() {
        let name = std::str::from_utf8(field).map_err(|_| {
            FeaturesError::bad_file(
                path,
                format!(
                    "row 1 (header), column {}: name {:?} is not valid UTF-8; expected UTF-8 text",
                    i + 1,
                    quote_bytes(field)
                ),
            )
        })?;
        names.push(name);
    }
    let mut problems = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut repeats = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(first) = position.insert(name, i) {
            repeats.push(format!(
                "column {} `{}` repeats column {}",
                i + 1,
                clip(name),
                first + 1
            ));
            position.insert(name, first);
        }
    }
    if !repeats.is_empty() {
        problems.push(format!(
            "{} repeated column name(s): {}",
            repeats.len(),
            text::list(&repeats)
        ));
    }
    let find = |name: &str| position.get(name).copied();
    let mut features = Vec::new();
    let mut missing = Vec::new();
    for spec in schema.feature_columns() {
        match find(&spec.name) {
            Some(i) => features.push((i, spec)),
            None => missing.push(spec.name.as_str()),
        }
    }
    let target_spec = schema.target_column();
    let target_at = find(&schema.target).map(|i| (i, target_spec));
    if target_at.is_none() && target == TargetPresence::Required {
        missing.push(schema.target.as_str());
    }
    let id = schema.id.as_deref().and_then(find);
    if !missing.is_empty() {
        problems.push(format!("missing column(s): {}", missing.join(", ")));
    }
    let known = |n: &str| schema.column(n).is_some() || schema.id.as_deref() == Some(n);
    let extra: Vec<&str> = names.iter().copied().filter(|n| !known(n)).collect();
    if !extra.is_empty() {
        problems.push(format!(
            "{} unexpected column(s): {}",
            extra.len(),
            text::list(extra.iter().map(|n| if n.is_empty() {
                "(empty name)".to_owned()
            } else {
                format!("`{}`", clip(n))
            }))
        ));
    }
    if !problems.is_empty() {
        let mut expected: Vec<&str> = schema.id.iter().map(String::as_str).collect();
        expected.extend(schema.columns.iter().map(|c| c.name.as_str()));
        return Err(FeaturesError::bad_file(
            path,
            format!(
                "row 1 (header): {}; expected the columns {}",
                problems.join("; "),
                expected.join(", ")
            ),
        ));
    }
    Ok(Layout {
        features,
        target: target_at,
        id,
    })
}

/// Bytes as text for a message: valid UTF-8 as is, other bytes as `\xNN`; at most
/// [`text::MAX_QUOTED_BYTES`] of them, then the length in all.
fn quote_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(text::MAX_QUOTED_BYTES)];
    let mut s = escape(head);
    if head.len() < bytes.len() {
        let _ = write!(s, "… ({} bytes in all)", bytes.len());
    }
    s
}

/// Bytes as text for a message: valid UTF-8 as is, other bytes as `\xNN`.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02X}");
        }
    }
    s
}

/// Parsed value of one cell.
enum Cell {
    Number(f64),
    Level(u32),
}

fn check_cell(
    spec: &ColumnSpec,
    raw: &[u8],
) -> std::result::Result<Cell, (IssueKind, Option<String>)> {
    // Fast path: a categorical cell that is one of the levels (valid UTF-8 by construction).
    if let ColumnKind::Categorical { levels } = &spec.kind
        && let Some(p) = levels.iter().position(|l| l.as_bytes() == raw)
    {
        return Ok(Cell::Level(p as u32));
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err((IssueKind::NonUtf8, Some(quote_bytes(raw))));
    };
    if text.is_empty() {
        return Err((IssueKind::Empty, None));
    }
    match &spec.kind {
        ColumnKind::Numeric { range, .. } => {
            let v: f64 = text
                .parse()
                .map_err(|_| (IssueKind::Unparsable, Some(clip(text).into_owned())))?;
            if !v.is_finite() {
                return Err((IssueKind::NotFinite, Some(clip(text).into_owned())));
            }
            if let Some((lo, hi)) = range
                && (v < *lo || v > *hi)
            {
                return Err((IssueKind::OutOfRange, Some(clip(text).into_owned())));
            }
            Ok(Cell::Number(v))
        }
        ColumnKind::Categorical { .. } => {
            Err((IssueKind::UnknownLevel, Some(clip(text).into_owned())))
        }
    }
}

/// Checks an id cell (non-empty, UTF-8, unique) and remembers it.
fn check_id(
    raw: &[u8],
    line: usize,
    first_id: &mut HashMap<Vec<u8>, usize, FxBuildHasher>,
) -> std::result::Result<(), (IssueKind, Option<String>, String)> {
    if raw.is_empty() {
        return Err((IssueKind::Empty, None, "a non-empty, unique id".into()));
    }
    if std::str::from_utf8(raw).is_err() {
        return Err((
            IssueKind::NonUtf8,
            Some(quote_bytes(raw)),
            "UTF-8 text".into(),
        ));
    }
    if let Some(&first) = first_id.get(raw) {
        let value = clip(&String::from_utf8_lossy(raw)).into_owned();
        return Err((
            IssueKind::DuplicateId,
            Some(value),
            format!("a unique id (row {first} has the same id)"),
        ));
    }
    first_id.insert(raw.to_vec(), line);
    Ok(())
}

fn validate_records(
    path: &Path,
    schema: &Schema,
    options: &LoadOptions,
    header: &ByteRecord,
    expected_rows: usize,
    next: &mut NextRecord<'_>,
) -> Result<Loaded> {
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(FeaturesError::bad_file(
            path,
            "the file is empty; expected a header row and data rows",
        ));
    }
    let layout = layout(path, schema, header, options.target)?;
    let mut record = ByteRecord::new();
    let Some(mut line) = next(&mut record)? else {
        return Err(FeaturesError::bad_file(
            path,
            "the file has a header but no data rows; expected at least one data row",
        ));
    };
    let n = expected_rows;
    let mut report = ValidationReport {
        file: path.to_owned(),
        ..ValidationReport::default()
    };
    let mut values: Vec<ColumnValues> = layout
        .features
        .iter()
        .map(|(_, spec)| match &spec.kind {
            ColumnKind::Numeric { .. } => ColumnValues::Numeric(Vec::with_capacity(n)),
            ColumnKind::Categorical { levels } => ColumnValues::Categorical {
                levels: levels.clone(),
                codes: Vec::with_capacity(n),
            },
        })
        .collect();
    let mut target = layout.target.map(|_| Vec::with_capacity(n));
    let mut ids = layout.id.map(|_| Vec::with_capacity(n));
    let mut rows = Vec::with_capacity(n);
    let mut first_id: HashMap<Vec<u8>, usize, FxBuildHasher> = HashMap::default();
    let mut rejected: Vec<(usize, ByteRecord, String)> = Vec::new();
    let mut row_issues: Vec<Issue> = Vec::new();
    let mut cells: Vec<Cell> = Vec::with_capacity(layout.features.len());

    loop {
        report.rows_read += 1;
        row_issues.clear();
        cells.clear();
        let mut target_code = None;
        if record.len() == header.len() {
            for &(i, spec) in &layout.features {
                match check_cell(spec, &record[i]) {
                    Ok(cell) => cells.push(cell),
                    Err((kind, value)) => row_issues.push(Issue {
                        row: line,
                        column: Some(spec.name.clone()),
                        value,
                        expected: spec.expectation(),
                        kind,
                    }),
                }
            }
            if let Some((i, spec)) = layout.target {
                match check_cell(spec, &record[i]) {
                    Ok(Cell::Level(c)) => target_code = Some(c),
                    Ok(Cell::Number(_)) => unreachable!("the target is categorical"),
                    Err((kind, value)) => row_issues.push(Issue {
                        row: line,
                        column: Some(spec.name.clone()),
                        value,
                        expected: spec.expectation(),
                        kind,
                    }),
                }
            }
            if let Some(i) = layout.id
                && let Err((kind, value, expected)) = check_id(&record[i], line, &mut first_id)
            {
                row_issues.push(Issue {
                    row: line,
                    column: schema.id.clone(),
                    value,
                    expected,
                    kind,
                });
            }
        } else {
            row_issues.push(Issue {
                row: line,
                column: None,
                value: Some(format!("{} fields", record.len())),
                expected: format!("{} fields, as in the header", header.len()),
                kind: IssueKind::FieldCount,
            });
        }

        if row_issues.is_empty() {
            for (col, cell) in values.iter_mut().zip(cells.drain(..)) {
                match (col, cell) {
                    (ColumnValues::Numeric(v), Cell::Number(x)) => v.push(x),
                    (ColumnValues::Categorical { codes, .. }, Cell::Level(c)) => codes.push(c),
                    _ => unreachable!("cells follow the layout's kinds"),
                }
            }
            if let (Some(t), Some(code)) = (target.as_mut(), target_code) {
                t.push(code);
            }
            if let (Some(ids), Some(i)) = (ids.as_mut(), layout.id) {
                ids.push(String::from_utf8_lossy(&record[i]).into_owned());
            }
            rows.push(line);
        } else {
            report.invalid_rows += 1;
            let reason = row_issues
                .iter()
                .map(Issue::reason)
                .collect::<Vec<_>>()
                .join("; ");
            rejected.push((line, record.clone(), reason));
            for issue in row_issues.drain(..) {
                report.push(issue);
            }
        }
        match next(&mut record)? {
            Some(l) => line = l,
            None => break,
        }
    }

    report.valid_rows = rows.len();
    let columns = layout
        .features
        .iter()
        .zip(values)
        .map(|((_, spec), values)| Column {
            name: spec.name.clone(),
            values,
        })
        .collect();
    let table = Table {
        source: path.to_owned(),
        columns,
        ids,
        target,
        rows,
        train_only: 0,
    };
    let duplicates = table.duplicates();
    report.duplicate_rows = duplicates.len();
    report.duplicates = duplicates
        .into_iter()
        .take(ValidationReport::MAX_DUPLICATES)
        .collect();

    if report.invalid_rows > 0 {
        match options.on_invalid {
            OnInvalid::Fail => return Err(FeaturesError::Invalid(Box::new(report))),
            OnInvalid::Quarantine => {
                let rejects = options
                    .rejects
                    .clone()
                    .unwrap_or_else(|| default_rejects_path(path));
                write_rejects(&rejects, header, &rejected)?;
                report.rejects = Some(rejects);
            }
        }
    }
    if table.n_rows() == 0 {
        return Err(FeaturesError::bad_file(
            path,
            format!(
                "no valid rows left: all {} data rows are invalid",
                report.rows_read
            ),
        ));
    }
    Ok(Loaded { table, report })
}

/// `<stem>.rejects.csv` beside the input.
pub(crate) fn default_rejects_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.rejects.csv"))
}

fn write_rejects(
    path: &Path,
    header: &ByteRecord,
    rejected: &[(usize, ByteRecord, String)],
) -> Result<()> {
    super::write_atomic(path, |out| {
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
        let to_err = |e: csv::Error| FeaturesError::Write {
            path: path.to_owned(),
            message: e.to_string(),
        };
        // `row` and `reason` come first so they stay aligned even for rows with a wrong
        // number of fields; the original fields follow byte for byte.
        let mut head = ByteRecord::from(vec!["row", "reason"]);
        head.extend(header.iter());
        w.write_byte_record(&head).map_err(to_err)?;
        for (row, record, reason) in rejected {
            let mut r = ByteRecord::new();
            r.push_field(row.to_string().as_bytes());
            r.push_field(reason.as_bytes());
            r.extend(record.iter());
            w.write_byte_record(&r).map_err(to_err)?;
        }
        w.flush().map_err(|e| FeaturesError::io(path, e))
    })
}
