//! Test helpers shared by tabtune's test suites: where the workspace and the real datasets
//! are, and small synthetic datasets that look like the reference workload.
//!
//! Dev-only: no crate depends on this outside `[dev-dependencies]`.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// Environment variable naming the folder with the real datasets (CI: `../shared/data`).
pub const DATA_DIR_ENV: &str = "TABTUNE_DATA_DIR";

/// The workspace root: two levels above the manifest of the package under test. Read at run
/// time (`cargo test` sets `CARGO_MANIFEST_DIR` for every test process), because a compiled-in
/// path would go stale when a shared target dir serves checkouts in other folders.
pub fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .and_then(Path::parent)
        .expect("every package sits two levels below the workspace root (crates/<name>)")
        .to_owned()
}

/// The default config, `configs/obesity.toml`.
pub fn default_config() -> PathBuf {
    workspace_root().join("configs/obesity.toml")
}

/// The default config with every feature step of tabtune-features switched on: the twelve
/// engineered features, rounding of the five ordinal answers and Age quartile bins on top of its
/// unit conversion, log1p and scaling, and BMI in the EDA report. The default config ships the
/// raw columns (they train better on the reference workload); the tests of the feature steps,
/// and those whose synthetic class follows BMI, use this one. Written to `dir` as
/// `obesity-engineered.toml`; relative paths in it resolve as the default config's do.
pub fn engineered_config(dir: &Path) -> PathBuf {
    let path = dir.join("obesity-engineered.toml");
    std::fs::write(&path, engineered_config_text())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// The text of [`engineered_config`].
pub fn engineered_config_text() -> String {
    let default = default_config();
    let mut text = std::fs::read_to_string(&default)
        .unwrap_or_else(|e| panic!("reading {}: {e}", default.display()));
    for (from, to) in [
        (
            "enabled = []",
            r#"enabled = ["BMI", "BSA", "IBW", "DIFF_IBW", "BMR", "PAL", "TDEE", "SWC", "IS", "INMM", "EVEMM", "HH"]"#,
        ),
        (
            "round = []",
            r#"round = ["FCVC", "NCP", "CH2O", "FAF", "TUE"]"#,
        ),
        ("bins = []", r#"bins = [{ column = "Age", bins = 4 }]"#),
        (
            r#"columns = ["Age", "Height", "Weight", "FAF", "CH2O"]"#,
            r#"columns = ["Age", "Height", "Weight", "BMI", "FAF", "CH2O"]"#,
        ),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{} should hold `{from}` once (engineered_config rewrites it)",
            default.display()
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// The real dataset `file` in `TABTUNE_DATA_DIR` (a relative value is taken from the workspace
/// root, where `cargo test` is run). When the variable is unset or the file is missing, this
/// fails the test under `CI=true` and returns `None` (the caller skips, saying so) otherwise.
pub fn real_data(file: &str) -> Option<PathBuf> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let Some(dir) = std::env::var_os(DATA_DIR_ENV).map(PathBuf::from) else {
        assert!(
            !in_ci,
            "CI=true but {DATA_DIR_ENV} is not set: the real-data tests must run in CI"
        );
        eprintln!("SKIPPED: {DATA_DIR_ENV} is not set; real-data test for {file} not run");
        return None;
    };
    let dir = if dir.is_relative() {
        workspace_root().join(dir)
    } else {
        dir
    };
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    assert!(!in_ci, "CI=true but {} does not exist", path.display());
    eprintln!("SKIPPED: {} does not exist", path.display());
    None
}

/// The header of the reference workload's training file.
pub const OBESITY_HEADER: &str = "id,Gender,Age,Height,Weight,family_history_with_overweight,\
FAVC,FCVC,NCP,CAEC,SMOKE,CH2O,SCC,FAF,TUE,CALC,MTRANS,NObeyesdad";

/// `n` synthetic rows with the reference workload's columns, deterministic for a seed. Every
/// class gets rows; the values are plausible (the class follows BMI), not real people.
pub fn synthetic_obesity_csv(n: usize, seed: u64) -> String {
    const CLASSES: [&str; 7] = [
        "Insufficient_Weight",
        "Normal_Weight",
        "Overweight_Level_I",
        "Overweight_Level_II",
        "Obesity_Type_I",
        "Obesity_Type_II",
        "Obesity_Type_III",
    ];
    const FREQ: [&str; 3] = ["no", "Sometimes", "Frequently"];
    const TRANSPORT: [&str; 5] = [
        "Public_Transportation",
        "Automobile",
        "Walking",
        "Motorbike",
        "Bike",
    ];
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::from(OBESITY_HEADER);
    out.push('\n');
    for i in 0..n {
        let class = i % CLASSES.len();
        let male = next() < 0.5;
        let height = 1.5 + next() * 0.4;
        let bmi = 16.0 + class as f64 * 4.5 + next() * 3.0;
        let weight = bmi * height * height;
        let yes_no = |p: f64| if p < 0.5 { "no" } else { "yes" };
        let row = format!(
            "{i},{},{:.6},{height:.6},{weight:.6},{},{},{:.6},{:.6},{},{},{:.6},{},{:.6},{:.6},{},{},{}\n",
            if male { "Male" } else { "Female" },
            18.0 + next() * 40.0,
            yes_no(next()),
            yes_no(next()),
            1.0 + next() * 2.0,
            1.0 + next() * 3.0,
            FREQ[(next() * 3.0) as usize],
            yes_no(next() * 0.6),
            1.0 + next() * 2.0,
            yes_no(next() * 0.6),
            next() * 3.0,
            next() * 2.0,
            FREQ[(next() * 3.0) as usize],
            TRANSPORT[(next() * 5.0) as usize],
            CLASSES[class],
        );
        out.push_str(&row);
    }
    out
}

/// The python of the virtual environment `name` (`scripts/requirements-<name>.txt`), created on
/// first use by `scripts/py-env.sh` (CI provisions it up front in `.ci/run`). Interop tests use it
/// to read tabtune's files with the real Python packages; a failure to provision it fails the test
/// (never a silent skip).
pub fn python_env(name: &str) -> PathBuf {
    let script = workspace_root().join("scripts/py-env.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(name)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {name} failed ({}); see its output above",
        script.display(),
        out.status
    );
    let path = String::from_utf8(out.stdout).expect("py-env prints a UTF-8 path");
    PathBuf::from(path.trim())
}
