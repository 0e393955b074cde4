//! The `setpoint` runtime: the roles (simulator, controller, bridge), the bus they talk over, and the
//! composition that runs them all in one process.
//!
//! The decision logic lives in `setpoint-control` and the wire formats in `setpoint-wire`; this crate only
//! moves data between them and the outside world (sockets, clocks, the bus), so it is the one place where
//! I/O, time and concurrency live. See `ARCHITECTURE.md` for the map.

pub mod app;
pub mod bridge;
pub mod bus;
pub mod clock;
pub mod metrics;
pub mod retry;
pub mod roles;
