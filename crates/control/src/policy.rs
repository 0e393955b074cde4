//! How a room's heater is driven: its mode (heat or off) and its control policy (the reference's hysteresis,
//! or time-proportional control), carried by the setpoint record so the control stream changes the *model*
//! a room's readings are processed with, not only its numbers.
//!
//! **Time-proportional control (TPI)**, the algorithm of the thermostats people buy and of Versatile
//! Thermostat: at the start of each cycle the heater's on-fraction is
//! `clamp(k_int·(desired − T) + k_ext·(desired − T_out), 0, 1)`; it is On for that share of the cycle, then
//! Off. Heat that keeps flowing after Off (radiators, floor heating) is what makes hysteresis overshoot its
//! band; a duty cycle proportional to the error settles instead. At most two switches per cycle.
//!
//! Everything here is decided on readings by event time ([`TpiCycle`] is part of the heater's memory and
//! of the controllers' changelog), so the same log gives the same commands, a handover or a restart carries
//! on inside the cycle, and the browser's what-if runs this very code.

use serde::{Deserialize, Serialize};

use crate::{SensorId, SetpointError, SetpointField, TimeMs};

/// Whether a room is heated at all. `Off` sends the heater one Off and then nothing, however cold (Home
/// Assistant's `hvac_mode: off`): the way to keep a heater off without a made-up low temperature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Heat,
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Heat => "heat",
            Mode::Off => "off",
        }
    }
}

/// The rule a heated room is controlled with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase", from = "PolicyJson")]
pub enum Policy {
    /// The reference thermostat's rule: On below `desired − down_delta`, Off above `desired + up_delta`.
    #[default]
    Hysteresis,
    /// Time-proportional control: each cycle On for clamp(k_int·(desired − T) + k_ext·(desired − T_out), 0, 1)
    /// of it, then Off.
    Tpi(Tpi),
}

/// What [`Policy`] is read from: the same JSON, with `{"kind": "hysteresis"}` refusing fields too (serde
/// lets a unit variant of an internally tagged enum ignore them, so a misspelt TPI request would silently
/// become hysteresis).
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum PolicyJson {
    Hysteresis {},
    Tpi(Tpi),
}

impl From<PolicyJson> for Policy {
    fn from(p: PolicyJson) -> Self {
        match p {
            PolicyJson::Hysteresis {} => Policy::Hysteresis,
            PolicyJson::Tpi(t) => Policy::Tpi(t),
        }
    }
}

/// The parameters of time-proportional control. Unknown fields are refused (a misspelt `k_int` must not
/// silently become the default).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tpi {
    /// Length of one cycle, in seconds.
    pub cycle_s: u32,
    /// On-fraction per °C the room is below `desired`.
    pub k_int: f64,
    /// On-fraction per °C the outdoors is below `desired` (needs `outdoor_sensor`).
    #[serde(default)]
    pub k_ext: f64,
    /// The sensor whose readings are the outdoor temperature for `k_ext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i32>))]
    pub outdoor_sensor: Option<SensorId>,
    /// Shortest On, in seconds: a smaller share of the cycle stays Off, and a heater switched On stays On
    /// at least this long even when a new setpoint starts a new cycle.
    #[serde(default)]
    pub min_on_s: u32,
    /// Shortest Off, in seconds: a smaller rest of the cycle stays On, and a heater switched Off stays Off
    /// at least this long.
    #[serde(default)]
    pub min_off_s: u32,
}

/// Bounds of the TPI parameters. A cycle shorter than 10 s would click a relay every few seconds; longer
/// than a day is not a cycle. Coefficients above 100 per °C are a full-on bang-bang in disguise.
pub const TPI_CYCLE_S: (u32, u32) = (10, 86_400);
pub const TPI_MAX_COEFFICIENT: f64 = 100.0;

/// What a room switched to TPI starts with (the dashboard's default): Versatile Thermostat's `coef_int` and a
/// 10-minute cycle. Without an outdoor term the error term alone must hold the steady share, so the room
/// settles below desired by share / `k_int` (≈ 0.9 °C in the comfort benchmark's building); with `k_ext`
/// and an outdoor sensor (0.03 there) TPI held a lagging room at a quarter of hysteresis's RMS deviation.
pub const DEFAULT_TPI: Tpi = Tpi::new(600, 0.6);

impl Tpi {
    /// A TPI policy with no outdoor term and no minimum times.
    pub const fn new(cycle_s: u32, k_int: f64) -> Self {
        Self {
            cycle_s,
            k_int,
            k_ext: 0.0,
            outdoor_sensor: None,
            min_on_s: 0,
            min_off_s: 0,
        }
    }

    /// The one check of TPI parameters (part of [`Limits::validate`](crate::Limits::validate)).
    pub fn validate(&self) -> Result<(), SetpointError> {
        let (min, max) = TPI_CYCLE_S;
        if !(min..=max).contains(&self.cycle_s) {
            return Err(SetpointError::OutOfRange {
                field: SetpointField::CycleS,
                value: f64::from(self.cycle_s),
                min: f64::from(min),
                max: f64::from(max),
            });
        }
        for (field, value) in [
            (SetpointField::KInt, self.k_int),
            (SetpointField::KExt, self.k_ext),
        ] {
            if !value.is_finite() {
                return Err(SetpointError::NotFinite { field });
            }
            if !(0.0..=TPI_MAX_COEFFICIENT).contains(&value) {
                return Err(SetpointError::OutOfRange {
                    field,
                    value,
                    min: 0.0,
                    max: TPI_MAX_COEFFICIENT,
                });
            }
        }
        for (field, value) in [
            (SetpointField::MinOnS, self.min_on_s),
            (SetpointField::MinOffS, self.min_off_s),
        ] {
            if value > self.cycle_s {
                return Err(SetpointError::OutOfRange {
                    field,
                    value: f64::from(value),
                    min: 0.0,
                    max: f64::from(self.cycle_s),
                });
            }
        }
        if self.k_ext > 0.0 && self.outdoor_sensor.is_none() {
            return Err(SetpointError::Missing {
                field: SetpointField::OutdoorSensor,
            });
        }
        Ok(())
    }

    /// The on-time of a cycle starting with the room at `temperature` (and outdoors at `outdoor`, when
    /// known: unknown counts as no outdoor term), in milliseconds: the formula, then the minimum times.
    pub fn on_ms(&self, desired: f64, temperature: f64, outdoor: Option<f64>) -> i64 {
        let cycle_ms = i64::from(self.cycle_s) * 1000;
        let outdoor_term = outdoor.map_or(0.0, |t_out| self.k_ext * (desired - t_out));
        let fraction = (self.k_int * (desired - temperature) + outdoor_term).clamp(0.0, 1.0);
        // `fraction` is in [0, 1] (NaN cannot reach here: temperatures are checked finite), so the product
        // fits an i64.
        let on = (fraction * cycle_ms as f64).round() as i64;
        if on < i64::from(self.min_on_s) * 1000 {
            0
        } else if cycle_ms - on < i64::from(self.min_off_s) * 1000 {
            cycle_ms
        } else {
            on
        }
    }

    pub fn cycle_ms(&self) -> i64 {
        i64::from(self.cycle_s) * 1000
    }
}

/// Where a room's current TPI cycle stands: started at `start_ms` (the event time of the reading that
/// started it) with the setpoint `version` in force, On until `on_until_ms`. Part of the heater's memory, so
/// whoever decides next continues the cycle rather than starting a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpiCycle {
    pub start_ms: TimeMs,
    pub on_until_ms: TimeMs,
    pub version: u64,
}

impl TpiCycle {
    /// Whether a reading at `t_ms` decided under `version` belongs to this cycle. A new setpoint version
    /// (a new target, new coefficients) starts a new cycle at once rather than finishing one computed for
    /// the old target: the room answers a slider within one reading, as with hysteresis.
    pub fn covers(&self, t_ms: TimeMs, version: u64, cycle_ms: i64) -> bool {
        // Checked: times come from outside (a reading dated near i64::MIN, a changelog record of another
        // producer), and a wrapped difference would make a cycle that never ends.
        self.version == version
            && t_ms
                .checked_sub(self.start_ms)
                .is_some_and(|since| (0..cycle_ms).contains(&since))
    }
}
