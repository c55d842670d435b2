//! `PluginActor<R>`: one generic actor per plugin instance, on its own arbiter with its own HTTP client.
//!
//! The actor only runs the plugin's code and turns panics into [`PluginError::Panicked`];
//! timeouts, retries across deliveries, breakers and restarts belong to the supervisor,
//! which enforces them from its own thread so that a plugin that blocks its thread
//! cannot stop them from firing.
//!
//! Deliveries go to one long-lived worker task that runs at most `max_concurrent` of them
//! at once, in arrival order, and keeps the rest in a local queue. The supervisor sends
//! ahead of need (up to [`QUEUED_PER_RUNNING`] queued per running delivery), so a finished
//! delivery is replaced at once on this thread instead of after a round trip through the
//! supervisor, and results go back in one report per many deliveries rather than one
//! cross-thread wake-up each (measured with `cargo bench --bench pipeline -- ntfy`: a
//! wake-up costs about 5 µs on these machines; see the README).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use actix::prelude::*;
use futures::stream::FuturesUnordered;
use futures::{Future, FutureExt, StreamExt};

use crate::event::Event;
use crate::plugins::{ConnectionReport, Outcome, PluginContext, PluginError, Role};

/// Run the plugin's main call (notify, send_webhook or enrich) for each event, each within
/// the timeout (the actor drops a call that outlives it, so a hung call leaks nothing).
/// One message carries many deliveries; results come back in [`Done`] reports.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverBatch {
    /// The batch's tag, echoed with every result.
    pub batch: u64,
    /// `(sequence number, event)` pairs; the sequence number is echoed with each result.
    pub events: Vec<(u64, Arc<Event>)>,
    /// Per-delivery timeout, counted from when the delivery starts.
    pub timeout: Duration,
    /// How many failure reports the supervisor had read from this actor when it sent the
    /// batch (see [`Done::failures`]). Fewer than the actor has sent: the supervisor has
    /// not judged a failure yet, so the actor hands the batch back unstarted.
    pub failures_seen: u64,
}

/// One delivery's result.
#[derive(Debug)]
pub struct Finished {
    /// The batch it came in.
    pub batch: u64,
    /// Its position in that batch.
    pub index: usize,
    /// Its sequence number.
    pub seq: u64,
    /// What the plugin answered.
    pub result: Result<Outcome, PluginError>,
}

/// Results of some deliveries, from any batches. After a failure the actor also hands
/// back the deliveries it had queued but not started (`returned`, as `(batch, index)`),
/// so a failing service does not get them before the supervisor has judged the failure.
#[derive(Message, Debug, Default)]
#[rtype(result = "()")]
pub struct Done {
    /// What finished.
    pub results: Vec<Finished>,
    /// Queued deliveries handed back unstarted.
    pub returned: Vec<(u64, usize)>,
    /// Reports with a failure this actor has sent, this one included.
    pub failures: u64,
}

/// How the actor is set up: where results go and how many deliveries run at once.
#[derive(Clone)]
pub struct ActorSetup {
    /// Where [`Done`] reports go (the supervisor).
    pub reply: Recipient<Done>,
    /// Deliveries running at once; more are queued in order.
    pub max_concurrent: usize,
    /// The delivery store's tag, to name each delivery (see [`delivery_id`]).
    pub store_tag: u32,
}

/// The delivery a running plugin call makes.
struct Current {
    /// The store's tag.
    tag: u32,
    /// The delivery's sequence number (0 for an enrichment call).
    seq: u64,
    /// The event, shared with the store and the supervisor.
    event: Arc<Event>,
}

tokio::task_local! {
    static DELIVERY: Current;
}

/// The public id of the delivery the current plugin call makes (`None` outside one, and
/// for enrichment calls): stable across retries and restarts, so the generic webhook
/// sends it as `webhook-id` and receivers can drop a repeat.
pub fn delivery_id() -> Option<String> {
    DELIVERY
        .try_with(|d| (d.seq > 0).then(|| crate::store::format_id(d.tag, d.seq as i64)))
        .ok()
        .flatten()
}

/// The shared copy of `event` when it is the event of the delivery the current plugin
/// call makes (plugins see a plain `&Event`): a message template reads its data from
/// there instead of copying it. `None` outside a delivery, or for any other event.
pub fn shared_event(event: &Event) -> Option<Arc<Event>> {
    DELIVERY
        .try_with(|d| std::ptr::eq(&*d.event, event).then(|| Arc::clone(&d.event)))
        .ok()
        .flatten()
}

/// Work for a plugin actor.
#[derive(Message)]
#[rtype(result = "Result<Reply, PluginError>")]
pub enum Call {
    /// Run `test_connection`.
    Test,
    /// Answer at once: proves the actor's thread is not blocked.
    Ping,
}

/// A plugin actor's answer.
#[derive(Debug)]
pub enum Reply {
    /// `test_connection` succeeded.
    Report(ConnectionReport),
    /// The actor is alive.
    Pong,
}

/// The supervisor times a delivery out first; the actor cancels it a little later, so the
/// supervisor's verdict is the one that counts.
pub const CANCEL_GRACE: Duration = Duration::from_millis(100);

/// How far ahead the supervisor sends: up to this many deliveries queued in the actor per
/// delivery it may run. More queued means fewer reports (one each time the queue falls
/// to the running limit). Measured in bench (3), before other changes: 1 queued per
/// running gave 0.60 of the bare loop, 3 gave 0.66; later, 3 vs 7 over five runs each:
/// 0.73-0.81 vs 0.77-0.79. A failure hands the queue back and a restart puts it back in
/// the backlog at once, so a long queue does not hold deliveries hostage.
pub const QUEUED_PER_RUNNING: u32 = 7;

/// A result waits at most this long to share a report with others (only while the actor
/// still has queued work; otherwise it goes at once).
const REPORT_DELAY: Duration = Duration::from_millis(2);

/// Runs one plugin instance.
pub struct PluginActor<R: Role> {
    role: Arc<R>,
    cx: Arc<PluginContext>,
    inbox: Rc<RefCell<Inbox>>,
    setup: ActorSetup,
}

/// A running plugin actor: where to send work, and the arbiter (thread) it lives on.
pub struct PluginHandle {
    /// Deliveries.
    pub deliveries: Recipient<DeliverBatch>,
    /// Tests and pings.
    pub calls: Recipient<Call>,
    arbiter: Arbiter,
}

impl PluginHandle {
    /// Stop the actor's arbiter. A thread that is blocked ends when it unblocks; nothing waits for it.
    pub fn stop(self) {
        self.arbiter.stop();
    }
}

/// Start `role` as instance `instance` on a new arbiter; its HTTP client is built there,
/// for the role's address policy.
pub fn spawn<R: Role>(instance: String, role: R, setup: ActorSetup) -> PluginHandle {
    let arbiter = Arbiter::new();
    let addr = PluginActor::start_in_arbiter(&arbiter.handle(), move |_| PluginActor {
        cx: Arc::new(PluginContext {
            instance,
            http: crate::http::new_client(role.address_policy()),
        }),
        role: Arc::new(role),
        inbox: Rc::default(),
        setup,
    });
    PluginHandle {
        deliveries: addr.clone().recipient(),
        calls: addr.recipient(),
        arbiter,
    }
}

impl<R: Role> Actor for PluginActor<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Deliveries are bounded by the supervisor's in-flight limit; the mailbox only
        // needs room for a burst of those plus pings.
        ctx.set_mailbox_capacity(1024);
        // A task of its own, not a future in this actor's context (which polls all of
        // its futures on every wake).
        actix::spawn(work(
            Arc::clone(&self.role),
            Arc::clone(&self.cx),
            Rc::clone(&self.inbox),
            self.setup.clone(),
        ));
    }
}

/// Deliveries received and not started yet, shared with the worker on the same thread.
#[derive(Default)]
struct Inbox {
    jobs: VecDeque<Job>,
    /// Batches received so far (tells the worker that a refill it asked for came).
    batches: u64,
    /// Reports with a failure sent so far.
    failures_sent: u64,
    /// Wakes the worker when jobs arrive.
    waker: Option<Waker>,
}

struct Job {
    batch: u64,
    index: usize,
    seq: u64,
    event: Arc<Event>,
    timeout: Duration,
}

impl<R: Role> Handler<DeliverBatch> for PluginActor<R> {
    type Result = ();

    fn handle(&mut self, msg: DeliverBatch, _: &mut Context<Self>) {
        let mut inbox = self.inbox.borrow_mut();
        let (batch, timeout) = (msg.batch, msg.timeout);
        if msg.failures_seen < inbox.failures_sent {
            // Sent before the supervisor read a failure report: a failing service must
            // not get it before that failure is judged.
            self.setup.reply.do_send(Done {
                results: Vec::new(),
                returned: (0..msg.events.len()).map(|i| (batch, i)).collect(),
                failures: inbox.failures_sent,
            });
            return;
        }
        inbox.batches += 1;
        inbox.jobs.extend(
            msg.events
                .into_iter()
                .enumerate()
                .map(|(index, (seq, event))| Job {
                    batch,
                    index,
                    seq,
                    event,
                    timeout,
                }),
        );
        if let Some(w) = &inbox.waker {
            w.wake_by_ref();
        }
    }
}

/// The worker: starts queued jobs while fewer than `max_concurrent` run, and reports
/// results. A report goes at once when no more than `max_concurrent` jobs are queued (the
/// supervisor should send more; asked once per batch received, not on every result while
/// the refill is on its way), when nothing else is running, or after a failure (with the
/// queued jobs handed back); otherwise within [`REPORT_DELAY`], together with whatever
/// else finishes by then.
async fn work<R: Role>(
    role: Arc<R>,
    cx: Arc<PluginContext>,
    inbox: Rc<RefCell<Inbox>>,
    setup: ActorSetup,
) {
    let (role, cx) = (&*role, &*cx);
    let limit = setup.max_concurrent.max(1);
    let mut running = FuturesUnordered::new();
    let mut report = Done::default();
    let mut failed = false;
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut timer_armed = false;
    // The batch count when a report last asked for more work; while no batch has come since,
    // another report does not ask again (each report wakes the supervisor's thread).
    let mut asked_at: Option<u64> = None;
    futures::future::poll_fn(|task| loop {
        {
            let mut inbox = inbox.borrow_mut();
            while running.len() < limit {
                let Some(job) = inbox.jobs.pop_front() else {
                    break;
                };
                let current = Current {
                    tag: setup.store_tag,
                    seq: job.seq,
                    event: Arc::clone(&job.event),
                };
                running.push(DELIVERY.scope(current, run(role, cx, job)));
            }
        }
        if let Poll::Ready(Some(finished)) = running.poll_next_unpin(task) {
            if finished.result.is_err() {
                failed = true;
                let mut inbox = inbox.borrow_mut();
                report
                    .returned
                    .extend(inbox.jobs.drain(..).map(|j| (j.batch, j.index)));
            }
            report.results.push(finished);
            continue;
        }
        // Nothing more finishes right now.
        let mut inbox = inbox.borrow_mut();
        if !report.results.is_empty() {
            let low = inbox.jobs.len() <= limit;
            let asked = asked_at == Some(inbox.batches);
            let urgent = failed || running.is_empty() || (low && !asked);
            let due = timer_armed
                && timer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(task).is_ready());
            if urgent || due {
                inbox.failures_sent += u64::from(failed);
                report.failures = inbox.failures_sent;
                setup.reply.do_send(std::mem::take(&mut report));
                if low {
                    asked_at = Some(inbox.batches);
                }
                failed = false;
                timer_armed = false;
            } else if !timer_armed {
                let deadline = tokio::time::Instant::now() + REPORT_DELAY;
                match &mut timer {
                    Some(t) => t.as_mut().reset(deadline),
                    None => timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                timer_armed = true;
                // Poll once so the timer wakes this task.
                continue;
            }
        }
        match &inbox.waker {
            Some(w) if w.will_wake(task.waker()) => {}
            _ => inbox.waker = Some(task.waker().clone()),
        }
        if inbox.jobs.is_empty() || running.len() >= limit {
            return Poll::<()>::Pending;
        }
    })
    .await;
}

/// One delivery: the plugin's call, with panics caught and the timeout enforced.
async fn run<R: Role>(role: &R, cx: &PluginContext, job: Job) -> Finished {
    let call = AssertUnwindSafe(role.call(cx, &job.event)).catch_unwind();
    let result = match tokio::time::timeout(job.timeout + CANCEL_GRACE, call).await {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => Err(PluginError::Panicked {
            message: panic_message(&panic),
        }),
        Err(_) => Err(PluginError::Timeout { after: job.timeout }),
    };
    Finished {
        batch: job.batch,
        index: job.index,
        seq: job.seq,
        result,
    }
}

impl<R: Role> Handler<Call> for PluginActor<R> {
    type Result = ResponseFuture<Result<Reply, PluginError>>;

    fn handle(&mut self, msg: Call, _: &mut Context<Self>) -> Self::Result {
        let role = Arc::clone(&self.role);
        let cx = Arc::clone(&self.cx);
        Box::pin(async move {
            let work = async {
                match msg {
                    Call::Test => role.test(&cx).await.map(Reply::Report),
                    Call::Ping => Ok(Reply::Pong),
                }
            };
            AssertUnwindSafe(work)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(PluginError::Panicked {
                        message: panic_message(&panic),
                    })
                })
        })
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use crate::plugins::{Delivered, PluginInfo};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::sync::Semaphore;

    /// The info of a plugin only these tests run.
    fn info(name: &'static str, description: &'static str) -> PluginInfo {
        PluginInfo {
            name,
            description,
            version: "0",
            config_schema: serde_json::json!({}),
        }
    }

    /// Each call waits for a permit: the test decides when each one finishes.
    struct Gated(Arc<Semaphore>);

    impl Role for Gated {
        fn info(&self) -> PluginInfo {
            info("Gated", "finishes when the test says")
        }
        async fn call(&self, _: &PluginContext, _: &Event) -> Result<Outcome, PluginError> {
            self.0.acquire().await.expect("open").forget();
            Ok(Outcome::Delivered(Delivered {
                detail: String::new(),
            }))
        }
        async fn test(&self, _: &PluginContext) -> Result<ConnectionReport, PluginError> {
            unreachable!("not tested here")
        }
    }

    /// Each call fails at once, and is counted.
    struct Failing(Arc<AtomicUsize>);

    impl Role for Failing {
        fn info(&self) -> PluginInfo {
            info("Failing", "fails every call")
        }
        async fn call(&self, _: &PluginContext, _: &Event) -> Result<Outcome, PluginError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(PluginError::Unresponsive)
        }
        async fn test(&self, _: &PluginContext) -> Result<ConnectionReport, PluginError> {
            unreachable!("not tested here")
        }
    }

    /// One report as a test reads it: results' sequence numbers, what was handed back,
    /// the failure count.
    type Whole = (Vec<u64>, Vec<(u64, usize)>, u64);

    /// Keeps every report whole.
    struct Collect(Arc<Mutex<Vec<Whole>>>);

    /// The sequence numbers of each report's results.
    fn seqs(reports: &Mutex<Vec<Whole>>) -> Vec<Vec<u64>> {
        reports
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.0.clone())
            .collect()
    }

    impl Actor for Collect {
        type Context = Context<Self>;
    }

    impl Handler<Done> for Collect {
        type Result = ();
        fn handle(&mut self, done: Done, _: &mut Context<Self>) {
            let seqs = done.results.iter().map(|f| f.seq).collect();
            self.0
                .lock()
                .unwrap()
                .push((seqs, done.returned, done.failures));
        }
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    /// What one call found: its `&Event` shared as itself, the copy found shared, the
    /// delivery id.
    type Found = (bool, bool, Option<String>);

    /// Inside a delivery, what the plugin's `&Event` finds shared.
    struct Probe {
        /// An equal copy of the delivered event, not the same one.
        copy: Event,
        /// One entry per call.
        seen: Arc<Mutex<Vec<Found>>>,
    }

    impl Role for Probe {
        fn info(&self) -> PluginInfo {
            info("Probe", "records what it finds shared")
        }
        async fn call(&self, _: &PluginContext, event: &Event) -> Result<Outcome, PluginError> {
            let itself = shared_event(event).is_some_and(|e| std::ptr::eq(&*e, event));
            let copy = shared_event(&self.copy).is_some();
            self.seen
                .lock()
                .unwrap()
                .push((itself, copy, delivery_id()));
            Ok(Outcome::Delivered(Delivered {
                detail: String::new(),
            }))
        }
        async fn test(&self, _: &PluginContext) -> Result<ConnectionReport, PluginError> {
            unreachable!("not tested here")
        }
    }

    /// A plugin's `&Event` is found shared (for templates to read in place) only when it
    /// is the delivery's own event: an equal copy, or any call outside a delivery, gets
    /// `None`.
    #[actix_rt::test]
    async fn the_shared_event_is_the_deliverys_own() {
        let event = Arc::new(Event::new(EventName::AfterMediaAdded, Default::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            copy: (*event).clone(),
            seen: Arc::clone(&seen),
        };
        let reply = Collect(Arc::new(Mutex::new(Vec::new())))
            .start()
            .recipient();
        let setup = ActorSetup {
            reply,
            max_concurrent: 1,
            store_tag: 7,
        };
        let handle = spawn("probe".into(), probe, setup);
        handle.deliveries.do_send(DeliverBatch {
            batch: 1,
            events: vec![(3, Arc::clone(&event))],
            timeout: Duration::from_secs(60),
            failures_seen: 0,
        });
        // The actor runs on its own thread: wait for its call to be recorded.
        while seen.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handle.stop();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(true, false, Some(crate::store::format_id(7, 3)))]
        );
        assert!(shared_event(&event).is_none(), "outside a delivery");
    }

    /// With its queue low, the worker asks for more once; later results wait for the
    /// report delay (or for nothing to be running) instead of each waking the supervisor.
    #[actix_rt::test]
    async fn asks_for_more_work_once_per_batch() {
        tokio::time::pause();
        let gate = Arc::new(Semaphore::new(0));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let reply = Collect(Arc::clone(&reports)).start().recipient();
        let actor = PluginActor {
            role: Arc::new(Gated(Arc::clone(&gate))),
            cx: Arc::new(PluginContext {
                instance: "gated".into(),
                http: crate::http::new_client(crate::http::AddressPolicy::PublicOnly),
            }),
            inbox: Rc::default(),
            setup: ActorSetup {
                reply,
                max_concurrent: 2,
                store_tag: 1,
            },
        }
        .start();
        let event = Arc::new(Event::new(EventName::AfterMediaAdded, Default::default()));
        let events = (1..=4).map(|seq| (seq, Arc::clone(&event))).collect();
        actor.do_send(DeliverBatch {
            batch: 1,
            events,
            timeout: Duration::from_secs(60),
            failures_seen: 0,
        });
        settle().await;
        // Two run, two wait: the queue is at the limit, so the first result asks at once.
        gate.add_permits(1);
        settle().await;
        assert_eq!(seqs(&reports), vec![vec![1]]);
        // No batch came since: the next result is held, not reported on its own.
        gate.add_permits(1);
        settle().await;
        let seen = seqs(&reports);
        assert_eq!(seen.len(), 1, "{seen:?}");
        // It goes within the report delay, with whatever else finished by then.
        gate.add_permits(1);
        settle().await;
        tokio::time::advance(REPORT_DELAY * 2).await;
        settle().await;
        assert_eq!(seqs(&reports), vec![vec![1], vec![2, 3]]);
        // A new batch lets the worker ask again.
        actor.do_send(DeliverBatch {
            batch: 2,
            events: vec![(5, Arc::clone(&event)), (6, Arc::clone(&event))],
            timeout: Duration::from_secs(60),
            failures_seen: 0,
        });
        settle().await;
        gate.add_permits(1);
        settle().await;
        assert_eq!(seqs(&reports).last(), Some(&vec![4]));
    }

    /// A batch the supervisor sent before it read a failure report is handed back
    /// unstarted; once the batch says the failure was read, it runs.
    #[actix_rt::test]
    async fn a_batch_sent_before_a_failure_was_read_is_handed_back() {
        let calls = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let reply = Collect(Arc::clone(&reports)).start().recipient();
        let setup = ActorSetup {
            reply,
            max_concurrent: 1,
            store_tag: 1,
        };
        let handle = spawn("failing".into(), Failing(Arc::clone(&calls)), setup);
        let event = Arc::new(Event::new(EventName::AfterMediaAdded, Default::default()));
        let batch = |batch, seqs: &[u64], failures_seen| DeliverBatch {
            batch,
            events: seqs.iter().map(|s| (*s, Arc::clone(&event))).collect(),
            timeout: Duration::from_secs(60),
            failures_seen,
        };
        let reports_now = |n: usize| {
            let reports = Arc::clone(&reports);
            async move {
                while reports.lock().unwrap().len() < n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                reports.lock().unwrap().clone()
            }
        };
        // The first call fails; the delivery queued behind it comes back unstarted.
        handle.deliveries.do_send(batch(1, &[1, 2], 0));
        assert_eq!(reports_now(1).await, vec![(vec![1], vec![(1, 1)], 1)]);
        // Sent as if that report were still unread: nothing starts.
        handle.deliveries.do_send(batch(2, &[3, 4], 0));
        let seen = reports_now(2).await;
        assert_eq!(seen[1], (vec![], vec![(2, 0), (2, 1)], 1));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        // The failure was read: the batch runs.
        handle.deliveries.do_send(batch(3, &[5], 1));
        let seen = reports_now(3).await;
        assert_eq!(seen[2], (vec![5], vec![], 2));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        handle.stop();
    }
}
