//! Every command's outcome, recorded in the state file so that `status`
//! shows `last_error`, `consecutive_failures` and `last_success` whatever
//! mode the agent runs in (a cron `renew` as well as the `run` daemon).

use crate::config::Settings;
use crate::error::Result;
use crate::http::now_unix;
use crate::log;
use crate::state::State;

/// Records `result` of a one-shot command and passes it through. A success
/// writes only when it ends a run of failures (a healthy no-op check leaves
/// the state file alone: flash wear).
pub fn record(settings: &Settings, result: Result<i32>) -> Result<i32> {
    let Ok(state_dir) = settings.state_dir() else {
        return result;
    };
    let Ok(mut state) = State::load(&state_dir) else {
        return result;
    };
    match &result {
        Ok(_) if state.failures == 0 && state.last_error.is_none() => return result,
        Ok(_) => {
            state.failures = 0;
            state.last_error = None;
            state.last_success = Some(now_unix());
        }
        Err(e) => {
            state.failures = state.failures.saturating_add(1);
            state.last_error = Some(e.to_string());
        }
    }
    if let Err(e) = state.store(&state_dir) {
        log::warn(format!("could not record the outcome: {e}"));
    }
    result
}
