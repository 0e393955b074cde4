//! Setpoints and the one place where their validity is decided.
//!
//! The bridge validates a browser's write with [`Limits::validate`] before it reaches the setpoint stream, and
//! the controller validates again when it applies one (the stream may carry writes from other producers, such as
//! the reference thermostat's tools). Both call this function, so the rule cannot drift between them.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::policy::{Mode, Policy};
use crate::Command;

/// A per-sensor comfort band: the heater turns On below `desired - down_delta` and Off above
/// `desired + up_delta`. Between the two edges (inclusive) nothing is decided, which is what gives the
/// thermostat its hysteresis.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Unknown fields refused: this is the body of a single write (`PUT …/setpoint`), where a misspelt field
// must be an error, as in every other write (`setpoint_wire::write`).
#[serde(deny_unknown_fields)]
pub struct Setpoint {
    /// The temperature people want, in °C.
    pub desired: f64,
    /// How far above `desired` the room may drift before the heater is turned Off, in °C.
    pub up_delta: f64,
    /// How far below `desired` the room may drift before the heater is turned On, in °C.
    pub down_delta: f64,
    /// Heat (the default) or off.
    #[serde(default)]
    pub mode: Mode,
    /// The rule the room is controlled with: hysteresis on the band (the default) or TPI.
    #[serde(default)]
    pub policy: Policy,
}

/// Where a room without a setpoint starts when someone edits it (the dashboard's editor, Home Assistant's
/// mode switch): 20 °C ± 0.5.
pub const DEFAULT_SETPOINT: Setpoint = Setpoint::new(20.0, 0.5, 0.5);

impl Setpoint {
    /// Builds a setpoint without validating it; validation happens where it is applied, against the
    /// [`Limits`] in force there.
    pub const fn new(desired: f64, up_delta: f64, down_delta: f64) -> Self {
        Self {
            desired,
            up_delta,
            down_delta,
            mode: Mode::Heat,
            policy: Policy::Hysteresis,
        }
    }

    /// This setpoint in `mode`.
    pub const fn with_mode(self, mode: Mode) -> Self {
        Self { mode, ..self }
    }

    /// This setpoint controlled with `policy`.
    pub const fn with_policy(self, policy: Policy) -> Self {
        Self { policy, ..self }
    }

    /// The setpoint a write asks for: its numbers, and its mode and policy where it gives them — where it
    /// does not, the room keeps those `in_force` (a script that only moves the target must not switch a
    /// TPI room back to hysteresis); a room without a setpoint gets the defaults.
    pub fn requested(
        desired: f64,
        up_delta: f64,
        down_delta: f64,
        mode: Option<Mode>,
        policy: Option<Policy>,
        in_force: Option<&Setpoint>,
    ) -> Self {
        Self {
            desired,
            up_delta,
            down_delta,
            mode: mode.or(in_force.map(|s| s.mode)).unwrap_or_default(),
            policy: policy.or(in_force.map(|s| s.policy)).unwrap_or_default(),
        }
    }

    /// How long a heater last switched to `last` must stay so before this setpoint may switch it back: a
    /// heated TPI room's minimum on (or off) time, 0 otherwise. Mode off is not held: turning a room off
    /// is a person's decision and goes out at once (the global dwell aside).
    pub fn min_time_ms(&self, last: Command) -> i64 {
        match (self.mode, self.policy, last) {
            (Mode::Heat, Policy::Tpi(t), Command::On) => i64::from(t.min_on_s) * 1000,
            (Mode::Heat, Policy::Tpi(t), Command::Off) => i64::from(t.min_off_s) * 1000,
            _ => 0,
        }
    }

    /// Upper edge of the band: a reading strictly above it turns the heater Off.
    pub fn upper(&self) -> f64 {
        self.desired + self.up_delta
    }

    /// Lower edge of the band: a reading strictly below it turns the heater On.
    pub fn lower(&self) -> f64 {
        self.desired - self.down_delta
    }
}

/// Names a setpoint field in errors, so a user sees which of the three numbers was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetpointField {
    Desired,
    UpDelta,
    DownDelta,
    CycleS,
    KInt,
    KExt,
    MinOnS,
    MinOffS,
    OutdoorSensor,
}

impl SetpointField {
    /// The field's name as it appears on the WebSocket protocol, so error texts match what the client sent.
    pub fn as_str(self) -> &'static str {
        match self {
            SetpointField::Desired => "desired",
            SetpointField::UpDelta => "up_delta",
            SetpointField::DownDelta => "down_delta",
            SetpointField::CycleS => "policy.cycle_s",
            SetpointField::KInt => "policy.k_int",
            SetpointField::KExt => "policy.k_ext",
            SetpointField::MinOnS => "policy.min_on_s",
            SetpointField::MinOffS => "policy.min_off_s",
            SetpointField::OutdoorSensor => "policy.outdoor_sensor",
        }
    }
}

impl fmt::Display for SetpointField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a setpoint was refused. Every variant names the field, so the message can be shown to a user as is.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum SetpointError {
    #[error("{field} must be a finite number")]
    NotFinite { field: SetpointField },
    #[error("{field} must be ≥ 0 (got {value})")]
    Negative { field: SetpointField, value: f64 },
    #[error("{field} must be between {min} and {max} (got {value})")]
    OutOfRange {
        field: SetpointField,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("{field} is required")]
    Missing { field: SetpointField },
}

impl SetpointError {
    /// The field the error is about, for clients that highlight the offending input.
    pub fn field(&self) -> SetpointField {
        match *self {
            SetpointError::NotFinite { field }
            | SetpointError::Negative { field, .. }
            | SetpointError::OutOfRange { field, .. }
            | SetpointError::Missing { field } => field,
        }
    }
}

/// The range of setpoints an installation accepts. Configurable because a sauna and a cold store need
/// different bounds; the defaults cover rooms, water tanks and process heaters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub desired_min: f64,
    pub desired_max: f64,
    /// Largest accepted `up_delta` or `down_delta`.
    pub max_delta: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            desired_min: -50.0,
            desired_max: 150.0,
            max_delta: 50.0,
        }
    }
}

impl Limits {
    /// Checks a setpoint against these limits. Non-finite values are reported before range errors because
    /// NaN compares false with everything and would otherwise slip through a range check.
    pub fn validate(&self, sp: &Setpoint) -> Result<(), SetpointError> {
        let fields = [
            (SetpointField::Desired, sp.desired),
            (SetpointField::UpDelta, sp.up_delta),
            (SetpointField::DownDelta, sp.down_delta),
        ];
        for (field, value) in fields {
            if !value.is_finite() {
                return Err(SetpointError::NotFinite { field });
            }
        }
        if !(self.desired_min..=self.desired_max).contains(&sp.desired) {
            return Err(SetpointError::OutOfRange {
                field: SetpointField::Desired,
                value: sp.desired,
                min: self.desired_min,
                max: self.desired_max,
            });
        }
        for (field, value) in [
            (SetpointField::UpDelta, sp.up_delta),
            (SetpointField::DownDelta, sp.down_delta),
        ] {
            // `-0.0 < 0.0` is false, so a negative zero is accepted as the zero it equals.
            if value < 0.0 {
                return Err(SetpointError::Negative { field, value });
            }
            if value > self.max_delta {
                return Err(SetpointError::OutOfRange {
                    field,
                    value,
                    min: 0.0,
                    max: self.max_delta,
                });
            }
        }
        match sp.policy {
            Policy::Hysteresis => Ok(()),
            Policy::Tpi(tpi) => tpi.validate(),
        }
    }
}
