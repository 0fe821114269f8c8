//! Tidy checks: the docs and the grammar stay in step with the code.

use std::fs;
use std::path::Path;

use uprise::model::{Config, Severity};

fn source_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn grammar_md_embeds_the_grammar_byte_for_byte() {
    let grammar = fs::read_to_string("grammar/jobs.ebnf").unwrap();
    let doc = fs::read_to_string("docs/GRAMMAR.md").unwrap();
    let start = doc.find("```ebnf\n").expect("docs/GRAMMAR.md has an ebnf block") + "```ebnf\n".len();
    let end = start + doc[start..].find("```").expect("the block is closed");
    assert!(
        doc[start..end] == grammar,
        "docs/GRAMMAR.md's ebnf block differs from grammar/jobs.ebnf"
    );
}

/// The rule names defined in the grammar (left-hand sides).
fn grammar_rules() -> Vec<String> {
    let grammar = fs::read_to_string("grammar/jobs.ebnf").unwrap();
    let mut rules = Vec::new();
    for line in grammar.lines() {
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !line.starts_with(' ') {
            rules.push(name.to_string());
        }
    }
    rules
}

#[test]
fn every_grammar_rule_has_a_parser_function_of_the_same_name() {
    let mut files = Vec::new();
    source_files(Path::new("src/syntax"), &mut files);
    let code: String = files.iter().map(|path| fs::read_to_string(path).unwrap()).collect();
    let rules = grammar_rules();
    assert!(rules.len() > 60, "found only {} rules", rules.len());
    let missing: Vec<&String> = rules
        .iter()
        .filter(|rule| !code.contains(&format!("fn {rule}(")))
        .collect();
    assert!(missing.is_empty(), "rules without a parser function: {missing:?}");
}

#[test]
fn every_job_example_in_the_docs_parses() {
    let mut checked = 0;
    for entry in fs::read_dir("docs").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "md") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```job\n") {
            let body_start = start + "```job\n".len();
            let body_end = body_start + rest[body_start..].find("```").expect("closed fence");
            let body = &rest[body_start..body_end];
            let line = text[..text.len() - rest.len() + start].lines().count() + 1;
            let name = format!("{}:{line}", path.display());
            let config = Config::from_text("example", &name, body);
            let errors: String = config
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| config.sources.render(d))
                .collect();
            assert!(
                errors.is_empty(),
                "a ```job block in the docs does not parse:\n{errors}"
            );
            checked += 1;
            rest = &rest[body_end + 3..];
        }
    }
    assert!(
        checked >= 40,
        "expected the language reference to hold examples, found {checked}"
    );
}

#[test]
fn no_debugging_leftovers_in_src() {
    let mut files = Vec::new();
    source_files(Path::new("src"), &mut files);
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        for forbidden in ["dbg!(", "todo!(", "unimplemented!(", "FIXME", "PLACEHOLDER"] {
            assert!(!text.contains(forbidden), "{} contains {forbidden}", path.display());
        }
    }
}

/// The parts of `src/` (its top-level modules) each part uses, by `crate::PART` in its
/// files (tests included).
fn dependencies() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut graph = std::collections::BTreeMap::new();
    for entry in fs::read_dir("src").unwrap() {
        let path = entry.unwrap().path();
        let part = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !path.is_dir() || part == "bin" {
            continue;
        }
        let mut files = Vec::new();
        source_files(&path, &mut files);
        let mut uses = std::collections::BTreeSet::new();
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != part {
                    uses.insert(name);
                }
            }
        }
        graph.insert(part, uses);
    }
    graph
}

/// The graph `docs/ARCHITECTURE.md` states, in its "Dependencies between parts" table:
/// `| `PART` | `USED`, `USED` |` (or "nothing").
fn documented_dependencies() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let doc = fs::read_to_string("docs/ARCHITECTURE.md").unwrap();
    let section = doc
        .split("## Dependencies between parts")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a dependencies section");
    let section = section.split("\n## ").next().unwrap();
    let names = |cell: &str| -> std::collections::BTreeSet<String> {
        cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
    };
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // `| part | uses | why |`: the first cell names one part in backticks.
            if cells.len() < 4 || !cells[1].starts_with('`') {
                return None;
            }
            Some((cells[1].trim_matches('`').to_string(), names(cells[2])))
        })
        .collect()
}

/// The layers: the graph of parts is the one the architecture document states, and it
/// keeps the rules that matter most whatever the document says.
#[test]
fn the_parts_depend_on_each_other_as_the_architecture_says() {
    let actual = dependencies();
    let documented = documented_dependencies();
    for (part, uses) in &actual {
        let allowed = documented
            .get(part)
            .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md does not list the part `{part}`"));
        assert!(
            uses == allowed,
            "`{part}` uses {uses:?}; docs/ARCHITECTURE.md says {allowed:?}: change the code or the document"
        );
    }
    for part in documented.keys() {
        assert!(
            actual.contains_key(part),
            "docs/ARCHITECTURE.md lists `{part}`, which src/ does not have"
        );
    }
    let forbidden = [
        // Nothing below the runtime uses it; the client never does.
        ("control", "runtime"),
        ("ctl", "runtime"),
        ("lua", "runtime"),
        ("machine", "runtime"),
        ("model", "runtime"),
        ("reexec", "runtime"),
        ("syntax", "runtime"),
        ("sys", "runtime"),
        ("temporal", "runtime"),
        // The pure parts never touch the system.
        ("machine", "sys"),
        ("syntax", "sys"),
        ("temporal", "sys"),
        ("model", "sys"),
    ];
    for (part, used) in forbidden {
        assert!(
            !actual.get(part).is_some_and(|uses| uses.contains(used)),
            "`{part}` must not use `{used}`"
        );
    }
    // The wire format stands alone: any client can take it.
    assert!(actual["control"].is_empty(), "`control` uses {:?}", actual["control"]);
}
