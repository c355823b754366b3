//! The deadline queue for every transaction timer, with lazy deletion.
//!
//! A transaction keeps its live deadlines in its own fields; the queue may hold stale entries
//! for deadlines since moved or cancelled. A popped entry fires only when it still equals the
//! transaction's field, so cancelling is O(1).
//!
//! Almost every timer is "now plus one of a few fixed delays" (T1 doublings, T2, T4, 64·T1,
//! Timer C, the response timeout), and `now` only moves forward, so the entries of one delay
//! come due in the order they were queued. Each such delay gets a first-in first-out lane, and
//! scheduling and popping are O(1) with no comparison sort. Lanes are kept in fixed-size
//! blocks: under load the queue holds hundreds of thousands of lingering transactions, and one
//! contiguous buffer would have to be copied, and its fresh pages faulted in, every time it
//! doubled, stalling every message behind it for tens of milliseconds. Anything else (a
//! deadline measured from an earlier instant, a clock that stepped back) goes to a small binary
//! heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    owner: Owner,
    slot: Slot,
}

/// Pending deadlines, earliest first.
#[derive(Debug)]
pub(crate) struct Timers {
    lanes: Vec<Lane>,
    others: BinaryHeap<Reverse<Entry>>,
}

#[derive(Debug)]
struct Lane {
    delay: Duration,
    queue: Fifo,
}

/// Where the earliest entry is.
#[derive(Clone, Copy)]
enum Source {
    Lane(usize),
    Others,
}

impl Timers {
    /// A queue with a first-in first-out lane for each of `delays` (duplicates are merged).
    pub(crate) fn with_delays(delays: impl IntoIterator<Item = Duration>) -> Self {
        let mut lanes: Vec<Lane> = Vec::new();
        for delay in delays {
            if !lanes.iter().any(|l| l.delay == delay) {
                lanes.push(Lane {
                    delay,
                    queue: Fifo::default(),
                });
            }
        }
        Self {
            lanes,
            others: BinaryHeap::new(),
        }
    }

    /// Queues a deadline at `at`, set at `now`.
    pub(crate) fn schedule(&mut self, now: Instant, at: Instant, owner: Owner, slot: Slot) {
        let entry = Entry { at, owner, slot };
        let delay = at.saturating_duration_since(now);
        if let Some(lane) = self.lanes.iter_mut().find(|l| l.delay == delay)
            && lane.queue.back().is_none_or(|b| b.at <= at)
        {
            lane.queue.push_back(entry);
            return;
        }
        self.others.push(Reverse(entry));
    }

    /// The earliest deadline, possibly a stale one (waking early is harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.earliest().map(|(at, _)| at)
    }

    /// Pops the next entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Owner, Slot)> {
        let (at, source) = self.earliest()?;
        if at > now {
            return None;
        }
        let e = match source {
            Source::Lane(i) => self.lanes[i].queue.pop_front()?,
            Source::Others => self.others.pop()?.0,
        };
        Some((e.at, e.owner, e.slot))
    }

    /// Queued entries, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.queue.len()).sum::<usize>() + self.others.len()
    }

    fn earliest(&self) -> Option<(Instant, Source)> {
        let mut best = self.others.peek().map(|e| (e.0.at, Source::Others));
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(front) = lane.queue.front()
                && best.is_none_or(|(at, _)| front.at < at)
            {
                best = Some((front.at, Source::Lane(i)));
            }
        }
        best
    }
}

/// Entries per block of a lane.
const BLOCK: usize = 1024;

/// A first-in first-out queue in fixed-size blocks: it never moves what it holds.
#[derive(Debug, Default)]
struct Fifo {
    blocks: VecDeque<Vec<Entry>>,
    /// Entries of the front block already popped.
    head: usize,
    /// One emptied block kept for reuse, so a queue that hovers at a block boundary does not
    /// allocate and free a block each time.
    spare: Option<Vec<Entry>>,
    len: usize,
}

impl Fifo {
    fn push_back(&mut self, e: Entry) {
        match self.blocks.back_mut() {
            Some(b) if b.len() < BLOCK => b.push(e),
            _ => {
                let mut b = self
                    .spare
                    .take()
                    .unwrap_or_else(|| Vec::with_capacity(BLOCK));
                b.push(e);
                self.blocks.push_back(b);
            }
        }
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let front = self.blocks.front()?;
        let e = *front.get(self.head)?;
        self.head += 1;
        self.len -= 1;
        if self.head == front.len() && (front.len() == BLOCK || self.len == 0) {
            let mut b = self.blocks.pop_front()?;
            b.clear();
            self.spare = Some(b);
            self.head = 0;
        }
        Some(e)
    }

    fn front(&self) -> Option<&Entry> {
        self.blocks.front()?.get(self.head)
    }

    fn back(&self) -> Option<&Entry> {
        self.blocks.back()?.last()
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(t: &mut Timers, now: Instant) -> Vec<(Instant, Owner)> {
        std::iter::from_fn(|| t.pop_due(now).map(|(at, o, _)| (at, o))).collect()
    }

    #[test]
    fn entries_come_out_in_deadline_order_across_lanes_and_the_heap() {
        let t0 = Instant::now();
        let mut t = Timers::with_delays([ms(500), ms(32_000), ms(500)]);
        assert_eq!(t.lanes.len(), 2, "duplicate delays share a lane");
        t.schedule(t0, t0 + ms(32_000), Owner::Server(1), Slot::Linger);
        t.schedule(t0, t0 + ms(500), Owner::Client(2), Slot::Retransmit);
        // Not a lane's delay: the heap.
        t.schedule(t0, t0 + ms(700), Owner::Client(3), Slot::Timeout);
        // Set later, for a deadline measured from earlier: the heap too.
        t.schedule(t0 + ms(10), t0 + ms(300), Owner::Client(4), Slot::Timeout);
        t.schedule(
            t0 + ms(10),
            t0 + ms(510),
            Owner::Client(5),
            Slot::Retransmit,
        );
        assert_eq!(t.len(), 5);
        assert_eq!(t.next(), Some(t0 + ms(300)));
        assert_eq!(drain(&mut t, t0 + ms(299)), []);
        let got = drain(&mut t, t0 + ms(40_000));
        let owners: Vec<Owner> = got.iter().map(|g| g.1).collect();
        assert_eq!(
            owners,
            [
                Owner::Client(4),
                Owner::Client(2),
                Owner::Client(5),
                Owner::Client(3),
                Owner::Server(1)
            ]
        );
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(t.len(), 0);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn a_clock_that_steps_back_still_yields_deadline_order() {
        let t0 = Instant::now();
        let mut t = Timers::with_delays([ms(100)]);
        t.schedule(t0 + ms(50), t0 + ms(150), Owner::Client(1), Slot::Timeout);
        // Same delay, earlier deadline than the lane's back: it cannot join the lane.
        t.schedule(t0, t0 + ms(100), Owner::Client(2), Slot::Timeout);
        let got: Vec<Owner> = drain(&mut t, t0 + ms(200))
            .into_iter()
            .map(|g| g.1)
            .collect();
        assert_eq!(got, [Owner::Client(2), Owner::Client(1)]);
    }

    #[test]
    fn a_lane_spans_blocks_and_reuses_them() {
        let t0 = Instant::now();
        let mut t = Timers::with_delays([ms(1)]);
        let n = BLOCK as u64 * 3 + 7;
        for round in 0..2u64 {
            for i in 0..n {
                let now = t0 + ms(round * 10_000) + Duration::from_micros(i);
                t.schedule(now, now + ms(1), Owner::Server(i), Slot::Linger);
            }
            assert_eq!(t.len(), n as usize);
            assert_eq!(t.others.len(), 0, "every entry in the lane");
            let got = drain(&mut t, t0 + ms(round * 10_000 + 5_000));
            assert_eq!(got.len(), n as usize);
            assert!(
                got.iter()
                    .enumerate()
                    .all(|(i, g)| g.1 == Owner::Server(i as u64))
            );
            assert_eq!(t.len(), 0);
            assert!(t.lanes[0].queue.blocks.is_empty());
        }
    }

    #[test]
    fn popping_interleaved_with_pushing_keeps_order_at_block_edges() {
        let t0 = Instant::now();
        let mut t = Timers::with_delays([ms(10)]);
        let mut next_out = 0u64;
        for i in 0..(BLOCK as u64 * 4) {
            let now = t0 + Duration::from_micros(i * 100);
            t.schedule(now, now + ms(10), Owner::Client(i), Slot::Retransmit);
            while let Some((_, o, _)) = t.pop_due(now) {
                assert_eq!(o, Owner::Client(next_out));
                next_out += 1;
            }
        }
        let rest = drain(&mut t, t0 + ms(100_000));
        assert_eq!(rest.len() as u64 + next_out, BLOCK as u64 * 4);
    }
}
