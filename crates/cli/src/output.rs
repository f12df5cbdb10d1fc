//! What the commands print: one JSON object with `--json`, readable tables otherwise, and
//! progress bars on stderr when it is a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Prints one JSON object on stdout.
#[allow(clippy::print_stdout)]
pub fn json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialize")
    );
}

/// Prints text on stdout.
pub fn text(s: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`tabtune ... | head`) is not an error worth a panic.
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// A plain-text table with right-aligned numbers.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let is_num = |s: &str| s.trim_end_matches('%').parse::<f64>().is_ok();
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                if is_num(c) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_owned()
    };
    let mut s = line(header.to_vec());
    s.push('\n');
    s.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    s.push('\n');
    for row in rows {
        s.push_str(&line(row.iter().map(String::as_str).collect()));
        s.push('\n');
    }
    s
}

/// Whether progress bars should show: stderr is a terminal and the user did not ask for quiet
/// or machine output.
pub fn progress_enabled(quiet: bool, json: bool) -> bool {
    !quiet && !json && std::io::stderr().is_terminal()
}

/// A spinner with a message, hidden when progress is disabled.
pub fn spinner(enabled: bool, message: impl Into<String>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message.into());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A byte-count progress bar, hidden when progress is disabled.
pub fn bytes_bar(enabled: bool, message: impl Into<String>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0).with_message(message.into());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn tables_align_numbers_right() {
        let t = table(
            &["class", "rows"],
            &[vec!["a".into(), "5".into()], vec!["bb".into(), "10".into()]],
        );
        assert_eq!(t, "class  rows\n-----  ----\na         5\nbb       10\n");
    }
}
