//! `uprisectl graph`, run as the real binary: offline on the Upstart corpus (DOT and SVG), a
//! golden DOT file for `tests/graph/jobs/`, and against a running daemon. The DOT output is
//! read back with a small DOT parser of the grammar the command writes (Graphviz is not
//! needed), and the SVG is checked for its shape.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{Harness, NOBODY, root_or_skip};

fn uprisectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uprisectl"))
        .args(args)
        .output()
        .expect("uprisectl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ------------------------------------------------------------------ a small DOT parser

/// `key=value` pairs of a statement.
type Attributes = Vec<(String, String)>;

/// A parsed DOT graph: node statements and edge statements, with their attributes.
#[derive(Debug, Default)]
struct Dot {
    name: String,
    nodes: Vec<(String, Attributes)>,
    edges: Vec<(String, String, Attributes)>,
}

impl Dot {
    fn node(&self, id: &str) -> Option<&[(String, String)]> {
        self.nodes
            .iter()
            .find(|(name, _)| name == id)
            .map(|(_, attributes)| attributes.as_slice())
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// An ID: a bare word or number, or a quoted string with its escapes undone.
    Id(String),
    Arrow,
    Punct(char),
}

fn tokens(source: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut letters = source.chars().peekable();
    while let Some(&letter) = letters.peek() {
        match letter {
            ' ' | '\t' | '\n' | '\r' => {
                letters.next();
            }
            '{' | '}' | '[' | ']' | ';' | ',' | '=' => {
                letters.next();
                out.push(Token::Punct(letter));
            }
            '-' => {
                letters.next();
                match letters.next() {
                    Some('>') => out.push(Token::Arrow),
                    other => return Err(format!("expected -> but found -{other:?}")),
                }
            }
            '"' => {
                letters.next();
                let mut value = String::new();
                loop {
                    match letters.next() {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => match letters.next() {
                            Some('"') => value.push('"'),
                            Some('\\') => value.push('\\'),
                            Some('n') => value.push('\n'),
                            Some(other) => return Err(format!("unexpected escape \\{other}")),
                            None => return Err("unterminated escape".into()),
                        },
                        Some('\n') => return Err("a raw line break in a string".into()),
                        Some(other) => value.push(other),
                    }
                }
                out.push(Token::Id(value));
            }
            letter if letter.is_ascii_alphanumeric() || letter == '_' || letter == '.' => {
                let mut word = String::new();
                while let Some(&letter) = letters.peek() {
                    if letter.is_ascii_alphanumeric() || letter == '_' || letter == '.' {
                        word.push(letter);
                        letters.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Id(word));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("unexpected end")?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, punct: char) -> Result<(), String> {
        match self.next()? {
            Token::Punct(found) if found == punct => Ok(()),
            other => Err(format!("expected {punct:?}, found {other:?}")),
        }
    }

    fn id(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Id(id) => Ok(id),
            other => Err(format!("expected an ID, found {other:?}")),
        }
    }

    /// `[ k = v (, | ;)? ... ]`, any number of lists.
    fn attributes(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        while self.peek() == Some(&Token::Punct('[')) {
            self.next()?;
            while self.peek() != Some(&Token::Punct(']')) {
                let key = self.id()?;
                self.expect('=')?;
                let value = self.id()?;
                out.push((key, value));
                if matches!(self.peek(), Some(Token::Punct(',' | ';'))) {
                    self.next()?;
                }
            }
            self.expect(']')?;
        }
        Ok(out)
    }

    /// Statements up to the closing brace.
    fn statements(&mut self, dot: &mut Dot) -> Result<(), String> {
        loop {
            match self.peek().cloned() {
                Some(Token::Punct('}')) => {
                    self.next()?;
                    return Ok(());
                }
                Some(Token::Punct(';')) => {
                    self.next()?;
                }
                Some(Token::Id(word)) if word == "subgraph" => {
                    self.next()?;
                    if let Some(Token::Id(_)) = self.peek() {
                        self.next()?;
                    }
                    self.expect('{')?;
                    self.statements(dot)?;
                }
                Some(Token::Id(word)) if ["graph", "node", "edge"].contains(&word.as_str()) => {
                    self.next()?;
                    self.attributes()?;
                }
                Some(Token::Id(_)) => {
                    let first = self.id()?;
                    match self.peek() {
                        Some(Token::Punct('=')) => {
                            self.next()?;
                            self.id()?;
                        }
                        Some(Token::Arrow) => {
                            self.next()?;
                            let second = self.id()?;
                            let attributes = self.attributes()?;
                            dot.edges.push((first, second, attributes));
                        }
                        _ => {
                            let attributes = self.attributes()?;
                            dot.nodes.push((first, attributes));
                        }
                    }
                }
                other => return Err(format!("unexpected {other:?}")),
            }
        }
    }
}

fn parse_dot(source: &str) -> Result<Dot, String> {
    let mut parser = Parser {
        tokens: tokens(source)?,
        at: 0,
    };
    match parser.next()? {
        Token::Id(word) if word == "digraph" => {}
        other => return Err(format!("expected digraph, found {other:?}")),
    }
    let mut dot = Dot {
        name: parser.id()?,
        ..Dot::default()
    };
    parser.expect('{')?;
    parser.statements(&mut dot)?;
    if parser.at != parser.tokens.len() {
        return Err("text after the graph".into());
    }
    Ok(dot)
}

/// Every edge joins declared nodes, every node has a label and a shape, no node twice.
fn check_dot(source: &str) -> Dot {
    let dot = parse_dot(source).unwrap_or_else(|error| panic!("DOT does not parse: {error}\n{source}"));
    assert_eq!(dot.name, "uprise");
    let mut seen = BTreeSet::new();
    for (id, attributes) in &dot.nodes {
        assert!(seen.insert(id.clone()), "node {id} declared twice");
        for key in ["label", "shape"] {
            assert!(attributes.iter().any(|(name, _)| name == key), "node {id} has a {key}");
        }
    }
    for (from, to, _) in &dot.edges {
        assert!(
            seen.contains(from) && seen.contains(to),
            "edge {from} -> {to} joins declared nodes"
        );
    }
    dot
}

/// The SVG's shape: one document, balanced groups, a group and a text per node, a group per edge.
fn check_svg(svg: &str, nodes: usize, edges: usize) {
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<g").count(),
        svg.matches("</g>").count(),
        "balanced groups"
    );
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    assert_eq!(svg.matches("<g class=\"node ").count(), nodes);
    assert_eq!(svg.matches("<g class=\"edge\">").count(), edges);
    let legend = svg.matches("<text").count() - nodes;
    assert_eq!(legend, 8, "the legend's texts");
    // Nothing but markup and escaped text: every `&` starts an entity.
    for (at, _) in svg.match_indices('&') {
        let rest = &svg[at..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|entity| rest.starts_with(entity)),
            "a bare & at {at}"
        );
    }
}

/// The nodes and edges of the DOT output, the legend's left out.
fn counts(dot: &Dot) -> (usize, usize) {
    let nodes = dot.nodes.iter().filter(|(id, _)| !id.starts_with("legend:")).count();
    let edges = dot
        .edges
        .iter()
        .filter(|(from, _, _)| !from.starts_with("legend:"))
        .count();
    (nodes, edges)
}

#[test]
fn the_dot_parser_reads_what_it_should_and_refuses_the_rest() {
    let dot = parse_dot("digraph \"g\" { graph [a=b]; \"x\\\"y\" [label=\"1\\n2\"]; x -> \"x\\\"y\" [k=v, l=\"m\"]; subgraph \"c\" { z; } }")
        .unwrap();
    assert_eq!(dot.nodes.len(), 2);
    assert_eq!(dot.node("x\"y").unwrap()[0].1, "1\n2");
    assert_eq!(dot.edges[0].0, "x");
    assert!(parse_dot("digraph g { a -> }").is_err());
    assert!(parse_dot("digraph g { \"a }").is_err());
    assert!(parse_dot("digraph g { a [k=] }").is_err());
}

#[test]
fn graph_of_the_fixed_jobs_matches_its_golden_dot() {
    let out = uprisectl(&["graph", "--offline", "tests/graph/jobs"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let actual = text(&out.stdout);
    let dot = check_dot(&actual);
    let odd = dot
        .node("event:deploy NAME=a \"quoted\" <b> & c")
        .expect("the quoted event");
    assert!(odd.contains(&("label".into(), "deploy\nNAME=a \"quoted\" <b> & c".into())));
    let golden = Path::new("tests/graph/jobs.dot");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    match std::fs::read_to_string(golden) {
        Ok(expected) if expected == actual => {}
        Ok(_) if !update => panic!(
            "{} differs; rerun with UPDATE_GOLDEN=1 and review the diff\n--- actual ---\n{actual}",
            golden.display()
        ),
        _ => {
            assert!(
                std::env::var_os("CI").is_none() || update,
                "{} is missing",
                golden.display()
            );
            std::fs::write(golden, &actual).expect("write golden");
        }
    }
    // The part around `web`: what leads to it and what follows, not `odd`.
    let out = uprisectl(&["graph", "--offline", "tests/graph/jobs", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let part = check_dot(&text(&out.stdout));
    assert!(part.node("job:db").is_some() && part.node("job:backup").is_some());
    assert!(part.node("job:odd").is_none());
    // SVG, to a file named by --output.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.svg");
    let out = uprisectl(&[
        "graph",
        "--offline",
        "tests/graph/jobs",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (nodes, edges) = counts(&dot);
    let svg = std::fs::read_to_string(&file).unwrap();
    check_svg(&svg, nodes, edges);
    assert!(svg.contains("NAME=a &quot;quoted&quot; &lt;b&gt; &amp; c"));
}

#[test]
fn the_upstart_corpus_renders_offline_as_dot_and_svg() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/upstart");
    if !dir.is_dir() {
        let _ = writeln!(
            std::io::stderr(),
            "the_upstart_corpus_renders_offline_as_dot_and_svg: skipped: the Upstart corpus is not at {}",
            dir.display()
        );
        return;
    }
    let dir = dir.to_str().unwrap();
    let out = uprisectl(&["graph", "--offline", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The one invalid file is reported and left out.
    assert!(text(&out.stderr).contains("their jobs are left out"));
    let dot = check_dot(&text(&out.stdout));
    let (nodes, edges) = counts(&dot);
    assert!(nodes > 50 && edges > 50, "{nodes} nodes, {edges} edges");
    let out = uprisectl(&["graph", "--format", "svg", "--offline", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    check_svg(&text(&out.stdout), nodes, edges);
}

#[test]
fn graph_asks_the_running_daemon() {
    let h = Harness::start(&[
        ("db", "start on startup\nemits db-ready\nexec sleep 1000\n"),
        (
            "web",
            "start on started db\nstop on stopping db\nuses cpu 1\nexec sleep 1000\n",
        ),
    ]);
    let out = h.ctl(&["graph"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let dot = check_dot(&out.stdout);
    assert!(
        dot.edges
            .iter()
            .any(|(from, to, _)| from == "job:db" && to == "event:started db")
    );
    assert!(dot.node("admit:web").is_some());
    let out = h.ctl(&["graph", "--format", "svg"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (nodes, edges) = counts(&dot);
    check_svg(&out.stdout, nodes, edges);
    assert!(out.stdout.contains(">started db</tspan>"));
    let out = h.ctl(&["graph", "nosuch"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(1), "uprisectl: Unknown job: nosuch\n")
    );
}

/// `graph` says what `show-config` says, and is open to the same users: everyone.
#[test]
fn graph_is_open_to_other_users_as_show_config_is() {
    if !root_or_skip("graph_is_open_to_other_users_as_show_config_is") {
        return;
    }
    let mut h = Harness::new(&[("web", "start on startup\nexec sleep 1000\n")]);
    h.share_with_others();
    h.spawn_system();
    for args in [&["show-config"][..], &["graph"]] {
        let out = h.ctl_as(NOBODY, args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
    }
}
