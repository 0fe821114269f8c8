//! The daemon side of the environment requests (`set-env`, `get-env`, `list-env`,
//! `unset-env`, `reset-env`).
//!
//! They edit the global job environment (the table every instance starts from) or, when a
//! job is named, one live instance's table, which its later processes get. Unlike Upstart's
//! PID 1, which refused to edit its table, uprise lets the daemon's owner (and root) do so in
//! system mode too.

use std::collections::HashSet;

use crate::machine::environ;

use super::daemon::Daemon;
use super::jobs::ClassId;

/// `VAR=VALUE`, or `VAR` for `VAR=`: the name and value.
fn parse_assignment(var: &str) -> Result<(&str, &str), String> {
    let (name, value) = var.split_once('=').unwrap_or((var, ""));
    if name.is_empty() {
        return Err(format!("Env must be VAR or VAR=VALUE: {var}"));
    }
    Ok((name, value))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') {
        return Err(format!("Invalid variable name: {name}"));
    }
    Ok(())
}

fn remove(env: &mut Vec<String>, name: &str) {
    env.retain(|entry| environ::key_of(entry) != name);
}

impl Daemon {
    /// The instance a job-local environment command addresses.
    fn env_instance(&self, job: &str, instance: Option<&str>) -> Result<(ClassId, String), String> {
        let class_id = self.lookup(job)?;
        let name = instance.unwrap_or_default().to_string();
        if !self.class(class_id).instances.contains_key(&name) {
            return Err(format!(
                "Unknown instance: {}",
                crate::control::proto::instance_name(job, &name)
            ));
        }
        Ok((class_id, name))
    }

    /// The table an environment command reads: the global one, or an instance's.
    fn env_table(&self, job: Option<&str>, instance: Option<&str>) -> Result<Vec<String>, String> {
        let Some(job) = job else {
            return Ok(self.global_env.to_vec());
        };
        let (class_id, name) = self.env_instance(job, instance)?;
        Ok(self.class(class_id).instances[&name].env.to_vec())
    }

    /// Applies `edit` to the table an environment command changes. An instance's pending
    /// start environment (a start that has not reached `starting` yet) is edited too.
    fn edit_env(
        &mut self,
        job: Option<&str>,
        instance: Option<&str>,
        mut edit: impl FnMut(&mut Vec<String>),
    ) -> Result<(), String> {
        let Some(job) = job else {
            edit(std::rc::Rc::make_mut(&mut self.global_env));
            return Ok(());
        };
        let (class_id, name) = self.env_instance(job, instance)?;
        let instance = self
            .classes
            .get_mut(class_id)
            .and_then(|class| class.instances.get_mut(&name))
            .ok_or_else(|| format!("Unknown instance: {}", crate::control::proto::instance_name(job, &name)))?;
        instance.env.edit(&mut edit);
        if let Some(start_env) = instance.start_env.as_mut() {
            start_env.edit(&mut edit);
        }
        Ok(())
    }

    /// `set-env [-r] VAR[=VALUE]...`: every argument is checked before anything changes.
    pub fn request_set_env(
        &mut self,
        vars: &[String],
        retain: bool,
        job: Option<&str>,
        instance: Option<&str>,
    ) -> Result<(), String> {
        if vars.is_empty() {
            return Err("missing variable name".into());
        }
        let pairs = vars
            .iter()
            .map(|var| parse_assignment(var))
            .collect::<Result<Vec<_>, _>>()?;
        self.edit_env(job, instance, |env| {
            // With `retain`, a variable already set (or set earlier in this request) stays.
            let mut set: HashSet<&str> = if retain {
                env.iter()
                    .filter_map(|entry| entry.split_once('='))
                    .map(|(key, _)| key)
                    .collect()
            } else {
                Default::default()
            };
            let entries: Vec<String> = pairs
                .iter()
                .filter(|(name, _)| !retain || set.insert(name))
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            environ::merge(env, &entries);
        })
    }

    /// `get-env VAR`: its value, or `No such variable: VAR`.
    pub fn request_get_env(&self, name: &str, job: Option<&str>, instance: Option<&str>) -> Result<String, String> {
        check_name(name)?;
        let table = self.env_table(job, instance)?;
        environ::get(&table, name)
            .map(str::to_string)
            .ok_or_else(|| format!("No such variable: {name}"))
    }

    /// `list-env`: the table's `KEY=VALUE` entries, sorted bytewise (as initctl's `strcmp`).
    pub fn request_list_env(&self, job: Option<&str>, instance: Option<&str>) -> Result<Vec<String>, String> {
        let mut entries = self.env_table(job, instance)?;
        entries.sort();
        Ok(entries)
    }

    /// `unset-env VAR...`: all or nothing; an unset variable is `No such variable: VAR`.
    pub fn request_unset_env(
        &mut self,
        names: &[String],
        job: Option<&str>,
        instance: Option<&str>,
    ) -> Result<(), String> {
        if names.is_empty() {
            return Err("missing variable name".into());
        }
        let table = self.env_table(job, instance)?;
        for name in names {
            check_name(name)?;
            if environ::get(&table, name).is_none() {
                return Err(format!("No such variable: {name}"));
            }
        }
        self.edit_env(job, instance, |env| {
            for name in names {
                remove(env, name);
            }
        })
    }

    /// `reset-env`: the global table goes back to what the daemon started with (rebuilt the
    /// same way); an instance's goes back to its job's defaults. Running instances keep their
    /// tables when the global one is reset, as in Upstart.
    pub fn request_reset_env(&mut self, job: Option<&str>, instance: Option<&str>) -> Result<(), String> {
        let Some(job_name) = job else {
            self.global_env = super::initial_environment(self.settings.user_mode).into();
            return Ok(());
        };
        let (class_id, name) = self.env_instance(job_name, instance)?;
        let defaults = self.job_env(class_id);
        if let Some(instance) = self
            .classes
            .get_mut(class_id)
            .and_then(|class| class.instances.get_mut(&name))
        {
            instance.env = defaults;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_and_names() {
        assert_eq!(parse_assignment("A=b=c"), Ok(("A", "b=c")));
        assert_eq!(parse_assignment("A"), Ok(("A", "")));
        assert!(parse_assignment("=x").is_err());
        assert!(check_name("A=b").is_err());
        assert!(check_name("").is_err());
        let mut env = vec!["A=1".to_string(), "AB=2".to_string()];
        remove(&mut env, "A");
        assert_eq!(env, vec!["AB=2".to_string()]);
    }
}
