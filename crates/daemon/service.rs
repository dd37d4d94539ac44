//! The goguard.v1 gRPC service: maps requests onto the daemon's state and
//! answers. Every handler runs through [`GoGuardService::observe`], which
//! counts the call by method and status code and logs it in a span.
//!
//! Authorization: the interceptor in `authz` attaches a `Caller` to every
//! request; handlers that need a role check it here, in one place per call.

use std::sync::Arc;
use std::time::Instant;

use goguard_proto::v1 as pb;
use goguard_proto::v1::go_guard_server::GoGuard;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::authz::{self, Role};
use crate::daemon_state::{ComponentState, DaemonState};

pub struct GoGuardService {
    pub state: Arc<DaemonState>,
}

impl GoGuardService {
    /// Runs one handler, recording its outcome in metrics and logs.
    async fn observe<T>(
        &self,
        method: &'static str,
        handler: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let start = Instant::now();
        let span = tracing::debug_span!("rpc", method);
        let result = handler.instrument(span).await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.state
            .metrics
            .observe_rpc(method, code, start.elapsed().as_secs_f64());
        if let Err(status) = &result {
            tracing::info!(method, code = ?status.code(), error = status.message(), "rpc refused or failed");
        }
        result
    }
}

#[tonic::async_trait]
impl GoGuard for GoGuardService {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        self.observe("GetStatus", async {
            let caller = authz::caller(&request)?;
            Ok(Response::new(status_response(&self.state, caller)))
        })
        .await
    }
}

fn status_response(state: &DaemonState, caller: authz::Caller) -> pb::GetStatusResponse {
    let components = state
        .components
        .snapshot()
        .into_iter()
        .map(|(name, status)| pb::Component {
            name: name.to_owned(),
            state: match status.state {
                ComponentState::Starting => pb::ComponentState::Starting,
                ComponentState::Running => pb::ComponentState::Running,
                ComponentState::Disabled => pb::ComponentState::Disabled,
                ComponentState::Failed => pb::ComponentState::Failed,
            } as i32,
            detail: status.detail,
        })
        .collect();
    let reload = state.reload.lock().expect("reload lock poisoned").clone();
    let source = state.source.read().expect("source lock poisoned").clone();
    let admin_group = state
        .authorizer
        .read()
        .expect("authorizer lock poisoned")
        .admin_group()
        .to_owned();
    pb::GetStatusResponse {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        mode: match state.mode {
            goguard_layout::Mode::System => pb::Mode::System,
            goguard_layout::Mode::User => pb::Mode::User,
        } as i32,
        config_path: source.path.display().to_string(),
        config_loaded: source.loaded,
        components,
        caller: Some(pb::Caller {
            uid: caller.uid,
            gid: caller.gid,
            pid: caller.pid.unwrap_or(0),
            role: match caller.role {
                Role::Admin => pb::Role::Admin,
                Role::User => pb::Role::User,
            } as i32,
        }),
        socket_path: state.socket_path.display().to_string(),
        state_dir: state.state_dir.display().to_string(),
        metrics_address: state
            .metrics_address
            .read()
            .expect("metrics address lock poisoned")
            .map(|a| a.to_string())
            .unwrap_or_default(),
        started_at_unix: state.started_unix as i64,
        reloads: reload.reloads,
        last_reload_error: reload.last_error.unwrap_or_default(),
        socket_activated: state.socket_activated,
        admin_group,
    }
}
