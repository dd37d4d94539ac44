//! The goguard.v1 gRPC service: maps requests onto the daemon's state and
//! answers. Every handler runs through [`GoGuardService::observe`], which
//! counts the call by method and status code and logs it in a span.
//!
//! Messages are made from domain values in `pb`, nowhere else.
//!
//! Authorization: the interceptor `connections::Authenticate` attaches a
//! `Caller` to every request; handlers that need a role check it here, in one
//! place per call.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use goguard_proto::v1 as pb;
use goguard_proto::v1::go_guard_server::GoGuard;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use std::pin::Pin;

use goguard_store::{DenialFilter, JournalFilter, PageRequest, Status as DenialStatus};
use tokio_stream::Stream;

use crate::api_error::OpError;
use crate::authz::{self, Role};
use crate::daemon_state::DaemonState;
use crate::pb::{action_to_pb, finding_to_pb};
use crate::{paging, roots};
use prost::Message as _;
use std::os::unix::ffi::OsStrExt;

pub struct GoGuardService {
    pub state: Arc<DaemonState>,
}

/// How long a call that needs the roots waits for the first discovery.
const ROOTS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl GoGuardService {
    /// Waits until the first discovery and scan are done (goguardd serves
    /// `status` from its first moment): a path must never be judged "not
    /// inside any cache root" because the roots are not known yet.
    async fn roots_known(&self) -> Result<(), Status> {
        let mut ready = self.state.roots_ready.subscribe();
        match tokio::time::timeout(ROOTS_WAIT, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Status::unavailable(
                "goguardd is starting: roots not discovered yet, retry",
            )),
        }
    }

    /// The roots of `kind` a trim or verification request covers: `root` (which must be a
    /// guarded root of that kind the caller may use), or every such root the caller may use.
    fn hygiene_roots(
        &self,
        caller: &authz::Caller,
        root: &str,
        kind: goguard_policy::RootKind,
    ) -> Result<Vec<goguard_policy::CacheRoot>, Status> {
        let allowed = |r: &goguard_policy::CacheRoot| {
            caller.role == Role::Admin || roots::owned_by(r, caller.uid)
        };
        if root.is_empty() {
            return Ok(crate::hygiene_task::roots_of(&self.state, kind, None)
                .into_iter()
                .filter(|r| allowed(r))
                .collect());
        }
        let path = roots::normalize_request_path(root).map_err(Status::invalid_argument)?;
        // A root the caller may not use is answered exactly as a path that is no root at all:
        // the reply says nothing about other users' roots (whether one exists, its owner or
        // kind).
        match crate::hygiene_task::roots_of(&self.state, kind, Some(&path))
            .into_iter()
            .next()
        {
            Some(r) if allowed(&r) => Ok(vec![r]),
            _ => Err(Status::not_found(format!(
                "{} is not a {} root goguardd guards{} (or it does not exist yet); see \
                 `goguardctl roots`",
                path.display(),
                kind.as_str(),
                for_caller(caller)
            ))),
        }
    }

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

/// `" for uid N"` for an ordinary user (who sees only their own roots), nothing for an admin.
fn for_caller(caller: &authz::Caller) -> String {
    match caller.role {
        Role::Admin => String::new(),
        Role::User => format!(" for uid {}", caller.uid),
    }
}

/// The WatchEvents stream type.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl GoGuard for GoGuardService {
    type WatchEventsStream = EventStream;

    async fn list_denials(
        &self,
        request: Request<pb::ListDenialsRequest>,
    ) -> Result<Response<pb::ListDenialsResponse>, Status> {
        self.observe("ListDenials", async {
            let caller = authz::caller(&request)?;
            self.roots_known().await?;
            authz::require_admin(&caller, "listing denials")?;
            let r = request.into_inner();
            let filter = denial_filter(&r)?;
            let page = PageRequest {
                page_size: r.page_size,
                page_token: (!r.page_token.is_empty()).then_some(r.page_token),
            };
            let store = self.state.store.clone();
            let result = tokio::task::spawn_blocking(move || {
                store
                    .lock()
                    .expect("store lock")
                    .list_denials(&filter, &page)
            })
            .await
            .map_err(OpError::task("the store task"))?
            .map_err(OpError::Store)?;
            let denials = self
                .state
                .diagnosed(result.items)
                .await
                .map_err(OpError::task("the diagnosis task"))?;
            Ok(Response::new(pb::ListDenialsResponse {
                denials: denials
                    .iter()
                    .map(crate::pb::diagnosed_denial_to_pb)
                    .collect(),
                next_page_token: result.next_page_token.unwrap_or_default(),
            }))
        })
        .await
    }

    async fn list_roots(
        &self,
        request: Request<pb::ListRootsRequest>,
    ) -> Result<Response<pb::ListRootsResponse>, Status> {
        self.observe("ListRoots", async {
            let caller = authz::caller(&request)?;
            self.roots_known().await?;
            let r = request.into_inner();
            let filter = paging::fingerprint(&[]);
            let after = match r.page_token.as_str() {
                "" => None,
                token => {
                    let mut fields = paging::decode(token, paging::Listing::Roots, filter)?;
                    if fields.len() != 1 {
                        return Err(Status::invalid_argument("page_token has the wrong fields"));
                    }
                    fields.pop()
                }
            };
            let caches = self.state.caches.read().expect("caches lock");
            let key = |x: &roots::RootState| x.root.path.as_os_str().as_bytes().to_vec();
            let mut page: Vec<&roots::RootState> = caches
                .roots
                .iter()
                .filter(|x| caller.role == Role::Admin || roots::owned_by(&x.root, caller.uid))
                .filter(|x| after.as_ref().is_none_or(|a| key(x) > *a))
                .collect();
            let candidates = page.len();
            first_in_order(&mut page, paging::page_cap(r.page_size), |a, b| {
                a.root.path.as_os_str().cmp(b.root.path.as_os_str())
            });
            // A size cap the last trim could not meet counts as one finding of its root.
            let unmet: std::collections::HashSet<PathBuf> = self
                .state
                .caps_unmet
                .lock()
                .expect("caps_unmet lock")
                .keys()
                .cloned()
                .collect();
            let mut budget = paging::Budget::default();
            let roots: Vec<pb::CacheRoot> = page
                .iter()
                .map(|r| crate::pb::root_to_pb(r, unmet.contains(&r.root.path)))
                .take_while(|x| budget.take(x.encoded_len()))
                .collect();
            let next_page_token = match page.get(roots.len().saturating_sub(1)) {
                Some(last) if roots.len() < candidates => {
                    paging::encode(paging::Listing::Roots, &[&key(last)], filter)
                }
                _ => String::new(),
            };
            let problems = if after.is_some() {
                Vec::new() // problems come with the first page only
            } else if caller.role == Role::Admin {
                bounded_problems(&caches.problems)
            } else {
                // A user sees the problems of their own discovery (e.g. a GOCACHE that is
                // not guarded, and why), never another user's.
                match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(caller.uid)) {
                    Ok(Some(u)) => {
                        let mine = format!("user {}: ", u.name);
                        let own: Vec<String> = caches
                            .problems
                            .iter()
                            .filter(|p| p.starts_with(&mine))
                            .cloned()
                            .collect();
                        bounded_problems(&own)
                    }
                    _ => Vec::new(),
                }
            };
            Ok(Response::new(pb::ListRootsResponse {
                roots,
                problems,
                next_page_token,
            }))
        })
        .await
    }

    async fn list_findings(
        &self,
        request: Request<pb::ListFindingsRequest>,
    ) -> Result<Response<pb::ListFindingsResponse>, Status> {
        self.observe("ListFindings", async {
            let caller = authz::caller(&request)?;
            self.roots_known().await?;
            let r = request.into_inner();
            let prefix = (!r.path_prefix.is_empty())
                .then(|| {
                    roots::normalize_request_path(&r.path_prefix).map_err(Status::invalid_argument)
                })
                .transpose()?;
            let filter = paging::fingerprint(&[prefix
                .as_ref()
                .map(|p| p.as_os_str().as_bytes())
                .unwrap_or(b"")]);
            let after = match r.page_token.as_str() {
                "" => None,
                token => {
                    let fields = paging::decode(token, paging::Listing::Findings, filter)?;
                    let [root, rel, kind]: [Vec<u8>; 3] = fields
                        .try_into()
                        .map_err(|_| Status::invalid_argument("page_token has the wrong fields"))?;
                    Some((root, rel, kind))
                }
            };
            let caches = self.state.caches.read().expect("caches lock");
            // Size caps the last trim could not meet: one finding on the root itself.
            let caps: Vec<(PathBuf, pb::Finding)> = {
                let unmet = self.state.caps_unmet.lock().expect("caps_unmet lock");
                unmet
                    .iter()
                    .map(|(root, u)| (root.clone(), crate::pb::cap_unmet_to_pb(root, u)))
                    .collect()
            };
            // Every visible finding after the token, by (root, path, kind).
            type Key<'a> = (&'a [u8], &'a [u8], &'a [u8]);
            enum Item<'a> {
                Drift(&'a goguard_policy::CacheRoot, &'a goguard_policy::Finding),
                Cap(&'a pb::Finding),
            }
            let mut page: Vec<(Key<'_>, Item<'_>)> = Vec::new();
            for x in caches
                .roots
                .iter()
                .filter(|x| caller.role == Role::Admin || roots::owned_by(&x.root, caller.uid))
            {
                let root = x.root.path.as_os_str().as_bytes();
                if after.as_ref().is_some_and(|(a, _, _)| root < a.as_slice()) {
                    continue;
                }
                let cap = caps
                    .iter()
                    .filter(|(p, _)| *p == x.root.path)
                    .map(|(_, f)| ((root, &b""[..], f.kind.as_bytes()), Item::Cap(f)));
                let drift = x.findings.iter().map(|f| {
                    let k: Key<'_> = (
                        root,
                        f.rel_path.as_os_str().as_bytes(),
                        f.kind.as_str().as_bytes(),
                    );
                    (k, Item::Drift(&x.root, f))
                });
                for (k, item) in drift.chain(cap) {
                    if after
                        .as_ref()
                        .is_some_and(|(a, b, c)| k <= (a.as_slice(), b.as_slice(), c.as_slice()))
                    {
                        continue;
                    }
                    if prefix.as_ref().is_some_and(|p| {
                        !x.root
                            .path
                            .join(Path::new(OsStr::from_bytes(k.1)))
                            .starts_with(p)
                    }) {
                        continue;
                    }
                    page.push((k, item));
                }
            }
            let candidates = page.len();
            first_in_order(&mut page, paging::page_cap(r.page_size), |a, b| {
                a.0.cmp(&b.0)
            });
            let mut budget = paging::Budget::default();
            let findings: Vec<pb::Finding> = page
                .iter()
                .map(|(_, item)| match item {
                    Item::Drift(root, f) => finding_to_pb(root, f),
                    Item::Cap(f) => (*f).clone(),
                })
                .take_while(|x| budget.take(x.encoded_len()))
                .collect();
            let next_page_token = match page.get(findings.len().saturating_sub(1)) {
                Some(((root, rel, kind), _)) if findings.len() < candidates => {
                    paging::encode(paging::Listing::Findings, &[root, rel, kind], filter)
                }
                _ => String::new(),
            };
            Ok(Response::new(pb::ListFindingsResponse {
                findings,
                next_page_token,
            }))
        })
        .await
    }

    async fn list_journal(
        &self,
        request: Request<pb::ListJournalRequest>,
    ) -> Result<Response<pb::ListJournalResponse>, Status> {
        self.observe("ListJournal", async {
            let caller = authz::caller(&request)?;
            self.roots_known().await?;
            let r = request.into_inner();
            let mut filter = journal_filter(&r)?;
            if caller.role != Role::Admin {
                // As ListFindings: the roots known now that the caller owns; rows of roots
                // goguardd no longer knows are for admins.
                let caches = self.state.caches.read().expect("caches lock");
                filter.roots = Some(
                    caches
                        .roots
                        .iter()
                        .filter(|x| roots::owned_by(&x.root, caller.uid))
                        .map(|x| x.root.path.display().to_string())
                        .collect(),
                );
            }
            let journal_fp = paging::fingerprint(&[
                filter.path_prefix.as_deref().unwrap_or("").as_bytes(),
                &paging::f64_bytes(r.since_unix),
            ]);
            let remaining = match r.page_token.as_str() {
                "" => journal_limit(r.limit) as usize,
                token => {
                    let fields = paging::decode(token, paging::Listing::Journal, journal_fp)?;
                    let bad = || Status::invalid_argument("page_token has the wrong fields");
                    let [at, id, left]: [Vec<u8>; 3] = fields.try_into().map_err(|_| bad())?;
                    let at = paging::f64_from(&at).ok_or_else(bad)?;
                    let id = paging::i64_from(&id).ok_or_else(bad)?;
                    let left = paging::i64_from(&left).ok_or_else(bad)?;
                    filter.before = Some((at, id));
                    usize::try_from(left)
                        .ok()
                        .filter(|n| (1..=journal_limit(u32::MAX) as usize).contains(n))
                        .ok_or_else(bad)?
                }
            };
            let want = remaining.min(paging::page_cap(r.page_size));
            let state = self.state.clone();
            let mut rows = tokio::task::spawn_blocking(move || {
                // Self-healing's rows wait in the writer thread: write them first, so the
                // caller sees every repair that has already happened.
                state.journal.flush();
                state
                    .store
                    .lock()
                    .expect("store lock")
                    .list_journal_matching(&filter, want as u32 + 1)
            })
            .await
            .map_err(OpError::task("the store task"))?
            .map_err(OpError::Store)?;
            let more = rows.len() > want;
            rows.truncate(want);
            let mut budget = paging::Budget::default();
            let records: Vec<pb::JournalRecord> = rows
                .iter()
                .map(crate::pb::journal_to_pb)
                .take_while(|x| budget.take(x.encoded_len()))
                .collect();
            let left = remaining - records.len();
            let next_page_token = match records.last() {
                Some(last) if left > 0 && (records.len() < rows.len() || more) => paging::encode(
                    paging::Listing::Journal,
                    &[
                        &paging::f64_bytes(last.at_unix),
                        &last.id.to_be_bytes(),
                        &(left as i64).to_be_bytes(),
                    ],
                    journal_fp,
                ),
                _ => String::new(),
            };
            Ok(Response::new(pb::ListJournalResponse {
                records,
                next_page_token,
            }))
        })
        .await
    }

    async fn repair(
        &self,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResponse>, Status> {
        self.observe("Repair", async {
            let caller = authz::caller(&request)?;
            self.roots_known().await?;
            let r = request.into_inner();
            let path = roots::normalize_request_path(&r.path).map_err(Status::invalid_argument)?;
            let mut kinds = Vec::new();
            for k in &r.kinds {
                kinds.push(parse_kind(k)?);
            }
            let root_path = {
                let caches = self.state.caches.read().expect("caches lock");
                // Outside every root, or inside one the caller may not repair: the same
                // answer, so a user learns nothing about roots they may not see.
                let rs = caches.root_for(&path).filter(|rs| {
                    caller.role == Role::Admin || roots::owned_by(&rs.root, caller.uid)
                });
                let Some(rs) = rs else {
                    return Err(Status::not_found(format!(
                        "{} is not inside any cache root goguardd guards{}; see `goguardctl roots`",
                        path.display(),
                        for_caller(&caller)
                    )));
                };
                rs.root.path.clone()
            };
            let report = crate::healing::requested_repair(
                &self.state,
                root_path.clone(),
                path,
                kinds,
                r.dry_run,
                caller.uid,
            )
            .await?;
            if !report.scan.exists && !report.scan.errors.is_empty() {
                // E.g. a user's root reached through a symlink: nothing was done.
                return Err(OpError::RootUnsafe(report.scan.errors.join("; ")).into());
            }
            let root = {
                let caches = self.state.caches.read().expect("caches lock");
                caches
                    .roots
                    .iter()
                    .find(|x| x.root.path == root_path)
                    .map(|x| x.root.clone())
            };
            let remaining: Vec<pb::Finding> = match &root {
                Some(root) => report
                    .remaining
                    .iter()
                    .map(|f| finding_to_pb(root, f))
                    .collect(),
                None => Vec::new(),
            };
            let actions: Vec<pb::RepairAction> = report.actions.iter().map(action_to_pb).collect();
            Ok(Response::new(bounded_repair_reply(
                root_path.display().to_string(),
                actions,
                remaining,
            )))
        })
        .await
    }

    async fn trim(
        &self,
        request: Request<pb::TrimRequest>,
    ) -> Result<Response<pb::TrimResponse>, Status> {
        self.observe("Trim", async {
            let caller = authz::caller(&request)?;
            self.roots_known().await?;
            let r = request.into_inner();
            let roots = self.hygiene_roots(&caller, &r.root, goguard_policy::RootKind::GoCache)?;
            let results = crate::hygiene_task::trim_roots(
                &self.state,
                roots,
                r.dry_run,
                r.force,
                crate::hygiene_task::Cause::Request(caller.uid),
            )
            .await;
            Ok(Response::new(pb::TrimResponse {
                results: results.iter().map(crate::pb::trim_to_pb).collect(),
                dry_run: r.dry_run,
            }))
        })
        .await
    }

    async fn verify_modules(
        &self,
        request: Request<pb::VerifyModulesRequest>,
    ) -> Result<Response<pb::VerifyModulesResponse>, Status> {
        self.observe("VerifyModules", async {
            let caller = authz::caller(&request)?;
            self.roots_known().await?;
            let r = request.into_inner();
            let roots =
                self.hygiene_roots(&caller, &r.root, goguard_policy::RootKind::GoModCache)?;
            let v = crate::hygiene_task::verify_roots(
                &self.state,
                roots,
                Some(r.gosum),
                crate::hygiene_task::Cause::Request(caller.uid),
            )
            .await?;
            Ok(Response::new(pb::VerifyModulesResponse {
                problems: v
                    .problems
                    .iter()
                    .map(crate::pb::module_problem_to_pb)
                    .collect(),
                results: v
                    .results
                    .iter()
                    .map(crate::pb::root_verified_to_pb)
                    .collect(),
            }))
        })
        .await
    }

    async fn rescan(
        &self,
        request: Request<pb::RescanRequest>,
    ) -> Result<Response<pb::RescanResponse>, Status> {
        self.observe("Rescan", async {
            let caller = authz::caller(&request)?;
            authz::require_admin(&caller, "rescanning")?;
            let (roots, entries, findings) = crate::healing::rescan_all(&self.state).await?;
            Ok(Response::new(pb::RescanResponse {
                roots,
                entries,
                findings,
            }))
        })
        .await
    }

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        self.observe("WatchEvents", async {
            let caller = authz::caller(&request)?;
            authz::require_admin(&caller, "watching events")?;
            let mut rx = self.state.events.subscribe();
            let dropped = self.state.metrics.audit.watch_dropped.clone();
            let stream = async_stream(move |tx| async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => {
                            if tx.send(Ok(crate::pb::event_to_pb(&event))).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            dropped.inc_by(n);
                            tracing::warn!(
                                missed = n,
                                "a WatchEvents client is too slow; events dropped for it"
                            );
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            Ok(Response::new(stream))
        })
        .await
    }

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
        .map(|(name, status)| crate::pb::component_to_pb(name, status))
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
        mode: crate::pb::mode_to_pb(state.mode) as i32,
        config_path: source.path.display().to_string(),
        config_loaded: source.loaded,
        components,
        caller: Some(crate::pb::caller_to_pb(&caller)),
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

/// A stream fed by a task through a small bounded channel; the task ends
/// when the client goes away.
fn async_stream<F, Fut>(body: F) -> EventStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::Event, Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

fn denial_filter(r: &pb::ListDenialsRequest) -> Result<DenialFilter, Status> {
    if !r.since_unix.is_finite() || r.since_unix < 0.0 {
        return Err(Status::invalid_argument(
            "since_unix must be a time after 1970",
        ));
    }
    if !r.path_prefix.is_empty() && !r.path_prefix.starts_with('/') {
        return Err(Status::invalid_argument(format!(
            "path_prefix {:?} must be an absolute path",
            r.path_prefix
        )));
    }
    let status = match pb::DenialStatus::try_from(r.status) {
        Ok(pb::DenialStatus::Unspecified) => None,
        Ok(pb::DenialStatus::New) => Some(DenialStatus::New),
        Ok(pb::DenialStatus::Fixed) => Some(DenialStatus::Fixed),
        Ok(pb::DenialStatus::Acknowledged) => Some(DenialStatus::Acknowledged),
        Ok(pb::DenialStatus::Ignored) => Some(DenialStatus::Ignored),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown status {}",
                r.status
            )));
        }
    };
    Ok(DenialFilter {
        since: (r.since_unix > 0.0).then_some(r.since_unix),
        comm: (!r.comm.is_empty()).then(|| r.comm.clone()),
        path_prefix: (!r.path_prefix.is_empty()).then(|| r.path_prefix.clone()),
        status,
        go_related_only: false,
    })
}

/// Keeps the first `cap` items of `items` in `order`, sorted: a selection, then
/// a sort of the page only, so a page costs linear time in the items, not n log n.
fn first_in_order<T>(items: &mut Vec<T>, cap: usize, order: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if items.len() > cap {
        items.select_nth_unstable_by(cap, &order);
        items.truncate(cap);
    }
    items.sort_unstable_by(order);
}

/// Discovery problems for the first page of ListRoots, at most a quarter of a
/// reply's budget; the rest are counted in a last line.
fn bounded_problems(all: &[String]) -> Vec<String> {
    let mut used = 0;
    let mut out = Vec::new();
    for p in all {
        used += p.len() + 6;
        if used > paging::REPLY_BUDGET / 4 {
            out.push(format!(
                "… and {} more problems (see goguardd's log)",
                all.len() - out.len()
            ));
            break;
        }
        out.push(p.clone());
    }
    out
}

/// ListJournal's `limit`: 0 asks for the default, larger values are capped.
/// A repair's reply within [`crate::paging::REPLY_BUDGET`]: failures first, then the
/// findings left, then the other changes in the order they were made, as many as fit; the
/// totals and how many were left out go with them (a 100,000-file repair would otherwise
/// exceed the 4 MiB a client accepts, after the repair was done).
fn bounded_repair_reply(
    root: String,
    actions: Vec<pb::RepairAction>,
    remaining: Vec<pb::Finding>,
) -> pb::RepairResponse {
    use prost::Message;
    let mut budget = crate::paging::Budget::default();
    let applied_total = actions.iter().filter(|a| a.applied).count() as u64;
    let failed_total = actions.iter().filter(|a| !a.error.is_empty()).count() as u64;
    let mut keep = vec![false; actions.len()];
    let mut full = false;
    for (i, a) in actions.iter().enumerate() {
        if !a.error.is_empty() {
            full = full || !budget.take(a.encoded_len());
            keep[i] = !full;
        }
    }
    let mut listed_remaining = Vec::new();
    let remaining_total = remaining.len();
    for f in remaining {
        if full || !budget.take(f.encoded_len()) {
            full = true;
            break;
        }
        listed_remaining.push(f);
    }
    for (i, a) in actions.iter().enumerate() {
        if a.error.is_empty() && !full {
            full = !budget.take(a.encoded_len());
            keep[i] = !full;
        }
    }
    let actions_total = actions.len();
    let (mut listed, others): (Vec<pb::RepairAction>, Vec<pb::RepairAction>) = actions
        .into_iter()
        .zip(keep)
        .filter_map(|(a, k)| k.then_some(a))
        .partition(|a| !a.error.is_empty());
    listed.extend(others);
    pb::RepairResponse {
        root,
        actions_omitted: (actions_total - listed.len()) as u64,
        remaining_omitted: (remaining_total - listed_remaining.len()) as u64,
        actions: listed,
        remaining: listed_remaining,
        applied_total,
        failed_total,
    }
}

fn journal_limit(limit: u32) -> u32 {
    const DEFAULT: u32 = 100;
    const MAX: u32 = 10_000;
    match limit {
        0 => DEFAULT,
        n => n.min(MAX),
    }
}

/// The store filter of a ListJournal request (roots are added by the caller's role).
fn journal_filter(r: &pb::ListJournalRequest) -> Result<JournalFilter, Status> {
    if !r.since_unix.is_finite() || r.since_unix < 0.0 {
        return Err(Status::invalid_argument(
            "since_unix must be a time after 1970",
        ));
    }
    let path_prefix = (!r.path_prefix.is_empty())
        .then(|| roots::normalize_request_path(&r.path_prefix).map_err(Status::invalid_argument))
        .transpose()?;
    Ok(JournalFilter {
        path_prefix: path_prefix.map(|p| p.display().to_string()),
        since: (r.since_unix > 0.0).then_some(r.since_unix),
        roots: None,
        before: None,
    })
}

fn parse_kind(k: &str) -> Result<goguard_policy::DriftKind, Status> {
    goguard_policy::DriftKind::ALL
        .iter()
        .copied()
        .find(|d| d.as_str() == k)
        .ok_or_else(|| {
            let names: Vec<&str> = goguard_policy::DriftKind::ALL
                .iter()
                .map(|d| d.as_str())
                .collect();
            Status::invalid_argument(format!(
                "unknown kind {k:?}; use one of {}",
                names.join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path_prefix: &str, since_unix: f64) -> pb::ListJournalRequest {
        pb::ListJournalRequest {
            limit: 0,
            path_prefix: path_prefix.into(),
            since_unix,
            ..Default::default()
        }
    }

    #[test]
    fn a_huge_repair_reply_fits_the_budget_with_failures_first_and_totals() {
        use prost::Message;
        let action = |i: usize, error: &str| pb::RepairAction {
            path: format!("/cache/{i:06}/some-long-name-of-a-cache-entry-d"),
            operation: "chown".into(),
            before: "1:1".into(),
            after: "0:0".into(),
            applied: error.is_empty(),
            error: error.into(),
            fixes: vec!["foreign_owner".into()],
        };
        let mut actions: Vec<_> = (0..100_000).map(|i| action(i, "")).collect();
        actions.push(action(100_000, "Permission denied"));
        let reply = bounded_repair_reply("/cache".into(), actions, Vec::new());
        assert!(reply.encoded_len() < 4 << 20, "{}", reply.encoded_len());
        assert_eq!(reply.applied_total, 100_000);
        assert_eq!(reply.failed_total, 1);
        assert_eq!(
            reply.actions[0].error, "Permission denied",
            "failures first"
        );
        assert!(reply.actions_omitted > 0);
        assert_eq!(
            reply.actions.len() as u64 + reply.actions_omitted,
            100_001,
            "every action listed or counted"
        );
        // A small reply is whole, in order.
        let small =
            bounded_repair_reply("/c".into(), vec![action(1, ""), action(2, "")], Vec::new());
        assert_eq!(small.actions_omitted, 0);
        assert_eq!(small.actions[1].path, action(2, "").path);
    }

    #[test]
    fn journal_requests_are_normalized_or_refused() {
        let f = journal_filter(&request("/home/u/./.cache/go-build/", 5.0)).unwrap();
        assert_eq!(f.path_prefix.as_deref(), Some("/home/u/.cache/go-build"));
        assert_eq!(f.since, Some(5.0));
        assert_eq!(f.roots, None, "the caller's role adds roots");
        assert_eq!(
            journal_filter(&request("", 0.0)).unwrap(),
            JournalFilter::default()
        );
        for bad in [
            request("relative", 0.0),
            request("/a/../b", 0.0),
            request("", -1.0),
        ] {
            let e = journal_filter(&bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
        let e = journal_filter(&request("", f64::NAN)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn journal_limits_default_and_cap() {
        assert_eq!(journal_limit(0), 100);
        assert_eq!(journal_limit(1), 1);
        assert_eq!(journal_limit(10_000), 10_000);
        assert_eq!(journal_limit(u32::MAX), 10_000);
    }
}
