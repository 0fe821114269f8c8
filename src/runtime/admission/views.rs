//! What `status` and `uprisectl pools` say about admission: a queued start's reasons, as
//! fields and in words, and each pool's maximum, holders and line.

use jiff::Timestamp;

use crate::control::proto::{GateStatus, PoolStatus, PoolWait, QueueStatus};
use crate::machine::gate::Verdict;

use super::super::daemon::{Daemon, Key};
use super::super::timers::show_time;
use super::gates::written;

impl Daemon {
    /// A queued instance's reasons: the fields of `status --json`, and the lines of
    /// `status -v`.
    pub(in crate::runtime) fn queue_status(&self, key: &Key) -> Option<(QueueStatus, Vec<String>)> {
        let instance = self.instance(key)?;
        let queued = instance.queued.as_deref()?;
        if queued.ticket == 0 {
            return None;
        }
        let job = &self.class(key.0).job;
        let zone = &self.timers.local;
        let rfc = |at: Timestamp| show_time(at, zone);
        let clock = |at: Timestamp| at.to_zoned_datetime(zone.clone()).strftime("%H:%M:%S").to_string();
        let mut lines = Vec::new();
        let mut status = QueueStatus {
            since: rfc(queued.since),
            ticket: queued.ticket,
            ..QueueStatus::default()
        };
        if queued.granted {
            lines.push("admitted: starting".to_string());
        }
        if let Some(gate) = queued.gate.as_ref().filter(|gate| !gate.waived) {
            let mut shown = GateStatus::default();
            match &gate.verdict {
                Verdict::Open => shown.verdict = "open".into(),
                Verdict::Shut(why) => {
                    shown.verdict = "shut".into();
                    shown.why = Some(why.clone());
                    lines.push(format!("waiting for gate: {why}"));
                }
                Verdict::Unknown(why) => {
                    shown.verdict = "unknown".into();
                    shown.why = Some(why.clone());
                    lines.push(format!("waiting for gate: cannot weigh it: {why}"));
                }
            }
            if let (Some((_, since)), Some(hold)) = (gate.open_since, job.ext.gate.hold) {
                let admits = since + jiff::SignedDuration::from_millis(hold.millis as i64);
                shown.held_since = Some(rfc(since));
                shown.admits_at = Some(rfc(admits));
                if !self.gate_admits(job, gate) {
                    lines.push(format!(
                        "gate held since {}, admits at {} (gate hold {})",
                        clock(since),
                        clock(admits),
                        written(hold.millis)
                    ));
                }
            }
            if let (Some((_, at)), Some(wait)) = (gate.expires, job.ext.gate.wait) {
                shown.expires_at = Some(rfc(at));
                lines.push(format!(
                    "gate expires at {} (gate wait {})",
                    clock(at),
                    written(wait.millis)
                ));
            }
            status.gate = Some(shown);
        }
        if let Some(missing) = &queued.missing {
            lines.push(format!("waiting for {missing}"));
            status.file = Some(missing.to_string());
        }
        if self.admission.pools.is_waiting(queued.ticket) {
            for (id, needs) in queued.amounts.iter() {
                let pool = self.admission.pools.get(*id);
                let ahead = self.admission.pools.ahead(*id, queued.ticket);
                lines.push(format!(
                    "waiting for pool {}: needs {needs}, {} of {} in use, {ahead} ahead in the queue",
                    pool.name,
                    rounded(pool.used),
                    pool.max
                ));
                status.pools.push(PoolWait {
                    pool: pool.name.clone(),
                    needs: *needs,
                    used: rounded(pool.used),
                    max: pool.max,
                    ahead,
                });
            }
        }
        if lines.is_empty() {
            lines.push("queued: being admitted".to_string());
        }
        Some((status, lines))
    }

    /// Every pool, by name, with its holders and its line.
    pub(in crate::runtime) fn pool_statuses(&self) -> Vec<PoolStatus> {
        let mut pools: Vec<PoolStatus> = self
            .admission
            .pools
            .iter()
            .map(|(_, pool)| PoolStatus {
                pool: pool.name.clone(),
                max: pool.max,
                declared: pool.declared,
                used: rounded(pool.used),
                holders: pool
                    .holders
                    .iter()
                    .map(|(key, amount)| (self.display(key), *amount))
                    .collect(),
                queue: pool
                    .line
                    .iter()
                    .filter_map(|ticket| {
                        let key = self.admission.queue.get(ticket)?;
                        let asked = self
                            .instance(key)
                            .and_then(|instance| instance.queued.as_deref())
                            .and_then(|queued| {
                                queued
                                    .amounts
                                    .iter()
                                    .find(|(id, _)| self.admission.pools.get(*id).name == pool.name)
                                    .map(|(_, amount)| *amount)
                            })
                            .unwrap_or_default();
                        Some((self.display(key), asked))
                    })
                    .collect(),
            })
            .collect();
        pools.sort_by(|a, b| a.pool.cmp(&b.pool));
        pools
    }
}

/// A sum of fractions as people write it: 0.1 + 0.2 is 0.3.
pub(in crate::runtime) fn rounded(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}
