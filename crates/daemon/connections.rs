//! Bounded control-socket connections: who may hold how many, and for how long.
//!
//! The accept loop reads the peer's uid from `SO_PEERCRED` right after
//! `accept(2)`, before any HTTP/2 work, and admits the connection only within
//! the caps of `[daemon]`: `max_connections_per_user` per non-admin uid,
//! `max_user_connections` for all non-admins together, and a separate
//! `max_admin_connections` for admins, so a flood by ordinary users never takes
//! the slots of root or the admin group. A connection over a cap is closed at
//! once (counted in `goguard_connections_refused`, logged at most every 10 s).
//! An `accept` that fails (EMFILE) pauses the loop briefly instead of spinning.
//!
//! An admitted connection is a [`Guarded`] stream: it must send the HTTP/2
//! preface and its first request within `first_request_timeout_secs`, and is
//! closed after `idle_timeout_secs` with no call in progress. Calls in progress
//! are counted by the [`TrackCalls`] layer through the [`PeerInfo`] tonic puts
//! in every request; [`Authenticate`] turns its peer credentials into the call's
//! `authz::Caller`. Its slot is given back when the stream is dropped.
//!
//! glibc keeps freed heap memory in its arenas; after many connections have
//! closed, [`trim_memory`] hands it back (`malloc_trim(0)`), so a flood does not
//! leave the daemon's RSS high.
//!
//! Limits are read from the configuration in force at each accept, so a reload
//! applies them to new connections.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tonic::codegen::http;
use tonic::transport::server::{Connected, UdsConnectInfo};
use tonic::{Request, Status};

use crate::authz::{Authorizer, Caller, Role};
use crate::daemon_state::DaemonState;
use crate::metrics::{ReasonLabels, RoleLabels};

/// How long a uid's role (admin or not) is remembered for admission, so a
/// flood does not cost one NSS group lookup per connection.
const ROLE_TTL: Duration = Duration::from_secs(10);
/// Refusals are logged at most this often (with the count since the last line).
const LOG_EVERY: Duration = Duration::from_secs(10);
/// The pause after a failed accept (EMFILE, ENFILE, ENOMEM), instead of a spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);
/// How often [`trim_memory`] looks at the connection count.
const TRIM_EVERY: Duration = Duration::from_secs(2);
/// Connections that must have closed since the last trim before trimming again.
const TRIM_AFTER_CLOSED: usize = 32;

/// The counts behind the caps, shared by the accept loop and every slot.
#[derive(Default)]
pub struct Admission {
    inner: Mutex<Counts>,
    /// Connections open now, all roles (read by the memory trimmer).
    open: AtomicUsize,
}

#[derive(Default)]
struct Counts {
    /// Open connections per non-admin uid (entries at 0 are removed).
    per_uid: HashMap<u32, usize>,
    users: usize,
    admins: usize,
    /// Roles looked up recently, by uid.
    roles: HashMap<u32, (Role, Instant)>,
    /// Refusals not yet logged, and when the last log line was written.
    unlogged: u64,
    logged_at: Option<Instant>,
}

/// The caps in force, from `[daemon]`.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub per_user: usize,
    pub users: usize,
    pub admins: usize,
}

/// Why a connection was refused (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerUser,
    Users,
    Admins,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::PerUser => "per_user",
            Refusal::Users => "users",
            Refusal::Admins => "admins",
        }
    }
}

/// One admitted connection's place in the counts; given back on drop.
pub struct Slot {
    admission: Arc<Admission>,
    state: Arc<DaemonState>,
    uid: u32,
    role: Role,
}

impl Admission {
    /// Takes a slot for `uid` with `role`, or says which cap is full.
    fn admit(&self, uid: u32, role: Role, caps: Caps) -> Result<(), Refusal> {
        let mut c = self.inner.lock().expect("admission lock");
        match role {
            Role::Admin => {
                if c.admins >= caps.admins {
                    return Err(Refusal::Admins);
                }
                c.admins += 1;
            }
            Role::User => {
                let mine = c.per_uid.get(&uid).copied().unwrap_or(0);
                if mine >= caps.per_user {
                    return Err(Refusal::PerUser);
                }
                if c.users >= caps.users {
                    return Err(Refusal::Users);
                }
                c.per_uid.insert(uid, mine + 1);
                c.users += 1;
            }
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn release(&self, uid: u32, role: Role) {
        let mut c = self.inner.lock().expect("admission lock");
        match role {
            Role::Admin => c.admins = c.admins.saturating_sub(1),
            Role::User => {
                c.users = c.users.saturating_sub(1);
                if let Some(n) = c.per_uid.get_mut(&uid) {
                    *n -= 1;
                    if *n == 0 {
                        c.per_uid.remove(&uid);
                    }
                }
            }
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The role of `uid`, from the cache when fresh.
    fn role(&self, state: &DaemonState, uid: u32, gid: u32) -> Role {
        let now = Instant::now();
        {
            let c = self.inner.lock().expect("admission lock");
            if let Some((role, at)) = c.roles.get(&uid)
                && now.duration_since(*at) < ROLE_TTL
            {
                return *role;
            }
        }
        let role = state
            .authorizer
            .read()
            .expect("authorizer lock")
            .role(uid, gid);
        let mut c = self.inner.lock().expect("admission lock");
        if c.roles.len() >= 4096 {
            c.roles
                .retain(|_, (_, at)| now.duration_since(*at) < ROLE_TTL);
        }
        c.roles.insert(uid, (role, now));
        role
    }

    /// Counts a refusal and logs it, at most once per [`LOG_EVERY`].
    fn refused(&self, state: &DaemonState, uid: u32, why: Refusal, caps: Caps) {
        state
            .metrics
            .connections
            .refused
            .get_or_create(&ReasonLabels {
                reason: why.label().to_owned(),
            })
            .inc();
        let mut c = self.inner.lock().expect("admission lock");
        c.unlogged += 1;
        let now = Instant::now();
        if c.logged_at
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        let refused = std::mem::take(&mut c.unlogged);
        c.logged_at = Some(now);
        let held = c.per_uid.get(&uid).copied().unwrap_or(0);
        drop(c);
        tracing::warn!(
            uid,
            cap = why.label(),
            held,
            per_user = caps.per_user,
            users = caps.users,
            admins = caps.admins,
            refused_since_last_line = refused,
            "control socket: connections over the cap are closed at accept \
             (daemon.max_connections_per_user, max_user_connections, max_admin_connections)"
        );
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.uid, self.role);
        self.state
            .metrics
            .connections
            .open
            .get_or_create(&role_labels(self.role))
            .dec();
    }
}

fn role_labels(role: Role) -> RoleLabels {
    RoleLabels {
        role: match role {
            Role::Admin => "admin",
            Role::User => "user",
        }
        .to_owned(),
    }
}

/// The admitted connections of `listener`, as a stream for tonic's
/// `serve_with_incoming`. Never ends and never yields an error: refusals and
/// accept failures are handled here.
pub fn incoming(
    listener: UnixListener,
    state: Arc<DaemonState>,
    admission: Arc<Admission>,
) -> impl tokio_stream::Stream<Item = Result<Guarded, io::Error>> {
    futures_util::stream::unfold(
        (listener, state, admission),
        |(listener, state, admission)| async move {
            let conn = next_admitted(&listener, &state, &admission).await;
            Some((Ok(conn), (listener, state, admission)))
        },
    )
}

async fn next_admitted(
    listener: &UnixListener,
    state: &Arc<DaemonState>,
    admission: &Arc<Admission>,
) -> Guarded {
    let mut accept_errors_logged_at: Option<Instant> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                state.metrics.connections.accept_errors.inc();
                if accept_errors_logged_at.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    accept_errors_logged_at = Some(Instant::now());
                    tracing::warn!(error = %e, "control socket: accept failed; pausing briefly");
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        // SO_PEERCRED, before any HTTP/2 work. Without it the connection is
        // useless (every call would be refused): close it.
        let Ok(cred) = stream.peer_cred() else {
            continue;
        };
        let config = state.config();
        let d = &config.daemon;
        let caps = Caps {
            per_user: d.max_connections_per_user.0 as usize,
            users: d.max_user_connections.0 as usize,
            admins: d.max_admin_connections.0 as usize,
        };
        let uid = cred.uid();
        let role = admission.role(state, uid, cred.gid());
        if let Err(why) = admission.admit(uid, role, caps) {
            admission.refused(state, uid, why, caps);
            continue; // dropping `stream` closes it
        }
        state
            .metrics
            .connections
            .open
            .get_or_create(&role_labels(role))
            .inc();
        let slot = Slot {
            admission: admission.clone(),
            state: state.clone(),
            uid,
            role,
        };
        return Guarded::new(
            stream,
            slot,
            Duration::from_secs(d.first_request_timeout_secs.0),
            Duration::from_secs(d.idle_timeout_secs.0),
        );
    }
}

/// Calls on one connection: how many started, how many are open, and when the
/// last one ended.
#[derive(Debug)]
pub struct Calls {
    started: AtomicU64,
    open: AtomicUsize,
    /// Milliseconds since `epoch` when the last call ended (or the connection
    /// was accepted).
    last_end_ms: AtomicU64,
    epoch: Instant,
}

impl Calls {
    fn new() -> Calls {
        Calls {
            started: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// A call begins; it ends when the guard is dropped.
    fn begin(self: &Arc<Self>) -> CallGuard {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        CallGuard {
            calls: self.clone(),
        }
    }

    fn last_end(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed))
    }
}

/// One call in progress on a connection.
pub struct CallGuard {
    calls: Arc<Calls>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let ms = self.calls.epoch.elapsed().as_millis() as u64;
        self.calls.last_end_ms.store(ms, Ordering::Relaxed);
        self.calls.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What tonic puts in every request's extensions for this connection: the
/// peer's credentials (read by `authz`) and its call counter.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub uds: UdsConnectInfo,
    pub calls: Arc<Calls>,
}

/// The tonic interceptor: attaches a [`Caller`] (see `authz`) to every request, from the
/// peer credentials in its [`PeerInfo`].
#[derive(Clone)]
pub struct Authenticate {
    pub authorizer: Arc<RwLock<Authorizer>>,
}

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let cred = req
            .extensions()
            .get::<PeerInfo>()
            .and_then(|info| info.uds.peer_cred)
            .ok_or_else(|| {
                Status::unauthenticated("goguardd could not read the caller's peer credentials")
            })?;
        let role = self
            .authorizer
            .read()
            .expect("authorizer lock poisoned")
            .role(cred.uid(), cred.gid());
        req.extensions_mut().insert(Caller {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
            role,
        });
        Ok(req)
    }
}

/// An admitted connection: the stream, its slot, and its deadlines. Reading
/// fails with `TimedOut` once a deadline passes, which makes hyper close it.
pub struct Guarded {
    io: UnixStream,
    _slot: Slot,
    calls: Arc<Calls>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    accepted: Instant,
    first_request: Duration,
    idle: Duration,
    state: Arc<DaemonState>,
}

impl Guarded {
    fn new(io: UnixStream, slot: Slot, first_request: Duration, idle: Duration) -> Guarded {
        let accepted = Instant::now();
        let state = slot.state.clone();
        Guarded {
            io,
            _slot: slot,
            calls: Arc::new(Calls::new()),
            deadline: Box::pin(tokio::time::sleep(first_request)),
            accepted,
            first_request,
            idle,
            state,
        }
    }

    /// Whether a deadline has passed; re-arms the timer otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let next = if self.calls.started.load(Ordering::Relaxed) == 0 {
                let due = self.accepted + self.first_request;
                if now >= due {
                    return Some("first_request");
                }
                due
            } else if self.calls.open.load(Ordering::Relaxed) > 0 {
                now + self.idle
            } else {
                let due = self.calls.last_end() + self.idle;
                if now >= due {
                    return Some("idle");
                }
                due
            };
            self.deadline
                .as_mut()
                .reset(tokio::time::Instant::from_std(next));
        }
        None
    }
}

impl Connected for Guarded {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        PeerInfo {
            uds: self.io.connect_info(),
            calls: self.calls.clone(),
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(why) = this.expired(cx) {
            this.state
                .metrics
                .connections
                .timed_out
                .get_or_create(&ReasonLabels {
                    reason: why.to_owned(),
                })
                .inc();
            tracing::debug!(reason = why, "control socket: closing a connection");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection closed: {why} deadline"),
            )));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A tower layer that counts each call (request to the end of its response
/// body) on its connection's [`Calls`], for the idle deadline.
#[derive(Clone, Copy, Default)]
pub struct TrackCallsLayer;

impl<S> tower::Layer<S> for TrackCallsLayer {
    type Service = TrackCalls<S>;

    fn layer(&self, inner: S) -> TrackCalls<S> {
        TrackCalls { inner }
    }
}

#[derive(Clone)]
pub struct TrackCalls<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for TrackCalls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TrackedBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let guard = req.extensions().get::<PeerInfo>().map(|p| p.calls.begin());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            Ok(response.map(|body| TrackedBody {
                inner: Box::pin(body),
                _guard: guard,
            }))
        })
    }
}

/// A response body that keeps its call counted until it is done.
pub struct TrackedBody<B> {
    inner: Pin<Box<B>>,
    _guard: Option<CallGuard>,
}

impl<B: hyper::body::Body> hyper::body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.get_mut().inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Returns freed heap memory to the system after many connections closed
/// (glibc keeps it in its arenas otherwise). Ends when `stop` turns true.
pub async fn trim_memory(
    state: Arc<DaemonState>,
    admission: Arc<Admission>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    let mut high = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let open = admission.open.load(Ordering::Relaxed);
        high = high.max(open);
        if high - open < TRIM_AFTER_CLOSED {
            continue;
        }
        high = open;
        state.metrics.connections.memory_trims.inc();
        let _ = tokio::task::spawn_blocking(release_free_memory).await;
    }
}

/// `malloc_trim(0)`: glibc returns free memory at the top of every arena and
/// unmaps free pages inside them.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions; it only walks the allocator's
    // own free lists under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        per_user: 2,
        users: 3,
        admins: 1,
    };

    #[test]
    fn caps_per_uid_for_users_and_apart_for_admins() {
        let a = Admission::default();
        assert_eq!(a.admit(1000, Role::User, CAPS), Ok(()));
        assert_eq!(a.admit(1000, Role::User, CAPS), Ok(()));
        assert_eq!(a.admit(1000, Role::User, CAPS), Err(Refusal::PerUser));
        assert_eq!(a.admit(1001, Role::User, CAPS), Ok(()));
        assert_eq!(a.admit(1002, Role::User, CAPS), Err(Refusal::Users));
        // Users filling their caps never take an admin's slot.
        assert_eq!(a.admit(0, Role::Admin, CAPS), Ok(()));
        assert_eq!(a.admit(0, Role::Admin, CAPS), Err(Refusal::Admins));
        a.release(1000, Role::User);
        assert_eq!(a.admit(1002, Role::User, CAPS), Ok(()));
        a.release(0, Role::Admin);
        assert_eq!(a.admit(0, Role::Admin, CAPS), Ok(()));
        assert_eq!(a.open.load(Ordering::Relaxed), 4);
        for uid in [1000, 1001, 1002] {
            a.release(uid, Role::User);
        }
        a.release(0, Role::Admin);
        assert_eq!(a.open.load(Ordering::Relaxed), 0);
        assert!(a.inner.lock().unwrap().per_uid.is_empty());
    }
}
