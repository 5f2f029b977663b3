//! The flow graph of a script for the admin page's drawing: nodes laid out in columns by their
//! distance from the start step, edges labelled with the exit they stand for. The layout is
//! computed here so the page only draws boxes and lines.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::ivr::script::{Challenge, Script, Step};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Node {
    pub id: String,
    pub kind: &'static str,
    /// A short description: the factor, the department, the hand-off route.
    pub detail: String,
    pub line: usize,
    pub column: usize,
    pub row: usize,
    pub start: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
}

pub fn build(script: &Script) -> Graph {
    // Columns: breadth-first distance from the start; unreachable steps go in a last column.
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let mut queue = VecDeque::from([(script.start.as_str(), 0usize)]);
    while let Some((name, d)) = queue.pop_front() {
        if depth.contains_key(name) {
            continue;
        }
        let Some(step) = script.steps.get(name) else {
            continue;
        };
        depth.insert(name, d);
        for (_, to) in step.exits() {
            if !depth.contains_key(to) {
                queue.push_back((to, d + 1));
            }
        }
    }
    let last = depth.values().max().map_or(0, |d| d + 1);
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    // Steps in file order, so rows follow the order an admin wrote them in.
    let mut order: Vec<(&String, &Step)> = script.steps.iter().collect();
    order.sort_by_key(|(name, _)| script.positions.get(*name).copied().unwrap_or_default());
    for (name, step) in order {
        let column = depth.get(name.as_str()).copied().unwrap_or(last);
        let row = rows.entry(column).or_default();
        nodes.push(Node {
            id: name.clone(),
            kind: step.kind(),
            detail: detail(step),
            line: script.positions.get(name).map_or(0, |p| p.0),
            column,
            row: *row,
            start: *name == script.start,
        });
        *row += 1;
        for (label, to) in step.exits() {
            edges.push(Edge {
                from: name.clone(),
                to: to.to_owned(),
                label: label.trim_start_matches("on_").replace('_', " "),
            });
        }
    }
    Graph { nodes, edges }
}

fn detail(step: &Step) -> String {
    match step {
        Step::Say { prompt, .. } | Step::Goodbye { prompt, .. } => prompt.clone(),
        Step::Menu { options, .. } => format!("{} options", options.len()),
        Step::Language { options, .. } => options.values().cloned().collect::<Vec<_>>().join(" / "),
        Step::Verify { factor, .. } => match factor {
            Challenge::Knowledge { question, .. } => format!("knowledge: {question}"),
            f => f.as_str().to_owned(),
        },
        Step::Department { department, .. } => department.clone(),
        Step::Handoff { via, .. } => via.as_str().to_owned(),
    }
}
