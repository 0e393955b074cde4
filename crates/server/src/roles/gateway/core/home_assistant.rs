//! What Home Assistant sees of the gateway and says to it: each room announced (discovery config and
//! state) as the client takes them, the target, mode, action and temperature kept current, and
//! `set_temperature` and `set_hvac_mode` (heat or off) as conditional setpoint writes judged by the one
//! [`SetpointTable`] rule. Part of [`Gateway`].

use setpoint_control::{
    Command, Mode, SensorId, SensorReading, Setpoint, SetpointChange, SetpointTable, TimeMs, Verdict,
    DEFAULT_SETPOINT,
};

use super::{refuse, Effect, Gateway, AUTHOR, MAX_PENDING_WRITES, TEMPERATURE_EVERY_MS};
use crate::bus::Record;
use crate::roles::gateway::payload::{number, parse_number, shown};

impl Gateway {
    /// Whether rooms are still to be announced: the shell calls [`Gateway::poll_announcements`] as its
    /// client takes publications.
    pub fn announcing(&self) -> bool {
        self.announce_from.is_some()
    }

    /// Announces (config and state) up to `max_rooms` of the rooms still to be announced, in id order. A
    /// building's 100,000 configs are thus produced as the broker takes them, never all held at once.
    pub fn poll_announcements(&mut self, max_rooms: usize, out: &mut Vec<Effect>) {
        let Some(from) = self.announce_from else {
            return;
        };
        let batch: Vec<SensorId> = self
            .announced
            .range(from..)
            .take(max_rooms + 1)
            .copied()
            .collect();
        self.announce_from = batch.get(max_rooms).copied();
        for sensor in batch.into_iter().take(max_rooms) {
            self.announce(sensor, out);
        }
    }

    /// A record of the setpoints stream, in stream order.
    pub fn on_setpoint(&mut self, record: &Record<SetpointChange>, now: TimeMs, out: &mut Vec<Effect>) {
        let change = &record.value;
        let mine = (!change.write_id.is_empty())
            .then(|| self.own_writes.remove(&change.write_id))
            .flatten();
        // Refused records are counted by the controller; here they change nothing.
        let Ok(verdict) = self.table.judge(change, record.arrival(now)) else {
            return;
        };
        match verdict {
            Verdict::Applied { .. } => {
                if self.announced.insert(change.sensor) {
                    self.announce(change.sensor, out);
                } else {
                    self.publish_target(change.sensor, out);
                    self.publish_action(change.sensor, out);
                }
            }
            Verdict::Restated { .. } => {}
            Verdict::Skipped { .. } => {
                if mine.is_some() {
                    // Our write lost to another: restate the winner (so it is the sensor's newest record)
                    // and show Home Assistant what is in force.
                    if let Some(restatement) = self.table.restatement(change.sensor) {
                        out.push(Effect::Setpoint(restatement));
                    }
                    self.publish_target(change.sensor, out);
                }
            }
        }
    }

    /// A write the bus would not take: Home Assistant is shown the value in force again.
    pub fn write_failed(&mut self, change: &SetpointChange, out: &mut Vec<Effect>) {
        self.own_writes.remove(&change.write_id);
        self.publish_target(change.sensor, out);
    }

    /// A reading of the readings stream (the gateway's own included): Home Assistant's current temperature.
    pub fn on_reading(&mut self, reading: &SensorReading, now: TimeMs, out: &mut Vec<Effect>) {
        if !self.announced.contains(&reading.sensor) {
            return;
        }
        let shown = self.temperatures.entry(reading.sensor).or_default();
        if now - shown.at >= TEMPERATURE_EVERY_MS {
            shown.at = now;
            shown.pending = None;
            let topic = self.room_topic(reading.sensor, "temperature");
            self.publish(out, topic, number(reading.temperature), true);
        } else {
            shown.pending = Some(reading.temperature);
        }
    }

    pub(super) fn on_target_set(
        &mut self,
        sensor: SensorId,
        payload: &[u8],
        now: TimeMs,
        out: &mut Vec<Effect>,
    ) {
        if !self.is_ours(sensor, "set_temperature_unknown_room", out) {
            return;
        }
        let Some(desired) = parse_number(payload) else {
            refuse(
                out,
                "set_temperature_not_a_number",
                format!("room {sensor}: {}", shown(payload)),
            );
            return self.publish_target(sensor, out);
        };
        self.write(sensor, now, out, "set_temperature_refused", |sp| {
            sp.desired = desired
        });
    }

    /// Whether a command of Home Assistant's is for one of our rooms (announced); if not, it is refused as
    /// `kind`.
    fn is_ours(&self, sensor: SensorId, kind: &'static str, out: &mut Vec<Effect>) -> bool {
        let ours = self.announced.contains(&sensor);
        if !ours {
            refuse(out, kind, format!("room {sensor} is not one of ours"));
        }
        ours
    }

    /// Home Assistant's `set_hvac_mode`: `heat` or `off`, the room's numbers and policy kept.
    pub(super) fn on_mode_set(
        &mut self,
        sensor: SensorId,
        payload: &[u8],
        now: TimeMs,
        out: &mut Vec<Effect>,
    ) {
        if !self.is_ours(sensor, "set_hvac_mode_unknown_room", out) {
            return;
        }
        let mode = match payload {
            b"heat" => Mode::Heat,
            b"off" => Mode::Off,
            _ => {
                refuse(
                    out,
                    "set_hvac_mode_unknown",
                    format!("room {sensor}: {} (heat or off)", shown(payload)),
                );
                return self.publish_target(sensor, out);
            }
        };
        self.write(sensor, now, out, "set_hvac_mode_refused", |sp| sp.mode = mode);
    }

    /// A conditional write of the value in force changed by `change` (`DEFAULT_SETPOINT` for a room
    /// without one: switching it off and on again leaves it at 20 °C, not at a made-up 0 °C), by the
    /// author `homeassistant`.
    fn write(
        &mut self,
        sensor: SensorId,
        now: TimeMs,
        out: &mut Vec<Effect>,
        refusal: &'static str,
        change: impl FnOnce(&mut Setpoint),
    ) {
        let (base, mut setpoint) = match self.table.in_force(sensor) {
            Some(f) => (f.version, f.setpoint),
            None => (0, DEFAULT_SETPOINT),
        };
        change(&mut setpoint);
        self.next_write += 1;
        let write_id = format!("{}-{}", self.opts.writer, self.next_write);
        let change = SetpointTable::next_version(sensor, base).and_then(|version| {
            let change = SetpointChange::new(sensor, setpoint, version, AUTHOR, now)
                .conditional(base, write_id.clone());
            self.table.check(&change, None).map(|()| change)
        });
        match change {
            Ok(change) => {
                if self.own_writes.len() >= MAX_PENDING_WRITES {
                    self.own_writes.clear();
                }
                self.own_writes.insert(write_id, sensor);
                out.push(Effect::Setpoint(change));
            }
            Err(e) => {
                refuse(out, refusal, e.to_string());
                self.publish_target(sensor, out);
            }
        }
    }

    /// Every room is to be announced again, from the first (see [`Gateway::poll_announcements`]).
    pub(super) fn announce_all(&mut self) {
        if self.connected {
            self.announce_from = self.announced.first().copied();
        }
    }

    /// A room's discovery config and its state.
    pub(super) fn announce(&mut self, sensor: SensorId, out: &mut Vec<Effect>) {
        if let Some(p) = self.opts.discovery_prefix.clone() {
            let config = crate::roles::gateway::discovery::climate_config(self, sensor);
            self.publish(
                out,
                format!("{p}/climate/setpoint_{sensor}/config"),
                config.to_string(),
                true,
            );
        }
        self.publish_target(sensor, out);
        self.publish_action(sensor, out);
        if let Some(value) = self.temperatures.get(&sensor).and_then(|s| s.pending) {
            self.publish(out, self.room_topic(sensor, "temperature"), number(value), true);
        }
    }

    /// The setpoint in force as Home Assistant shows it: its target and its mode (and the action, which
    /// reads `off` in mode off).
    pub(super) fn publish_target(&mut self, sensor: SensorId, out: &mut Vec<Effect>) {
        if let Some(desired) = self.table.in_force(sensor).map(|f| f.setpoint.desired) {
            self.publish(out, self.room_topic(sensor, "target"), number(desired), true);
        }
        self.publish_mode(sensor, out);
    }

    /// The mode in force (`heat` for a room without a setpoint, as the controller treats it).
    fn publish_mode(&mut self, sensor: SensorId, out: &mut Vec<Effect>) {
        let mode = self.mode(sensor);
        self.publish(out, self.room_topic(sensor, "mode"), mode.as_str().into(), true);
    }

    fn mode(&self, sensor: SensorId) -> Mode {
        self.table
            .in_force(sensor)
            .map_or(Mode::Heat, |f| f.setpoint.mode)
    }

    pub(super) fn publish_action(&mut self, sensor: SensorId, out: &mut Vec<Effect>) {
        let action = match (self.mode(sensor), self.commands.get(&sensor)) {
            (Mode::Off, _) => "off",
            (Mode::Heat, Some(Command::On)) => "heating",
            (Mode::Heat, _) => "idle",
        };
        self.publish(out, self.room_topic(sensor, "action"), action.into(), true);
    }

    /// Temperatures held back by [`TEMPERATURE_EVERY_MS`] are published once it has passed.
    pub(super) fn publish_held_temperatures(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        let due: Vec<(SensorId, f64)> = self
            .temperatures
            .iter_mut()
            .filter(|(_, s)| now - s.at >= TEMPERATURE_EVERY_MS)
            .filter_map(|(sensor, s)| {
                let value = s.pending.take()?;
                s.at = now;
                Some((*sensor, value))
            })
            .collect();
        for (sensor, value) in due {
            let topic = self.room_topic(sensor, "temperature");
            self.publish(out, topic, number(value), true);
        }
    }
}
