//! A real headless browser for the page tests: Debian's chromium driven through
//! chromedriver (WebDriver) with fantoccini.
//!
//! Without chromedriver the test is skipped with a loud message on a developer's
//! machine, and fails in CI (`CI` or `MYDIA_REQUIRE_BROWSER` set; `.ci/run` sets the
//! latter after installing chromium and chromium-driver).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use super::daemon::free_port;

/// How long a page condition may take to hold on a loaded machine.
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// A chromedriver process and one browser session in it.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

fn find_program(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .iter()
        .flat_map(|c| {
            let c = Path::new(c);
            if c.is_absolute() {
                vec![c.to_path_buf()]
            } else {
                in_path.iter().map(|d| d.join(c)).collect()
            }
        })
        .find(|p| p.is_file())
}

fn browser_required() -> bool {
    std::env::var_os("MYDIA_REQUIRE_BROWSER").is_some() || std::env::var_os("CI").is_some()
}

impl Browser {
    /// A browser session, or `None` (after saying why) when none can be had outside CI.
    pub async fn start() -> Option<Browser> {
        let driver = find_program(
            "CHROMEDRIVER",
            &["chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let Some(driver) = driver else {
            let why = "chromedriver is not installed: `apt-get install -y chromium chromium-driver` (or set CHROMEDRIVER)";
            assert!(
                !browser_required(),
                "the browser test needs a browser: {why}"
            );
            eprintln!("SKIPPED the browser test: {why}");
            return None;
        };
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let mut browser = BrowserProcess(Some(child));
        let deadline = Instant::now() + PAGE_WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut options = serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900"],
        });
        if let Some(chromium) = find_program("CHROMIUM", &["chromium", "chromium-browser"]) {
            options["binary"] = chromium.display().to_string().into();
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver started no browser session: {e}"));
        Some(Browser {
            client,
            driver: browser.0.take().expect("the driver"),
        })
    }

    /// End the session (the browser exits), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Save what the browser shows as `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The text of the first element matching `css`, once `pred` holds for it (panics
    /// with the last text seen after [`PAGE_WAIT`]).
    pub async fn text_when(&self, css: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        let mut last = String::from("(no such element)");
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = el.text().await {
                    if pred(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            if Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let source = self.client.source().await.unwrap_or_default();
                let shot = self.screenshot("failed").await;
                panic!(
                    "{css}: still {last:?} at {url:?} (screenshot {}); the page:\n{}",
                    shot.display(),
                    source.chars().take(3000).collect::<String>()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click the first element matching `css` (waiting for it to exist).
    pub async fn click(&self, css: &str) {
        let el = self
            .client
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }
}

/// Kills the driver if starting the session fails half way.
struct BrowserProcess(Option<Child>);

impl Drop for BrowserProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            kill_driver(&mut c);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_driver(&mut self.driver);
    }
}

/// Kill the browsers the driver started (its children: a test that fails before it
/// ends its session would leave them running), then the driver.
fn kill_driver(driver: &mut Child) {
    let _ = Command::new("pkill")
        .args(["-KILL", "-P", &driver.id().to_string()])
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}
