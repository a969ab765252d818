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

/// A line chart of `series` over `[start, end)` (Unix ms), `title` above,
/// the y axis named `unit`; hourly labels when `hourly`.
pub(crate) fn line_chart(
    title: &str,
    unit: &str,
    start: i64,
    end: i64,
    hourly: bool,
    series: &[Series],
) -> String {
    let mut svg = String::new();
    // A chart that cannot be drawn is an empty picture, never an error page.
    let _ = draw(
        &mut svg,
        title,
        unit,
        start,
        end.max(start + 1),
        hourly,
        series,
    );
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
    start: i64,
    end: i64,
    hourly: bool,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
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
        .build_cartesian_2d(start..end, 0f64..top)?;
    let label = move |x: &i64| {
        let text = bson::DateTime::from_millis(*x)
            .try_to_rfc3339_string()
            .unwrap_or_default();
        // 2026-12-07T09:00:00Z → "12-07 09:00" or "12-07".
        let keep = if hourly { 5..16 } else { 5..10 };
        text.get(keep).unwrap_or_default().replace('T', " ")
    };
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&label)
        .y_desc(unit)
        .draw()?;
    for (i, line) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
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
        let svg = line_chart(
            "Requests",
            "requests",
            0,
            7_200_000,
            true,
            &[Series {
                name: "reports".into(),
                points: vec![(0, 1.0), (3_600_000, 4.0)],
            }],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Requests"), "{svg}");
        assert!(svg.contains("reports"), "{svg}");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "{svg}");
    }
}
