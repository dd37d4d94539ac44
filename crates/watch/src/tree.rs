//! The watch map: inotify watch descriptor → (root, place in the root's directory tree).
//!
//! Pure bookkeeping, no system calls, so it is tested on its own. Each watched directory is
//! one [`Node`] keyed by its wd, holding its root, its parent's wd, its own name (one path
//! component) and links to its first child and next sibling: a renamed directory's subtree
//! needs no path rewriting, and memory per directory is one 40-byte map entry plus one short
//! name. Relative paths are rebuilt on demand by walking up to the root's top node.
//!
//! Invariants: a node's parent is in the map (or the node is a root's top, parent
//! [`NO_PARENT`]); the sibling list starting at a parent's `first_child` holds exactly the
//! nodes whose parent it is; a child name is one normal component (no `/`, not `.` or
//! `..`), so a rebuilt path never leaves its root.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::hash::BuildHasher;
use std::mem::{self, size_of};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The parent of a root's top directory.
pub(crate) const NO_PARENT: i32 = -1;

/// The end of a sibling list (inotify wds are positive).
const NONE: i32 = -1;

/// One watched directory.
#[derive(Debug)]
pub(crate) struct Node {
    /// The root this directory belongs to.
    pub(crate) root_id: u32,
    /// The wd of the directory holding this one, or [`NO_PARENT`] for a root's top.
    pub(crate) parent: i32,
    /// This directory's name in its parent (empty for a root's top).
    pub(crate) name: Box<[u8]>,
    /// The first watched subdirectory (found by name on delete/rename, walked on removal),
    /// or `NONE`. A linked list, not a `Vec`: 4 bytes per node instead of 24 plus a block.
    first_child: i32,
    /// The next subdirectory of the same parent, or `NONE`.
    next_sibling: i32,
}

/// All watched directories of all roots.
#[derive(Debug, Default)]
pub(crate) struct WatchTree {
    nodes: HashMap<i32, Node>,
    /// Nodes per root (for per-root watch budgets); roots with none are absent.
    per_root: HashMap<u32, usize>,
    /// (parent, hash of name) → child: finding a child by name in O(1) (a user's directory
    /// with 100,000 subdirectories made every insertion walk the sibling list, quadratic).
    /// A child whose slot another name took (a 64-bit hash collision) is not indexed and
    /// counted in `unindexed`; while that is non-zero, a miss falls back to the list.
    index: HashMap<(i32, u64), i32>,
    unindexed: usize,
    hasher: RandomState,
}

impl WatchTree {
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Directories of `root_id` in the map.
    pub(crate) fn root_len(&self, root_id: u32) -> usize {
        self.per_root.get(&root_id).copied().unwrap_or(0)
    }

    fn name_hash(&self, name: &[u8]) -> u64 {
        self.hasher.hash_one(name)
    }

    fn count(&mut self, root_id: u32, added: bool) {
        let n = self.per_root.entry(root_id).or_insert(0);
        if added {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_root.remove(&root_id);
            }
        }
    }

    pub(crate) fn get(&self, wd: i32) -> Option<&Node> {
        self.nodes.get(&wd)
    }

    pub(crate) fn contains(&self, wd: i32) -> bool {
        self.nodes.contains_key(&wd)
    }

    /// Records `wd` as the top directory of `root_id`. False if `wd` is already a node.
    pub(crate) fn insert_top(&mut self, wd: i32, root_id: u32) -> bool {
        if self.nodes.contains_key(&wd) {
            return false;
        }
        self.nodes.insert(
            wd,
            Node {
                root_id,
                parent: NO_PARENT,
                name: Box::default(),
                first_child: NONE,
                next_sibling: NONE,
            },
        );
        self.count(root_id, true);
        true
    }

    /// Records `wd` as the subdirectory `name` of `parent`. False if `wd` is already a node,
    /// `parent` is unknown, or `name` is not a single normal component.
    pub(crate) fn insert_child(&mut self, wd: i32, parent: i32, name: &[u8]) -> bool {
        if self.nodes.contains_key(&wd) || !is_component(name) {
            return false;
        }
        let Some(p) = self.nodes.get_mut(&parent) else {
            return false;
        };
        let next_sibling = mem::replace(&mut p.first_child, wd);
        let root_id = p.root_id;
        let key = (parent, self.name_hash(name));
        match self.index.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => self.unindexed += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(wd);
            }
        }
        self.nodes.insert(
            wd,
            Node {
                root_id,
                parent,
                name: name.into(),
                first_child: NONE,
                next_sibling,
            },
        );
        self.count(root_id, true);
        true
    }

    /// The wd of the watched subdirectory `name` of `parent`.
    pub(crate) fn child(&self, parent: i32, name: &[u8]) -> Option<i32> {
        if let Some(&wd) = self.index.get(&(parent, self.name_hash(name)))
            && self.nodes.get(&wd).is_some_and(|n| *n.name == *name)
        {
            return Some(wd);
        }
        if self.unindexed == 0 {
            return None;
        }
        let mut c = self.nodes.get(&parent)?.first_child;
        while let Some(n) = self.nodes.get(&c) {
            if *n.name == *name {
                return Some(c);
            }
            c = n.next_sibling;
        }
        None
    }

    /// The path of `wd` relative to its root's top (empty for the top).
    pub(crate) fn rel_path(&self, wd: i32) -> PathBuf {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = wd;
        while let Some(n) = self.nodes.get(&cur) {
            if n.parent == NO_PARENT {
                break;
            }
            names.push(&n.name);
            cur = n.parent;
        }
        let mut path = PathBuf::with_capacity(names.iter().map(|n| n.len() + 1).sum());
        for name in names.iter().rev() {
            path.push(OsStr::from_bytes(name));
        }
        path
    }

    /// Removes `wd` and everything beneath it, detaching it from its parent. Appends every
    /// removed wd (`wd` first) to `removed`.
    pub(crate) fn remove_subtree(&mut self, wd: i32, removed: &mut Vec<i32>) {
        let Some(node) = self.nodes.remove(&wd) else {
            return;
        };
        self.unlink(node.parent, wd, node.next_sibling);
        removed.push(wd);
        self.count(node.root_id, false);
        self.unindex(node.parent, &node.name, wd);
        let mut stack = vec![node.first_child];
        while let Some(mut c) = stack.pop() {
            while let Some(n) = self.nodes.remove(&c) {
                removed.push(c);
                self.count(n.root_id, false);
                self.unindex(n.parent, &n.name, c);
                stack.push(n.first_child);
                c = n.next_sibling;
            }
        }
    }

    /// Drops `wd`'s index slot (a top has none; an unindexed child only leaves the count).
    fn unindex(&mut self, parent: i32, name: &[u8], wd: i32) {
        if parent == NO_PARENT {
            return;
        }
        let key = (parent, self.name_hash(name));
        if self.index.get(&key) == Some(&wd) {
            self.index.remove(&key);
        } else {
            self.unindexed = self.unindexed.saturating_sub(1);
        }
    }

    /// Takes `wd` (whose next sibling is `next`) out of `parent`'s list of children.
    fn unlink(&mut self, parent: i32, wd: i32, next: i32) {
        let Some(p) = self.nodes.get_mut(&parent) else {
            return;
        };
        if p.first_child == wd {
            p.first_child = next;
            return;
        }
        let mut c = p.first_child;
        while let Some(n) = self.nodes.get_mut(&c) {
            if n.next_sibling == wd {
                n.next_sibling = next;
                return;
            }
            c = n.next_sibling;
        }
    }

    /// Heap bytes held, estimated from capacities (hashbrown: one entry plus one control
    /// byte per bucket; malloc rounds small blocks to 16 bytes, minimum 32 with its header).
    pub(crate) fn bytes_estimate(&self) -> usize {
        let buckets = self.nodes.capacity() * 8 / 7;
        let table = buckets * (size_of::<(i32, Node)>() + 1);
        let heap: usize = self.nodes.values().map(|n| malloc_size(n.name.len())).sum();
        let index = self.index.capacity() * 8 / 7 * (size_of::<((i32, u64), i32)>() + 1);
        table + heap + index
    }
}

/// True for one normal path component.
fn is_component(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/')
}

/// Bytes glibc malloc really uses for a block of `n` bytes (0 for no allocation).
pub(crate) fn malloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).div_ceil(16).max(2) * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sample() -> WatchTree {
        // 1 = top of root 7; 2 = a; 3 = a/b; 4 = a/b/c; 5 = d
        let mut t = WatchTree::default();
        assert!(t.insert_top(1, 7));
        assert!(t.insert_child(2, 1, b"a"));
        assert!(t.insert_child(3, 2, b"b"));
        assert!(t.insert_child(4, 3, b"c"));
        assert!(t.insert_child(5, 1, b"d"));
        t
    }

    #[test]
    fn rel_paths_are_rebuilt_from_names() {
        let t = sample();
        assert_eq!(t.rel_path(1), Path::new(""));
        assert_eq!(t.rel_path(4), Path::new("a/b/c"));
        assert_eq!(t.get(4).unwrap().root_id, 7);
        assert_eq!(t.child(2, b"b"), Some(3));
        assert_eq!(t.child(2, b"x"), None);
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let mut t = sample();
        assert!(!t.insert_child(9, 1, b".."));
        assert!(!t.insert_child(9, 1, b"x/y"));
        assert!(!t.insert_child(9, 1, b""));
        assert!(!t.insert_child(9, 42, b"x"));
        assert!(!t.insert_child(3, 1, b"again"));
        assert!(!t.insert_top(1, 8));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn removing_a_subtree_detaches_it() {
        let mut t = sample();
        let mut removed = Vec::new();
        t.remove_subtree(2, &mut removed);
        removed.sort();
        assert_eq!(removed, [2, 3, 4]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.root_len(7), 2);
        assert_eq!(t.child(1, b"d"), Some(5));
        assert_eq!(t.child(1, b"a"), None);
        // Unlinking from the middle and the end of a sibling list.
        assert!(t.insert_child(6, 1, b"e"));
        assert!(t.insert_child(7, 1, b"f"));
        t.remove_subtree(6, &mut removed);
        assert_eq!((t.child(1, b"f"), t.child(1, b"d")), (Some(7), Some(5)));
        t.remove_subtree(5, &mut removed);
        assert_eq!((t.child(1, b"f"), t.child(1, b"d")), (Some(7), None));
        let mut again = Vec::new();
        t.remove_subtree(2, &mut again);
        assert!(again.is_empty());
        t.remove_subtree(1, &mut again);
        assert_eq!(t.len(), 0);
        assert_eq!(t.root_len(7), 0);
    }

    #[test]
    fn a_child_is_found_among_many_siblings_at_once() {
        let mut t = WatchTree::default();
        assert!(t.insert_top(1, 7));
        for i in 0..50_000 {
            assert!(t.insert_child(i + 2, 1, format!("d{i}").as_bytes()));
        }
        let start = std::time::Instant::now();
        for i in 0..50_000 {
            assert_eq!(t.child(1, format!("d{i}").as_bytes()), Some(i + 2));
        }
        assert_eq!(t.child(1, b"none"), None);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let mut removed = Vec::new();
        t.remove_subtree(30, &mut removed);
        assert_eq!(t.child(1, b"d28"), None);
        assert!(t.insert_child(30, 1, b"d28"));
        assert_eq!(t.child(1, b"d28"), Some(30));
    }

    #[test]
    fn directories_are_counted_per_root() {
        let mut t = sample();
        assert!(t.insert_top(10, 8));
        assert!(t.insert_child(11, 10, b"x"));
        assert_eq!((t.root_len(7), t.root_len(8), t.root_len(9)), (5, 2, 0));
        let mut removed = Vec::new();
        t.remove_subtree(10, &mut removed);
        assert_eq!((t.root_len(7), t.root_len(8)), (5, 0));
    }

    #[test]
    fn estimate_grows_with_nodes() {
        let empty = WatchTree::default().bytes_estimate();
        assert!(sample().bytes_estimate() > empty);
        assert_eq!(malloc_size(0), 0);
        assert_eq!(malloc_size(2), 32);
        assert_eq!(malloc_size(40), 48);
    }
}
