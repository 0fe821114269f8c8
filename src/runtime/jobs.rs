//! Job classes and instances at run time: what an instance holds, and how its environment
//! is built.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use calloop::RegistrationToken;

use crate::machine::environ::Environment;
use crate::machine::exit::{ExitStatus, RespawnWindow};
use crate::machine::{EventId, Goal, Matcher, State};
use crate::machine::{Processes, Stage};
use crate::model::Job;
use crate::model::small_map::SmallMap;
use crate::model::sparse::{Sparse, empty};

use super::deadlines::DeadlineId;
use super::output::JobLog;
use super::role::Role;

pub type ClientId = u64;

/// A class's handle: its slot in the [`ClassTable`] and the slot's generation. A slot freed
/// by a deleted job is used again by the next new one, under a new generation, so a key
/// kept by a timer or a client of the old class never reaches the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId {
    index: u32,
    generation: u32,
}

/// The loaded classes. A removed class frees its slot (and the name is kept there until the
/// slot is taken again, for a reply about it still due): adding and removing job files for
/// ever costs no more memory than the most jobs loaded at once.
#[derive(Default)]
pub struct ClassTable {
    slots: Vec<Slot>,
    /// Free slots, the most recently freed last.
    free: Vec<u32>,
    live: usize,
}

struct Slot {
    generation: u32,
    class: Option<Class>,
    /// The name of the class that left this slot (generation − 1), until it is taken again.
    gone: Option<String>,
}

impl ClassTable {
    /// Adds a class; returns its id.
    pub fn insert(&mut self, class: Class) -> ClassId {
        self.live += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.class = Some(class);
                slot.gone = None;
                ClassId {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                let index = self.slots.len() as u32;
                self.slots.push(Slot {
                    generation: 0,
                    class: Some(class),
                    gone: None,
                });
                ClassId { index, generation: 0 }
            }
        }
    }

    /// Removes a class; its slot is free for the next.
    pub fn remove(&mut self, id: ClassId) -> Option<Class> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let class = slot.class.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        slot.gone = Some(class.job.name.clone());
        self.free.push(id.index);
        self.live -= 1;
        Some(class)
    }

    pub fn get(&self, id: ClassId) -> Option<&Class> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.generation == id.generation).then_some(slot.class.as_ref())?
    }

    pub fn get_mut(&mut self, id: ClassId) -> Option<&mut Class> {
        let slot = self.slots.get_mut(id.index as usize)?;
        (slot.generation == id.generation).then_some(slot.class.as_mut())?
    }

    /// The name of a class removed since `id` was handed out, while its slot is still free.
    pub fn gone_name(&self, id: ClassId) -> Option<&str> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.class.is_none() && slot.generation == id.generation.wrapping_add(1)).then_some(slot.gone.as_deref())?
    }

    /// Every live class with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ClassId, &Class)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let id = ClassId {
                index: index as u32,
                generation: slot.generation,
            };
            slot.class.as_ref().map(|class| (id, class))
        })
    }

    /// How many classes are loaded.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// How many slots there are (a bound on slot positions, for a cursor over them).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The class in slot `position`, if one is there.
    pub fn at_slot(&self, position: usize) -> Option<&Class> {
        self.slots.get(position)?.class.as_ref()
    }

    /// Room for `more` new classes without growing the table by steps.
    pub fn reserve(&mut self, more: usize) {
        let more = more.saturating_sub(self.free.len());
        self.slots.reserve_exact(more);
    }
}

impl std::ops::Index<ClassId> for ClassTable {
    type Output = Class;

    fn index(&self, id: ClassId) -> &Class {
        self.get(id).expect("live class")
    }
}

/// Who waits for an instance to reach its goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// An event that started or stopped the instance; it finishes when the instance rests.
    Event(EventId),
    /// A client waiting on `start`, `stop` or `restart`.
    Client(ClientId),
}

/// Why an instance failed, for `RESULT=failed PROCESS=… EXIT_STATUS=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `pre-start`, `main`, `post-stop` or `respawn`.
    pub process: String,
    pub status: Option<ExitStatus>,
}

/// A stage timeout under way (`pre-start timeout` and friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageDeadline {
    pub stage: Stage,
    /// The stage's process, which the timeout kills if it still runs then.
    pub pid: i32,
    pub due: Instant,
    /// The timeout as written.
    pub timeout: Duration,
}

/// A process uprise waits for, in the daemon's pid table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub class: ClassId,
    pub instance: String,
    pub role: Role,
    /// uprise spawned it itself, so it leads its own session and process group for as long
    /// as it is not reaped (a session leader cannot leave its group). False for a daemon
    /// found by `expect fork`, `expect daemon`, a pid file or `MAINPID=`, and for processes
    /// taken over from a re-exec.
    pub spawned: bool,
}

/// One job class: a loaded job and its instances.
pub struct Class {
    /// Shared, so that handling an instance never copies the definition.
    pub job: Rc<Job>,
    /// The stages the job defines a process for, mapped from the job once when it is
    /// installed (or replaced).
    pub stages: Processes,
    pub start_on: Option<Matcher>,
    /// Boxed: a map node holds eleven slots, and an instance is several hundred bytes.
    pub instances: SmallMap<String, Box<Instance>>,
    /// A newer definition waiting for the instances to go idle.
    pub replacement: Option<Box<Job>>,
    /// The file is gone; the class goes when idle.
    pub deleted: bool,
    /// How the last instance ended (`RESULT=…` and the failing process), and when, for
    /// `status -v` once the instance is gone (boxed: a class slot is in one large table).
    pub last_result: Option<Box<(Instant, String)>>,
}

/// Numbers instances as they are made: no two share one in the daemon's life.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// One instance of a class.
pub struct Instance {
    /// This instance, and no other that ever had or will have its name (a deadline set for
    /// it names it so).
    pub serial: u64,
    pub name: String,
    pub goal: Goal,
    pub state: State,
    /// The environment its processes get.
    pub env: Environment,
    /// The environment for the next start, from the event or the start command.
    pub start_env: Option<Environment>,
    pub stop_on: Option<Matcher>,
    pub pids: SmallMap<Role, i32>,
    /// The instance's own `starting`/`stopping` event, which it waits to finish.
    pub blocker: Option<EventId>,
    /// Events and clients waiting for this instance to reach its goal.
    pub blocking: Vec<Blocked>,
    /// A restart is under way: run pre-stop, then start again.
    pub restarting: bool,
    /// Scripts are being killed because the goal changed under them.
    pub killing_scripts: bool,
    /// A process of it was started and not yet followed up (`Daemon::spawning`).
    pub spawning: bool,
    pub log: Option<LogPipe>,
    /// What the instance waits for in `spawned` (expect, pid file).
    pub awaiting: Option<super::readiness::Awaiting>,
    /// The back-off before the next respawn, once decided.
    pub pending_delay: Option<u64>,
    /// Order of reaching `running`, for the reverse-order shutdown.
    pub started_seq: u64,
    /// When the instance last reached `running` (a long run resets the respawn back-off).
    pub running_since: Option<Instant>,
    /// What a start waits for in `queued`, from the moment it is weighed until it is
    /// admitted or refused (see `admission/`). Not in [`Rare`]: a queued start would make
    /// that whole group for this one pointer.
    pub queued: Option<Box<super::admission::Queued>>,
    rare: Sparse<Rare>,
}

/// The parts of an instance that a service running quietly does not use, kept apart and
/// made on first use (a [`Sparse`]): such an instance costs a pointer for them, not some
/// 250 bytes.
/// Read them with [`Instance::rare`], write them with [`Instance::rare_mut`]; clearing one
/// goes through [`Instance::rare_if_any`], which makes nothing.
#[derive(Debug, Default)]
pub struct Rare {
    /// Why the instance failed; the first failure wins.
    pub failed: Option<Failure>,
    pub respawn: RespawnWindow,
    /// Consecutive respawns, for the back-off delay.
    pub respawn_streak: u32,
    /// The respawn back-off under way (its deadline says when it ends).
    pub delay: Option<DeadlineId>,
    /// Extra environment of pre-stop and post-stop: the stop event's or the stop command's.
    pub stop_env: Vec<String>,
    /// The last time a main process ended, and how, for `status -v`.
    pub last_exit: Option<(Instant, String)>,
    /// The last `STATUS=` sent on the notify socket.
    pub notify_status: Option<String>,
    /// Why the last process started without a log pipe (its output went to /dev/null).
    pub log_error: Option<String>,
    /// The pending SIGKILL (its deadline says when it is due), and to whom (carried over
    /// by re-exec).
    pub kill_deadline: Option<(DeadlineId, Vec<i32>)>,
    /// Stage timeouts under way.
    pub stage_deadlines: Vec<StageDeadline>,
    /// `uprisectl start --now`: the next start goes past its gate and pools.
    pub admit_now: bool,
    /// `watershed`: starts came while the task ran; one more run follows it, with the
    /// environment of the last of them.
    pub watershed: Option<Vec<String>>,
}

empty! {
    Rare => Rare {
        failed: None,
        respawn: RespawnWindow {
            started: None,
            count: 0,
        },
        respawn_streak: 0,
        delay: None,
        stop_env: Vec::new(),
        last_exit: None,
        notify_status: None,
        log_error: None,
        kill_deadline: None,
        stage_deadlines: Vec::new(),
        admit_now: false,
        watershed: None,
    },
}

/// The daemon's side of an instance's output: the log file, and the read ends of the pipes
/// its processes write to.
///
/// Each process gets a pipe of its own, and the daemon keeps only the read end: a job costs
/// the daemon one descriptor per running process, not two, and every descriptor the daemon
/// holds is one more that each spawn copies and each exec closes. A read end goes away at end
/// of file, when no process holds the write end any more.
pub struct LogPipe {
    /// Open read ends (the loop's sources own them): the fd and its source.
    pub readers: Vec<(std::os::fd::RawFd, RegistrationToken)>,
    pub log: JobLog,
}

impl LogPipe {
    /// Reads what every pipe holds now into the log, ahead of the loop. Called before the
    /// instance's next process starts, so the output of a stage that has ended (all of it
    /// is in its pipe by then) is logged before anything the next stage writes to its own
    /// pipe; and before the instance goes, so its last lines are not lost.
    pub fn drain_now(&mut self) {
        for (fd, _) in &self.readers {
            // SAFETY: the fd is open (its loop source owns it until it is removed, and then
            // it leaves `readers`); ManuallyDrop leaves closing it to that owner.
            let mut file =
                std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(*fd) });
            super::output::drain(&mut *file, &mut self.log);
        }
    }
}

impl Class {
    /// A class for `job`, with no instance.
    pub fn new(job: Job, start_on: Option<Matcher>, deleted: bool) -> Class {
        Class {
            stages: super::role::stages_of(&job),
            job: Rc::new(job),
            start_on,
            instances: SmallMap::new(),
            replacement: None,
            deleted,
            last_result: None,
        }
    }

    /// Puts `job` in place of the class's definition; returns the old one.
    pub fn set_job(&mut self, job: Rc<Job>) -> Rc<Job> {
        self.stages = super::role::stages_of(&job);
        std::mem::replace(&mut self.job, job)
    }
}

impl Instance {
    pub fn new(name: String) -> Instance {
        Instance {
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            name,
            goal: Goal::Stop,
            state: State::Waiting,
            env: Environment::default(),
            start_env: None,
            stop_on: None,
            pids: SmallMap::new(),
            blocker: None,
            blocking: Vec::new(),
            restarting: false,
            killing_scripts: false,
            spawning: false,
            log: None,
            awaiting: None,
            pending_delay: None,
            started_seq: 0,
            running_since: None,
            queued: None,
            rare: Sparse::default(),
        }
    }

    /// The rarely used parts; all empty when they were never set.
    pub fn rare(&self) -> &Rare {
        &self.rare
    }

    /// The rarely used parts, for setting one.
    pub fn rare_mut(&mut self) -> &mut Rare {
        &mut self.rare
    }

    /// The rarely used parts if any was ever set: for clearing one without making them.
    pub fn rare_if_any(&mut self) -> Option<&mut Rare> {
        self.rare.if_set()
    }

    pub fn main_alive(&self) -> bool {
        self.pids.contains_key(&Role::MAIN)
    }

    /// The goal as `status` shows it; a restart shows `start`.
    pub fn shown(&self) -> Goal {
        if self.restarting { Goal::Start } else { self.goal }
    }

    /// [`Instance::shown`]'s name.
    pub fn shown_goal(&self) -> &'static str {
        self.shown().name()
    }
}

/// `RESULT=ok`, or `RESULT=failed PROCESS=… [EXIT_STATUS=n|EXIT_SIGNAL=NAME]`: how an
/// instance ended, as its `stopping` and `stopped` events say it.
pub fn result_env(failed: Option<&Failure>) -> Vec<String> {
    let Some(failure) = failed else {
        return vec!["RESULT=ok".to_string()];
    };
    let mut env = vec!["RESULT=failed".to_string(), format!("PROCESS={}", failure.process)];
    env.extend(failure.status.map(exit_env));
    env
}

/// `EXIT_STATUS=n` or `EXIT_SIGNAL=NAME`, as Upstart puts it in job events.
fn exit_env(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(code) => format!("EXIT_STATUS={code}"),
        ExitStatus::Signal(signal) => {
            let name = crate::syntax::values::signal_name(signal).map_or_else(|| signal.to_string(), str::to_string);
            format!("EXIT_SIGNAL={name}")
        }
    }
}

/// How a process ended, in Upstart's log wording.
pub fn describe_exit(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(0) => "exited normally".to_string(),
        ExitStatus::Code(code) => format!("terminated with status {code}"),
        ExitStatus::Signal(signal) => {
            let name = crate::syntax::values::signal_name(signal).map_or_else(|| signal.to_string(), str::to_string);
            format!("killed by {name} signal")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(process: &str, status: Option<ExitStatus>) -> Failure {
        Failure {
            process: process.into(),
            status,
        }
    }

    #[test]
    fn result_env_is_upstarts() {
        assert_eq!(result_env(None), ["RESULT=ok"]);
        assert_eq!(
            result_env(Some(&failure("main", Some(ExitStatus::Code(3))))),
            ["RESULT=failed", "PROCESS=main", "EXIT_STATUS=3"]
        );
        assert_eq!(
            result_env(Some(&failure("main", Some(ExitStatus::Signal(15))))),
            ["RESULT=failed", "PROCESS=main", "EXIT_SIGNAL=TERM"]
        );
        assert_eq!(
            result_env(Some(&failure("respawn", None))),
            ["RESULT=failed", "PROCESS=respawn"]
        );
    }
}
