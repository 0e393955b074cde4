//! The MQTT gateway role: real thermometers and heaters, and every room in Home Assistant.
//!
//! - `devices` — the devices file: which topics are a room's thermometer and heater (presets for
//!   zigbee2mqtt, Tasmota, Shelly).
//! - `core` — the sans-IO gateway: what a payload means, when a command is sent again, what Home
//!   Assistant is told.
//! - `discovery` — Home Assistant's MQTT discovery config of a room's climate entity.
//! - `payload` — what a device's payload says (a number at a JSON path, a relay's state, availability).
//! - `tls` — TLS to the broker (rustls with ring), every file checked at start.
//! - this module — the shell: the MQTT client (rumqttc; reconnects with backoff, a retained Last Will), the
//!   bus consumers, the clock, and stopping (a retained `offline`, then a clean disconnect).
//!
//! Like every role it talks to the rest of setpoint only through the bus: readings it takes from devices
//! go on the readings stream, the controller decides, and the commands it reads back go to the heaters.

pub mod core;
pub mod devices;
pub mod discovery;
mod payload;
pub mod tls;

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ClientError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter,
    TlsConfiguration, Transport,
};
use setpoint_control::{Config, Decision};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::core::{Effect, Gateway, Options};
use self::devices::Room;
use crate::bus::{Bus, BusError, Consumer, Payload, SensorReading, SetpointChange, StartAt};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::retry;

/// How far back the gateway reads commands at start, to know the one in force for each heater.
const COMMANDS_LOOKBACK_MS: i64 = 10 * 60_000;
/// Publications waiting for room in the client's queue, at most (announcements are produced only as it
/// empties, so this bounds a burst of commands and state). Beyond it the oldest are dropped: what is
/// published is state, and all of it is published again on the next connection.
const MAX_OUTBOX: usize = 1_000_000;
/// Rooms announced (discovery config and state: five publications each) per turn of the loop.
const ANNOUNCE_BATCH: usize = 500;
/// The client's request queue (rumqttc's channel).
const CLIENT_QUEUE: usize = 10_000;
/// Largest MQTT packet read or written: device payloads are bounded far below by the core.
const MAX_PACKET_BYTES: usize = 1 << 20;
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// How the gateway reaches its broker and what it serves.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: Option<String>,
    /// `Some`: TLS to the broker with this configuration (built and checked at start, see `tls`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `None`: no Home Assistant discovery.
    pub discovery_prefix: Option<String>,
    pub topic_prefix: String,
    pub resend: Duration,
    pub rooms: Vec<Room>,
}

enum MqttEvent {
    Connected,
    Disconnected(String),
    Message(String, Vec<u8>),
}

/// What waits for room in the client's queue.
enum Out {
    Subscribe(Vec<SubscribeFilter>),
    Publish(core::Publication),
}

/// Runs until `shutdown` fires.
pub async fn run<B: Bus>(
    bus: B,
    options: GatewayOptions,
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let writer = format!("mqtt-{}", super::writer_name());
    let core_options = Options {
        topic_prefix: options.topic_prefix.clone(),
        discovery_prefix: options.discovery_prefix.clone(),
        resend_ms: i64::try_from(options.resend.as_millis()).unwrap_or(i64::MAX),
        config,
        writer: writer.clone(),
        sw_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut core = Gateway::new(core_options, options.rooms.clone());
    let Some(mut setpoints) = subscribe::<B, SetpointChange>(&bus, StartAt::Beginning, &shutdown).await
    else {
        return Ok(());
    };
    let since = StartAt::Time(now_ms() - COMMANDS_LOOKBACK_MS);
    let Some(mut decisions) = subscribe::<B, Decision>(&bus, since, &shutdown).await else {
        return Ok(());
    };
    let Some(mut readings) = subscribe::<B, SensorReading>(&bus, StartAt::End, &shutdown).await else {
        return Ok(());
    };
    let mut effects = Vec::new();
    // The setpoints in force and the commands in force before the first connection, so the first thing
    // Home Assistant and the heaters get is the present.
    match setpoints.read_to_end(Duration::from_secs(30)).await {
        Ok(records) => records
            .iter()
            .for_each(|r| core.on_setpoint(r, now_ms(), &mut effects)),
        Err(e) => tracing::warn!("gateway starts before reading every setpoint: {e}"),
    }
    match decisions.read_to_end(Duration::from_secs(30)).await {
        Ok(records) => records
            .iter()
            .for_each(|r| core.on_decision(&r.value, now_ms(), &mut effects)),
        Err(e) => tracing::warn!("gateway starts before reading recent commands: {e}"),
    }
    effects.clear();

    let client_id = options
        .client_id
        .clone()
        .unwrap_or_else(|| format!("setpoint-{writer}"));
    let mut mqtt = MqttOptions::new(client_id, options.host.clone(), options.port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(
            core.status_topic(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(config) = &options.tls {
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::clone(
            config,
        ))));
    }
    if let Some(user) = &options.username {
        mqtt.set_credentials(user.clone(), options.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, CLIENT_QUEUE);
    // Commands are small and must not wait for Nagle's algorithm (it cost ~90 ms a command on loopback).
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (events_tx, mut events) = mpsc::channel(1024);
    let poller = tokio::spawn(poll(eventloop, events_tx, shutdown.clone()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut outbox: VecDeque<Out> = VecDeque::new();
    let mut outage_logged = false;
    tracing::info!(broker = %format!("{}:{}", options.host, options.port), rooms = options.rooms.len(), "MQTT gateway started");
    loop {
        let now = now_ms();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            event = events.recv() => match event {
                Some(MqttEvent::Connected) => {
                    metrics.gateway_connected.store(1, Relaxed);
                    outage_logged = false;
                    tracing::info!("MQTT gateway connected");
                    outbox.clear();
                    let topics: Vec<_> =
                        core.subscriptions().into_iter().map(|t| SubscribeFilter::new(t, QoS::AtLeastOnce)).collect();
                    outbox.extend(topics.chunks(256).map(|c| Out::Subscribe(c.to_vec())));
                    core.on_connected(now, &mut effects);
                }
                Some(MqttEvent::Disconnected(why)) => {
                    metrics.gateway_connected.store(0, Relaxed);
                    // Once per outage (the first failed attempt included: a wrong address or certificate
                    // must be seen), each attempt at debug level.
                    if !outage_logged {
                        tracing::warn!("MQTT gateway not connected, retrying with backoff: {why}");
                        outage_logged = true;
                    } else {
                        tracing::debug!("MQTT connection attempt failed: {why}");
                    }
                    core.on_disconnected();
                }
                Some(MqttEvent::Message(topic, payload)) => core.on_message(&topic, &payload, now, &mut effects),
                None => break,
            },
            batch = setpoints.next_batch(1024) => batch?.iter().for_each(|r| core.on_setpoint(r, now, &mut effects)),
            batch = decisions.next_batch(1024) => batch?.iter().for_each(|r| core.on_decision(&r.value, now, &mut effects)),
            batch = readings.next_batch(4096) => batch?.iter().for_each(|r| core.on_reading(&r.value, now, &mut effects)),
            _ = tick.tick() => core.on_tick(now, &mut effects),
            _ = tokio::time::sleep(Duration::from_millis(10)), if !outbox.is_empty() || core.announcing() => {}
        }
        // Announcements are made as the client takes them: the outbox holds a few batches, not a building.
        if outbox.len() < CLIENT_QUEUE {
            core.poll_announcements(ANNOUNCE_BATCH, &mut effects);
        }
        apply(&bus, &mut core, &metrics, &mut effects, &mut outbox).await;
        drain(&client, &mut outbox, &metrics);
    }
    // Stopping: Home Assistant marks every room unavailable (the Last Will says the same if we die).
    let offline = core.offline();
    let said = tokio::time::timeout(
        Duration::from_secs(2),
        client.publish(offline.topic, QoS::AtLeastOnce, true, offline.payload),
    )
    .await;
    if !matches!(said, Ok(Ok(()))) {
        tracing::warn!("MQTT gateway could not say it is offline; the broker's Last Will will");
    }
    let _ = client.try_disconnect();
    if tokio::time::timeout(Duration::from_secs(3), poller)
        .await
        .is_err()
    {
        tracing::warn!("MQTT connection did not close in time");
    }
    metrics.gateway_connected.store(0, Relaxed);
    tracing::info!("MQTT gateway stopped");
    Ok(())
}

async fn subscribe<B: Bus, T: Payload>(
    bus: &B,
    start: StartAt,
    shutdown: &CancellationToken,
) -> Option<B::Consumer<T>> {
    let what = format!("gateway cannot subscribe to {:?} yet", T::STREAM);
    retry::until_stopped(
        &what,
        || std::future::ready(bus.subscribe::<T>(start, None)),
        |_| {},
        shutdown,
    )
    .await?
    .ok()
}

/// Drives the MQTT connection: rumqttc reconnects on the next poll after an error; we wait between
/// attempts, doubling up to [`RECONNECT_MAX`]. Ends when the gateway has sent its disconnect.
async fn poll(
    mut eventloop: rumqttc::EventLoop,
    events: mpsc::Sender<MqttEvent>,
    shutdown: CancellationToken,
) {
    let mut backoff = RECONNECT_MIN;
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = RECONNECT_MIN;
                MqttEvent::Connected
            }
            Ok(Event::Incoming(Packet::Publish(p))) => MqttEvent::Message(p.topic, p.payload.to_vec()),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(e) => {
                if shutdown.is_cancelled() {
                    return;
                }
                let _ = events.send(MqttEvent::Disconnected(e.to_string())).await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    // Still polled after a stop, so the offline message and the disconnect go out.
                    _ = shutdown.cancelled() => {}
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

/// Carries out the core's effects: readings and setpoint writes on the bus, publications to the outbox.
async fn apply<B: Bus>(
    bus: &B,
    core: &mut Gateway,
    metrics: &Metrics,
    effects: &mut Vec<Effect>,
    outbox: &mut VecDeque<Out>,
) {
    let mut readings = Vec::new();
    let mut writes = Vec::new();
    for effect in effects.drain(..) {
        match effect {
            Effect::Publish(p) => {
                if outbox.len() >= MAX_OUTBOX {
                    outbox.pop_front();
                }
                outbox.push_back(Out::Publish(p));
            }
            Effect::Reading(r) => readings.push(r),
            Effect::Setpoint(s) => writes.push(s),
            Effect::Refused(r) => {
                if metrics.refused("gateway", "mqtt", r.kind) {
                    tracing::warn!(
                        kind = r.kind,
                        "MQTT message refused (logged once per kind): {}",
                        r.detail
                    );
                }
            }
        }
    }
    if !readings.is_empty() {
        let n = readings.len() as u64;
        // Readings are perishable: when the bus cannot take them they are dropped, not queued.
        match bus.publish(readings).await {
            Ok(()) => {
                metrics.gateway_readings.fetch_add(n, Relaxed);
            }
            Err(e) => tracing::debug!("device readings dropped: {e}"),
        }
    }
    if !writes.is_empty() {
        let n = writes.len() as u64;
        match bus.publish(writes.clone()).await {
            Ok(()) => {
                metrics.gateway_setpoint_writes.fetch_add(n, Relaxed);
            }
            Err(e) => {
                tracing::warn!("Home Assistant's setpoint not written: {e}");
                let mut more = Vec::new();
                writes.iter().for_each(|w| core.write_failed(w, &mut more));
                more.into_iter().for_each(|e| {
                    if let Effect::Publish(p) = e {
                        outbox.push_back(Out::Publish(p));
                    }
                });
            }
        }
    }
}

/// Hands the client as much of the outbox as its queue takes, without waiting.
fn drain(client: &AsyncClient, outbox: &mut VecDeque<Out>, metrics: &Metrics) {
    while let Some(out) = outbox.front() {
        let (sent, is_command) = match out {
            Out::Subscribe(topics) => (client.try_subscribe_many(topics.clone()), false),
            // Commands are the only publications not retained.
            Out::Publish(p) => (
                client.try_publish(p.topic.clone(), QoS::AtLeastOnce, p.retain, p.payload.clone()),
                !p.retain,
            ),
        };
        match sent {
            Ok(()) => {
                if is_command {
                    metrics.gateway_commands.fetch_add(1, Relaxed);
                }
                outbox.pop_front();
            }
            Err(ClientError::TryRequest(_)) => break,
            Err(e) => {
                tracing::debug!("MQTT publication dropped: {e}");
                outbox.pop_front();
            }
        }
    }
}
