//! The `setpoint` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use setpoint::app::{self, RunOptions};
use setpoint::bridge::auth::Token;
use setpoint::bridge::hub::HubOptions;
use setpoint::bridge::BridgeOptions;
use setpoint::bus::embedded::EmbeddedBus;
use setpoint::bus::kafka::{KafkaBus, KafkaOptions, Topics};
use setpoint::metrics::Metrics;
use setpoint::retry;
use setpoint::roles::controller::ControllerOptions;
use setpoint_control::{Config, Limits};
use setpoint_sim::SimConfig;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Dynamically controlled streams: heaters publish temperature readings, people publish setpoints, and a
/// controller joins both into heater On/Off commands — with a live dashboard to watch and steer it.
///
/// `setpoint run` starts everything in one process (no broker needed) and prints the dashboard URL. The
/// other subcommands run one role each. Every flag can also be set with the environment variable shown.
#[derive(Parser, Debug)]
#[command(name = "setpoint", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulator + controller + bridge + dashboard in one process. Prints the URL to open.
    Run {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        bridge: BridgeArgs,
        #[command(flatten)]
        control: ControlArgs,
        #[command(flatten)]
        sim: SimArgs,
    },
    /// Only the controller: joins readings and setpoints into commands.
    Controller {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Only the bridge: dashboard hosting and the WebSocket relay.
    Bridge {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        bridge: BridgeArgs,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Only the simulator: rooms that publish readings and obey commands.
    Simulate {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        sim: SimArgs,
    },
}

#[derive(Args, Debug, Clone)]
struct KafkaArgs {
    /// Run on a Kafka cluster (host:port[,host:port…]) instead of the embedded bus. Roles in different
    /// processes then talk through the topics; controllers form one consumer group.
    #[arg(long, env = "SETPOINT_KAFKA")]
    kafka: Option<String>,
    /// A librdkafka client setting, key=value (SASL, TLS, timeouts). Repeatable.
    #[arg(long = "kafka-config", env = "SETPOINT_KAFKA_CONFIG", value_delimiter = ';', value_parser = parse_key_value)]
    kafka_config: Vec<(String, String)>,
    /// Topic of temperature readings.
    #[arg(long, env = "SETPOINT_TOPIC_READINGS", default_value = "sensor")]
    topic_readings: String,
    /// Topic of setpoints (compacted).
    #[arg(long, env = "SETPOINT_TOPIC_SETPOINTS", default_value = "tempset")]
    topic_setpoints: String,
    /// Topic of heater commands.
    #[arg(long, env = "SETPOINT_TOPIC_COMMANDS", default_value = "heatercontrol")]
    topic_commands: String,
    /// Compacted topic where controllers keep each heater's last command and dwell (their changelog), so
    /// the next owner of a sensor carries on after a handover or restart.
    #[arg(
        long,
        env = "SETPOINT_TOPIC_CONTROLLER_STATE",
        default_value = "setpoint-controller-state"
    )]
    topic_controller_state: String,
    /// Copy records that fail to decode to this topic (raw key and value; headers `setpoint.error`,
    /// `setpoint.reason`, `setpoint.source` = topic/partition/offset). Unset: they are counted, logged once
    /// per kind and skipped.
    #[arg(long, env = "SETPOINT_DEAD_LETTER_TOPIC")]
    dead_letter_topic: Option<String>,
    /// Partitions of the topics created at start (existing topics are used as they are).
    #[arg(long, env = "SETPOINT_PARTITIONS", default_value_t = 3)]
    partitions: i32,
    /// Without --kafka: records each stream of the embedded bus keeps (its memory bound; a consumer further
    /// behind skips ahead and counts the loss).
    #[arg(long, env = "SETPOINT_RETENTION_RECORDS", default_value_t = setpoint::bus::embedded::DEFAULT_RETENTION)]
    retention_records: usize,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

impl KafkaArgs {
    fn options(&self) -> Option<KafkaOptions> {
        let brokers = self.kafka.as_deref()?;
        let mut o = KafkaOptions::new(brokers);
        o.client_config = self.kafka_config.clone();
        o.topics = Topics {
            readings: self.topic_readings.clone(),
            setpoints: self.topic_setpoints.clone(),
            commands: self.topic_commands.clone(),
            controller_state: self.topic_controller_state.clone(),
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
    /// Write token (≥ 16 characters of A-Z a-z 0-9 - _). Generated at start when not set.
    #[arg(long, env = "SETPOINT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Extra origin allowed to open the WebSocket, e.g. https://thermo.example.com behind a reverse proxy.
    /// Repeatable.
    #[arg(long = "allow-origin", env = "SETPOINT_ALLOW_ORIGIN", value_delimiter = ',')]
    allow_origin: Vec<String>,
    /// Seconds of readings kept per sensor for a new client's backfill.
    #[arg(long, env = "SETPOINT_BACKFILL_SECS", default_value_t = 300)]
    backfill_secs: u64,
}

#[derive(Args, Debug, Clone)]
struct ControlArgs {
    /// Minimum time a heater command stays in force before the opposite one (anti short-cycling). 0 = off.
    #[arg(long, env = "SETPOINT_MIN_DWELL_MS", default_value_t = 0)]
    min_dwell_ms: i64,
    /// A sensor silent this long gets one failsafe Off. Unset = off.
    #[arg(long, env = "SETPOINT_STALE_AFTER_MS")]
    stale_after_ms: Option<i64>,
    /// Lowest accepted desired temperature, °C.
    #[arg(long, env = "SETPOINT_DESIRED_MIN", default_value_t = -50.0, allow_negative_numbers = true)]
    desired_min: f64,
    /// Highest accepted desired temperature, °C.
    #[arg(
        long,
        env = "SETPOINT_DESIRED_MAX",
        default_value_t = 150.0,
        allow_negative_numbers = true
    )]
    desired_max: f64,
    /// Largest accepted up/down delta, °C.
    #[arg(long, env = "SETPOINT_MAX_DELTA", default_value_t = 50.0)]
    max_delta: f64,
}

#[derive(Args, Debug, Clone)]
struct SimArgs {
    /// Number of simulated rooms (sensor ids 1..=N).
    #[arg(long, env = "SETPOINT_SENSORS", default_value_t = 6)]
    sensors: usize,
    /// Seed of the simulated rooms and their noise.
    #[arg(long, env = "SETPOINT_SEED", default_value_t = 42)]
    seed: u64,
    /// Milliseconds between two readings of one room.
    #[arg(long, env = "SETPOINT_INTERVAL_MS", default_value_t = 100)]
    interval_ms: i64,
    /// Do not publish suggested setpoints for rooms that have none.
    #[arg(long, env = "SETPOINT_NO_SEED_SETPOINTS")]
    no_seed_setpoints: bool,
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
                stale_after_ms: self.stale_after_ms,
            },
            tick: Duration::from_secs(1),
        }
    }
}

impl SimArgs {
    fn config(&self) -> SimConfig {
        SimConfig {
            rooms: self.sensors,
            first_sensor: 1,
            seed: self.seed,
            interval_ms: self.interval_ms.max(1),
        }
    }
}

impl BridgeArgs {
    /// Resolves the token, refusing a non-loopback bind without an explicit one: a generated token printed
    /// to a terminal is fine for a laptop, not for a port the whole network can reach.
    fn options(&self) -> Result<BridgeOptions, String> {
        let token = match &self.token {
            Some(t) => Token::from_operator(t)?,
            None if !self.listen.ip().is_loopback() => {
                return Err(format!(
                    "refusing to listen on {} (reachable from other machines) with a generated token: \
                     set --token or SETPOINT_TOKEN explicitly, or listen on 127.0.0.1",
                    self.listen
                ))
            }
            None => Token::generate().map_err(|e| format!("cannot generate a token: {e}"))?,
        };
        let mut options = BridgeOptions::new(self.listen, token);
        options.dist = self.dist.clone();
        options.allow_origins = self.allow_origin.clone();
        options.hub = HubOptions {
            backfill_ms: (self.backfill_secs as i64).saturating_mul(1000),
            ..HubOptions::default()
        };
        Ok(options)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("setpoint: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("setpoint: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (kafka, bridge, control, sim, run_controller) = match cli.command {
        Command::Run {
            kafka,
            bridge,
            control,
            sim,
        } => (kafka, Some(bridge), Some(control), Some(sim), true),
        Command::Bridge {
            kafka,
            bridge,
            control,
        } => (kafka, Some(bridge), Some(control), None, false),
        Command::Controller { kafka, control } => (kafka, None, Some(control), None, true),
        Command::Simulate { kafka, sim } => (kafka, None, None, Some(sim), false),
    };
    let retention_records = kafka.retention_records;
    let kafka = kafka.options();
    if kafka.is_none() && (bridge.is_none() || sim.is_none() || !run_controller) {
        tracing::warn!("on the embedded bus a single role has no peers; use --kafka, or `setpoint run` to compose all roles");
    }
    let options = RunOptions {
        bridge: bridge.as_ref().map(BridgeArgs::options).transpose()?,
        controller: control.map(|c| c.options()).unwrap_or(ControllerOptions {
            config: Config::default(),
            tick: Duration::from_secs(1),
        }),
        run_controller,
        seed_setpoints: sim.as_ref().is_some_and(|s| !s.no_seed_setpoints),
        simulator: sim.as_ref().map(SimArgs::config),
    };
    let token = options.bridge.as_ref().map(|b| b.token.clone());
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal_stop.cancel();
    });
    let announce = |addr: Option<std::net::SocketAddr>| {
        if let (Some(addr), Some(token)) = (addr, &token) {
            // Printed, not logged: this line is how the operator gets write access, like Jupyter's URL.
            println!(
                "\n  setpoint is running. Open the dashboard:\n\n    http://{addr}/#token={}\n",
                token.expose()
            );
        }
    };
    match kafka {
        None => {
            let running = app::start(EmbeddedBus::new(retention_records), options, metrics)
                .await
                .map_err(|e| format!("cannot start: {e}"))?;
            announce(running.addr);
            stop.cancelled().await;
            running.shutdown().await;
        }
        Some(kafka) => {
            let bus = KafkaBus::new(kafka, Arc::clone(&metrics)).map_err(|e| e.to_string())?;
            let ready = retry::until_stopped(
                "waiting for the Kafka cluster",
                || bus.ensure_topics(),
                |_| {},
                &stop,
            );
            match ready.await {
                None => return Ok(()),
                Some(result) => result.map_err(|e| e.to_string())?,
            }
            let running = app::start(bus, options, metrics)
                .await
                .map_err(|e| format!("cannot start: {e}"))?;
            announce(running.addr);
            stop.cancelled().await;
            running.shutdown().await;
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
