//! Lua hooks: discovery, the sandboxed Luau VM, JSON ↔ Luau conversion, and the `HookActor`.
//!
//! Hooks live in `<directory>/<event>/NN_name.lua`, compile once at start, and run in
//! order on every event of that name, on one of `hooks.workers` VMs. Each call is bounded
//! in time and memory, and so is its result; a hook that fails leaves the data as it was
//! before it and the chain goes on, except at a fail-closed event (`hooks.fail_closed`,
//! the `before_*` events by default), which it refuses. A hook failing too often in a
//! row is quarantined.
//!
//! A reload ([`Hooks::reload`], and [`Hooks::watch`] when the directory changes) reads
//! and compiles the scripts again and swaps the whole set between events; one with a
//! script that does not compile is refused and the running set stays (see `reload`).
//!
//! | module | one responsibility |
//! |---|---|
//! | `handle` | [`Hooks`], the cloneable handle (start, apply, stats, release) |
//! | `set` | one load of the scripts: its workers and counters, swapped whole |
//! | `reload` | [`Hooks::reload`]: compile again, refuse or swap, say what changed |
//! | `watch` | [`HookWatcher`]: the directory watched, reloads debounced |
//! | `check` | [`check`] and [`check_all`] for the CLI |
//! | [`actor`] | [`HookActor`], one worker on its own arbiter; panics caught, VM rebuilt |
//! | `queue` | the job queue between handle and workers, both ways: many events and answers per wake |
//! | `chain` | one event's hooks in order: fail-soft or fail-closed, stopped by `reject` |
//! | `sandbox` | the Luau VM: compile once per script, time and memory limits |
//! | `returned` | reading a hook's result back: the contract and the size and depth limits |
//! | `globals` | what scripts lose (`io`, `require`, ...) and gain (`reject`, `log`, `json`) |
//! | `convert` | JSON ↔ Luau rules (integers, null, empty arrays, depth, cycles) |
//! | `limits` | the size limit both ways; cutting text |
//! | `discover` | finding and ordering scripts, and what is never run |
//! | `stats` | counters per hook, and the quarantine |
//! | `error` | [`HookError`], [`HookProblem`] and [`HookRejected`] |

pub mod actor;
mod chain;
mod check;
mod convert;
mod discover;
mod error;
mod globals;
mod handle;
mod limits;
mod queue;
mod reload;
mod returned;
mod sandbox;
mod set;
mod stats;
mod watch;

pub use actor::HookActor;
#[doc(hidden)]
pub use actor::{Fault, InjectFault};
pub use check::{check, check_all, HookCheck, HookSummary};
pub use discover::DEFAULT_PRIORITY;
pub use error::{HookError, HookProblem, HookRejected, RejectKind, MAX_REASON_BYTES};
pub use handle::{Hooks, UnknownHook};
pub use reload::{HooksReloadError, HooksReloaded};
pub use stats::{HookStat, HookStats};
pub use watch::{HookWatcher, WatchError, QUIET};
