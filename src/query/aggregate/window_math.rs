//! The numeric window functions of `$setWindowFields`: `$derivative`,
//! `$integral` and `$expMovingAvg`, over (x, y) points where x is the
//! `sortBy` value (a number, or a date in milliseconds).

/// Milliseconds in a time unit usable by `$derivative` and `$integral`.
pub(super) fn unit_millis(unit: &str) -> Option<f64> {
    Some(match unit {
        "week" => 604_800_000.0,
        "day" => 86_400_000.0,
        "hour" => 3_600_000.0,
        "minute" => 60_000.0,
        "second" => 1000.0,
        "millisecond" => 1.0,
        _ => return None,
    })
}

/// `$derivative`: the slope between the window's first and last points;
/// `None` with fewer than two points or no change of x.
pub(super) fn derivative(points: &[(f64, f64)], per: f64) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < 2 || last.0 == first.0 {
        return None;
    }
    Some((last.1 - first.1) / ((last.0 - first.0) / per))
}

/// `$integral`: the area under the points by the trapezoidal rule; `None`
/// for an empty window.
pub(super) fn integral(points: &[(f64, f64)], per: f64) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    Some(
        points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) / per * (w[0].1 + w[1].1) / 2.0)
            .sum(),
    )
}

/// `$expMovingAvg` over a partition: each numeric input moves the average by
/// `alpha`; the first numeric input starts it; non-numeric inputs leave it
/// unchanged (null until the first numeric input).
pub(super) fn exp_moving_avg(inputs: &[Option<f64>], alpha: f64) -> Vec<Option<f64>> {
    let mut avg: Option<f64> = None;
    inputs
        .iter()
        .map(|x| {
            if let Some(x) = x {
                avg = Some(match avg {
                    None => *x,
                    Some(prev) => alpha * x + (1.0 - alpha) * prev,
                });
            }
            avg
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calculus() {
        let pts = [(0.0, 0.0), (1.0, 2.0), (3.0, 2.0)];
        assert_eq!(derivative(&pts, 1.0), Some(2.0 / 3.0));
        assert_eq!(derivative(&pts[..1], 1.0), None);
        assert_eq!(integral(&pts, 1.0), Some(1.0 + 4.0));
        assert_eq!(integral(&[], 1.0), None);
        assert_eq!(integral(&pts[..1], 1.0), Some(0.0));
        // Per hour over millisecond x values.
        let hours = [(0.0, 0.0), (7_200_000.0, 10.0)];
        assert_eq!(derivative(&hours, unit_millis("hour").unwrap()), Some(5.0));
        assert_eq!(
            exp_moving_avg(&[None, Some(10.0), Some(20.0), None], 0.5),
            vec![None, Some(10.0), Some(15.0), Some(15.0)]
        );
    }
}
