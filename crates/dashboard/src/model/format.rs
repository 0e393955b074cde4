//! Number and time formatting shared by the cards, the header and the log, kept pure so it is tested once.

use setpoint_control::{Setpoint, TimeMs};

/// A setpoint-style number: at most two decimals, at least one (`20.0`, `20.5`, `20.25`).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_owned();
    }
    let s = format!("{v:.2}");
    let s = s.strip_suffix('0').unwrap_or(&s);
    s.to_owned()
}

/// A temperature with its unit.
pub fn temp(v: f64) -> String {
    format!("{} °C", num(v))
}

/// A setpoint in one short phrase: desired, then the deltas above and below (`21.0 °C +0.5/−1.0`).
pub fn band(sp: &Setpoint) -> String {
    format!(
        "{} +{}/−{}",
        temp(sp.desired),
        num(sp.up_delta),
        num(sp.down_delta)
    )
}

/// Wall-clock time of an event, `HH:MM:SS.mmm`, shifted by the browser's UTC offset (minutes east of UTC).
pub fn clock(t_ms: TimeMs, utc_offset_min: i64) -> String {
    let ms = (t_ms + utc_offset_min * 60_000).rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// How long ago, compactly: `0.4 s`, `12 s`, `3 min`, `2 h`.
pub fn age(ms: f64) -> String {
    let ms = ms.max(0.0);
    if ms < 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms < 120_000.0 {
        format!("{:.0} s", ms / 1000.0)
    } else if ms < 7_200_000.0 {
        format!("{:.0} min", ms / 60_000.0)
    } else {
        format!("{:.0} h", ms / 3_600_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn formats() {
        assert_eq!(num(20.0), "20.0");
        assert_eq!(num(20.5), "20.5");
        assert_eq!(num(20.25), "20.25");
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(f64::NAN), "—");
        assert_eq!(temp(-3.5), "-3.5 °C");
        assert_eq!(band(&Setpoint::new(21.0, 0.5, 1.25)), "21.0 °C +0.5/−1.25");
        assert_eq!(clock(3_723_004, 0), "01:02:03.004");
        assert_eq!(clock(0, 60), "01:00:00.000");
        assert_eq!(age(400.0), "0.4 s");
        assert_eq!(age(65_000.0), "65 s");
        assert_eq!(age(180_000.0), "3 min");
    }
}
