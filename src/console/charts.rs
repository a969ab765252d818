//! Usage charts drawn server-side as SVG with plotters (no fonts embedded:
//! text is left to the browser).

use plotters::prelude::*;

/// Line colours, in the order series are drawn.
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One line: a name (legend) and its points (Unix ms, value).
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(i64, f64)>,
}

/// The time axis: buckets of `step` ms from `start` (Unix ms) to `end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
}

/// A line chart of `series` along `axis`, `title` above, the y axis named
/// `unit`; each bucket is also marked with a dot, so a lone one shows.
pub(crate) fn line_chart(title: &str, unit: &str, axis: Axis, series: &[Series]) -> String {
    let mut svg = String::new();
    // A chart that cannot be drawn is an empty picture, never an error page.
    let _ = draw(&mut svg, title, unit, axis, series);
    if svg.is_empty() {
        svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"260\"></svg>".into();
    }
    svg
}

fn draw(
    svg: &mut String,
    title: &str,
    unit: &str,
    axis: Axis,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let step = axis.step.max(1);
    let buckets = ((axis.end - axis.start) / step).max(1);
    let hourly = step < 86_400_000;
    // x is the bucket's index, so labels fall on whole hours or days.
    let index = |at: i64| (at - axis.start) / step;
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, y)| *y))
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let root = SVGBackend::with_string(svg, (760, 260)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(0..buckets, 0f64..top)?;
    let label = move |x: &i64| {
        let text = bson::DateTime::from_millis(axis.start + x * step)
            .try_to_rfc3339_string()
            .unwrap_or_default();
        // 2026-12-07T09:00:00Z → "12-07 09:00" or "12-07".
        let keep = if hourly { 5..16 } else { 5..10 };
        text.get(keep).unwrap_or_default().replace('T', " ")
    };
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(5)
        .x_label_formatter(&label)
        .y_desc(unit)
        .draw()?;
    for (i, line) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(i64, f64)> = line.points.iter().map(|(at, y)| (index(*at), *y)).collect();
        chart.draw_series(
            points
                .iter()
                .map(|point| Circle::new(*point, 3, color.filled())),
        )?;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(line.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_title_and_legend() {
        let axis = Axis {
            start: 0,
            end: 7_200_000,
            step: 3_600_000,
        };
        let svg = line_chart(
            "Requests",
            "requests",
            axis,
            &[Series {
                name: "reports".into(),
                points: vec![(0, 1.0), (3_600_000, 4.0)],
            }],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Requests"), "{svg}");
        assert!(svg.contains("reports"), "{svg}");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "{svg}");
        assert!(svg.contains("<circle"), "each bucket is marked: {svg}");
    }
}
