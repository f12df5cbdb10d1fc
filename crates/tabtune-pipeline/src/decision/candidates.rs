//! The decision layer's candidates: complete trials with stored out-of-fold predictions.

use ndarray::Array2;
use tabtune_tune::{Direction, FrozenTrial, TrialState};

use crate::error::Result;
use crate::sweep::oof::OofStore;

/// The best `k` complete trials (best first) whose out-of-fold predictions are stored and
/// cover all `rows` rows, with those predictions.
pub fn top_oofs(
    trials: &[FrozenTrial],
    direction: Direction,
    oof: &OofStore,
    k: usize,
    rows: usize,
) -> Result<Vec<(u64, Array2<f64>)>> {
    let mut done: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.value.is_some())
        .collect();
    done.sort_by(|a, b| {
        direction
            .as_loss(a.value.unwrap_or(0.0))
            .total_cmp(&direction.as_loss(b.value.unwrap_or(0.0)))
    });
    let mut out = Vec::new();
    for t in done {
        if out.len() == k {
            break;
        }
        if let Some(m) = oof.get(t.number)?
            && m.nrows() == rows
        {
            out.push((t.number, m));
        }
    }
    Ok(out)
}
