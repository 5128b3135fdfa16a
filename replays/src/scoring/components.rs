//! Connected components of a bipartite graph of gated (truth, hypothesis) pairs: groups that
//! share no truth and no hypothesis, so each is assigned on its own and a crowded frame costs many
//! small assignments instead of one large one.

use rsu_fusion::union_find::UnionFind;

/// Connected components of a bipartite graph, each with its rows, columns and edges (see
/// [`edge_components`]), stored flat.
#[derive(Clone, Debug, Default)]
pub(crate) struct Components {
    rows: Vec<usize>,
    cols: Vec<usize>,
    edges: Vec<usize>,
    /// End of each component's rows, columns and edges in the vectors above.
    ends: Vec<[usize; 3]>,
}

/// One connected component.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Component<'a> {
    /// Its rows, ascending.
    pub rows: &'a [usize],
    /// Its columns, ascending.
    pub cols: &'a [usize],
    /// Indices of its edges, ascending.
    pub edges: &'a [usize],
}

impl Components {
    /// The components, in the order of their union-find roots.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Component<'_>> {
        let starts = std::iter::once([0; 3]).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, end)| Component {
            rows: &self.rows[start[0]..end[0]],
            cols: &self.cols[start[1]..end[1]],
            edges: &self.edges[start[2]..end[2]],
        })
    }
}

/// Connected components of a bipartite graph of `nr` rows and `nc` columns given by `edges`
/// (row, column, weight): each component that has at least one edge, with its edges.
pub(crate) fn edge_components(nr: usize, nc: usize, edges: &[(usize, usize, f64)]) -> Components {
    // Vertices: rows, then columns. Each join hangs the row's set under the column's root.
    let mut sets = UnionFind::new(nr + nc);
    let mut seen = vec![false; nr + nc];
    for &(r, c, _) in edges {
        seen[r] = true;
        seen[nr + c] = true;
        sets.union(r, nr + c);
    }
    // Components in the order of their roots (every vertex of a component with an edge, its root
    // included, is the end of an edge). `component[v]`: the component of vertex v.
    const NONE: usize = usize::MAX;
    let mut component = vec![NONE; nr + nc];
    let mut count = 0;
    for v in 0..nr + nc {
        if seen[v] && sets.find(v) == v {
            component[v] = count;
            count += 1;
        }
    }
    for v in 0..nr + nc {
        if seen[v] {
            component[v] = component[sets.find(v)];
        }
    }
    // Counting sort of rows, columns and edges by component, each ascending within it.
    let mut ends = vec![[0usize; 3]; count];
    for v in (0..nr + nc).filter(|&v| seen[v]) {
        ends[component[v]][usize::from(v >= nr)] += 1;
    }
    for &(r, _, _) in edges {
        ends[component[r]][2] += 1;
    }
    let mut next = [0usize; 3];
    for end in &mut ends {
        for k in 0..3 {
            next[k] += end[k];
            end[k] = next[k] - end[k];
        }
    }
    // `ends` holds each component's starts for now; filling moves them to its ends.
    let mut out = Components { rows: vec![0; next[0]], cols: vec![0; next[1]], edges: vec![0; next[2]], ends };
    for v in (0..nr + nc).filter(|&v| seen[v]) {
        let slot = &mut out.ends[component[v]];
        if v < nr {
            out.rows[slot[0]] = v;
            slot[0] += 1;
        } else {
            out.cols[slot[1]] = v - nr;
            slot[1] += 1;
        }
    }
    for (e, &(r, _, _)) in edges.iter().enumerate() {
        let slot = &mut out.ends[component[r]];
        out.edges[slot[2]] = e;
        slot[2] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_split_a_bipartite_graph_with_their_edges() {
        // Rows 0 and 2 share column 1; row 1 is alone with column 0; row 3 and column 2 have no edge.
        let edges = [(0, 1, 0.5), (1, 0, 0.1), (2, 1, 0.2), (0, 3, 0.3)];
        let components = edge_components(4, 4, &edges);
        let mut found: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> =
            components.iter().map(|c| (c.rows.to_vec(), c.cols.to_vec(), c.edges.to_vec())).collect();
        found.sort();
        assert_eq!(found, vec![(vec![0, 2], vec![1, 3], vec![0, 2, 3]), (vec![1], vec![0], vec![1])]);
        assert_eq!(edge_components(3, 2, &[]).iter().count(), 0);
    }
}
