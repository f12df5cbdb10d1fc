//! Parquet through polars: input rows go through the same validator as CSV (cells as text),
//! output is one typed column per feature.

use std::path::Path;

use csv::ByteRecord;
use polars::prelude::*;

use crate::error::{FeaturesError, Result};
use crate::preprocess::FeatureMatrix;

/// Reads a Parquet file as a header and text records numbered from 1; nulls become empty
/// cells, which the validator reports.
pub(crate) fn read_as_records(path: &Path) -> Result<(ByteRecord, Vec<(usize, ByteRecord)>)> {
    let bad =
        |e: PolarsError| FeaturesError::bad_file(path, format!("cannot read as Parquet: {e}"));
    let file = std::fs::File::open(path).map_err(|e| FeaturesError::io(path, e))?;
    let df = ParquetReader::new(file).finish().map_err(bad)?;
    let header = ByteRecord::from(
        df.get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
    );
    let mut text_columns = Vec::with_capacity(df.width());
    for column in df.columns() {
        let s = column
            .as_materialized_series()
            .cast(&DataType::String)
            .map_err(bad)?;
        text_columns.push(s);
    }
    let mut records = Vec::with_capacity(df.height());
    let string_columns: Vec<&StringChunked> = text_columns
        .iter()
        .map(|s| s.str().map_err(bad))
        .collect::<Result<_>>()?;
    let mut iters: Vec<_> = string_columns.iter().map(|c| c.iter()).collect();
    for row in 0..df.height() {
        let mut record = ByteRecord::new();
        for it in &mut iters {
            record.push_field(it.next().flatten().unwrap_or("").as_bytes());
        }
        records.push((row + 1, record));
    }
    Ok((header, records))
}

pub(crate) fn write_matrix(
    path: &Path,
    m: &FeatureMatrix,
    id_name: &str,
    target_name: &str,
) -> Result<()> {
    let to_err = |e: PolarsError| FeaturesError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut columns: Vec<Column> = Vec::with_capacity(m.names.len() + 2);
    if let Some(ids) = &m.ids {
        columns.push(Column::new(id_name.into(), ids.clone()));
    }
    for (j, name) in m.names.iter().enumerate() {
        let values: Vec<f32> = m.values.column(j).to_vec();
        columns.push(Column::new(name.as_str().into(), values));
    }
    if let Some(t) = &m.target {
        let names: Vec<&str> = t.iter().map(|&l| m.classes[l as usize].as_str()).collect();
        columns.push(Column::new(target_name.into(), names));
    }
    let mut df = DataFrame::new(m.values.nrows(), columns).map_err(to_err)?;
    super::write_atomic(path, |out| {
        ParquetWriter::new(out)
            .finish(&mut df)
            .map(|_| ())
            .map_err(to_err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{LoadOptions, load_table};
    use crate::schema::{ColumnKind, ColumnSpec, Schema};
    use crate::validate::IssueKind;

    fn schema() -> Schema {
        Schema {
            columns: vec![
                ColumnSpec {
                    name: "x".into(),
                    kind: ColumnKind::Numeric {
                        unit: None,
                        range: Some((0.0, 10.0)),
                    },
                    description: None,
                },
                ColumnSpec {
                    name: "y".into(),
                    kind: ColumnKind::Categorical {
                        levels: vec!["a".into(), "b".into()],
                    },
                    description: None,
                },
            ],
            target: "y".into(),
            id: None,
        }
    }

    fn write(path: &Path, x: Vec<Option<f64>>, y: Vec<&str>) {
        let height = y.len();
        let mut df = DataFrame::new(
            height,
            vec![Column::new("x".into(), x), Column::new("y".into(), y)],
        )
        .expect("frame");
        let file = std::fs::File::create(path).expect("create");
        ParquetWriter::new(file)
            .finish(&mut df)
            .expect("write parquet");
    }

    #[test]
    fn parquet_input_is_validated_like_csv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.parquet");
        write(
            &path,
            vec![Some(1.5), Some(2.0), Some(0.25)],
            vec!["a", "b", "a"],
        );
        let loaded = load_table(&path, &schema(), &LoadOptions::default()).expect("valid");
        assert_eq!(loaded.table.numeric("x"), Some(&[1.5, 2.0, 0.25][..]));
        assert_eq!(loaded.table.target, Some(vec![0, 1, 0]));

        write(
            &path,
            vec![Some(1.0), None, Some(11.0)],
            vec!["a", "b", "c"],
        );
        let err = load_table(&path, &schema(), &LoadOptions::default()).expect_err("invalid");
        let crate::FeaturesError::Invalid(report) = err else {
            panic!("expected a report")
        };
        let found: Vec<(usize, IssueKind)> =
            report.issues.iter().map(|i| (i.row, i.kind)).collect();
        assert_eq!(
            found,
            vec![
                (2, IssueKind::Empty),
                (3, IssueKind::OutOfRange),
                (3, IssueKind::UnknownLevel)
            ]
        );
    }
}
