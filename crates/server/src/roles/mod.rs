//! The roles `setpoint` can play. Each is an async function over a [`Bus`](crate::bus::Bus), so the same
//! code runs on the embedded bus and on Kafka, in one process or many; [`Roles`] runs those a process
//! plays and stops them in order. A new role is a module here, its [`Role`] in [`ALL`] (its name for logs
//! and metrics labels, the author it writes under) and one `spawn` line in `app.rs`.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::BusError;

pub mod controller;
pub mod gateway;
pub mod scheduler;
pub mod simulator;

/// A role as the rest of the process knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// For the log and the `role` label of the metrics.
    pub name: &'static str,
    /// The author of the setpoint records it writes on its own account: reserved, so no token can take
    /// it and a change's author cannot be forged. (The scheduler writes as `schedule:<name>`, which no
    /// token name can be: the name rule has no `:`.)
    pub author: Option<&'static str>,
}

pub const CONTROLLER: Role = Role {
    name: "controller",
    author: None,
};
pub const BRIDGE: Role = Role {
    name: "bridge",
    author: None,
};
pub const SCHEDULER: Role = Role {
    name: "scheduler",
    author: None,
};
pub const GATEWAY: Role = Role {
    name: "gateway",
    author: Some(gateway::core::AUTHOR),
};
pub const SIMULATOR: Role = Role {
    name: "simulator",
    author: Some(simulator::SEED_AUTHOR),
};

/// Every role, in the order a process starts them.
pub const ALL: [Role; 5] = [BRIDGE, CONTROLLER, SCHEDULER, SIMULATOR, GATEWAY];

/// The authors the server writes under, which no token may take.
pub fn reserved_authors() -> impl Iterator<Item = &'static str> {
    ALL.iter().filter_map(|r| r.author)
}

/// One running role: its name (for the log), its stop and its task.
struct RoleTask {
    name: &'static str,
    stop: CancellationToken,
    task: JoinHandle<Result<(), BusError>>,
}

/// The roles running in this process, each with its own stop.
#[derive(Default)]
pub struct Roles {
    running: Vec<RoleTask>,
}

impl Roles {
    /// Starts a role; `run` is given the token that stops it.
    pub fn spawn<F, Fut>(&mut self, role: Role, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), BusError>> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(stop.clone()));
        self.running.push(RoleTask {
            name: role.name,
            stop,
            task,
        });
    }

    /// Stops the roles in the reverse order of their start, each after the one started after it has
    /// stopped: start the consumers of data before its producers (the controller before the simulator),
    /// and every producer is stopped before the roles that consume what it published have drained it.
    pub async fn stop(self) {
        for role in self.running.into_iter().rev() {
            role.stop.cancel();
            let name = role.name;
            match role.task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("{name} stopped: {e}"),
                Err(e) => tracing::error!("{name} failed: {e}"),
            }
        }
    }
}

/// A name for this process's setpoint writes, distinct from every other writer's on the same stream (a
/// bridge's, a scheduler's): the `writeId`s it stamps start with it.
pub fn writer_name() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness, the process id and start time still tell writers apart in practice.
        let fallback = (u64::from(std::process::id()) << 32) ^ crate::clock::now_ms() as u64;
        bytes = fallback.to_le_bytes();
    }
    setpoint_wire::hex(&bytes)
}
