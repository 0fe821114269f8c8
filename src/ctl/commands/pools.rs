//! `pools [--json]`: every resource pool, one line each: its maximum, how much is in use,
//! who holds it and who waits for it, first first.

use std::io::Write;

use crate::control::proto::{PoolStatus, Reply, Request};

use super::args::{Parsed, no_more};
use super::{Failure, gather, print_json};

/// `pools`: asks for the pools and prints them (or JSON).
pub(super) fn run_pools(
    args: &[String],
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    no_more(args)?;
    let pools = gather(parsed, env, &Request::Pools, |reply| match reply {
        Reply::Pools { pools } => Some(pools),
        _ => None,
    })?;
    if parsed.json {
        print_json(out, &pools)?;
    } else {
        let _ = out.write_all(text(&pools).as_bytes());
    }
    Ok(())
}

/// `cpu 3.5/4: backup 2, build (x) 1.5; queue: train (a) 2, train (b) 1`.
fn text(pools: &[PoolStatus]) -> String {
    if pools.is_empty() {
        return "no pools\n".to_string();
    }
    let list = |entries: &[(String, f64)]| -> String {
        entries
            .iter()
            .map(|(who, amount)| format!("{who} {amount}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = String::new();
    for pool in pools {
        let declared = if pool.declared { "" } else { " (undeclared)" };
        text.push_str(&format!("{} {}/{}{declared}", pool.pool, pool.used, pool.max));
        if !pool.holders.is_empty() {
            text.push_str(&format!(": {}", list(&pool.holders)));
        }
        if !pool.queue.is_empty() {
            text.push_str(&format!("; queue: {}", list(&pool.queue)));
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_pool_with_its_holders_and_queue() {
        assert_eq!(text(&[]), "no pools\n");
        let pools = [
            PoolStatus {
                pool: "cpu".into(),
                max: 4.0,
                declared: true,
                used: 3.5,
                holders: vec![("backup".into(), 2.0), ("build (x)".into(), 1.5)],
                queue: vec![("train (a)".into(), 2.0)],
            },
            PoolStatus {
                pool: "lock".into(),
                max: 1.0,
                declared: false,
                used: 0.0,
                holders: Vec::new(),
                queue: Vec::new(),
            },
        ];
        assert_eq!(
            text(&pools),
            "cpu 3.5/4: backup 2, build (x) 1.5; queue: train (a) 2\nlock 0/1 (undeclared)\n"
        );
    }
}
