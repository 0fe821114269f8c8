//! The graph in Graphviz's DOT language (`dot -Tsvg` draws it), with a legend.

use super::build::{EdgeKind, Graph, NodeKind};
use super::style;

/// A DOT quoted string: `"` and `\` escaped, each line break as `\n`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for letter in text.chars() {
        match letter {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            letter => out.push(letter),
        }
    }
    out.push('"');
    out
}

fn node_attributes(kind: NodeKind) -> String {
    let shape = match kind {
        NodeKind::Job => "box",
        NodeKind::Event => "diamond",
        NodeKind::Timer => "note",
        NodeKind::Admission => "octagon",
    };
    let style = if kind == NodeKind::Job {
        "rounded,filled"
    } else {
        "filled"
    };
    format!(
        "shape={shape}, style={}, fillcolor={}, color={}",
        quote(style),
        quote(style::fill(kind)),
        quote(style::stroke(kind))
    )
}

fn edge_attributes(kind: EdgeKind) -> String {
    let style = match kind {
        EdgeKind::Start | EdgeKind::Emits => "solid",
        EdgeKind::Stop => "dashed",
        EdgeKind::Admits => "dotted",
    };
    format!("style={style}, color={}", quote(style::edge_color(kind)))
}

/// The whole DOT document.
pub fn dot(graph: &Graph) -> String {
    let mut out = String::from("digraph \"uprise\" {\n");
    out.push_str("  graph [rankdir=LR, nodesep=0.25, ranksep=0.7, fontname=\"Helvetica\"];\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [arrowsize=0.7];\n");
    for node in &graph.nodes {
        out.push_str(&format!(
            "  {} [label={}, {}];\n",
            quote(&node.id),
            quote(&node.label.join("\n")),
            node_attributes(node.kind)
        ));
    }
    for edge in &graph.edges {
        out.push_str(&format!(
            "  {} -> {} [{}];\n",
            quote(&graph.nodes[edge.from].id),
            quote(&graph.nodes[edge.to].id),
            edge_attributes(edge.kind)
        ));
    }
    out.push_str("  subgraph \"cluster_legend\" {\n");
    out.push_str("    label=\"legend\";\n    color=\"#bbbbbb\";\n    fontsize=11;\n");
    for (kind, text) in style::NODE_LEGEND {
        out.push_str(&format!(
            "    {} [label={}, {}];\n",
            quote(&format!("legend:{text}")),
            quote(text),
            node_attributes(kind)
        ));
    }
    for (at, (kind, text)) in style::EDGE_LEGEND.iter().enumerate() {
        let from = quote(&format!("legend:edge{at}a"));
        let to = quote(&format!("legend:edge{at}b"));
        out.push_str(&format!("    {from} [label=\"\", shape=point, width=0.05];\n"));
        out.push_str(&format!("    {to} [label=\"\", shape=point, width=0.05];\n"));
        out.push_str(&format!(
            "    {from} -> {to} [label={}, fontsize=10, {}];\n",
            quote(text),
            edge_attributes(*kind)
        ));
    }
    out.push_str("  }\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_quotes_backslashes_and_line_breaks() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
