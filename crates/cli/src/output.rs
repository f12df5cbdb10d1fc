//! What the commands print: one JSON object with `--json`, readable tables otherwise, and
//! progress bars on stderr when it is a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tabtune_pipeline::{Progress, Task};

/// Prints one JSON object on stdout (a closed pipe, as `tabtune ... --json | head`, is not an
/// error worth a panic).
pub fn json(value: &serde_json::Value) {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values always serialize");
    text.push('\n');
    self::text(&text);
}

/// Adds the fields of the object `from` to the object `into`.
pub fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
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

/// Progress bars on stderr (indicatif) for the pipeline's long steps.
pub struct Bars;

/// One bar; dropping it clears it.
struct Bar(ProgressBar);

impl Task for Bar {
    fn set_message(&self, message: String) {
        self.0.set_message(message);
    }
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn set_position(&self, position: u64) {
        self.0.set_position(position);
    }
    fn set_length(&self, total: u64) {
        self.0.set_length(total);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bars {
    fn spinner(&self, message: &str) -> Box<dyn Task> {
        let bar = ProgressBar::new_spinner().with_message(message.to_owned());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("the template is valid"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Box::new(Bar(bar))
    }

    fn counter(&self, total: u64, position: u64, unit: &str) -> Box<dyn Task> {
        let bar = ProgressBar::new(total).with_position(position);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{bar:30}} {{pos}}/{{len}} {unit}  {{msg}}  [{{elapsed}}<{{eta}}]"
            ))
            .expect("the template is valid"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar(bar))
    }

    fn bytes(&self, message: &str) -> Box<dyn Task> {
        let bar = ProgressBar::new(0).with_message(message.to_owned());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        Box::new(Bar(bar))
    }
}

/// The decision layer in one line per method.
pub fn decision_text(d: &tabtune_pipeline::decision::DecisionReport) -> String {
    let rows: Vec<Vec<String>> = d
        .methods
        .iter()
        .map(|s| {
            vec![
                format!(
                    "{}{}",
                    s.method.name(),
                    if s.method == d.champion { " *" } else { "" }
                ),
                format!("{:.5}", s.accuracy),
                format!("{:.5}", s.log_loss),
            ]
        })
        .collect();
    format!(
        "decision layer over {} candidates (out-of-fold, nested cross-fitting over {} folds; * ships; raw best single {:.5}):\n{}",
        d.candidates,
        d.folds,
        d.raw_accuracy,
        table(&["method", "cv accuracy", "cv log loss"], &rows)
    )
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
