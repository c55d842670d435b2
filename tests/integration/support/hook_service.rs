//! The real service binary, started with a config and hooks written into a temp dir:
//! for promises that must hold end to end (a bypass, a quarantine).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long the service may take to start or to log a line the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `mydia-plugins serve`, killed when dropped.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The log lines before "mydia-plugins is running".
    pub startup: Vec<Value>,
    logs: Receiver<Value>,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mydia-plugins")
}

/// Write `(relative path, text)` files under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Write `config` as `dir/config.yaml` and return its path.
pub fn write_config(dir: &Path, config: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

impl Service {
    /// Start `serve` with `config` (YAML; `listen` is set here) in `dir`, logging JSON,
    /// and wait until it listens.
    pub fn start(dir: &Path, config: &str) -> Service {
        let path = write_config(dir, &format!("server: {{listen: 127.0.0.1:0}}\n{config}"));
        let mut child = Command::new(binary())
            .args(["--log-format", "json", "--log", "info", "--config"])
            .arg(&path)
            .arg("serve")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, logs) = channel::<Value>();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({"unparsed": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut service = Service {
            child,
            base: String::new(),
            startup: Vec::new(),
            logs,
            rt,
            http: reqwest::Client::new(),
        };
        service.startup =
            service.logs_until(|v| message(v).starts_with("mydia-plugins is running"));
        let listen = service.startup.pop().unwrap();
        service.base = format!("http://{}", field(&listen, "listen").as_str().unwrap());
        service
    }

    /// Every log line up to the next one matching `until`, that one last.
    pub fn logs_until(&mut self, until: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(v) if until(&v) => {
                    seen.push(v);
                    return seen;
                }
                Ok(v) => seen.push(v),
                Err(_) => panic!("the closing log line never came; seen: {seen:#?}"),
            }
        }
    }

    /// POST `body` (JSON) to `path`: the status and the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).body(body.to_string()))
    }

    /// GET `path`: the status and the JSON answer.
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)))
    }

    /// POST an event.
    pub fn emit(&self, event: &str, data: Value) -> (u16, Value) {
        self.post("/api/v1/events", &json!({"event": event, "data": data}))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        self.rt.block_on(async {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The message of a JSON log line.
pub fn message(v: &Value) -> &str {
    v["fields"]["message"]
        .as_str()
        .or(v["message"].as_str())
        .unwrap_or_default()
}

/// A field of a JSON log line, wherever the format puts it.
pub fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    match &v["fields"][name] {
        Value::Null => &v[name],
        found => found,
    }
}
