//! The daemon's figures for monitoring: `uprisectl metrics` and, when the admin names an
//! address (`uprise --metrics-listen ADDR`), an HTTP endpoint that serves the same text,
//! in Prometheus's text exposition format.
//!
//! The counters are kept as things happen (events emitted, respawns and failures by job,
//! how long spawns take); the rest is read from the tables when asked. Jobs appear in the
//! per-job counters only once they have respawned or failed, so a thousand quiet jobs cost
//! nothing here.
//!
//! The HTTP side is small on purpose: each connection reads at most [`MAX_REQUEST`] bytes,
//! for at most [`REQUEST_TIME`], is answered once and closed; at most [`MAX_CONNECTIONS`] are
//! open at once (more are closed at once). It never blocks the loop: reads and writes are
//! non-blocking, and an answer that does not fit the socket's buffer is written as the
//! socket drains.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use calloop::generic::Generic;
use calloop::timer::{TimeoutAction, Timer};
use calloop::{Interest, Mode, PostAction, RegistrationToken};
use log::{info, warn};

use crate::machine::State;
use crate::machine::pools::Pool;

use super::daemon::{Daemon, Key};

/// The upper bounds of the spawn-time histogram's buckets, in seconds.
const SPAWN_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// The most an HTTP request may hold before it is answered (or refused).
const MAX_REQUEST: usize = 8 << 10;
/// How long an HTTP connection may stay open.
const REQUEST_TIME: Duration = Duration::from_secs(10);
/// How many HTTP connections may be open at once.
const MAX_CONNECTIONS: usize = 16;

/// What happened to one job, since the daemon first started (this image's life: the
/// counters start over after a re-exec).
#[derive(Clone, Copy, Default)]
struct JobCounts {
    respawns: u64,
    failures: u64,
}

/// The counters, and the HTTP endpoint if there is one.
#[derive(Default)]
pub struct Metrics {
    events: u64,
    jobs: HashMap<String, JobCounts>,
    spawn_buckets: [u64; SPAWN_BUCKETS.len()],
    spawn_count: u64,
    spawn_seconds: f64,
    http: HashMap<u64, HttpConn>,
    next_conn: u64,
}

struct HttpConn {
    token: RegistrationToken,
    timer: Option<RegistrationToken>,
}

impl Metrics {
    pub fn event_emitted(&mut self) {
        self.events += 1;
    }

    pub fn respawned(&mut self, job: &str) {
        self.job(job).respawns += 1;
    }

    pub fn failed(&mut self, job: &str) {
        self.job(job).failures += 1;
    }

    fn job(&mut self, job: &str) -> &mut JobCounts {
        if !self.jobs.contains_key(job) {
            self.jobs.insert(job.to_string(), JobCounts::default());
        }
        self.jobs.get_mut(job).expect("just inserted")
    }

    /// A spawn took `took`, from the daemon starting it to its exec seen.
    pub fn spawned(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bucket, bound) in self.spawn_buckets.iter_mut().zip(SPAWN_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.spawn_count += 1;
        self.spawn_seconds += seconds;
    }
}

/// A label value as the exposition format writes it.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes one metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes a metric with one label: its header, then `NAME{KEY="VALUE"} FIGURE` for each.
fn family<F: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    key: &str,
    items: impl Iterator<Item = (impl AsRef<str>, F)>,
) {
    header(out, name, kind, help);
    for (value, figure) in items {
        let _ = writeln!(out, "{name}{{{key}=\"{}\"}} {figure}", label(value.as_ref()));
    }
}

impl Daemon {
    /// The figures, in Prometheus's text format.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let mut by_state: HashMap<State, u64> = State::ALL.into_iter().map(|state| (state, 0)).collect();
        let mut jobs = 0u64;
        for (_, class) in self.classes.iter() {
            jobs += 1;
            if class.instances.is_empty() {
                *by_state.entry(State::Waiting).or_default() += 1;
            }
            for instance in class.instances.values() {
                *by_state.entry(instance.state).or_default() += 1;
            }
        }
        header(&mut out, "uprise_jobs", "gauge", "Jobs loaded.");
        let _ = writeln!(out, "uprise_jobs {jobs}");
        family(
            &mut out,
            "uprise_instances",
            "gauge",
            "Instances by state; a job with no instance counts as one waiting.",
            "state",
            State::ALL.into_iter().map(|state| (state.name(), by_state[&state])),
        );
        header(
            &mut out,
            "uprise_events_emitted_total",
            "counter",
            "Events emitted since this daemon image started.",
        );
        let _ = writeln!(out, "uprise_events_emitted_total {}", self.metrics.events);
        header(&mut out, "uprise_events_pending", "gauge", "Events not yet finished.");
        let _ = writeln!(out, "uprise_events_pending {}", self.events.len());
        let mut counted: Vec<(&String, &JobCounts)> = self.metrics.jobs.iter().collect();
        counted.sort_by(|a, b| a.0.cmp(b.0));
        let nonzero = |count: fn(&JobCounts) -> u64| {
            counted
                .iter()
                .map(move |(job, counts)| (job.as_str(), count(counts)))
                .filter(|(_, count)| *count > 0)
        };
        family(
            &mut out,
            "uprise_job_respawns_total",
            "counter",
            "Respawns of a job's main process (jobs that never respawned are left out).",
            "job",
            nonzero(|counts| counts.respawns),
        );
        family(
            &mut out,
            "uprise_job_failures_total",
            "counter",
            "Runs of a job that failed (jobs that never failed are left out).",
            "job",
            nonzero(|counts| counts.failures),
        );
        header(
            &mut out,
            "uprise_queued_starts",
            "gauge",
            "Starts waiting in the queued state (gates, pools, required files).",
        );
        let _ = writeln!(out, "uprise_queued_starts {}", by_state[&State::Queued]);
        let mut pools: Vec<_> = self.admission.pools.iter().map(|(_, pool)| pool).collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        let each = |figure: fn(&Pool<Key>) -> f64| pools.iter().map(move |pool| (pool.name.as_str(), figure(pool)));
        family(
            &mut out,
            "uprise_pool_max",
            "gauge",
            "A resource pool's maximum.",
            "pool",
            each(|pool| pool.max),
        );
        family(
            &mut out,
            "uprise_pool_used",
            "gauge",
            "How much of a resource pool is held.",
            "pool",
            each(|pool| super::admission::views::rounded(pool.used)),
        );
        family(
            &mut out,
            "uprise_pool_waiting",
            "gauge",
            "Starts in a resource pool's line.",
            "pool",
            each(|pool| pool.line.len() as f64),
        );
        header(
            &mut out,
            "uprise_spawn_duration_seconds",
            "histogram",
            "From the daemon starting a process to its exec seen.",
        );
        for (count, bound) in self.metrics.spawn_buckets.iter().zip(SPAWN_BUCKETS) {
            let _ = writeln!(out, "uprise_spawn_duration_seconds_bucket{{le=\"{bound}\"}} {count}");
        }
        let metrics = &self.metrics;
        let _ = writeln!(
            out,
            "uprise_spawn_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            metrics.spawn_count
        );
        let _ = writeln!(out, "uprise_spawn_duration_seconds_sum {}", metrics.spawn_seconds);
        let _ = writeln!(out, "uprise_spawn_duration_seconds_count {}", metrics.spawn_count);
        header(
            &mut out,
            "uprise_processes",
            "gauge",
            "Processes the daemon tracks, Lua ones included.",
        );
        let _ = writeln!(out, "uprise_processes {}", self.pids.len());
        header(
            &mut out,
            "uprise_lua_processes",
            "gauge",
            "`script lua` processes running.",
        );
        let _ = writeln!(out, "uprise_lua_processes {}", self.lua.processes.len());
        header(
            &mut out,
            "uprise_lua_memory_bytes",
            "gauge",
            "Bytes the Lua state holds.",
        );
        let _ = writeln!(out, "uprise_lua_memory_bytes {}", self.lua.used_memory());
        header(&mut out, "uprise_clients", "gauge", "Control connections open.");
        let _ = writeln!(out, "uprise_clients {}", self.clients.len());
        header(
            &mut out,
            "uprise_history_changes",
            "gauge",
            "State changes the daemon remembers for `uprisectl plot`.",
        );
        let _ = writeln!(out, "uprise_history_changes {}", self.history.len());
        header(
            &mut out,
            "uprise_uptime_seconds",
            "gauge",
            "Seconds since the daemon first started (across re-execs).",
        );
        let uptime = self.history.age_ms(self.host.now()) as f64 / 1000.0;
        let _ = writeln!(out, "uprise_uptime_seconds {uptime}");
        out
    }

    /// Serves the figures over HTTP on `addr` (`uprise --metrics-listen`).
    pub fn listen_metrics(&mut self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        info!("serving metrics on http://{}/metrics", listener.local_addr()?);
        self.handle
            .insert_source(
                Generic::new(listener, Interest::READ, Mode::Level),
                |_, listener, daemon| {
                    loop {
                        match listener.accept() {
                            Ok((stream, _)) => daemon.http_connection(stream),
                            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                            Err(error) if error.kind() == ErrorKind::Interrupted => {}
                            Err(error) => {
                                warn!("metrics endpoint: {error}");
                                break;
                            }
                        }
                    }
                    Ok(PostAction::Continue)
                },
            )
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(())
    }

    fn http_connection(&mut self, stream: TcpStream) {
        if self.metrics.http.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err() {
            return;
        }
        let id = self.metrics.next_conn;
        self.metrics.next_conn += 1;
        let mut request = Vec::new();
        let mut answer: Option<(Vec<u8>, usize)> = None;
        // Edge-triggered on both: woken when more of the request arrives and when the
        // socket drains, never spinning on a socket that is merely writable.
        let source = Generic::new(stream, Interest::BOTH, Mode::Edge);
        let token = self.handle.insert_source(source, move |_, stream, daemon| {
            // SAFETY: the stream is not dropped or replaced here; calloop only forbids that.
            let stream = unsafe { stream.get_mut() };
            if answer.is_none() {
                let mut buffer = [0u8; 2048];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) => {
                            daemon.close_http(id);
                            return Ok(PostAction::Remove);
                        }
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                        Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                        Err(error) if error.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            daemon.close_http(id);
                            return Ok(PostAction::Remove);
                        }
                    }
                    if request.len() >= MAX_REQUEST {
                        break;
                    }
                }
                let complete = request.windows(4).any(|window| window == b"\r\n\r\n")
                    || request.windows(2).any(|window| window == b"\n\n");
                if !complete && request.len() < MAX_REQUEST {
                    return Ok(PostAction::Continue);
                }
                answer = Some((daemon.http_answer(&request), 0));
            }
            let Some((bytes, written)) = answer.as_mut() else {
                return Ok(PostAction::Continue);
            };
            while *written < bytes.len() {
                match stream.write(&bytes[*written..]) {
                    Ok(0) => break,
                    Ok(count) => *written += count,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {
                        return Ok(PostAction::Continue);
                    }
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            daemon.close_http(id);
            Ok(PostAction::Remove)
        });
        let Ok(token) = token else { return };
        let timer = self
            .handle
            .insert_source(Timer::from_duration(REQUEST_TIME), move |_, _, daemon| {
                if let Some(conn) = daemon.metrics.http.remove(&id) {
                    daemon.handle.remove(conn.token);
                }
                TimeoutAction::Drop
            })
            .ok();
        self.metrics.http.insert(id, HttpConn { token, timer });
    }

    /// Forgets an HTTP connection whose source removes itself.
    fn close_http(&mut self, id: u64) {
        if let Some(conn) = self.metrics.http.remove(&id)
            && let Some(timer) = conn.timer
        {
            self.handle.remove(timer);
        }
    }

    /// The answer to an HTTP request: the figures for `GET /metrics` (or `/`), else an error.
    fn http_answer(&self, request: &[u8]) -> Vec<u8> {
        let line = request.split(|byte| *byte == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let (status, body) = match (method, path) {
            ("GET" | "HEAD", "/metrics" | "/") => ("200 OK", self.metrics_text()),
            ("GET" | "HEAD", _) => ("404 Not Found", "not found: try /metrics\n".to_string()),
            _ => ("405 Method Not Allowed", "only GET\n".to_string()),
        };
        let mut answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if method != "HEAD" {
            answer.extend_from_slice(body.as_bytes());
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_spawns_fall_in_their_buckets() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut metrics = Metrics::default();
        metrics.spawned(Duration::from_micros(700));
        metrics.spawned(Duration::from_secs(2));
        // Buckets are cumulative: 0.7 ms is in every bucket from 1 ms up.
        assert_eq!(metrics.spawn_buckets, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(metrics.spawn_count, 2);
        metrics.respawned("web");
        metrics.failed("web");
        metrics.failed("db");
        assert_eq!(metrics.jobs["web"].respawns, 1);
        assert_eq!(metrics.jobs["db"].failures, 1);
    }
}
