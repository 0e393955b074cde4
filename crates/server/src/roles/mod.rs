//! The roles `setpoint` can play. Each is an async function over a [`Bus`](crate::bus::Bus), so the same
//! code runs on the embedded bus and on Kafka, in one process or many.

pub mod controller;
pub mod scheduler;
pub mod simulator;
