//! The manual pages: `uprisectl(8)` from the client's command table, `uprise(8)` from the
//! daemon's option table, `uprise-jobs(5)` from `docs/language.md` (embedded at build time).
//! No date on the pages: the same build prints the same bytes, so the files in `man/` can be
//! compared with what the binary prints.

use super::daemon_options::{DAEMON_OPTIONS, DAEMON_SUMMARY};
use super::roff::{bold, escape, inline, markdown, text_line};
#[cfg(test)]
use crate::ctl::commands::option_value;
use crate::ctl::commands::{COMMANDS, GLOBAL_OPTIONS, GROUPS, NOTES, option_forms};

/// The job language reference, the source of `uprise-jobs(5)`.
const LANGUAGE_MD: &str = include_str!("../../../docs/language.md");

/// The page named `page` (one of `PAGES`).
pub(super) fn page(page: &str) -> String {
    match page {
        "uprisectl" => uprisectl(),
        "uprise" => uprise(),
        _ => jobs(),
    }
}

fn header(name: &str, section: u8, manual: &str) -> String {
    format!(
        ".\\\" Made by `uprisectl man {}`; do not edit.\n.TH {} {section} \"\" \"uprise {}\" \"{manual}\"\n",
        name.to_lowercase(),
        name.to_uppercase(),
        env!("CARGO_PKG_VERSION"),
    )
}

/// An option entry as a `.TP` paragraph: each form bold, the value italic.
fn option_entry(spec: &str, meaning: &str) -> String {
    let mut tag = Vec::new();
    for form in spec.split(", ") {
        match form.split_once(' ') {
            Some((name, value)) => tag.push(format!(r"{} \fI{}\fR", bold(name), escape(value, false))),
            None => tag.push(bold(form)),
        }
    }
    format!(".TP\n{}{}", text_line(&tag.join(", ")), text_line(&inline(meaning)))
}

/// Text in lines as the help writes it, as paragraphs.
fn paragraphs(text: &str) -> String {
    let mut out = String::new();
    for paragraph in text.split("\n\n") {
        out.push_str(".PP\n");
        for line in paragraph.lines() {
            out.push_str(&text_line(&inline(line)));
        }
    }
    out
}

/// A synopsis (`JOB [KEY=VALUE...]`): the option forms in it bold, the rest italic but the
/// brackets, bars and dots.
fn synopsis(args: &str) -> String {
    let mut out = String::new();
    for (index, word) in args.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        let mut current = String::new();
        let flush = |current: &mut String, out: &mut String| {
            if current.is_empty() {
                return;
            }
            if current.starts_with('-') {
                out.push_str(&bold(current));
            } else {
                out.push_str(&format!(r"\fI{}\fR", escape(current, false)));
            }
            current.clear();
        };
        for character in word.chars() {
            match character {
                '[' | ']' | '|' => {
                    flush(&mut current, &mut out);
                    out.push(character);
                }
                '.' => {
                    flush(&mut current, &mut out);
                    out.push('.');
                }
                other => current.push(other),
            }
        }
        flush(&mut current, &mut out);
    }
    out
}

fn uprisectl() -> String {
    let mut out = header("uprisectl", 8, "uprise");
    out.push_str(".SH NAME\nuprisectl \\- control the uprise daemon, compatible with Upstart's initctl\n");
    out.push_str(
        ".SH SYNOPSIS\n.B uprisectl\n[\\fIOPTION\\fR...] \\fICOMMAND\\fR [\\fIOPTION\\fR...] [\\fIARG\\fR...]\n.br\n",
    );
    out.push_str(".B start\\fR|\\fBstop\\fR|\\fBrestart\\fR|\\fBreload\\fR|\\fBstatus\n[\\fIOPTION\\fR...] [\\fIJOB\\fR [\\fIKEY=VALUE\\fR...]]\n.br\n");
    out.push_str(".B telinit\n[\\fIOPTION\\fR...] \\fIRUNLEVEL\\fR\n");
    out.push_str(".SH DESCRIPTION\n.PP\n");
    out.push_str(
        "\\fBuprisectl\\fR sends commands to the \\fBuprise\\fR(8) daemon on its control socket and prints its replies, as Upstart's \\fBinitctl\\fR(8) does, with the same output.\n\
         A few commands run without the daemon: they check job files, print schedules, send readiness from a job, and print completion scripts and these manual pages.\n",
    );
    out.push_str(&paragraphs(NOTES));
    out.push_str(".SH COMMANDS\n");
    for (heading, group) in GROUPS {
        out.push_str(&format!(".SS \"{heading}\"\n"));
        for help in COMMANDS.iter().filter(|help| help.group == group) {
            out.push_str(&format!(
                ".TP\n{}",
                text_line(format!("{} {}", bold(help.name), synopsis(help.args)).trim_end())
            ));
            let mut summary = help.summary.to_string();
            if let Some(first) = summary.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            out.push_str(&text_line(&format!("{}.", inline(&summary))));
            let own: Vec<_> = help
                .options
                .iter()
                .filter(|(spec, _)| option_forms(spec).next().is_some())
                .collect();
            if !own.is_empty() {
                out.push_str(".RS\n");
                for (spec, meaning) in own {
                    out.push_str(&option_entry(spec, meaning));
                }
                out.push_str(".RE\n");
            }
        }
    }
    out.push_str(".SH OPTIONS\n.PP\nThe commands that talk to the daemon take these options anywhere on the command line; the offline commands take only their own.\n");
    for (spec, meaning) in GLOBAL_OPTIONS {
        out.push_str(&option_entry(spec, meaning));
    }
    out.push_str(
        ".SH \"EXIT STATUS\"\n\
         .TP\n0\nSuccess.\n\
         .TP\n1\nThe daemon answered with an error or cannot be reached; \\fBcheck\\fR found an invalid file; \\fBcheck\\-config\\fR reported a condition that cannot be met; \\fBnext\\-elapse\\fR found a schedule that never fires.\n\
         .TP\n2\nA usage error, for every command: an unknown command or option, a missing or extra argument, a bad option value.\n\
         Upstart's \\fBinitctl\\fR exits 1 for a missing argument.\n\
         .SH ENVIRONMENT\n\
         .TP\n.B UPRISE_SOCKET\nThe control socket, when \\fB\\-\\-socket\\fR is not given.\n\
         .TP\n.B NO_COLOR\nWhen set and not empty, \\fBlist\\fR and \\fBstatus\\fR do not colour their output on a terminal (they never do through a pipe).\n\
         .TP\n.BR UPSTART_JOB \", \" UPSTART_INSTANCE\nSet in a job's processes: without \\fIJOB\\fR, the job commands act on that instance.\n\
         .TP\n.B NOTIFY_SOCKET\nWhere \\fBnotify\\fR sends; set for jobs with \\fBexpect notify\\fR.\n\
         .SH FILES\n\
         .TP\n.I /run/uprise/control\nThe system daemon's control socket.\n\
         .TP\n.I $XDG_RUNTIME_DIR/uprise/control\nA session daemon's control socket (\\fB/run/user/\\fIUID\\fB/uprise/control\\fR without \\fBXDG_RUNTIME_DIR\\fR).\n\
         .SH \"SEE ALSO\"\n\
         .BR uprise (8),\n.BR uprise\\-jobs (5),\n.BR initctl (8)\n",
    );
    out
}

fn uprise() -> String {
    let mut out = header("uprise", 8, "uprise");
    out.push_str(".SH NAME\nuprise \\- an event\\-driven init daemon and job supervisor\n");
    out.push_str(".SH SYNOPSIS\n.B uprise\n[\\fB\\-\\-user\\fR | \\fB\\-\\-system\\fR] [\\fIOPTION\\fR...]\n");
    out.push_str(".SH DESCRIPTION\n.PP\n");
    out.push_str(&text_line(&inline(DAEMON_SUMMARY)));
    out.push_str(
        ".PP\nJob files are described in \\fBuprise\\-jobs\\fR(5); \\fBuprisectl\\fR(8) controls the running daemon.\n\
         A job dir is watched: changed, added and deleted job files take effect without a reload.\n",
    );
    out.push_str(".SH OPTIONS\n");
    for (spec, meaning) in DAEMON_OPTIONS {
        out.push_str(&option_entry(spec, meaning));
    }
    out.push_str(
        ".SH SIGNALS\n\
         .TP\n.BR SIGTERM \", \" SIGINT\nIn user mode, stop every job and exit once they have stopped.\n\
         .TP\n.B SIGHUP\nReread the job files.\n\
         .SH \"EXIT STATUS\"\n\
         .TP\n0\nThe daemon stopped every job and exited.\n\
         .TP\n1\nIt could not start (a job dir named on the command line is missing, the control socket cannot be bound).\n\
         .TP\n2\nA usage error: an unknown option, an option without its value, a bad value, neither \\fB\\-\\-user\\fR nor \\fB\\-\\-system\\fR when not PID 1.\n\
         .SH FILES\n\
         .TP\n.I /etc/init\nThe system's job dir (system mode).\n\
         .TP\n.I ~/.config/uprise\nA session daemon's job dir (\\fB$XDG_CONFIG_HOME/uprise\\fR).\n\
         .TP\n.IR /var/log/uprise/ JOB .log\nA job's output (system mode; \\fB~/.cache/uprise\\fR in user mode).\n\
         .TP\n.I /run/uprise/control\nThe control socket (system mode; \\fB$XDG_RUNTIME_DIR/uprise/control\\fR in user mode).\n\
         .SH \"SEE ALSO\"\n\
         .BR uprisectl (8),\n.BR uprise\\-jobs (5),\n.BR init (8)\n",
    );
    out
}

fn jobs() -> String {
    let mut out = header("uprise-jobs", 5, "File Formats");
    out.push_str(".SH NAME\nuprise\\-jobs \\- the uprise job language: job files, stanzas and events\n");
    out.push_str(".SH SYNOPSIS\n.I /etc/init/JOB.conf\n.br\n.I ~/.config/uprise/JOB.conf\n.SH DESCRIPTION\n");
    out.push_str(&markdown(LANGUAGE_MD));
    out.push_str(".SH \"SEE ALSO\"\n.BR uprise (8),\n.BR uprisectl (8),\n.BR init (5)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uprisectl_names_every_command_and_option() {
        let text = uprisectl();
        for help in COMMANDS {
            assert!(text.contains(&bold(help.name)), "{}", help.name);
            for (spec, _) in help.options.iter().chain(GLOBAL_OPTIONS.iter()) {
                for form in option_forms(spec) {
                    assert!(text.contains(&bold(form)), "{} {form}", help.name);
                }
            }
        }
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "COMMANDS",
            "OPTIONS",
            "\"EXIT STATUS\"",
            "FILES",
            "\"SEE ALSO\"",
        ] {
            assert!(text.contains(&format!("\n.SH {section}\n")), "{section}");
        }
    }

    #[test]
    fn uprise_names_every_option_and_its_value() {
        let text = uprise();
        for (spec, _) in DAEMON_OPTIONS {
            for form in option_forms(spec) {
                assert!(text.contains(&bold(form)), "{form}");
            }
            if let Some(value) = option_value(spec) {
                assert!(text.contains(&format!(r"\fI{value}\fR")), "{value}");
            }
        }
    }

    #[test]
    fn no_line_is_read_as_a_request_by_mistake() {
        for name in super::super::PAGES {
            let text = page(name);
            for line in text.lines() {
                if let Some(request) = line.strip_prefix('.') {
                    let name = request.split(' ').next().unwrap_or("");
                    assert!(
                        [
                            "\\\"", "TH", "SH", "SS", "PP", "TP", "IP", "RS", "RE", "nf", "fi", "B", "I", "BR", "IR",
                            "br"
                        ]
                        .contains(&name),
                        "{name}: {line}"
                    );
                }
                assert!(!line.starts_with('\''), "{line}");
            }
        }
    }

    #[test]
    fn synopses_mark_options_and_values() {
        assert_eq!(synopsis("[-n N] JOB..."), r"[\fB\-n\fR \fIN\fR] \fIJOB\fR...");
    }
}
