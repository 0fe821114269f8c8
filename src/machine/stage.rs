//! The stages of a job's run, each with at most one process: the machine's own names for
//! them, so that it decides without the syntax tree (the runtime maps a job's processes to
//! stages once, when it installs the job).

use std::fmt;

/// One stage of a run: the process it runs, if the job defines one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    PreStart,
    Main,
    PostStart,
    PreStop,
    PostStop,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::PreStart,
        Stage::Main,
        Stage::PostStart,
        Stage::PreStop,
        Stage::PostStop,
    ];

    /// The stage's name in job files and in `PROCESS=` (Upstart's words).
    pub fn keyword(self) -> &'static str {
        match self {
            Stage::PreStart => "pre-start",
            Stage::Main => "main",
            Stage::PostStart => "post-start",
            Stage::PreStop => "pre-stop",
            Stage::PostStop => "post-stop",
        }
    }

    /// The stage named `keyword`.
    pub fn from_keyword(keyword: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.keyword() == keyword)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_read_back() {
        for stage in Stage::ALL {
            assert_eq!(Stage::from_keyword(stage.keyword()), Some(stage));
        }
        assert_eq!(Stage::from_keyword("reload"), None);
    }
}
