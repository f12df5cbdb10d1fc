//! The dataset schema: typed columns with units, ranges and allowed levels, and the roles of the
//! target and id columns.

use serde::{Deserialize, Serialize};

/// The columns a data file must have, resolved from `[schema]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Every column except the id, in config order; includes the target.
    pub columns: Vec<ColumnSpec>,
    /// Name of the target column (a categorical column in `columns`).
    pub target: String,
    /// Name of the optional row-id column.
    pub id: Option<String>,
}

/// One column of the schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Column name as in the file header.
    pub name: String,
    /// Type and constraints.
    pub kind: ColumnKind,
    /// Free text for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Type and constraints of a column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ColumnKind {
    /// A finite number.
    Numeric {
        /// Unit of measure, for example `m` or `kg`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        /// Inclusive allowed range.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range: Option<(f64, f64)>,
    },
    /// One of a fixed list of levels.
    Categorical {
        /// Allowed levels; for the target, the classes in label-encoding order.
        levels: Vec<String>,
    },
}

impl ColumnSpec {
    /// Whether the column is numeric.
    pub fn is_numeric(&self) -> bool {
        matches!(self.kind, ColumnKind::Numeric { .. })
    }

    /// The levels of a categorical column, `None` for a numeric one.
    pub fn levels(&self) -> Option<&[String]> {
        match &self.kind {
            ColumnKind::Categorical { levels } => Some(levels),
            ColumnKind::Numeric { .. } => None,
        }
    }

    /// The unit of a numeric column.
    pub fn unit(&self) -> Option<&str> {
        match &self.kind {
            ColumnKind::Numeric { unit, .. } => unit.as_deref(),
            ColumnKind::Categorical { .. } => None,
        }
    }

    /// The allowed range of a numeric column.
    pub fn range(&self) -> Option<(f64, f64)> {
        match &self.kind {
            ColumnKind::Numeric { range, .. } => *range,
            ColumnKind::Categorical { .. } => None,
        }
    }

    /// What a valid value looks like, for error messages.
    pub fn expectation(&self) -> String {
        match &self.kind {
            ColumnKind::Numeric {
                range: Some((lo, hi)),
                unit,
            } => match unit {
                Some(u) => format!("a number in [{lo}, {hi}] {u}"),
                None => format!("a number in [{lo}, {hi}]"),
            },
            ColumnKind::Numeric { range: None, .. } => "a finite number".to_owned(),
            ColumnKind::Categorical { levels } => format!("one of {}", levels.join(", ")),
        }
    }
}

impl Schema {
    /// Checks what the accessors rely on, for a schema read from a file someone may have
    /// edited (a bundle, a preprocessor): unique column names, the id not among them, the
    /// target a categorical column with at least two distinct classes, every categorical column
    /// with distinct levels, every numeric range ordered. Returns what is wrong.
    pub fn check(&self) -> std::result::Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for c in &self.columns {
            if !names.insert(c.name.as_str()) {
                return Err(format!(
                    "column `{}` is listed twice",
                    crate::text::clip(&c.name)
                ));
            }
            match &c.kind {
                ColumnKind::Categorical { levels } => {
                    let distinct: std::collections::BTreeSet<&String> = levels.iter().collect();
                    if levels.is_empty() || distinct.len() != levels.len() {
                        return Err(format!(
                            "categorical column `{}` has {} level(s), {} distinct; expected at \
                             least one, none repeated",
                            crate::text::clip(&c.name),
                            levels.len(),
                            distinct.len()
                        ));
                    }
                }
                ColumnKind::Numeric {
                    range: Some((lo, hi)),
                    ..
                } if lo.is_nan() || hi.is_nan() || lo > hi => {
                    return Err(format!(
                        "numeric column `{}` has the range [{lo}, {hi}]; expected low ≤ high",
                        crate::text::clip(&c.name)
                    ));
                }
                ColumnKind::Numeric { .. } => {}
            }
        }
        if let Some(id) = &self.id
            && names.contains(id.as_str())
        {
            return Err(format!(
                "the id column `{}` is also a data column",
                crate::text::clip(id)
            ));
        }
        match self.column(&self.target).map(|c| &c.kind) {
            Some(ColumnKind::Categorical { levels }) if levels.len() >= 2 => Ok(()),
            Some(ColumnKind::Categorical { levels }) => Err(format!(
                "the target `{}` has {} class(es); expected at least 2",
                crate::text::clip(&self.target),
                levels.len()
            )),
            Some(ColumnKind::Numeric { .. }) => Err(format!(
                "the target `{}` is numeric; expected a categorical column (the classes)",
                crate::text::clip(&self.target)
            )),
            None => Err(format!(
                "the target `{}` is not one of the columns",
                crate::text::clip(&self.target)
            )),
        }
    }

    /// Looks a column up by name.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The feature columns: every column except the target, in config order.
    pub fn feature_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.name != self.target)
    }

    /// The target column.
    pub fn target_column(&self) -> &ColumnSpec {
        self.column(&self.target)
            .expect("resolve() checks that the target is a schema column")
    }

    /// The class names, in label-encoding order.
    pub fn classes(&self) -> &[String] {
        self.target_column()
            .levels()
            .expect("resolve() checks that the target is categorical")
    }
}
