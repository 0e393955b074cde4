//! What one client follows: the rule deciding which live readings, decisions and setpoints reach it.
//!
//! The state ([`super::state::HubState`]) decides a client's [`Watch`] and tells the shell, which keeps a
//! copy in the client's outbox and applies [`Watch::covers`] to every live event under the hub's lock: one
//! rule for the state's tests and the real sockets.

use std::collections::HashSet;

use setpoint_control::SensorId;

/// The rooms a client follows live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Watch {
    /// No room: a new connection, until it asks (so it costs nothing per room).
    #[default]
    Nothing,
    /// These rooms (never empty: that is `Nothing`).
    Rooms(HashSet<SensorId>),
    /// Every room, live only (tools and benchmarks: `subscribe` with `null`).
    All,
}

impl Watch {
    /// The watch of a list of rooms (empty: nothing).
    pub fn rooms(sensors: impl IntoIterator<Item = SensorId>) -> Self {
        let set: HashSet<SensorId> = sensors.into_iter().collect();
        if set.is_empty() {
            Watch::Nothing
        } else {
            Watch::Rooms(set)
        }
    }

    /// Whether the client follows `sensor`'s live data.
    pub fn covers(&self, sensor: SensorId) -> bool {
        match self {
            Watch::Rooms(set) => set.contains(&sensor),
            Watch::Nothing => false,
            Watch::All => true,
        }
    }

    /// Whether the client follows nothing at all (its outbox can skip every reading at once).
    pub fn is_nothing(&self) -> bool {
        matches!(self, Watch::Nothing)
    }

    /// The rooms of `next` that this watch did not cover: they need their history sent.
    pub fn fresh_in(&self, next: &[SensorId]) -> Vec<SensorId> {
        let mut seen = HashSet::new();
        next.iter()
            .copied()
            .filter(|&s| !self.covers(s) && seen.insert(s))
            .collect()
    }
}
