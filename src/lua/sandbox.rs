//! The sandbox that runs job code in the daemon: hooks and Lua gates.
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
//! (`job`, `emit`, `log`, `status`, `metric`, `now`). Nothing else: no `io`, `os`,
//! `package`, `require`, `load`, `dofile`, `loadfile`, `string.dump`, `collectgarbage`,
//! `debug`, `coroutine`, `print`.
//!
//! **Budgets.** Each run may execute at most `budget` VM instructions (counted by a hook
//! every 1,000) and allocate at most `memory` bytes beyond what the state held when it
//! began; past either, the run stops with an error saying so, and the daemon carries on.
//! The state as a whole is capped at [`STATE_LIMIT`]. A C function of the string library
//! runs to its end between two counts; the memory cap bounds what it can build.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

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
}

impl Sandbox {
    pub fn new(budget: u64, memory: usize) -> mlua::Result<Sandbox> {
        let lua = Lua::new_with(
            StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8,
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
        let (count, cap) = (counted.clone(), limit.clone());
        lua.set_hook(HookTriggers::new().every_nth_instruction(COUNT_EVERY), move |_, _| {
            count.set(count.get() + u64::from(COUNT_EVERY));
            if count.get() > cap.get() {
                return Err(mlua::Error::runtime("instruction budget"));
            }
            Ok(VmState::Continue)
        })?;
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
        env.raw_set("job", lua.create_table()?)?;
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
        self.collected.borrow_mut().clear();
        let before = self.lua.used_memory();
        self.counted.set(0);
        self.limit.set(self.budget);
        let _ = self
            .lua
            .set_memory_limit(before.saturating_add(self.memory).min(STATE_LIMIT));
        let result = self.lua.scope(|scope| {
            let env = self.env_of(run.job)?;
            let job: Table = env.raw_get("job")?;
            job.raw_set("name", run.job)?;
            job.raw_set("instance", run.instance)?;
            let vars = run.env;
            job.raw_set(
                "env",
                scope.create_function(move |_, key: String| {
                    Ok(vars
                        .iter()
                        .rev()
                        .find_map(|entry| entry.strip_prefix(key.as_str())?.strip_prefix('='))
                        .map(str::to_string))
                })?,
            )?;
            env.raw_set(
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
            env.raw_set(
                "metric",
                scope.create_function(|_, name: String| api.metric(&name).map_err(mlua::Error::runtime))?,
            )?;
            env.raw_set("now", scope.create_function(|_, ()| Ok(api.now()))?)?;
            let function = self.chunk(run, &env)?;
            let returned: MultiValue = function.call(())?;
            Ok(match returned.into_iter().next() {
                None | Some(Value::Nil) => None,
                Some(Value::Boolean(flag)) => Some(flag),
                Some(_) => Some(true),
            })
        });
        let instructions = self.counted.get();
        self.limit.set(u64::MAX);
        let _ = self.lua.set_memory_limit(STATE_LIMIT);
        let result = result.map_err(|error| self.explain(error, instructions));
        let collected = std::mem::take(&mut *self.collected.borrow_mut());
        Outcome {
            result,
            emits: collected.emits,
            logs: collected.logs,
            instructions,
        }
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
}
