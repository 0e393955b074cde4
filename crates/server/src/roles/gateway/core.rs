//! The gateway's core, sans-IO: MQTT messages, bus records and the time come in; MQTT publications,
//! readings and setpoint writes go out as [`Effect`]s. The shell (`mod.rs`) owns the MQTT client and the
//! bus; everything that decides — what a payload means, when a command is sent again, what Home Assistant
//! is told — is here, where a test drives it without a broker.
//!
//! **State, not events, towards MQTT.** What the gateway publishes is state: the command in force for each
//! heater, each room's target, action and temperature, the discovery configs. Nothing is queued while the
//! broker is away; on every (re)connection all of it is published again, and the heaters' commands are sent
//! again, so a broker restart or a lost message cannot leave a relay in the wrong state for longer than the
//! reconnection.
//!
//! (Over 400 lines: one state machine whose inputs — MQTT, three streams, time — share all of its state;
//! the payload parsing lives in `payload.rs`, the discovery document in `discovery.rs`.)
//!
//! **One setpoint rule.** Home Assistant's `set_temperature` becomes a conditional write on the version in
//! force, checked by the same [`SetpointTable`] every reader of the setpoint stream uses, so the gateway's
//! writes win or lose exactly as the dashboard's do; a write that lost is restated, and Home Assistant is
//! told the value in force either way.

use std::collections::{BTreeSet, HashMap};

use setpoint_control::{
    check_temperature, Command, Config, Decision, SensorId, SensorReading, Setpoint, SetpointChange,
    SetpointTable, TimeMs, Verdict,
};

use super::devices::Room;
use super::payload::{extract_number, extract_text, is_online, number, parse_number, shown};
use crate::bus::Record;

/// The author of the setpoints Home Assistant writes (reserved: no token can take it).
pub const AUTHOR: &str = "homeassistant";
/// The deltas of a room's first setpoint written from Home Assistant, which sends only the target.
pub const DEFAULT_DELTA: f64 = 0.5;
/// A room's current temperature is published at most this often: Home Assistant records every state
/// change, and a sensor reporting twice a second would fill its database.
pub const TEMPERATURE_EVERY_MS: TimeMs = 5_000;
/// The soonest a command is sent again to a relay that reports the wrong state (a relay that ignores us must
/// not be flooded).
pub const MISMATCH_RESEND_MS: TimeMs = 5_000;
/// Largest device payload read; larger ones are refused (zigbee2mqtt's biggest device states are a few KB).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Own writes awaiting read-back, at most; beyond it the oldest are forgotten (their read-back is then
/// treated as anyone's write, which only skips the restatement).
const MAX_PENDING_WRITES: usize = 10_000;

/// What the gateway is configured with.
#[derive(Clone, Debug)]
pub struct Options {
    /// The prefix of setpoint's own topics (`setpoint`): `setpoint/status`, `setpoint/room/<id>/…`.
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix (`homeassistant`); `None` publishes no discovery.
    pub discovery_prefix: Option<String>,
    /// How often the command in force is sent again to every real heater, in ms.
    pub resend_ms: TimeMs,
    /// The limits, clock skew and sensor bound every setpoint reader uses.
    pub config: Config,
    /// Tells this gateway's writes apart from others' (`write_id` prefix).
    pub writer: String,
    /// The version reported in discovery's device and origin.
    pub sw_version: String,
}

/// One MQTT publication.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

/// Why something that arrived was not taken: counted and logged once per kind by the shell.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub kind: &'static str,
    pub detail: String,
}

/// What the core asks the shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Publish(Publication),
    /// A reading for the readings stream.
    Reading(SensorReading),
    /// A setpoint record for the setpoints stream.
    Setpoint(SetpointChange),
    Refused(Refusal),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listen {
    Temperature,
    RelayState,
    Availability,
}

#[derive(Default)]
struct Shown {
    at: TimeMs,
    pending: Option<f64>,
}

/// The gateway's state.
pub struct Gateway {
    opts: Options,
    table: SetpointTable,
    devices: HashMap<SensorId, Room>,
    listening: HashMap<String, Vec<(SensorId, Listen)>>,
    /// Rooms Home Assistant knows of: every device room, and every room with a setpoint in force.
    announced: BTreeSet<SensorId>,
    commands: HashMap<SensorId, Command>,
    /// When each real heater was last sent its command.
    sent: HashMap<SensorId, TimeMs>,
    /// Heaters that reported the wrong state too soon after a send to be sent again at once: sent again
    /// when [`MISMATCH_RESEND_MS`] has passed.
    mismatched: BTreeSet<SensorId>,
    temperatures: HashMap<SensorId, Shown>,
    /// When each device room was last heard from (a reading or a relay state).
    last_seen: HashMap<SensorId, TimeMs>,
    own_writes: HashMap<String, SensorId>,
    next_write: u64,
    /// The next room to announce, when announcing (after a connection, or Home Assistant's restart).
    announce_from: Option<SensorId>,
    connected: bool,
}

impl Gateway {
    pub fn new(opts: Options, rooms: Vec<Room>) -> Self {
        let mut listening: HashMap<String, Vec<(SensorId, Listen)>> = HashMap::new();
        let mut listen = |topic: &str, sensor, what| {
            listening
                .entry(topic.to_owned())
                .or_default()
                .push((sensor, what))
        };
        for room in &rooms {
            if let Some(t) = &room.thermometer {
                listen(&t.topic, room.sensor, Listen::Temperature);
            }
            if let Some(h) = &room.heater {
                if let Some(s) = &h.state {
                    listen(&s.topic, room.sensor, Listen::RelayState);
                }
                if let Some(a) = &h.availability {
                    listen(a, room.sensor, Listen::Availability);
                }
            }
        }
        Self {
            table: SetpointTable::new(opts.config),
            announced: rooms.iter().map(|r| r.sensor).collect(),
            devices: rooms.into_iter().map(|r| (r.sensor, r)).collect(),
            listening,
            opts,
            commands: HashMap::new(),
            sent: HashMap::new(),
            mismatched: BTreeSet::new(),
            temperatures: HashMap::new(),
            last_seen: HashMap::new(),
            own_writes: HashMap::new(),
            next_write: 0,
            announce_from: None,
            connected: false,
        }
    }

    /// The availability topic, with its retained Last Will `offline`.
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.opts.topic_prefix)
    }

    /// Every topic to subscribe to after each connection.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics = vec![format!("{}/room/+/target/set", self.opts.topic_prefix)];
        if let Some(p) = &self.opts.discovery_prefix {
            topics.push(format!("{p}/status"));
        }
        topics.extend(self.listening.keys().cloned());
        topics
    }

    /// A device room's devices and when it was last heard from.
    pub fn device(&self, sensor: SensorId) -> Option<(&Room, Option<TimeMs>)> {
        self.devices
            .get(&sensor)
            .map(|r| (r, self.last_seen.get(&sensor).copied()))
    }

    /// The broker accepted the connection: everything is published again and every heater re-sent.
    pub fn on_connected(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        self.connected = true;
        self.publish(out, self.status_topic(), "online".into(), true);
        self.announce_all();
        let heaters: Vec<SensorId> = self.devices.keys().copied().collect();
        for sensor in heaters {
            self.send_command(sensor, now, out);
        }
    }

    /// The connection was lost: nothing is published until it is back (and then everything is).
    pub fn on_disconnected(&mut self) {
        self.connected = false;
        self.announce_from = None;
    }

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

    /// What is published when the gateway stops (the Last Will says the same when it dies).
    pub fn offline(&self) -> Publication {
        Publication {
            topic: self.status_topic(),
            payload: "offline".into(),
            retain: true,
        }
    }

    /// A message on a subscribed topic.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now: TimeMs, out: &mut Vec<Effect>) {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return refuse(
                out,
                "payload_too_large",
                format!("{topic}: {} bytes", payload.len()),
            );
        }
        if let Some(p) = &self.opts.discovery_prefix {
            if topic.strip_prefix(p.as_str()) == Some("/status") {
                // Home Assistant restarted (or its MQTT integration reloaded): it forgot non-retained state.
                if payload == b"online" {
                    self.announce_all();
                }
                return;
            }
        }
        if let Some(sensor) = self.target_set_topic(topic) {
            return self.on_target_set(sensor, payload, now, out);
        }
        let Some(listens) = self.listening.get(topic).cloned() else {
            return;
        };
        for (sensor, what) in listens {
            match what {
                Listen::Temperature => self.on_temperature(sensor, topic, payload, now, out),
                Listen::RelayState => self.on_relay_state(sensor, topic, payload, now, out),
                Listen::Availability => {
                    if is_online(payload) {
                        self.send_command(sensor, now, out);
                    }
                }
            }
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

    /// A command of the heatercontrol stream.
    pub fn on_decision(&mut self, decision: &Decision, now: TimeMs, out: &mut Vec<Effect>) {
        let sensor = decision.sensor;
        let changed = self.commands.insert(sensor, decision.command) != Some(decision.command);
        if changed {
            if self.announced.contains(&sensor) {
                self.publish_action(sensor, out);
            }
            self.send_command(sensor, now, out);
        }
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

    /// Time passes: held temperatures are published, and commands re-sent to heaters whose period is up.
    pub fn on_tick(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
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
        let since_sent = |s: &SensorId, period: TimeMs| self.sent.get(s).is_some_and(|at| now - at >= period);
        let mut resend: Vec<SensorId> = self
            .mismatched
            .iter()
            .filter(|s| since_sent(s, MISMATCH_RESEND_MS))
            .copied()
            .collect();
        resend.extend(
            self.devices
                .keys()
                .filter(|s| since_sent(s, self.opts.resend_ms))
                .copied(),
        );
        resend.sort_unstable();
        resend.dedup();
        for sensor in resend {
            self.send_command(sensor, now, out);
        }
    }

    fn target_set_topic(&self, topic: &str) -> Option<SensorId> {
        let rest = topic
            .strip_prefix(self.opts.topic_prefix.as_str())?
            .strip_prefix("/room/")?;
        rest.strip_suffix("/target/set")?.parse().ok()
    }

    fn on_target_set(&mut self, sensor: SensorId, payload: &[u8], now: TimeMs, out: &mut Vec<Effect>) {
        if !self.announced.contains(&sensor) {
            return refuse(
                out,
                "set_temperature_unknown_room",
                format!("room {sensor} is not one of ours"),
            );
        }
        let Some(desired) = parse_number(payload) else {
            refuse(
                out,
                "set_temperature_not_a_number",
                format!("room {sensor}: {}", shown(payload)),
            );
            return self.publish_target(sensor, out);
        };
        let (base, up, down) = match self.table.in_force(sensor) {
            Some(f) => (f.version, f.setpoint.up_delta, f.setpoint.down_delta),
            None => (0, DEFAULT_DELTA, DEFAULT_DELTA),
        };
        self.next_write += 1;
        let write_id = format!("{}-{}", self.opts.writer, self.next_write);
        let change = SetpointTable::next_version(sensor, base).and_then(|version| {
            let change = SetpointChange::new(sensor, Setpoint::new(desired, up, down), version, AUTHOR, now)
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
                refuse(out, "set_temperature_refused", e.to_string());
                self.publish_target(sensor, out);
            }
        }
    }

    fn on_temperature(
        &mut self,
        sensor: SensorId,
        topic: &str,
        payload: &[u8],
        now: TimeMs,
        out: &mut Vec<Effect>,
    ) {
        let Some(extract) = self
            .devices
            .get(&sensor)
            .and_then(|r| r.thermometer.as_ref())
            .map(|t| t.extract.clone())
        else {
            return;
        };
        let value = match extract_number(&extract, payload) {
            Ok(Some(v)) => v,
            // A report without the key (a battery level, a link quality) is not a reading, nor an error.
            Ok(None) => return,
            Err(kind) => return refuse(out, kind, format!("{topic}: {}", shown(payload))),
        };
        if let Err(e) = check_temperature(sensor, value) {
            return refuse(out, "temperature_implausible", format!("{topic}: {e}"));
        }
        self.last_seen.insert(sensor, now);
        out.push(Effect::Reading(SensorReading {
            sensor,
            t_ms: now,
            temperature: value,
        }));
    }

    fn on_relay_state(
        &mut self,
        sensor: SensorId,
        topic: &str,
        payload: &[u8],
        now: TimeMs,
        out: &mut Vec<Effect>,
    ) {
        let Some(state) = self
            .devices
            .get(&sensor)
            .and_then(|r| r.heater.as_ref())
            .and_then(|h| h.state.clone())
        else {
            return;
        };
        let value = match extract_text(&state.extract, payload) {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(kind) => return refuse(out, kind, format!("{topic}: {}", shown(payload))),
        };
        let actual = if value.eq_ignore_ascii_case(&state.on) {
            Command::On
        } else if value.eq_ignore_ascii_case(&state.off) {
            Command::Off
        } else {
            return refuse(out, "relay_state_unknown", format!("{topic}: {}", shown(payload)));
        };
        self.last_seen.insert(sensor, now);
        let wrong = self.commands.get(&sensor).is_some_and(|c| *c != actual);
        let quiet = self
            .sent
            .get(&sensor)
            .is_none_or(|at| now - at >= MISMATCH_RESEND_MS);
        if !wrong {
            self.mismatched.remove(&sensor);
        } else if quiet {
            self.send_command(sensor, now, out);
        } else {
            self.mismatched.insert(sensor);
        }
    }

    /// Sends a real heater the command in force, if it has a heater and there is one.
    fn send_command(&mut self, sensor: SensorId, now: TimeMs, out: &mut Vec<Effect>) {
        let (Some(command), Some(heater)) = (
            self.commands.get(&sensor),
            self.devices.get(&sensor).and_then(|r| r.heater.as_ref()),
        ) else {
            return;
        };
        let payload = match command {
            Command::On => heater.on.clone(),
            Command::Off => heater.off.clone(),
        };
        let topic = heater.topic.clone();
        self.sent.insert(sensor, now);
        self.mismatched.remove(&sensor);
        // A command is not retained: a relay that reconnects gets the command in force from us, not a stale
        // one from the broker.
        self.publish(out, topic, payload, false);
    }

    /// Every room is to be announced again, from the first (see [`Gateway::poll_announcements`]).
    fn announce_all(&mut self) {
        if self.connected {
            self.announce_from = self.announced.first().copied();
        }
    }

    /// A room's discovery config and its state.
    fn announce(&mut self, sensor: SensorId, out: &mut Vec<Effect>) {
        if let Some(p) = self.opts.discovery_prefix.clone() {
            let config = super::discovery::climate_config(self, sensor);
            self.publish(
                out,
                format!("{p}/climate/setpoint_{sensor}/config"),
                config.to_string(),
                true,
            );
        }
        self.publish(out, self.room_topic(sensor, "mode"), "heat".into(), true);
        self.publish_target(sensor, out);
        self.publish_action(sensor, out);
        if let Some(value) = self.temperatures.get(&sensor).and_then(|s| s.pending) {
            self.publish(out, self.room_topic(sensor, "temperature"), number(value), true);
        }
    }

    fn publish_target(&mut self, sensor: SensorId, out: &mut Vec<Effect>) {
        if let Some(desired) = self.table.in_force(sensor).map(|f| f.setpoint.desired) {
            self.publish(out, self.room_topic(sensor, "target"), number(desired), true);
        }
    }

    fn publish_action(&mut self, sensor: SensorId, out: &mut Vec<Effect>) {
        let action = match self.commands.get(&sensor) {
            Some(Command::On) => "heating",
            _ => "idle",
        };
        self.publish(out, self.room_topic(sensor, "action"), action.into(), true);
    }

    fn publish(&self, out: &mut Vec<Effect>, topic: String, payload: String, retain: bool) {
        if self.connected {
            out.push(Effect::Publish(Publication {
                topic,
                payload,
                retain,
            }));
        }
    }

    /// `setpoint/room/<id>/<what>`.
    pub fn room_topic(&self, sensor: SensorId, what: &str) -> String {
        format!("{}/room/{sensor}/{what}", self.opts.topic_prefix)
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }
}

fn refuse(out: &mut Vec<Effect>, kind: &'static str, detail: String) {
    out.push(Effect::Refused(Refusal { kind, detail }));
}

#[cfg(test)]
mod tests;
