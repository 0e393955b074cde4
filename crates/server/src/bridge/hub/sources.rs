//! Where each room's data comes from, as the bridge shows it on the cards and in the API: the simulator's
//! range of ids, and the real rooms of the MQTT gateway's devices file. Known when the bridge runs beside
//! them (`setpoint run`); a bridge alone on Kafka knows neither and shows no source.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use setpoint_control::SensorId;
use setpoint_wire::api::RoomSource;

#[derive(Clone, Debug, Default)]
pub struct RoomSources {
    /// The simulated rooms' ids.
    pub simulated: Option<RangeInclusive<SensorId>>,
    /// Real rooms: their devices' names and the room's name.
    pub devices: HashMap<SensorId, RoomSource>,
}

impl RoomSources {
    pub fn of(&self, sensor: SensorId) -> Option<RoomSource> {
        if let Some(source) = self.devices.get(&sensor) {
            return Some(source.clone());
        }
        self.simulated
            .as_ref()
            .is_some_and(|r| r.contains(&sensor))
            .then_some(RoomSource::Simulated)
    }
}
