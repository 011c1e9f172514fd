//! The one clock: the time of judgement in Unix seconds. The engine has
//! none (`Context::now` is given to it); the webhook, the CLI, the audit and
//! the exception gauges all read this.

/// Now, in Unix seconds (`None` if the system clock is before 1970).
pub fn now() -> Option<i64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}
