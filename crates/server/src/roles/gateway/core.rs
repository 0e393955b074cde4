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
//! The state and the dispatch are here; what Home Assistant sees and says in `home_assistant.rs`, the real
//! rooms' thermometers and heaters in `real_rooms.rs`, payload parsing in `../payload.rs`.
//!
//! **One setpoint rule.** Home Assistant's `set_temperature` becomes a conditional write on the version in
//! force, checked by the same [`SetpointTable`] every reader of the setpoint stream uses, so the gateway's
//! writes win or lose exactly as the dashboard's do; a write that lost is restated, and Home Assistant is
//! told the value in force either way.

use std::collections::{BTreeSet, HashMap};

use setpoint_control::{Command, Config, SensorId, SensorReading, SetpointChange, SetpointTable, TimeMs};

use super::devices::Room;
use super::payload::is_online;

/// The author of the setpoints Home Assistant writes (reserved: no token can take it).
pub const AUTHOR: &str = "homeassistant";
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
        let mut topics = vec![
            format!("{}/room/+/target/set", self.opts.topic_prefix),
            format!("{}/room/+/mode/set", self.opts.topic_prefix),
        ];
        if let Some(p) = &self.opts.discovery_prefix {
            topics.push(format!("{p}/status"));
        }
        topics.extend(self.listening.keys().cloned());
        topics
    }

    /// A real room's devices, as the devices file gave them.
    pub fn device(&self, sensor: SensorId) -> Option<&Room> {
        self.devices.get(&sensor)
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
        if let Some(sensor) = self.set_topic(topic, "/target/set") {
            return self.on_target_set(sensor, payload, now, out);
        }
        if let Some(sensor) = self.set_topic(topic, "/mode/set") {
            return self.on_mode_set(sensor, payload, now, out);
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

    /// Time passes: held temperatures are published, and commands re-sent to heaters whose period is up.
    pub fn on_tick(&mut self, now: TimeMs, out: &mut Vec<Effect>) {
        self.publish_held_temperatures(now, out);
        self.resend_due(now, out);
    }

    /// The room of a command topic of Home Assistant's (`<prefix>/room/<id><suffix>`).
    fn set_topic(&self, topic: &str, suffix: &str) -> Option<SensorId> {
        let rest = topic
            .strip_prefix(self.opts.topic_prefix.as_str())?
            .strip_prefix("/room/")?;
        rest.strip_suffix(suffix)?.parse().ok()
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

mod home_assistant;
mod real_rooms;
#[cfg(test)]
mod tests;
