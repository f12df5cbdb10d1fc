//! Validation results: every problem with its file, row, column, value and what was expected.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::table::Duplicate;

/// What to do with rows that fail validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnInvalid {
    /// Stop with an error that lists the problems (the default).
    #[default]
    Fail,
    /// Write the bad rows, with a `reason` column, to a rejects file and go on with the rest.
    Quarantine,
}

/// Whether a file must carry the target column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetPresence {
    /// Training or labelled data: the target must be present.
    Required,
    /// Data to predict: the target may be present (then it is validated) or absent.
    Optional,
}

/// The kind of a row-level problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueKind {
    /// The row has more or fewer fields than the header.
    FieldCount,
    /// The cell is not valid UTF-8.
    NonUtf8,
    /// The cell is empty (or null in Parquet).
    Empty,
    /// The cell is not a number.
    Unparsable,
    /// The cell is NaN or infinite.
    NotFinite,
    /// The number is outside the schema's range.
    OutOfRange,
    /// The level is not one of the schema's levels.
    UnknownLevel,
    /// The id repeats an earlier row's id.
    DuplicateId,
}

/// One problem in one cell or row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// 1-based row number as an editor shows it (the header is row 1 in a CSV file).
    pub row: usize,
    /// The column, when the problem is in one cell.
    pub column: Option<String>,
    /// The offending value as found (non-UTF-8 bytes escaped).
    pub value: Option<String>,
    /// What a valid value looks like.
    pub expected: String,
    /// The kind of problem.
    pub kind: IssueKind,
}

impl Issue {
    /// The problem without its row number: `column C: value "v": expected X`.
    pub fn reason(&self) -> String {
        let detail = match (&self.value, self.kind) {
            (_, IssueKind::Empty) => format!("empty cell: expected {}", self.expected),
            (Some(v), _) => format!("value {v:?}: expected {}", self.expected),
            (None, _) => format!("expected {}", self.expected),
        };
        match &self.column {
            Some(c) => format!("column {c}: {detail}"),
            None => detail,
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = self.reason();
        if self.column.is_some() {
            write!(f, "row {}, {reason}", self.row)
        } else {
            write!(f, "row {}: {reason}", self.row)
        }
    }
}

/// The outcome of loading one file: counts, duplicates and the problems found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The file.
    pub file: PathBuf,
    /// Data rows read (blank lines excluded).
    pub rows_read: usize,
    /// Rows that passed validation.
    pub valid_rows: usize,
    /// Rows with at least one problem.
    pub invalid_rows: usize,
    /// Valid rows that repeat an earlier valid row (kept; counted here).
    pub duplicate_rows: usize,
    /// The first repeats, with the row each one repeats.
    pub duplicates: Vec<Duplicate>,
    /// Line numbers of blank lines that were skipped (not rows).
    pub blank_lines: Vec<usize>,
    /// The first problems found (at most [`ValidationReport::MAX_ISSUES`]).
    pub issues: Vec<Issue>,
    /// How many problems there were in all.
    pub issues_total: usize,
    /// Where the rejected rows went, with `--on-invalid quarantine`.
    pub rejects: Option<PathBuf>,
    /// Things worth knowing that are not problems (a UTF-8 byte-order mark that was skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ValidationReport {
    /// How many issues a report keeps (all are counted).
    pub const MAX_ISSUES: usize = 1000;
    /// How many duplicate pairs a report keeps (all are counted).
    pub const MAX_DUPLICATES: usize = 100;
    /// How many issues the text rendering shows.
    const SHOWN: usize = 20;

    pub(crate) fn push(&mut self, issue: Issue) {
        self.issues_total += 1;
        if self.issues.len() < Self::MAX_ISSUES {
            self.issues.push(issue);
        }
    }

    /// One line with the counts, for logs.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} rows read, {} valid, {} invalid, {} duplicate",
            self.file.display(),
            self.rows_read,
            self.valid_rows,
            self.invalid_rows,
            self.duplicate_rows
        );
        if !self.blank_lines.is_empty() {
            s.push_str(&format!(
                ", {} blank line(s) skipped",
                self.blank_lines.len()
            ));
        }
        if let Some(r) = &self.rejects {
            s.push_str(&format!("; rejected rows written to {}", r.display()));
        }
        for note in &self.notes {
            s.push_str(&format!("; {note}"));
        }
        s
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} of {} rows are invalid ({} problems)",
            self.file.display(),
            self.invalid_rows,
            self.rows_read,
            self.issues_total
        )?;
        for issue in self.issues.iter().take(Self::SHOWN) {
            writeln!(f, "  {}: {issue}", self.file.display())?;
        }
        if self.issues_total > Self::SHOWN {
            writeln!(f, "  ... and {} more", self.issues_total - Self::SHOWN)?;
        }
        write!(
            f,
            "Fix the rows above, or run with `--on-invalid quarantine` to set them aside in a \
             rejects file and go on with the valid rows."
        )
    }
}
