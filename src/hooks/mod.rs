//! Lua hooks: discovery, the sandboxed Luau VM, JSON ↔ Luau conversion, and the `HookActor`.
//!
//! Hooks live in `<directory>/<event>/NN_name.lua`, compile once at start, and run in
//! order on every event of that name. Each call is bounded in time and memory; a hook
//! that fails leaves the data as it was before it and the chain goes on.
//!
//! | module | one responsibility |
//! |---|---|
//! | `handle` | [`Hooks`], the cloneable handle (start, apply, stats) and [`check`] |
//! | [`actor`] | [`HookActor`] on its own arbiter; panics caught, VM rebuilt |
//! | `queue` | the job queue between handle and actor, both ways: many events and answers per wake |
//! | `chain` | one event's hooks in order: fail-soft, stopped by `reject` |
//! | `sandbox` | the Luau VM: compile once per script, time and memory limits |
//! | `globals` | what scripts lose (`io`, `require`, ...) and gain (`reject`, `log`, `json`) |
//! | `convert` | JSON ↔ Luau rules (integers, null, empty arrays, depth, cycles) |
//! | `discover` | finding and ordering scripts |
//! | `stats` | counters per hook |
//! | `error` | [`HookError`] and [`HookProblem`] |

pub mod actor;
mod chain;
mod convert;
mod discover;
mod error;
mod globals;
mod handle;
mod queue;
mod sandbox;
mod stats;

#[doc(hidden)]
pub use actor::{Fault, InjectFault};
pub use actor::{HookActor, HookRejected};
pub use discover::DEFAULT_PRIORITY;
pub use error::{HookError, HookProblem};
pub use handle::{check, HookSummary, Hooks};
pub use stats::{HookStat, HookStats};
