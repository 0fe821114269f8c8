//! The colours and the legend both drawings share.

use super::build::{EdgeKind, NodeKind};

pub fn fill(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Job => "#dbe9f6",
        NodeKind::Event => "#fdf2c4",
        NodeKind::Timer => "#e3f1df",
        NodeKind::Admission => "#fbe0c8",
    }
}

pub fn stroke(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Job => "#3b6ea5",
        NodeKind::Event => "#b08d1a",
        NodeKind::Timer => "#4d8a3f",
        NodeKind::Admission => "#c0661b",
    }
}

pub fn edge_color(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Start => "#2b2b2b",
        EdgeKind::Stop => "#c0392b",
        EdgeKind::Emits => "#2e75b6",
        EdgeKind::Admits => "#c0661b",
    }
}

/// The legend's nodes.
pub const NODE_LEGEND: [(NodeKind, &str); 4] = [
    (NodeKind::Job, "job"),
    (NodeKind::Event, "event"),
    (NodeKind::Timer, "timer"),
    (NodeKind::Admission, "gate, uses, requires"),
];

/// The legend's edges.
pub const EDGE_LEGEND: [(EdgeKind, &str); 4] = [
    (EdgeKind::Start, "start on"),
    (EdgeKind::Stop, "stop on"),
    (EdgeKind::Emits, "emits"),
    (EdgeKind::Admits, "admits"),
];
