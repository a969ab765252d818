//! [`IdKey`]: one key of the `_id` index, the [`canonical_key`] of an `_id`.
//!
//! [`canonical_key`]: crate::query::compare::canonical_key

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bson::Bson;

use crate::query::compare::with_canonical_key;

/// Keys up to this many bytes are stored in the key itself: every integer
/// up to 15 digits, every ObjectId, strings up to 25 bytes.
const INLINE: usize = 30;

/// The canonical bytes of an `_id`. Short keys live inline, so a lookup
/// compares them without a further load from memory (a cache miss per
/// lookup in a large collection); longer ones are shared, so copying a
/// map node clones a reference count, not the bytes.
///
/// Hashes and compares as the `[u8]` it holds, so the index can be
/// searched with a plain byte slice.
#[derive(Clone)]
pub(super) enum IdKey {
    /// A short key: its length and bytes.
    Inline(u8, [u8; INLINE]),
    /// A longer key.
    Shared(Arc<[u8]>),
}

impl IdKey {
    /// The key holding these bytes.
    pub(super) fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            IdKey::Inline(bytes.len() as u8, inline)
        } else {
            IdKey::Shared(bytes.into())
        }
    }

    /// The key of an `_id` value (its [`canonical_key`]).
    ///
    /// [`canonical_key`]: crate::query::compare::canonical_key
    pub(super) fn of(id: &Bson) -> Self {
        with_canonical_key(id, IdKey::new)
    }

    /// The key's bytes.
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            IdKey::Inline(len, bytes) => &bytes[..usize::from(*len)],
            IdKey::Shared(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for IdKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for IdKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for IdKey {}

impl Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, which `Borrow` requires.
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdKey").field(&self.as_bytes()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn keys_of_every_length_hash_and_compare_as_their_bytes() {
        let hasher = std::collections::hash_map::RandomState::new();
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let key = IdKey::new(&bytes);
            assert_eq!(matches!(key, IdKey::Inline(..)), len <= INLINE);
            assert_eq!(key.as_bytes(), &bytes[..]);
            assert_eq!(hasher.hash_one(&key), hasher.hash_one(&bytes[..]));
            assert_eq!(key, IdKey::new(&bytes));
            let mut other = bytes;
            other.push(0);
            assert_ne!(key, IdKey::new(&other));
        }
    }
}
