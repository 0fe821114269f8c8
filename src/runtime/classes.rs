//! Installing and indexing job classes: a loaded configuration becomes classes, a changed
//! definition waits until the class has no instance, a deleted job goes when idle, and the
//! dispatch indexes (event name → classes) follow. Also the environment a job starts from,
//! and the instance a request addresses.

use log::info;

use crate::machine::Matcher;
use crate::machine::environ::{self, Environment, UnknownParameter};
use crate::model::Config;

use super::daemon::Daemon;
use super::jobs::{Class, ClassId};

impl Daemon {
    /// Installs the loaded jobs. A class whose instances are busy keeps its old definition
    /// until they are idle, as in Upstart.
    pub fn install(&mut self, config: Config) {
        self.declare_pools(&config.pools);
        // The tables that grow with the job count get their size at once: growing them by
        // doubling left each smaller copy behind as a hole in the heap, among the jobs. (Not
        // the pid table: how many jobs will run is not known here.)
        let new = config
            .jobs
            .iter()
            .filter(|job| !self.class_by_name.contains_key(&job.name))
            .count();
        self.classes.reserve(new);
        self.class_by_name.reserve(new);
        let mut seen = std::collections::HashSet::with_capacity(config.jobs.len());
        for job in config.jobs {
            seen.insert(job.name.clone());
            match self.class_by_name.get(&job.name).copied() {
                Some(id) => {
                    let class = self.classes.get_mut(id).expect("indexed class exists");
                    class.deleted = false;
                    if *class.job != job {
                        if !class.instances.is_empty() {
                            info!(
                                "{} changed; the new definition takes effect when its instances are idle",
                                job.name
                            );
                        }
                        class.replacement = Some(Box::new(job));
                        self.consider_replacement(id);
                    }
                }
                None => {
                    let start_on = job.start_on.as_ref().map(Matcher::new);
                    let name = job.name.clone();
                    let has_timers = super::timers::has_timers(&job);
                    let id = self.classes.insert(Class::new(job, start_on, false));
                    self.class_by_name.insert(name, id);
                    self.index_class(id);
                    if has_timers {
                        self.arm_timers(id);
                    }
                }
            }
        }
        let gone: Vec<ClassId> = self
            .class_by_name
            .iter()
            .filter(|(name, _)| !seen.contains(*name))
            .map(|(_, id)| *id)
            .collect();
        for id in gone {
            if let Some(class) = self.classes.get_mut(id) {
                class.deleted = true;
            }
            self.consider_replacement(id);
        }
    }

    pub(super) fn index_class(&mut self, id: ClassId) {
        let Some(class) = self.classes.get(id) else { return };
        if let Some(matcher) = &class.start_on {
            for name in matcher.event_names() {
                self.start_index.entry(name.to_string()).or_default().push(id);
            }
        }
        if let Some(expr) = &class.job.stop_on {
            for name in Matcher::new(expr).event_names() {
                self.stop_index.entry(name.to_string()).or_default().push(id);
            }
        }
    }

    /// Re-reads a class's expressions into the dispatch indexes.
    pub(super) fn reindex_class(&mut self, id: ClassId) {
        self.unindex_class(id);
        self.index_class(id);
    }

    pub(super) fn unindex_class(&mut self, id: ClassId) {
        for index in [&mut self.start_index, &mut self.stop_index] {
            for ids in index.values_mut() {
                ids.retain(|known| *known != id);
            }
            index.retain(|_, ids| !ids.is_empty());
        }
    }

    /// Swaps in a pending definition, or drops a deleted class, once no instance is active.
    pub(super) fn consider_replacement(&mut self, id: ClassId) {
        let Some(class) = self.classes.get_mut(id) else { return };
        if !class.instances.is_empty() {
            return;
        }
        if class.deleted {
            let held = class.start_on.as_mut().map(Matcher::reset).unwrap_or_default();
            let name = class.job.name.clone();
            self.lua.forget(&name);
            self.forget_timers(id);
            self.classes.remove(id);
            self.class_by_name.remove(&name);
            self.unindex_class(id);
            for event in held {
                self.release(event, false);
            }
            return;
        }
        if let Some(job) = class.replacement.take() {
            // Partial matches of the old expression are kept only if it did not change.
            let held = if class.job.start_on == job.start_on {
                Vec::new()
            } else {
                let held = class.start_on.as_mut().map(Matcher::reset).unwrap_or_default();
                class.start_on = job.start_on.as_ref().map(Matcher::new);
                held
            };
            let old = class.set_job(std::rc::Rc::from(job));
            // Its Lua globals start over with the new definition.
            self.lua.forget(&old.name);
            // Timers whose operands did not change keep running (and keep their due times).
            if !super::timers::same_timers(&old, &class.job) {
                self.arm_timers(id);
            }
            self.unindex_class(id);
            self.index_class(id);
            for event in held {
                self.release(event, false);
            }
        }
    }

    /// The environment a job starts from: the global table and the job's `env` stanzas.
    pub fn job_env(&self, class_id: ClassId) -> Environment {
        let mut env = Environment::new(self.global_env.clone(), Vec::new());
        let Some(class) = self.classes.get(class_id) else {
            return env;
        };
        // One merge of them all: a job may have many `env` lines.
        let own: Vec<String> = class
            .job
            .env
            .iter()
            .filter_map(|entry| match &entry.value {
                Some(value) => Some(format!("{}={value}", entry.key)),
                None => std::env::var(&entry.key)
                    .ok()
                    .map(|value| format!("{}={value}", entry.key)),
            })
            .collect();
        env.merge(&own);
        env
    }

    /// Finds a class by name.
    pub fn lookup(&self, job: &str) -> Result<ClassId, String> {
        self.class_by_name
            .get(job)
            .copied()
            .ok_or_else(|| format!("Unknown job: {job}"))
    }

    /// The instance name a command addresses: given directly, or the template expanded
    /// against the job environment and the command's `KEY=VALUE`s.
    pub fn instance_name(&self, class_id: ClassId, env: &[String], instance: Option<&str>) -> Result<String, String> {
        if let Some(name) = instance {
            return Ok(name.to_string());
        }
        let mut table = self.job_env(class_id);
        table.merge(env);
        let job = &self.class(class_id).job;
        environ::expand(&job.instance, &table).map_err(|UnknownParameter(param)| {
            let mut message = format!("Unknown parameter: {param}");
            if let Some(usage) = &job.about.usage {
                message.push_str(&format!("\nUsage: {usage}"));
            }
            message
        })
    }
}
