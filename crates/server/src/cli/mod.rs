//! The command line: one typed subcommand per way of running, each turned into the app's [`RunOptions`].
//! Defaults come from the types they configure (the control crate's `Limits`, the hub's options), so the
//! help text and the library cannot disagree.

mod listener;
mod mqtt;
mod sim;
mod store;

pub use store::StoreArgs;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use setpoint::app::RunOptions;
use setpoint::bridge::auth::{Token, Tokens, DEFAULT_TOKEN_NAME};
use setpoint::bridge::hub::HubOptions;
use setpoint::bridge::BridgeOptions;
use setpoint::bus::kafka::{KafkaOptions, Topics};
use setpoint::roles::controller::ControllerOptions;
use setpoint_control::{Config, Limits};
use sim::SimArgs;

/// Dynamically controlled streams: heaters publish temperature readings, people publish setpoints, and a
/// controller joins both into heater On/Off commands — with a live dashboard to watch and steer it.
///
/// `setpoint run` starts everything in one process (no broker needed) and prints the dashboard URL. The
/// other subcommands run one role each. Every flag can also be set with the environment variable shown.
#[derive(Parser, Debug)]
#[command(name = "setpoint", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Simulator + controller + scheduler + bridge + dashboard in one process. Prints the URL to open.
    Run(RunArgs),
    /// The controller: joins readings and setpoints into commands; runs the scheduler too (weekly
    /// schedules' steps; of several schedulers exactly one takes effect per step).
    Controller(ControllerArgs),
    /// Only the bridge: dashboard hosting and the WebSocket relay.
    Bridge(BridgeRoleArgs),
    /// Only the simulator: rooms that publish readings and obey commands.
    Simulate(SimulateArgs),
    /// Only the MQTT gateway: real thermometers and heaters, and every room in Home Assistant.
    Mqtt(MqttRoleArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    bridge: BridgeArgs,
    #[command(flatten)]
    control: ControlArgs,
    #[command(flatten)]
    sim: SimArgs,
    #[command(flatten)]
    mqtt: mqtt::MqttArgs,
}

#[derive(Args, Debug)]
pub struct MqttRoleArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    mqtt: mqtt::MqttArgs,
    /// The limits Home Assistant's writes are checked against (the controller's).
    #[command(flatten)]
    control: ControlArgs,
}

#[derive(Args, Debug)]
pub struct ControllerArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    control: ControlArgs,
}

#[derive(Args, Debug)]
pub struct BridgeRoleArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    bridge: BridgeArgs,
    /// The controller's rules, sent to browsers so their copy of the control core decides alike.
    #[command(flatten)]
    control: ControlArgs,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    sim: SimArgs,
}

impl Command {
    /// The bus every subcommand runs on.
    pub fn kafka(&self) -> &KafkaArgs {
        match self {
            Command::Run(a) => &a.kafka,
            Command::Controller(a) => &a.kafka,
            Command::Bridge(a) => &a.kafka,
            Command::Simulate(a) => &a.kafka,
            Command::Mqtt(a) => &a.kafka,
        }
    }

    /// The roles this subcommand runs, with their settings.
    pub fn run_options(&self) -> Result<RunOptions, String> {
        Ok(match self {
            Command::Run(a) => {
                let (simulator, mut bridge) = (a.sim.config(), a.bridge.options()?);
                let gateway = a.mqtt.options(Some(&simulator))?;
                bridge.sources = std::sync::Arc::new(mqtt::room_sources(&simulator, gateway.as_ref()));
                RunOptions {
                    bridge: Some(bridge),
                    controller: a.control.options(),
                    run_controller: true,
                    simulator: Some(simulator),
                    seed_setpoints: !a.sim.no_seed_setpoints,
                    run_scheduler: true,
                    gateway,
                }
            }
            // Controllers are the back end that scales out; each also runs a scheduler, of which exactly
            // one takes effect per step.
            Command::Controller(a) => RunOptions {
                controller: a.control.options(),
                run_controller: true,
                run_scheduler: true,
                ..RunOptions::default()
            },
            Command::Bridge(a) => RunOptions {
                bridge: Some(a.bridge.options()?),
                controller: a.control.options(),
                ..RunOptions::default()
            },
            Command::Simulate(a) => RunOptions {
                simulator: Some(a.sim.config()),
                seed_setpoints: !a.sim.no_seed_setpoints,
                ..RunOptions::default()
            },
            Command::Mqtt(a) if !a.mqtt.is_set() => return Err("setpoint mqtt needs --mqtt host:port".into()),
            Command::Mqtt(a) => RunOptions {
                controller: a.control.options(),
                gateway: a.mqtt.options(None)?,
                ..RunOptions::default()
            },
        })
    }

    /// Where the embedded bus keeps its data (`setpoint run` only; other subcommands are one role each).
    pub fn store(&self) -> Option<&StoreArgs> {
        match self {
            Command::Run(a) => Some(&a.store),
            _ => None,
        }
    }

    /// Whether this is one role alone, which on the embedded bus has no peers to talk to.
    pub fn is_single_role(&self) -> bool {
        !matches!(self, Command::Run(_))
    }
}

#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Run on a Kafka cluster (host:port[,host:port…]) instead of the embedded bus. Roles in different
    /// processes then talk through the topics; controllers form one consumer group.
    #[arg(long, env = "SETPOINT_KAFKA")]
    kafka: Option<String>,
    /// A librdkafka client setting, key=value (SASL, TLS, timeouts). Repeatable.
    #[arg(long = "kafka-config", env = "SETPOINT_KAFKA_CONFIG", value_delimiter = ';', value_parser = parse_key_value)]
    kafka_config: Vec<(String, String)>,
    /// Topic of temperature readings.
    #[arg(long, env = "SETPOINT_TOPIC_READINGS", default_value = Topics::READINGS)]
    topic_readings: String,
    /// Topic of setpoints (compacted).
    #[arg(long, env = "SETPOINT_TOPIC_SETPOINTS", default_value = Topics::SETPOINTS)]
    topic_setpoints: String,
    /// Topic of heater commands.
    #[arg(long, env = "SETPOINT_TOPIC_COMMANDS", default_value = Topics::COMMANDS)]
    topic_commands: String,
    /// Compacted topic where controllers keep each heater's last command and dwell (their changelog), so
    /// the next owner of a sensor carries on after a handover or restart.
    #[arg(long, env = "SETPOINT_TOPIC_CONTROLLER_STATE", default_value = Topics::CONTROLLER_STATE)]
    topic_controller_state: String,
    /// Compacted topic of the weekly schedules (JSON records keyed by schedule name).
    #[arg(long, env = "SETPOINT_TOPIC_SCHEDULES", default_value = Topics::SCHEDULES)]
    topic_schedules: String,
    /// Copy records that fail to decode to this topic (raw key and value; headers `setpoint.error`,
    /// `setpoint.reason`, `setpoint.source` = topic/partition/offset). Unset: they are counted, logged once
    /// per kind and skipped.
    #[arg(long, env = "SETPOINT_DEAD_LETTER_TOPIC")]
    dead_letter_topic: Option<String>,
    /// Partitions of the topics created at start (existing topics are used as they are).
    #[arg(long, env = "SETPOINT_PARTITIONS", default_value_t = KafkaOptions::DEFAULT_PARTITIONS)]
    partitions: i32,
    /// Without --kafka: records each stream of the embedded bus keeps (its memory bound; a consumer further
    /// behind skips ahead and counts the loss).
    #[arg(long, env = "SETPOINT_RETENTION_RECORDS", default_value_t = setpoint::bus::embedded::DEFAULT_RETENTION)]
    pub retention_records: usize,
    /// Without --kafka: bytes of memory each event stream (readings, commands) of the embedded bus keeps,
    /// 40 a reading and 48 a command; the data file holds the same records. Whichever of this and
    /// --retention-records binds first.
    #[arg(long, env = "SETPOINT_RETENTION_BYTES", default_value_t = setpoint::bus::embedded::DEFAULT_RETENTION_BYTES)]
    pub retention_bytes: usize,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

impl KafkaArgs {
    pub fn options(&self) -> Option<KafkaOptions> {
        let brokers = self.kafka.as_deref()?;
        let mut o = KafkaOptions::new(brokers);
        o.client_config = self.kafka_config.clone();
        o.topics = Topics {
            readings: self.topic_readings.clone(),
            setpoints: self.topic_setpoints.clone(),
            commands: self.topic_commands.clone(),
            controller_state: self.topic_controller_state.clone(),
            schedules: self.topic_schedules.clone(),
        };
        o.partitions = self.partitions.max(1);
        o.dead_letter = self.dead_letter_topic.clone();
        Some(o)
    }
}

#[derive(Args, Debug, Clone)]
struct BridgeArgs {
    /// Address to serve the dashboard, WebSocket and metrics on. A non-loopback address needs an explicit
    /// --token.
    #[arg(long, env = "SETPOINT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the built dashboard (Trunk's dist/).
    #[arg(long, env = "SETPOINT_DIST", default_value = "dist")]
    dist: PathBuf,
    /// A named write token, NAME=SECRET (a bare SECRET is named admin); repeatable. The name is recorded as
    /// the author of every setpoint change made with it. Secrets: 16 to 256 characters of A-Z a-z 0-9 - _.
    /// Without any token, one named admin is generated at start.
    #[arg(long, env = "SETPOINT_TOKEN", hide_env_values = true, value_delimiter = ',')]
    token: Vec<String>,
    /// A file of named write tokens, one NAME=SECRET per line (# comments), in addition to --token.
    #[arg(long, env = "SETPOINT_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// Extra origin allowed to open the WebSocket, e.g. https://thermo.example.com behind a reverse proxy.
    /// Repeatable.
    #[arg(long = "allow-origin", env = "SETPOINT_ALLOW_ORIGIN", value_delimiter = ',')]
    allow_origin: Vec<String>,
    /// Seconds of readings kept per sensor for a new client's backfill.
    #[arg(long, env = "SETPOINT_BACKFILL_SECS", default_value_t = HubOptions::default().backfill_ms as u64 / 1000)]
    backfill_secs: u64,
    /// Mebibytes of readings and decisions kept at full resolution, for the rooms viewed most recently;
    /// every other room keeps a coarse history (one reading per 15 s of a 15-minute window) whatever the
    /// number of rooms.
    #[arg(long, env = "SETPOINT_HISTORY_CACHE_MB", default_value_t = (HubOptions::default().fine_budget_bytes >> 20) as u64)]
    history_cache_mb: u64,
    #[command(flatten)]
    bounds: listener::ListenerArgs,
}

/// Default of `--stale-after-ms`: 5 minutes.
pub const DEFAULT_STALE_AFTER_MS: i64 = 5 * 60_000;

#[derive(Args, Debug, Clone)]
struct ControlArgs {
    /// Minimum time a heater command stays in force before the opposite one (anti short-cycling). 0 = off.
    #[arg(long, env = "SETPOINT_MIN_DWELL_MS", default_value_t = 0)]
    min_dwell_ms: i64,
    /// A sensor silent this long (on this process's clock) gets one failsafe Off, so a sensor whose battery
    /// died does not leave its heater On. The default, 5 minutes, covers sensors that report every minute or
    /// so and simulated rooms (every 100 ms); raise it for sensors that report more rarely. 0 = off.
    #[arg(long, env = "SETPOINT_STALE_AFTER_MS", default_value_t = DEFAULT_STALE_AFTER_MS)]
    stale_after_ms: i64,
    /// Readings and setpoints dated further ahead than this of this process's clock (or of their time in
    /// the log, on a backlog) are refused as clock errors, counted and skipped.
    #[arg(long, env = "SETPOINT_MAX_CLOCK_SKEW", default_value = "5m", value_parser = humantime::parse_duration)]
    max_clock_skew: std::time::Duration,
    /// Most sensors this process keeps state for; records for further sensors are refused and counted.
    #[arg(long, env = "SETPOINT_MAX_SENSORS", default_value_t = setpoint_control::DEFAULT_MAX_SENSORS)]
    max_sensors: usize,
    /// Lowest accepted desired temperature, °C.
    #[arg(long, env = "SETPOINT_DESIRED_MIN", default_value_t = Limits::default().desired_min, allow_negative_numbers = true)]
    desired_min: f64,
    /// Highest accepted desired temperature, °C.
    #[arg(
        long,
        env = "SETPOINT_DESIRED_MAX",
        default_value_t = Limits::default().desired_max,
        allow_negative_numbers = true
    )]
    desired_max: f64,
    /// Largest accepted up/down delta, °C.
    #[arg(long, env = "SETPOINT_MAX_DELTA", default_value_t = Limits::default().max_delta)]
    max_delta: f64,
}

impl ControlArgs {
    fn options(&self) -> ControllerOptions {
        ControllerOptions {
            config: Config {
                limits: Limits {
                    desired_min: self.desired_min,
                    desired_max: self.desired_max,
                    max_delta: self.max_delta,
                },
                min_dwell_ms: self.min_dwell_ms.max(0),
                stale_after_ms: (self.stale_after_ms > 0).then_some(self.stale_after_ms),
                max_clock_skew_ms: i64::try_from(self.max_clock_skew.as_millis()).unwrap_or(i64::MAX),
                max_sensors: self.max_sensors.max(1),
            },
            ..ControllerOptions::default()
        }
    }
}

impl BridgeArgs {
    /// Resolves the token, refusing a non-loopback bind without an explicit one: a generated token printed
    /// to a terminal is fine for a laptop, not for a port the whole network can reach.
    fn options(&self) -> Result<BridgeOptions, String> {
        let mut entries = self
            .token
            .iter()
            .map(|spec| Tokens::parse_entry(spec))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = &self.tokens_file {
            entries.extend(Tokens::read_file(path)?);
        }
        let generated = entries.is_empty();
        if entries.is_empty() {
            if !self.listen.ip().is_loopback() {
                return Err(format!(
                    "refusing to listen on {} (reachable from other machines) with a generated token: \
                     set --token or SETPOINT_TOKEN explicitly, or listen on 127.0.0.1",
                    self.listen
                ));
            }
            let token = Token::generate().map_err(|e| format!("cannot generate a token: {e}"))?;
            entries.push((DEFAULT_TOKEN_NAME.to_owned(), token));
        }
        let mut options = BridgeOptions::new(self.listen, Tokens::new(entries)?);
        options.token_generated = generated;
        options.dist = self.dist.clone();
        options.allow_origins = self.allow_origin.clone();
        self.bounds.apply(&mut options)?;
        options.hub = HubOptions {
            backfill_ms: (self.backfill_secs as i64).saturating_mul(1000),
            fine_budget_bytes: usize::try_from(self.history_cache_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            ..HubOptions::default()
        };
        Ok(options)
    }
}
