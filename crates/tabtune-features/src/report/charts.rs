//! SVG charts drawn with plotters' SVG backend (text as SVG `<text>`, no font files needed).

use plotters::prelude::*;

use crate::error::{FeaturesError, Result};

fn chart_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> FeaturesError + '_ {
    move |e| FeaturesError::Write {
        path: what.into(),
        message: format!("chart: {e}"),
    }
}

/// A palette of distinguishable colours, one per class.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Horizontal bars, one per label.
pub fn bar_chart(title: &str, labels: &[String], values: &[f64], x_desc: &str) -> Result<String> {
    let mut svg = String::new();
    let height = 60 + 34 * labels.len() as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err(title))?;
        let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9) * 1.1;
        // Whole numbers for counts, decimals for shares and scores.
        let digits = if max >= 10.0 {
            0
        } else if max >= 1.0 {
            1
        } else {
            2
        };
        let n = labels.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(190)
            .build_cartesian_2d(0.0..max, (0..n.saturating_sub(1)).into_segmented())
            .map_err(chart_err(title))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_desc)
            .x_label_formatter(&|v| format!("{v:.digits$}"))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(chart_err(title))?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                let color = PALETTE[i % PALETTE.len()];
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (v, SegmentValue::Exact(i + 1)),
                    ],
                    color.filled(),
                );
                bar.set_margin(5, 5, 0, 0);
                bar
            }))
            .map_err(chart_err(title))?;
        root.present().map_err(chart_err(title))?;
    }
    Ok(svg)
}

/// Box plots (quartiles, 1.5 IQR whiskers) of `groups`, one box per group label.
pub fn box_plots(
    title: &str,
    labels: &[String],
    groups: &[Vec<f64>],
    y_desc: &str,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err(title))?;
        let finite = groups.iter().flatten().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let n = labels.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (0..n.saturating_sub(1)).into_segmented(),
                ((lo - pad) as f32)..((hi + pad) as f32),
            )
            .map_err(chart_err(title))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_labels(n)
            .x_label_style(("sans-serif", 10))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(chart_err(title))?;
        chart
            .draw_series(
                groups
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| !g.is_empty())
                    .map(|(i, g)| {
                        let color = PALETTE[i % PALETTE.len()];
                        Boxplot::new_vertical(SegmentValue::CenterOf(i), &Quartiles::new(g))
                            .width(30)
                            .style(color.stroke_width(2))
                    }),
            )
            .map_err(chart_err(title))?;
        root.present().map_err(chart_err(title))?;
    }
    Ok(svg)
}

/// A colour for a correlation in [-1, 1]: blue (−1) through white (0) to red (+1).
fn diverging(r: f64) -> RGBColor {
    let t = r.clamp(-1.0, 1.0);
    let mix =
        |a: u8, b: u8, w: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * w).round() as u8;
    if t >= 0.0 {
        RGBColor(mix(255, 178, t), mix(255, 24, t), mix(255, 43, t))
    } else {
        RGBColor(mix(255, 33, -t), mix(255, 102, -t), mix(255, 172, -t))
    }
}

/// A labelled heatmap of a square matrix (correlations), with the value in each cell.
pub fn heatmap(title: &str, names: &[String], matrix: &[Vec<f64>]) -> Result<String> {
    let k = names.len() as i32;
    let cell = if k > 20 { 26 } else { 40 };
    let left = 130;
    let top = 150;
    let width = (left + cell * k + 20) as u32;
    let height = (top + cell * k + 20) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width.max(400), height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err(title))?;
        let font = ("sans-serif", 11).into_font();
        root.draw(&Text::new(
            title.to_owned(),
            (10, 10),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(chart_err(title))?;
        for (i, row) in matrix.iter().enumerate() {
            for (j, &r) in row.iter().enumerate() {
                let (x, y) = (left + cell * j as i32, top + cell * i as i32);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    diverging(r).filled(),
                ))
                .map_err(chart_err(title))?;
                let text = format!("{r:.2}");
                let color = if r.abs() > 0.6 { &WHITE } else { &BLACK };
                root.draw(&Text::new(
                    text,
                    (x + 5, y + cell / 2 - 5),
                    font.clone().color(color),
                ))
                .map_err(chart_err(title))?;
            }
        }
        for (i, name) in names.iter().enumerate() {
            let y = top + cell * i as i32 + cell / 2 - 6;
            root.draw(&Text::new(name.clone(), (8, y), font.clone()))
                .map_err(chart_err(title))?;
            let x = left + cell * i as i32 + cell / 2 - 6;
            let rotated = font.clone().transform(FontTransform::Rotate270);
            root.draw(&Text::new(name.clone(), (x, top - 6), rotated))
                .map_err(chart_err(title))?;
        }
        root.present().map_err(chart_err(title))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels() {
        let labels = vec!["alpha".to_owned(), "beta".to_owned()];
        let bars = bar_chart("Counts", &labels, &[3.0, 5.0], "rows").expect("bars");
        assert!(bars.starts_with("<svg") && bars.contains("alpha") && bars.contains("Counts"));
        let boxes = box_plots(
            "Age",
            &labels,
            &[vec![1.0, 2.0, 3.0], vec![2.0, 4.0]],
            "years",
        )
        .expect("boxes");
        assert!(boxes.contains("beta") && boxes.contains("<line"));
        let heat =
            heatmap("Correlation", &labels, &[vec![1.0, -0.5], vec![-0.5, 1.0]]).expect("heatmap");
        assert!(heat.contains("-0.50") && heat.contains("<rect"));
    }

    #[test]
    fn diverging_colours_hit_the_ends() {
        assert_eq!(diverging(0.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(1.0), RGBColor(178, 24, 43));
        assert_eq!(diverging(-1.0), RGBColor(33, 102, 172));
    }
}
