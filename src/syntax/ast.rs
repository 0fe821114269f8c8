//! The syntax tree of one job file: stanzas as written, with spans.
//!
//! This module owns the *shape* of the language. It never merges stanzas (that is
//! `model::job`), never touches the file system and never evaluates anything.
//! Every node that a diagnostic may point at carries a [`Span`].

use serde::{Deserialize, Serialize};

/// A byte range `lo..hi` in the source text of one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub lo: u32,
    pub hi: u32,
}

impl Span {
    pub fn new(lo: usize, hi: usize) -> Span {
        Span {
            lo: lo as u32,
            hi: hi as u32,
        }
    }
}

/// A value with the span it was read from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spanned<T> {
    pub node: T,
    #[serde(skip)]
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Spanned<T> {
        Spanned { node, span }
    }
}

/// One parsed file: top-level stanzas and, for multi-job files, named job blocks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileAst {
    pub stanzas: Vec<Spanned<Stanza>>,
    pub blocks: Vec<JobBlock>,
}

/// One stanza of the daemon file (`DIR.conf` beside a job dir `DIR`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DaemonStanza {
    /// `resource NAME MAX`: the capacity of a resource pool.
    Resource { name: String, max: f64 },
}

/// `job NAME` … `end job`.
#[derive(Clone, Debug, PartialEq)]
pub struct JobBlock {
    pub name: Spanned<String>,
    pub stanzas: Vec<Spanned<Stanza>>,
}

/// A stanza as written. Merging (last-wins or accumulate) happens in `model`.
#[derive(Clone, Debug, PartialEq)]
pub enum Stanza {
    StartOn(EventExpr),
    StopOn(EventExpr),
    Manual,
    /// `exec …`, `script … end script`, `pre-start exec …`, …
    Process(ProcessKind, Command),
    /// `pre-start timeout 30s`
    ProcessTimeout(ProcessKind, Seconds),
    Task,
    Watershed,
    Respawn,
    RespawnLimit(RespawnLimit),
    RespawnDelay(RespawnDelay),
    NormalExit(Vec<ExitItem>),
    Instance(String),
    Description(String),
    Author(String),
    Version(String),
    Usage(String),
    Emits(Vec<String>),
    Env(EnvEntry),
    Export(Vec<String>),
    Expect(Expect),
    PidFile(String),
    PidTimeout(Seconds),
    KillTimeout(Seconds),
    KillSignal(Signal),
    KillAbandon(Seconds),
    ReloadSignal(Signal),
    Reload(Command),
    StopAction(Command),
    Action(String, Command),
    Console(Console),
    Umask(u32),
    Nice(i32),
    /// Normalised to the `oom_score_adj` scale (-1000..=1000).
    OomScore(i32),
    Limit(Rlimit, LimitValue, LimitValue),
    Chroot(String),
    Chdir(String),
    Setuid(String),
    Setgid(String),
    ApparmorLoad(String),
    ApparmorSwitch(String),
    Cgroup(Vec<String>),
    Debug,
    Gate(GateExpr),
    GateLua(LuaCode),
    GateHold(Seconds),
    GateWait(Seconds),
    GateExpire(GateExpire),
    Uses(String, Amount),
    Requires(PathKind, String),
    Hook(Vec<HookEvent>, LuaCode),
    CatchUp,
    Jitter(Seconds),
    Timezone(String),
}

impl Stanza {
    /// The stanza's keyword(s) as written, for messages and the docs index.
    pub fn keyword(&self) -> &'static str {
        match self {
            Stanza::StartOn(_) => "start on",
            Stanza::StopOn(_) => "stop on",
            Stanza::Manual => "manual",
            Stanza::Process(kind, _) => kind.keyword(),
            Stanza::ProcessTimeout(..) => "timeout",
            Stanza::Task => "task",
            Stanza::Watershed => "watershed",
            Stanza::Respawn => "respawn",
            Stanza::RespawnLimit(_) => "respawn limit",
            Stanza::RespawnDelay(_) => "respawn delay",
            Stanza::NormalExit(_) => "normal exit",
            Stanza::Instance(_) => "instance",
            Stanza::Description(_) => "description",
            Stanza::Author(_) => "author",
            Stanza::Version(_) => "version",
            Stanza::Usage(_) => "usage",
            Stanza::Emits(_) => "emits",
            Stanza::Env(_) => "env",
            Stanza::Export(_) => "export",
            Stanza::Expect(_) => "expect",
            Stanza::PidFile(_) => "pid file",
            Stanza::PidTimeout(_) => "pid timeout",
            Stanza::KillTimeout(_) => "kill timeout",
            Stanza::KillSignal(_) => "kill signal",
            Stanza::KillAbandon(_) => "kill abandon",
            Stanza::ReloadSignal(_) => "reload signal",
            Stanza::Reload(_) => "reload",
            Stanza::StopAction(_) => "stop exec|script",
            Stanza::Action(..) => "action",
            Stanza::Console(_) => "console",
            Stanza::Umask(_) => "umask",
            Stanza::Nice(_) => "nice",
            Stanza::OomScore(_) => "oom score",
            Stanza::Limit(..) => "limit",
            Stanza::Chroot(_) => "chroot",
            Stanza::Chdir(_) => "chdir",
            Stanza::Setuid(_) => "setuid",
            Stanza::Setgid(_) => "setgid",
            Stanza::ApparmorLoad(_) => "apparmor load",
            Stanza::ApparmorSwitch(_) => "apparmor switch",
            Stanza::Cgroup(_) => "cgroup",
            Stanza::Debug => "debug",
            Stanza::Gate(_) => "gate",
            Stanza::GateLua(_) => "gate lua",
            Stanza::GateHold(_) => "gate hold",
            Stanza::GateWait(_) => "gate wait",
            Stanza::GateExpire(_) => "gate expire",
            Stanza::Uses(..) => "uses",
            Stanza::Requires(..) => "requires",
            Stanza::Hook(..) => "hook",
            Stanza::CatchUp => "catch up",
            Stanza::Jitter(_) => "jitter",
            Stanza::Timezone(_) => "timezone",
        }
    }
}

/// Which process slot a command fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessKind {
    Main,
    PreStart,
    PostStart,
    PreStop,
    PostStop,
}

impl ProcessKind {
    pub const ALL: [ProcessKind; 5] = [
        ProcessKind::Main,
        ProcessKind::PreStart,
        ProcessKind::PostStart,
        ProcessKind::PreStop,
        ProcessKind::PostStop,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            ProcessKind::Main => "main",
            ProcessKind::PreStart => "pre-start",
            ProcessKind::PostStart => "post-start",
            ProcessKind::PreStop => "pre-stop",
            ProcessKind::PostStop => "post-stop",
        }
    }
}

/// What runs: a verbatim command line, or a script body with an optional interpreter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Command {
    /// `exec …`: the rest of the logical line, verbatim.
    Exec { command: String },
    /// `script [INTERPRETER ARGS…]` … `end script`, common indentation removed.
    /// No interpreter means `/bin/sh -e`; `["lua"]` means the embedded Lua. `line` is the
    /// 1-based line of the body's first line in its file (0 when not known), so that Lua
    /// errors name the file's line.
    Script {
        interpreter: Vec<String>,
        body: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        line: u32,
    },
}

fn is_zero(line: &u32) -> bool {
    *line == 0
}

impl Command {
    /// True when this command runs in the embedded Lua rather than as a process.
    pub fn is_lua(&self) -> bool {
        matches!(self, Command::Script { interpreter, .. } if interpreter.len() == 1 && interpreter[0] == "lua")
    }
}

/// A Lua chunk from `hook`, `gate lua` or `gate script lua`, with the line it starts on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LuaCode {
    pub code: String,
    /// 1-based line of the first line of code in the file, for tracebacks.
    pub line: u32,
}

/// A duration, kept in milliseconds. Upstart's plain integers are seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seconds {
    pub millis: u64,
}

impl Seconds {
    pub fn from_secs(secs: u64) -> Seconds {
        Seconds {
            millis: secs.saturating_mul(1000),
        }
    }
}

/// `respawn limit COUNT INTERVAL` or `respawn limit unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RespawnLimit {
    Unlimited,
    Limit { count: u32, interval_secs: u32 },
}

/// `respawn delay INITIAL [max MAX] [jitter J]`: exponential back-off between respawns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RespawnDelay {
    pub initial: Seconds,
    pub max: Option<Seconds>,
    pub jitter: Option<Seconds>,
}

/// One item of `normal exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum ExitItem {
    Status(i32),
    Signal(i32),
}

/// `env KEY=VALUE` or `env KEY` (copy KEY from the daemon's environment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvEntry {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    None,
    Stop,
    Fork,
    Daemon,
    Notify,
}

/// A signal as a number; `name` keeps the spelling for messages (`TERM`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub number: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Console {
    None,
    Output,
    Owner,
    Log,
    /// The default: log, falling back to /dev/null when the log cannot be opened.
    Auto,
    /// The daemon's own stdin, stdout and stderr.
    Inherit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rlimit {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Sigpending,
    Stack,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum LimitValue {
    Unlimited,
    Value(u64),
}

// ------------------------------------------------------------------ event expressions

/// `start on` / `stop on` expression. `and`/`or` are equal-precedence, left-associative.
/// Equality ignores spans: two expressions written in different places are the same.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventExpr {
    And {
        left: Box<EventExpr>,
        right: Box<EventExpr>,
    },
    Or {
        left: Box<EventExpr>,
        right: Box<EventExpr>,
    },
    Event(EventMatch),
    Temporal {
        timer: Temporal,
        #[serde(skip)]
        span: Span,
    },
}

/// `NAME [VALUE…] [KEY=VALUE…] [KEY!=VALUE…]`. Equality ignores the span.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventMatch {
    pub name: String,
    pub args: Vec<EventArg>,
    #[serde(skip)]
    pub span: Span,
}

impl PartialEq for EventExpr {
    fn eq(&self, other: &EventExpr) -> bool {
        match (self, other) {
            (EventExpr::And { left: a, right: b }, EventExpr::And { left: c, right: d })
            | (EventExpr::Or { left: a, right: b }, EventExpr::Or { left: c, right: d }) => a == c && b == d,
            (EventExpr::Event(a), EventExpr::Event(b)) => a == b,
            (EventExpr::Temporal { timer: a, .. }, EventExpr::Temporal { timer: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for EventMatch {
    fn eq(&self, other: &EventMatch) -> bool {
        self.name == other.name && self.args == other.args
    }
}

/// One value test of an event match. Values are globs with `$VAR` expansion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventArg {
    Positional { value: String },
    Equal { key: String, value: String },
    NotEqual { key: String, value: String },
}

/// A time-based operand of an event expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Temporal {
    /// `15m after startup`
    After { delay: Seconds, event: EventMatch },
    /// `every 10m`
    Every { interval: Seconds },
    /// `every day at 03:00 Europe/Paris`
    Calendar(Calendar),
    /// `every cron "*/5 * * * *" [ZONE]`
    Cron { expr: String, zone: Option<String> },
}

/// A wall-clock schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calendar {
    pub period: Period,
    /// Times of day, in the order written. Empty means the period's default (00:00, or :00).
    pub times: Vec<TimeOfDay>,
    pub zone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum Period {
    Minute,
    Hour,
    Day,
    /// Mondays.
    Week,
    /// Days of the month (1-31); empty means the 1st.
    Month(Vec<u8>),
    /// Days of the week, 0 = Monday … 6 = Sunday, sorted and deduplicated.
    Weekdays(Vec<u8>),
}

/// `HH:MM[:SS]`, or `:MM` (`hour` is None) for minutes past every hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeOfDay {
    pub hour: Option<u8>,
    pub minute: u8,
    pub second: u8,
}

// ------------------------------------------------------------------ gates

/// A load / pressure / network condition. Mixed `and`/`or` need parentheses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum GateExpr {
    And { terms: Vec<GateExpr> },
    Or { terms: Vec<GateExpr> },
    Compare { metric: Metric, op: CompareOp, value: f64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Metric {
    /// `load1`, `load5`, `load15`: the load average over that many minutes.
    Load { minutes: u8 },
    /// PSI: `cpu some avg10` … value is a percentage.
    Pressure {
        resource: PressureResource,
        full: bool,
        window: u16,
    },
    /// `net [IFACE] rx|tx`: bytes per second, all non-loopback interfaces when none is named.
    Net { interface: Option<String>, tx: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PressureResource {
    Cpu,
    Io,
    Memory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateExpire {
    Start,
    Skip,
}

// ------------------------------------------------------------------ pools, paths, hooks

/// The amount in `uses POOL AMOUNT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum Amount {
    Fixed(f64),
    /// `$VAR` or `${VAR:-default}`, expanded from the instance environment at start.
    Variable(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    File,
    Dir,
    Path,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    Starting,
    Started,
    Stopping,
    Stopped,
    Failed,
    Respawn,
}
