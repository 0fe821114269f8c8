//! `Job`: one job class with its stanzas merged, the way the daemon and `check --json` see it.
//!
//! Merging follows Upstart: scalar stanzas are last-wins; `env`, `export`, `emits`,
//! `normal exit`, `cgroup` and `limit` (per resource) accumulate; `manual` discards the
//! `start on` seen before it. The extensions follow the same two rules (documented per stanza
//! in docs/language.md).

use crate::model::small_map::SmallMap;
use crate::model::sparse::{Empty, Sparse, empty};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::syntax::ast::*;

/// How `reload` acts on a running job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Reload {
    Signal { signal: i32 },
    Command { command: Command },
}

/// Admission gate settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub condition: Option<GateExpr>,
    pub lua: Option<LuaCode>,
    pub hold: Option<Seconds>,
    pub wait: Option<Seconds>,
    pub expire: Option<GateExpire>,
}

impl Gate {
    pub fn is_empty(&self) -> bool {
        *self == Gate::default()
    }
}

/// A Lua hook on job events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub events: Vec<HookEvent>,
    pub lua: LuaCode,
}

/// A file that must exist before the job may start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    pub kind: PathKind,
    pub path: String,
}

/// The text a job was read from, kept so that a re-exec can hand the definition over as
/// written (cheaper than any other encoding) and rebuild it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSource {
    pub file: String,
    pub text: std::sync::Arc<str>,
    pub override_file: Option<String>,
    pub override_text: Option<std::sync::Arc<str>>,
    /// The name the file gives (the job's name, or its prefix for a block).
    pub base: String,
}

/// Where a job was read from. Two jobs are equal whatever their provenance: a file edited
/// without changing its meaning does not make a new definition.
#[derive(Clone, Debug, Default)]
pub struct Provenance(pub Option<std::sync::Arc<JobSource>>);

impl PartialEq for Provenance {
    fn eq(&self, _other: &Provenance) -> bool {
        true
    }
}

/// Upstart's default respawn limit: 10 respawns in 5 seconds.
pub const DEFAULT_RESPAWN_LIMIT: RespawnLimit = RespawnLimit::Limit {
    count: 10,
    interval_secs: 5,
};

/// One job class.
///
/// The stanzas most jobs set are fields of their own; the rest are in four groups, each a
/// [`Sparse`] (a null pointer until one of its stanzas is set): `about`, `context`,
/// `lifecycle` and `ext`. In JSON every field is at the top level, as before the grouping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Path-derived name, e.g. `net/apache`, or `stack/web` for a block in `stack.conf`.
    pub name: String,
    /// The `.conf` file it came from.
    pub file: String,
    #[serde(flatten)]
    pub about: Sparse<About>,
    /// Instance name template; empty for a singleton.
    pub instance: String,
    pub start_on: Option<EventExpr>,
    pub stop_on: Option<EventExpr>,
    pub processes: SmallMap<ProcessKind, Command>,
    pub task: bool,
    pub watershed: bool,
    pub respawn: bool,
    pub respawn_limit: RespawnLimit,
    pub normal_exit: Vec<ExitItem>,
    pub env: Vec<EnvEntry>,
    pub expect: Expect,
    pub pid_timeout: Seconds,
    pub kill_timeout: Seconds,
    pub kill_signal: i32,
    #[serde(flatten)]
    pub lifecycle: Sparse<Lifecycle>,
    pub console: Console,
    pub umask: u32,
    #[serde(flatten)]
    pub context: Sparse<Context>,
    pub debug: bool,
    #[serde(flatten)]
    pub ext: Sparse<Extensions>,
    /// Where the definition came from; not part of the JSON schema, nor of equality.
    #[serde(skip)]
    pub source: Provenance,
}

/// What a job says about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct About {
    /// The `.override` file merged into it, if any.
    pub override_file: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub version: Option<String>,
    pub usage: Option<String>,
}

/// The less common stanzas of a job's processes and their ending: stage timeouts, the
/// respawn back-off, exported and emitted events, pid files, `kill abandon`, reload, stop
/// and custom actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub process_timeouts: BTreeMap<ProcessKind, Seconds>,
    pub respawn_delay: Option<RespawnDelay>,
    pub export: Vec<String>,
    pub emits: Vec<String>,
    pub pid_file: Option<String>,
    pub kill_abandon: Option<Seconds>,
    pub reload: Reload,
    pub stop_action: Option<Command>,
    pub actions: BTreeMap<String, Command>,
}

/// What a job's processes run in, beyond the umask: priority, limits, root, directory,
/// credentials, AppArmor and cgroups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub nice: Option<i32>,
    pub oom_score: Option<i32>,
    pub limits: BTreeMap<Rlimit, (LimitValue, LimitValue)>,
    pub chroot: Option<String>,
    pub chdir: Option<String>,
    pub setuid: Option<String>,
    pub setgid: Option<String>,
    pub apparmor_load: Option<String>,
    pub apparmor_switch: Option<String>,
    pub cgroups: Vec<Vec<String>>,
}

/// uprise's own stanzas: the admission gate, resource pools, file requirements, Lua hooks
/// and the temporal settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Extensions {
    pub gate: Gate,
    pub uses: BTreeMap<String, Amount>,
    pub requires: Vec<Requirement>,
    pub hooks: Vec<Hook>,
    pub catch_up: bool,
    pub jitter: Option<Seconds>,
    pub timezone: Option<String>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        <Lifecycle as Empty>::empty().clone()
    }
}

empty! {
    About => About {
        override_file: None,
        description: None,
        author: None,
        version: None,
        usage: None,
    },
    Lifecycle => Lifecycle {
        process_timeouts: BTreeMap::new(),
        respawn_delay: None,
        export: Vec::new(),
        emits: Vec::new(),
        pid_file: None,
        kill_abandon: None,
        reload: Reload::Signal { signal: 1 },
        stop_action: None,
        actions: BTreeMap::new(),
    },
    Context => Context {
        nice: None,
        oom_score: None,
        limits: BTreeMap::new(),
        chroot: None,
        chdir: None,
        setuid: None,
        setgid: None,
        apparmor_load: None,
        apparmor_switch: None,
        cgroups: Vec::new(),
    },
    Extensions => Extensions {
        gate: Gate {
            condition: None,
            lua: None,
            hold: None,
            wait: None,
            expire: None,
        },
        uses: BTreeMap::new(),
        requires: Vec::new(),
        hooks: Vec::new(),
        catch_up: false,
        jitter: None,
        timezone: None,
    },
}

impl Job {
    /// A job with Upstart's defaults.
    pub fn new(name: String, file: String) -> Job {
        Job {
            name,
            file,
            about: Sparse::default(),
            instance: String::new(),
            start_on: None,
            stop_on: None,
            processes: SmallMap::new(),
            task: false,
            watershed: false,
            respawn: false,
            respawn_limit: DEFAULT_RESPAWN_LIMIT,
            normal_exit: Vec::new(),
            env: Vec::new(),
            expect: Expect::None,
            pid_timeout: Seconds::from_secs(10),
            kill_timeout: Seconds::from_secs(5),
            kill_signal: 15,
            lifecycle: Sparse::default(),
            console: Console::Auto,
            umask: 0o022,
            context: Sparse::default(),
            debug: false,
            ext: Sparse::default(),
            source: Provenance::default(),
        }
    }

    /// Applies one stanza with Upstart's merge rules.
    pub fn apply(&mut self, stanza: &Stanza) {
        match stanza.clone() {
            Stanza::StartOn(expr) => self.start_on = Some(expr),
            Stanza::StopOn(expr) => self.stop_on = Some(expr),
            Stanza::Manual => self.start_on = None,
            Stanza::Process(kind, command) => {
                self.processes.insert(kind, command);
            }
            Stanza::ProcessTimeout(kind, timeout) => {
                self.lifecycle.process_timeouts.insert(kind, timeout);
            }
            Stanza::Task => self.task = true,
            Stanza::Watershed => self.watershed = true,
            Stanza::Respawn => self.respawn = true,
            Stanza::RespawnLimit(limit) => self.respawn_limit = limit,
            Stanza::RespawnDelay(delay) => self.lifecycle.respawn_delay = Some(delay),
            Stanza::NormalExit(items) => self.normal_exit.extend(items),
            Stanza::Instance(template) => self.instance = template,
            Stanza::Description(text) => self.about.description = Some(text),
            Stanza::Author(text) => self.about.author = Some(text),
            Stanza::Version(text) => self.about.version = Some(text),
            Stanza::Usage(text) => self.about.usage = Some(text),
            Stanza::Emits(names) => self.lifecycle.emits.extend(names),
            Stanza::Env(entry) => self.env.push(entry),
            Stanza::Export(names) => self.lifecycle.export.extend(names),
            Stanza::Expect(expect) => self.expect = expect,
            Stanza::PidFile(path) => self.lifecycle.pid_file = Some(path),
            Stanza::PidTimeout(timeout) => self.pid_timeout = timeout,
            Stanza::KillTimeout(timeout) => self.kill_timeout = timeout,
            Stanza::KillSignal(signal) => self.kill_signal = signal.number,
            Stanza::KillAbandon(after) => self.lifecycle.kill_abandon = Some(after),
            Stanza::ReloadSignal(signal) => self.lifecycle.reload = Reload::Signal { signal: signal.number },
            Stanza::Reload(command) => self.lifecycle.reload = Reload::Command { command },
            Stanza::StopAction(command) => self.lifecycle.stop_action = Some(command),
            Stanza::Action(name, command) => {
                self.lifecycle.actions.insert(name, command);
            }
            Stanza::Console(console) => self.console = console,
            Stanza::Umask(mask) => self.umask = mask,
            Stanza::Nice(nice) => self.context.nice = Some(nice),
            Stanza::OomScore(score) => self.context.oom_score = Some(score),
            Stanza::Limit(resource, soft, hard) => {
                self.context.limits.insert(resource, (soft, hard));
            }
            Stanza::Chroot(dir) => self.context.chroot = Some(dir),
            Stanza::Chdir(dir) => self.context.chdir = Some(dir),
            Stanza::Setuid(user) => self.context.setuid = Some(user),
            Stanza::Setgid(group) => self.context.setgid = Some(group),
            Stanza::ApparmorLoad(profile) => self.context.apparmor_load = Some(profile),
            Stanza::ApparmorSwitch(profile) => self.context.apparmor_switch = Some(profile),
            Stanza::Cgroup(words) => self.context.cgroups.push(words),
            Stanza::Debug => self.debug = true,
            Stanza::Gate(expr) => self.ext.gate.condition = Some(expr),
            Stanza::GateLua(code) => self.ext.gate.lua = Some(code),
            Stanza::GateHold(hold) => self.ext.gate.hold = Some(hold),
            Stanza::GateWait(wait) => self.ext.gate.wait = Some(wait),
            Stanza::GateExpire(expire) => self.ext.gate.expire = Some(expire),
            Stanza::Uses(pool, amount) => {
                self.ext.uses.insert(pool, amount);
            }
            Stanza::Requires(kind, path) => self.ext.requires.push(Requirement { kind, path }),
            Stanza::Hook(events, lua) => self.ext.hooks.push(Hook { events, lua }),
            Stanza::CatchUp => self.ext.catch_up = true,
            Stanza::Jitter(jitter) => self.ext.jitter = Some(jitter),
            Stanza::Timezone(zone) => self.ext.timezone = Some(zone),
        }
    }
}

/// Visits every temporal operand of an expression.
pub fn temporals(expr: &EventExpr, visit: &mut impl FnMut(&Temporal, Span)) {
    match expr {
        EventExpr::And { left, right } | EventExpr::Or { left, right } => {
            temporals(left, visit);
            temporals(right, visit);
        }
        EventExpr::Event(_) => {}
        EventExpr::Temporal { timer, span } => visit(timer, *span),
    }
}

/// Visits every event match of an expression, including those inside `DURATION after EVENT`.
pub fn event_matches<'e>(expr: &'e EventExpr, visit: &mut impl FnMut(&'e EventMatch)) {
    match expr {
        EventExpr::And { left, right } | EventExpr::Or { left, right } => {
            event_matches(left, visit);
            event_matches(right, visit);
        }
        EventExpr::Event(event) => visit(event),
        EventExpr::Temporal {
            timer: Temporal::After { event, .. },
            ..
        } => visit(event),
        EventExpr::Temporal { .. } => {}
    }
}

/// Upstart's fully bracketed rendering of an expression (`show-config`).
pub fn render_expr(expr: &EventExpr) -> String {
    match expr {
        EventExpr::And { left, right } => format!("({} and {})", render_expr(left), render_expr(right)),
        EventExpr::Or { left, right } => format!("({} or {})", render_expr(left), render_expr(right)),
        EventExpr::Event(event) => render_event(event),
        EventExpr::Temporal { timer, .. } => render_temporal(timer),
    }
}

fn render_event(event: &EventMatch) -> String {
    let mut out = event.name.clone();
    for arg in &event.args {
        out.push(' ');
        match arg {
            EventArg::Positional { value } => out.push_str(value),
            EventArg::Equal { key, value } => out.push_str(&format!("{key}={value}")),
            EventArg::NotEqual { key, value } => out.push_str(&format!("{key}!={value}")),
        }
    }
    out
}

/// Renders a duration the way it is written (`1h30m`).
pub fn render_duration(duration: Seconds) -> String {
    let mut millis = duration.millis;
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// Renders a temporal operand in its canonical written form.
pub fn render_temporal(timer: &Temporal) -> String {
    match timer {
        Temporal::After { delay, event } => format!("{} after {}", render_duration(*delay), render_event(event)),
        Temporal::Every { interval } => format!("every {}", render_duration(*interval)),
        Temporal::Cron { expr, zone } => {
            let mut out = format!("every cron \"{expr}\"");
            if let Some(zone) = zone {
                out.push_str(&format!(" {zone}"));
            }
            out
        }
        Temporal::Calendar(calendar) => {
            const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let period = match &calendar.period {
                Period::Minute => "minute".to_string(),
                Period::Hour => "hour".to_string(),
                Period::Day => "day".to_string(),
                Period::Week => "week".to_string(),
                Period::Month(days) if days.is_empty() => "month".to_string(),
                Period::Month(days) => format!(
                    "month on {}",
                    days.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
                ),
                Period::Weekdays(days) => days
                    .iter()
                    .map(|day| DAYS[usize::from(*day) % 7])
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let mut out = format!("every {period}");
            if !calendar.times.is_empty() {
                let times: Vec<String> = calendar
                    .times
                    .iter()
                    .map(|time| {
                        let mut text = match time.hour {
                            Some(hour) => format!("{hour:02}:{:02}", time.minute),
                            None => format!(":{:02}", time.minute),
                        };
                        if time.second != 0 {
                            text.push_str(&format!(":{:02}", time.second));
                        }
                        text
                    })
                    .collect();
                out.push_str(&format!(" at {}", times.join(",")));
            }
            if let Some(zone) = &calendar.zone {
                out.push_str(&format!(" {zone}"));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Config;

    fn job(text: &str) -> crate::model::Job {
        let mut config = Config::from_text("j", "j.conf", text);
        assert!(config.diagnostics.is_empty(), "{text}");
        config.jobs.remove(0)
    }

    /// Each group's shared default is its `Default`: an unset group reads as a fresh one.
    #[test]
    fn every_group_reads_its_defaults_when_unset() {
        use super::*;
        assert_eq!(*About::empty(), About::default());
        assert_eq!(*Context::empty(), Context::default());
        assert_eq!(*Extensions::empty(), Extensions::default());
        assert_eq!(Lifecycle::empty().reload, Reload::Signal { signal: 1 });
        assert_eq!(*Lifecycle::empty(), Lifecycle::default());
    }

    /// The groups cost nothing until a stanza of theirs is set, and setting one makes only
    /// its own group.
    #[test]
    fn a_group_is_made_only_by_its_own_stanzas() {
        let plain = job("start on startup\nexec /bin/true\n");
        assert!(plain.about.is_unset() && plain.lifecycle.is_unset());
        assert!(plain.context.is_unset() && plain.ext.is_unset());

        let described = job("description \"d\"\nexec /bin/true\n");
        assert_eq!(described.about.description.as_deref(), Some("d"));
        assert!(described.lifecycle.is_unset() && described.context.is_unset() && described.ext.is_unset());

        let rooted = job("chdir /srv\nkill signal INT\nexec /bin/true\n");
        assert_eq!(rooted.context.chdir.as_deref(), Some("/srv"));
        assert_eq!(rooted.kill_signal, 2);
        assert!(rooted.about.is_unset() && rooted.lifecycle.is_unset() && rooted.ext.is_unset());

        let reloading = job("reload signal USR1\nexec /bin/true\n");
        assert_eq!(reloading.lifecycle.reload, super::Reload::Signal { signal: 10 });
        assert!(reloading.about.is_unset() && reloading.context.is_unset() && reloading.ext.is_unset());
    }
}
