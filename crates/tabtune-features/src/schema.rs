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
