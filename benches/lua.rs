//! The Lua sandbox's costs, in-process. Run with `cargo bench --bench lua`. Prints key=value
//! lines; asserts nothing about speed.
//!
//! - `hook_run_us`: one hook run (enter the sandbox, read `job.name`, `job.instance` and one
//!   variable, build a string, return), the chunk compiled already: the median of 20 rounds
//!   of 10,000 runs.
//! - `hook_emit_run_us`: the same with an `emit` of one variable.
//! - `runaway_cut_off_ms`: CPU time until `while true do end` is cut off at the default
//!   budget (1,000,000 instructions), the median of 20.
//! - `per_job_bytes`: the Lua state's growth per job for 1,000 jobs each with its own
//!   globals and one compiled hook (the daemon's PSS with such jobs is measured by
//!   `benches/lua-pss.py`).

use std::hint::black_box;
use std::time::Instant;

use uprise::lua::sandbox::{Api, DEFAULT_BUDGET, DEFAULT_MEMORY, Run, Sandbox};

struct Quiet;

impl Api for Quiet {
    fn status(&self, _job: &str, _instance: &str) -> Option<(String, String, Option<i32>)> {
        None
    }
    fn metric(&self, _name: &str) -> Result<f64, String> {
        Ok(0.0)
    }
    fn now(&self) -> f64 {
        0.0
    }
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: written above.
    let usage = unsafe { usage.assume_init() };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn run(sandbox: &Sandbox, job: &str, code: &str, env: &[String]) -> bool {
    let run = Run {
        job,
        instance: "i1",
        what: "hook started",
        code,
        first_line: 1,
        env,
    };
    sandbox.run(&run, &Quiet).result.is_ok()
}

fn per_run_us(sandbox: &Sandbox, code: &str, rounds: usize) -> f64 {
    let env: Vec<String> = (0..40)
        .map(|n| format!("VAR{n}=value{n}"))
        .chain(["PORT=8080".to_string()])
        .collect();
    assert!(run(sandbox, "web", code, &env));
    let rounds: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..10_000 {
                black_box(run(sandbox, "web", code, &env));
            }
            started.elapsed().as_secs_f64() * 1e6 / 10_000.0
        })
        .collect();
    median(rounds)
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this runs once, small.
    let rounds = if std::env::args().any(|arg| arg == "--bench") {
        20
    } else {
        1
    };
    let sandbox = Sandbox::new(DEFAULT_BUDGET, DEFAULT_MEMORY).expect("a sandbox");
    let plain = "local seen = job.name .. '/' .. job.instance .. ':' .. (job.env('PORT') or '') return #seen > 0";
    println!("hook_run_us={:.2}", per_run_us(&sandbox, plain, rounds));
    let emitting = "emit('web-up', {PORT = job.env('PORT')})";
    println!("hook_emit_run_us={:.2}", per_run_us(&sandbox, emitting, rounds));
    let cut: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = cpu_seconds();
            assert!(!run(&sandbox, "spin", "while true do end", &[]));
            (cpu_seconds() - started) * 1e3
        })
        .collect();
    println!("runaway_cut_off_ms={:.2}", median(cut));
    let fresh = Sandbox::new(DEFAULT_BUDGET, DEFAULT_MEMORY).expect("a sandbox");
    assert!(run(&fresh, "warm", "return true", &[]));
    let before = fresh.used_memory();
    for n in 0..1000 {
        let code = format!("count = (count or 0) + 1 log(job.name .. ' ' .. count .. ' {n}')");
        assert!(run(&fresh, &format!("job{n}"), &code, &[]));
    }
    println!("per_job_bytes={}", (fresh.used_memory() - before) / 1000);
    println!("state_bytes_1000_jobs={}", fresh.used_memory());
}
