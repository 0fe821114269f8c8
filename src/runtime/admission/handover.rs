//! Admission across a re-exec: queued starts keep their tickets (so their places in every
//! line), their gate's clocks and their `--now`; holders keep what they hold; `watershed`
//! marks stay. What a start requires and whether its gate is open are looked at again by
//! the new image, which is what the old one would have done at its next tick.

use std::time::Duration;

use jiff::Timestamp;
use log::warn;

use crate::machine::gate::Verdict;
use crate::machine::pools::Amounts;
use crate::reexec::{GateSnapshot, InstanceSnapshot, QueuedSnapshot};

use super::super::daemon::{Daemon, Key};
use super::super::deadlines::Deadline;
use super::super::jobs::Instance;
use super::{GateWait, Queued, first_missing, requirements};

impl Daemon {
    /// Adds an instance's admission to its snapshot.
    pub(in crate::runtime) fn capture_admission(
        &self,
        key: &Key,
        instance: &Instance,
        captured: &mut InstanceSnapshot,
    ) {
        let now = self.host.now();
        captured.holds = self
            .admission
            .pools
            .iter()
            .filter_map(|(_, pool)| Some((pool.name.clone(), *pool.holders.get(key)?)))
            .collect();
        captured.watershed = instance.rare().watershed.clone();
        let Some(queued) = instance.queued.as_deref().filter(|queued| queued.ticket != 0) else {
            return;
        };
        captured.queued = Some(QueuedSnapshot {
            ticket: queued.ticket,
            since: queued.since.to_string(),
            amounts: queued
                .amounts
                .iter()
                .map(|(id, amount)| (self.admission.pools.get(*id).name.clone(), *amount))
                .collect(),
            now: queued.now,
            gate: queued.gate.as_ref().map(|gate| GateSnapshot {
                open_for_ms: gate
                    .open_since
                    .map(|(since, _)| now.saturating_duration_since(since).as_millis() as u64),
                expires_in_ms: gate
                    .expires
                    .map(|(id, _)| id.at.saturating_duration_since(now).as_millis() as u64),
                expires_at: gate.expires.map(|(_, at)| at.to_string()),
                waived: gate.waived,
            }),
        });
    }

    /// The next ticket and the declared pools, for the snapshot.
    pub(in crate::runtime) fn capture_pools(&self, snapshot: &mut crate::reexec::Snapshot) {
        snapshot.next_ticket = self.admission.next_ticket;
        snapshot.pools = self
            .admission
            .pools
            .iter()
            .filter(|(_, pool)| pool.declared)
            .map(|(_, pool)| (pool.name.clone(), pool.max))
            .collect();
    }

    /// The declared pools, before any instance is restored.
    pub(in crate::runtime) fn restore_pools(&mut self, snapshot: &crate::reexec::Snapshot) {
        self.admission.next_ticket = self.admission.next_ticket.max(snapshot.next_ticket);
        if !snapshot.pools.is_empty() {
            self.admission
                .pools
                .declare(snapshot.pools.iter().map(|(name, max)| (name.as_str(), *max)));
        }
    }

    /// Takes over an instance's admission from a snapshot (the instance is restored).
    pub(in crate::runtime) fn restore_admission(&mut self, key: &Key, snapshot: &mut InstanceSnapshot) {
        if !snapshot.holds.is_empty() {
            let holds: Amounts = snapshot
                .holds
                .iter()
                .map(|(pool, amount)| (self.admission.pools.id(pool), *amount))
                .collect();
            self.admission.pools.take(key, &holds);
        }
        if let Some(env) = snapshot.watershed.take()
            && let Some(instance) = self.instance_mut(key)
        {
            instance.rare_mut().watershed = Some(env);
        }
        let Some(saved) = snapshot.queued.take() else { return };
        let job = self.class(key.0).job.clone();
        let Some(env) = self
            .instance(key)
            .map(|instance| instance.start_env.as_ref().unwrap_or(&instance.env).to_vec())
        else {
            return;
        };
        let now = self.host.now();
        let wall = self.host.wall_now();
        let amounts: Amounts = saved
            .amounts
            .iter()
            .map(|(pool, amount)| (self.admission.pools.id(pool), *amount))
            .collect();
        let requires = requirements(&job, &env).unwrap_or_else(|why| {
            warn!("re-exec: {}: {why}", self.display(key));
            Vec::new()
        });
        let mut gate = None;
        if let (true, Some(saved)) = (super::has_gate(&job), &saved.gate) {
            let verdict = self.weigh_gate(key, &job);
            let open_since = match (&verdict, saved.open_for_ms) {
                (Verdict::Open, Some(open)) => {
                    let open = Duration::from_millis(open);
                    Some((
                        now.checked_sub(open).unwrap_or(now),
                        wall - jiff::SignedDuration::try_from(open).unwrap_or_default(),
                    ))
                }
                (Verdict::Open, None) => Some((now, wall)),
                _ => None,
            };
            let expires = saved.expires_in_ms.map(|left| {
                let left = Duration::from_millis(left);
                let serial = self.instance(key).map_or(0, |instance| instance.serial);
                let id = self.arm(
                    left,
                    Deadline::GateExpired {
                        key: key.clone(),
                        serial,
                    },
                );
                let at = saved.expires_at.as_deref().and_then(|at| at.parse::<Timestamp>().ok());
                (
                    id,
                    at.unwrap_or(wall + jiff::SignedDuration::try_from(left).unwrap_or_default()),
                )
            });
            gate = Some(Box::new(GateWait {
                verdict,
                open_since,
                expires,
                waived: saved.waived,
            }));
        }
        let gated = gate.as_ref().is_some_and(|gate| !gate.waived);
        let queued = Queued {
            ticket: saved.ticket,
            since: saved.since.parse::<Timestamp>().unwrap_or(wall),
            amounts,
            gate,
            missing: first_missing(&requires).map(Into::into),
            requires: requires.into(),
            granted: false,
            now: saved.now,
            refusal: None,
        };
        let Some(instance) = self.instance_mut(key) else { return };
        instance.queued = Some(Box::new(queued));
        self.admission.queue.insert(saved.ticket, key.clone());
        self.admission.next_ticket = self.admission.next_ticket.max(saved.ticket);
        if gated {
            self.admission.gated.insert(saved.ticket);
            self.schedule_gate_tick();
        }
        // Looked at again once everything is back: ready, it takes its place in its lines.
        self.admission.recheck.push(saved.ticket);
    }
}
