//! Where the cluster is, what the topics are called, and the client settings every client shares.

use rdkafka::config::ClientConfig;

use crate::bus::StreamKind;

/// Topic names, configurable; defaults match the reference thermostat.
#[derive(Clone, Debug)]
pub struct Topics {
    pub readings: String,
    pub setpoints: String,
    pub commands: String,
    /// The controllers' changelog (compacted).
    pub controller_state: String,
    /// Weekly schedules (compacted, keyed by name).
    pub schedules: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            readings: Self::READINGS.into(),
            setpoints: Self::SETPOINTS.into(),
            commands: Self::COMMANDS.into(),
            controller_state: Self::CONTROLLER_STATE.into(),
            schedules: Self::SCHEDULES.into(),
        }
    }
}

impl Topics {
    /// The default names, which the command line shows as its defaults too.
    pub const READINGS: &str = "sensor";
    pub const SETPOINTS: &str = "tempset";
    pub const COMMANDS: &str = "heatercontrol";
    pub const CONTROLLER_STATE: &str = "setpoint-controller-state";
    pub const SCHEDULES: &str = "setpoint-schedules";

    pub(super) fn name(&self, stream: StreamKind) -> &str {
        match stream {
            StreamKind::Readings => &self.readings,
            StreamKind::Setpoints => &self.setpoints,
            StreamKind::Commands => &self.commands,
            StreamKind::ControllerState => &self.controller_state,
            StreamKind::Schedules => &self.schedules,
        }
    }
}

/// How to reach and use the cluster.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Client settings passed through to librdkafka (SASL, TLS, timeouts); applied last, so they win.
    pub client_config: Vec<(String, String)>,
    pub topics: Topics,
    /// Partitions of topics this process creates.
    pub partitions: i32,
    pub replication: i32,
    /// Where undecodable records are copied (raw key and value, with headers naming the error and the
    /// source position), so an operator can inspect and replay them. `None`: they are only counted and
    /// logged.
    pub dead_letter: Option<String>,
}

impl KafkaOptions {
    /// Partitions of the topics a process creates, unless told otherwise.
    pub const DEFAULT_PARTITIONS: i32 = 3;

    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            client_config: Vec::new(),
            topics: Topics::default(),
            partitions: Self::DEFAULT_PARTITIONS,
            replication: 1,
            dead_letter: None,
        }
    }

    pub(super) fn base(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("statistics.interval.ms", "1000")
            .set("reconnect.backoff.max.ms", "2000");
        cfg
    }

    pub(super) fn finish(&self, mut cfg: ClientConfig) -> ClientConfig {
        for (k, v) in &self.client_config {
            cfg.set(k, v);
        }
        cfg
    }
}
