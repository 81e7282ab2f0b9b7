//! systemd integration: `READY=1`, `WATCHDOG=1` at half of `WATCHDOG_USEC`, `STOPPING=1`. Every
//! call is a no-op when `NOTIFY_SOCKET` is not set.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// A configuration reload is under way (`Type=notify` units may use `ExecReload=kill -HUP`).
pub fn reloading() {
    notify(&[NotifyState::Reloading, NotifyState::Status("reloading")]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Pings the watchdog from the runtime: if the runtime stalls, the pings stop and systemd
/// restarts the service.
pub fn spawn_watchdog(shutdown: CancellationToken) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2);
    tracing::info!(
        period_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => notify(&[NotifyState::Watchdog]),
                _ = shutdown.cancelled() => return,
            }
        }
    });
}
