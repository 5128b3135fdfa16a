//! A union-find (disjoint-set) forest over the vertices `0..n`: which vertices are joined, for
//! splitting a bipartite graph of gated pairs into its connected components.
//!
//! The association of the tracker and the scorer of the replays both use it. Which vertex ends up
//! as a set's root is part of the contract, not an accident: callers order the components by
//! their roots, so [`UnionFind::union`] and [`UnionFind::union_to_least`] each say which root
//! survives a join.

/// Disjoint sets of the vertices `0..len`, with path halving on every [`UnionFind::find`].
/// Parents are `u32` to keep the forest small in the tracker's cache; at most `u32::MAX`
/// vertices.
#[derive(Clone, Debug, Default)]
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    /// `n` vertices, each a set of its own.
    pub fn new(n: usize) -> Self {
        let mut forest = UnionFind::default();
        forest.reset(n);
        forest
    }

    /// Makes this `n` vertices, each a set of its own, reusing the allocation.
    #[inline]
    pub fn reset(&mut self, n: usize) {
        debug_assert!(n <= u32::MAX as usize);
        self.parent.clear();
        self.parent.extend(0..n as u32);
    }

    /// The number of vertices.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether there are no vertices.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The root of the set of `x`, pointing every other vertex on the way to its grandparent.
    #[inline]
    pub fn find(&mut self, mut x: usize) -> usize {
        let parent = &mut self.parent;
        while parent[x] as usize != x {
            parent[x] = parent[parent[x] as usize];
            x = parent[x] as usize;
        }
        x
    }

    /// Joins the sets of `a` and `b` under the root of `b`'s set; returns that root.
    #[inline]
    pub fn union(&mut self, a: usize, b: usize) -> usize {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra] = rb as u32;
        }
        rb
    }

    /// Joins the sets of `a` and `b` under the smaller of their roots, so that every set's root
    /// is its least vertex; returns that root.
    #[inline]
    pub fn union_to_least(&mut self, a: usize, b: usize) -> usize {
        let (ra, rb) = (self.find(a), self.find(b));
        let (low, high) = (ra.min(rb), ra.max(rb));
        self.parent[high] = low as u32;
        low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_roots() {
        let mut sets = UnionFind::new(6);
        assert_eq!(sets.len(), 6);
        assert_eq!(sets.union(0, 3), 3);
        assert_eq!(sets.union(3, 5), 5);
        assert_eq!(sets.find(0), 5);
        assert_eq!(sets.find(1), 1);
        // Joining within one set changes nothing.
        assert_eq!(sets.union(0, 5), 5);
        assert_eq!(sets.union_to_least(4, 2), 2);
        assert_eq!(sets.union_to_least(2, 0), 2);
        assert_eq!((0..6).map(|v| sets.find(v)).collect::<Vec<_>>(), vec![2, 1, 2, 2, 2, 2]);
        sets.reset(2);
        assert_eq!((sets.find(0), sets.find(1)), (0, 1));
        assert!(UnionFind::default().is_empty());
    }

    /// The least-vertex rule holds whatever the order of the joins.
    #[test]
    fn union_to_least_roots_each_set_at_its_least_vertex() {
        let joins = [(7, 3), (9, 8), (3, 9), (1, 12), (12, 4), (5, 5), (10, 11), (11, 6)];
        let mut sets = UnionFind::new(13);
        for (a, b) in joins {
            sets.union_to_least(a, b);
        }
        let roots: Vec<usize> = (0..13).map(|v| sets.find(v)).collect();
        assert_eq!(roots, vec![0, 1, 2, 3, 1, 5, 6, 3, 3, 3, 6, 6, 1]);
    }
}
