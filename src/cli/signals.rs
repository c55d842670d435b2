//! The signals `serve` answers: SIGTERM and Ctrl-C stop it; SIGHUP is acknowledged.
//!
//! Without a handler SIGHUP kills the process with no word in the log. Until live reload
//! exists it is logged at WARN and the service goes on.

/// The installed handlers; install before anything that takes time, so no signal finds
/// the default action.
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Install the handlers (needs a running tokio runtime).
    pub fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(signal = name, error = %e, "cannot handle this signal");
                    None
                }
            };
            Signals {
                term: install(SignalKind::terminate(), "SIGTERM"),
                hup: install(SignalKind::hangup(), "SIGHUP"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Return on SIGTERM or Ctrl-C; log each SIGHUP and keep waiting.
    pub async fn wait_for_stop(&mut self) {
        #[cfg(unix)]
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                Some(()) = recv(&mut self.term) => return,
                Some(()) = recv(&mut self.hup) => {
                    tracing::warn!(signal = "SIGHUP", "reloading the config is not supported yet; still running with the config loaded at start (restart the service to apply changes)");
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The next delivery of a signal, or never when it has no handler.
#[cfg(unix)]
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
