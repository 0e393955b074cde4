//! Number and time formatting shared by the cards, the header and the log, kept pure so it is tested once.

use setpoint_control::{Mode, Policy, Setpoint, TimeMs};
use setpoint_wire::schedule::{NextStep, ScheduleStep, Weekday};

/// Short day names, Monday first (the order of [`Weekday::ALL`]).
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn day_name(d: Weekday) -> &'static str {
    DAY_NAMES[Weekday::ALL.iter().position(|x| *x == d).unwrap_or(0)]
}

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

/// How a room is controlled, in a few words: `hysteresis`, `TPI 600 s × 0.6` (`+ 0.03 × outdoor 7`), or
/// `off`.
pub fn regime(sp: &Setpoint) -> String {
    match (sp.mode, sp.policy) {
        (Mode::Off, _) => "off".to_owned(),
        (Mode::Heat, Policy::Hysteresis) => "hysteresis".to_owned(),
        (Mode::Heat, Policy::Tpi(t)) => {
            let outdoor = match t.outdoor_sensor {
                Some(o) if t.k_ext > 0.0 => format!(" + {} × outdoor {o}", num(t.k_ext)),
                _ => String::new(),
            };
            format!("TPI {} s × {}{outdoor}", t.cycle_s, num(t.k_int))
        }
    }
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

/// Day and wall-clock time of an instant, `Mon 22:00` (`Mon 22:00:30` when the seconds are not zero),
/// shifted by `utc_offset_min`: the browser's UTC offset *at that instant* (minutes east of UTC), which the
/// caller asks the browser for, so a step after a DST change shows the time the room will see.
pub fn day_time(t_ms: TimeMs, utc_offset_min: i64) -> String {
    let local = t_ms + utc_offset_min * 60_000;
    let day = local.div_euclid(86_400_000);
    // 1970-01-01 was a Thursday: day 0 is index 3 from Monday.
    let name = DAY_NAMES[(day + 3).rem_euclid(7) as usize];
    let secs = local.rem_euclid(86_400_000) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("{name} {h:02}:{m:02}")
    } else {
        format!("{name} {h:02}:{m:02}:{s:02}")
    }
}

/// A card's next scheduled change: `next 17.0 °C · Mon 22:00 · office`.
pub fn next_step(step: &NextStep, utc_offset_min: i64) -> String {
    let what = match step.mode {
        Some(Mode::Off) => "off".to_owned(),
        _ => temp(step.desired),
    };
    format!(
        "next {what} · {} · {}",
        day_time(step.at_ms, utc_offset_min),
        step.schedule
    )
}

/// Days of a step, runs of three or more joined: `Mon–Fri`, `Sat, Sun`, `Mon, Wed–Sun`, `every day`.
pub fn days(days: &[Weekday]) -> String {
    let on = Weekday::ALL.map(|d| days.contains(&d));
    if on.iter().all(|d| *d) {
        return "every day".to_owned();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 7 {
        if !on[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 7 && on[i + 1] {
            i += 1;
        }
        match i - start {
            0 => parts.push(DAY_NAMES[start].to_owned()),
            1 => parts.extend([DAY_NAMES[start].to_owned(), DAY_NAMES[i].to_owned()]),
            _ => parts.push(format!("{}–{}", DAY_NAMES[start], DAY_NAMES[i])),
        }
        i += 1;
    }
    if parts.is_empty() {
        return "no day".to_owned();
    }
    parts.join(", ")
}

/// One step of a schedule: `Mon–Fri 06:30 → 21.0 °C +0.5/−0.5`.
pub fn step(step: &ScheduleStep) -> String {
    let sp = step.setpoint_over(None);
    match step.mode {
        Some(Mode::Off) => format!("{} {} → off", days(&step.days), step.time),
        _ => format!("{} {} → {}", days(&step.days), step.time, band(&sp)),
    }
}

/// A weekday's short name (for the step editor's checkboxes).
pub fn weekday(d: Weekday) -> &'static str {
    day_name(d)
}

/// A weekday as the API spells it (`mon`), for the step editor's `data-day`.
pub fn weekday_id(d: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][Weekday::ALL.iter().position(|x| *x == d).unwrap_or(0)]
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

/// Where a room's data comes from, for its card: `simulated room`, or its name, devices and when it was
/// last heard from (`Bedroom · zigbee2mqtt:bed_sensor · seen 3.0 s ago`).
pub fn source(source: &setpoint_wire::api::RoomSource, age_ms: Option<f64>) -> String {
    use setpoint_wire::api::RoomSource;
    match source {
        RoomSource::Simulated => "simulated room".to_owned(),
        RoomSource::Devices { devices, name } => {
            let seen = match age_ms {
                Some(ms) => format!("seen {} ago", age(ms)),
                None => "not heard from yet".to_owned(),
            };
            match name {
                Some(name) => format!("{name} · {devices} · {seen}"),
                None => format!("{devices} · {seen}"),
            }
        }
    }
}

/// `simulated` or `devices`, for the card's `data-source`.
pub fn source_kind(source: &setpoint_wire::api::RoomSource) -> &'static str {
    match source {
        setpoint_wire::api::RoomSource::Simulated => "simulated",
        setpoint_wire::api::RoomSource::Devices { .. } => "devices",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn a_card_says_where_its_room_is_heard_from() {
        use setpoint_wire::api::RoomSource;
        assert_eq!(source(&RoomSource::Simulated, Some(100.0)), "simulated room");
        let bedroom = RoomSource::Devices {
            devices: "zigbee2mqtt:bed_sensor, zigbee2mqtt:bed_plug".into(),
            name: Some("Bedroom".into()),
        };
        assert_eq!(
            source(&bedroom, Some(3_000.0)),
            "Bedroom · zigbee2mqtt:bed_sensor, zigbee2mqtt:bed_plug · seen 3.0 s ago"
        );
        let unnamed = RoomSource::Devices {
            devices: "tasmota:hall".into(),
            name: None,
        };
        assert_eq!(source(&unnamed, None), "tasmota:hall · not heard from yet");
    }

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

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn schedule_times_and_days() {
        // 2024-01-01 was a Monday; 22:00 UTC.
        let mon_22 = 1_704_146_400_000;
        assert_eq!(day_time(mon_22, 0), "Mon 22:00");
        assert_eq!(day_time(mon_22 + 30_000, 0), "Mon 22:00:30");
        // Helsinki in winter (UTC+2) is already Tuesday; New York (UTC−5) is still Monday afternoon.
        assert_eq!(day_time(mon_22, 120), "Tue 00:00");
        assert_eq!(day_time(mon_22, 60), "Mon 23:00");
        assert_eq!(day_time(mon_22, -300), "Mon 17:00");
        assert_eq!(day_time(0, 0), "Thu 00:00", "the epoch was a Thursday");
        assert_eq!(day_time(-1_000, 0), "Wed 23:59:59");
        let next = NextStep {
            sensor: 1,
            schedule: "office".into(),
            at_ms: mon_22,
            desired: 17.0,
            up_delta: 0.5,
            down_delta: 0.5,
            mode: None,
        };
        assert_eq!(next_step(&next, 0), "next 17.0 °C · Mon 22:00 · office");
        let off = NextStep {
            mode: Some(Mode::Off),
            ..next.clone()
        };
        assert_eq!(next_step(&off, 0), "next off · Mon 22:00 · office");
        use Weekday::*;
        assert_eq!(days(&[Mon, Tue, Wed, Thu, Fri]), "Mon–Fri");
        assert_eq!(days(&[Sun, Sat]), "Sat, Sun");
        assert_eq!(days(&[Mon, Wed, Thu, Fri, Sat, Sun]), "Mon, Wed–Sun");
        assert_eq!(days(&Weekday::ALL), "every day");
        assert_eq!(days(&[]), "no day");
        let st = ScheduleStep {
            days: vec![Mon, Tue, Wed, Thu, Fri],
            time: "06:30".into(),
            desired: 21.0,
            up_delta: 0.5,
            down_delta: 0.5,
            mode: None,
            policy: None,
        };
        assert_eq!(step(&st), "Mon–Fri 06:30 → 21.0 °C +0.5/−0.5");
        let off = ScheduleStep {
            mode: Some(Mode::Off),
            ..st.clone()
        };
        assert_eq!(step(&off), "Mon–Fri 06:30 → off");
        let sp = st.setpoint_over(None);
        assert_eq!(regime(&sp), "hysteresis");
        let tpi = setpoint_control::Tpi {
            k_ext: 0.03,
            outdoor_sensor: Some(7),
            ..setpoint_control::Tpi::new(600, 0.6)
        };
        assert_eq!(
            regime(&sp.with_policy(Policy::Tpi(tpi))),
            "TPI 600 s × 0.6 + 0.03 × outdoor 7"
        );
        assert_eq!(regime(&sp.with_mode(Mode::Off)), "off");
        assert_eq!(weekday(Sun), "Sun");
        for d in Weekday::ALL {
            let api = serde_json::to_string(&d).expect("json");
            assert_eq!(api, format!("\"{}\"", weekday_id(d)), "the API's spelling");
        }
    }
}
