//! The machine's figures that gates weigh, from a procfs root (`/proc`, or the directory
//! `uprise --procfs DIR` names): `loadavg`, `pressure/cpu|io|memory`, `net/dev`.
//! Reading and parsing are apart, so that the parsers are tested on text.

use std::io::Read;
use std::path::Path;

/// The most read of one file: `net/dev` on a machine with many interfaces is the largest.
const MAX_READ: u64 = 1 << 20;

/// Reads `root/file`, bounded; errors name the file.
pub fn read(root: &Path, file: &str) -> Result<String, String> {
    let path = root.join(file);
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|opened| opened.take(MAX_READ).read_to_string(&mut text))
        .map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(text)
}

/// `loadavg`: the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(|field| field.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// A `pressure/…` file: the `some` and (when the kernel gives it) `full` lines, each with
/// its averages over 10, 60 and 300 seconds, in percent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pressure {
    pub some: Option<[f64; 3]>,
    pub full: Option<[f64; 3]>,
}

impl Pressure {
    /// The average over `window` seconds (10, 60 or 300) of the `some` or `full` line.
    pub fn get(&self, full: bool, window: u16) -> Option<f64> {
        let line = if full { self.full } else { self.some }?;
        match window {
            10 => Some(line[0]),
            60 => Some(line[1]),
            300 => Some(line[2]),
            _ => None,
        }
    }
}

pub fn parse_pressure(text: &str) -> Pressure {
    let mut pressure = Pressure::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            Some("some") => &mut pressure.some,
            Some("full") => &mut pressure.full,
            _ => continue,
        };
        let mut averages = [None; 3];
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let at = match key {
                "avg10" => 0,
                "avg60" => 1,
                "avg300" => 2,
                _ => continue,
            };
            averages[at] = value.parse::<f64>().ok();
        }
        if let [Some(a), Some(b), Some(c)] = averages {
            *slot = Some([a, b, c]);
        }
    }
    pressure
}

/// `net/dev`: each interface's total bytes received and sent.
pub fn parse_net_dev(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let counters: Vec<u64> = counters
                .split_whitespace()
                .map(|field| field.parse().ok())
                .collect::<Option<_>>()?;
            // Received: bytes packets errs drop fifo frame compressed multicast; then sent.
            Some((name.trim().to_string(), *counters.first()?, *counters.get(8)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg() {
        assert_eq!(parse_loadavg("0.52 1.58 2.59 1/467 12345\n"), Some([0.52, 1.58, 2.59]));
        assert_eq!(parse_loadavg("5\n"), None);
        assert_eq!(parse_loadavg("x y z"), None);
    }

    #[test]
    fn pressure() {
        let text = "some avg10=1.50 avg60=2.25 avg300=0.00 total=12\nfull avg10=0.10 avg60=0.20 avg300=0.30 total=3\n";
        let pressure = parse_pressure(text);
        assert_eq!(pressure.get(false, 10), Some(1.5));
        assert_eq!(pressure.get(false, 60), Some(2.25));
        assert_eq!(pressure.get(true, 300), Some(0.3));
        // The cpu file of older kernels has no `full` line.
        let pressure = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        assert_eq!(pressure.get(true, 10), None);
        assert_eq!(parse_pressure("garbage"), Pressure::default());
    }

    #[test]
    fn net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  \
                    eth0: 52000 400 0 0 0 0 0 0 9000 80 0 0 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(text),
            [("lo".to_string(), 1000, 1000), ("eth0".to_string(), 52000, 9000)]
        );
    }
}
