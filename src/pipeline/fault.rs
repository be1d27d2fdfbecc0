//! Faults the integration tests inject through real events: with the `fault-injection`
//! feature (the test build only, never a release), a stage panics on an event whose endpoint
//! is `/lakepulse-fault/<stage>`, as it would on a bug, so a test can show that the stage sets
//! that one message aside and goes on. Without the feature this is nothing.

use crate::model::LogEvent;

/// Panics in `stage` on the event the tests mark for it.
#[cfg(feature = "fault-injection")]
pub fn panic_if_marked(stage: &str, event: &LogEvent) {
    if event.endpoint.strip_prefix("/lakepulse-fault/") == Some(stage) {
        panic!("a fault injected in {stage}");
    }
}

/// Panics in `stage` on the event the tests mark for it.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn panic_if_marked(_stage: &str, _event: &LogEvent) {}
