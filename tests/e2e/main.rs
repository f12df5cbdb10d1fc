//! End-to-end tests of the `tabtune` binary: the scripting contract (`--json`, exit codes) on
//! the real datasets and on broken inputs.

mod data;
mod export;
mod features;
mod fuzz;
mod predict;
mod registry;
mod run;
mod serve;
mod sweep;
mod train;

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// `tabtune --config <default config>` run in `cwd`.
pub fn tabtune(cwd: &Path) -> Command {
    tabtune_with(cwd, &tabtune_test::default_config())
}

/// `tabtune --config <config>` run in `cwd`.
pub fn tabtune_with(cwd: &Path, config: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tabtune").expect("the tabtune binary is built");
    cmd.current_dir(cwd).arg("--config").arg(config);
    cmd.env_remove("TABTUNE_DATA_DIR")
        .env_remove("TABTUNE_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("MLFLOW_TRACKING_URI");
    cmd
}

/// Runs and parses stdout as the one JSON object the contract promises.
pub fn json_of(cmd: &mut Command, code: i32) -> serde_json::Value {
    let out = cmd.output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"))
}

/// Reads a spawned `tabtune serve`'s stderr (piped) up to the line announcing its URL and
/// returns the URL; the rest of stderr is drained on a thread so the server never blocks on it.
pub fn listening_url(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("listening on ")
                .map(|(_, u)| u.trim().to_owned())
        })
        .expect("the URL line");
    std::thread::spawn(move || lines.for_each(drop));
    url
}

/// The folder of a real data file.
pub fn dir_of(path: &Path) -> PathBuf {
    path.parent().expect("a file has a folder").to_owned()
}
