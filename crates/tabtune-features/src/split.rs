//! Cross-validation splits: (repeated) k-fold, stratified by class, seeded.

use serde::{Deserialize, Serialize};

use crate::error::{FeaturesError, Result};
use crate::rng::SplitMix64;

/// One train/validation split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// Repeat number, from 0.
    pub repeat: usize,
    /// Fold number within the repeat, from 0.
    pub fold: usize,
    /// Training row positions, increasing.
    pub train: Vec<usize>,
    /// Validation row positions, increasing.
    pub valid: Vec<usize>,
}

/// (Repeated) k-fold splitting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KFold {
    /// Folds per repeat (≥ 2).
    pub folds: usize,
    /// Repeats (≥ 1), each with its own shuffle.
    pub repeats: usize,
    /// Seed; repeat `r` uses a generator derived from `seed` and `r`.
    pub seed: u64,
    /// Keep each class's share the same in every fold.
    pub stratify: bool,
}

impl KFold {
    /// Splits `n_classes`-class labels into `folds × repeats` folds. Every row is in exactly
    /// one validation set per repeat. With `stratify`, each class is shuffled and dealt round
    /// robin across the folds, continuing where the previous class stopped, so fold sizes differ
    /// by at most one; every class must have at least `folds` rows.
    pub fn split(&self, labels: &[u32], n_classes: usize) -> Result<Vec<Fold>> {
        self.split_impl(labels, n_classes, None)
    }

    /// [`split`](Self::split) for labels of the classes `classes` (label `i` is `classes[i]`):
    /// errors name the class by its label, not its number.
    pub fn split_named(&self, labels: &[u32], classes: &[String]) -> Result<Vec<Fold>> {
        self.split_impl(labels, classes.len(), Some(classes))
    }

    /// The folds of a table's rows: its validated rows ([`Table::n_main`]) are split as
    /// [`split`](Self::split) splits their labels, and its training-only rows (extra training
    /// data, [`Table::train_only`]) are added to every fold's training rows and to no
    /// validation rows. `labels` are the table's target.
    pub fn split_with_extra(
        &self,
        labels: &[u32],
        n_classes: usize,
        train_only: usize,
    ) -> Result<Vec<Fold>> {
        let n_main = labels.len().saturating_sub(train_only);
        let mut folds = self.split(&labels[..n_main], n_classes)?;
        for f in &mut folds {
            f.train.extend(n_main..labels.len());
        }
        Ok(folds)
    }

    fn split_impl(
        &self,
        labels: &[u32],
        n_classes: usize,
        classes: Option<&[String]>,
    ) -> Result<Vec<Fold>> {
        let err = |message: String| FeaturesError::Split {
            folds: self.folds,
            message,
        };
        if self.folds < 2 {
            return Err(err("at least 2 folds are needed".into()));
        }
        if self.repeats < 1 {
            return Err(err("at least 1 repeat is needed".into()));
        }
        if labels.len() < self.folds {
            return Err(err(format!("only {} rows", labels.len())));
        }
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
        for (i, &l) in labels.iter().enumerate() {
            let class = by_class.get_mut(l as usize).ok_or_else(|| {
                err(format!(
                    "label {l} at position {i} is not below {n_classes}"
                ))
            })?;
            class.push(i);
        }
        if self.stratify {
            for (c, rows) in by_class.iter().enumerate() {
                if !rows.is_empty() && rows.len() < self.folds {
                    let class = classes.and_then(|names| names.get(c)).map_or_else(
                        || format!("class {c}"),
                        |name| format!("class {:?}", crate::text::clip(name)),
                    );
                    return Err(err(format!(
                        "{class} has only {} rows; every class needs at least one row per fold",
                        rows.len()
                    )));
                }
            }
        }
        let mut out = Vec::with_capacity(self.folds * self.repeats);
        for repeat in 0..self.repeats {
            let mut rng =
                SplitMix64::new(self.seed ^ (repeat as u64).wrapping_mul(0xA076_1D64_78BD_642F));
            let mut assignment = vec![0usize; labels.len()];
            let groups: Vec<Vec<usize>> = if self.stratify {
                by_class.clone()
            } else {
                vec![(0..labels.len()).collect()]
            };
            let mut next = 0usize;
            for mut group in groups {
                rng.shuffle(&mut group);
                for i in group {
                    assignment[i] = next;
                    next = (next + 1) % self.folds;
                }
            }
            for fold in 0..self.folds {
                let (valid, train): (Vec<usize>, Vec<usize>) =
                    (0..labels.len()).partition(|&i| assignment[i] == fold);
                out.push(Fold {
                    repeat,
                    fold,
                    train,
                    valid,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u32> {
        // 30 of class 0, 20 of class 1, 10 of class 2.
        let mut l = vec![0; 30];
        l.extend(vec![1; 20]);
        l.extend(vec![2; 10]);
        l
    }

    #[test]
    fn stratified_folds_partition_rows_and_keep_class_shares() {
        let k = KFold {
            folds: 5,
            repeats: 2,
            seed: 42,
            stratify: true,
        };
        let folds = k.split(&labels(), 3).expect("valid split");
        assert_eq!(folds.len(), 10);
        for repeat in 0..2 {
            let mut seen = vec![0; 60];
            for f in folds.iter().filter(|f| f.repeat == repeat) {
                assert_eq!(f.valid.len(), 12);
                assert_eq!(f.train.len() + f.valid.len(), 60);
                for &i in &f.valid {
                    seen[i] += 1;
                }
                let count = |c: u32| f.valid.iter().filter(|&&i| labels()[i] == c).count();
                assert_eq!((count(0), count(1), count(2)), (6, 4, 2));
            }
            assert!(
                seen.iter().all(|&s| s == 1),
                "every row validated exactly once"
            );
        }
        assert_ne!(
            folds[0].valid, folds[5].valid,
            "repeats shuffle differently"
        );
    }

    #[test]
    fn same_seed_same_folds_other_seed_other_folds() {
        let a = KFold {
            folds: 3,
            repeats: 1,
            seed: 1,
            stratify: true,
        };
        let b = KFold { seed: 2, ..a };
        assert_eq!(
            a.split(&labels(), 3).expect("ok"),
            a.split(&labels(), 3).expect("ok")
        );
        assert_ne!(
            a.split(&labels(), 3).expect("ok"),
            b.split(&labels(), 3).expect("ok")
        );
    }

    #[test]
    fn plain_kfold_balances_sizes() {
        let k = KFold {
            folds: 7,
            repeats: 1,
            seed: 0,
            stratify: false,
        };
        let folds = k.split(&labels(), 3).expect("ok");
        let sizes: Vec<usize> = folds.iter().map(|f| f.valid.len()).collect();
        assert!(sizes.iter().max().expect("folds") - sizes.iter().min().expect("folds") <= 1);
    }

    #[test]
    fn errors_name_the_problem() {
        let k = KFold {
            folds: 11,
            repeats: 1,
            seed: 0,
            stratify: true,
        };
        let m = k
            .split(&labels(), 3)
            .expect_err("class 2 too small")
            .to_string();
        assert!(m.contains("class 2 has only 10 rows"), "{m}");
        let names: Vec<String> = ["Normal_Weight", "Obesity_Type_I", "Insufficient_Weight"]
            .map(String::from)
            .to_vec();
        let m = k
            .split_named(&labels(), &names)
            .expect_err("class 2 too small")
            .to_string();
        assert!(
            m.contains("class \"Insufficient_Weight\" has only 10 rows"),
            "{m}"
        );
        assert_eq!(
            k.split_named(&labels()[..0], &names).is_err(),
            k.split(&labels()[..0], 3).is_err()
        );
        let k = KFold { folds: 1, ..k };
        assert!(k.split(&labels(), 3).is_err());
        let k = KFold { folds: 2, ..k };
        let m = k.split(&[0, 5], 3).expect_err("bad label").to_string();
        assert!(m.contains("label 5"), "{m}");
    }

    #[test]
    fn extra_training_rows_never_reach_a_validation_fold() {
        let mut labels = labels();
        let n_main = labels.len();
        // 40 training-only rows of every class after the validated ones.
        labels.extend((0..40u32).map(|i| i % 3));
        let k = KFold {
            folds: 5,
            repeats: 2,
            seed: 11,
            stratify: true,
        };
        let folds = k.split_with_extra(&labels, 3, 40).expect("splits");
        // The validated rows are split exactly as without the extra rows.
        let plain = k.split(&labels[..n_main], 3).expect("splits");
        for (f, p) in folds.iter().zip(&plain) {
            assert_eq!(f.valid, p.valid);
            assert!(
                f.valid.iter().all(|&r| r < n_main),
                "an extra row in validation"
            );
            assert_eq!(&f.train[..p.train.len()], p.train.as_slice());
            assert_eq!(
                f.train[p.train.len()..],
                (n_main..labels.len()).collect::<Vec<_>>()
            );
        }
    }
}
