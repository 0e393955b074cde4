//! Starting the roles a process runs — bridge, controller, scheduler, simulator ([`crate::roles::ALL`]) — on
//! any [`Bus`] (the embedded one for `setpoint run`, Kafka with `--kafka`), and stopping them in order.

use std::sync::Arc;

use setpoint_sim::SimConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bridge::{self, BridgeOptions};
use crate::bus::embedded::EmbeddedBus;
use crate::bus::Bus;
use crate::metrics::Metrics;
use crate::roles::controller::{self, ControllerOptions};
use crate::roles::gateway::{self, GatewayOptions};
use crate::roles::{scheduler, simulator, Roles, CONTROLLER, GATEWAY, SCHEDULER, SIMULATOR};

/// Everything `setpoint run` needs. The default runs no role: each subcommand names the roles it runs,
/// e.g. `RunOptions { run_controller: true, ..Default::default() }`.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `None` runs without the bridge (no HTTP port).
    pub bridge: Option<BridgeOptions>,
    /// Controller behaviour; also sent to browsers so their copy of the control core decides alike.
    pub controller: ControllerOptions,
    /// Whether this process runs the controller role.
    pub run_controller: bool,
    /// `None` runs without simulated rooms (real heaters publish readings).
    pub simulator: Option<SimConfig>,
    pub seed_setpoints: bool,
    /// Whether this process runs the scheduler role (weekly schedules' steps). Several may run.
    pub run_scheduler: bool,
    /// `Some` runs the MQTT gateway (real devices, Home Assistant).
    pub gateway: Option<GatewayOptions>,
}

/// A running instance. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running<B> {
    /// Where the bridge listens, when it runs.
    pub addr: Option<std::net::SocketAddr>,
    pub bus: B,
    pub metrics: Arc<Metrics>,
    pub hub: Option<Arc<bridge::hub::Hub>>,
    stop: CancellationToken,
    done: JoinHandle<()>,
}

impl<B> Running<B> {
    /// The token that stops the instance; cancel it to begin a graceful shutdown.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops in order — simulator, scheduler, then controller (after it has decided on every reading
    /// already published), then the bridge (after clients got every queued frame and a close frame) — and waits.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.wait().await;
    }

    /// Waits until the instance has stopped (after its stop token was cancelled).
    pub async fn wait(self) {
        if let Err(e) = self.done.await {
            tracing::error!("shutdown task failed: {e}");
        }
    }
}

/// Starts every role on the embedded bus.
pub async fn start_embedded(options: RunOptions) -> std::io::Result<Running<EmbeddedBus>> {
    start(EmbeddedBus::default(), options, Arc::new(Metrics::default())).await
}

/// Starts the roles `options` asks for on `bus`.
pub async fn start<B: Bus>(
    bus: B,
    options: RunOptions,
    metrics: Arc<Metrics>,
) -> std::io::Result<Running<B>> {
    let stop = CancellationToken::new();
    let bridge_stop = CancellationToken::new();
    let running_bridge = match options.bridge.clone() {
        Some(b) => Some(
            bridge::start(
                bus.clone(),
                b,
                options.controller.config,
                Arc::clone(&metrics),
                bridge_stop.clone(),
            )
            .await?,
        ),
        None => None,
    };
    // Started consumers first, so they stop last (Roles::stop): the controller decides everything the
    // simulator and the scheduler published before they stopped.
    let mut roles = Roles::default();
    if options.run_controller {
        // Not ready until the controller has caught up: set before it starts, so no probe sees a gap.
        metrics
            .controller_catching_up
            .store(1, std::sync::atomic::Ordering::Relaxed);
        let (bus, metrics) = (bus.clone(), Arc::clone(&metrics));
        roles.spawn(CONTROLLER, |stop| {
            controller::run(bus, options.controller, metrics, stop)
        });
    }
    if options.run_scheduler {
        let bus = bus.clone();
        roles.spawn(SCHEDULER, |stop| {
            scheduler::run(bus, options.controller.config, stop)
        });
    }
    if let Some(cfg) = options.simulator {
        let bus = bus.clone();
        roles.spawn(SIMULATOR, |stop| {
            simulator::run(bus, cfg, options.seed_setpoints, stop)
        });
    }
    // Started last, so it stops first: its `offline` goes out while the rest still runs.
    if let Some(g) = options.gateway {
        let (bus, metrics, config) = (bus.clone(), Arc::clone(&metrics), options.controller.config);
        roles.spawn(GATEWAY, |stop| gateway::run(bus, g, config, metrics, stop));
    }

    let stop_watch = stop.clone();
    let (addr, hub) = match &running_bridge {
        Some(b) => (Some(b.addr), Some(Arc::clone(&b.hub))),
        None => (None, None),
    };
    let bridge_task = running_bridge.map(|b| b.task);
    let done = tokio::spawn(async move {
        stop_watch.cancelled().await;
        tracing::info!("shutting down");
        roles.stop().await;
        bridge_stop.cancel();
        if let Some(Err(e)) = match bridge_task {
            Some(task) => Some(task.await),
            None => None,
        } {
            tracing::error!("bridge task failed: {e}");
        }
        tracing::info!("stopped");
    });
    Ok(Running {
        addr,
        bus,
        metrics,
        hub,
        stop,
        done,
    })
}
