//! The deadline queue for every transaction timer: a binary heap with lazy deletion.
//!
//! A transaction keeps its live deadlines in its own fields; the heap may hold stale entries for
//! deadlines since moved or cancelled. A popped entry fires only when it still equals the
//! transaction's field, so rescheduling is O(log n) and cancelling is O(1).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Which deadline of a transaction an entry is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Slot {
    /// Timer A, E or G: retransmit.
    Retransmit,
    /// Timer B, F, H, C or the response timeout: give up.
    Timeout,
    /// Timer D, I, J, K, L or M: absorb stragglers, then forget the transaction.
    Linger,
}

/// Whose deadline an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Owner {
    Client(u64),
    Server(u64),
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    owner: Owner,
    slot: Slot,
}

/// Pending deadlines, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    pub(crate) fn schedule(&mut self, at: Instant, owner: Owner, slot: Slot) {
        self.heap.push(Reverse(Entry { at, owner, slot }));
    }

    /// The earliest deadline, possibly a stale one (waking early is harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.0.at)
    }

    /// Pops the next entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Owner, Slot)> {
        if self.heap.peek()?.0.at > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.at, e.owner, e.slot))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}
