//! The graph drawn as SVG, without Graphviz: node sizes from their labels (a monospace font,
//! so a label's width is its length), `layout` for the positions, edges as curves with
//! arrowheads, a legend across the top.

use super::build::{EdgeKind, Graph, NodeKind};
use super::layout::{self, Point, Size, Spacing};
use super::style;

const FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";
const FONT_SIZE: f64 = 12.0;
/// The advance of one character of `FONT` at `FONT_SIZE` (0.6 em), with a little to spare.
const CHAR_WIDTH: f64 = 7.3;
const LINE_HEIGHT: f64 = 15.0;
const ARROW_LENGTH: f64 = 8.0;
const ARROW_HALF_WIDTH: f64 = 3.5;
const LEGEND_HEIGHT: f64 = 44.0;

/// Text with `&`, `<`, `>`, `"` and `'` escaped for XML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for letter in text.chars() {
        match letter {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            letter if (letter as u32) < 0x20 && letter != '\t' => out.push(' '),
            letter => out.push(letter),
        }
    }
    out
}

fn text_width(lines: &[String]) -> f64 {
    lines.iter().map(|line| line.chars().count()).max().unwrap_or(0) as f64 * CHAR_WIDTH
}

/// A node's box, from its kind and label.
pub fn node_size(kind: NodeKind, label: &[String]) -> Size {
    let text = text_width(label);
    let lines = label.len().max(1) as f64 * LINE_HEIGHT;
    match kind {
        NodeKind::Job => Size {
            width: text + 24.0,
            height: lines + 14.0,
        },
        // Tall enough that the label's block fits inside the diamond without it growing
        // too wide: at the block's top and bottom the diamond is still as wide as the text.
        NodeKind::Event => {
            let half_block = lines / 2.0;
            let half_height = 2.0 * half_block + 8.0;
            let half_width = (text / 2.0 + 6.0) / (1.0 - half_block / half_height);
            Size {
                width: 2.0 * half_width,
                height: 2.0 * half_height,
            }
        }
        NodeKind::Timer => Size {
            width: text + 30.0,
            height: lines + 14.0,
        },
        NodeKind::Admission => Size {
            width: text + 32.0,
            height: lines + 16.0,
        },
    }
}

/// How far inside its box a node's outline is, at `dy` from the middle, on the left or right.
fn side_inset(kind: NodeKind, size: Size, dy: f64) -> f64 {
    let half_height = size.height / 2.0;
    match kind {
        NodeKind::Event => size.width / 2.0 * (dy.abs() / half_height).min(1.0),
        NodeKind::Admission => {
            let corner = octagon_corner(size);
            (dy.abs() - (half_height - corner)).max(0.0)
        }
        NodeKind::Job | NodeKind::Timer => 0.0,
    }
}

fn octagon_corner(size: Size) -> f64 {
    (size.height / 3.0).min(9.0)
}

fn number(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded == rounded.trunc() {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded:.1}")
    }
}

fn points(list: &[(f64, f64)]) -> String {
    list.iter()
        .map(|(x, y)| format!("{},{}", number(*x), number(*y)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A node's outline, centered on `center`.
fn shape(kind: NodeKind, center: Point, size: Size) -> String {
    let (left, right) = (center.x - size.width / 2.0, center.x + size.width / 2.0);
    let (top, bottom) = (center.y - size.height / 2.0, center.y + size.height / 2.0);
    let paint = format!(
        "fill=\"{}\" stroke=\"{}\" stroke-width=\"1.2\"",
        style::fill(kind),
        style::stroke(kind)
    );
    match kind {
        NodeKind::Job => format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" {paint}/>",
            number(left),
            number(top),
            number(size.width),
            number(size.height)
        ),
        NodeKind::Event => format!(
            "<polygon points=\"{}\" {paint}/>",
            points(&[(left, center.y), (center.x, top), (right, center.y), (center.x, bottom)])
        ),
        NodeKind::Timer => {
            let fold = 8.0;
            format!(
                "<polygon points=\"{}\" {paint}/><polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\"/>",
                points(&[
                    (left, top),
                    (right - fold, top),
                    (right, top + fold),
                    (right, bottom),
                    (left, bottom)
                ]),
                points(&[(right - fold, top), (right - fold, top + fold), (right, top + fold)]),
                style::stroke(kind)
            )
        }
        NodeKind::Admission => {
            let corner = octagon_corner(size);
            format!(
                "<polygon points=\"{}\" {paint}/>",
                points(&[
                    (left + corner, top),
                    (right - corner, top),
                    (right, top + corner),
                    (right, bottom - corner),
                    (right - corner, bottom),
                    (left + corner, bottom),
                    (left, bottom - corner),
                    (left, top + corner),
                ])
            )
        }
    }
}

/// A label's lines, centered on `center`.
fn label(lines: &[String], center: Point) -> String {
    let first = center.y - (lines.len().saturating_sub(1)) as f64 * LINE_HEIGHT / 2.0 + FONT_SIZE * 0.35;
    let mut out = format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">",
        number(center.x),
        number(first)
    );
    for (at, line) in lines.iter().enumerate() {
        if at == 0 {
            out.push_str(&format!("<tspan x=\"{}\">{}</tspan>", number(center.x), escape(line)));
        } else {
            out.push_str(&format!(
                "<tspan x=\"{}\" dy=\"{}\">{}</tspan>",
                number(center.x),
                number(LINE_HEIGHT),
                escape(line)
            ));
        }
    }
    out.push_str("</text>");
    out
}

fn dash(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Start | EdgeKind::Emits => "",
        EdgeKind::Stop => " stroke-dasharray=\"6 4\"",
        EdgeKind::Admits => " stroke-dasharray=\"2 3\"",
    }
}

/// A curve through `route` (level at every point, so it bends only between columns) and an
/// arrowhead at its end.
fn edge(route: &[Point], kind: EdgeKind) -> String {
    let color = style::edge_color(kind);
    let Some((&tip, rest)) = route.split_last() else {
        return String::new();
    };
    let before = rest.last().copied().unwrap_or(tip);
    let direction = if tip.x >= before.x { 1.0 } else { -1.0 };
    let base = Point {
        x: tip.x - direction * ARROW_LENGTH,
        y: tip.y,
    };
    let mut path = String::new();
    let mut previous = route[0];
    path.push_str(&format!("M{},{}", number(previous.x), number(previous.y)));
    for (at, &point) in route.iter().enumerate().skip(1) {
        let point = if at == route.len() - 1 { base } else { point };
        let middle = (previous.x + point.x) / 2.0;
        if (previous.y - point.y).abs() < 0.05 {
            path.push_str(&format!(" L{},{}", number(point.x), number(point.y)));
        } else {
            path.push_str(&format!(
                " C{},{} {},{} {},{}",
                number(middle),
                number(previous.y),
                number(middle),
                number(point.y),
                number(point.x),
                number(point.y)
            ));
        }
        previous = point;
    }
    format!(
        "<path d=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.3\"{}/><polygon points=\"{}\" fill=\"{color}\"/>",
        dash(kind),
        points(&[
            (tip.x, tip.y),
            (base.x, base.y - ARROW_HALF_WIDTH),
            (base.x, base.y + ARROW_HALF_WIDTH)
        ])
    )
}

/// The legend: each kind of node, then each kind of edge, in a row; and its width.
fn legend() -> (String, f64) {
    let mut out = String::from("<g class=\"legend\">");
    let mut x = 12.0;
    let middle = LEGEND_HEIGHT / 2.0;
    for (kind, text) in style::NODE_LEGEND {
        let lines = [text.to_string()];
        let size = node_size(kind, &lines);
        let center = Point {
            x: x + size.width / 2.0,
            y: middle,
        };
        out.push_str(&shape(kind, center, size));
        out.push_str(&label(&lines, center));
        x += size.width + 14.0;
    }
    for (kind, text) in style::EDGE_LEGEND {
        let route = [Point { x, y: middle }, Point { x: x + 36.0, y: middle }];
        out.push_str(&edge(&route, kind));
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\">{}</text>",
            number(x + 42.0),
            number(middle + FONT_SIZE * 0.35),
            escape(text)
        ));
        x += 42.0 + text.len() as f64 * CHAR_WIDTH + 18.0;
    }
    out.push_str("</g>");
    (out, x)
}

/// The whole SVG document.
pub fn svg(graph: &Graph) -> String {
    let sizes: Vec<Size> = graph
        .nodes
        .iter()
        .map(|node| node_size(node.kind, &node.label))
        .collect();
    let pairs: Vec<(usize, usize)> = graph.edges.iter().map(|edge| (edge.from, edge.to)).collect();
    let drawn = layout::layout(&sizes, &pairs, Spacing::default());
    let (legend, legend_width) = legend();
    let width = drawn.width.max(legend_width);
    let height = drawn.height + LEGEND_HEIGHT;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"{FONT}\" font-size=\"{}\">\n",
        number(FONT_SIZE),
        w = number(width),
        h = number(height),
    );
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    out.push_str(&legend);
    out.push('\n');
    out.push_str(&format!(
        "<line x1=\"0\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#dddddd\"/>\n",
        number(width),
        y = number(LEGEND_HEIGHT)
    ));
    out.push_str(&format!("<g transform=\"translate(0,{})\">\n", number(LEGEND_HEIGHT)));
    for (edge_index, graph_edge) in graph.edges.iter().enumerate() {
        let mut route = drawn.routes[edge_index].clone();
        if route.len() < 2 {
            continue;
        }
        // The ends on the outlines, not on the boxes.
        for (end, node) in [(0, graph_edge.from), (route.len() - 1, graph_edge.to)] {
            let center = drawn.centers[node];
            let inset = side_inset(graph.nodes[node].kind, sizes[node], route[end].y - center.y);
            route[end].x += if route[end].x > center.x { -inset } else { inset };
        }
        out.push_str(&format!(
            "<g class=\"edge\"><title>{} -&gt; {}</title>{}</g>\n",
            escape(&graph.nodes[graph_edge.from].id),
            escape(&graph.nodes[graph_edge.to].id),
            edge(&route, graph_edge.kind)
        ));
    }
    for (index, node) in graph.nodes.iter().enumerate() {
        let class = match node.kind {
            NodeKind::Job => "job",
            NodeKind::Event => "event",
            NodeKind::Timer => "timer",
            NodeKind::Admission => "admission",
        };
        out.push_str(&format!(
            "<g class=\"node {class}\"><title>{}</title>{}{}</g>\n",
            escape(&node.id),
            shape(node.kind, drawn.centers[index], sizes[index]),
            label(&node.label, drawn.centers[index])
        ));
    }
    out.push_str("</g>\n</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::graph::build::Graph;
    use crate::model::Config;
    use crate::model::links::Links;

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn one_group_and_one_text_per_node_and_a_path_per_edge() {
        let jobs: Vec<Links> = [
            ("db", "start on startup\nexec db\n"),
            (
                "web",
                "start on started db and every 1h\nstop on stopping db\nuses cpu 1\nexec web\n",
            ),
        ]
        .iter()
        .map(|(name, text)| Links::of(&Config::from_text(name, &format!("{name}.conf"), text).jobs[0]))
        .collect();
        let graph = Graph::of_jobs(&jobs);
        let text = svg(&graph);
        assert!(text.starts_with("<svg "));
        assert!(text.ends_with("</svg>\n"));
        assert_eq!(text.matches("<g class=\"node ").count(), graph.nodes.len());
        assert_eq!(text.matches("<g class=\"edge\">").count(), graph.edges.len());
        // The legend's texts, then one per node.
        let legend_texts = style::NODE_LEGEND.len() + style::EDGE_LEGEND.len();
        assert_eq!(text.matches("<text ").count(), legend_texts + graph.nodes.len());
        assert_eq!(svg(&graph), text, "deterministic");
    }
}
