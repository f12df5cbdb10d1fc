//! The window of recent predictions the monitoring routes look at: a ring buffer of the last
//! `capacity` predicted rows (raw feature values, predicted class, probabilities, and the true
//! class once known).

use std::collections::{HashMap, VecDeque};

use ndarray::Array2;
use tabtune_features::{Column, ColumnKind, ColumnValues, Schema, Table};

use crate::predictor::Prediction;

/// One predicted row.
struct Recent {
    /// The server's prediction id (increasing from 1).
    id: u64,
    /// The record's own id field, when it had one.
    record_id: Option<String>,
    /// Per feature column in schema order: the number, or a categorical level's index.
    values: Box<[f64]>,
    /// Predicted class.
    label: u32,
    /// Class probabilities.
    proba: Box<[f64]>,
    /// True class, from the request or from feedback.
    truth: Option<u32>,
}

/// The last `capacity` predicted rows.
pub(crate) struct Window {
    capacity: usize,
    rows: VecDeque<Recent>,
    next_id: u64,
    /// Newest prediction id per record id, for feedback by record id.
    by_record: HashMap<String, u64>,
}

/// A copy of the newest rows of the window, oldest first.
pub(crate) struct WindowData {
    /// The rows' feature values (no target; `ids` = the prediction ids).
    pub table: Table,
    /// Predicted classes.
    pub labels: Vec<u32>,
    /// Probabilities, `[n_rows, n_classes]`.
    pub proba: Array2<f64>,
    /// True classes where known.
    pub truths: Vec<Option<u32>>,
}

impl Window {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            rows: VecDeque::with_capacity(capacity.min(1 << 16)),
            next_id: 1,
            by_record: HashMap::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Rows of the window with a known true class.
    pub(crate) fn labelled(&self) -> usize {
        self.rows.iter().filter(|r| r.truth.is_some()).count()
    }

    /// Records the predicted rows of `table` and returns their prediction ids (every row gets
    /// one; only the newest `capacity` stay in the window).
    pub(crate) fn push(
        &mut self,
        table: &Table,
        prediction: &Prediction,
        truths: &[Option<u32>],
    ) -> Vec<u64> {
        let n = table.n_rows();
        let first = self.next_id;
        self.next_id += n as u64;
        let ids: Vec<u64> = (first..self.next_id).collect();
        if self.capacity == 0 {
            return ids;
        }
        for i in n.saturating_sub(self.capacity)..n {
            let values: Box<[f64]> = table
                .columns
                .iter()
                .map(|c| match &c.values {
                    ColumnValues::Numeric(v) => v[i],
                    ColumnValues::Categorical { codes, .. } => f64::from(codes[i]),
                })
                .collect();
            if self.rows.len() == self.capacity
                && let Some(old) = self.rows.pop_front()
                && let Some(r) = old.record_id
                && self.by_record.get(&r) == Some(&old.id)
            {
                self.by_record.remove(&r);
            }
            let record_id = table.ids.as_ref().map(|ids| ids[i].clone());
            if let Some(r) = &record_id {
                self.by_record.insert(r.clone(), ids[i]);
            }
            self.rows.push_back(Recent {
                id: ids[i],
                record_id,
                values,
                label: prediction.labels[i],
                proba: prediction.proba.row(i).to_vec().into_boxed_slice(),
                truth: truths.get(i).copied().flatten(),
            });
        }
        ids
    }

    /// The position of a prediction id in the window.
    fn position(&self, id: u64) -> Option<usize> {
        let first = self.rows.front()?.id;
        let i = usize::try_from(id.checked_sub(first)?).ok()?;
        (i < self.rows.len() && self.rows[i].id == id).then_some(i)
    }

    /// Whether the prediction id is still in the window.
    pub(crate) fn has_prediction(&self, id: u64) -> bool {
        self.position(id).is_some()
    }

    /// The newest prediction id of a record id still in the window.
    pub(crate) fn prediction_of_record(&self, record_id: &str) -> Option<u64> {
        self.by_record
            .get(record_id)
            .copied()
            .filter(|&id| self.has_prediction(id))
    }

    /// Sets the true class of a prediction still in the window.
    pub(crate) fn set_truth(&mut self, id: u64, truth: u32) -> bool {
        match self.position(id) {
            Some(i) => {
                self.rows[i].truth = Some(truth);
                true
            }
            None => false,
        }
    }

    /// The newest `n` rows (fewer when the window holds fewer), oldest first.
    pub(crate) fn snapshot(&self, n: usize, schema: &Schema, n_classes: usize) -> WindowData {
        let start = self.rows.len().saturating_sub(n);
        let rows: Vec<&Recent> = self.rows.range(start..).collect();
        let columns = schema
            .feature_columns()
            .enumerate()
            .map(|(j, spec)| Column {
                name: spec.name.clone(),
                values: match &spec.kind {
                    ColumnKind::Numeric { .. } => {
                        ColumnValues::Numeric(rows.iter().map(|r| r.values[j]).collect())
                    }
                    ColumnKind::Categorical { levels } => ColumnValues::Categorical {
                        levels: levels.clone(),
                        codes: rows.iter().map(|r| r.values[j] as u32).collect(),
                    },
                },
            })
            .collect();
        let mut proba = Array2::zeros((rows.len(), n_classes));
        for (i, r) in rows.iter().enumerate() {
            for (k, p) in r.proba.iter().enumerate().take(n_classes) {
                proba[[i, k]] = *p;
            }
        }
        WindowData {
            table: Table {
                source: format!("the last {} requests' rows", rows.len()).into(),
                columns,
                ids: Some(rows.iter().map(|r| r.id.to_string()).collect()),
                target: None,
                rows: (1..=rows.len()).collect(),
                train_only: 0,
            },
            labels: rows.iter().map(|r| r.label).collect(),
            proba,
            truths: rows.iter().map(|r| r.truth).collect(),
        }
    }
}
