//! By property: on random acyclic graphs, `check_transition` accepts an edge exactly when a
//! naive reachability search says it closes no cycle, and graphs grown only through it stay
//! acyclic.
//!
//! Every step is a multi `CONDITION` with more branches than steps, and each candidate edge
//! takes a free branch: the slot rules then never refuse, so the answer is the cycle rule's
//! alone.

use super::{multi, Graph};
use crate::validation::FieldCode;
use crate::workflow::StepType;
use proptest::prelude::*;
use uuid::Uuid;

/// Most steps of a generated graph.
const MAX_NODES: usize = 12;

/// A graph of `n` condition steps, each offering branches `b0`…`b{MAX_NODES}`.
fn conditions(n: usize) -> (Graph, Vec<Uuid>) {
    let (mut g, _) = Graph::new();
    let names: Vec<String> = (0..=MAX_NODES).map(|i| format!("b{i}")).collect();
    let branches: Vec<&str> = names.iter().map(String::as_str).collect();
    let ids = (0..n)
        .map(|_| g.step(StepType::Condition, multi(&branches)))
        .collect();
    (g, ids)
}

/// A branch `from` has not used yet.
fn free_branch(g: &Graph, from: Uuid) -> String {
    let used = g
        .transitions
        .iter()
        .filter(|t| t.from_step_id == from)
        .count();
    format!("b{used}")
}

/// Whether `to` can be reached from `from` in the edge list `edges` (indices), by growing the
/// reached set until it stops changing: nothing shared with the search under test.
fn naive_reaches(edges: &[(usize, usize)], from: usize, to: usize) -> bool {
    let mut reached = vec![from];
    loop {
        let before = reached.len();
        for &(a, b) in edges {
            if reached.contains(&a) && !reached.contains(&b) {
                reached.push(b);
            }
        }
        if reached.contains(&to) {
            return true;
        }
        if reached.len() == before {
            return false;
        }
    }
}

/// A random DAG: `n` nodes, a random order of them, and edges that follow the order.
fn dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (2..=MAX_NODES).prop_flat_map(|n| {
        let order = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        let pairs = prop::collection::vec((0..n, 0..n), 0..(n * 3));
        (Just(n), order, pairs).prop_map(|(n, order, pairs)| {
            let mut edges: Vec<(usize, usize)> = Vec::new();
            for (a, b) in pairs {
                let (a, b) = (order[a.min(b)], order[a.max(b)]);
                if a != b && !edges.contains(&(a, b)) {
                    edges.push((a, b));
                }
            }
            (n, edges)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// On a random DAG, a candidate edge is refused iff it closes a cycle, and then only with
    /// `graph_cycle` on `toStepId`.
    #[test]
    fn an_edge_is_refused_exactly_when_it_closes_a_cycle(
        (n, edges) in dag(),
        candidate in (0..MAX_NODES, 0..MAX_NODES),
    ) {
        let (mut g, ids) = conditions(n);
        for &(a, b) in &edges {
            let branch = free_branch(&g, ids[a]);
            g.link(ids[a], ids[b], Some(&branch), None);
        }
        let (from, to) = (candidate.0 % n, candidate.1 % n);
        let closes = from == to || naive_reaches(&edges, to, from);
        let branch = free_branch(&g, ids[from]);
        let result = g.check(ids[from], ids[to], Some(&branch), None);
        match result {
            Ok(()) => prop_assert!(!closes, "accepted {from}→{to}, which closes a cycle in {edges:?}"),
            Err(errors) => {
                prop_assert!(closes, "refused {from}→{to} in {edges:?}: {errors:?}");
                prop_assert_eq!(errors, vec![("toStepId".to_owned(), FieldCode::GraphCycle)]);
            }
        }
    }

    /// Graphs grown one checked edge at a time never hold a cycle, whatever is tried.
    #[test]
    fn graphs_grown_through_the_check_stay_acyclic(
        n in 2..=MAX_NODES,
        tries in prop::collection::vec((0..MAX_NODES, 0..MAX_NODES), 0..60),
    ) {
        let (mut g, ids) = conditions(n);
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for (a, b) in tries {
            let (from, to) = (a % n, b % n);
            if edges.iter().filter(|(x, _)| *x == from).count() >= MAX_NODES {
                continue;
            }
            let branch = free_branch(&g, ids[from]);
            if g.connect(ids[from], ids[to], Some(&branch), None).is_ok() {
                edges.push((from, to));
            }
        }
        for node in 0..n {
            let back = edges
                .iter()
                .filter(|(a, _)| *a == node)
                .any(|&(_, b)| naive_reaches(&edges, b, node));
            prop_assert!(!back, "node {node} lies on a cycle of {edges:?}");
        }
    }
}
