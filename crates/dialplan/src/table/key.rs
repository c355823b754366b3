//! The table's key: a canonical URI's text, stored inline when short.
//!
//! Most directory URIs are under 47 bytes, so most keys live inside the map entry itself. A
//! lookup then reads the entry and compares the key without a further pointer chase, one
//! cache miss fewer at a million entries, and the table saves one allocation per URI.

use std::hash::{Hash, Hasher};

/// An owned key.
#[derive(Clone)]
pub(super) enum UriKey {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

/// A borrowed key for lookups; hashes and compares like the [`UriKey`] of the same text.
pub(super) struct KeyRef<'a>(pub(super) &'a str);

impl UriKey {
    pub(super) fn new(text: &str) -> Self {
        if text.len() > INLINE {
            return Self::Heap(text.into());
        }
        let mut bytes = [0; INLINE];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Self::Inline {
            // INLINE (46) fits in a u8.
            len: text.len() as u8,
            bytes,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(text) => text.as_bytes(),
        }
    }

    /// The key's text (validated again: the views that need text are not on the call path).
    pub(super) fn as_str(&self) -> &str {
        match self {
            Self::Inline { .. } => std::str::from_utf8(self.bytes()).unwrap_or_default(),
            Self::Heap(text) => text,
        }
    }
}

impl PartialEq for UriKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for UriKey {}

impl Hash for UriKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.bytes());
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl papaya::Equivalent<UriKey> for KeyRef<'_> {
    fn equivalent(&self, key: &UriKey) -> bool {
        self.0.as_bytes() == key.bytes()
    }
}

/// Keys up to this many bytes are stored inline; the key is then 48 bytes, and a map entry
/// (key and 16-byte claim) is 64 bytes.
const INLINE: usize = 46;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn inline_and_heap_keys_agree_with_borrowed_ones() {
        let s = foldhash::fast::FixedState::with_seed(7);
        for text in ["alice@hq.example.com", &"a".repeat(46), &"b".repeat(47)] {
            let key = UriKey::new(text);
            assert_eq!(key.as_str(), text);
            assert_eq!(s.hash_one(&key), s.hash_one(KeyRef(text)));
            assert!(papaya::Equivalent::equivalent(&KeyRef(text), &key));
        }
        assert!(matches!(
            UriKey::new(&"a".repeat(46)),
            UriKey::Inline { .. }
        ));
        assert!(matches!(UriKey::new(&"a".repeat(47)), UriKey::Heap(_)));
        assert_eq!(std::mem::size_of::<UriKey>(), 48);
    }
}
