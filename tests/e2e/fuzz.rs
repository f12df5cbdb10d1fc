//! A seeded fuzz test over command-line flags and `--param` values: edge-case numbers, junk
//! text, huge sizes, unknown names, on `train`, `sweep`, `serve`, `run` and `export`. Every case
//! must end within its deadline with exit 0 or 2 (never a panic, a signal, or exit 1 for what is
//! the user's input), and a refused case prints one `error:` message of bounded size.

use std::path::Path;
use std::time::Duration;

use tabtune_test::synthetic_obesity_csv;

use crate::tabtune;

/// The seed: every run tries the same cases (`TABTUNE_FUZZ_SEED` tries others).
const SEED: u64 = 0x7AB7_0E5E_ED00_0017;

/// SplitMix64, the test's own generator (the cases must not change with the library's).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Values no flag or parameter should mishandle.
const EDGE: &[&str] = &[
    "",
    " ",
    "0",
    "-0",
    "-1",
    "1",
    "2",
    "0.5",
    "1.5",
    "-0.5",
    "1e309",
    "-1e309",
    "1e-400",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "abc",
    "+3",
    "0x10",
    "1,5",
    "1_000",
    "٣",
    "true",
    "none",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999",
    "=",
    "'",
    "\"",
];
/// Sizes that are valid numbers but far beyond any machine (memory, threads).
const HUGE: &[&str] = &["65537", "4294967296", "18446744073709551615", "1000000000"];

/// Per family: parameter names (a few aliases), and which take sizes that scale memory or
/// threads (those also get [`HUGE`] values; work counts such as rounds and epochs do not,
/// since a valid huge count is a long run, not a bug).
fn params(family: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match family {
        "gbdt-leafwise" | "gbdt-depthwise" | "gbdt-oblivious" => (
            &[
                "rounds",
                "learning_rate",
                "num_leaves",
                "max_depth",
                "lambda",
                "alpha",
                "min_child_weight",
                "min_data_in_leaf",
                "gamma",
                "subsample",
                "colsample_bytree",
                "colsample_bynode",
                "max_bins",
                "early_stopping_rounds",
                "class_weights",
                "seed",
                "threads",
                "allow_missing",
                "quantize",
                "quant_bits",
                "n_estimators",
                "eta",
            ],
            &[
                "num_leaves",
                "max_depth",
                "max_bins",
                "threads",
                "quant_bits",
                "min_data_in_leaf",
            ],
        ),
        "random-forest" | "decision-tree" => (
            &[
                "n_trees",
                "criterion",
                "max_depth",
                "min_samples_split",
                "min_samples_leaf",
                "max_features",
                "bootstrap",
                "max_bins",
                "seed",
                "threads",
                "n_jobs",
            ],
            &[
                "max_depth",
                "min_samples_split",
                "min_samples_leaf",
                "max_bins",
                "threads",
            ],
        ),
        _ => (
            &[
                "depth",
                "width",
                "activation",
                "dropout",
                "norm",
                "residual",
                "k",
                "embedding",
                "n_frequencies",
                "frequency_scale",
                "embedding_dim",
                "n_bins",
                "epochs",
                "batch_size",
                "learning_rate",
                "weight_decay",
                "schedule",
                "warmup",
                "label_smoothing",
                "clip_norm",
                "patience",
                "seed",
            ],
            &[
                "depth",
                "width",
                "k",
                "n_frequencies",
                "embedding_dim",
                "n_bins",
                "batch_size",
            ],
        ),
    }
}

fn value(rng: &mut Rng, huge: bool) -> String {
    match rng.below(20) {
        0 => "9".repeat(5000),
        1 | 2 if huge => rng.pick(HUGE).to_owned(),
        _ => rng.pick(EDGE).to_owned(),
    }
}

/// One case: the arguments after `tabtune`.
fn case(rng: &mut Rng, dir: &Path) -> Vec<String> {
    let train = dir.join("train.csv").to_string_lossy().into_owned();
    let mut args: Vec<String> = Vec::new();
    let flag = |args: &mut Vec<String>, rng: &mut Rng, name: &str, huge: bool| {
        args.push(name.to_owned());
        args.push(value(rng, huge));
    };
    match rng.below(10) {
        // train: a family (or junk), small work, then fuzzed parameters and flags.
        0..=4 => {
            let families = [
                "gbdt-leafwise",
                "gbdt-depthwise",
                "gbdt-oblivious",
                "random-forest",
                "decision-tree",
                "mlp",
                "tabm",
                "gbdt",
                "",
                "MLP",
            ];
            let family = rng.pick(&families);
            args.extend(
                [
                    "train", "--json", "--input", &train, "--folds", "2", "--model", family,
                ]
                .map(str::to_owned),
            );
            let work = if family.contains("mlp") || family == "tabm" {
                ["--param", "epochs=2", "--param", "width=16"]
            } else {
                ["--param", "rounds=4", "--param", "n_trees=4"]
            };
            if family != "random-forest" && family != "decision-tree" {
                args.extend(work[..2].iter().map(|s| (*s).to_owned()));
            } else {
                args.extend(work[2..].iter().map(|s| (*s).to_owned()));
            }
            let (names, sizes) = params(family);
            for _ in 0..=rng.below(3) {
                let name = if rng.chance(10) {
                    "bogus_param"
                } else {
                    rng.pick(names)
                };
                args.push("--param".into());
                args.push(format!("{name}={}", value(rng, sizes.contains(&name))));
            }
            if rng.chance(20) {
                args.push("--param".into());
                args.push(rng.pick(&["novalue", "=1", "a==b", ""]).to_owned());
            }
            for (name, huge) in [
                ("--folds", false),
                ("--repeats", false),
                ("--seed", true),
                ("--device", false),
            ] {
                if rng.chance(15) {
                    flag(&mut args, rng, name, huge);
                }
            }
        }
        // sweep: one trial of a small decision-tree space, fuzzed flags.
        5 | 6 => {
            let space = dir.join("space.toml").to_string_lossy().into_owned();
            args.extend(
                [
                    "sweep", "--json", "--input", &train, "--sweep", &space, "--folds", "2",
                ]
                .map(str::to_owned),
            );
            args.extend([
                "--study".to_owned(),
                format!("fuzz{}", rng.below(1_000_000)),
            ]);
            args.extend(["--n-trials", "1", "--no-track"].map(str::to_owned));
            let flags = [
                ("--workers", true),
                ("--population", true),
                ("--trials-per-device", true),
                ("--holdout", false),
                ("--timeout", false),
                ("--top-k", true),
                ("--seed", true),
                ("--pruner", false),
                ("--sampler", false),
                ("--device", false),
                ("--final", false),
            ];
            for _ in 0..=rng.below(3) {
                let (name, huge) = flags[rng.below(flags.len())];
                flag(&mut args, rng, name, huge);
            }
        }
        // serve: a missing bundle, so a valid set of flags ends with exit 2 too.
        7 => {
            args.extend(["serve", "--model", "missing-bundle", "--port", "0"].map(str::to_owned));
            let flags = [
                "--threads",
                "--max-body-bytes",
                "--max-in-flight",
                "--window",
                "--min-window-rows",
                "--max-records",
                "--max-errors-listed",
                "--max-connections",
                "--header-timeout",
                "--body-timeout",
                "--idle-timeout",
                "--shutdown-timeout",
                "--port",
                "--host",
            ];
            for _ in 0..=rng.below(3) {
                let name = flags[rng.below(flags.len())];
                flag(&mut args, rng, name, true);
            }
        }
        // run: no data in the data folder, so only the flags are tried.
        8 => {
            args.extend(
                ["run", "--json", "--no-fetch", "--no-track", "--data-dir"].map(str::to_owned),
            );
            args.push(dir.join("empty").to_string_lossy().into_owned());
            let flags = [
                ("--budget-minutes", false),
                ("--n-trials", true),
                ("--folds", false),
                ("--preset", false),
                ("--seed", true),
                ("--device", false),
            ];
            for _ in 0..=rng.below(3) {
                let (name, huge) = flags[rng.below(flags.len())];
                flag(&mut args, rng, name, huge);
            }
        }
        // export: a missing bundle or study, fuzzed format, trial and output.
        _ => {
            args.extend(["export", "--json"].map(str::to_owned));
            if rng.chance(50) {
                args.extend(["--model", "missing-bundle"].map(str::to_owned));
            } else {
                args.extend(["--study", "no-such-study", "--input", &train].map(str::to_owned));
            }
            let flags = ["--format", "--trial", "--final", "--output", "--device"];
            for _ in 0..=rng.below(2) {
                let name = flags[rng.below(flags.len())];
                flag(&mut args, rng, name, true);
            }
        }
    }
    args
}

#[test]
fn fuzzed_flags_and_params_end_in_exit_0_or_2_with_a_bounded_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("train.csv"), synthetic_obesity_csv(70, 3)).expect("write");
    std::fs::create_dir_all(tmp.path().join("empty")).expect("mkdir");
    std::fs::write(
        tmp.path().join("space.toml"),
        "metric = \"accuracy\"\ndirection = \"maximize\"\n\n[fixed]\nfamily = \"decision-tree\"\n\n\
         [params.max_depth]\ntype = \"int\"\nlow = 2\nhigh = 4\n",
    )
    .expect("write");
    let seed = std::env::var("TABTUNE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let cases: usize = std::env::var("TABTUNE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut rng = Rng(seed);
    let mut refused = 0;
    for i in 0..cases {
        let args = case(&mut rng, tmp.path());
        let out = tabtune(tmp.path())
            .args(&args)
            .env("TABTUNE_REGISTRY_DIR", tmp.path().join("registry"))
            .timeout(Duration::from_mins(1))
            .output()
            .unwrap_or_else(|e| panic!("case {i} {args:?}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(40).collect()).collect();
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 2)),
            "case {i} (seed {seed}) {shown:?}: exit {:?} (a timeout or signal shows as None)\n{}",
            code,
            stderr.chars().take(4000).collect::<String>()
        );
        assert!(!stderr.contains("panicked"), "case {i} {shown:?}: {stderr}");
        if code == Some(2) {
            refused += 1;
            assert!(stderr.contains("error"), "case {i} {shown:?}: {stderr}");
            assert!(
                stderr.len() < 16_384,
                "case {i} {shown:?}: a {} byte message",
                stderr.len()
            );
        }
    }
    // The generator is meant to hit mostly bad input; a run that refuses nothing tried nothing.
    assert!(
        refused * 2 > cases,
        "only {refused} of {cases} cases refused"
    );
}
