//! RFC 9162 Merkle tree hashing over stored complete subtrees. Pure: the nodes come from a
//! lookup the caller provides, so the same code serves the database, the verifier and tests.
//!
//! A stored node `(level, idx)` is the hash of the complete subtree over leaves
//! `[idx * 2^level, (idx + 1) * 2^level)`. Every range that RFC 9162's recursion visits starts
//! at a multiple of its own largest power-of-two split, so it is a short chain of such nodes.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A stored node's address.
pub type NodeId = (u32, u64);

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Which stored nodes a computation needs: run it once with [`Needs`], load them, run it again.
pub trait Nodes {
    fn node(&mut self, id: NodeId) -> Hash;
}

/// Records the nodes asked for and answers zeros.
#[derive(Default)]
pub struct Needs(pub Vec<NodeId>);

impl Nodes for Needs {
    fn node(&mut self, id: NodeId) -> Hash {
        self.0.push(id);
        [0; 32]
    }
}

impl Nodes for std::collections::HashMap<NodeId, Hash> {
    fn node(&mut self, id: NodeId) -> Hash {
        self.get(&id).copied().unwrap_or([0; 32])
    }
}

/// MTH of leaves `[start, end)`; `start` must be aligned as RFC 9162's recursion aligns it.
pub fn range_hash(nodes: &mut dyn Nodes, start: u64, end: u64) -> Hash {
    let n = end - start;
    if n == 0 {
        return empty_root();
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return nodes.node((n.trailing_zeros(), start / n));
    }
    let k = split(n);
    let left = range_hash(nodes, start, start + k);
    let right = range_hash(nodes, start + k, end);
    node_hash(&left, &right)
}

/// The root of the first `size` leaves.
pub fn root(nodes: &mut dyn Nodes, size: u64) -> Hash {
    range_hash(nodes, 0, size)
}

/// RFC 9162 §2.1.3.1: the audit path of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(nodes: &mut dyn Nodes, index: u64, size: u64) -> Vec<Hash> {
    fn path(nodes: &mut dyn Nodes, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(nodes, m, start, start + k, out);
            out.push(range_hash(nodes, start + k, end));
        } else {
            path(nodes, m - k, start + k, end, out);
            out.push(range_hash(nodes, start, start + k));
        }
    }
    let mut out = Vec::new();
    path(nodes, index, 0, size, &mut out);
    out
}

/// RFC 9162 §2.1.4.1: the consistency proof from the tree of `from` leaves to that of `size`.
pub fn consistency_proof(nodes: &mut dyn Nodes, from: u64, size: u64) -> Vec<Hash> {
    fn subproof(nodes: &mut dyn Nodes, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(range_hash(nodes, start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(nodes, m, start, start + k, whole, out);
            out.push(range_hash(nodes, start + k, end));
        } else {
            subproof(nodes, m - k, start + k, end, false, out);
            out.push(range_hash(nodes, start, start + k));
        }
    }
    let mut out = Vec::new();
    if from > 0 && from < size {
        subproof(nodes, from, 0, size, true, &mut out);
    }
    out
}

/// The new complete subtrees that appending leaf `index` (hash `leaf`) creates: the leaf itself,
/// then each parent it completes. `left` gives the stored sibling to the left at a level.
pub fn append(index: u64, leaf: Hash, mut left: impl FnMut(NodeId) -> Hash) -> Vec<(NodeId, Hash)> {
    let mut out = vec![((0, index), leaf)];
    let (mut level, mut idx, mut hash) = (0u32, index, leaf);
    while idx % 2 == 1 {
        let sibling = left((level, idx - 1));
        hash = node_hash(&sibling, &hash);
        level += 1;
        idx /= 2;
        out.push(((level, idx), hash));
    }
    out
}

/// The left siblings that [`append`] will ask for.
pub fn append_needs(index: u64) -> Vec<NodeId> {
    let (mut level, mut idx, mut out) = (0u32, index, Vec::new());
    while idx % 2 == 1 {
        out.push((level, idx - 1));
        level += 1;
        idx /= 2;
    }
    out
}

/// RFC 9162 §2.1.3.2: does `proof` show leaf `index` (hash `leaf`) in the tree of `size` with
/// `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n % 2 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n % 2 == 0 {
                while f_n % 2 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `proof` show the tree of `size` with `new_root` extending the tree
/// of `from` with `old_root`?
pub fn verify_consistency(from: u64, size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if from > size {
        return false;
    }
    if from == size {
        return proof.is_empty() && old_root == new_root;
    }
    if from == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if from.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut f_n, mut s_n) = (from - 1, size - 1);
    while f_n % 2 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n % 2 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n % 2 == 0 {
                while f_n % 2 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    fr == *old_root && sr == *new_root && s_n == 0
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// RFC 9162's recursive definition, straight from the text.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn build(n: u64) -> (Vec<Hash>, HashMap<NodeId, Hash>) {
        let mut nodes = HashMap::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let leaf = leaf_hash(format!("leaf {i}").as_bytes());
            leaves.push(leaf);
            for (id, h) in append(i, leaf, |id| nodes[&id]) {
                nodes.insert(id, h);
            }
        }
        (leaves, nodes)
    }

    #[test]
    fn roots_and_proofs_agree_with_the_recursive_definition() {
        let (leaves, mut nodes) = build(40);
        for size in 0..=40u64 {
            let want = mth(&leaves[..size as usize]);
            assert_eq!(root(&mut nodes, size), want, "root of {size}");
            for index in 0..size {
                let proof = inclusion_proof(&mut nodes, index, size);
                assert!(verify_inclusion(index, size, &leaves[index as usize], &proof, &want), "{index}/{size}");
                assert!(!verify_inclusion(index, size, &leaf_hash(b"other"), &proof, &want));
            }
            for from in 0..=size {
                let old = mth(&leaves[..from as usize]);
                let proof = consistency_proof(&mut nodes, from, size);
                assert!(verify_consistency(from, size, &old, &want, &proof), "{from}->{size}");
                if from > 0 && from < size {
                    assert!(!verify_consistency(from, size, &leaf_hash(b"x"), &want, &proof));
                }
            }
        }
    }

    #[test]
    fn needs_lists_exactly_the_stored_nodes_used() {
        let (_, nodes) = build(1000);
        let mut needs = Needs::default();
        inclusion_proof(&mut needs, 777, 1000);
        assert!(needs.0.iter().all(|id| nodes.contains_key(id)));
        assert!(needs.0.len() < 40, "{}", needs.0.len());
        assert_eq!(append_needs(7), vec![(0, 6), (1, 2), (2, 0)]);
    }
}
