//! The HTML report of a study: leaderboard, optimisation history, parameter importances,
//! parallel coordinates and intermediate values (self-contained: inline SVG, no scripts).
//!
//! Parameter importance is a PED-ANOVA-style score (Optuna's `PedAnovaImportanceEvaluator`
//! idea, simplified): for each parameter, the total-variation distance between its value
//! distribution among the top 10% of complete trials and among all complete trials, on a
//! 10-bin histogram (choices for categoricals), minus the mean distance of random subsets of the
//! same size (the chance level). A parameter whose good values are concentrated scores high;
//! one that does not matter scores near 0. Scores are normalised to sum to 1.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use tabtune_features::report::charts::{PALETTE, bar_chart};
use tabtune_features::report::html;
use tabtune_tune::{Direction, Distribution, FrozenTrial, TrialState};

use crate::decision::DecisionReport;
use crate::error::{PipelineError, Result};

fn chart_err<E: std::fmt::Display>(e: E) -> PipelineError {
    PipelineError::Chart {
        chart: "study report",
        reason: e.to_string(),
    }
}

/// What the report shows besides the trials.
pub struct StudyReportInput<'a> {
    /// Study name.
    pub study: &'a str,
    /// Storage URL (shown, with any password removed by the caller).
    pub storage: &'a str,
    /// Objective direction.
    pub direction: Direction,
    /// Name of the objective (e.g. `accuracy`).
    pub metric: &'a str,
    /// Every trial of the study.
    pub trials: &'a [FrozenTrial],
    /// Extra sections (already HTML), e.g. the decision layer's results.
    pub extra_sections: Vec<String>,
}

fn complete(trials: &[FrozenTrial]) -> Vec<&FrozenTrial> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite))
        .collect()
}

/// A parameter value mapped onto [0, 1] along its distribution (log scale where the
/// distribution is; categorical choices evenly spaced).
fn unit(d: &Distribution, t: &FrozenTrial, name: &str) -> Option<f64> {
    let internal = d.to_internal(t.params.get(name)?).ok()?;
    Some(match d {
        Distribution::Float { low, high, log, .. } => norm(internal, *low, *high, *log),
        Distribution::Int { low, high, log, .. } => norm(internal, *low as f64, *high as f64, *log),
        Distribution::Categorical { choices } => {
            if choices.len() <= 1 {
                0.5
            } else {
                internal / (choices.len() - 1) as f64
            }
        }
    })
}

fn norm(v: f64, lo: f64, hi: f64, log: bool) -> f64 {
    if hi <= lo {
        return 0.5;
    }
    let (v, lo, hi) = if log {
        (v.ln(), lo.ln(), hi.ln())
    } else {
        (v, lo, hi)
    };
    ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// The distribution of every parameter seen in complete trials (the last one seen wins).
fn distributions(trials: &[&FrozenTrial]) -> BTreeMap<String, Distribution> {
    let mut out = BTreeMap::new();
    for t in trials {
        for (k, d) in &t.distributions {
            out.insert(k.clone(), d.clone());
        }
    }
    out
}

/// PED-ANOVA-style importances (see the module docs), largest first; empty with fewer than 10
/// complete trials.
pub fn param_importances(trials: &[FrozenTrial], direction: Direction) -> Vec<(String, f64)> {
    let done = complete(trials);
    if done.len() < 10 {
        return Vec::new();
    }
    let mut sorted = done.clone();
    sorted.sort_by(|a, b| {
        let (a, b) = (a.value.unwrap_or(0.0), b.value.unwrap_or(0.0));
        direction.as_loss(a).total_cmp(&direction.as_loss(b))
    });
    let top_n = (done.len() as f64 * 0.1).ceil().max(2.0) as usize;
    let top = &sorted[..top_n.min(sorted.len())];
    let mut scores = Vec::new();
    for (name, d) in distributions(&done) {
        if d.is_single() {
            continue;
        }
        let bins = match &d {
            Distribution::Categorical { choices } => choices.len(),
            _ => 10,
        };
        let hist = |ts: &[&FrozenTrial]| {
            let mut h = vec![0.0_f64; bins];
            let mut n = 0.0_f64;
            for t in ts {
                if let Some(u) = unit(&d, t, &name) {
                    let b = ((u * (bins - 1) as f64).round() as usize).min(bins - 1);
                    let b = if matches!(d, Distribution::Categorical { .. }) {
                        b
                    } else {
                        ((u * bins as f64) as usize).min(bins - 1)
                    };
                    h[b] += 1.0;
                    n += 1.0;
                }
            }
            if n > 0.0 {
                for v in &mut h {
                    *v /= n;
                }
            }
            (h, n)
        };
        let (ha, na) = hist(&done);
        let (ht, nt) = hist(top);
        if na == 0.0 || nt == 0.0 {
            continue;
        }
        let tv = |h: &[f64]| 0.5 * ha.iter().zip(h).map(|(a, b)| (a - b).abs()).sum::<f64>();
        // A small top set differs from the whole by chance alone: subtract the mean distance
        // of random subsets of the same size (a fixed shuffle, so reports are reproducible).
        let mut noise = 0.0;
        let mut order: Vec<&FrozenTrial> = done.clone();
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..NULL_DRAWS {
            for i in (1..order.len()).rev() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            noise += tv(&hist(&order[..top.len()]).0);
        }
        let score = (tv(&ht) - noise / f64::from(NULL_DRAWS)).max(0.0);
        scores.push((name, score));
    }
    let total: f64 = scores.iter().map(|s| s.1).sum();
    if total > 0.0 {
        for s in &mut scores {
            s.1 /= total;
        }
    }
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scores
}

/// Random subsets drawn to estimate the chance level of the importance score.
const NULL_DRAWS: u32 = 32;

fn history_chart(input: &StudyReportInput<'_>) -> Result<String> {
    let done = complete(input.trials);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let n = input.trials.iter().map(|t| t.number).max().unwrap_or(0) + 1;
        let values: Vec<f64> = done.iter().filter_map(|t| t.value).collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&root)
            .caption("Optimisation history", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0u64..n, (lo - pad)..(hi + pad))
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_desc("trial")
            .y_desc(input.metric)
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(done.iter().map(|t| {
                Circle::new(
                    (t.number, t.value.unwrap_or(0.0)),
                    3,
                    PALETTE[0].mix(0.7).filled(),
                )
            }))
            .map_err(chart_err)?
            .label("trial value")
            .legend(|(x, y)| Circle::new((x + 8, y), 3, PALETTE[0].filled()));
        let mut best: Option<f64> = None;
        let mut line = Vec::new();
        let mut sorted = done.clone();
        sorted.sort_by_key(|t| t.number);
        for t in sorted {
            let v = t.value.unwrap_or(0.0);
            if best.is_none_or(|b| input.direction.beats(v, b)) {
                best = Some(v);
            }
            line.push((t.number, best.unwrap_or(v)));
        }
        chart
            .draw_series(LineSeries::new(line, PALETTE[3].stroke_width(2)))
            .map_err(chart_err)?
            .label("best so far")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], PALETTE[3]));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// A colour on a blue (worst) to red (best) ramp for `t` in [0, 1].
fn ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(49, 215), mix(54, 48), mix(149, 39))
}

fn parallel_chart(input: &StudyReportInput<'_>, names: &[String]) -> Result<String> {
    let done = complete(input.trials);
    let dists = distributions(&done);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let k = names.len().max(2);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Parallel coordinates (colour: blue worst .. red best)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..(k - 1) as f64, 0.0..1.0)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_labels(k)
            .x_label_style(("sans-serif", 11))
            .x_label_formatter(&|v| {
                let i = v.round() as usize;
                if (v - i as f64).abs() < 1e-6 {
                    names.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("position in range")
            .draw()
            .map_err(chart_err)?;
        let values: Vec<f64> = done
            .iter()
            .map(|t| input.direction.as_loss(t.value.unwrap_or(0.0)))
            .collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        // Worst first, so the best lines are drawn on top.
        let mut order: Vec<usize> = (0..done.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        for i in order {
            let t = done[i];
            let goodness = if hi > lo {
                (hi - values[i]) / (hi - lo)
            } else {
                1.0
            };
            let points: Vec<(f64, f64)> = names
                .iter()
                .enumerate()
                .filter_map(|(j, n)| Some((j as f64, unit(dists.get(n)?, t, n)?)))
                .collect();
            chart
                .draw_series(LineSeries::new(points, ramp(goodness).mix(0.6)))
                .map_err(chart_err)?;
        }
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

fn intermediate_chart(input: &StudyReportInput<'_>) -> Result<Option<String>> {
    let with: Vec<&FrozenTrial> = input
        .trials
        .iter()
        .filter(|t| !t.intermediate.is_empty())
        .collect();
    if with.is_empty() {
        return Ok(None);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let max_step = with
            .iter()
            .filter_map(|t| t.last_step())
            .map(|s| s.0)
            .max()
            .unwrap_or(0)
            + 1;
        let all = with.iter().flat_map(|t| t.intermediate.values().copied());
        let (lo, hi) = all
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Intermediate values (grey: pruned, blue: complete)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0u64..max_step, (lo - pad)..(hi + pad))
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_desc("step (epoch, boosting round or fold)")
            .y_desc(input.metric)
            .draw()
            .map_err(chart_err)?;
        for t in with {
            let color = if t.state == TrialState::Pruned {
                RGBColor(150, 150, 150).mix(0.6)
            } else {
                PALETTE[0].mix(0.7)
            };
            let points: Vec<(u64, f64)> = t.intermediate.iter().map(|(s, v)| (*s, *v)).collect();
            chart
                .draw_series(LineSeries::new(points, color))
                .map_err(chart_err)?;
        }
        root.present().map_err(chart_err)?;
    }
    Ok(Some(svg))
}

/// The study report as one HTML page.
pub fn study_html(input: &StudyReportInput<'_>) -> Result<String> {
    let trials = input.trials;
    let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let done = complete(trials);
    let mut body = String::new();

    let mut ranked = done.clone();
    ranked.sort_by(|a, b| {
        let (a, b) = (a.value.unwrap_or(0.0), b.value.unwrap_or(0.0));
        input
            .direction
            .as_loss(a)
            .total_cmp(&input.direction.as_loss(b))
    });
    let summary = html::table(
        &[
            "trials",
            "complete",
            "pruned",
            "failed",
            "running",
            "best value",
            "best trial",
        ],
        &[vec![
            trials.len().to_string(),
            count(TrialState::Complete).to_string(),
            count(TrialState::Pruned).to_string(),
            count(TrialState::Fail).to_string(),
            count(TrialState::Running).to_string(),
            ranked
                .first()
                .and_then(|t| t.value)
                .map_or_else(|| "-".into(), |v| html::num(v, 5)),
            ranked
                .first()
                .map_or_else(|| "-".into(), |t| t.number.to_string()),
        ]],
    );
    body.push_str(&html::section(
        "Summary",
        &format!(
            "Study {} in {}, {} {}.",
            input.study,
            input.storage,
            match input.direction {
                Direction::Maximize => "maximising",
                Direction::Minimize => "minimising",
            },
            input.metric
        ),
        &summary,
    ));

    let names: Vec<String> = distributions(&done).into_keys().collect();
    let mut header: Vec<&str> = vec!["rank", "trial", input.metric, "seconds"];
    header.extend(names.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .take(20)
        .enumerate()
        .map(|(i, t)| {
            let mut row = vec![
                (i + 1).to_string(),
                t.number.to_string(),
                t.value.map_or_else(|| "-".into(), |v| html::num(v, 5)),
                t.duration_s()
                    .map_or_else(|| "-".into(), |s| html::num(s, 2)),
            ];
            row.extend(
                names
                    .iter()
                    .map(|n| t.params.get(n).map_or_else(|| "-".into(), fmt_value)),
            );
            row
        })
        .collect();
    body.push_str(&html::section(
        "Leaderboard",
        "The 20 best complete trials; '-' marks a parameter the trial did not use.",
        &html::table(&header, &rows),
    ));

    if !done.is_empty() {
        body.push_str(&html::section(
            "Optimisation history",
            "",
            &history_chart(input)?,
        ));
    }
    let importances = param_importances(trials, input.direction);
    if !importances.is_empty() {
        let (labels, values): (Vec<String>, Vec<f64>) = importances.into_iter().unzip();
        let chart = bar_chart("Parameter importances", &labels, &values, "importance")?;
        body.push_str(&html::section(
            "Parameter importances",
            "Total-variation distance between each parameter's values in the top 10% of \
             complete trials and in all complete trials, less its chance level (PED-ANOVA style), normalised to sum 1.",
            &chart,
        ));
    }
    if done.len() >= 2 && !names.is_empty() {
        body.push_str(&html::section(
            "Parallel coordinates",
            "One line per complete trial across its parameters, each axis spanning the \
             parameter's range (log scale where the search space is).",
            &parallel_chart(input, &names)?,
        ));
    }
    if let Some(svg) = intermediate_chart(input)? {
        body.push_str(&html::section("Intermediate values", "", &svg));
    }
    for extra in &input.extra_sections {
        body.push_str(extra);
    }
    let mut subtitle = String::new();
    let _ = write!(subtitle, "{} trials, {} complete", trials.len(), done.len());
    Ok(html::page(
        &format!("tabtune study: {}", input.study),
        &subtitle,
        &body,
    ))
}

fn fmt_value(v: &tabtune_tune::ParamValue) -> String {
    match v {
        tabtune_tune::ParamValue::Float(x) => {
            if x.abs() >= 1e-3 && x.abs() < 1e5 {
                html::num(*x, 4)
            } else {
                format!("{x:.3e}")
            }
        }
        other => other.to_string(),
    }
}

/// The decision layer's section of a report: every method's cross-fitted accuracy and log
/// loss side by side, the champion, its class weights and its members (`labels[i]` names
/// candidate `i`).
pub fn decision_html(d: &DecisionReport, labels: &[String]) -> String {
    let rows: Vec<Vec<String>> = d
        .methods
        .iter()
        .map(|s| {
            vec![
                if s.method == d.champion {
                    format!("{} (champion)", s.method.name())
                } else {
                    s.method.name().to_owned()
                },
                html::num(s.accuracy, 5),
                html::num(s.log_loss, 5),
            ]
        })
        .chain(std::iter::once(vec![
            format!(
                "best single ({}), picked and scored on all rows",
                labels[d.best_single]
            ),
            html::num(d.raw_accuracy, 5),
            String::new(),
        ]))
        .collect();
    let table = html::table(&["method", "cross-fitted accuracy", "log loss"], &rows);
    let members: Vec<Vec<String>> = d
        .shipped
        .members
        .iter()
        .map(|(i, w)| vec![labels[*i].clone(), html::num(*w, 3)])
        .collect();
    let weights = d
        .shipped
        .class_weights
        .weights
        .iter()
        .map(|w| html::num(*w, 2))
        .collect::<Vec<_>>()
        .join(", ");
    html::section(
        "Decision layer (out-of-fold only)",
        &format!(
            "{} candidate trials. Each method (the best single trial, greedy ensemble selection \
             over every candidate, a logistic-regression stacker on their log-probabilities, each \
             with or without per-class logit biases) is fitted on the out-of-fold predictions of \
             {} − 1 folds and scored on the remaining fold (nested cross-fitting): no number \
             below saw the rows it is scored on, except the last row's, which is the raw CV \
             number of the trial that is best on all rows.",
            d.candidates, d.folds
        ),
        &format!(
            "{table}<p>Shipped: {}{}; class weights: {weights}</p>{}",
            html::escape(d.champion.name()),
            if d.shipped.stack.is_some() {
                " (stacker over the members below)"
            } else {
                ""
            },
            html::table(&["member", "weight"], &members)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabtune_tune::ParamValue;

    fn trials(n: u64) -> Vec<FrozenTrial> {
        let lr = Distribution::Float {
            low: 1e-3,
            high: 1.0,
            log: true,
            step: None,
        };
        let leaves = Distribution::Int {
            low: 2,
            high: 64,
            log: false,
            step: 1,
        };
        (0..n)
            .map(|i| {
                let mut t = FrozenTrial::new(i as i64 + 1, i);
                // Only `lr` matters: the value is best when lr is small.
                let x = 1e-3 * 1000f64.powf((i * 7 % n) as f64 / n as f64);
                let l = 2 + (i * 13 % 63) as i64;
                t.params.insert("lr".into(), ParamValue::Float(x));
                t.params.insert("leaves".into(), ParamValue::Int(l));
                t.distributions.insert("lr".into(), lr.clone());
                t.distributions.insert("leaves".into(), leaves.clone());
                t.state = if i % 10 == 9 {
                    TrialState::Pruned
                } else {
                    TrialState::Complete
                };
                t.value = Some(0.9 - 0.1 * x);
                t.intermediate.insert(0, 0.8);
                t.intermediate.insert(1, 0.85);
                t.start_us = Some(0);
                t.complete_us = Some(1_500_000);
                t
            })
            .collect()
    }

    #[test]
    fn importance_finds_the_parameter_that_matters() {
        let ts = trials(60);
        let imp = param_importances(&ts, Direction::Maximize);
        assert_eq!(imp[0].0, "lr", "{imp:?}");
        assert!(imp[0].1 > imp[1].1 * 2.0, "{imp:?}");
        assert!((imp.iter().map(|i| i.1).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(param_importances(&ts[..5], Direction::Maximize).is_empty());
    }

    #[test]
    fn the_report_has_every_section_and_escapes_names() {
        let ts = trials(30);
        let html = study_html(&StudyReportInput {
            study: "obesity<1>",
            storage: "sqlite:///x.db",
            direction: Direction::Maximize,
            metric: "accuracy",
            trials: &ts,
            extra_sections: vec![],
        })
        .unwrap();
        for s in [
            "Leaderboard",
            "Optimisation history",
            "Parameter importances",
            "Parallel coordinates",
            "Intermediate values",
            "obesity&lt;1&gt;",
            "<svg",
        ] {
            assert!(html.contains(s), "missing {s}");
        }
        assert!(!html.contains("obesity<1>"));
    }

    #[test]
    fn an_empty_study_still_renders() {
        let html = study_html(&StudyReportInput {
            study: "empty",
            storage: "memory",
            direction: Direction::Minimize,
            metric: "loss",
            trials: &[],
            extra_sections: vec![],
        })
        .unwrap();
        assert!(html.contains("Leaderboard") && !html.contains("Optimisation history"));
    }
}
