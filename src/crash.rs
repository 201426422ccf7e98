//! Crash points for the crash tests. When `ASSENT_CRASH_AT` names a point, the process dies
//! there at once with `abort()`: like a SIGKILL, no destructor runs, no buffer is flushed and no
//! open transaction is committed or rolled back by us. Unset (always, outside the tests), a
//! point costs one comparison.
//!
//! The points sit where a crash is most likely to leave a mixture: inside an erasure's
//! transaction, between a commit and the log's integration, and half-way through integrating.

use std::sync::OnceLock;

/// Dies here if `ASSENT_CRASH_AT` is `name`.
pub fn point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var("ASSENT_CRASH_AT").ok()).as_deref() == Some(name) {
        eprintln!("ASSENT_CRASH_AT={name}: dying here");
        std::process::abort();
    }
}
