//! Every command's outcome, recorded in the state file so that `status`
//! shows `last_error`, `consecutive_failures` and `last_success` whatever
//! mode the agent runs in (a cron `renew` as well as the `run` daemon).

use std::time::Duration;

use crate::config::Settings;
use crate::error::{AgentError, Result};
use crate::http::now_unix;
use crate::log;
use crate::state::State;

/// The longest Retry-After honoured (a week): a wrong or hostile value must
/// not silence a device for good.
pub const MAX_RETRY_AFTER: u64 = 7 * 86_400;

/// A server's Retry-After in seconds, bounded by [`MAX_RETRY_AFTER`].
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs().min(MAX_RETRY_AFTER)
}

/// Applies `result` to the health fields of `state` (`failures`,
/// `last_error`, `last_success`, and `retry_not_before` for a server's
/// Retry-After, RFC 8555 §6.6, kept on the local clock: only the interval
/// matters); whether they changed. A success changes them only when it ends
/// a run of failures.
pub fn apply(state: &mut State, result: &Result<i32>) -> bool {
    match result {
        Ok(_) if state.failures == 0 && state.last_error.is_none() => return false,
        Ok(_) => {
            state.failures = 0;
            state.last_error = None;
            state.last_success = Some(now_unix());
        }
        Err(e) => {
            state.failures = state.failures.saturating_add(1);
            state.last_error = Some(e.to_string());
            if let AgentError::RetryLater { retry_after, .. } = e {
                state.retry_not_before = Some(now_unix() + retry_after_secs(*retry_after) as i64);
            }
        }
    }
    true
}

/// Records `result` of a one-shot command (see [`apply`]) and passes it
/// through. A healthy no-op check leaves the state file alone (flash wear).
pub fn record(settings: &Settings, result: Result<i32>) -> Result<i32> {
    let Ok(state_dir) = settings.state_dir() else {
        return result;
    };
    let Ok(mut state) = State::load(&state_dir) else {
        return result;
    };
    if apply(&mut state, &result) {
        if let Err(e) = state.store(&state_dir) {
            log::warn(format!("could not record the outcome: {e}"));
        }
    }
    result
}
