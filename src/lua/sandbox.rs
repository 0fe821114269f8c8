//! The sandbox that runs job code in the daemon: hooks, Lua gates and `script lua`
//! processes (coroutines the runtime resumes on its loop).
//!
//! **One state for every job.** A Lua 5.4 state costs some 20 KiB before it runs anything,
//! so a state per job would cost 20 MiB for 1,000 jobs; the daemon keeps one state, and
//! gives each job an environment table of its own (its globals), so one job's chunks never
//! see or change another's. A job's environment reads the allowed globals through a
//! metatable it cannot reach (`__metatable` is set), and gets its own views of the shared
//! libraries (`string`, `table`, `math`, `utf8`), made when it first names one: a write to
//! `string.x` lands in the job's view, not in the library. The string metatable is hidden
//! the same way. The metatables are shared by every job, so a job costs its environment,
//! its `job` table, the views it uses and its compiled chunks.
//!
//! **The allow-list.** `string`, `table`, `math`, `utf8`, `pairs`, `ipairs`, `select`,
//! `type`, `tostring`, `tonumber`, `pcall`, `error`, `assert`, `next`, `rawequal`, `rawget`,
//! `rawlen`, `rawset`, `setmetatable`, `getmetatable`, and the API the runtime provides
//! (`job`, `emit`, `log`, `status`, `metric`, `now`, and `sleep` for a `script lua`
//! process). Nothing else: no `io`, `os`,
//! `package`, `require`, `load`, `dofile`, `loadfile`, `string.dump`, `collectgarbage`,
//! `debug`, `coroutine`, `print`.
//!
//! **Budgets.** Each run may execute at most `budget` VM instructions (counted by a hook
//! every 1,000) and allocate at most `memory` bytes beyond what the state held when it
//! began; past either, the run stops with an error saying so, and the daemon carries on.
//! The state as a whole is capped at [`STATE_LIMIT`]. A C function of the string library
//! runs to its end between two counts; the memory cap bounds what it can build.
//!
//! **Coroutines.** A `script lua` process is a coroutine of its chunk ([`Coroutine`]): each
//! slice between two `sleep` calls is a run, with the instruction budget of a run, and the
//! memory the coroutine keeps across its slices counts against its memory cap. The API
//! functions are the same for every run (they reach the daemon through the run under way),
//! so a chunk may keep one in a local across a `sleep`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use mlua::thread::ThreadStatus;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Thread, Value, VmState};

/// The default instruction budget of one run: a few milliseconds of CPU.
pub const DEFAULT_BUDGET: u64 = 1_000_000;
/// The default memory a run may allocate.
pub const DEFAULT_MEMORY: usize = 1 << 20;
/// The most the whole state may hold, all jobs together.
pub const STATE_LIMIT: usize = 256 << 20;

/// The most `emit` calls one run may make, and `log` lines it may write (each line cut at
/// [`MAX_LOG_LINE`] bytes): what a run leaves outside Lua's heap is bounded too.
pub const MAX_EMITS: usize = 100;
pub const MAX_LOGS: usize = 100;
pub const MAX_LOG_LINE: usize = 1024;

/// How often the instruction hook counts.
const COUNT_EVERY: u32 = 1_000;

/// The globals a chunk may use, besides the API.
const ALLOWED: [&str; 16] = [
    "pairs",
    "ipairs",
    "select",
    "type",
    "tostring",
    "tonumber",
    "pcall",
    "error",
    "assert",
    "next",
    "rawequal",
    "rawget",
    "rawlen",
    "rawset",
    "setmetatable",
    "getmetatable",
];

/// The libraries a chunk sees, each through a read-only view of its own.
const LIBRARIES: [&str; 4] = ["string", "table", "math", "utf8"];

/// What the runtime lets a chunk ask: the API's window on the daemon.
pub trait Api {
    /// `status(JOB [, INSTANCE])`: goal, state and main pid, or `None` for no such job.
    fn status(&self, job: &str, instance: &str) -> Option<(String, String, Option<i32>)>;
    /// `metric(NAME)`: a figure as `gate` conditions weigh it.
    fn metric(&self, name: &str) -> Result<f64, String>;
    /// `now()`: seconds since the epoch.
    fn now(&self) -> f64;
}

/// One run: who runs, and what it sees.
pub struct Run<'a> {
    pub job: &'a str,
    pub instance: &'a str,
    /// What the chunk is, for messages and Lua's chunk name: `hook started`, `gate`.
    pub what: &'a str,
    pub code: &'a str,
    /// The line of the job file the chunk starts on, so errors name the file's line.
    pub first_line: u32,
    /// What `job.env(KEY)` reads.
    pub env: &'a [String],
}

/// How a run ended, and what it asked for on the way.
#[derive(Debug)]
pub struct Outcome {
    /// What the chunk returned (its first value), or why it failed.
    pub result: Result<Option<bool>, String>,
    /// `emit(NAME, {K=V})` calls, in order: the runtime queues them as events afterwards.
    pub emits: Vec<(String, Vec<String>)>,
    /// `log(MSG)` calls.
    pub logs: Vec<String>,
    /// Instructions executed (to the hook's granularity).
    pub instructions: u64,
}

/// `emit` and `log` calls of the run under way.
#[derive(Default)]
struct Collected {
    emits: Vec<(String, Vec<String>)>,
    logs: Vec<String>,
}

impl Collected {
    fn clear(&mut self) {
        self.emits.clear();
        self.logs.clear();
    }
}

/// A `script lua` process between two slices: its coroutine, and the memory it kept.
pub struct Coroutine {
    thread: Thread,
    /// The bytes the state grew by across its slices so far (less what they freed).
    kept: isize,
}

/// How a slice of a coroutine ended.
#[derive(Debug, PartialEq)]
pub enum Slice {
    /// `sleep(DURATION)`: what it was given, for the runtime to read as a duration.
    Sleep(SleepFor),
    /// The chunk returned: the process "exits" 0.
    Returned,
    /// It failed (an error, its budget, its memory): the process "exits" 1.
    Failed(String),
}

/// The argument of `sleep`: a number of seconds, or a duration as the job language
/// writes one (`500ms`, `1m30s`).
#[derive(Clone, Debug, PartialEq)]
pub enum SleepFor {
    Seconds(f64),
    Text(String),
}

/// How a coroutine is woken.
pub enum Wake {
    /// Its first slice.
    Start,
    /// Its sleep is over.
    Slept,
    /// Its `sleep` argument was refused: `sleep` raises this error where it was called.
    Refused(String),
}

/// A slice of a coroutine: how it ended, and what it asked for on the way.
#[derive(Debug)]
pub struct Resumed {
    pub slice: Slice,
    pub emits: Vec<(String, Vec<String>)>,
    pub logs: Vec<String>,
    pub instructions: u64,
}

/// The daemon's Lua: one state, one environment per job, compiled chunks kept.
pub struct Sandbox {
    lua: Lua,
    /// The metatable every job's environment shares: it reads the allowed globals, and
    /// makes a job's view of a library on first use.
    env_meta: Table,
    /// What the run under way emitted and logged.
    collected: Rc<RefCell<Collected>>,
    /// Each job's environment (its globals), made on its first run.
    envs: RefCell<HashMap<String, Table>>,
    /// Compiled chunks, by job and chunk text.
    chunks: RefCell<HashMap<(String, String), Function>>,
    budget: u64,
    memory: usize,
    counted: Rc<Cell<u64>>,
    limit: Rc<Cell<u64>>,
    /// The daemon-facing functions of the run under way (`status`, `metric`, `now`,
    /// `env`), set at each run; the API's functions call through it.
    current: Table,
    /// `job.env`, the same function in every job's `job` table.
    job_env: Function,
}

/// The instruction hook: counts, and fails the run past its budget.
fn counting_hook(
    counted: &Rc<Cell<u64>>,
    limit: &Rc<Cell<u64>>,
) -> impl Fn(&Lua, &mlua::debug::Debug) -> mlua::Result<VmState> + 'static {
    let (count, cap) = (counted.clone(), limit.clone());
    move |_, _| {
        count.set(count.get() + u64::from(COUNT_EVERY));
        if count.get() > cap.get() {
            return Err(mlua::Error::runtime("instruction budget"));
        }
        Ok(VmState::Continue)
    }
}

impl Sandbox {
    pub fn new(budget: u64, memory: usize) -> mlua::Result<Sandbox> {
        let lua = Lua::new_with(
            StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE,
            LuaOptions::default(),
        )?;
        let globals = lua.globals();
        let base = lua.create_table()?;
        for name in ALLOWED {
            base.raw_set(name, globals.raw_get::<Value>(name)?)?;
        }
        // `string.dump` would hand out bytecode; the rest of the library stays.
        let string: Table = globals.raw_get("string")?;
        string.raw_set("dump", Value::Nil)?;
        // The string metatable's `__index` is the shared library: hide it.
        lua.load("getmetatable('').__metatable = false").exec()?;
        let counted = Rc::new(Cell::new(0u64));
        let limit = Rc::new(Cell::new(u64::MAX));
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(COUNT_EVERY),
            counting_hook(&counted, &limit),
        )?;
        // `pcall` catches the budget's error as any other; past the budget, ours raises it
        // again, so a chunk cannot run on by catching it.
        let (count, cap) = (counted.clone(), limit.clone());
        let over = lua.create_function(move |_, ()| Ok(count.get() > cap.get()))?;
        let table: Table = globals.raw_get("table")?;
        let wrap: Function = lua
            .load(
                "local raw, over, pack, unpack = ...\n\
                 return function(f, ...)\n\
                 local results = pack(raw(f, ...))\n\
                 if over() then error('instruction budget', 0) end\n\
                 return unpack(results, 1, results.n)\n\
                 end",
            )
            .set_name("=pcall")
            .into_function()?;
        let pcall: Function = wrap.call((
            globals.raw_get::<Function>("pcall")?,
            over,
            table.raw_get::<Function>("pack")?,
            table.raw_get::<Function>("unpack")?,
        ))?;
        base.raw_set("pcall", pcall)?;
        // `emit` and `log` collect for the run under way; they need nothing of the run, so
        // they are made once, shared by every job through the allowed globals.
        let collected: Rc<RefCell<Collected>> = Rc::default();
        let into = collected.clone();
        base.raw_set(
            "emit",
            lua.create_function(move |_, (name, vars): (String, Option<Table>)| {
                let mut list = Vec::new();
                if let Some(vars) = vars {
                    for pair in vars.pairs::<String, Value>() {
                        let (key, value) = pair?;
                        let value = match value {
                            Value::String(text) => text.to_str()?.to_string(),
                            Value::Integer(number) => number.to_string(),
                            Value::Number(number) => number.to_string(),
                            Value::Boolean(flag) => flag.to_string(),
                            other => {
                                return Err(mlua::Error::runtime(format!(
                                    "emit: {key} is a {}, not a string or number",
                                    other.type_name()
                                )));
                            }
                        };
                        list.push(format!("{key}={value}"));
                    }
                }
                list.sort();
                let mut into = into.borrow_mut();
                if into.emits.len() >= MAX_EMITS {
                    return Err(mlua::Error::runtime(format!(
                        "emit: more than {MAX_EMITS} events in one run"
                    )));
                }
                into.emits.push((name, list));
                Ok(())
            })?,
        )?;
        let into = collected.clone();
        base.raw_set(
            "log",
            lua.create_function(move |_, mut message: String| {
                let mut into = into.borrow_mut();
                if into.logs.len() >= MAX_LOGS {
                    return Err(mlua::Error::runtime(format!(
                        "log: more than {MAX_LOGS} lines in one run"
                    )));
                }
                if message.len() > MAX_LOG_LINE {
                    let mut end = MAX_LOG_LINE;
                    while !message.is_char_boundary(end) {
                        end -= 1;
                    }
                    message.truncate(end);
                    message.push('…');
                }
                into.logs.push(message);
                Ok(())
            })?,
        )?;
        // The API's functions call the run's own through `current`, so they are made once
        // and a chunk may keep them across a `sleep`.
        let current = lua.create_table()?;
        let through: Function = lua
            .load(
                "local current = ...\n\
                 return function(name) return function(...) return current[name](...) end end",
            )
            .set_name("=api")
            .into_function()?
            .call(current.clone())?;
        for name in ["status", "metric", "now"] {
            base.raw_set(name, through.call::<Function>(name)?)?;
        }
        let job_env: Function = through.call("env")?;
        // `sleep` yields the coroutine of a `script lua` process; the runtime wakes it with
        // `true`, or with `false` and why the duration was refused.
        let coroutine: Table = globals.raw_get("coroutine")?;
        let sleep: Function = lua
            .load(
                "local yield, yieldable, type = ...\n\
                 return function(duration)\n\
                 if not yieldable() then error('sleep: only a `script lua` process may sleep', 2) end\n\
                 local kind = type(duration)\n\
                 if kind ~= 'number' and kind ~= 'string' then\n\
                 error('sleep: a number of seconds or a duration such as \"1s\", not a ' .. kind, 2)\n\
                 end\n\
                 local ok, why = yield(duration)\n\
                 if not ok then error(why, 2) end\n\
                 end",
            )
            .set_name("=sleep")
            .into_function()?
            .call((
                coroutine.raw_get::<Function>("yield")?,
                coroutine.raw_get::<Function>("isyieldable")?,
                globals.raw_get::<Function>("type")?,
            ))?;
        base.raw_set("sleep", sleep)?;
        globals.raw_set("coroutine", Value::Nil)?;
        // A job's environment: the allowed globals through a shared, hidden metatable; a
        // library through a view of the job's own, made when the job first names it (most
        // chunks use one library or none), whose metatable is shared and hidden too.
        let views = lua.create_table()?;
        for name in LIBRARIES {
            let meta = lua.create_table()?;
            meta.raw_set("__index", globals.raw_get::<Table>(name)?)?;
            meta.raw_set("__metatable", false)?;
            views.raw_set(name, meta)?;
        }
        let lookup: Function = lua
            .load(
                "local base, views, setmetatable, rawset = ...\n\
                 return function(env, key)\n\
                 local meta = views[key]\n\
                 if meta then local view = setmetatable({}, meta) rawset(env, key, view) return view end\n\
                 return base[key]\n\
                 end",
            )
            .set_name("=environment")
            .into_function()?
            .call((
                base,
                views,
                globals.raw_get::<Function>("setmetatable")?,
                globals.raw_get::<Function>("rawset")?,
            ))?;
        let env_meta = lua.create_table()?;
        env_meta.raw_set("__index", lookup)?;
        env_meta.raw_set("__metatable", false)?;
        lua.set_memory_limit(STATE_LIMIT)?;
        Ok(Sandbox {
            lua,
            env_meta,
            collected,
            envs: RefCell::new(HashMap::new()),
            chunks: RefCell::new(HashMap::new()),
            budget,
            memory,
            counted,
            limit,
            current,
            job_env,
        })
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn memory(&self) -> usize {
        self.memory
    }

    /// The bytes the state holds.
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// A job's environment, made on first use.
    fn env_of(&self, job: &str) -> mlua::Result<Table> {
        if let Some(env) = self.envs.borrow().get(job) {
            return Ok(env.clone());
        }
        let lua = &self.lua;
        let env = lua.create_table()?;
        env.set_metatable(Some(self.env_meta.clone()))?;
        let table = lua.create_table()?;
        table.raw_set("env", self.job_env.clone())?;
        env.raw_set("job", table)?;
        self.envs.borrow_mut().insert(job.to_string(), env.clone());
        Ok(env)
    }

    /// A job goes: its globals and chunks with it.
    pub fn forget(&self, job: &str) {
        self.envs.borrow_mut().remove(job);
        self.chunks.borrow_mut().retain(|(owner, _), _| owner != job);
    }

    fn chunk(&self, run: &Run, env: &Table) -> mlua::Result<Function> {
        let key = (run.job.to_string(), run.code.to_string());
        if let Some(function) = self.chunks.borrow().get(&key) {
            return Ok(function.clone());
        }
        // Blank lines in front, so that Lua's line numbers are the job file's.
        let padded = format!("{}{}", "\n".repeat(run.first_line.saturating_sub(1) as usize), run.code);
        let function = self
            .lua
            .load(padded)
            .set_name(format!("={} {}", run.job, run.what))
            .set_environment(env.clone())
            .into_function()?;
        self.chunks.borrow_mut().insert(key, function.clone());
        Ok(function)
    }

    /// Runs a chunk within the budgets. Never panics, whatever the chunk does.
    pub fn run(&self, run: &Run, api: &dyn Api) -> Outcome {
        let (result, collected, instructions) = self.enter(run, api, 0, |env| {
            let function = self.chunk(run, env)?;
            let returned: MultiValue = function.call(())?;
            Ok(match returned.into_iter().next() {
                None | Some(Value::Nil) => None,
                Some(Value::Boolean(flag)) => Some(flag),
                Some(_) => Some(true),
            })
        });
        Outcome {
            result: result.map_err(|error| self.explain(error, instructions)),
            emits: collected.emits,
            logs: collected.logs,
            instructions,
        }
    }

    /// Makes the coroutine of a `script lua` process; it runs from its first resume.
    pub fn coroutine(&self, run: &Run) -> Result<Coroutine, String> {
        let made = (|| {
            let env = self.env_of(run.job)?;
            let thread = self.lua.create_thread(self.chunk(run, &env)?)?;
            // A new thread need not inherit the main thread's hook: it gets its own.
            thread.set_hook(
                HookTriggers::new().every_nth_instruction(COUNT_EVERY),
                counting_hook(&self.counted, &self.limit),
            )?;
            Ok::<_, mlua::Error>(thread)
        })();
        made.map(|thread| Coroutine { thread, kept: 0 })
            .map_err(|error| first_message(&error))
    }

    /// Runs a coroutine's next slice, within the budgets: the instruction budget of a run,
    /// and the memory cap less what it kept from its earlier slices.
    pub fn resume(&self, coroutine: &mut Coroutine, run: &Run, api: &dyn Api, wake: Wake) -> Resumed {
        let kept = usize::try_from(coroutine.kept).unwrap_or(0);
        let thread = coroutine.thread.clone();
        let before = self.lua.used_memory();
        let (result, collected, instructions) = self.enter(run, api, kept, |_| {
            let yielded: MultiValue = match wake {
                Wake::Start => thread.resume(())?,
                Wake::Slept => thread.resume(true)?,
                Wake::Refused(why) => thread.resume((false, why))?,
            };
            Ok(yielded)
        });
        let grown = self.lua.used_memory() as isize - before as isize;
        coroutine.kept = coroutine.kept.saturating_add(grown);
        let slice = match result {
            Err(error) => Slice::Failed(self.explain(error, instructions)),
            Ok(_) if coroutine.thread.status() != ThreadStatus::Resumable => Slice::Returned,
            Ok(yielded) => match yielded.into_iter().next() {
                Some(Value::Integer(seconds)) => Slice::Sleep(SleepFor::Seconds(seconds as f64)),
                Some(Value::Number(seconds)) => Slice::Sleep(SleepFor::Seconds(seconds)),
                Some(Value::String(text)) => Slice::Sleep(SleepFor::Text(text.to_string_lossy())),
                // `sleep` yields only numbers and strings; nothing else can yield.
                _ => Slice::Failed("yielded without `sleep`".into()),
            },
        };
        Resumed {
            slice,
            emits: collected.emits,
            logs: collected.logs,
            instructions,
        }
    }

    /// Runs `body` as one run of `run`'s job: the budgets set (the memory cap less `kept`),
    /// the job's `job` table and the API's functions pointing at this run. Returns what
    /// `body` returned, what the run emitted and logged, and the instructions it took.
    fn enter<R>(
        &self,
        run: &Run,
        api: &dyn Api,
        kept: usize,
        body: impl FnOnce(&Table) -> mlua::Result<R>,
    ) -> (mlua::Result<R>, Collected, u64) {
        self.collected.borrow_mut().clear();
        let before = self.lua.used_memory();
        self.counted.set(0);
        self.limit.set(self.budget);
        let allowed = self.memory.saturating_sub(kept);
        let _ = self
            .lua
            .set_memory_limit(before.saturating_add(allowed).min(STATE_LIMIT));
        let current = &self.current;
        let result = self.lua.scope(|scope| {
            let env = self.env_of(run.job)?;
            let job: Table = env.raw_get("job")?;
            job.raw_set("name", run.job)?;
            job.raw_set("instance", run.instance)?;
            let vars = run.env;
            current.raw_set(
                "env",
                scope.create_function(move |_, key: String| {
                    Ok(vars
                        .iter()
                        .rev()
                        .find_map(|entry| entry.strip_prefix(key.as_str())?.strip_prefix('='))
                        .map(str::to_string))
                })?,
            )?;
            current.raw_set(
                "status",
                scope.create_function(|lua, (job, instance): (String, Option<String>)| {
                    match api.status(&job, instance.as_deref().unwrap_or("")) {
                        None => Ok(Value::Nil),
                        Some((goal, state, pid)) => {
                            let table = lua.create_table()?;
                            table.raw_set("goal", goal)?;
                            table.raw_set("state", state)?;
                            table.raw_set("pid", pid)?;
                            Ok(Value::Table(table))
                        }
                    }
                })?,
            )?;
            current.raw_set(
                "metric",
                scope.create_function(|_, name: String| api.metric(&name).map_err(mlua::Error::runtime))?,
            )?;
            current.raw_set("now", scope.create_function(|_, ()| Ok(api.now()))?)?;
            body(&env)
        });
        let instructions = self.counted.get();
        self.limit.set(u64::MAX);
        let _ = self.lua.set_memory_limit(STATE_LIMIT);
        let collected = std::mem::take(&mut *self.collected.borrow_mut());
        (result, collected, instructions)
    }

    /// An error as the log says it: the budget or memory that cut the run off, or Lua's
    /// message with the chunk's name and line.
    fn explain(&self, error: mlua::Error, instructions: u64) -> String {
        if instructions > self.budget {
            return format!("cut off after {} instructions", self.budget);
        }
        if has_memory_error(&error) {
            return format!("cut off at its memory limit of {} bytes", self.memory);
        }
        first_message(&error)
    }
}

fn has_memory_error(error: &mlua::Error) -> bool {
    match error {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => has_memory_error(cause),
        mlua::Error::WithContext { cause, .. } => has_memory_error(cause),
        _ => false,
    }
}

/// The error's own message, without mlua's traceback.
fn first_message(error: &mlua::Error) -> String {
    match error {
        mlua::Error::RuntimeError(message) | mlua::Error::SyntaxError { message, .. } => {
            message.lines().next().unwrap_or_default().to_string()
        }
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => first_message(cause),
        other => other.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoDaemon;

    impl Api for NoDaemon {
        fn status(&self, job: &str, _instance: &str) -> Option<(String, String, Option<i32>)> {
            (job == "db").then(|| ("start".into(), "running".into(), Some(42)))
        }
        fn metric(&self, name: &str) -> Result<f64, String> {
            if name == "load1" {
                Ok(0.5)
            } else {
                Err(format!("no {name}"))
            }
        }
        fn now(&self) -> f64 {
            1.0e9
        }
    }

    fn run(sandbox: &Sandbox, job: &str, code: &str) -> Outcome {
        let env = ["GO=1".to_string(), "WHO=me".to_string()];
        sandbox.run(
            &Run {
                job,
                instance: "i",
                what: "hook started",
                code,
                first_line: 3,
                env: &env,
            },
            &NoDaemon,
        )
    }

    fn sandbox() -> Sandbox {
        Sandbox::new(DEFAULT_BUDGET, DEFAULT_MEMORY).unwrap()
    }

    #[test]
    fn the_api_answers_and_emits_are_collected() {
        let sandbox = sandbox();
        let outcome = run(
            &sandbox,
            "web",
            "log(job.name .. ' ' .. job.instance .. ' ' .. job.env('WHO'))\n\
             local db = status('db')\n\
             emit('web-up', {PID = db.pid, STATE = db.state, LOAD = metric('load1')})\n\
             assert(status('nope') == nil and now() == 1e9 and job.env('NONE') == nil)\n\
             return job.env('GO') == '1'",
        );
        assert_eq!(outcome.result, Ok(Some(true)));
        assert_eq!(outcome.logs, ["web i me"]);
        assert_eq!(
            outcome.emits,
            [(
                "web-up".to_string(),
                vec!["LOAD=0.5".into(), "PID=42".into(), "STATE=running".into()]
            )]
        );
        let outcome = run(&sandbox, "web", "return metric('psi')");
        assert_eq!(outcome.result, Err("no psi".into()));
    }

    #[test]
    fn only_the_allow_list_is_there() {
        let sandbox = sandbox();
        for name in [
            "os",
            "io",
            "require",
            "package",
            "load",
            "loadstring",
            "dofile",
            "loadfile",
            "debug",
            "collectgarbage",
            "coroutine",
            "print",
        ] {
            let outcome = run(&sandbox, "web", &format!("return {name} == nil"));
            assert_eq!(outcome.result, Ok(Some(true)), "{name}");
        }
        let outcome = run(
            &sandbox,
            "web",
            "return string.dump == nil and getmetatable('') == false",
        );
        assert_eq!(outcome.result, Ok(Some(true)));
        // An error names the chunk and the job file's line.
        let outcome = run(&sandbox, "web", "local x = 1\nos.execute('true')");
        let error = outcome.result.unwrap_err();
        assert!(
            error.starts_with("web hook started:4: attempt to index a nil value (global 'os')"),
            "{error}"
        );
    }

    #[test]
    fn jobs_do_not_see_each_others_globals_or_change_the_libraries() {
        let sandbox = sandbox();
        assert_eq!(
            run(
                &sandbox,
                "a",
                "shared = 1; string.mine = 1; rawset(string, 'raw', 1); return true"
            )
            .result,
            Ok(Some(true))
        );
        assert_eq!(
            run(&sandbox, "a", "return shared == 1 and string.mine == 1").result,
            Ok(Some(true))
        );
        assert_eq!(
            run(
                &sandbox,
                "b",
                "return shared == nil and string.mine == nil and string.raw == nil and string.upper ~= nil"
            )
            .result,
            Ok(Some(true))
        );
        assert_eq!(run(&sandbox, "b", "return getmetatable(_ENV)").result, Ok(Some(false)));
        sandbox.forget("a");
        assert_eq!(run(&sandbox, "a", "return shared == nil").result, Ok(Some(true)));
    }

    #[test]
    fn budgets_cut_runaway_chunks_off_and_the_state_goes_on() {
        let sandbox = Sandbox::new(100_000, 256 << 10).unwrap();
        let outcome = run(&sandbox, "web", "while true do end");
        assert_eq!(outcome.result, Err("cut off after 100000 instructions".into()));
        let outcome = run(&sandbox, "web", "local t = {} for i = 1, 1e9 do t[i] = i end");
        assert!(
            matches!(&outcome.result, Err(error) if error.starts_with("cut off")),
            "{:?}",
            outcome.result
        );
        let outcome = run(&sandbox, "web", "return string.rep('x', 1 << 30)");
        assert_eq!(
            outcome.result,
            Err(format!("cut off at its memory limit of {} bytes", 256 << 10))
        );
        // What a run leaves outside Lua's heap is bounded: events, log lines, their length.
        let outcome = run(&sandbox, "web", "for i = 1, 1000 do emit('e' .. i) end");
        assert_eq!(outcome.emits.len(), MAX_EMITS);
        assert!(
            matches!(&outcome.result, Err(error) if error.contains("more than 100 events")),
            "{:?}",
            outcome.result
        );
        let outcome = run(&sandbox, "web", "for i = 1, 1000 do log(string.rep('x', 5000)) end");
        assert_eq!(outcome.logs.len(), MAX_LOGS);
        assert!(
            outcome
                .logs
                .iter()
                .all(|line| line.len() <= MAX_LOG_LINE + '…'.len_utf8())
        );
        // A pcall cannot catch the budget for long: the next count fails again.
        let outcome = run(
            &sandbox,
            "web",
            "while true do pcall(function() while true do end end) end",
        );
        assert_eq!(outcome.result, Err("cut off after 100000 instructions".into()));
        assert_eq!(run(&sandbox, "web", "return 1 + 1 == 2").result, Ok(Some(true)));
    }

    fn slice(sandbox: &Sandbox, coroutine: &mut Coroutine, wake: Wake) -> Resumed {
        let env = ["WHO=me".to_string()];
        let run = Run {
            job: "web",
            instance: "",
            what: "main process",
            code: "",
            first_line: 0,
            env: &env,
        };
        sandbox.resume(coroutine, &run, &NoDaemon, wake)
    }

    fn coroutine(sandbox: &Sandbox, code: &str) -> Coroutine {
        let env = Vec::new();
        let run = Run {
            job: "web",
            instance: "",
            what: "main process",
            code,
            first_line: 2,
            env: &env,
        };
        sandbox.coroutine(&run).unwrap()
    }

    #[test]
    fn a_coroutine_sleeps_between_slices_each_with_its_budget() {
        let sandbox = Sandbox::new(100_000, 256 << 10).unwrap();
        // The API's functions may be kept in locals across a sleep.
        let mut lua = coroutine(
            &sandbox,
            "local env, st = job.env, status\n\
             for i = 1, 3 do\n\
             for _ = 1, 60000 do end\n\
             log(env('WHO') .. i .. st('db').state)\n\
             sleep(i == 3 and '1m30s' or i)\n\
             end",
        );
        let mut results = Vec::new();
        let mut wake = Wake::Start;
        loop {
            let resumed = slice(&sandbox, &mut lua, wake);
            results.push((resumed.slice, resumed.logs));
            if !matches!(results.last(), Some((Slice::Sleep(_), _))) {
                break;
            }
            wake = Wake::Slept;
        }
        assert_eq!(
            results,
            [
                (Slice::Sleep(SleepFor::Seconds(1.0)), vec!["me1running".to_string()]),
                (Slice::Sleep(SleepFor::Seconds(2.0)), vec!["me2running".to_string()]),
                (
                    Slice::Sleep(SleepFor::Text("1m30s".into())),
                    vec!["me3running".to_string()]
                ),
                (Slice::Returned, vec![]),
            ]
        );
        // A refused duration is an error where `sleep` was called.
        let mut lua = coroutine(&sandbox, "sleep('soon')");
        assert!(matches!(slice(&sandbox, &mut lua, Wake::Start).slice, Slice::Sleep(_)));
        let failed = slice(
            &sandbox,
            &mut lua,
            Wake::Refused("sleep: `soon` is not a duration".into()),
        );
        assert_eq!(
            failed.slice,
            Slice::Failed("web main process:2: sleep: `soon` is not a duration".into())
        );
        // A runaway slice is cut off; so is one that keeps memory across its sleeps.
        let mut lua = coroutine(&sandbox, "sleep(0) while true do end");
        assert!(matches!(slice(&sandbox, &mut lua, Wake::Start).slice, Slice::Sleep(_)));
        assert_eq!(
            slice(&sandbox, &mut lua, Wake::Slept).slice,
            Slice::Failed("cut off after 100000 instructions".into())
        );
        let mut lua = coroutine(
            &sandbox,
            "local kept = {} while true do kept[#kept + 1] = string.rep('x', 100000) .. #kept sleep(0) end",
        );
        let mut slices = 0;
        let ended = loop {
            slices += 1;
            match slice(&sandbox, &mut lua, if slices == 1 { Wake::Start } else { Wake::Slept }).slice {
                Slice::Sleep(_) => assert!(slices < 100, "never cut off"),
                other => break other,
            }
        };
        assert_eq!(
            ended,
            Slice::Failed(format!("cut off at its memory limit of {} bytes", 256 << 10))
        );
        assert!(slices > 1, "{slices}");
        // A hook cannot sleep.
        let outcome = run(&sandbox, "web", "sleep(1)");
        assert_eq!(
            outcome.result,
            Err("web hook started:3: sleep: only a `script lua` process may sleep".into())
        );
    }
}
