//! The real binary as a child process: started with a config, its log read line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `mydia-plugins serve` in the pretty log format (its stderr is a pipe, so no
/// colours), killed when dropped.
pub struct Service {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far, for assertions on the whole log.
    seen: Arc<Mutex<Vec<String>>>,
    /// Where the API answers, from the "is running" line.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The path of the shipped hooks, for configs that want them.
pub fn shipped_hooks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/hooks")
}

impl Service {
    /// Start the binary with `config` as its config file; wait until it says it is running.
    pub fn start(config: &str) -> Service {
        Service::start_with(config, |c| c)
    }

    /// As [`Service::start`], with a chance to change the command (e.g. run it under `sh`).
    pub fn start_with(config: &str, wrap: impl FnOnce(Command) -> Command) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let mut child = wrap(command(&path))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let keep = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Service {
            child,
            lines,
            seen,
            addr: "0.0.0.0:0".parse().unwrap(),
            _dir: dir,
        };
        let running = s.wait_for(|l| l.contains("mydia-plugins is running"));
        let listen = without_colour(&running);
        let listen = listen
            .split_whitespace()
            .find_map(|w| w.strip_prefix("listen="))
            .expect("the running line names the address");
        s.addr = listen.parse().unwrap();
        s
    }

    /// The config file it runs from (rewrite it, then reload).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("config.yaml")
    }

    /// The next log line that matches `pred` (within 20 s; panics with the log otherwise).
    pub fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no matching log line; the log:\n{}", self.log())
                }
            }
        }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    /// Send a signal (`HUP`, `TERM`) to the process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// One request on a fresh connection; the raw answer (head and body) as text.
    pub fn request(&self, raw: &str) -> String {
        request(self.addr, raw)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `line` without ANSI colour codes (`ESC [ ... m`), should there be any.
fn without_colour(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// `mydia-plugins --config PATH serve`, logging at INFO in the pretty format.
pub fn command(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mydia-plugins"));
    c.arg("--config")
        .arg(config)
        .arg("serve")
        .env_remove("RUST_LOG");
    c
}

/// Send `raw` on a fresh connection and read until the server closes it (within 20 s).
pub fn request(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
