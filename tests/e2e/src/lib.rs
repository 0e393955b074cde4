//! Browser plumbing for the end-to-end tests and the dashboard benchmark: Debian's headless Chromium driven
//! through a local chromedriver with [fantoccini], over plain HTTP on loopback.
//!
//! Layout:
//! - [`driver`]: the chromedriver process (ephemeral port, killed with its browsers on drop) and new sessions
//!   (headless, `--no-sandbox`, a fresh profile each).
//! - [`session`]: one browser session; every command is bounded in time, and [`Session::wait_for`] polls a
//!   condition up to a deadline.
//! - `tests/dashboard.rs`: the dashboard as a person uses it, against the in-process server.
//! - [`release`]: what the benchmarks share: the release server as a child, frame rates, memory, a GET.
//! - `src/bin/dashboard_bench.rs`: `cargo xtask bench dashboard`; `src/bin/scale_bench.rs`: `cargo xtask
//!   bench scale` (100,000 rooms).
//!
//! Everything is async on tokio, as fantoccini is: a session's connection lives in a task on the caller's
//! runtime, so the runtime must outlive the [`Session`].

pub mod driver;
pub mod release;
pub mod session;

pub use driver::Driver;
pub use fantoccini::elements::Element;
pub use session::Session;

/// Errors as text: the callers only report them.
pub type Result<T> = std::result::Result<T, String>;
