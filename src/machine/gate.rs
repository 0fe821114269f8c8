//! Gate conditions: whether `gate load1 < 2 and memory some avg60 < 10` admits a start,
//! given the machine's figures, and in words why not.
//!
//! The figures come from the runtime, read once for all gates (see `sys::metrics`); here a
//! condition is only weighed. A figure that cannot be had (no pressure information on this
//! kernel, no such interface) makes the condition unknown: the start waits, and the reason
//! says which figure is missing.

use crate::syntax::ast::{CompareOp, GateExpr, Metric, PressureResource};

/// Where the figures come from.
pub trait Figures {
    /// The metric's value now, or why there is none.
    fn value(&self, metric: &Metric) -> Result<f64, String>;
}

/// What a condition says.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Open,
    /// Shut, and why: `load1 is 3.20, needs < 2`.
    Shut(String),
    /// A figure is missing: the start cannot be weighed.
    Unknown(String),
}

/// Weighs a condition. `and` is open when every term is (shut or unknown by its first term
/// that is not); `or` is open when any term is (else shut, by every term, unless one is
/// unknown).
pub fn weigh(expr: &GateExpr, figures: &impl Figures) -> Verdict {
    match expr {
        GateExpr::Compare { metric, op, value } => match figures.value(metric) {
            Err(why) => Verdict::Unknown(why),
            Ok(now) if holds(now, *op, *value) => Verdict::Open,
            Ok(now) => Verdict::Shut(format!(
                "{} is {}, needs {} {}",
                metric_name(metric),
                show(metric, now),
                op.symbol(),
                show_limit(metric, *value)
            )),
        },
        GateExpr::And { terms } => terms
            .iter()
            .map(|term| weigh(term, figures))
            .find(|verdict| *verdict != Verdict::Open)
            .unwrap_or(Verdict::Open),
        GateExpr::Or { terms } => {
            let mut shut = Vec::new();
            let mut unknown = None;
            for term in terms {
                match weigh(term, figures) {
                    Verdict::Open => return Verdict::Open,
                    Verdict::Shut(why) => shut.push(why),
                    Verdict::Unknown(why) => unknown = unknown.or(Some(why)),
                }
            }
            match unknown {
                Some(why) => Verdict::Unknown(why),
                None => Verdict::Shut(shut.join(", and ")),
            }
        }
    }
}

fn holds(now: f64, op: CompareOp, value: f64) -> bool {
    match op {
        CompareOp::Lt => now < value,
        CompareOp::Le => now <= value,
        CompareOp::Gt => now > value,
        CompareOp::Ge => now >= value,
    }
}

/// Every metric a condition reads.
pub fn metrics(expr: &GateExpr, out: &mut Vec<Metric>) {
    match expr {
        GateExpr::Compare { metric, .. } => {
            if !out.contains(metric) {
                out.push(metric.clone());
            }
        }
        GateExpr::And { terms } | GateExpr::Or { terms } => {
            for term in terms {
                metrics(term, out);
            }
        }
    }
}

/// A metric as the job file writes it.
pub fn metric_name(metric: &Metric) -> String {
    match metric {
        Metric::Load { minutes } => format!("load{minutes}"),
        Metric::Pressure { resource, full, window } => format!(
            "{} {} avg{window}",
            pressure_name(*resource),
            if *full { "full" } else { "some" }
        ),
        Metric::Net { interface, tx } => {
            let direction = if *tx { "tx" } else { "rx" };
            match interface {
                Some(interface) => format!("net {interface} {direction}"),
                None => format!("net {direction}"),
            }
        }
    }
}

pub fn pressure_name(resource: PressureResource) -> &'static str {
    match resource {
        PressureResource::Cpu => "cpu",
        PressureResource::Io => "io",
        PressureResource::Memory => "memory",
    }
}

/// A limit as the job file gives it: `2`, `20%`, `10.0 MB/s`.
fn show_limit(metric: &Metric, value: f64) -> String {
    match metric {
        Metric::Load { .. } => format!("{value}"),
        Metric::Pressure { .. } => format!("{value}%"),
        Metric::Net { .. } => show(metric, value),
    }
}

/// A figure with the precision and unit its metric has: `3.20`, `12.50%`, `1.2 MB/s`.
fn show(metric: &Metric, value: f64) -> String {
    match metric {
        Metric::Load { .. } => format!("{value:.2}"),
        Metric::Pressure { .. } => format!("{value:.2}%"),
        Metric::Net { .. } => {
            let (scaled, unit) = match value {
                v if v >= 1e9 => (v / 1e9, "GB/s"),
                v if v >= 1e6 => (v / 1e6, "MB/s"),
                v if v >= 1e3 => (v / 1e3, "kB/s"),
                v => (v, "B/s"),
            };
            format!("{scaled:.1} {unit}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(Metric, Result<f64, String>)>);

    impl Figures for Fixed {
        fn value(&self, metric: &Metric) -> Result<f64, String> {
            self.0
                .iter()
                .find(|(known, _)| known == metric)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| Err(format!("no {}", metric_name(metric))))
        }
    }

    fn condition(text: &str) -> GateExpr {
        let (file, errors) = crate::syntax::parse_file(&format!("gate {text}\n"));
        assert!(errors.is_empty(), "{errors:?}");
        match &file.stanzas[0].node {
            crate::syntax::Stanza::Gate(expr) => expr.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn load(minutes: u8) -> Metric {
        Metric::Load { minutes }
    }

    #[test]
    fn a_comparison_says_the_figure_that_shuts_it() {
        let figures = Fixed(vec![(load(1), Ok(3.2))]);
        assert_eq!(
            weigh(&condition("load1 < 2"), &figures),
            Verdict::Shut("load1 is 3.20, needs < 2".into())
        );
        assert_eq!(weigh(&condition("load1 >= 3.2"), &figures), Verdict::Open);
        assert_eq!(
            weigh(&condition("load1 > 3.2"), &figures),
            Verdict::Shut("load1 is 3.20, needs > 3.2".into())
        );
        assert_eq!(weigh(&condition("load1 <= 3.2"), &figures), Verdict::Open);
    }

    #[test]
    fn and_or_and_missing_figures() {
        let memory = Metric::Pressure {
            resource: PressureResource::Memory,
            full: false,
            window: 60,
        };
        let figures = Fixed(vec![
            (load(1), Ok(1.0)),
            (load(5), Ok(4.0)),
            (memory.clone(), Err("pressure/memory: No such file or directory".into())),
        ]);
        assert_eq!(weigh(&condition("load1 < 2 and load5 < 5"), &figures), Verdict::Open);
        assert_eq!(
            weigh(&condition("load1 < 2 and load5 < 3"), &figures),
            Verdict::Shut("load5 is 4.00, needs < 3".into())
        );
        assert_eq!(weigh(&condition("load1 > 2 or load5 < 5"), &figures), Verdict::Open);
        assert_eq!(
            weigh(&condition("load1 > 2 or load5 < 3"), &figures),
            Verdict::Shut("load1 is 1.00, needs > 2, and load5 is 4.00, needs < 3".into())
        );
        assert_eq!(
            weigh(&condition("load1 < 2 and memory some avg60 < 10"), &figures),
            Verdict::Unknown("pressure/memory: No such file or directory".into())
        );
        // An open term admits whatever the others say.
        assert_eq!(
            weigh(&condition("load1 < 2 or memory some avg60 < 10"), &figures),
            Verdict::Open
        );
        let mut read = Vec::new();
        metrics(
            &condition("(load1 < 2 or load1 < 3) and memory some avg60 < 10"),
            &mut read,
        );
        assert_eq!(read, [load(1), memory]);
    }

    #[test]
    fn figures_are_shown_in_their_units() {
        let net = Metric::Net {
            interface: Some("eth0".into()),
            tx: true,
        };
        let figures = Fixed(vec![(net, Ok(12_500_000.0))]);
        assert_eq!(
            weigh(&condition("net eth0 tx < 10MB/s"), &figures),
            Verdict::Shut("net eth0 tx is 12.5 MB/s, needs < 10.0 MB/s".into())
        );
        let cpu = Metric::Pressure {
            resource: PressureResource::Cpu,
            full: true,
            window: 10,
        };
        let figures = Fixed(vec![(cpu, Ok(25.5))]);
        assert_eq!(
            weigh(&condition("cpu full avg10 < 20%"), &figures),
            Verdict::Shut("cpu full avg10 is 25.50%, needs < 20%".into())
        );
    }
}
