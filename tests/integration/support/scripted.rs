//! A plugin whose behaviour a test scripts at run time: succeed, fail, panic, hang, block its thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mydia_plugins::event::Event;
use mydia_plugins::plugins::{
    ConnectionReport, Delivered, Enrichment, Outcome, PluginContext, PluginError, PluginInfo, Role,
};
use mydia_plugins::supervisor::InstanceSpec;

/// What the next calls do.
#[derive(Clone, Debug)]
pub enum Mode {
    Ok,
    Fail(PluginError),
    Panic,
    /// Never answer (an async future that stays pending).
    Hang,
    /// Block the actor's thread with a synchronous sleep.
    Block(Duration),
    /// Succeed after an async sleep.
    Slow(Duration),
    /// Fail the first call for an event with this title (`media_item.title`), and then
    /// turn to `Ok`; deliver the others.
    FailOnce(String, PluginError),
}

/// What a scripted plugin saw; shared between the test and every instance the factory builds.
pub struct Script {
    pub mode: Mutex<Mode>,
    pub received: Mutex<Vec<(Instant, Arc<Event>)>>,
    pub delivered: Mutex<Vec<Arc<Event>>>,
    pub built: Mutex<u32>,
    /// When set, the plugin is an enricher answering with this patch.
    pub patch: Mutex<Option<serde_json::Map<String, serde_json::Value>>>,
    /// Calls running now, and the most ever running at once.
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
}

impl Script {
    pub fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Script {
            mode: Mutex::new(mode),
            received: Mutex::default(),
            delivered: Mutex::default(),
            built: Mutex::new(0),
            patch: Mutex::new(None),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
        })
    }
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
    pub fn delivered_ids(&self) -> Vec<String> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }
    /// The ids of the events calls were made with, in the order they were made.
    pub fn received_ids(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.id.clone())
            .collect()
    }
    pub fn delivered_count(&self) -> usize {
        self.delivered.lock().unwrap().len()
    }
    /// A supervised enrichment instance named `name` answering with `patch` when Ok.
    pub fn enricher_spec(self: &Arc<Self>, name: &str, patch: serde_json::Value) -> InstanceSpec {
        *self.patch.lock().unwrap() = patch.as_object().cloned();
        let script = Arc::clone(self);
        InstanceSpec::new(name, "scripted", "enrichment", move || {
            *script.built.lock().unwrap() += 1;
            Scripted(Arc::clone(&script))
        })
    }

    /// A supervised instance named `name` running this script.
    pub fn spec(self: &Arc<Self>, name: &str) -> InstanceSpec {
        let script = Arc::clone(self);
        InstanceSpec::new(name, "scripted", "notification", move || {
            *script.built.lock().unwrap() += 1;
            Scripted(Arc::clone(&script))
        })
    }
}

pub struct Scripted(pub Arc<Script>);

/// The event's `media_item.title`, if it has one.
fn title_of(event: &Event) -> Option<&str> {
    event.data.get("media_item")?.get("title")?.as_str()
}

struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Role for Scripted {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: "Scripted",
            description: "test double",
            version: "0",
            config_schema: serde_json::json!({}),
        }
    }

    async fn call(&self, _: &PluginContext, event: &Event) -> Result<Outcome, PluginError> {
        let event = Arc::new(event.clone());
        self.0
            .received
            .lock()
            .unwrap()
            .push((Instant::now(), Arc::clone(&event)));
        let mode = self.0.mode.lock().unwrap().clone();
        let now = self.0.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max_running.fetch_max(now, Ordering::SeqCst);
        // Counted down when the call ends, however it ends (cancelled by a timeout too).
        let _running = Running(&self.0.running);
        match mode {
            Mode::Slow(d) => {
                tokio::time::sleep(d).await;
                self.0.delivered.lock().unwrap().push(event);
                Ok(Outcome::Delivered(Delivered {
                    detail: "ok".into(),
                }))
            }
            Mode::FailOnce(title, e) if title_of(&event) == Some(title.as_str()) => {
                *self.0.mode.lock().unwrap() = Mode::Ok;
                Err(e)
            }
            // Any other event, under `FailOnce`, is delivered.
            Mode::Ok | Mode::FailOnce(..) => {
                self.0.delivered.lock().unwrap().push(event);
                match self.0.patch.lock().unwrap().clone() {
                    Some(patch) => Ok(Outcome::Enriched(Enrichment { patch })),
                    None => Ok(Outcome::Delivered(Delivered {
                        detail: "ok".into(),
                    })),
                }
            }
            Mode::Fail(e) => Err(e),
            Mode::Panic => panic!("scripted panic"),
            Mode::Hang => futures::future::pending().await,
            Mode::Block(d) => {
                std::thread::sleep(d);
                Err(PluginError::Transient {
                    status: None,
                    reason: "was blocked".into(),
                })
            }
        }
    }

    async fn test(&self, _: &PluginContext) -> Result<ConnectionReport, PluginError> {
        match self.0.mode.lock().unwrap().clone() {
            Mode::Ok => Ok(ConnectionReport {
                detail: "scripted ok".into(),
                sent_message: false,
            }),
            Mode::Fail(e) => Err(e),
            _ => Err(PluginError::Transient {
                status: None,
                reason: "scripted test failure".into(),
            }),
        }
    }
}
