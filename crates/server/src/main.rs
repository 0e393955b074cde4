//! The `setpoint` binary: parses the command line ([`cli`]), starts the roles it names on the embedded bus
//! or on Kafka, prints the dashboard URL, and shuts down in order on Ctrl-C or SIGTERM.

mod cli;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use setpoint::app;
use setpoint::bus::embedded::{EmbeddedBus, Retention};
use setpoint::bus::kafka::KafkaBus;
use setpoint::metrics::Metrics;
use setpoint::retry;
use tokio_util::sync::CancellationToken;

use cli::Cli;

fn main() -> ExitCode {
    ignore_file_size_signal();
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

/// A process over its file-size limit (`RLIMIT_FSIZE`, e.g. systemd's `LimitFSIZE=`) is killed by SIGXFSZ
/// unless it ignores the signal; ignored, the write fails with `EFBIG`, which the data file's writer treats
/// like a full disk: control goes on from memory and writes resume when they can. A killed process would
/// leave every heater uncontrolled.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN at start, before any thread exists, touches no
    // memory of ours and cannot race.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let command = cli.command;
    let retention = Retention {
        records: command.kafka().retention_records,
        bytes: command.kafka().retention_bytes,
        max_age: None,
    };
    let kafka = command.kafka().options();
    if kafka.is_none() && command.is_single_role() {
        tracing::warn!("on the embedded bus a single role has no peers; use --kafka, or `setpoint run` to compose all roles");
    }
    let options = command.run_options()?;
    // The secret goes to stdout only when it was generated: the operator has no other way to learn it.
    // A token the operator chose is theirs already, and stdout often ends up in a service's journal.
    let token = options
        .bridge
        .as_ref()
        .filter(|b| b.token_generated)
        .map(|b| b.tokens.first().1.clone());
    if let Some(b) = &options.bridge {
        // Names only: a secret never goes to the log.
        let names: Vec<&str> = b.tokens.names().collect();
        tracing::info!(tokens = %names.join(", "), "write tokens");
    }
    if token_on_command_line() {
        tracing::warn!("--token on the command line is visible to every local user (ps, /proc); prefer SETPOINT_TOKEN or --tokens-file");
    }
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal_stop.cancel();
    });
    let announce = |addr: Option<std::net::SocketAddr>| {
        // Printed, not logged: this is how the operator gets write access, like Jupyter's URL.
        let text = match (addr, &token) {
            (Some(addr), Some(token)) => format!(
                "\n  setpoint is running. Open the dashboard:\n\n    http://{addr}/#token={}\n",
                token.expose()
            ),
            (Some(addr), None) => format!(
                "\n  setpoint is running. Open the dashboard:\n\n    http://{addr}/\n\n  \
                 To change setpoints, open http://{addr}/#token=<your token>\n"
            ),
            (None, _) => return,
        };
        // Not `println!`: a closed stdout (a supervisor that stopped reading) must not panic the server.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    };
    match kafka {
        None => {
            let bus = embedded_bus(command.store(), retention)?;
            let running = app::start(bus.clone(), options, metrics)
                .await
                .map_err(|e| format!("cannot start: {e}"))?;
            announce(running.addr);
            stop.cancelled().await;
            running.shutdown().await;
            bus.close()
                .map_err(|e| format!("could not save the last records: {e}"))?;
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

/// The embedded bus: kept in the data directory unless `--in-memory` (or a single role, which has no use
/// for one).
fn embedded_bus(store: Option<&cli::StoreArgs>, retention: Retention) -> Result<EmbeddedBus, String> {
    let Some(store) = store else {
        return Ok(EmbeddedBus::in_memory(retention));
    };
    let retention = Retention {
        max_age: Some(store.retention),
        ..retention
    };
    match store.data_dir()? {
        None => {
            tracing::info!("in memory: nothing is kept when the process stops");
            Ok(EmbeddedBus::in_memory(retention))
        }
        Some(dir) => {
            let bus = EmbeddedBus::open(&dir, retention).map_err(|e| e.to_string())?;
            tracing::info!(data_dir = %dir.display(), "keeping data in {}", dir.join(setpoint::bus::store::FILE_NAME).display());
            Ok(bus)
        }
    }
}

/// Whether `--token` was given as an argument (the process list shows it) rather than through the
/// environment or a file.
fn token_on_command_line() -> bool {
    std::env::args().any(|a| a == "--token" || a.starts_with("--token="))
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
