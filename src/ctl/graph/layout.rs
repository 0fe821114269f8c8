//! A layered (Sugiyama-style) drawing of a directed graph, left to right: pure functions from
//! node sizes and edges to positions and edge routes.
//!
//! 1. Cycles are broken by reversing the edges a depth-first search finds going back.
//! 2. Layers by longest path from the sources; then each source moves up to the layer just
//!    before its nearest successor, so a timer or a gate sits beside its job.
//! 3. An edge across several layers is split by a dummy node in each layer between.
//! 4. The order within each layer: barycenter sweeps, down and up, keeping the order with the
//!    fewest crossings.
//! 5. Coordinates: a layer is a column as wide as its widest node; within a column, nodes are
//!    placed as near the mean of their neighbours as their order and spacing allow (the
//!    least-squares placement, by pooling adjacent violators), sweeping back and forth.
//! 6. Routes: from a side of the source through the dummies to a side of the target; where
//!    several edges meet a side, they are spread along it in the order of their other ends.
//!
//! Everything is deterministic: ties go to the order the nodes and edges were given in.

/// A point, in the drawing's units (pixels), y downwards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// A node's width and height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size {
    pub width: f64,
    pub height: f64,
}

/// Distances between things.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spacing {
    /// Between two columns.
    pub layer_gap: f64,
    /// Between two nodes of a column.
    pub node_gap: f64,
    /// Between an edge passing through a column and its neighbours.
    pub edge_gap: f64,
    /// Around the whole drawing.
    pub margin: f64,
}

impl Default for Spacing {
    fn default() -> Spacing {
        Spacing {
            layer_gap: 70.0,
            node_gap: 18.0,
            edge_gap: 8.0,
            margin: 12.0,
        }
    }
}

/// Where everything goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The center of each node.
    pub centers: Vec<Point>,
    /// The column of each node.
    pub layers: Vec<usize>,
    /// Each edge's route, from a point on its source's box to a point on its target's box,
    /// through two points per column it crosses (either side of the column, at one height).
    /// Empty for an edge from a node to itself.
    pub routes: Vec<Vec<Point>>,
    pub width: f64,
    pub height: f64,
}

/// Lays out `sizes.len()` nodes and the `edges` between them (as `(from, to)` indexes).
pub fn layout(sizes: &[Size], edges: &[(usize, usize)], spacing: Spacing) -> Layout {
    let count = sizes.len();
    let reversed = back_edges(count, edges);
    // The edges as the layering sees them: pointing forward, self-loops left out.
    let forward: Vec<Option<(usize, usize)>> = edges
        .iter()
        .zip(&reversed)
        .map(|(&(from, to), &back)| match (from == to, back) {
            (true, _) => None,
            (false, false) => Some((from, to)),
            (false, true) => Some((to, from)),
        })
        .collect();
    let dag: Vec<(usize, usize)> = forward.iter().flatten().copied().collect();
    let layers = assign_layers(count, &dag);

    // Dummy nodes: each forward edge becomes a chain, one node per column.
    let mut node_layer = layers.clone();
    let mut heights: Vec<f64> = sizes.iter().map(|size| size.height).collect();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(edges.len());
    let mut links: Vec<(usize, usize)> = Vec::new();
    for edge in &forward {
        let Some((from, to)) = *edge else {
            chains.push(Vec::new());
            continue;
        };
        let mut chain = vec![from];
        for layer in layers[from] + 1..layers[to] {
            node_layer.push(layer);
            heights.push(0.0);
            chain.push(node_layer.len() - 1);
        }
        chain.push(to);
        for pair in chain.windows(2) {
            links.push((pair[0], pair[1]));
        }
        chains.push(chain);
    }
    let total = node_layer.len();
    let depth = node_layer.iter().max().map_or(0, |deepest| deepest + 1);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for node in 0..total {
        columns[node_layer[node]].push(node);
    }
    let mut predecessors = vec![Vec::new(); total];
    let mut successors = vec![Vec::new(); total];
    for &(from, to) in &links {
        predecessors[to].push(from);
        successors[from].push(to);
    }
    order_columns(&mut columns, &predecessors, &successors);

    // x: one column after another.
    // x: one column after another; a gap that many edges cross is wider, so they bend gently.
    let mut crossing_gap = vec![0usize; depth];
    for &(from, _) in &links {
        crossing_gap[node_layer[from]] += 1;
    }
    let mut column_x = Vec::with_capacity(depth);
    let mut column_width = Vec::with_capacity(depth);
    let mut left = spacing.margin;
    for (layer, column) in columns.iter().enumerate() {
        let width = column
            .iter()
            .filter(|&&node| node < count)
            .map(|&node| sizes[node].width)
            .fold(0.0, f64::max);
        column_x.push(left + width / 2.0);
        column_width.push(width);
        if layer + 1 < depth {
            let extra = (crossing_gap[layer] as f64 * 2.5).min(2.0 * spacing.layer_gap);
            left += width + spacing.layer_gap + extra;
        } else {
            left += width;
        }
    }
    let gap = |a: usize, b: usize| {
        let gap = if a < count && b < count {
            spacing.node_gap
        } else {
            spacing.edge_gap
        };
        heights[a] / 2.0 + heights[b] / 2.0 + gap
    };
    let ys = place_in_columns(&columns, &predecessors, &successors, &gap);
    let top = (0..total)
        .map(|node| ys[node] - heights[node] / 2.0)
        .fold(f64::INFINITY, f64::min);
    let shift = if top.is_finite() { spacing.margin - top } else { 0.0 };
    let position = |node: usize| Point {
        x: column_x[node_layer[node]],
        y: ys[node] + shift,
    };
    let centers: Vec<Point> = (0..count).map(position).collect();
    let bottom = (0..total)
        .map(|node| ys[node] + shift + heights[node] / 2.0)
        .fold(0.0, f64::max);

    // Routes: the chain's points, in the edge's own direction; a dummy is two points, at
    // either side of its column, so the edge crosses the column level, clear of its nodes.
    let mut routes: Vec<Vec<Point>> = chains
        .iter()
        .zip(&reversed)
        .map(|(chain, &back)| {
            let mut points = Vec::with_capacity(chain.len() * 2);
            for &node in chain {
                let center = position(node);
                if node < count {
                    points.push(center);
                } else {
                    let half = column_width[node_layer[node]] / 2.0;
                    points.push(Point {
                        x: center.x - half,
                        y: center.y,
                    });
                    points.push(Point {
                        x: center.x + half,
                        y: center.y,
                    });
                }
            }
            if back {
                points.reverse();
            }
            points
        })
        .collect();
    attach_ends(&mut routes, edges, &centers, sizes);
    // A node narrower than its column: its edges run level to the column's side first, so
    // they bend between the columns, never across the column's other nodes.
    for (route, &(from, to)) in routes.iter_mut().zip(edges) {
        if route.len() < 2 {
            continue;
        }
        let half = |node: usize| column_width[layers[node]] / 2.0;
        let start = route[0];
        let toward = if route[1].x > start.x { 1.0 } else { -1.0 };
        let side = Point {
            x: centers[from].x + toward * half(from),
            y: start.y,
        };
        let end = route[route.len() - 1];
        let from_side = if route[route.len() - 2].x > end.x { 1.0 } else { -1.0 };
        let target_side = Point {
            x: centers[to].x + from_side * half(to),
            y: end.y,
        };
        if (target_side.x - end.x).abs() > 0.5 {
            route.insert(route.len() - 1, target_side);
        }
        if (side.x - start.x).abs() > 0.5 {
            route.insert(1, side);
        }
    }
    Layout {
        centers,
        layers,
        routes,
        width: (left + spacing.margin).max(2.0 * spacing.margin),
        height: bottom + spacing.margin,
    }
}

/// Which edges to reverse to make the graph acyclic: those a depth-first search, started from
/// each node in turn, finds going back to a node on its path.
pub fn back_edges(count: usize, edges: &[(usize, usize)]) -> Vec<bool> {
    let mut outgoing = vec![Vec::new(); count];
    for (index, &(from, to)) in edges.iter().enumerate() {
        if from != to {
            outgoing[from].push((index, to));
        }
    }
    // 0: not seen, 1: on the path, 2: done.
    let mut mark = vec![0u8; count];
    let mut back = vec![false; edges.len()];
    for start in 0..count {
        if mark[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        mark[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(index, to)) = outgoing[node].get(*next) {
                *next += 1;
                match mark[to] {
                    0 => {
                        mark[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => back[index] = true,
                    _ => {}
                }
            } else {
                mark[node] = 2;
                stack.pop();
            }
        }
    }
    back
}

/// Layers of an acyclic graph: the longest path from a source, then each source moved to just
/// before its nearest successor.
pub fn assign_layers(count: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indegree = vec![0usize; count];
    let mut outgoing = vec![Vec::new(); count];
    for &(from, to) in edges {
        indegree[to] += 1;
        outgoing[from].push(to);
    }
    let mut layer = vec![0usize; count];
    let mut ready: std::collections::VecDeque<usize> = (0..count).filter(|&node| indegree[node] == 0).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(node) = ready.pop_front() {
        order.push(node);
        for &to in &outgoing[node] {
            layer[to] = layer[to].max(layer[node] + 1);
            indegree[to] -= 1;
            if indegree[to] == 0 {
                ready.push_back(to);
            }
        }
    }
    let mut has_predecessor = vec![false; count];
    for &(_, to) in edges {
        has_predecessor[to] = true;
    }
    for &node in order.iter().rev() {
        if !has_predecessor[node]
            && let Some(nearest) = outgoing[node].iter().map(|&to| layer[to]).min()
        {
            layer[node] = nearest - 1;
        }
    }
    // A column left empty by the moves closes up.
    let mut used: Vec<usize> = layer.clone();
    used.sort_unstable();
    used.dedup();
    layer
        .iter()
        .map(|value| used.binary_search(value).unwrap_or(0))
        .collect()
}

/// Orders each column by barycenter sweeps; keeps the order with the fewest crossings.
fn order_columns(columns: &mut [Vec<usize>], predecessors: &[Vec<usize>], successors: &[Vec<usize>]) {
    let total = predecessors.len();
    let mut place = vec![0.0; total];
    let index = |columns: &[Vec<usize>], place: &mut Vec<f64>| {
        for column in columns {
            for (at, &node) in column.iter().enumerate() {
                place[node] = at as f64;
            }
        }
    };
    index(columns, &mut place);
    let mut best = columns.to_vec();
    let mut best_crossings = crossings(columns, successors, &place);
    for sweep in 0..12 {
        let downwards = sweep % 2 == 0;
        let range: Vec<usize> = if downwards {
            (1..columns.len()).collect()
        } else {
            (0..columns.len().saturating_sub(1)).rev().collect()
        };
        for layer in range {
            let neighbours = if downwards { predecessors } else { successors };
            let mut keyed: Vec<(f64, usize)> = columns[layer]
                .iter()
                .map(|&node| {
                    let around = &neighbours[node];
                    let key = if around.is_empty() {
                        place[node]
                    } else {
                        around.iter().map(|&other| place[other]).sum::<f64>() / around.len() as f64
                    };
                    (key, node)
                })
                .collect();
            // Stable: equal keys keep their order.
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            columns[layer] = keyed.into_iter().map(|(_, node)| node).collect();
            for (at, &node) in columns[layer].iter().enumerate() {
                place[node] = at as f64;
            }
        }
        let now = crossings(columns, successors, &place);
        if now < best_crossings {
            best_crossings = now;
            best = columns.to_vec();
        }
    }
    columns.clone_from_slice(&best);
}

/// The number of pairs of edges that cross between neighbouring columns.
pub fn crossings(columns: &[Vec<usize>], successors: &[Vec<usize>], place: &[f64]) -> usize {
    let mut total = 0;
    for column in columns {
        let mut spans: Vec<(f64, f64)> = Vec::new();
        for &node in column {
            for &to in &successors[node] {
                spans.push((place[node], place[to]));
            }
        }
        for (at, a) in spans.iter().enumerate() {
            for b in &spans[at + 1..] {
                if (a.0 - b.0) * (a.1 - b.1) < 0.0 {
                    total += 1;
                }
            }
        }
    }
    total
}

/// The y of every node: stacked first, then moved towards the mean of its neighbours, column by
/// column, back and forth, never closer to the next node than `gap` says.
fn place_in_columns(
    columns: &[Vec<usize>],
    predecessors: &[Vec<usize>],
    successors: &[Vec<usize>],
    gap: &dyn Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let total = predecessors.len();
    let mut ys = vec![0.0; total];
    for column in columns {
        let mut y = 0.0;
        for (at, &node) in column.iter().enumerate() {
            if at > 0 {
                y += gap(column[at - 1], node);
            }
            ys[node] = y;
        }
    }
    for round in 0..8 {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..columns.len()).collect()
        } else {
            (0..columns.len()).rev().collect()
        };
        for layer in order {
            let column = &columns[layer];
            let wanted: Vec<f64> = column
                .iter()
                .map(|&node| {
                    let around: Vec<usize> = match round {
                        0 => predecessors[node].clone(),
                        1 => successors[node].clone(),
                        _ => predecessors[node].iter().chain(&successors[node]).copied().collect(),
                    };
                    if around.is_empty() {
                        ys[node]
                    } else {
                        around.iter().map(|&other| ys[other]).sum::<f64>() / around.len() as f64
                    }
                })
                .collect();
            let gaps: Vec<f64> = column.windows(2).map(|pair| gap(pair[0], pair[1])).collect();
            for (&node, y) in column.iter().zip(spaced_fit(&wanted, &gaps)) {
                ys[node] = y;
            }
        }
    }
    ys
}

/// The positions nearest (least squares) to `wanted`, in order, each at least `gaps[i]` after
/// the one before: with `z_i = y_i - (gaps before i)`, that is the nondecreasing `z` nearest
/// to the wanted values shifted the same way, which pooling adjacent violators finds.
pub fn spaced_fit(wanted: &[f64], gaps: &[f64]) -> Vec<f64> {
    let mut offsets = Vec::with_capacity(wanted.len());
    let mut offset = 0.0;
    for at in 0..wanted.len() {
        if at > 0 {
            offset += gaps[at - 1];
        }
        offsets.push(offset);
    }
    // Blocks of (mean, count).
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (value, offset) in wanted.iter().zip(&offsets) {
        blocks.push((value - offset, 1));
        while blocks.len() > 1 {
            let (last_mean, last_count) = blocks[blocks.len() - 1];
            let (mean, count) = blocks[blocks.len() - 2];
            if mean <= last_mean {
                break;
            }
            blocks.pop();
            let merged = count + last_count;
            *blocks.last_mut().expect("two blocks") = (
                (mean * count as f64 + last_mean * last_count as f64) / merged as f64,
                merged,
            );
        }
    }
    let mut out = Vec::with_capacity(wanted.len());
    for (mean, count) in blocks {
        for _ in 0..count {
            out.push(mean + offsets[out.len()]);
        }
    }
    out
}

/// One end of a route at a node's side: the y of the route's neighbouring point, the route,
/// and whether it is the route's start.
type RouteEnd = (f64, usize, bool);

/// Moves each route's ends from the nodes' centers to their sides (the right side when the
/// route leaves rightwards), spreading the ends that share a side in the order of the next
/// point along each route.
fn attach_ends(routes: &mut [Vec<Point>], edges: &[(usize, usize)], centers: &[Point], sizes: &[Size]) {
    // (node, right side) → (the neighbouring point's y, route, which end)
    let mut sides: std::collections::BTreeMap<(usize, bool), Vec<RouteEnd>> = Default::default();
    for (index, route) in routes.iter().enumerate() {
        if route.len() < 2 {
            continue;
        }
        let (from, to) = edges[index];
        let first = route[0];
        let second = route[1];
        sides
            .entry((from, second.x > first.x))
            .or_default()
            .push((second.y, index, true));
        let last = route[route.len() - 1];
        let before = route[route.len() - 2];
        sides
            .entry((to, before.x > last.x))
            .or_default()
            .push((before.y, index, false));
    }
    for ((node, right), mut ends) in sides {
        ends.sort_by(|a, b| a.0.total_cmp(&b.0));
        let center = centers[node];
        let size = sizes[node];
        let span = size.height * 0.6;
        let count = ends.len();
        for (at, (_, index, start)) in ends.into_iter().enumerate() {
            let y = if count == 1 {
                center.y
            } else {
                center.y - span / 2.0 + span * at as f64 / (count - 1) as f64
            };
            let x = if right {
                center.x + size.width / 2.0
            } else {
                center.x - size.width / 2.0
            };
            let route = &mut routes[index];
            let end = if start { 0 } else { route.len() - 1 };
            route[end] = Point { x, y };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(count: usize) -> Vec<Size> {
        (0..count)
            .map(|index| Size {
                width: 40.0 + 10.0 * (index % 3) as f64,
                height: 20.0 + 6.0 * (index % 2) as f64,
            })
            .collect()
    }

    /// No two nodes of a column overlap, and every route runs from its source's box to its
    /// target's box.
    fn check(sizes: &[Size], edges: &[(usize, usize)], layout: &Layout) {
        let spacing = Spacing::default();
        for a in 0..sizes.len() {
            for b in a + 1..sizes.len() {
                if layout.layers[a] != layout.layers[b] {
                    assert!((layout.centers[a].x - layout.centers[b].x).abs() > 1.0);
                    continue;
                }
                let apart = (layout.centers[a].y - layout.centers[b].y).abs();
                // Two nodes are `node_gap` apart, or more than `edge_gap` with an edge between.
                let needed = (sizes[a].height + sizes[b].height) / 2.0 + spacing.edge_gap;
                assert!(apart >= needed - 1e-6, "nodes {a} and {b} overlap: {apart} < {needed}");
            }
        }
        assert_eq!(layout.routes.len(), edges.len(), "every edge has a route");
        for (route, &(from, to)) in layout.routes.iter().zip(edges) {
            if from == to {
                continue;
            }
            let on_box = |point: Point, node: usize| {
                let center = layout.centers[node];
                (point.x - center.x).abs() <= sizes[node].width / 2.0 + 1e-6
                    && (point.y - center.y).abs() <= sizes[node].height / 2.0 + 1e-6
            };
            assert!(route.len() >= 2);
            assert!(on_box(route[0], from), "route of {from}->{to} starts at its source");
            assert!(
                on_box(route[route.len() - 1], to),
                "route of {from}->{to} ends at its target"
            );
        }
        for center in &layout.centers {
            assert!(center.x > 0.0 && center.x < layout.width);
            assert!(center.y > 0.0 && center.y < layout.height);
        }
    }

    #[test]
    fn a_chain_goes_left_to_right_one_column_each() {
        let sizes = boxes(3);
        let edges = [(0, 1), (1, 2)];
        let layout = layout(&sizes, &edges, Spacing::default());
        assert_eq!(layout.layers, [0, 1, 2]);
        assert!(layout.centers[0].x < layout.centers[1].x && layout.centers[1].x < layout.centers[2].x);
        check(&sizes, &edges, &layout);
    }

    #[test]
    fn cycles_are_broken_and_still_drawn() {
        let sizes = boxes(4);
        let edges = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 3)];
        assert_eq!(back_edges(4, &edges), [false, false, true, false, false]);
        let layout = layout(&sizes, &edges, Spacing::default());
        check(&sizes, &edges, &layout);
        // The reversed edge still starts at its own source.
        assert!(layout.routes[2][0].x < layout.centers[2].x);
        assert!(layout.routes[4].is_empty());
    }

    #[test]
    fn long_edges_pass_through_every_column_between() {
        let sizes = boxes(4);
        let edges = [(0, 1), (1, 2), (2, 3), (0, 3)];
        let layout = layout(&sizes, &edges, Spacing::default());
        // Two dummies, each a point at either side of its column, and the ends' column sides.
        assert!(layout.routes[3].len() >= 6);
        assert!(layout.routes[3].windows(2).all(|pair| pair[0].x <= pair[1].x));
        check(&sizes, &edges, &layout);
    }

    #[test]
    fn sources_sit_just_before_their_successor() {
        // 3 would be in column 0 by longest path; it moves beside 2.
        let layers = assign_layers(4, &[(0, 1), (1, 2), (3, 2)]);
        assert_eq!(layers, [0, 1, 2, 1]);
    }

    #[test]
    fn a_wider_graph_has_no_overlaps_and_is_deterministic() {
        let sizes = boxes(30);
        let mut edges = Vec::new();
        for node in 1..30 {
            edges.push(((node * 7 + 3) % node, node));
            if node % 4 == 0 {
                edges.push((node, (node * 3) % 30));
            }
        }
        let first = layout(&sizes, &edges, Spacing::default());
        check(&sizes, &edges, &first);
        assert_eq!(first, layout(&sizes, &edges, Spacing::default()));
    }

    #[test]
    fn barycenter_ordering_removes_a_needless_crossing() {
        // 0→3 and 1→2 cross in the given order; the sweeps uncross them.
        let sizes = boxes(4);
        let edges = [(0, 3), (1, 2)];
        let layout = layout(&sizes, &edges, Spacing::default());
        let above = |a: usize, b: usize| layout.centers[a].y < layout.centers[b].y;
        assert_eq!(above(0, 1), above(3, 2));
    }

    #[test]
    fn spaced_fit_keeps_order_and_gaps_nearest_the_wish() {
        assert_eq!(spaced_fit(&[0.0, 100.0], &[10.0]), [0.0, 100.0]);
        assert_eq!(spaced_fit(&[50.0, 50.0], &[10.0]), [45.0, 55.0]);
        assert_eq!(spaced_fit(&[50.0, 40.0, 200.0], &[10.0, 10.0]), [40.0, 50.0, 200.0]);
        assert_eq!(spaced_fit(&[], &[]), Vec::<f64>::new());
    }
}
