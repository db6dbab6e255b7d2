//! The segments a condition names: each must exist in the project, no segment may reach itself
//! through its references, and chains of references are at most [`MAX_CHAIN`] deep.

use super::{Condition, Test};
use std::collections::HashMap;
use uuid::Uuid;

/// Longest chain of `memberOfSegment` references (a segment naming one that names one that
/// names one).
pub const MAX_CHAIN: usize = 3;

/// Why a condition's references are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The named segment is not in the project.
    NotFound(Uuid),
    /// Following references from the named segment leads back to the segment being saved.
    Cycle(Uuid),
    /// With this condition, a chain of references would be longer than [`MAX_CHAIN`].
    TooDeep(Uuid),
}

/// Checks the references of `condition`, about to be saved as segment `me` (`None` for a
/// campaign's audience or a segment not created yet), against `graph`: every segment of the
/// project with the segments its condition names. The first problem found, by the order of the
/// filters, is returned with the referenced segment it concerns.
pub fn check(
    me: Option<Uuid>,
    condition: &Condition,
    graph: &HashMap<Uuid, Vec<Uuid>>,
) -> Result<(), Problem> {
    let refs = condition.segment_refs();
    for target in &refs {
        if !graph.contains_key(target) {
            return Err(Problem::NotFound(*target));
        }
    }
    let mut graph = graph.clone();
    let me = me.unwrap_or_else(Uuid::nil);
    graph.insert(me, refs.clone());
    for target in &refs {
        if *target == me || reaches(&graph, *target, me) {
            return Err(Problem::Cycle(*target));
        }
    }
    if refs.is_empty() {
        return Ok(());
    }
    let mut depths: HashMap<Uuid, usize> = HashMap::new();
    if let Some(deep) = refs
        .iter()
        .find(|target| 1 + depth(&graph, **target, &mut depths) > MAX_CHAIN)
    {
        return Err(Problem::TooDeep(*deep));
    }
    // Segments that name `me`, directly or not, have longer chains now too.
    let callers: Vec<Uuid> = graph
        .keys()
        .filter(|node| **node != me && reaches(&graph, **node, me))
        .copied()
        .collect();
    if callers
        .into_iter()
        .any(|node| depth(&graph, node, &mut depths) > MAX_CHAIN)
    {
        return Err(Problem::TooDeep(refs[0]));
    }
    Ok(())
}

/// Whether following references from `from` arrives at `to`.
fn reaches(graph: &HashMap<Uuid, Vec<Uuid>>, from: Uuid, to: Uuid) -> bool {
    let mut stack = vec![from];
    let mut seen = std::collections::HashSet::new();
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        for next in graph.get(&node).into_iter().flatten() {
            if *next == to {
                return true;
            }
            stack.push(*next);
        }
    }
    false
}

/// The longest chain of references starting at `node` (0 when it names none). The graph has no
/// cycle when this runs; a stray one in stored data counts as deep, never loops.
fn depth(graph: &HashMap<Uuid, Vec<Uuid>>, node: Uuid, memo: &mut HashMap<Uuid, usize>) -> usize {
    fn walk(
        graph: &HashMap<Uuid, Vec<Uuid>>,
        node: Uuid,
        memo: &mut HashMap<Uuid, usize>,
        on_path: &mut Vec<Uuid>,
    ) -> usize {
        if let Some(d) = memo.get(&node) {
            return *d;
        }
        if on_path.contains(&node) || on_path.len() > MAX_CHAIN + 1 {
            return MAX_CHAIN + 1;
        }
        on_path.push(node);
        let d = graph
            .get(&node)
            .into_iter()
            .flatten()
            .map(|next| 1 + walk(graph, *next, memo, on_path))
            .max()
            .unwrap_or(0);
        on_path.pop();
        memo.insert(node, d);
        d
    }
    walk(graph, node, memo, &mut Vec::new())
}

impl Condition {
    /// The value path of every `memberOfSegment`/`notMemberOfSegment` filter below `base` (the
    /// condition's own path), with the segment it names: where a reference problem is reported.
    pub fn segment_ref_paths(&self, base: &str) -> Vec<(Uuid, String)> {
        let mut out = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            for (f, filter) in group.filters.iter().enumerate() {
                if let Test::MemberOf { segment, .. } = filter.test {
                    out.push((segment, format!("{base}.groups[{g}].filters[{f}].value")));
                }
            }
            if let Some(nested) = &group.conditions {
                out.extend(nested.segment_ref_paths(&format!("{base}.groups[{g}].conditions")));
            }
        }
        out
    }
}
