//! Capturing `tracing` output in tests (for the no-secret-in-any-log checks).

use std::io;
use std::sync::{Arc, Mutex};

/// Captures every `tracing` event of this thread, at every level, in a buffer; keep the
/// returned guards alive while capturing.
///
/// tracing caches per callsite whether anyone listens. With only one dispatcher registered
/// it asks just the current thread's default, so a callsite first hit by a parallel test
/// (no subscriber there) would be cached as "never" and silently skipped here too. A second
/// live dispatcher makes tracing ask every registered one, and the rebuild fixes callsites
/// cached before this test started.
pub fn capture_logs() -> (
    LogBuffer,
    (tracing::subscriber::DefaultGuard, tracing::Dispatch),
) {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let second = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();
    (logs, (guard, second))
}

/// An `http://127.0.0.1:<port>` where nothing listens.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
