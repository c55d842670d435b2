//! The real service binary on a config file and a fixed port, so a test can kill it (-9)
//! or stop it (SIGTERM) and start it again on the same store, as a crash or restart would.
//! (`service.rs` drives one run of the binary at the level of its log and raw sockets.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wait_until;

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `mydia-plugins serve`.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Start the binary on `config` (which listens on `port`), logging JSON.
    pub fn spawn(config: &Path, port: u16) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mydia-plugins"))
            .args(["--log-format", "json", "--config"])
            .arg(config)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            logs,
        }
    }

    /// Wait until `/healthz` answers.
    pub async fn ready(&self) -> bool {
        let http = reqwest::Client::new();
        let url = format!("{}/healthz", self.base);
        wait_until(Duration::from_secs(30), || async {
            http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.child.wait().expect("exits")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
