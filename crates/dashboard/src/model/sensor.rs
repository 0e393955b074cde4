//! Everything the dashboard holds about one sensor, and how urgently it needs a look.

use setpoint_control::{band_acts_on, Command, Config, Decision, Reading, SensorId, TimeMs};
use setpoint_wire::api::RoomSource;
use setpoint_wire::ws::SetpointMsg;

use crate::model::editor::Editor;
use crate::model::history::ChangeList;
use crate::model::ring::Ring;

/// The longest chart window offered (15 min); history beyond it is not kept.
const HISTORY_SPAN_MS: TimeMs = 15 * 60_000;

/// Decisions kept per sensor for the heater strip; a heater switching more often than this in 15 minutes is
/// short-cycling and the strip is saturated anyway.
const DECISIONS_PER_SENSOR: usize = 2_000;

/// Chart history, decisions, the setpoint in force and the editor of one sensor.
#[derive(Clone, Debug)]
pub struct SensorView {
    pub id: SensorId,
    pub readings: Ring<Reading>,
    pub decisions: Ring<Decision>,
    pub setpoint: Option<SetpointMsg>,
    /// Where the room's data comes from (simulated, or its devices), when the bridge knows.
    pub source: Option<RoomSource>,
    pub editor: Editor,
    /// The setpoint change history, while the user has it open.
    pub history: Option<ChangeList>,
    /// Bumped by the reducer ([`crate::model::Model::dispatch`]) whenever anything the card shows changes,
    /// so unchanged cards skip rendering and drawing.
    pub(in crate::model) rev: u64,
}

impl SensorView {
    /// An empty view keeping at most `capacity` readings.
    pub fn new(id: SensorId, capacity: usize) -> Self {
        Self {
            id,
            readings: Ring::new(capacity, HISTORY_SPAN_MS),
            decisions: Ring::new(DECISIONS_PER_SENSOR, HISTORY_SPAN_MS),
            setpoint: None,
            source: None,
            editor: Editor::default(),
            history: None,
            rev: 0,
        }
    }

    /// The card's revision: equal revisions mean nothing the card shows has changed.
    pub fn rev(&self) -> u64 {
        self.rev
    }

    /// The heater command in force: the newest decision known.
    pub fn heater(&self) -> Option<Command> {
        self.decisions.last().map(|d| d.command)
    }

    /// The newest reading.
    pub fn current(&self) -> Option<&Reading> {
        self.readings.last()
    }

    /// Milliseconds since the newest reading, against the (estimated) server clock.
    pub fn age_ms(&self, server_now: f64) -> Option<f64> {
        self.current().map(|r| server_now - r.t_ms as f64)
    }

    /// What makes this sensor worth a look now.
    pub fn attention(&self, server_now: f64, divergent: bool, config: &Config) -> Attention {
        let stale = self.age_ms(server_now).is_none_or(|a| config.is_stale(a as i64));
        let out_of_band = match (self.current(), &self.setpoint) {
            (Some(r), Some(sp)) => band_acts_on(sp.setpoint(), r),
            _ => false,
        };
        Attention {
            divergent,
            stale,
            out_of_band,
        }
    }
}

/// Reasons a sensor needs attention, most serious first; the derived ordering sorts by seriousness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attention {
    pub divergent: bool,
    pub stale: bool,
    pub out_of_band: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use setpoint_control::Setpoint;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn out_of_band_is_the_control_rule_edges_included() {
        let sp = Setpoint::new(20.0, 0.5, 1.0);
        let at = |temperature| Reading { t_ms: 0, temperature };
        assert!(!band_acts_on(sp, &at(20.5)), "the upper edge is inside");
        assert!(!band_acts_on(sp, &at(19.0)), "the lower edge is inside");
        assert!(band_acts_on(sp, &at(20.51)));
        assert!(band_acts_on(sp, &at(18.99)));
        assert!(
            !band_acts_on(sp, &at(f64::NAN)),
            "a reading the controller refuses"
        );
    }
}
