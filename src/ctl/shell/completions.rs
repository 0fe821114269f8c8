//! Completion scripts for bash, zsh and fish, made from the help's table: the commands, each
//! command's own options (and the global ones for the commands that take them), what each
//! option's value is, and what a command's first argument is (a job, a file, a command, one
//! of a few words). A JOB is completed from a running daemon at completion time, by
//! `uprisectl list` with its errors ignored (no daemon: no job names).

use crate::ctl::commands::{
    COMMANDS, CommandHelp, GLOBAL_OPTIONS, LOG_PRIORITIES, OFFLINE, command_options, option_forms, option_value,
};

/// The script for `shell` (one of `SHELLS`).
pub(super) fn script(shell: &str) -> String {
    match shell {
        "bash" => bash(),
        "zsh" => zsh(),
        _ => fish(),
    }
}

/// What a command's positional arguments are, for completing them.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Argument {
    /// A job of the running daemon (the first argument only).
    Job,
    /// Files and dirs (every argument).
    Files,
    /// A command of the table (the first argument only).
    Command,
    /// One of these words (the first argument only).
    Words(Vec<String>),
    /// Nothing to offer.
    Nothing,
}

/// What `help`'s first positional argument is, read from its synopsis (`JOB [KEY=VALUE...]`,
/// `FILE|DIR...`, `bash|zsh|fish`, `0-6|S|q|u`); bracketed options are skipped.
pub(super) fn argument(help: &CommandHelp) -> Argument {
    let Some(word) = synopsis_groups(help.args)
        .into_iter()
        .find(|group| !group.starts_with("[-"))
    else {
        return Argument::Nothing;
    };
    let word = word
        .trim_start_matches('[')
        .trim_end_matches("...")
        .trim_end_matches(']');
    if word.contains("JOB") {
        Argument::Job
    } else if word.contains("FILE") {
        Argument::Files
    } else if word == "COMMAND" {
        Argument::Command
    } else if word == "LEVEL" {
        Argument::Words(LOG_PRIORITIES.iter().map(|level| level.to_string()).collect())
    } else if word.contains('|') {
        Argument::Words(word.split('|').flat_map(expand_range).collect())
    } else {
        Argument::Nothing
    }
}

/// `0-6` is seven words; anything else is itself.
fn expand_range(word: &str) -> Vec<String> {
    if let Some((low, high)) = word.split_once('-')
        && let (Ok(low), Ok(high)) = (low.parse::<u8>(), high.parse::<u8>())
    {
        return (low..=high).map(|digit| digit.to_string()).collect();
    }
    vec![word.to_string()]
}

/// A synopsis split at blanks outside brackets: `[-n N] JOB` is `[-n N]` and `JOB`.
fn synopsis_groups(synopsis: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    for (at, character) in synopsis.char_indices() {
        match character {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 => {
                if let Some(from) = start.take() {
                    groups.push(&synopsis[from..at]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(at);
    }
    if let Some(from) = start {
        groups.push(&synopsis[from..]);
    }
    groups
}

/// Whether an option's value is a path, to complete it with file names.
fn value_is_path(value: &str) -> bool {
    matches!(value, "PATH" | "DIR" | "FILE")
}

/// Every form of `options`, blank-separated: `-n --no-wait --socket`.
fn forms(options: &[(&str, &str)]) -> String {
    options
        .iter()
        .flat_map(|(spec, _)| option_forms(spec))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` in single quotes for sh.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn command_names() -> String {
    COMMANDS.iter().map(|help| help.name).collect::<Vec<_>>().join(" ")
}

/// The options `help` takes that have a value, with the value's name.
fn valued(options: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    options
        .iter()
        .filter_map(|(spec, _)| option_value(spec).map(|value| (*spec, value)))
        .flat_map(|(spec, value)| option_forms(spec).map(move |form| (form, value)))
        .collect()
}

fn bash() -> String {
    let mut text = String::from(
        "# bash completion for uprisectl, made by `uprisectl completions bash` from its --help table.\n\
         # Source it, or install it as /usr/share/bash-completion/completions/uprisectl.\n\
         \n\
         # The jobs of the running daemon (none when it cannot be reached).\n\
         _uprisectl_jobs() {\n\
         \x20   local line\n\
         \x20   command uprisectl \"$@\" list 2>/dev/null | while IFS= read -r line; do\n\
         \x20       [[ $line == $'\\t'* || -z $line ]] && continue\n\
         \x20       printf '%s\\n' \"${line%% *}\"\n\
         \x20   done | sort -u\n\
         }\n\
         \n\
         # Prints the name of the value option $2 takes with command $1, if it takes one.\n\
         _uprisectl_value() {\n\
         \x20   case $1 in\n",
    );
    for help in COMMANDS {
        let pairs = valued(&command_options(help));
        text.push_str(&format!("        {})\n            case $2 in\n", sh_quote(help.name)));
        for (form, value) in pairs {
            text.push_str(&format!("                {form}) echo {value}; return 0 ;;\n"));
        }
        text.push_str("            esac ;;\n");
    }
    text.push_str("        *)\n            case $2 in\n");
    for (form, value) in valued(&GLOBAL_OPTIONS) {
        text.push_str(&format!("                {form}) echo {value}; return 0 ;;\n"));
    }
    text.push_str("            esac ;;\n    esac\n    return 1\n}\n\n");
    text.push_str(&format!(
        "_uprisectl() {{\n\
         \x20   local cur=${{COMP_WORDS[COMP_CWORD]}} prev= command= positional=0 ended= word value i\n\
         \x20   local socket=() options= kind= words= every=\n\
         \x20   ((COMP_CWORD > 0)) && prev=${{COMP_WORDS[COMP_CWORD-1]}}\n\
         \x20   COMPREPLY=()\n\
         \x20   for ((i = 1; i < COMP_CWORD; i++)); do\n\
         \x20       word=${{COMP_WORDS[i]}}\n\
         \x20       if [[ -z $ended && $word == -- ]]; then ended=1; continue; fi\n\
         \x20       if [[ -z $ended && $word == -?* ]]; then\n\
         \x20           [[ $word == --socket=* ]] && socket=(\"$word\")\n\
         \x20           if _uprisectl_value \"$command\" \"$word\" >/dev/null; then\n\
         \x20               [[ $word == --socket ]] && socket=(--socket \"${{COMP_WORDS[i+1]}}\")\n\
         \x20               ((i++))\n\
         \x20           fi\n\
         \x20           continue\n\
         \x20       fi\n\
         \x20       if [[ -z $command ]]; then command=$word; else ((positional++)); fi\n\
         \x20   done\n\
         \x20   if [[ -z $ended && $prev == -?* ]] && value=$(_uprisectl_value \"$command\" \"$prev\"); then\n\
         \x20       case $value in PATH|DIR|FILE) COMPREPLY=($(compgen -f -- \"$cur\")) ;; esac\n\
         \x20       return 0\n\
         \x20   fi\n\
         \x20   if [[ -z $command ]]; then\n\
         \x20       if [[ $cur == -* ]]; then\n\
         \x20           COMPREPLY=($(compgen -W {globals} -- \"$cur\"))\n\
         \x20       else\n\
         \x20           COMPREPLY=($(compgen -W {commands} -- \"$cur\"))\n\
         \x20       fi\n\
         \x20       return 0\n\
         \x20   fi\n\
         \x20   case $command in\n",
        globals = sh_quote(&forms(&GLOBAL_OPTIONS)),
        commands = sh_quote(&command_names()),
    ));
    for help in COMMANDS {
        let (kind, words, every) = match argument(help) {
            Argument::Job => ("job", String::new(), ""),
            Argument::Files => ("files", String::new(), "1"),
            Argument::Command => ("words", command_names(), ""),
            Argument::Words(words) => ("words", words.join(" "), ""),
            Argument::Nothing => ("", String::new(), ""),
        };
        text.push_str(&format!(
            "        {}) options={} kind={kind} words={} every={every} ;;\n",
            sh_quote(help.name),
            sh_quote(&forms(&command_options(help))),
            sh_quote(&words),
        ));
    }
    text.push_str(
        "        *) return 0 ;;\n\
         \x20   esac\n\
         \x20   if [[ -z $ended && $cur == -* ]]; then\n\
         \x20       COMPREPLY=($(compgen -W \"$options\" -- \"$cur\"))\n\
         \x20       return 0\n\
         \x20   fi\n\
         \x20   ((positional > 0)) && [[ -z $every ]] && return 0\n\
         \x20   case $kind in\n\
         \x20       job) COMPREPLY=($(compgen -W \"$(_uprisectl_jobs \"${socket[@]}\")\" -- \"$cur\")) ;;\n\
         \x20       files) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n\
         \x20       words) COMPREPLY=($(compgen -W \"$words\" -- \"$cur\")) ;;\n\
         \x20   esac\n\
         \x20   return 0\n\
         }\n\
         \n\
         complete -o bashdefault -o default -F _uprisectl uprisectl\n",
    );
    text
}

/// `text` inside an `_arguments` description (`[...]`) or a `_describe` entry, in zsh's
/// single quotes.
fn zsh_describe(text: &str) -> String {
    let mut out = String::new();
    for character in text.chars() {
        match character {
            '[' | ']' | ':' | '\\' => {
                out.push('\\');
                out.push(character);
            }
            '\'' => out.push_str(r"'\''"),
            other => out.push(other),
        }
    }
    out
}

/// `_arguments` specs for `options`, one quoted word each.
fn zsh_specs(options: &[(&str, &str)]) -> Vec<String> {
    let mut specs = Vec::new();
    for (spec, meaning) in options {
        let value = option_value(spec).map(|value| {
            let action = if value_is_path(value) { "_files" } else { " " };
            format!(":{}:{action}", zsh_describe(value))
        });
        for form in option_forms(spec) {
            specs.push(format!(
                "'{form}[{}]{}'",
                zsh_describe(meaning),
                value.clone().unwrap_or_default()
            ));
        }
    }
    specs
}

fn zsh() -> String {
    let mut text = String::from(
        "#compdef uprisectl\n\
         # zsh completion for uprisectl, made by `uprisectl completions zsh` from its --help table.\n\
         # Install it as _uprisectl in a directory of $fpath.\n\
         \n\
         # The jobs of the running daemon (none when it cannot be reached).\n\
         _uprisectl_jobs() {\n\
         \x20 local -a jobs\n\
         \x20 jobs=(${(f)\"$(_call_program jobs uprisectl list 2>/dev/null | awk '/^[^\\t]/ {print $1}' | sort -u)\"})\n\
         \x20 _wanted jobs expl job compadd -a jobs\n\
         }\n\
         \n\
         _uprisectl() {\n\
         \x20 local curcontext=$curcontext state line ret=1\n\
         \x20 local -a commands globals\n\
         \x20 commands=(\n",
    );
    for help in COMMANDS {
        text.push_str(&format!("    '{}:{}'\n", help.name, zsh_describe(help.summary)));
    }
    text.push_str("  )\n  globals=(\n");
    for spec in zsh_specs(&GLOBAL_OPTIONS) {
        text.push_str(&format!("    {spec}\n"));
    }
    text.push_str(
        "  )\n\
         \x20 _arguments -C $globals '1:command:->command' '*::argument:->argument' && ret=0\n\
         \x20 case $state in\n\
         \x20   command) _describe -t commands command commands && ret=0 ;;\n\
         \x20   argument)\n\
         \x20     curcontext=${curcontext%:*:*}:uprisectl-$words[1]:\n\
         \x20     case $words[1] in\n",
    );
    for help in COMMANDS {
        let mut specs = zsh_specs(&command_options(help));
        match argument(help) {
            Argument::Job => specs.push("'1:job:_uprisectl_jobs'".into()),
            Argument::Files => specs.push("'*:file:_files'".into()),
            Argument::Command => specs.push("'1:command:{_describe -t commands command commands}'".into()),
            Argument::Words(words) => specs.push(format!("'1:argument:({})'", words.join(" "))),
            Argument::Nothing => {}
        }
        if !matches!(argument(help), Argument::Files) {
            specs.push("'*:: :'".into());
        }
        text.push_str(&format!(
            "        {})\n          _arguments {} && ret=0 ;;\n",
            help.name,
            specs.join(" \\\n            ")
        ));
    }
    text.push_str("      esac ;;\n  esac\n  return ret\n}\n\n_uprisectl \"$@\"\n");
    text
}

/// `text` in fish's single quotes.
fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

fn fish() -> String {
    let offline = OFFLINE.join(" ");
    let mut text = String::from(
        "# fish completion for uprisectl, made by `uprisectl completions fish` from its --help table.\n\
         # Install it as ~/.config/fish/completions/uprisectl.fish.\n\
         \n\
         # The jobs of the running daemon (none when it cannot be reached).\n\
         function __uprisectl_jobs\n\
         \x20   command uprisectl list 2>/dev/null | string match -rv '^\\t' | string replace -r ' .*' '' | sort -u\n\
         end\n\
         \n\
         complete -c uprisectl -f\n",
    );
    for help in COMMANDS {
        text.push_str(&format!(
            "complete -c uprisectl -n __fish_use_subcommand -a {} -d {}\n",
            help.name,
            fish_quote(help.summary)
        ));
    }
    let option_line = |condition: &str, spec: &str, meaning: &str| {
        let mut line = format!("complete -c uprisectl -n {}", fish_quote(condition));
        for form in option_forms(spec) {
            match form.strip_prefix("--") {
                Some(long) => line.push_str(&format!(" -l {long}")),
                None => line.push_str(&format!(" -s {}", &form[1..])),
            }
        }
        match option_value(spec) {
            Some(value) if value_is_path(value) => line.push_str(" -r -F"),
            Some(_) => line.push_str(" -x"),
            None => {}
        }
        line.push_str(&format!(" -d {}\n", fish_quote(meaning)));
        line
    };
    for (spec, meaning) in GLOBAL_OPTIONS {
        if option_forms(spec).next().is_some() {
            text.push_str(&option_line(
                &format!("not __fish_seen_subcommand_from {offline}"),
                spec,
                meaning,
            ));
        }
    }
    for help in COMMANDS {
        let condition = format!("__fish_seen_subcommand_from {}", help.name);
        for (spec, meaning) in help.options {
            if option_forms(spec).next().is_some() {
                text.push_str(&option_line(&condition, spec, meaning));
            }
        }
        let arguments = match argument(help) {
            Argument::Job => Some("(__uprisectl_jobs)".to_string()),
            Argument::Files => {
                text.push_str(&format!("complete -c uprisectl -n {} -F\n", fish_quote(&condition)));
                None
            }
            Argument::Command => Some(command_names()),
            Argument::Words(words) => Some(words.join(" ")),
            Argument::Nothing => None,
        };
        if let Some(arguments) = arguments {
            text.push_str(&format!(
                "complete -c uprisectl -n {} -a {}\n",
                fish_quote(&condition),
                fish_quote(&arguments)
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::command_help;

    fn arg(name: &str) -> Argument {
        argument(command_help(name).unwrap())
    }

    #[test]
    fn arguments_are_read_from_the_synopses() {
        assert_eq!(arg("start"), Argument::Job);
        assert_eq!(arg("log"), Argument::Job);
        assert_eq!(arg("check-config"), Argument::Job);
        assert_eq!(arg("check"), Argument::Files);
        assert_eq!(arg("help"), Argument::Command);
        assert_eq!(arg("shutdown"), Argument::Nothing);
        assert_eq!(arg("next-elapse"), Argument::Nothing);
        assert_eq!(
            arg("completions"),
            Argument::Words(vec!["bash".into(), "zsh".into(), "fish".into()])
        );
        let Argument::Words(levels) = arg("telinit") else {
            panic!()
        };
        assert_eq!(levels.join(" "), "0 1 2 3 4 5 6 S q u");
        assert!(matches!(arg("log-priority"), Argument::Words(words) if words.len() == 6));
    }

    #[test]
    fn every_script_names_every_command_and_option() {
        for shell in super::super::SHELLS {
            let text = script(shell);
            for help in COMMANDS {
                assert!(text.contains(help.name), "{shell}: {}", help.name);
                for (spec, _) in command_options(help) {
                    for form in option_forms(spec) {
                        let written = match shell {
                            "fish" => match form.strip_prefix("--") {
                                Some(long) => format!("-l {long}"),
                                None => format!("-s {}", &form[1..]),
                            },
                            _ => form.to_string(),
                        };
                        assert!(text.contains(&written), "{shell}: {} {written}", help.name);
                    }
                }
            }
        }
    }
}
