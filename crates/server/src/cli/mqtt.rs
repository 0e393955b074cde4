//! The MQTT gateway's flags (`setpoint run --mqtt …` and the role `setpoint mqtt`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use setpoint::bridge::hub::sources::RoomSources;
use setpoint::roles::gateway::tls::{client_config, TlsOptions};
use setpoint::roles::gateway::{devices, GatewayOptions};
use setpoint_control::SensorId;
use setpoint_sim::SimConfig;
use setpoint_wire::api::RoomSource;

/// Longest topic prefix accepted, in bytes.
const MAX_PREFIX_BYTES: usize = 256;

#[derive(Args, Debug, Clone)]
pub struct MqttArgs {
    /// Connect real thermometers and heaters, and Home Assistant, through this MQTT broker (host:port; the
    /// port defaults to 1883).
    #[arg(long, env = "SETPOINT_MQTT")]
    mqtt: Option<String>,
    /// An MQTT client setting, key=value: username, password (or password_file), client_id, tls=true (the
    /// system's roots, or ca_file=PEM), client_cert_file and client_key_file. Repeatable, or `;`-separated.
    #[arg(long = "mqtt-config", env = "SETPOINT_MQTT_CONFIG", value_delimiter = ';', hide_env_values = true,
          value_parser = super::parse_key_value)]
    mqtt_config: Vec<(String, String)>,
    /// The devices file: which MQTT topics are each real room's thermometer and heater (TOML; see README,
    /// "Connect real heaters").
    #[arg(long, env = "SETPOINT_DEVICES")]
    devices: Option<PathBuf>,
    /// Home Assistant's MQTT discovery prefix.
    #[arg(long, env = "SETPOINT_HA_DISCOVERY_PREFIX", default_value = "homeassistant")]
    ha_discovery_prefix: String,
    /// Do not announce the rooms to Home Assistant.
    #[arg(long, env = "SETPOINT_NO_HA_DISCOVERY")]
    no_ha_discovery: bool,
    /// The prefix of setpoint's own topics (status, each room's temperature, target and action).
    #[arg(long, env = "SETPOINT_MQTT_TOPIC_PREFIX", default_value = "setpoint")]
    mqtt_topic_prefix: String,
    /// How often the command in force is sent again to every real heater (a relay that rebooted is
    /// corrected within this even if it says nothing), e.g. 60s, 5m.
    #[arg(long, env = "SETPOINT_MQTT_RESEND", default_value = "60s", value_parser = humantime::parse_duration)]
    mqtt_resend: Duration,
}

impl MqttArgs {
    /// The gateway to run, if `--mqtt` is given. `simulated` is the simulator this process runs: a real
    /// room may not have a simulated room's id.
    pub fn options(&self, simulated: Option<&SimConfig>) -> Result<Option<GatewayOptions>, String> {
        let Some(broker) = self.mqtt.as_deref() else {
            if self.devices.is_some() {
                return Err("--devices needs --mqtt host:port (the broker the devices are on)".into());
            }
            return Ok(None);
        };
        let (host, port) = broker_address(broker)?;
        let mut options = GatewayOptions {
            host,
            port,
            username: None,
            password: None,
            client_id: None,
            tls: None,
            discovery_prefix: (!self.no_ha_discovery).then(|| self.ha_discovery_prefix.clone()),
            topic_prefix: self.mqtt_topic_prefix.clone(),
            resend: self.mqtt_resend.max(Duration::from_secs(1)),
            rooms: Vec::new(),
        };
        for prefix in options.discovery_prefix.iter().chain([&options.topic_prefix]) {
            if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES || prefix.contains(['+', '#', '\0']) {
                return Err(format!(
                    "{prefix:?} is not a topic prefix (1 to {MAX_PREFIX_BYTES} bytes, no + # or NUL)"
                ));
            }
        }
        let mut tls = None::<TlsOptions>;
        for (key, value) in &self.mqtt_config {
            let path = || Some(PathBuf::from(value));
            match key.as_str() {
                "username" => options.username = Some(value.clone()),
                "password" => options.password = Some(value.clone()),
                "password_file" => {
                    let text = std::fs::read_to_string(value)
                        .map_err(|e| format!("--mqtt-config password_file: cannot read {value}: {e}"))?;
                    options.password = Some(text.trim_end_matches(['\r', '\n']).to_owned());
                }
                "client_id" => options.client_id = Some(value.clone()),
                "tls" => match value.as_str() {
                    "true" | "on" | "1" => tls = Some(tls.unwrap_or_default()),
                    "false" | "off" | "0" => tls = None,
                    _ => return Err(format!("--mqtt-config tls={value}: expected true or false")),
                },
                "ca_file" => tls.get_or_insert_default().ca_file = path(),
                "client_cert_file" => tls.get_or_insert_default().client_cert_file = path(),
                "client_key_file" => tls.get_or_insert_default().client_key_file = path(),
                other => {
                    return Err(format!(
                        "--mqtt-config {other}: unknown (username, password, password_file, client_id, tls, \
                         ca_file, client_cert_file, client_key_file)"
                    ))
                }
            }
        }
        if let Some(tls) = &tls {
            options.tls = Some(client_config(tls).map_err(|e| format!("--mqtt-config: {e}"))?);
        }
        if let Some(path) = &self.devices {
            options.rooms = devices::load(path).map_err(|e| e.to_string())?;
        }
        if let Some(sim) = simulated {
            let first = i64::from(sim.first_sensor);
            let simulated = first..first.saturating_add(sim.rooms as i64);
            if let Some(room) = options
                .rooms
                .iter()
                .find(|r| simulated.contains(&i64::from(r.sensor)))
            {
                return Err(format!(
                    "devices file: sensor {} is also a simulated room (--sensors {} simulates {}..={}); give real \
                     rooms ids above them, or simulate fewer",
                    room.sensor,
                    sim.rooms,
                    simulated.start,
                    simulated.end - 1
                ));
            }
        }
        Ok(Some(options))
    }

    pub fn is_set(&self) -> bool {
        self.mqtt.is_some()
    }
}

/// Where the rooms of `setpoint run` come from, for its dashboard: the simulator's ids and the devices'.
pub fn room_sources(sim: &SimConfig, gateway: Option<&GatewayOptions>) -> RoomSources {
    let last = i64::from(sim.first_sensor) + sim.rooms as i64 - 1;
    let simulated = SensorId::try_from(last)
        .ok()
        .filter(|_| sim.rooms > 0)
        .map(|last| sim.first_sensor..=last);
    let devices = gateway
        .map(|g| {
            g.rooms
                .iter()
                .map(|r| (r.sensor, RoomSource::devices(&r.source, r.name.as_deref())))
                .collect()
        })
        .unwrap_or_default();
    RoomSources { simulated, devices }
}

/// `host:port`, `host` (1883) or `[v6]:port`.
fn broker_address(broker: &str) -> Result<(String, u16), String> {
    let bad = || format!("--mqtt {broker:?}: expected host:port");
    let (host, port) = match broker.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, port.parse().map_err(|_| bad())?),
        _ => (broker, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}
