//! The daemon side of the control socket: accepting clients, reading request lines,
//! dispatching them, and writing replies without ever blocking the loop.
//!
//! A malformed or oversized request gets an error reply and the daemon carries on. A client
//! may wait (start/stop/emit with wait) while the daemon serves others; if it goes away, the
//! jobs it waited for carry on.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use calloop::generic::Generic;
use calloop::timer::{TimeoutAction, Timer};
use calloop::{Interest, Mode, PostAction, RegistrationToken};
use log::{trace, warn};

use crate::control::proto::{MAX_LINE, Reply, Request};

use super::daemon::{Daemon, Outgoing};
use super::jobs::ClientId;

/// One connected client.
pub struct Conn {
    /// Shared with the loop's read source, so a client costs the daemon one descriptor.
    stream: Rc<UnixStream>,
    input: Vec<u8>,
    output: Vec<u8>,
    /// The read source, while it is in the loop (`None` after end of file).
    read_token: Option<RegistrationToken>,
    /// The read source is enabled (reading pauses while the client is far behind).
    reading: bool,
    write_token: Option<RegistrationToken>,
    /// A request is in progress; further lines wait.
    busy: bool,
    /// Close once the output is written.
    closing: bool,
    /// The client closed its side: answer what it sent, then close.
    eof: bool,
    uid: u32,
}

/// The table of connected clients.
pub struct Clients {
    conns: HashMap<ClientId, Conn>,
    next: ClientId,
    /// Connections per user, for the per-user cap.
    per_uid: HashMap<u32, usize>,
    /// A descriptor kept open so that, when the daemon is out of descriptors, it can still
    /// accept a connection, to refuse it, instead of spinning on a listener that stays
    /// readable.
    reserve: Option<OwnedFd>,
    /// A second one, given up to serve root or the owner when the daemon is out of
    /// descriptors (opened again once one is free).
    spare: Option<OwnedFd>,
    /// The listener's source, and whether it is paused (out of descriptors).
    listener_token: Option<RegistrationToken>,
    accept_paused: bool,
    /// The most connections at once, and how many of them only root and the owner may
    /// take ([`client_caps`] of the descriptor limit).
    max: usize,
    reserved: usize,
    /// Refusals not yet logged, and when the last was logged: a flood of refused
    /// connections is one log line now and then, not one each.
    refused: usize,
    refused_logged: Option<Instant>,
    /// When memory was last handed back to the system (see `trim_memory`).
    trimmed: Option<Instant>,
}

impl Clients {
    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

impl Default for Clients {
    fn default() -> Clients {
        let nofile =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
        let (max, reserved) = client_caps(nofile);
        Clients {
            conns: HashMap::new(),
            next: 0,
            per_uid: HashMap::new(),
            reserve: open_reserve(),
            spare: open_reserve(),
            listener_token: None,
            accept_paused: false,
            max,
            reserved,
            refused: 0,
            refused_logged: None,
            trimmed: None,
        }
    }
}

/// A connection's stream as the loop's read source sees it: the same descriptor as the
/// client's [`Conn::stream`].
struct SharedStream(Rc<UnixStream>);

impl AsFd for SharedStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Replies queued for one client beyond which it is dropped: a monitor that does not read
/// its stream. (A client that sends requests stops being read long before: see
/// [`PAUSE_AT`].)
const MAX_BUFFERED: usize = 4 << 20;

/// Reading a client's requests pauses while its unread replies, or its requests not yet
/// answered, pass this many bytes; it resumes when they are back under it. So a client that
/// pipelines requests and never reads the replies costs the daemon this much, not what it
/// can send.
pub const PAUSE_AT: usize = 64 << 10;

/// The most connections at once, when the descriptor limit allows: at most a quarter of the
/// daemon's descriptors go to clients, so that clients can never keep jobs from their log
/// pipes (see [`client_caps`]).
pub const MAX_CLIENTS: usize = 1024;

/// Of the connections, the share (one in sixteen, 64 of 1,024) only root and the daemon's
/// owner may take: others can never keep them out.
pub const RESERVED_SHARE: usize = 16;

/// The most connections of one user other than root and the daemon's owner.
pub const MAX_CLIENTS_PER_USER: usize = 64;

/// Statuses per reply line, so no line grows past what clients accept.
pub const STATUSES_PER_LINE: usize = 500;

/// State changes per `history` reply line.
const HISTORY_PER_LINE: usize = 500;

/// How often refused connections are logged at most.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long accepting pauses when the daemon is out of descriptors and cannot even refuse.
const ACCEPT_PAUSE: Duration = Duration::from_millis(250);

/// The connection caps for a descriptor limit: the most connections at once, and how many
/// of them root and the owner keep for themselves.
pub fn client_caps(nofile: u64) -> (usize, usize) {
    let total = (nofile / 4).clamp(16, MAX_CLIENTS as u64) as usize;
    (total, (total / RESERVED_SHARE).max(4))
}

/// The user at the other end of a connection, as the kernel says (`SO_PEERCRED`).
fn peer_uid(stream: &UnixStream) -> u32 {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_or(u32::MAX, |creds| creds.uid())
}

fn open_reserve() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

/// Binds the control socket. A new parent dir is made private (user mode) or world-readable
/// (system mode, where everyone may ask for status); a stale socket is replaced, a live one
/// (another uprise) is not.
pub fn bind(path: &Path, user_mode: bool) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::create_dir_all(parent)?;
        let mode = if user_mode { 0o700 } else { 0o755 };
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode))?;
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another uprise is listening on {}", path.display()),
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let listener = UnixListener::bind(path)?;
    // Everyone may connect; permissions are decided per request from peer credentials.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// True for requests only the owner (or root) may send: those that change something, the
/// environment reads, and the monitor stream (events carry their variables, and the
/// environment and events may hold secrets). Status, configuration views and log paths are
/// open to everyone who can reach the socket.
fn privileged(request: &Request) -> bool {
    !matches!(
        request,
        Request::Status { .. }
            | Request::List
            | Request::Version
            | Request::Usage { .. }
            | Request::ShowConfig { .. }
            | Request::CheckConfig { .. }
            | Request::LogPath { .. }
            | Request::Timers { .. }
            | Request::Pools
            | Request::History { .. }
            | Request::Metrics
            | Request::Graph
            | Request::Waiting { .. }
    ) && !matches!(request, Request::LogPriority { priority: None })
}

impl Daemon {
    /// The connected clients, for a re-exec snapshot.
    pub fn snapshot_clients(&self) -> Vec<crate::reexec::ClientSnapshot> {
        use std::os::fd::AsRawFd;
        let mut out: Vec<crate::reexec::ClientSnapshot> = self
            .clients
            .conns
            .iter()
            .map(|(id, conn)| crate::reexec::ClientSnapshot {
                id: *id,
                fd: conn.stream.as_raw_fd(),
                input: conn.input.clone(),
                output: conn.output.clone(),
                busy: conn.busy,
                eof: conn.eof,
                uid: conn.uid,
                monitor: self.monitors.contains(id),
                wait: self.client_waits.get(id).map(
                    |super::daemon::Waiter {
                         key: (class_id, instance),
                         kind,
                     }| {
                        let kind = match kind {
                            super::daemon::WaitKind::Start => "start",
                            super::daemon::WaitKind::Stop => "stop",
                            super::daemon::WaitKind::Restart => "restart",
                        };
                        (
                            self.class(*class_id).job.name.clone(),
                            instance.clone(),
                            kind.to_string(),
                        )
                    },
                ),
            })
            .collect();
        out.sort_by_key(|client| client.id);
        out
    }

    /// Takes over a client connection handed over by the previous image.
    pub fn restore_client(&mut self, snapshot: &crate::reexec::ClientSnapshot, stream: UnixStream) {
        let id = snapshot.id;
        self.clients.next = self.clients.next.max(id + 1);
        let _ = stream.set_nonblocking(true);
        let stream = Rc::new(stream);
        let read_token = if snapshot.eof {
            None
        } else {
            match self.register_reader(id, &stream) {
                Some(token) => Some(token),
                None => return,
            }
        };
        *self.clients.per_uid.entry(snapshot.uid).or_default() += 1;
        self.clients.conns.insert(
            id,
            Conn {
                stream,
                input: snapshot.input.clone(),
                output: snapshot.output.clone(),
                reading: read_token.is_some(),
                read_token,
                write_token: None,
                busy: snapshot.busy,
                closing: false,
                eof: snapshot.eof,
                uid: snapshot.uid,
            },
        );
        if snapshot.monitor {
            self.monitors.push(id);
        }
    }

    /// Puts a client's read source in the loop.
    fn register_reader(&mut self, id: ClientId, stream: &Rc<UnixStream>) -> Option<RegistrationToken> {
        let source = Generic::new(SharedStream(stream.clone()), Interest::READ, Mode::Level);
        self.handle
            .insert_source(source, move |_, reader, daemon| {
                // SAFETY: the stream is only read here; NoIoDrop hands out a mutable reference.
                let stream = unsafe { reader.get_mut() }.0.clone();
                Ok(daemon.client_readable(id, &stream))
            })
            .ok()
    }

    pub fn set_next_client(&mut self, next: ClientId) {
        self.clients.next = self.clients.next.max(next);
    }

    pub fn next_client(&self) -> ClientId {
        self.clients.next
    }

    /// After a restore: write what was queued and take any complete request lines.
    pub fn resume_clients(&mut self) {
        let ids: Vec<ClientId> = self.clients.conns.keys().copied().collect();
        for id in ids {
            self.write_client(id);
            self.next_request(id);
        }
    }

    /// Registers the listener with the loop.
    pub fn listen(&mut self, listener: UnixListener) -> io::Result<()> {
        self.listener_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&listener));
        let source = Generic::new(listener, Interest::READ, Mode::Level);
        let token = self
            .handle
            .insert_source(source, |_, listener, daemon| {
                daemon.accept_waiting(listener);
                Ok(PostAction::Continue)
            })
            .map_err(|error| io::Error::other(error.to_string()))?;
        self.clients.listener_token = Some(token);
        Ok(())
    }

    /// Accepts every waiting connection, refusing those over the caps.
    fn accept_waiting(&mut self, listener: &UnixListener) {
        loop {
            if self.clients.spare.is_none() {
                self.clients.spare = open_reserve();
            }
            match listener.accept() {
                Ok((stream, _)) => self.accept_client(stream),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of descriptors: the reserve makes room to take the connection, so
                    // that the listener does not stay readable and spin. Root or the owner
                    // is then served, in the room the spare leaves (the reserve is opened
                    // again in it); anyone else, or root once the spare is gone, is refused.
                    if self.clients.reserve.take().is_none() {
                        self.pause_accepting();
                        break;
                    }
                    // (An empty backlog gives EMFILE too: the descriptor is taken first.)
                    let took_one = match listener.accept() {
                        Ok((stream, _)) => {
                            if Self::privileged_uid(peer_uid(&stream)) && self.clients.spare.take().is_some() {
                                self.accept_client(stream);
                            } else {
                                self.refuse(&stream, "uprise is out of file descriptors");
                            }
                            true
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
                        Err(_) => {
                            self.pause_accepting();
                            false
                        }
                    };
                    self.clients.reserve = open_reserve();
                    if self.clients.reserve.is_none() {
                        self.pause_accepting();
                        break;
                    }
                    if !took_one {
                        break;
                    }
                }
                Err(error) => {
                    warn!("control socket: accept failed: {error}");
                    self.pause_accepting();
                    break;
                }
            }
        }
    }

    /// Stops accepting for a moment (out of descriptors even for a refusal).
    fn pause_accepting(&mut self) {
        let Some(token) = self.clients.listener_token else {
            return;
        };
        if self.clients.accept_paused {
            return;
        }
        self.note_refused();
        if self.handle.disable(&token).is_err() {
            return;
        }
        self.clients.accept_paused = true;
        let _ = self
            .handle
            .insert_source(Timer::from_duration(ACCEPT_PAUSE), move |_, _, daemon| {
                daemon.clients.accept_paused = false;
                let _ = daemon.handle.enable(&token);
                TimeoutAction::Drop
            });
    }

    /// Answers a connection over a cap with one error line, and closes it.
    fn refuse(&mut self, stream: &UnixStream, message: &str) {
        let reply = Reply::Error {
            message: message.to_string(),
        };
        if let Ok(mut line) = serde_json::to_vec(&reply) {
            line.push(b'\n');
            let _ = stream.set_nonblocking(true);
            let _ = (&*stream).write(&line);
        }
        self.note_refused();
    }

    /// Counts a refused connection; logs the count now and then.
    fn note_refused(&mut self) {
        let clients = &mut self.clients;
        clients.refused += 1;
        let due = clients
            .refused_logged
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL);
        if due {
            warn!(
                "control socket: refused {} connection(s) (at most {} clients, {MAX_CLIENTS_PER_USER} per user other than root and the owner, or out of descriptors)",
                clients.refused, clients.max
            );
            clients.refused = 0;
            clients.refused_logged = Some(Instant::now());
        }
    }

    /// Whether a user is root or the daemon's owner.
    fn privileged_uid(uid: u32) -> bool {
        uid == 0 || uid == nix::unistd::geteuid().as_raw()
    }

    /// Why a new connection of `uid` would pass a cap, if it would.
    fn over_cap(&self, uid: u32) -> Option<String> {
        let total = self.clients.conns.len();
        let (max, reserved) = (self.clients.max, self.clients.reserved);
        if total >= max {
            return Some(format!("Too many connections ({max} at most)"));
        }
        if Self::privileged_uid(uid) {
            return None;
        }
        if total >= max - reserved {
            return Some(format!(
                "Too many connections ({} at most for users other than root and the daemon's owner)",
                max - reserved
            ));
        }
        let mine = self.clients.per_uid.get(&uid).copied().unwrap_or(0);
        (mine >= MAX_CLIENTS_PER_USER)
            .then(|| format!("Too many connections from uid {uid} ({MAX_CLIENTS_PER_USER} at most)"))
    }

    /// Takes a connected client, as the listener accepts one (the fuzz target and tests hand
    /// one in directly).
    pub fn accept_client(&mut self, stream: UnixStream) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let uid = peer_uid(&stream);
        if let Some(message) = self.over_cap(uid) {
            self.refuse(&stream, &message);
            return;
        }
        let id = self.clients.next;
        self.clients.next += 1;
        let stream = Rc::new(stream);
        let Some(token) = self.register_reader(id, &stream) else {
            return;
        };
        *self.clients.per_uid.entry(uid).or_default() += 1;
        self.clients.conns.insert(
            id,
            Conn {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                read_token: Some(token),
                reading: true,
                write_token: None,
                busy: false,
                closing: false,
                eof: false,
                uid,
            },
        );
    }

    /// Whether a client is far enough behind that its requests should wait unread.
    fn behind(conn: &Conn) -> bool {
        conn.output.len() >= PAUSE_AT || (conn.busy && conn.input.len() >= PAUSE_AT)
    }

    /// Pauses or resumes reading a client's requests, as [`Daemon::behind`] says.
    fn update_reading(&mut self, id: ClientId) {
        let Some(conn) = self.clients.conns.get_mut(&id) else {
            return;
        };
        let Some(token) = conn.read_token else { return };
        let behind = Self::behind(conn);
        if behind && conn.reading {
            conn.reading = false;
            let _ = self.handle.disable(&token);
        } else if !behind && !conn.reading {
            conn.reading = true;
            let _ = self.handle.enable(&token);
        }
    }

    fn client_readable(&mut self, id: ClientId, stream: &UnixStream) -> PostAction {
        let Some(conn) = self.clients.conns.get(&id) else {
            // Dropped earlier: this read source removes itself.
            return PostAction::Remove;
        };
        if Self::behind(conn) {
            // Paused while this wake-up was on its way.
            self.update_reading(id);
            return PostAction::Continue;
        }
        let mut buffer = [0u8; 8192];
        loop {
            match (&*stream).read(&mut buffer) {
                Ok(0) => {
                    // Half-closed: the requests already sent still get their answers.
                    let Some(conn) = self.clients.conns.get_mut(&id) else {
                        return PostAction::Remove;
                    };
                    conn.eof = true;
                    conn.read_token = None;
                    self.next_request(id);
                    self.settle();
                    self.flush_clients();
                    self.close_if_done(id);
                    return PostAction::Remove;
                }
                Ok(count) => {
                    let Some(conn) = self.clients.conns.get_mut(&id) else {
                        return PostAction::Remove;
                    };
                    conn.input.extend_from_slice(&buffer[..count]);
                    if conn.input.len() > MAX_LINE && !conn.input[..MAX_LINE].contains(&b'\n') {
                        conn.input = Vec::new();
                        conn.closing = true;
                        self.outgoing.push(Outgoing::Reply(
                            id,
                            Reply::Error {
                                message: format!("Request too long (over {MAX_LINE} bytes)"),
                            },
                        ));
                        self.flush_clients();
                        return PostAction::Continue;
                    }
                    // Take the requests now: a line that waits is what pauses reading.
                    self.next_request(id);
                    if self.clients.conns.get(&id).is_some_and(Self::behind) {
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_client(id);
                    return PostAction::Remove;
                }
            }
        }
        self.next_request(id);
        self.settle();
        self.flush_clients();
        self.update_reading(id);
        PostAction::Continue
    }

    /// Takes the next complete line of a client that is not busy, and dispatches it.
    fn next_request(&mut self, id: ClientId) {
        let Some(conn) = self.clients.conns.get_mut(&id) else {
            return;
        };
        // A client far behind in reading its replies gets no more until it catches up.
        if conn.busy || conn.closing || conn.output.len() >= PAUSE_AT {
            return;
        }
        let Some(newline) = conn.input.iter().position(|&byte| byte == b'\n') else {
            return;
        };
        let line: Vec<u8> = conn.input.drain(..=newline).collect();
        if conn.input.is_empty() && conn.input.capacity() > PAUSE_AT {
            conn.input = Vec::new();
        }
        conn.busy = true;
        let uid = conn.uid;
        let request = match serde_json::from_slice::<Request>(&line[..line.len() - 1]) {
            Ok(request) => request,
            Err(error) => {
                self.fail_request(id, format!("Malformed request: {error}"));
                return;
            }
        };
        trace!("client {id} (uid {uid}): {request:?}");
        let owner = nix::unistd::geteuid().as_raw();
        if privileged(&request) && uid != owner && uid != 0 {
            self.fail_request(
                id,
                "Permission denied: only the daemon's owner or root may do that".into(),
            );
            return;
        }
        if let Err(message) = self.dispatch(id, request) {
            self.fail_request(id, message);
        }
    }

    fn fail_request(&mut self, id: ClientId, message: String) {
        self.outgoing.push(Outgoing::Reply(id, Reply::Error { message }));
        self.outgoing.push(Outgoing::Finish(id));
    }

    fn dispatch(&mut self, id: ClientId, request: Request) -> Result<(), String> {
        let done = |daemon: &mut Daemon, replies: Vec<Reply>| {
            for reply in replies {
                daemon.outgoing.push(Outgoing::Reply(id, reply));
            }
            daemon.outgoing.push(Outgoing::Reply(id, Reply::Done));
            daemon.outgoing.push(Outgoing::Finish(id));
        };
        match request {
            Request::Start {
                job,
                env,
                instance,
                wait,
                now,
            } => self.request_start(id, &job, env, instance, wait, now),
            Request::Stop {
                job,
                env,
                instance,
                wait,
            } => self.request_stop(id, &job, env, instance, wait),
            Request::Restart {
                job,
                env,
                instance,
                wait,
            } => self.request_restart(id, &job, env, instance, wait),
            Request::Reload { job, env, instance } => {
                if !self.request_reload(id, &job, env, instance)? {
                    done(self, Vec::new());
                }
                Ok(())
            }
            Request::Action {
                job,
                name,
                env,
                instance,
            } => self.request_action(id, &job, &name, env, instance),
            Request::Status {
                job,
                env,
                instance,
                text,
            } => {
                let status = self.request_status(&job, &env, instance.as_deref())?;
                let reply = if text {
                    Reply::Text {
                        text: crate::control::proto::status_line(&status),
                    }
                } else {
                    Reply::Status {
                        instances: vec![status],
                    }
                };
                done(self, vec![reply]);
                Ok(())
            }
            Request::Timers { job } => {
                let class = job.as_deref().map(|job| self.lookup(job)).transpose()?;
                let timers = self.timer_statuses(class);
                let replies = timers
                    .chunks(STATUSES_PER_LINE)
                    .map(|chunk| Reply::Timers { timers: chunk.to_vec() })
                    .collect();
                done(self, replies);
                Ok(())
            }
            Request::History { since_ms } => {
                let now_ms = self.history.age_ms(self.host.now());
                let boot_wall_ms = self.history.boot_wall_ms();
                let changes: Vec<_> = self.history.since(since_ms.unwrap_or(0)).collect();
                let mut replies: Vec<Reply> = changes
                    .chunks(HISTORY_PER_LINE)
                    .map(|chunk| Reply::History {
                        boot_wall_ms,
                        now_ms,
                        changes: chunk.to_vec(),
                    })
                    .collect();
                if replies.is_empty() {
                    replies.push(Reply::History {
                        boot_wall_ms,
                        now_ms,
                        changes: Vec::new(),
                    });
                }
                done(self, replies);
                Ok(())
            }
            Request::Metrics => {
                let text = self.metrics_text();
                done(self, vec![Reply::Text { text }]);
                Ok(())
            }
            Request::Graph => {
                let texts = self.request_graph();
                done(self, texts.into_iter().map(|text| Reply::Text { text }).collect());
                Ok(())
            }
            Request::Pools => {
                let pools = self.pool_statuses();
                let replies = pools
                    .chunks(STATUSES_PER_LINE)
                    .map(|chunk| Reply::Pools { pools: chunk.to_vec() })
                    .collect();
                done(self, replies);
                Ok(())
            }
            Request::List => {
                let instances = self.list();
                let replies = instances
                    .chunks(STATUSES_PER_LINE)
                    .map(|chunk| Reply::Status {
                        instances: chunk.to_vec(),
                    })
                    .collect();
                done(self, replies);
                Ok(())
            }
            Request::Emit { event, env, wait } => self.request_emit(id, &event, env, wait),
            Request::ReloadConfiguration => {
                self.reload_configuration();
                done(self, Vec::new());
                Ok(())
            }
            Request::Version => {
                let text = format!("uprise {}", env!("CARGO_PKG_VERSION"));
                done(self, vec![Reply::Text { text }]);
                Ok(())
            }
            Request::LogPriority { priority } => {
                let text = match priority {
                    None => super::logger::priority_name(log::max_level()).to_string(),
                    Some(name) => {
                        let level = super::logger::parse_priority(&name)
                            .ok_or_else(|| format!("Unknown log priority: {name}"))?;
                        log::set_max_level(level);
                        String::new()
                    }
                };
                let replies = if text.is_empty() {
                    Vec::new()
                } else {
                    vec![Reply::Text { text }]
                };
                done(self, replies);
                Ok(())
            }
            Request::Usage { job } => {
                let class_id = self.lookup(&job)?;
                let usage = self.class(class_id).job.about.usage.clone().unwrap_or_default();
                done(
                    self,
                    vec![Reply::Text {
                        text: format!("Usage: {usage}"),
                    }],
                );
                Ok(())
            }
            Request::Reexec { binary } => self.reexec(id, binary),
            Request::Monitor => {
                // No final reply: the stream runs until the client closes the connection.
                self.monitors.push(id);
                Ok(())
            }
            Request::Shutdown { action } => {
                done(self, Vec::new());
                self.begin_shutdown(action, None);
                Ok(())
            }
            Request::SetEnv {
                vars,
                retain,
                job,
                instance,
            } => {
                self.request_set_env(&vars, retain, job.as_deref(), instance.as_deref())?;
                done(self, Vec::new());
                Ok(())
            }
            Request::GetEnv { name, job, instance } => {
                let text = self.request_get_env(&name, job.as_deref(), instance.as_deref())?;
                done(self, vec![Reply::Text { text }]);
                Ok(())
            }
            Request::ListEnv { job, instance } => {
                let entries = self.request_list_env(job.as_deref(), instance.as_deref())?;
                done(self, entries.into_iter().map(|text| Reply::Text { text }).collect());
                Ok(())
            }
            Request::UnsetEnv { names, job, instance } => {
                self.request_unset_env(&names, job.as_deref(), instance.as_deref())?;
                done(self, Vec::new());
                Ok(())
            }
            Request::ResetEnv { job, instance } => {
                self.request_reset_env(job.as_deref(), instance.as_deref())?;
                done(self, Vec::new());
                Ok(())
            }
            Request::ShowConfig { job, enumerate } => {
                let blocks = self.request_show_config(job.as_deref(), enumerate)?;
                done(self, blocks.into_iter().map(|text| Reply::Text { text }).collect());
                Ok(())
            }
            Request::CheckConfig { job, ignore, warn } => {
                let blocks = self.request_check_config(job.as_deref(), &ignore, warn)?;
                done(self, blocks.into_iter().map(|text| Reply::Text { text }).collect());
                Ok(())
            }
            Request::LogPath { job, env, instance } => {
                let text = self.request_log_path(&job, &env, instance.as_deref())?;
                done(self, vec![Reply::Text { text }]);
                Ok(())
            }
            Request::Waiting {
                job,
                env,
                instance,
                event,
            } => {
                let lines = self.request_waiting(job.as_deref(), &env, instance.as_deref(), event.as_deref())?;
                done(self, lines.into_iter().map(|text| Reply::Text { text }).collect());
                Ok(())
            }
        }
    }

    /// Writes queued replies into client buffers and onto their sockets.
    pub fn flush_clients(&mut self) {
        // The log first: a client that hears back can read the lines of what it caused.
        super::logger::flush();
        while !self.outgoing.is_empty() {
            let outgoing = std::mem::take(&mut self.outgoing);
            let mut touched = Vec::new();
            for item in outgoing {
                match item {
                    Outgoing::Reply(id, reply) => {
                        let Some(conn) = self.clients.conns.get_mut(&id) else {
                            continue;
                        };
                        if let Ok(mut line) = serde_json::to_vec(&reply) {
                            line.push(b'\n');
                            conn.output.extend_from_slice(&line);
                        }
                        touched.push(id);
                    }
                    Outgoing::Finish(id) => {
                        if let Some(conn) = self.clients.conns.get_mut(&id) {
                            conn.busy = false;
                        }
                        touched.push(id);
                    }
                }
            }
            touched.sort_unstable();
            touched.dedup();
            for id in touched {
                self.write_client(id);
                // A pipelined next request may now run.
                self.next_request(id);
                self.update_reading(id);
            }
        }
    }

    /// Closes a half-closed client once nothing is left to answer.
    fn close_if_done(&mut self, id: ClientId) {
        let Some(conn) = self.clients.conns.get(&id) else {
            return;
        };
        let pending_line = conn.input.contains(&b'\n');
        if conn.eof && !conn.busy && !pending_line && conn.output.is_empty() && !self.monitors.contains(&id) {
            self.drop_client(id);
        }
    }

    fn write_client(&mut self, id: ClientId) {
        let monitor = self.monitors.contains(&id);
        let Some(conn) = self.clients.conns.get_mut(&id) else {
            return;
        };
        if monitor && conn.output.len() > MAX_BUFFERED {
            warn!("client {id} does not read its monitor stream; dropping it");
            self.drop_client(id);
            return;
        }
        let mut written = 0;
        while written < conn.output.len() {
            match (&*conn.stream).write(&conn.output[written..]) {
                Ok(0) => break,
                Ok(count) => written += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.drop_client(id);
                    return;
                }
            }
        }
        conn.output.drain(..written);
        if conn.output.is_empty() {
            // A burst (a long `list`) leaves no large buffer behind an idle client.
            if conn.output.capacity() > PAUSE_AT {
                conn.output = Vec::new();
                self.trim_memory();
            }
            let Some(conn) = self.clients.conns.get(&id) else {
                return;
            };
            if conn.closing {
                self.drop_client(id);
            } else {
                self.close_if_done(id);
            }
            return;
        }
        if conn.write_token.is_some() {
            return;
        }
        // The client reads slowly: wait for the socket to drain instead of blocking.
        let Ok(writer) = conn.stream.as_fd().try_clone_to_owned() else {
            return;
        };
        let source = Generic::new(std::fs::File::from(writer), Interest::WRITE, Mode::Level);
        let token = self.handle.insert_source(source, move |_, _, daemon| {
            if let Some(conn) = daemon.clients.conns.get_mut(&id) {
                conn.write_token = None;
            }
            daemon.write_client(id);
            // Requests held back while the client was behind may run now.
            daemon.next_request(id);
            daemon.settle();
            daemon.flush_clients();
            daemon.update_reading(id);
            Ok(PostAction::Remove)
        });
        if let (Ok(token), Some(conn)) = (token, self.clients.conns.get_mut(&id)) {
            conn.write_token = Some(token);
        }
    }

    /// Gives freed memory back to the system, at most once a second: a buffer of a client
    /// that was far behind is freed into the C allocator, which keeps it otherwise.
    fn trim_memory(&mut self) {
        if self
            .clients
            .trimmed
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.clients.trimmed = Some(Instant::now());
        trim_now();
    }

    /// Forgets a client. Its read source is not removed here (this may run inside that
    /// source's callback): the socket is shut down, so the source sees end-of-file next and
    /// removes itself.
    fn drop_client(&mut self, id: ClientId) {
        let Some(conn) = self.clients.conns.remove(&id) else {
            return;
        };
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        if let Some(token) = conn.write_token {
            self.handle.remove(token);
        }
        if let Some(token) = conn.read_token
            && !conn.reading
        {
            // A paused source sees no end of file: it goes now.
            self.handle.remove(token);
        }
        if let Some(count) = self.clients.per_uid.get_mut(&conn.uid) {
            *count -= 1;
            if *count == 0 {
                self.clients.per_uid.remove(&conn.uid);
            }
        }
        let large = conn.input.capacity() + conn.output.capacity() > PAUSE_AT;
        drop(conn);
        if large {
            self.trim_memory();
        }
        self.forget_client(id);
    }
}

/// Asks the C allocator to give the free memory it holds back to the system.
pub(super) fn trim_now() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
