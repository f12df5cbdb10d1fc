//! `Table`: validated, typed data in memory (one vector per column).

use std::collections::HashMap;
use std::hash::Hasher as _;
use std::path::PathBuf;

use crate::error::{FeaturesError, Result};

use serde::{Deserialize, Serialize};

use crate::hash::{FxBuildHasher, FxHasher};

/// Values of one column.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnValues {
    /// Finite numbers.
    Numeric(Vec<f64>),
    /// Level indices into `levels`.
    Categorical {
        /// The schema's levels.
        levels: Vec<String>,
        /// One index into `levels` per row.
        codes: Vec<u32>,
    },
}

/// One named column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Header name.
    pub name: String,
    /// The values.
    pub values: ColumnValues,
}

/// Validated data: the schema's feature columns (schema order, target excluded), the optional
/// ids and target, and for every row the row number it came from in its file.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The file the rows came from.
    pub source: PathBuf,
    /// Feature columns, in schema order.
    pub columns: Vec<Column>,
    /// Row ids, when the file has the id column.
    pub ids: Option<Vec<String>>,
    /// Target class index per row (into the schema's classes), when the file has the target.
    pub target: Option<Vec<u32>>,
    /// 1-based row number in the source file (the line number in a CSV), per row.
    pub rows: Vec<usize>,
    /// Rows at the end that only ever train models and are never validated or scored on:
    /// extra training data (`[[data.extra-train]]`) appended by [`Table::with_train_only`].
    /// 0 for the rows of a file.
    pub train_only: usize,
}

/// A row that repeats an earlier one (every column but the id equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    /// Row number of the repeat.
    pub row: usize,
    /// Row number of its first occurrence.
    pub first: usize,
}

impl Table {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A numeric column's values by name.
    pub fn numeric(&self, name: &str) -> Option<&[f64]> {
        match &self.column(name)?.values {
            ColumnValues::Numeric(v) => Some(v),
            ColumnValues::Categorical { .. } => None,
        }
    }

    /// A categorical column's levels and codes by name.
    pub fn categorical(&self, name: &str) -> Option<(&[String], &[u32])> {
        match &self.column(name)?.values {
            ColumnValues::Categorical { levels, codes } => Some((levels, codes)),
            ColumnValues::Numeric(_) => None,
        }
    }

    /// The rows at `indices` (0-based positions), in that order.
    #[must_use]
    pub fn select_rows(&self, indices: &[usize]) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    ColumnValues::Numeric(v) => {
                        ColumnValues::Numeric(indices.iter().map(|&i| v[i]).collect())
                    }
                    ColumnValues::Categorical { levels, codes } => ColumnValues::Categorical {
                        levels: levels.clone(),
                        codes: indices.iter().map(|&i| codes[i]).collect(),
                    },
                },
            })
            .collect();
        Table {
            source: self.source.clone(),
            columns,
            ids: self
                .ids
                .as_ref()
                .map(|ids| indices.iter().map(|&i| ids[i].clone()).collect()),
            target: self
                .target
                .as_ref()
                .map(|t| indices.iter().map(|&i| t[i]).collect()),
            rows: indices.iter().map(|&i| self.rows[i]).collect(),
            train_only: 0,
        }
    }

    /// Rows that are validated and scored on: all but the [`Table::train_only`] ones.
    pub fn n_main(&self) -> usize {
        self.n_rows() - self.train_only
    }

    /// This table's rows followed by `repeats` copies of `extra`'s rows, marked as
    /// training-only (see [`Table::train_only`]). `extra` must have the same columns (names,
    /// kinds, levels) and the target; ids it lacks are made up as `<extra file stem>:<row>`.
    pub fn with_train_only(&self, extra: &Table, repeats: usize) -> Result<Table> {
        let mismatch = |what: String| FeaturesError::BadFile {
            path: extra.source.clone(),
            message: format!(
                "cannot be appended to {} as training rows: {what}",
                self.source.display()
            ),
        };
        if self.columns.len() != extra.columns.len() {
            return Err(mismatch(format!(
                "{} columns, expected {}",
                extra.columns.len(),
                self.columns.len()
            )));
        }
        let (Some(target), Some(extra_target)) = (&self.target, &extra.target) else {
            return Err(mismatch("both need the target column".into()));
        };
        let mut columns = self.columns.clone();
        for (c, e) in columns.iter_mut().zip(&extra.columns) {
            if c.name != e.name {
                return Err(mismatch(format!(
                    "column `{}` where `{}` was expected",
                    e.name, c.name
                )));
            }
            match (&mut c.values, &e.values) {
                (ColumnValues::Numeric(v), ColumnValues::Numeric(x)) => {
                    for _ in 0..repeats {
                        v.extend_from_slice(x);
                    }
                }
                (
                    ColumnValues::Categorical { levels, codes },
                    ColumnValues::Categorical {
                        levels: extra_levels,
                        codes: x,
                    },
                ) if levels == extra_levels => {
                    for _ in 0..repeats {
                        codes.extend_from_slice(x);
                    }
                }
                _ => {
                    return Err(mismatch(format!(
                        "column `{}` has another kind or other levels",
                        c.name
                    )));
                }
            }
        }
        let stem = extra
            .source
            .file_stem()
            .map_or_else(|| "extra".into(), |s| s.to_string_lossy().into_owned());
        let n = extra.n_rows() * repeats;
        let ids = self.ids.as_ref().map(|ids| {
            let mut all = ids.clone();
            for _ in 0..repeats {
                match &extra.ids {
                    Some(e) => all.extend(e.iter().map(|id| format!("{stem}:{id}"))),
                    None => all.extend(extra.rows.iter().map(|r| format!("{stem}:{r}"))),
                }
            }
            all
        });
        let mut target = target.clone();
        let mut rows = self.rows.clone();
        for _ in 0..repeats {
            target.extend_from_slice(extra_target);
            rows.extend_from_slice(&extra.rows);
        }
        Ok(Table {
            source: self.source.clone(),
            columns,
            ids,
            target: Some(target),
            rows,
            train_only: self.train_only + n,
        })
    }

    /// Rows equal to an earlier row in every column but the id (numbers compared bit for bit,
    /// with -0.0 equal to 0.0).
    pub fn duplicates(&self) -> Vec<Duplicate> {
        // Hash every row without allocating, then confirm equal hashes cell by cell: `head`
        // maps a hash to the first row seen with it, `next` chains later distinct rows with
        // the same hash (true collisions, rare).
        let n = self.n_rows();
        let mut head: HashMap<u64, usize, FxBuildHasher> =
            HashMap::with_capacity_and_hasher(n, FxBuildHasher::default());
        let mut next: Vec<Option<usize>> = vec![None; n];
        let mut out = Vec::new();
        for i in 0..n {
            let hash = self.row_hash(i);
            let Some(&first) = head.get(&hash) else {
                head.insert(hash, i);
                continue;
            };
            let mut candidate = Some(first);
            let mut last = first;
            while let Some(j) = candidate {
                if self.rows_equal(i, j) {
                    break;
                }
                last = j;
                candidate = next[j];
            }
            match candidate {
                Some(j) => out.push(Duplicate {
                    row: self.rows[i],
                    first: self.rows[j],
                }),
                None => next[last] = Some(i),
            }
        }
        out
    }

    /// The table without the rows that repeat an earlier one, and the repeats removed.
    pub fn dedup(&self) -> (Table, Vec<Duplicate>) {
        let duplicates = self.duplicates();
        if duplicates.is_empty() {
            return (self.clone(), duplicates);
        }
        let dropped: std::collections::HashSet<usize> = duplicates.iter().map(|d| d.row).collect();
        let keep: Vec<usize> = (0..self.n_rows())
            .filter(|&i| !dropped.contains(&self.rows[i]))
            .collect();
        (self.select_rows(&keep), duplicates)
    }

    /// The bits a row is compared by, column by column (the id excluded).
    fn row_words(&self, i: usize) -> impl Iterator<Item = u64> + '_ {
        let cells = self.columns.iter().map(move |c| match &c.values {
            // -0.0 and 0.0 are the same value in a file; normalise before comparing bits.
            ColumnValues::Numeric(v) => (v[i] + 0.0).to_bits(),
            ColumnValues::Categorical { codes, .. } => u64::from(codes[i]),
        });
        cells.chain(self.target.as_ref().map(|t| u64::from(t[i])))
    }

    fn row_hash(&self, i: usize) -> u64 {
        let mut h = FxHasher::default();
        for w in self.row_words(i) {
            h.add(w);
        }
        h.finish()
    }

    fn rows_equal(&self, a: usize, b: usize) -> bool {
        self.row_words(a).eq(self.row_words(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            source: PathBuf::from("t.csv"),
            columns: vec![
                Column {
                    name: "x".into(),
                    values: ColumnValues::Numeric(vec![1.0, 2.0, 1.0]),
                },
                Column {
                    name: "c".into(),
                    values: ColumnValues::Categorical {
                        levels: vec!["a".into(), "b".into()],
                        codes: vec![0, 1, 0],
                    },
                },
            ],
            ids: Some(vec!["7".into(), "8".into(), "9".into()]),
            target: Some(vec![0, 0, 0]),
            rows: vec![2, 3, 4],
            train_only: 0,
        }
    }

    #[test]
    fn duplicates_ignore_the_id_and_name_both_rows() {
        let t = table();
        assert_eq!(t.duplicates(), vec![Duplicate { row: 4, first: 2 }]);
        let (d, removed) = t.dedup();
        assert_eq!(removed.len(), 1);
        assert_eq!(d.rows, vec![2, 3]);
        assert_eq!(d.ids, Some(vec!["7".to_owned(), "8".to_owned()]));
    }

    #[test]
    fn select_rows_keeps_every_part_aligned() {
        let t = table().select_rows(&[2, 0]);
        assert_eq!(t.numeric("x"), Some(&[1.0, 1.0][..]));
        assert_eq!(t.rows, vec![4, 2]);
        assert_eq!(
            t.ids.as_deref(),
            Some(&["9".to_owned(), "7".to_owned()][..])
        );
    }

    #[test]
    fn table_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Table>();
    }
}
