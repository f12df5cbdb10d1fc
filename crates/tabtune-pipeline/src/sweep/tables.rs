//! The training tables of a sweep's trials: the training file's rows with as many copies of
//! the extra training files as the trial asks for (`extra_repeats`), each with its own cache
//! of fold matrices and bins, built once by the first trial that needs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tabtune_features::{KFold, Table};
use tabtune_train::CvCache;

use crate::data::Training;
use crate::error::Result;

/// A trial's table and the cache its folds share with the other trials on the same table.
pub(crate) struct TrialTable {
    pub table: Table,
    pub cache: CvCache,
}

/// Tables by `extra_repeats` (`None`: the configured repeats).
pub(crate) struct TrialTables<'a> {
    training: &'a Training,
    kfold: KFold,
    cache_bytes: usize,
    built: Mutex<HashMap<Option<usize>, Arc<TrialTable>>>,
}

impl<'a> TrialTables<'a> {
    /// Tables of `training`'s rows split by `kfold`, each cache holding up to `cache_bytes`.
    pub fn new(training: &'a Training, kfold: KFold, cache_bytes: usize) -> Self {
        Self {
            training,
            kfold,
            cache_bytes,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The table with `repeats` copies of the extra files (built on first use).
    pub fn get(&self, repeats: Option<usize>) -> Result<Arc<TrialTable>> {
        // Without extra files every repeats value is the same table.
        let key = if self.training.has_extra() {
            repeats
        } else {
            None
        };
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = built.get(&key) {
            return Ok(Arc::clone(t));
        }
        let table = Arc::new(TrialTable {
            table: self.training.table_with(key)?,
            cache: CvCache::new(self.kfold, self.cache_bytes),
        });
        built.insert(key, Arc::clone(&table));
        Ok(table)
    }
}
