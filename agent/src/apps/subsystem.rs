//! The app subsystem's place in the daemon: the worker registered with the supervisor in the
//! processing phase, and the app API (what containers reach) in the ingress phase.

use std::sync::Arc;

use super::Apps;

/// Registers the app worker with the supervisor (processing phase); `None` when
/// `docker.enabled` is off.
pub fn start(
    sup: &mut crate::supervisor::Supervisor,
    cfg: &crate::config::AgentConfig,
) -> anyhow::Result<Option<Arc<Apps>>> {
    use crate::supervisor::Phase;
    if !cfg.docker.enabled {
        return Ok(None);
    }
    let (apps, worker) = Apps::open(
        &cfg.data_dir,
        cfg.docker.clone(),
        &cfg.apps,
        sup.stop_token(Phase::Ingress),
        cfg.greengrass.enabled.then(|| cfg.greengrass.listen.port()),
    )?;
    let a = apps.clone();
    sup.spawn(
        "container apps",
        Phase::Processing,
        move |stop| async move {
            a.run(worker, stop).await;
            Ok(())
        },
    );
    Ok(Some(apps))
}

/// Serves the app API (stream reads and appends with an app's token) on
/// `docker.app_api_listen` in the ingress phase. The address belongs to the Docker bridge,
/// which may not exist yet (the engine starts later, or is not installed): binding is retried
/// every few seconds, and Ferry runs on meanwhile.
pub fn serve_app_api(sup: &mut crate::supervisor::Supervisor, state: &crate::api::ApiState) {
    use crate::supervisor::Phase;
    let Some(apps) = state.apps.clone() else {
        return;
    };
    if !apps.settings.app_api_enabled {
        return;
    }
    let addr = apps.settings.app_api_listen;
    let router = crate::api::app_router(state.clone());
    sup.spawn("app API", Phase::Ingress, move |stop| async move {
        let mut warned = false;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) => {
                    if !warned {
                        tracing::warn!(listen = %addr, error = %e, "apps cannot reach Ferry yet: the app API cannot listen (is the Docker bridge up?); retrying");
                        warned = true;
                    }
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    }
                }
            }
        };
        tracing::info!(listen = %addr, "app API listening");
        let serve = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "app API stopped");
        }
        Ok(())
    });
}
