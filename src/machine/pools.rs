//! Resource pools: how much of each pool the running instances hold, and the line of starts
//! waiting for room, first come, first served.
//!
//! A start that needs several pools takes all its amounts at once or none. The line is
//! strict: a start is admitted only when it is the first in the line of every pool it
//! needs and each has room, so a later start never passes an earlier one in a pool they
//! share, however little it asks for, and no start waits forever behind later ones: the
//! first in line waits only for holders to end, and every holder of a pool it waits for
//! ends in time or is stopped. The price is that room may stay unused while the first in
//! line waits for more than there is.
//!
//! Starts in line are named by ticket, a number that grows with each start queued, so the
//! order of tickets is the order of arrival. What a release costs does not grow with the
//! length of the line: it looks at the first of each pool it touched.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The maximum of a pool no daemon file declares.
pub const UNDECLARED_MAX: f64 = 1.0;

/// What a start takes: an amount of each of its pools.
pub type Amounts = Box<[(PoolId, f64)]>;

/// A pool, by its place in the ledger.
pub type PoolId = u32;

/// A little room for the sums of fractions: 0.1 + 0.2 fits in 0.3.
const EPSILON: f64 = 1e-9;

/// One pool.
#[derive(Clone, Debug)]
pub struct Pool<H> {
    pub name: String,
    pub max: f64,
    /// Declared by a daemon file (else its maximum is [`UNDECLARED_MAX`]).
    pub declared: bool,
    /// The sum of what its holders hold.
    pub used: f64,
    /// Who holds how much.
    pub holders: BTreeMap<H, f64>,
    /// The tickets of the starts waiting for it, in order.
    pub line: BTreeSet<u64>,
}

impl<H> Pool<H> {
    fn has_room(&self, amount: f64) -> bool {
        self.used + amount <= self.max + EPSILON
    }
}

/// Every pool, and the claims of the starts in line.
#[derive(Clone, Debug)]
pub struct Pools<H> {
    pools: Vec<Pool<H>>,
    by_name: HashMap<String, PoolId>,
    /// What each start in line asks for, by ticket.
    claims: BTreeMap<u64, Amounts>,
}

impl<H> Default for Pools<H> {
    fn default() -> Self {
        Pools {
            pools: Vec::new(),
            by_name: HashMap::new(),
            claims: BTreeMap::new(),
        }
    }
}

impl<H: Ord + Clone> Pools<H> {
    /// Sets the maxima the daemon files declare; a pool declared before and not now goes
    /// back to [`UNDECLARED_MAX`]. A lower maximum stops no holder: it admits nothing more
    /// until there is room.
    pub fn declare<'a>(&mut self, declared: impl IntoIterator<Item = (&'a str, f64)>) {
        for pool in &mut self.pools {
            pool.declared = false;
            pool.max = UNDECLARED_MAX;
        }
        for (name, max) in declared {
            let id = self.id(name);
            let pool = &mut self.pools[id as usize];
            pool.max = max;
            pool.declared = true;
        }
    }

    /// A pool by name, made (undeclared) on first use.
    pub fn id(&mut self, name: &str) -> PoolId {
        if let Some(id) = self.by_name.get(name) {
            return *id;
        }
        let id = self.pools.len() as PoolId;
        self.pools.push(Pool {
            name: name.to_string(),
            max: UNDECLARED_MAX,
            declared: false,
            used: 0.0,
            holders: BTreeMap::new(),
            line: BTreeSet::new(),
        });
        self.by_name.insert(name.to_string(), id);
        id
    }

    pub fn get(&self, id: PoolId) -> &Pool<H> {
        &self.pools[id as usize]
    }

    /// Every pool, in the order they were first named.
    pub fn iter(&self) -> impl Iterator<Item = (PoolId, &Pool<H>)> {
        self.pools.iter().enumerate().map(|(id, pool)| (id as PoolId, pool))
    }

    /// Whether `amounts` can be taken now by a start that is not in line: every pool has
    /// room, and nobody waits in its line.
    pub fn fits_now(&self, amounts: &[(PoolId, f64)]) -> bool {
        amounts.iter().all(|(id, amount)| {
            let pool = self.get(*id);
            pool.line.is_empty() && pool.has_room(*amount)
        })
    }

    /// The pools whose maximum is less than what `amounts` asks of them: the start could
    /// never be admitted.
    pub fn too_large(&self, amounts: &[(PoolId, f64)]) -> Option<(PoolId, f64)> {
        amounts
            .iter()
            .copied()
            .find(|(id, amount)| *amount > self.get(*id).max + EPSILON)
    }

    /// `holder` takes its amounts.
    pub fn take(&mut self, holder: &H, amounts: &[(PoolId, f64)]) {
        for (id, amount) in amounts {
            let pool = &mut self.pools[*id as usize];
            pool.used += amount;
            *pool.holders.entry(holder.clone()).or_insert(0.0) += amount;
        }
    }

    /// `holder` gives back what it holds; returns the pools that have more room now.
    pub fn release(&mut self, holder: &H) -> Vec<PoolId> {
        let mut freed = Vec::new();
        for (id, pool) in self.pools.iter_mut().enumerate() {
            if let Some(amount) = pool.holders.remove(holder) {
                pool.used = (pool.used - amount).max(0.0);
                if pool.holders.is_empty() {
                    // No drift from sums of fractions.
                    pool.used = 0.0;
                }
                freed.push(id as PoolId);
            }
        }
        freed
    }

    /// A start joins the line of each of its pools.
    pub fn wait(&mut self, ticket: u64, amounts: Amounts) {
        for (id, _) in amounts.iter() {
            self.pools[*id as usize].line.insert(ticket);
        }
        self.claims.insert(ticket, amounts);
    }

    /// A start leaves the lines (it was stopped, or its gate or file is no longer there);
    /// returns the pools whose line now has another first.
    pub fn leave(&mut self, ticket: u64) -> Vec<PoolId> {
        let Some(amounts) = self.claims.remove(&ticket) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for (id, _) in amounts.iter() {
            let line = &mut self.pools[*id as usize].line;
            if line.first() == Some(&ticket) {
                changed.push(*id);
            }
            line.remove(&ticket);
        }
        changed
    }

    /// Whether a start is in line.
    pub fn is_waiting(&self, ticket: u64) -> bool {
        self.claims.contains_key(&ticket)
    }

    /// How many wait ahead of `ticket` in `pool`'s line.
    pub fn ahead(&self, pool: PoolId, ticket: u64) -> usize {
        self.get(pool).line.range(..ticket).count()
    }

    /// The next start that can be admitted now that `pools` have room, or another first in
    /// line: the first in line of one of them that is first in line of all its pools, each
    /// with room for it. It leaves the lines; the caller takes its amounts for it, adds its
    /// pools to `pools` (they have another first now) and asks again with all of them, until
    /// none is admitted: one admission must not hide another in a pool it did not touch.
    pub fn next_admitted(&mut self, pools: &[PoolId]) -> Option<(u64, Amounts)> {
        let mut firsts: Vec<u64> = pools
            .iter()
            .filter_map(|id| self.get(*id).line.first().copied())
            .collect();
        firsts.sort_unstable();
        firsts.dedup();
        let ticket = firsts.into_iter().find(|ticket| {
            self.claims[ticket].iter().all(|(id, amount)| {
                let pool = self.get(*id);
                pool.line.first() == Some(ticket) && pool.has_room(*amount)
            })
        })?;
        let amounts = self.claims.remove(&ticket)?;
        for (id, _) in amounts.iter() {
            self.pools[*id as usize].line.remove(&ticket);
        }
        Some((ticket, amounts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amounts(pools: &mut Pools<&'static str>, asks: &[(&str, f64)]) -> Amounts {
        asks.iter().map(|(name, amount)| (pools.id(name), *amount)).collect()
    }

    /// Admits in order every start that can go now that `pools` have room, taking for it.
    fn admit_all(
        pools: &mut Pools<&'static str>,
        touched: &[PoolId],
        names: &BTreeMap<u64, &'static str>,
    ) -> Vec<&'static str> {
        let mut admitted = Vec::new();
        let mut touched = touched.to_vec();
        while let Some((ticket, amounts)) = pools.next_admitted(&touched) {
            let holder = names[&ticket];
            pools.take(&holder, &amounts);
            admitted.push(holder);
            touched.extend(amounts.iter().map(|(id, _)| *id));
        }
        admitted
    }

    #[test]
    fn undeclared_pools_hold_one_and_declarations_apply_at_reload() {
        let mut pools: Pools<&str> = Pools::default();
        let cpu = pools.id("cpu");
        assert_eq!(pools.get(cpu).max, 1.0);
        pools.declare([("cpu", 4.0), ("gpu", 2.0)]);
        assert_eq!((pools.get(cpu).max, pools.get(cpu).declared), (4.0, true));
        // Declared no more: back to 1.0, and what is held stays held.
        pools.take(&"a", &[(cpu, 3.0)]);
        pools.declare([("gpu", 2.0)]);
        assert_eq!((pools.get(cpu).max, pools.get(cpu).used), (1.0, 3.0));
        assert!(!pools.fits_now(&[(cpu, 0.5)]));
        assert_eq!(pools.too_large(&[(cpu, 2.0)]), Some((cpu, 2.0)));
    }

    #[test]
    fn a_release_admits_the_first_in_line_and_never_a_later_smaller_one() {
        let mut pools: Pools<&str> = Pools::default();
        pools.declare([("cpu", 4.0)]);
        let names: BTreeMap<u64, &str> = [(1, "big"), (2, "small"), (3, "tiny")].into();
        let running = amounts(&mut pools, &[("cpu", 3.0)]);
        pools.take(&"running", &running);
        // 1 is free: `big` (2) waits, and `small` (1) may not pass it.
        let big = amounts(&mut pools, &[("cpu", 2.0)]);
        assert!(!pools.fits_now(&big));
        pools.wait(1, big);
        let small = amounts(&mut pools, &[("cpu", 1.0)]);
        assert!(!pools.fits_now(&small), "someone waits");
        pools.wait(2, small);
        let tiny = amounts(&mut pools, &[("cpu", 0.5)]);
        pools.wait(3, tiny);
        let cpu = pools.id("cpu");
        assert!(admit_all(&mut pools, &[cpu], &names).is_empty());
        assert_eq!(pools.ahead(cpu, 3), 2);
        // `running` ends: 4 free, `big` then `small` then `tiny` (2 + 1 + 0.5).
        let freed = pools.release(&"running");
        assert_eq!(admit_all(&mut pools, &freed, &names), ["big", "small", "tiny"]);
        assert_eq!(pools.get(cpu).used, 3.5);
    }

    #[test]
    fn several_pools_are_taken_all_at_once_or_not_at_all() {
        let mut pools: Pools<&str> = Pools::default();
        pools.declare([("cpu", 2.0), ("gpu", 1.0)]);
        let names: BTreeMap<u64, &str> = [(1, "both"), (2, "cpu-only")].into();
        let gpu_job = amounts(&mut pools, &[("gpu", 1.0)]);
        pools.take(&"gpu-holder", &gpu_job);
        let both = amounts(&mut pools, &[("cpu", 1.0), ("gpu", 1.0)]);
        assert!(!pools.fits_now(&both));
        pools.wait(1, both);
        // `cpu-only` arrives later and needs cpu, where `both` is first: it waits too,
        // although cpu has room (strict order), and `both` takes no cpu meanwhile.
        let cpu_only = amounts(&mut pools, &[("cpu", 1.0)]);
        assert!(!pools.fits_now(&cpu_only));
        pools.wait(2, cpu_only);
        let cpu = pools.id("cpu");
        assert_eq!(pools.get(cpu).used, 0.0);
        assert!(admit_all(&mut pools, &[cpu], &names).is_empty());
        let freed = pools.release(&"gpu-holder");
        assert_eq!(admit_all(&mut pools, &freed, &names), ["both", "cpu-only"]);
    }

    #[test]
    fn leaving_the_line_lets_the_next_one_go() {
        let mut pools: Pools<&str> = Pools::default();
        let names: BTreeMap<u64, &str> = [(1, "first"), (2, "second")].into();
        let holder = amounts(&mut pools, &[("lock", 0.5)]);
        pools.take(&"holder", &holder);
        let first = amounts(&mut pools, &[("lock", 1.0)]);
        pools.wait(1, first);
        let second = amounts(&mut pools, &[("lock", 0.5)]);
        pools.wait(2, second);
        assert!(pools.is_waiting(1));
        let changed = pools.leave(1);
        assert!(!pools.is_waiting(1));
        assert_eq!(admit_all(&mut pools, &changed, &names), ["second"]);
        assert!(pools.leave(1).is_empty(), "leaving twice is harmless");
    }

    #[test]
    fn fractions_add_up_without_drift() {
        let mut pools: Pools<u32> = Pools::default();
        let cpu = pools.id("cpu");
        for holder in 0..10 {
            assert!(pools.fits_now(&[(cpu, 0.1)]), "holder {holder}");
            pools.take(&holder, &[(cpu, 0.1)]);
        }
        assert!(!pools.fits_now(&[(cpu, 0.1)]));
        for holder in 0..10 {
            pools.release(&holder);
        }
        assert_eq!(pools.get(cpu).used, 0.0);
    }

    /// `holder` ends, and each start its room lets go holds in its turn.
    fn release(pools: &mut Pools<u64>, holder: u64, holding: &mut Vec<u64>, admitted: &mut Vec<u64>) {
        let mut touched = pools.release(&holder);
        while let Some((next, amounts)) = pools.next_admitted(&touched) {
            pools.take(&next, &amounts);
            holding.push(next);
            admitted.push(next);
            touched.extend(amounts.iter().map(|(id, _)| *id));
        }
    }

    /// Over random arrivals, amounts and releases: the pools never hold more than their
    /// maximum, starts are admitted in ticket order within each pool, and every start is
    /// admitted in the end.
    #[test]
    fn every_start_is_admitted_in_order_and_no_pool_overflows() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut random = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for _ in 0..50 {
            let mut pools: Pools<u64> = Pools::default();
            pools.declare([("a", 3.0), ("b", 2.0)]);
            let (a, b) = (pools.id("a"), pools.id("b"));
            let mut holding: Vec<u64> = Vec::new();
            let mut admitted: Vec<u64> = Vec::new();
            let mut asked: BTreeMap<u64, Vec<PoolId>> = BTreeMap::new();
            for ticket in 0..200u64 {
                let mut claim = Vec::new();
                if random(3) != 0 {
                    claim.push((a, 1.0 + random(3) as f64));
                }
                if claim.is_empty() || random(2) == 0 {
                    claim.push((b, 1.0 + random(2) as f64));
                }
                let claim: Amounts = claim.into();
                asked.insert(ticket, claim.iter().map(|(id, _)| *id).collect());
                if pools.fits_now(&claim) {
                    pools.take(&ticket, &claim);
                    holding.push(ticket);
                    admitted.push(ticket);
                } else {
                    pools.wait(ticket, claim);
                }
                // Sometimes a holder ends.
                while !holding.is_empty() && random(2) == 0 {
                    let holder = holding.remove(random(holding.len() as u64) as usize);
                    release(&mut pools, holder, &mut holding, &mut admitted);
                }
                for id in [a, b] {
                    let pool = pools.get(id);
                    assert!(pool.used <= pool.max + EPSILON, "{} holds {}", pool.name, pool.used);
                }
            }
            // Every holder ends: everything waiting goes.
            while let Some(holder) = holding.pop() {
                release(&mut pools, holder, &mut holding, &mut admitted);
            }
            assert_eq!(admitted.len(), 200);
            // Within each pool, tickets were admitted in order.
            for id in [a, b] {
                let order: Vec<u64> = admitted.iter().copied().filter(|t| asked[t].contains(&id)).collect();
                assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
            }
        }
    }
}
