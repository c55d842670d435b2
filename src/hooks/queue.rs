//! The queue between the [`super::Hooks`] handle and the workers, both ways: many events per wake.
//!
//! A message per event costs a cross-thread wake each way, which dominated the hook
//! path (measured: ~12 µs more per event than calling Lua directly). Callers push jobs
//! here, and only a caller that finds a worker idle sends it a `Drain`; a worker then
//! takes queued jobs one at a time until there are none. One at a time, so that a slow
//! event holds up only the worker running it: the others go on taking the jobs behind it.
//!
//! Answers come back the same way. Waking each caller from the actor's thread cost a
//! syscall per event (an `eventfd` write: ~11 % of the actor's time, measured), so the
//! actor's [`Outbox`] wakes one caller per calling thread directly and leaves it the
//! answers of the others from that thread; it passes them on ([`JobQueue::pass_on`]),
//! where waking a task of its own runtime is a queue push. Answers are only ever handed
//! between callers of one thread, so a busy thread never holds up another's. An answer
//! waits in the outbox about [`MAX_HOLD`] at most: a worker in the middle of a slow hook
//! sends what it holds from the VM's interrupt (see `actor.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::error::HookRejected;
use crate::event::Event;

/// What the actor answers for one event.
pub(crate) type Answer = Result<Event, HookRejected>;

/// How long the actor may hold answers back to send them in one wake.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(1);

/// One event waiting for its hooks. Dropped unanswered (its worker died with it, or the
/// queue was dropped), it answers with the event unchanged, so an event is never lost;
/// or, at a fail-closed event, with a refusal, so it is never let through unchecked.
pub(crate) struct Job {
    event: Option<Event>,
    reply: Option<oneshot::Sender<Answer>>,
    /// The thread the caller queued it from: answers are relayed among its callers.
    caller: ThreadId,
    fail_closed: bool,
    /// A preview's: run the hooks without counting (no stats, no quarantine).
    dry_run: bool,
}

impl Job {
    pub fn new(event: Event, fail_closed: bool) -> (Job, oneshot::Receiver<Answer>) {
        let (tx, rx) = oneshot::channel();
        (
            Job {
                event: Some(event),
                reply: Some(tx),
                caller: thread::current().id(),
                fail_closed,
                dry_run: false,
            },
            rx,
        )
    }

    /// The same job for a preview: its hooks run, nothing is counted.
    pub fn dry_run(mut self) -> Job {
        self.dry_run = true;
        self
    }

    /// Whether this is a preview's job.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The event to run hooks on; answer with [`Job::answered`].
    pub fn take_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    /// The job's answer, ready to go back to its caller.
    pub fn answered(mut self, answer: Answer) -> Reply {
        Reply {
            tx: self.reply.take(),
            answer: Some(answer),
            caller: self.caller,
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let (Some(tx), Some(event)) = (self.reply.take(), self.event.take()) {
            let answer = if self.fail_closed {
                Err(HookRejected::failed(
                    "(hook worker)",
                    "the hook worker stopped before this event's hooks ran; send the event again",
                ))
            } else {
                Ok(event)
            };
            let _ = tx.send(answer);
        }
    }
}

/// An answer on its way back. However it travels, it is delivered when dropped at the
/// latest, so no path (a panic, a dropped queue) leaves a caller without its answer.
pub(crate) struct Reply {
    tx: Option<oneshot::Sender<Answer>>,
    answer: Option<Answer>,
    caller: ThreadId,
}

impl Reply {
    fn waiting(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Send the answer; false if its caller has stopped waiting.
    fn deliver(mut self) -> bool {
        match (self.tx.take(), self.answer.take()) {
            (Some(tx), Some(answer)) => tx.send(answer).is_ok(),
            _ => false,
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let (Some(tx), Some(answer)) = (self.tx.take(), self.answer.take()) {
            let _ = tx.send(answer);
        }
    }
}

pub(crate) struct JobQueue {
    state: Mutex<State>,
    /// Answers left by the workers for a woken caller to pass on, by calling thread.
    relay: Mutex<HashMap<ThreadId, Vec<Reply>>>,
}

/// Every worker is either idle (listed here, no drain pending) or draining; so while
/// jobs wait, some worker is draining and will come to them.
struct State {
    jobs: VecDeque<Job>,
    /// Idle workers, the one idle most recently last (woken first: its cache is warm).
    idle: Vec<usize>,
}

impl JobQueue {
    /// A queue for workers `0..workers`, all idle.
    pub fn new(workers: usize) -> JobQueue {
        JobQueue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: (0..workers).rev().collect(),
            }),
            relay: Mutex::default(),
        }
    }

    /// Queue a job; `Some(w)` when the caller must send worker `w` a `Drain`.
    pub fn push(&self, job: Job) -> Option<usize> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.jobs.push_back(job);
        s.idle.pop()
    }

    /// The next job for worker `w`; `None` when there is none, and `w` is idle from then on.
    pub fn next(&self, w: usize) -> Option<Job> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let job = s.jobs.pop_front();
        if job.is_none() && !s.idle.contains(&w) {
            s.idle.push(w);
        }
        job
    }

    /// Everything queued.
    pub fn take(&self) -> Vec<Job> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.jobs.drain(..).collect()
    }

    /// A `Drain` for `w` was dropped unhandled: `w` is not draining.
    pub fn drain_lost(&self, w: usize) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.idle.contains(&w) {
            s.idle.push(w);
        }
    }

    /// Take idle worker `w` to send it a `Drain`; false if it is draining already.
    pub fn claim(&self, w: usize) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match s.idle.iter().position(|&i| i == w) {
            Some(at) => {
                s.idle.remove(at);
                true
            }
            None => false,
        }
    }

    /// Deliver the answers the actor left for callers of `caller` (a thread). Every caller
    /// calls this once it has its answer or stops waiting, so a woken caller that is then
    /// dropped still passes them on.
    pub fn pass_on(&self, caller: ThreadId) {
        // Delivered outside the lock: sending wakes tasks.
        drop(self.take_relay(caller));
    }

    /// The answers left for callers of `caller`, in a vector of this thread's: the relay
    /// keeps its own (a worker's allocation), so no buffer is freed on another thread
    /// than the one that grew it (with mimalloc that cost fresh, zeroed pages).
    fn take_relay(&self, caller: ThreadId) -> Vec<Reply> {
        let mut relay = self.relay.lock().unwrap_or_else(PoisonError::into_inner);
        match relay.get_mut(&caller) {
            // Not `mem::take`: that would hand this thread the worker's buffer to free.
            #[allow(clippy::drain_collect)]
            Some(left) if !left.is_empty() => left.drain(..).collect(),
            _ => Vec::new(),
        }
    }

    /// Move the answers left for callers of `caller` into `into`.
    fn take_relay_into(&self, caller: ThreadId, into: &mut Vec<Reply>) {
        let mut relay = self.relay.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(left) = relay.get_mut(&caller) {
            into.append(left);
        }
    }

    fn leave(&self, caller: ThreadId, replies: &mut Vec<Reply>) {
        if !replies.is_empty() {
            self.relay
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(caller)
                .or_default()
                .append(replies);
        }
    }
}

/// A worker's side of the answers: holds a batch's answers and sends them with one wake
/// per calling thread. Dropping it sends what it holds.
pub(crate) struct Outbox {
    queue: Arc<JobQueue>,
    held: Vec<Reply>,
    /// One calling thread's share of `held` during a flush; kept for its capacity.
    group: Vec<Reply>,
    since: Option<Instant>,
}

impl Outbox {
    pub fn new(queue: Arc<JobQueue>) -> Outbox {
        Outbox {
            queue,
            held: Vec::new(),
            group: Vec::new(),
            since: None,
        }
    }

    pub fn push(&mut self, reply: Reply) {
        self.held.push(reply);
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= MAX_HOLD {
            self.flush();
        }
    }

    /// When what is held must go out (`None`: nothing is held).
    pub fn due(&self) -> Option<Instant> {
        self.since.map(|since| since + MAX_HOLD)
    }

    pub fn flush(&mut self) {
        self.since = None;
        // Buffers are reused, not rebuilt: a flush happens every millisecond under load.
        while let Some(caller) = self.held.first().map(|r| r.caller) {
            let mut i = 0;
            while i < self.held.len() {
                if self.held[i].caller == caller {
                    self.group.push(self.held.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            self.wake_one(caller);
        }
    }

    /// Wake one waiting caller in `group` (all of `caller`'s thread) and leave it the
    /// rest to pass on.
    fn wake_one(&mut self, caller: ThreadId) {
        while let Some(i) = self.group.iter().position(Reply::waiting) {
            let first = self.group.swap_remove(i);
            // Left before the wake, so the woken caller is sure to find them.
            self.queue.leave(caller, &mut self.group);
            if first.deliver() {
                return;
            }
            // That caller gave up in between: take the answers back and try another.
            self.queue.take_relay_into(caller, &mut self.group);
        }
        // No caller is waiting for any of them; dropping them is all that is left to do.
        self.group.clear();
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;

    fn event(n: u64) -> Event {
        let data = serde_json::json!({ "n": n });
        Event::new(
            EventName::AfterMediaAdded,
            data.as_object().unwrap().clone(),
        )
    }

    fn job(e: &Event) -> Job {
        Job::new(e.clone(), false).0
    }

    #[test]
    fn a_push_wakes_an_idle_worker_until_none_is_left() {
        let q = JobQueue::new(2);
        let e = Event::new(EventName::AfterMediaAdded, Default::default());
        assert_eq!(q.push(job(&e)), Some(0));
        assert_eq!(q.push(job(&e)), Some(1));
        assert_eq!(q.push(job(&e)), None, "both are draining");
        assert!(q.next(1).is_some());
        assert!(q.next(0).is_some());
        assert!(q.next(1).is_some());
        assert!(q.next(1).is_none(), "1 is idle now");
        assert_eq!(q.push(job(&e)), Some(1));
        assert!(
            q.next(0).is_some(),
            "a draining worker takes what is queued"
        );
        assert!(q.next(0).is_none());
        assert_eq!(q.push(job(&e)), Some(0), "the one idle last goes first");
    }

    #[test]
    fn a_lost_drain_leaves_its_worker_idle_once() {
        let q = JobQueue::new(1);
        let e = Event::new(EventName::AfterMediaAdded, Default::default());
        assert_eq!(q.push(job(&e)), Some(0));
        q.drain_lost(0);
        q.drain_lost(0);
        assert!(q.claim(0));
        assert!(!q.claim(0), "listed once");
        assert_eq!(q.push(job(&e)), None);
        assert_eq!(q.take().len(), 2);
    }

    #[test]
    fn a_dropped_job_answers_with_its_event_unchanged() {
        let e = Event::new(EventName::OnImportFailed, Default::default());
        let (job, mut rx) = Job::new(e.clone(), false);
        drop(job);
        assert_eq!(rx.try_recv().unwrap(), Ok(e));
    }

    #[test]
    fn a_dropped_fail_closed_job_refuses_its_event() {
        let e = Event::new(EventName::BeforeDownloadInitiated, Default::default());
        let (job, mut rx) = Job::new(e, true);
        drop(job);
        let refused = rx.try_recv().unwrap().unwrap_err();
        assert_eq!(refused.kind, crate::hooks::error::RejectKind::HookFailed);
    }

    #[test]
    fn an_answered_job_does_not_answer_twice() {
        let e = Event::new(EventName::OnImportFailed, Default::default());
        let (mut job, mut rx) = Job::new(e.clone(), false);
        let ev = job.take_event().unwrap();
        drop(job.answered(Err(HookRejected::rejected("h", "no"))));
        assert!(rx.try_recv().unwrap().is_err());
        drop(ev);
    }

    /// Three answered jobs in an outbox, and their receivers.
    fn batch(q: &Arc<JobQueue>) -> (Outbox, Vec<oneshot::Receiver<Answer>>) {
        let mut outbox = Outbox::new(Arc::clone(q));
        let mut rxs = Vec::new();
        for n in 0..3 {
            let (mut job, rx) = Job::new(event(n), false);
            let e = job.take_event().unwrap();
            outbox.held.push(job.answered(Ok(e)));
            rxs.push(rx);
        }
        (outbox, rxs)
    }

    fn answered(rxs: &mut [oneshot::Receiver<Answer>]) -> Vec<u64> {
        rxs.iter_mut()
            .filter_map(|rx| rx.try_recv().ok())
            .map(|a| a.unwrap().data["n"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn a_flush_wakes_one_caller_who_passes_the_rest_on() {
        let q = Arc::new(JobQueue::new(1));
        let (mut outbox, mut rxs) = batch(&q);
        outbox.flush();
        assert_eq!(answered(&mut rxs).len(), 1);
        q.pass_on(thread::current().id());
        let mut all = answered(&mut rxs);
        all.sort();
        assert_eq!(all.len(), 2, "the other two, each exactly once");
        assert!(q.take_relay(thread::current().id()).is_empty());
    }

    #[test]
    fn a_caller_that_stopped_waiting_is_not_the_one_woken() {
        let q = Arc::new(JobQueue::new(1));
        let (mut outbox, mut rxs) = batch(&q);
        rxs.remove(0);
        outbox.flush();
        assert_eq!(answered(&mut rxs).len(), 1);
        q.pass_on(thread::current().id());
        assert_eq!(answered(&mut rxs).len(), 1);
    }

    #[test]
    fn answers_are_not_held_past_max_hold() {
        let q = Arc::new(JobQueue::new(1));
        let (mut outbox, mut rxs) = batch(&q);
        let (mut job, rx) = Job::new(event(3), false);
        let e = job.take_event().unwrap();
        rxs.push(rx);
        outbox.push(job.answered(Ok(e)));
        assert!(
            answered(&mut rxs).is_empty(),
            "held while the batch is young"
        );
        outbox.since = Instant::now().checked_sub(MAX_HOLD);
        let (mut job, rx) = Job::new(event(4), false);
        let e = job.take_event().unwrap();
        rxs.push(rx);
        outbox.push(job.answered(Ok(e)));
        assert_eq!(answered(&mut rxs).len(), 1, "one woken");
        q.pass_on(thread::current().id());
        assert_eq!(answered(&mut rxs).len(), 4, "and it passed the rest on");
    }

    #[test]
    fn answers_are_relayed_only_among_callers_of_one_thread() {
        let q = Arc::new(JobQueue::new(1));
        let (mut outbox, mut here) = batch(&q);
        let (jobs, mut there): (Vec<Job>, Vec<_>) =
            std::thread::spawn(|| (0..3).map(|n| Job::new(event(10 + n), false)).unzip())
                .join()
                .unwrap();
        for mut job in jobs {
            let e = job.take_event().unwrap();
            outbox.held.push(job.answered(Ok(e)));
        }
        outbox.flush();
        assert_eq!(answered(&mut here).len(), 1, "one woken on this thread");
        assert_eq!(answered(&mut there).len(), 1, "and one on the other");
        q.pass_on(thread::current().id());
        assert_eq!(answered(&mut here).len(), 2, "this thread's rest");
        assert!(
            answered(&mut there).is_empty(),
            "the other thread's wait for its own caller"
        );
        drop(outbox);
        drop(q);
        assert_eq!(
            answered(&mut there).len(),
            2,
            "a dropped queue still delivers"
        );
    }

    #[test]
    fn a_dropped_outbox_sends_what_it_holds() {
        let q = Arc::new(JobQueue::new(1));
        let (outbox, mut rxs) = batch(&q);
        drop(outbox);
        drop(q);
        let mut all = answered(&mut rxs);
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
    }
}
