//! Entry point Trunk builds: mounts the dashboard into the page.

fn main() {
    #[cfg(target_arch = "wasm32")]
    setpoint_dashboard::run();
}
