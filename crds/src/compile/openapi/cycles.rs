//! Which `$ref`s are recursive: references in, a verdict per reference out. The graph (a
//! reference → the references inside what it names) is explored lazily from each reference
//! asked about, with Tarjan's strongly connected components (iteratively: a document may
//! chain thousands of references). A reference is recursive when it lies on a cycle.

use std::collections::HashMap;

#[derive(Default)]
pub(super) struct Cycles<'d> {
    ids: HashMap<&'d str, usize>,
    nodes: Vec<Node<'d>>,
    stack: Vec<usize>,
    counter: usize,
}

struct Node<'d> {
    reference: &'d str,
    edges: Vec<usize>,
    index: usize,
    low: usize,
    on_stack: bool,
    cyclic: bool,
}

impl<'d> Cycles<'d> {
    /// Whether `reference` lies on a cycle; `edges` lists the references inside what a
    /// reference names.
    pub(super) fn is_cyclic(&mut self, reference: &'d str, edges: &mut impl FnMut(&'d str) -> Vec<&'d str>) -> bool {
        if let Some(&id) = self.ids.get(reference) {
            return self.nodes[id].cyclic;
        }
        let root = self.id(reference);
        self.start(root, edges);
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut next)) = work.last_mut() {
            if let Some(&w) = self.nodes[v].edges.get(*next) {
                *next += 1;
                if self.nodes[w].index == usize::MAX {
                    self.start(w, edges);
                    work.push((w, 0));
                } else if self.nodes[w].on_stack {
                    self.nodes[v].low = self.nodes[v].low.min(self.nodes[w].index);
                }
                continue;
            }
            work.pop();
            if let Some(&(u, _)) = work.last() {
                self.nodes[u].low = self.nodes[u].low.min(self.nodes[v].low);
            }
            if self.nodes[v].low == self.nodes[v].index {
                let at = self.stack.iter().rposition(|&x| x == v).expect("v is on the stack");
                let component = self.stack.split_off(at);
                let cyclic = component.len() > 1 || self.nodes[v].edges.contains(&v);
                for x in component {
                    self.nodes[x].on_stack = false;
                    self.nodes[x].cyclic = cyclic;
                }
            }
        }
        self.nodes[root].cyclic
    }

    /// The id of `reference`; a new one is not visited yet (its index is `usize::MAX`).
    fn id(&mut self, reference: &'d str) -> usize {
        *self.ids.entry(reference).or_insert_with(|| {
            let node = Node { reference, edges: Vec::new(), index: usize::MAX, low: 0, on_stack: false, cyclic: false };
            self.nodes.push(node);
            self.nodes.len() - 1
        })
    }

    /// Visits a node: numbers it, pushes it and lists its edges.
    fn start(&mut self, id: usize, edges: &mut impl FnMut(&'d str) -> Vec<&'d str>) {
        let targets: Vec<usize> = edges(self.nodes[id].reference).into_iter().map(|r| self.id(r)).collect();
        let node = &mut self.nodes[id];
        node.edges = targets;
        node.index = self.counter;
        node.low = self.counter;
        node.on_stack = true;
        self.counter += 1;
        self.stack.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(graph: &[(&'static str, &[&'static str])], asked: &[&'static str]) -> Vec<bool> {
        let mut cycles = Cycles::default();
        let mut edges =
            |r: &'static str| graph.iter().find(|(n, _)| *n == r).map(|(_, e)| e.to_vec()).unwrap_or_default();
        asked.iter().map(|r| cycles.is_cyclic(r, &mut edges)).collect()
    }

    #[test]
    fn finds_self_loops_and_longer_cycles_but_not_what_merely_reaches_them() {
        let graph: &[(&str, &[&str])] =
            &[("a", &["b"]), ("b", &["c", "d"]), ("c", &["b"]), ("d", &[]), ("e", &["e"]), ("f", &["a", "e"])];
        assert_eq!(verdicts(graph, &["a", "b", "c", "d", "e", "f"]), [false, true, true, false, true, false]);
        assert_eq!(verdicts(graph, &["f", "c", "a"]), [false, true, false]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let names: Vec<&'static str> = (0..100_000).map(|i| &*Box::leak(format!("r{i}").into_boxed_str())).collect();
        let mut cycles = Cycles::default();
        let mut edges = |r: &'static str| {
            let i: usize = r[1..].parse().unwrap();
            vec![names[(i + 1) % names.len()]]
        };
        assert!(cycles.is_cyclic(names[0], &mut edges));
    }
}
