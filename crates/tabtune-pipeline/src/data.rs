//! Loading the data an experiment runs on, owned once: validation against the schema, the
//! rejects file of quarantined rows, de-duplication of training rows (`transforms.dedup`) and
//! the k-fold split of the config's `[cv]`. Every path (train, sweep, select, export, run)
//! goes through here, so a library caller gets the same rows as the command line.

use std::path::{Path, PathBuf};

use tabtune_features::config::ExtraTrain;
use tabtune_features::io::{LoadOptions, Loaded, load_table_mapped};
use tabtune_features::{Config, KFold, OnInvalid, Schema, Table, TargetPresence, ValidationReport};

use crate::error::Result;
use crate::progress::Progress;

/// Which file to load and what to do with its invalid rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// The file (CSV or Parquet); `None`: the config's training file.
    pub path: Option<PathBuf>,
    /// Invalid rows stop the load ([`OnInvalid::Fail`]) or go to the rejects file.
    pub on_invalid: OnInvalid,
    /// The rejects file; `None`: `reports/rejects/<file stem>.rejects.csv`.
    pub rejects: Option<PathBuf>,
}

impl Input {
    /// `path`, failing on invalid rows.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::default()
        }
    }

    /// The file this input names under `config`.
    pub fn path_in(&self, config: &Config) -> PathBuf {
        self.path.clone().unwrap_or_else(|| config.train_path())
    }
}

/// Loads and validates `path` against `schema` with `input`'s policy, logging the counts.
pub fn load_file(
    path: &Path,
    input: &Input,
    schema: &Schema,
    target: TargetPresence,
    progress: &dyn Progress,
) -> Result<Loaded> {
    load_mapped(
        path,
        input,
        schema,
        target,
        &std::collections::BTreeMap::new(),
        progress,
    )
}

/// [`load_file`] of a file whose columns are renamed by `columns` (file name -> schema name).
fn load_mapped(
    path: &Path,
    input: &Input,
    schema: &Schema,
    target: TargetPresence,
    columns: &std::collections::BTreeMap<String, String>,
    progress: &dyn Progress,
) -> Result<Loaded> {
    let rejects = input.rejects.clone().unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("reports/rejects").join(format!("{stem}.rejects.csv"))
    });
    let options = LoadOptions {
        on_invalid: input.on_invalid,
        target,
        rejects: Some(rejects),
    };
    let spinner = progress.spinner(&format!("loading {}", path.display()));
    let loaded = load_table_mapped(path, schema, &options, columns);
    drop(spinner);
    let loaded = loaded?;
    if loaded.report.invalid_rows > 0 {
        tracing::warn!("{}", loaded.report.summary());
    } else {
        tracing::info!("{}", loaded.report.summary());
    }
    Ok(loaded)
}

/// Loads `input` (default: the config's training file) against the config's schema.
pub fn load(
    config: &Config,
    input: &Input,
    target: TargetPresence,
    progress: &dyn Progress,
) -> Result<Loaded> {
    load_file(
        &input.path_in(config),
        input,
        &config.schema,
        target,
        progress,
    )
}

/// The rows a model trains on: validated, labelled, de-duplicated when the config says so,
/// and the config's extra training files (`[[data.extra-train]]`), loaded and validated the
/// same way, kept apart so that each trial appends as many copies as it asks for.
#[derive(Clone, Debug)]
pub struct Training {
    /// The rows of the training file (the rows validated and scored on).
    pub table: Table,
    /// The file they came from.
    pub path: PathBuf,
    /// Rows read, invalid and duplicate rows of the file.
    pub report: ValidationReport,
    /// Duplicate rows dropped by `transforms.dedup`.
    pub deduplicated: usize,
    /// The extra training files with their rows (one copy each).
    pub extra: Vec<(ExtraTrain, Table)>,
}

impl Training {
    /// The training table with the extra files appended as training-only rows: `repeats`
    /// copies of each (`None`: each file's configured `repeats`). With no extra file, or 0
    /// copies, the training file's rows alone.
    pub fn table_with(&self, repeats: Option<usize>) -> Result<Table> {
        let mut table = self.table.clone();
        for (entry, extra) in &self.extra {
            let r = repeats.unwrap_or(entry.repeats);
            if r > 0 {
                table = table.with_train_only(extra, r)?;
            }
        }
        Ok(table)
    }

    /// Whether the config has extra training files.
    pub fn has_extra(&self) -> bool {
        !self.extra.is_empty()
    }
}

/// Loads the training rows of `input` (the target is required), drops duplicate rows when
/// `transforms.dedup` is on, and loads the config's extra training files with the same
/// invalid-row policy (each with its own rejects file). The extra files augment the config's
/// training file: an `input` naming another file trains on that file alone (a log line says
/// so).
pub fn load_training(config: &Config, input: &Input, progress: &dyn Progress) -> Result<Training> {
    let loaded = load(config, input, TargetPresence::Required, progress)?;
    let mut table = loaded.table;
    let mut deduplicated = 0;
    if config.transforms.dedup {
        let (deduped, removed) = table.dedup();
        deduplicated = removed.len();
        if deduplicated > 0 {
            tracing::info!("transforms.dedup: dropped {deduplicated} duplicate training rows");
        }
        table = deduped;
    }
    let mut extra = Vec::with_capacity(config.data.extra_train.len());
    let own_file = input
        .path
        .as_ref()
        .is_none_or(|p| same_file(p, &config.train_path()));
    if !own_file && !config.data.extra_train.is_empty() {
        tracing::info!(
            "[[data.extra-train]] not appended: {} is not the config's training file {}",
            input.path_in(config).display(),
            config.train_path().display()
        );
    }
    for entry in config.data.extra_train.iter().filter(|_| own_file) {
        let path = config.data_path(&entry.file);
        // Its rejects go beside the training file's (its own name), or to the default folder.
        let stem = path
            .file_stem()
            .map_or_else(|| entry.name.clone(), |s| s.to_string_lossy().into_owned());
        let policy = Input {
            path: Some(path.clone()),
            on_invalid: input.on_invalid,
            rejects: input
                .rejects
                .as_ref()
                .map(|r| r.with_file_name(format!("{stem}.rejects.csv"))),
        };
        let loaded = load_mapped(
            &path,
            &policy,
            &config.schema,
            TargetPresence::Required,
            &entry.columns,
            progress,
        )?;
        tracing::info!(
            "extra training data `{}`: {} rows of {} (training rows only, {} cop{} by default)",
            entry.name,
            loaded.table.n_rows(),
            path.display(),
            entry.repeats,
            if entry.repeats == 1 { "y" } else { "ies" }
        );
        extra.push((entry.clone(), loaded.table));
    }
    Ok(Training {
        table,
        path: input.path_in(config),
        report: loaded.report,
        deduplicated,
        extra,
    })
}

/// Whether `a` and `b` name the same file (the same path, or both resolve to one file).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

/// The config's k-fold split (`[cv]`), one repeat, with `folds` and `seed` overridden when
/// given.
pub fn kfold(config: &Config, folds: Option<usize>, seed: Option<u64>) -> KFold {
    KFold {
        folds: folds.unwrap_or(config.cv.folds),
        repeats: 1,
        seed: seed.unwrap_or(config.cv.seed),
        stratify: config.cv.stratify,
    }
}

/// Each row's validation fold under `kfold` (labels `y`, `n_classes` classes).
pub fn fold_of(kfold: KFold, y: &[u32], n_classes: usize) -> Result<Vec<usize>> {
    let mut fold_of = vec![0usize; y.len()];
    for f in kfold.split(y, n_classes)? {
        for &r in &f.valid {
            fold_of[r] = f.fold;
        }
    }
    Ok(fold_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn training_rows_are_deduplicated_and_folds_cover_every_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("train.csv");
        let csv = tabtune_test::synthetic_obesity_csv(120, 3);
        // The same data rows twice: the second copy is dropped (ids differ, so they are
        // duplicates only if the loader ignores the id, which it does).
        std::fs::write(&path, &csv).expect("write");
        let config = Config::load(&tabtune_test::default_config()).expect("config");
        let t = load_training(&config, &Input::file(&path), &Silent).expect("loads");
        assert_eq!(t.path, path);
        assert_eq!(t.table.n_rows() + t.deduplicated, t.report.rows_read);
        let k = kfold(&config, Some(4), Some(9));
        assert_eq!((k.folds, k.repeats, k.seed), (4, 1, 9));
        let y = t.table.target.clone().expect("labels");
        let folds = fold_of(k, &y, config.schema.classes().len()).expect("split");
        assert_eq!(folds.len(), y.len());
        assert!(folds.iter().all(|&f| f < 4));
        for f in 0..4 {
            assert!(folds.contains(&f), "fold {f} has rows");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let config = Config::load(&tabtune_test::default_config()).expect("config");
        let e = load_training(&config, &Input::file("/nonexistent/x.csv"), &Silent)
            .expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/x.csv"), "{e}");
        assert!(e.is_bad_input());
    }

    /// The default config reading `dir`, whose training file is `train.csv` and whose extra
    /// file is `extra.csv` with the UCI file's column names.
    fn config_in(dir: &Path) -> Config {
        let mut config = Config::load(&tabtune_test::default_config()).expect("config");
        config.data.dir = dir.to_owned();
        config.data.train = "train.csv".into();
        config.data.extra_train = vec![ExtraTrain {
            name: "uci".into(),
            file: "extra.csv".into(),
            columns: std::collections::BTreeMap::from([("Sex".to_owned(), "Gender".to_owned())]),
            repeats: 2,
        }];
        config
    }

    /// `n` synthetic rows without the id column, `Gender` renamed `Sex` (as another source
    /// might name it).
    fn extra_csv(n: usize, seed: u64) -> String {
        let csv = tabtune_test::synthetic_obesity_csv(n, seed);
        let mut lines = csv.lines();
        let header = lines
            .next()
            .expect("header")
            .replacen("id,", "", 1)
            .replace("Gender", "Sex");
        let mut out = header + "\n";
        for line in lines {
            out.push_str(line.split_once(',').expect("id").1);
            out.push('\n');
        }
        out
    }

    #[test]
    fn extra_rows_load_renamed_and_append_as_training_only_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("train.csv"),
            tabtune_test::synthetic_obesity_csv(100, 1),
        )
        .expect("write");
        std::fs::write(dir.path().join("extra.csv"), extra_csv(30, 2)).expect("write");
        let config = config_in(dir.path());
        let t = load_training(&config, &Input::default(), &Silent).expect("loads");
        assert_eq!(t.extra.len(), 1);
        assert_eq!(t.extra[0].1.n_rows(), 30);
        let table = t.table_with(None).expect("appended");
        assert_eq!(table.n_rows(), 100 + 2 * 30);
        assert_eq!(table.n_main(), 100, "the extra rows are training-only");
        assert_eq!(t.table_with(Some(0)).expect("none").n_rows(), 100);
        // Another --input trains on that file alone.
        let other = dir.path().join("other.csv");
        std::fs::write(&other, tabtune_test::synthetic_obesity_csv(80, 3)).expect("write");
        let t = load_training(&config, &Input::file(&other), &Silent).expect("loads");
        assert!(t.extra.is_empty());
    }

    #[test]
    fn bad_extra_rows_get_the_main_files_named_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("train.csv"),
            tabtune_test::synthetic_obesity_csv(100, 1),
        )
        .expect("write");
        let csv = extra_csv(30, 2);
        let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
        // Row 3: an age that is not a number; row 5: a level the schema does not know.
        let header: Vec<&str> = lines[0].split(',').collect();
        let age = header.iter().position(|h| *h == "Age").expect("Age");
        let calc = header.iter().position(|h| *h == "CALC").expect("CALC");
        for (row, col, value) in [(3, age, "abc"), (5, calc, "Daily")] {
            let mut cells: Vec<String> = lines[row].split(',').map(str::to_owned).collect();
            cells[col] = value.into();
            lines[row] = cells.join(",");
        }
        std::fs::write(dir.path().join("extra.csv"), lines.join("\n") + "\n").expect("write");
        let config = config_in(dir.path());
        let e = load_training(&config, &Input::default(), &Silent).expect_err("invalid rows");
        let m = e.to_string();
        assert!(e.is_bad_input(), "{m}");
        assert!(m.contains("extra.csv"), "names the file: {m}");
        let report = e.features().and_then(|f| match f {
            tabtune_features::FeaturesError::Invalid(r) => Some(r.clone()),
            _ => None,
        });
        let report = report.expect("a validation report");
        assert_eq!(report.invalid_rows, 2, "{report:?}");
        let text = format!("{:?}", report.issues);
        assert!(text.contains("Age") && text.contains("CALC"), "{text}");
        // Quarantined like the main file: the bad rows go to their own rejects file.
        let rejects_dir = tempfile::tempdir().expect("tempdir");
        let input = Input {
            on_invalid: OnInvalid::Quarantine,
            rejects: Some(rejects_dir.path().join("main.rejects.csv")),
            ..Input::default()
        };
        let t = load_training(&config, &input, &Silent).expect("quarantined");
        assert_eq!(t.extra[0].1.n_rows(), 28);
        let rejects = rejects_dir.path().join("extra.rejects.csv");
        let text = std::fs::read_to_string(&rejects).expect("the extra file's rejects");
        assert!(text.contains("abc") && text.contains("Daily"), "{text}");
    }
}
