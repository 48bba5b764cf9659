//! `ace-sim`: serves the simulated ACE API until SIGINT/SIGTERM.
//!
//! Prints exactly one line, `ace-sim listening on http://HOST:PORT`, once the
//! socket is bound, so scripts can start it with `--port 0` and read the port.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;

use ace_sim::SimConfig;

/// How long in-flight requests get to finish after a shutdown signal; an
/// idle keep-alive client must not keep the process alive.
const DRAIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = SimConfig::parse();
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.host, cfg.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ace-sim listening on http://{addr}")?;
        out.flush()?;
    }

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = ace_sim::serve_with_shutdown(listener, cfg, async move {
        // An error only means the sender is gone, which is also "stop".
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r.context("serving"),
        () = shutdown_signal() => {}
    }
    // The receiver lives inside the server future, which is still pending.
    let _ = stop_tx.send(true);
    match tokio::time::timeout(DRAIN, server).await {
        Ok(r) => r.context("serving"),
        Err(_) => Ok(()),
    }
}

/// Completes on Ctrl-C or (on Unix) SIGTERM. If a handler cannot be
/// installed, that signal is simply not awaited.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("ace-sim: cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                eprintln!("ace-sim: cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
