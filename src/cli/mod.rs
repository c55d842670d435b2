//! The command's own pieces (not part of the library): `check`'s report, `preview`'s report
//! and signal handling.

pub mod check;
pub mod preview;
pub mod signals;
