//! Every bad-input kind gets an error naming the file, row and column, and what was expected.

use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{FeaturesError, IssueKind, OnInvalid, TargetPresence};
use tabtune_test::{OBESITY_HEADER, synthetic_obesity_csv};

use crate::{config, name, write_file};

/// A valid file of 10 rows with line `line` (1-based, header = 1) replaced.
fn with_line(line: usize, replacement: &str) -> String {
    with_line_in(&synthetic_obesity_csv(10, 1), line, replacement)
}

/// `text` with line `line` (1-based) replaced.
fn with_line_in(text: &str, line: usize, replacement: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    replacement.clone_into(&mut lines[line - 1]);
    lines.join("\n") + "\n"
}

/// Row 3 of the synthetic file with one field replaced.
fn with_field(line: usize, column: &str, value: &str) -> String {
    let text = synthetic_obesity_csv(10, 1);
    let header: Vec<&str> = OBESITY_HEADER.split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == column)
        .expect("known column");
    let row = text.lines().nth(line - 1).expect("row exists");
    let mut fields: Vec<&str> = row.split(',').collect();
    fields[at] = value;
    with_line(line, &fields.join(","))
}

fn fail(contents: impl AsRef<[u8]>) -> (String, FeaturesError) {
    let (_dir, path) = write_file(contents, "bad.csv");
    let err = load_table(&path, &config().schema, &LoadOptions::default()).expect_err("must fail");
    assert!(err.is_bad_input(), "bad input maps to exit code 2: {err}");
    (name(&path), err)
}

/// The load fails with exactly one issue, of `kind`, at `row`/`column`, and the message says so.
fn one_issue(contents: &str, row: usize, column: &str, kind: IssueKind, expected: &str) {
    let (file, err) = fail(contents);
    let FeaturesError::Invalid(report) = &err else {
        panic!("expected an invalid-rows report, got {err}")
    };
    assert_eq!(report.invalid_rows, 1);
    assert_eq!(report.issues.len(), 1);
    let issue = &report.issues[0];
    assert_eq!(
        (issue.row, issue.column.as_deref(), issue.kind),
        (row, Some(column), kind)
    );
    let message = err.to_string();
    let want = format!("{file}: row {row}, column {column}");
    assert!(
        message.contains(&want),
        "message lacks `{want}`:\n{message}"
    );
    assert!(
        message.contains(expected),
        "message lacks `{expected}`:\n{message}"
    );
}

#[test]
fn unparsable_number() {
    one_issue(
        &with_field(4, "Age", "twenty"),
        4,
        "Age",
        IssueKind::Unparsable,
        "value \"twenty\": expected a number in [1, 120] years",
    );
}

#[test]
fn nan_and_infinity() {
    one_issue(
        &with_field(5, "Weight", "NaN"),
        5,
        "Weight",
        IssueKind::NotFinite,
        "value \"NaN\"",
    );
    one_issue(
        &with_field(5, "Weight", "inf"),
        5,
        "Weight",
        IssueKind::NotFinite,
        "value \"inf\"",
    );
}

#[test]
fn empty_cell() {
    one_issue(
        &with_field(2, "Height", ""),
        2,
        "Height",
        IssueKind::Empty,
        "empty cell: expected a number in [0.5, 2.5] m",
    );
    one_issue(
        &with_field(3, "MTRANS", ""),
        3,
        "MTRANS",
        IssueKind::Empty,
        "empty cell: expected one of Public_Transportation",
    );
}

#[test]
fn out_of_range() {
    one_issue(
        &with_field(6, "FAF", "3.5"),
        6,
        "FAF",
        IssueKind::OutOfRange,
        "value \"3.5\": expected a number in [0, 3]",
    );
}

#[test]
fn unknown_level() {
    one_issue(
        &with_field(7, "CALC", "Sometimez"),
        7,
        "CALC",
        IssueKind::UnknownLevel,
        "value \"Sometimez\": expected one of no, Sometimes, Frequently, Always",
    );
    one_issue(
        &with_field(3, "NObeyesdad", "Obese"),
        3,
        "NObeyesdad",
        IssueKind::UnknownLevel,
        "expected one of Insufficient_Weight",
    );
}

#[test]
fn non_utf8_cell() {
    let text = with_field(8, "Gender", "M\u{1}le");
    let bytes = text.replace('\u{1}', "\u{fffd}").into_bytes();
    // Put a raw Latin-1 byte (0xE9) where the replacement character was.
    let mut raw = Vec::new();
    let marker = "\u{fffd}".as_bytes();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker");
    raw.extend_from_slice(&bytes[..at]);
    raw.push(0xE9);
    raw.extend_from_slice(&bytes[at + marker.len()..]);
    let (file, err) = fail(raw);
    let FeaturesError::Invalid(report) = &err else {
        panic!("{err}")
    };
    assert_eq!(report.issues[0].kind, IssueKind::NonUtf8);
    let m = err.to_string();
    assert!(
        m.contains(&format!(
            "{file}: row 8, column Gender: value \"M\\\\xE9le\""
        )),
        "{m}"
    );
}

#[test]
fn wrong_number_of_fields() {
    let (file, err) = fail(with_line(5, "1,2,3"));
    let m = err.to_string();
    assert!(
        m.contains(&format!(
            "{file}: row 5: value \"3 fields\": expected 18 fields"
        )),
        "{m}"
    );
}

#[test]
fn duplicate_id() {
    let text = synthetic_obesity_csv(10, 1);
    let row3 = text.lines().nth(2).expect("row 3").to_owned();
    let id3 = row3.split(',').next().expect("id").to_owned();
    one_issue(
        &with_field(6, "id", &id3),
        6,
        "id",
        IssueKind::DuplicateId,
        "expected a unique id (row 3 has the same id)",
    );
}

#[test]
fn missing_extra_and_duplicate_columns() {
    let text = synthetic_obesity_csv(5, 2);
    let missing = text.replacen("FAVC,", "", 1);
    let (file, err) = fail(missing);
    let m = err.to_string();
    assert!(
        m.starts_with(&format!("{file}: row 1 (header): missing column(s): FAVC")),
        "{m}"
    );
    assert!(m.contains("expected the columns id, Gender, Age"), "{m}");

    let extra = text.replacen("NObeyesdad\n", "NObeyesdad,BMI\n", 1);
    let (_, err) = fail(extra);
    assert!(
        err.to_string().contains("unexpected column(s): `BMI`"),
        "{err}"
    );

    let duplicate = text.replacen("Weight,", "Age,", 1);
    let (_, err) = fail(duplicate);
    let m = err.to_string();
    assert!(
        m.contains("column 5 `Age` repeats column 3") && m.contains("missing column(s): Weight"),
        "{m}"
    );
}

#[test]
fn missing_target_is_an_error_only_when_required() {
    let text: String = synthetic_obesity_csv(5, 3)
        .lines()
        .map(|l| l.rsplit_once(',').expect("has fields").0.to_owned() + "\n")
        .collect();
    let (_dir, path) = write_file(&text, "test.csv");
    let schema = config().schema;
    let err = load_table(&path, &schema, &LoadOptions::default()).expect_err("target required");
    assert!(
        err.to_string().contains("missing column(s): NObeyesdad"),
        "{err}"
    );
    let options = LoadOptions {
        target: TargetPresence::Optional,
        ..LoadOptions::default()
    };
    let loaded = load_table(&path, &schema, &options).expect("target optional");
    assert_eq!(loaded.table.n_rows(), 5);
    assert!(loaded.table.target.is_none());
}

#[test]
fn empty_file_and_header_only() {
    let (file, err) = fail("");
    assert_eq!(
        err.to_string(),
        format!("{file}: the file is empty; expected a header row and data rows")
    );
    let (_, err) = fail("\n\r\n");
    assert!(err.to_string().contains("the file is empty"), "{err}");
    let (file, err) = fail(format!("{OBESITY_HEADER}\n"));
    assert_eq!(
        err.to_string(),
        format!("{file}: the file has a header but no data rows; expected at least one data row")
    );
}

#[test]
fn a_utf8_byte_order_mark_is_skipped_and_noted_utf16_is_refused() {
    let plain = synthetic_obesity_csv(3, 4);
    let mut with_bom = vec![0xEF, 0xBB, 0xBF];
    with_bom.extend_from_slice(plain.as_bytes());
    let (_dir, path) = write_file(&with_bom, "excel.csv");
    let (_dir2, plain_path) = write_file(&plain, "plain.csv");
    let schema = config().schema;
    let loaded = load_table(&path, &schema, &LoadOptions::default()).expect("Excel's UTF-8 CSV");
    let reference = load_table(&plain_path, &schema, &LoadOptions::default()).expect("plain");
    assert_eq!(loaded.table.columns, reference.table.columns);
    assert_eq!(
        loaded.table.ids, reference.table.ids,
        "the id column keeps its name"
    );
    assert_eq!(
        loaded.table.rows, reference.table.rows,
        "row numbers are unchanged"
    );
    assert_eq!(
        loaded.report.notes,
        vec![tabtune_features::io::BOM_NOTE.to_owned()]
    );
    assert!(
        loaded.report.summary().contains("byte-order mark"),
        "{}",
        loaded.report.summary()
    );
    assert!(reference.report.notes.is_empty());
    let (_, err) = fail([0xFF, 0xFE, b'i', 0]);
    assert!(err.to_string().contains("UTF-16"), "{err}");
}

#[test]
fn huge_headers_and_cells_give_short_messages_with_their_size() {
    // A million extra columns: the message lists the first few and counts the rest.
    let text = synthetic_obesity_csv(2, 4);
    let (header, body) = text.split_once('\n').expect("header");
    let mut wide = String::from(header);
    for i in 0..1_000_000 {
        wide.push_str(&format!(",x{i}"));
    }
    let zeros = ",0".repeat(1_000_000);
    let mut rows = String::new();
    for line in body.lines() {
        rows.push_str(line);
        rows.push_str(&zeros);
        rows.push('\n');
    }
    let (_, err) = fail(format!("{wide}\n{rows}"));
    let m = err.to_string();
    assert!(m.len() < 4_000, "{} bytes", m.len());
    assert!(
        m.contains("1000000 unexpected column(s): `x0`, `x1`") && m.contains("… and 999980 more"),
        "{m}"
    );
    // A 50 MB cell: quoted up to 200 bytes, with its length.
    let cell = "9".repeat(50 << 20) + "x";
    let (_, err) = fail(with_field(3, "Age", &cell));
    let m = err.to_string();
    assert!(m.len() < 4_000, "{} bytes", m.len());
    assert!(m.contains(&format!("({} bytes in all)", cell.len())), "{m}");
    let FeaturesError::Invalid(report) = &err else {
        panic!("expected an invalid-rows report, got {err}")
    };
    assert!(
        report.issues[0]
            .value
            .as_ref()
            .is_some_and(|v| v.len() < 300)
    );
}

#[test]
fn non_utf8_header() {
    let text = synthetic_obesity_csv(3, 5).replacen("Gender", "G\u{fffd}nder", 1);
    let bytes = text.into_bytes();
    let marker = "\u{fffd}".as_bytes();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker");
    let mut raw = bytes[..at].to_vec();
    raw.push(0xE9);
    raw.extend_from_slice(&bytes[at + marker.len()..]);
    let (file, err) = fail(raw);
    assert!(
        err.to_string().starts_with(&format!(
            "{file}: row 1 (header), column 2: name \"G\\\\xE9nder\" is not valid UTF-8"
        )),
        "{err}"
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = with_field(3, "Age", "x");
    let text = {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[6] = lines[6]
            .replacen("Male", "Mal", 1)
            .replacen("Female", "Femal", 1);
        lines.join("\n") + "\n"
    };
    let (_, err) = fail(text);
    let FeaturesError::Invalid(report) = err else {
        panic!("expected a report")
    };
    assert_eq!(report.invalid_rows, 2);
    assert_eq!(report.valid_rows, 8);
    let rows: Vec<usize> = report.issues.iter().map(|i| i.row).collect();
    assert_eq!(rows, vec![3, 7]);
}

#[test]
fn quarantine_writes_rejects_with_reasons_and_keeps_the_rest() {
    let text = with_field(4, "Age", "abc");
    let text = with_line_in(&text, 9, "1,2");
    let (dir, path) = write_file(&text, "train.csv");
    let rejects = dir.path().join("out/rejects.csv");
    let options = LoadOptions {
        on_invalid: OnInvalid::Quarantine,
        rejects: Some(rejects.clone()),
        ..LoadOptions::default()
    };
    let loaded = load_table(&path, &config().schema, &options).expect("quarantine goes on");
    assert_eq!(loaded.table.n_rows(), 8);
    assert_eq!(
        (
            loaded.report.rows_read,
            loaded.report.valid_rows,
            loaded.report.invalid_rows
        ),
        (10, 8, 2)
    );
    assert_eq!(loaded.report.rejects.as_deref(), Some(rejects.as_path()));
    let written = std::fs::read_to_string(&rejects).expect("rejects written");
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines[0], format!("row,reason,{OBESITY_HEADER}"));
    assert!(
        lines[1].starts_with(
            "4,\"column Age: value \"\"abc\"\": expected a number in [1, 120] years\","
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(text.lines().nth(3).expect("row 4")),
        "original row kept byte for byte"
    );
    assert!(
        lines[2]
            .starts_with("9,\"value \"\"2 fields\"\": expected 18 fields, as in the header\",1,2"),
        "{}",
        lines[2]
    );
    assert_eq!(lines.len(), 3);
}

#[test]
fn duplicates_and_blank_lines_are_counted_never_dropped() {
    let text = synthetic_obesity_csv(6, 6);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Row 7 repeats row 3 except for the id; then a blank line in the middle and at the end.
    let (_, rest) = lines[2].split_once(',').expect("fields");
    lines[6] = format!("99,{rest}");
    lines.insert(4, String::new());
    let text = lines.join("\r\n") + "\r\n\r\n";
    let (_dir, path) = write_file(&text, "dups.csv");
    let loaded = load_table(&path, &config().schema, &LoadOptions::default()).expect("valid");
    assert_eq!(loaded.table.n_rows(), 6, "the duplicate stays");
    assert_eq!(loaded.report.duplicate_rows, 1);
    assert_eq!(
        (
            loaded.report.duplicates[0].row,
            loaded.report.duplicates[0].first
        ),
        (8, 3)
    );
    assert_eq!(loaded.report.blank_lines, vec![5, 9]);
}
