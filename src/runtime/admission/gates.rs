//! Gates: the figures, read at most once a tick for every gate together; the tick, armed
//! only while a start waits on a gate; and a gate's wait running out.
//!
//! A file is read when a gate needs one of its figures and its last reading is older than a
//! tick (less a little slack for the loop's lateness), so a thousand gates on `load1` read
//! `loadavg` once a second between them, and a daemon with nothing queued on a gate reads
//! nothing. Network rates come from two readings of `net/dev`, a tick or more apart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::machine::State;
use crate::machine::gate::{self, Figures, Verdict};
use crate::model::Job;
use crate::syntax::ast::{GateExpire, GateExpr, Metric, PressureResource};
use crate::sys::metrics::{self, Pressure};

use super::super::daemon::{Daemon, Key};
use super::super::deadlines::Deadline;

/// How often the gates of queued starts are weighed.
pub const TICK: Duration = Duration::from_secs(1);

/// A reading younger than this is not read again: a tick, less the loop's slack.
const FRESH: Duration = Duration::from_millis(900);

/// A rate is measured over two readings at most this far apart; an older first reading
/// (no net gate waited for a while) starts the measure again.
const RATE_SPAN: Duration = Duration::from_secs(10);

/// One file's last reading.
struct Reading<T> {
    at: Option<Instant>,
    value: Result<T, String>,
}

impl<T> Default for Reading<T> {
    fn default() -> Self {
        Reading {
            at: None,
            value: Err("not read yet".into()),
        }
    }
}

impl<T> Reading<T> {
    fn stale(&self, now: Instant) -> bool {
        self.at.is_none_or(|at| now.saturating_duration_since(at) >= FRESH)
    }
}

type NetDev = Vec<(String, u64, u64)>;

/// The figures gates weigh, as last read under the procfs root.
pub struct FigureCache {
    root: PathBuf,
    loadavg: Reading<[f64; 3]>,
    pressure: [Reading<Pressure>; 3],
    net: Reading<NetDev>,
    /// The reading of `net/dev` before the last, for rates.
    net_before: Option<(Instant, NetDev)>,
    /// How many files were read, for `uprisectl pools` and the tests.
    pub reads: u64,
}

impl Default for FigureCache {
    fn default() -> Self {
        FigureCache::new(PathBuf::from("/proc"))
    }
}

fn pressure_slot(resource: PressureResource) -> usize {
    match resource {
        PressureResource::Cpu => 0,
        PressureResource::Io => 1,
        PressureResource::Memory => 2,
    }
}

impl FigureCache {
    pub fn new(root: PathBuf) -> FigureCache {
        FigureCache {
            root,
            loadavg: Reading::default(),
            pressure: Default::default(),
            net: Reading::default(),
            net_before: None,
            reads: 0,
        }
    }

    /// Reads again each file the metrics need whose reading is older than a tick.
    pub fn refresh(&mut self, needed: &[Metric], now: Instant) {
        let (mut load, mut pressure, mut net) = (false, [false; 3], false);
        for metric in needed {
            match metric {
                Metric::Load { .. } => load = true,
                Metric::Pressure { resource, .. } => pressure[pressure_slot(*resource)] = true,
                Metric::Net { .. } => net = true,
            }
        }
        if load && self.loadavg.stale(now) {
            self.reads += 1;
            let value = metrics::read(&self.root, "loadavg").and_then(|text| {
                metrics::parse_loadavg(&text)
                    .ok_or_else(|| format!("{}: unreadable", self.root.join("loadavg").display()))
            });
            self.loadavg = Reading { at: Some(now), value };
        }
        for (slot, name) in ["cpu", "io", "memory"].into_iter().enumerate() {
            if pressure[slot] && self.pressure[slot].stale(now) {
                self.reads += 1;
                let value =
                    metrics::read(&self.root, &format!("pressure/{name}")).map(|text| metrics::parse_pressure(&text));
                self.pressure[slot] = Reading { at: Some(now), value };
            }
        }
        if net && self.net.stale(now) {
            self.reads += 1;
            let value = metrics::read(&self.root, "net/dev").map(|text| metrics::parse_net_dev(&text));
            let before = std::mem::replace(&mut self.net, Reading { at: Some(now), value });
            if let (Some(at), Ok(counters)) = (before.at, before.value) {
                self.net_before = Some((at, counters));
            }
        }
    }

    fn net_rate(&self, interface: Option<&str>, tx: bool) -> Result<f64, String> {
        let now = self.net.value.as_ref().map_err(Clone::clone)?;
        let at = self.net.at.ok_or("net/dev not read yet")?;
        let total = |counters: &NetDev| -> Option<u64> {
            let pick = |(_, rx, sent): &(String, u64, u64)| if tx { *sent } else { *rx };
            match interface {
                Some(name) => counters.iter().find(|(known, ..)| known == name).map(pick),
                None => Some(counters.iter().filter(|(name, ..)| name != "lo").map(pick).sum()),
            }
        };
        let Some(current) = total(now) else {
            return Err(format!(
                "no interface {} in {}",
                interface.unwrap_or(""),
                self.root.join("net/dev").display()
            ));
        };
        let first = self
            .net_before
            .as_ref()
            .filter(|(before, _)| at.saturating_duration_since(*before) <= RATE_SPAN);
        let Some((before, counters)) = first else {
            return Err("net: measuring (a rate needs two readings a tick apart)".into());
        };
        let seconds = at.saturating_duration_since(*before).as_secs_f64();
        let Some(previous) = total(counters).filter(|_| seconds > 0.0) else {
            return Err("net: measuring (a rate needs two readings a tick apart)".into());
        };
        // A counter that went back (an interface reset) counts from zero.
        Ok(current.saturating_sub(previous) as f64 / seconds)
    }
}

impl Figures for FigureCache {
    fn value(&self, metric: &Metric) -> Result<f64, String> {
        match metric {
            Metric::Load { minutes } => {
                let averages = self.loadavg.value.as_ref().map_err(Clone::clone)?;
                Ok(match minutes {
                    1 => averages[0],
                    5 => averages[1],
                    _ => averages[2],
                })
            }
            Metric::Pressure { resource, full, window } => {
                let name = gate::pressure_name(*resource);
                let pressure = self.pressure[pressure_slot(*resource)]
                    .value
                    .as_ref()
                    .map_err(Clone::clone)?;
                pressure.get(*full, *window).ok_or_else(|| {
                    format!(
                        "{}: no `{}` line",
                        self.root.join("pressure").join(name).display(),
                        if *full { "full" } else { "some" }
                    )
                })
            }
            Metric::Net { interface, tx } => self.net_rate(interface.as_deref(), *tx),
        }
    }
}

/// `2h`, `90s`, `1500ms`: a duration in the largest unit that says it exactly.
pub fn written(millis: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (7 * 24 * 3_600_000, "w"),
        (24 * 3_600_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    UNITS
        .iter()
        .find(|(size, _)| millis > 0 && millis.is_multiple_of(*size))
        .map_or_else(
            || format!("{millis}ms"),
            |(size, unit)| format!("{}{unit}", millis / size),
        )
}

impl Daemon {
    /// Weighs a condition now, reading what it needs unless it was read this tick.
    pub(super) fn weigh_now(&mut self, condition: &GateExpr) -> Verdict {
        let mut needed = Vec::new();
        gate::metrics(condition, &mut needed);
        let now = self.host.now();
        let mut figures = self.admission.figures.borrow_mut();
        figures.refresh(&needed, now);
        gate::weigh(condition, &*figures)
    }

    /// Weighs a start's gate now: its condition, then (when that admits it) its Lua gate,
    /// which reads the start's own variables over the job environment as it is now (so
    /// `set-env` can open it).
    pub(super) fn weigh_gate(&mut self, key: &Key, job: &Job) -> Verdict {
        let verdict = match &job.ext.gate.condition {
            Some(condition) => self.weigh_now(condition),
            None => Verdict::Open,
        };
        let Some(code) = &job.ext.gate.lua else {
            return verdict;
        };
        if verdict != Verdict::Open {
            return verdict;
        }
        let mut env = self.job_env(key.0).to_vec();
        if let Some(start) = self.instance(key).and_then(|instance| instance.start_env.as_ref()) {
            crate::machine::environ::merge(&mut env, start.own());
        }
        match self.run_lua(key, "gate", code, &env, false) {
            Ok(Some(true)) => Verdict::Open,
            Ok(Some(false)) => Verdict::Shut("gate lua returned false".into()),
            Ok(None) => Verdict::Shut("gate lua returned nothing".into()),
            Err(why) => Verdict::Unknown(format!("gate lua: {why}")),
        }
    }

    /// Arms the tick, unless it is armed or no start waits on a gate.
    pub(super) fn schedule_gate_tick(&mut self) {
        if self.admission.tick.is_none() && !self.admission.gated.is_empty() {
            self.admission.tick = Some(self.arm(TICK, Deadline::GateTick));
        }
    }

    /// The tick: every gate waited on is weighed again; each file is read by the first gate
    /// that needs it this tick (`FigureCache::refresh`), and by none after it.
    pub(in crate::runtime) fn gate_tick(&mut self) {
        self.admission.tick = None;
        let waiting: Vec<(u64, Key)> = self
            .admission
            .gated
            .iter()
            .filter_map(|ticket| Some((*ticket, self.admission.queue.get(ticket)?.clone())))
            .collect();
        let now = self.host.now();
        let wall = self.host.wall_now();
        for (ticket, key) in waiting {
            let job = self.class(key.0).job.clone();
            let verdict = self.weigh_gate(&key, &job);
            let Some(queued) = self.queued_mut(&key) else { continue };
            let Some(gate) = queued.gate.as_mut() else { continue };
            let newly_unknown =
                matches!(&verdict, Verdict::Unknown(why) if gate.verdict != Verdict::Unknown(why.clone()));
            if verdict == Verdict::Open {
                gate.open_since.get_or_insert((now, wall));
            } else {
                gate.open_since = None;
            }
            gate.verdict = verdict;
            if newly_unknown && let Verdict::Unknown(why) = &gate.verdict {
                let why = why.clone();
                warn!("{}: its gate cannot be weighed: {why}", self.display(&key));
            }
            self.admission.recheck.push(ticket);
        }
        self.schedule_gate_tick();
    }

    /// `gate wait` ran out for a start still queued: `gate expire skip` fails it, `gate
    /// expire start` lets it go past its gate.
    pub(in crate::runtime) fn gate_expired(&mut self, key: &Key, serial: u64) {
        if self
            .instance(key)
            .is_none_or(|instance| instance.serial != serial || instance.state != State::Queued)
        {
            return;
        }
        let job = self.class(key.0).job.clone();
        let wait = written(job.ext.gate.wait.map_or(0, |wait| wait.millis));
        let Some(queued) = self.queued_mut(key) else { return };
        let Some(gate) = queued.gate.as_mut() else { return };
        gate.expires = None;
        match job.ext.gate.expire.unwrap_or(GateExpire::Skip) {
            GateExpire::Skip => {
                queued.refusal = Some(Box::new(("gate".into(), format!("gate expired after {wait}"))));
                self.change_state(key, State::Queued);
            }
            GateExpire::Start => {
                gate.waived = true;
                let ticket = queued.ticket;
                info!(
                    "{}: gate wait of {wait} ran out; starting anyway (gate expire start)",
                    self.display(key)
                );
                self.admission.gated.remove(&ticket);
                self.admission.recheck.push(ticket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(text: &str) -> Metric {
        let (file, errors) = crate::syntax::parse_file(&format!("gate {text} < 1\n"));
        assert!(errors.is_empty(), "{errors:?}");
        let mut found = Vec::new();
        match &file.stanzas[0].node {
            crate::syntax::Stanza::Gate(expr) => gate::metrics(expr, &mut found),
            other => panic!("{other:?}"),
        }
        found.remove(0)
    }

    #[test]
    fn each_file_is_read_once_a_tick_and_rates_need_two_readings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loadavg"), "3.20 1.00 0.50 1/100 42\n").unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        let dev = |rx: u64| {
            format!("h\nh\n lo: 9 0 0 0 0 0 0 0 9 0 0 0 0 0 0 0\n eth0: {rx} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
        };
        std::fs::write(dir.path().join("net/dev"), dev(1000)).unwrap();
        let mut cache = FigureCache::new(dir.path().to_path_buf());
        let (load1, rx, memory) = (metric("load1"), metric("net eth0 rx"), metric("memory some avg10"));
        let start = Instant::now();
        let needed = [load1.clone(), metric("load15"), rx.clone(), memory.clone()];
        cache.refresh(&needed, start);
        assert_eq!(cache.reads, 3);
        assert_eq!(cache.value(&load1), Ok(3.2));
        assert_eq!(cache.value(&metric("load15")), Ok(0.5));
        assert!(cache.value(&rx).unwrap_err().contains("measuring"));
        assert!(cache.value(&memory).unwrap_err().contains("pressure/memory"));
        // Within the tick nothing is read again, however many gates ask.
        for _ in 0..100 {
            cache.refresh(&needed, start + Duration::from_millis(500));
        }
        assert_eq!(cache.reads, 3);
        std::fs::write(dir.path().join("net/dev"), dev(3000)).unwrap();
        cache.refresh(&needed, start + Duration::from_secs(2));
        assert_eq!(cache.reads, 6);
        assert_eq!(cache.value(&rx), Ok(1000.0));
        assert_eq!(cache.value(&metric("net rx")), Ok(1000.0));
        assert!(
            cache
                .value(&metric("net wlan9 rx"))
                .unwrap_err()
                .contains("no interface wlan9")
        );
    }

    #[test]
    fn durations_are_written_as_a_job_file_would() {
        assert_eq!(written(7_200_000), "2h");
        assert_eq!(written(90_000), "90s");
        assert_eq!(written(120_000), "2m");
        assert_eq!(written(1_500), "1500ms");
        assert_eq!(written(0), "0ms");
    }
}
