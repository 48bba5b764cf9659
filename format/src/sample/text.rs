//! A chunk's string table: every distinct text value once.

use std::collections::HashMap;
use std::sync::Arc;

/// A text value's index in its chunk's [`Texts`]. It means nothing outside
/// the [`crate::sample::Samples`] that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextId(u32);

impl TextId {
    /// The index, for tables sized by [`Texts::len`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Interned strings of one chunk. A state point repeats a handful of words
/// ("active", "inactive") tens of thousands of times a month; each is
/// stored once, and a sample holds a 4-byte [`TextId`].
#[derive(Debug, Default, Clone)]
pub struct Texts {
    list: Vec<Arc<str>>,
    index: HashMap<Arc<str>, TextId>,
}

impl Texts {
    /// The id of `s`, adding it if it is new.
    pub fn intern(&mut self, s: &str) -> TextId {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        // A chunk holds at most CHUNK_MAX_SAMPLES samples, far below u32::MAX.
        let id = TextId(self.list.len() as u32);
        let s: Arc<str> = Arc::from(s);
        self.list.push(Arc::clone(&s));
        self.index.insert(s, id);
        id
    }

    /// The string of `id` (empty for an id from another table).
    pub fn get(&self, id: TextId) -> &str {
        self.list.get(id.index()).map_or("", |s| s)
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Forgets every string added after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        for s in self.list.drain(len.min(self.list.len())..) {
            self.index.remove(&s);
        }
    }
}

impl PartialEq for Texts {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}
