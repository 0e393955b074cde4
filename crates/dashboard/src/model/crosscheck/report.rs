//! What the cross-check tells the user: the first disagreement, and how much was checked.

use std::fmt;

use setpoint_control::{Command, SensorId, TimeMs};

/// The first disagreement found. Kept until the next (re)connect so it cannot flash by unnoticed.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    pub sensor: SensorId,
    pub t_ms: TimeMs,
    pub temperature: f64,
    /// What the browser's control core decided for this reading (`None`: nothing).
    pub local: Option<Command>,
    /// What the server decided for this reading (`None`: nothing).
    pub server: Option<Command>,
}

fn describe(c: Option<Command>) -> &'static str {
    match c {
        Some(Command::On) => "ON",
        Some(Command::Off) => "OFF",
        None => "no change",
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sensor {} at t={} ms ({:.2} °C): server decided {}, the browser's control core decided {}",
            self.sensor,
            self.t_ms,
            self.temperature,
            describe(self.server),
            describe(self.local)
        )
    }
}

/// Counters shown next to the cross-check status, so "no divergence" visibly means "checked N decisions".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrossCheckStats {
    /// Readings judged.
    pub readings: u64,
    /// Decisions on which both sides agreed.
    pub agreed: u64,
    /// Mismatches forgiven because they fell in an ambiguous stretch.
    pub tolerated: u64,
    /// Server decisions adopted without verification (no reading here to check them against).
    pub adopted: u64,
}
