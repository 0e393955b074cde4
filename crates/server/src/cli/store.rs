//! Where the embedded default keeps its data (`setpoint run` without `--kafka`).

use std::path::PathBuf;

use clap::Args;

/// Where the embedded default keeps what people give it.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Without --kafka: directory of the data file (setpoints with their versions and history, readings,
    /// decisions, controller state). Default: the user's data directory, e.g. ~/.local/share/setpoint.
    #[arg(long, env = "SETPOINT_DATA_DIR", conflicts_with = "in_memory")]
    data_dir: Option<PathBuf>,
    /// Without --kafka: keep nothing on disk; everything is gone when the process stops (tests, demos).
    #[arg(long, env = "SETPOINT_IN_MEMORY")]
    pub in_memory: bool,
    /// Without --kafka: readings and decisions older than this are pruned (e.g. 24h, 90m, 7d).
    #[arg(long, env = "SETPOINT_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub retention: std::time::Duration,
}

impl StoreArgs {
    /// The data directory to use, unless running in memory.
    pub fn data_dir(&self) -> Result<Option<PathBuf>, String> {
        if self.in_memory {
            return Ok(None);
        }
        match &self.data_dir {
            Some(d) => Ok(Some(d.clone())),
            None => dirs::data_dir().map(|d| Some(d.join("setpoint"))).ok_or_else(|| {
                "no user data directory on this system: pass --data-dir or --in-memory".into()
            }),
        }
    }
}
