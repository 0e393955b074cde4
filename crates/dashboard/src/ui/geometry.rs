//! Chart geometry: which pixels the data lands on. Pure, so it is tested without a canvas.
//!
//! A 15-minute window at 10 Hz is 9,000 points for a ~400 px wide chart; drawing every point would cost far
//! more than it shows. Points are binned per pixel column keeping min and max, so spikes survive the
//! reduction and the drawing cost depends on the chart's width, not on the history's length.

use setpoint_control::{Command, Reading, TimeMs};

/// One pixel column of readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Column {
    pub x: usize,
    pub min: f64,
    pub max: f64,
    pub last: f64,
}

/// Bins readings in `[from, to]` into `width` columns (min, max and last temperature per column).
pub fn columns<'a>(
    readings: impl IntoIterator<Item = &'a Reading>,
    from: TimeMs,
    to: TimeMs,
    width: usize,
) -> Vec<Column> {
    let span = (to - from).max(1) as f64;
    let width = width.max(1);
    let mut out: Vec<Column> = Vec::with_capacity(width);
    for r in readings {
        if r.t_ms < from || r.t_ms > to || !r.temperature.is_finite() {
            continue;
        }
        let x = (((r.t_ms - from) as f64 / span) * (width - 1) as f64).round() as usize;
        match out.last_mut() {
            Some(c) if c.x == x => {
                c.min = c.min.min(r.temperature);
                c.max = c.max.max(r.temperature);
                c.last = r.temperature;
            }
            _ => out.push(Column {
                x,
                min: r.temperature,
                max: r.temperature,
                last: r.temperature,
            }),
        }
    }
    out
}

/// The temperature range to plot: the data and the comfort band, padded, never narrower than 1 °C.
pub fn y_range(cols: &[Column], band: Option<(f64, f64)>) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for c in cols {
        lo = lo.min(c.min);
        hi = hi.max(c.max);
    }
    if let Some((a, b)) = band {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return (19.0, 21.0);
    }
    let mid = (lo + hi) / 2.0;
    let half = ((hi - lo) / 2.0).max(0.5) * 1.1;
    (mid - half, mid + half)
}

/// A stretch of time with one heater state (`None`: not known yet).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub from: TimeMs,
    pub to: TimeMs,
    pub command: Option<Command>,
}

/// Heater state over `[from, to]`: `before` is the command in force at `from`, `switches` the decisions inside
/// the window in time order.
pub fn segments(
    before: Option<Command>,
    switches: &[(TimeMs, Command)],
    from: TimeMs,
    to: TimeMs,
) -> Vec<Segment> {
    let mut out = Vec::with_capacity(switches.len() + 1);
    let mut start = from;
    let mut state = before;
    for &(t, c) in switches {
        let t = t.clamp(from, to);
        if t > start {
            out.push(Segment {
                from: start,
                to: t,
                command: state,
            });
        }
        start = t;
        state = Some(c);
    }
    if to > start {
        out.push(Segment {
            from: start,
            to,
            command: state,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn bins_keep_extremes_and_bound_output() {
        let rs: Vec<Reading> = (0..9_000)
            .map(|i| Reading {
                t_ms: i * 100,
                temperature: if i == 4_500 { 99.0 } else { 20.0 },
            })
            .collect();
        let cols = columns(&rs, 0, 899_900, 300);
        assert!(cols.len() <= 300);
        assert!(cols.iter().any(|c| c.max == 99.0), "a one-sample spike survives");
        assert_eq!(cols.first().map(|c| c.x), Some(0));
        assert_eq!(cols.last().map(|c| c.x), Some(299));
        assert_eq!(y_range(&[], None), (19.0, 21.0));
        let (lo, hi) = y_range(&cols, Some((19.5, 20.5)));
        assert!(lo < 19.5 && hi > 99.0);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn heater_segments_cover_the_window() {
        let segs = segments(
            Some(Command::Off),
            &[(10, Command::On), (30, Command::Off)],
            0,
            50,
        );
        assert_eq!(
            segs,
            vec![
                Segment {
                    from: 0,
                    to: 10,
                    command: Some(Command::Off)
                },
                Segment {
                    from: 10,
                    to: 30,
                    command: Some(Command::On)
                },
                Segment {
                    from: 30,
                    to: 50,
                    command: Some(Command::Off)
                },
            ]
        );
        assert_eq!(
            segments(None, &[], 0, 5),
            vec![Segment {
                from: 0,
                to: 5,
                command: None
            }]
        );
    }
}
