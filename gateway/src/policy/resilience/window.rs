//! Counts over a sliding window, kept in a ring of time slots with atomics only: the breaker's
//! requests and failures, the retry budget's requests and retries. Counting is on every
//! upstream request, so it takes no lock; the price is that a count landing while its slot is
//! being recycled may be lost, which a failure rate or a budget can afford.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slots in the ring: the window moves on in steps of a tenth of its length.
const SLOTS: usize = 10;

/// Two counts (`A` and `B`) over the last `SLOTS` slots of `slot_ms` each.
pub struct Window {
    slot_ms: u64,
    slots: [Slot; SLOTS],
}

#[derive(Default)]
struct Slot {
    /// Which slot of time (`now / slot_ms`) the counts belong to, plus one (0: never used).
    epoch: AtomicU64,
    counts: [AtomicU64; 2],
}

/// Which of the two counts.
#[derive(Clone, Copy)]
pub enum Count {
    A = 0,
    B = 1,
}

impl Window {
    /// A window of `length_ms` (at least `SLOTS` ms).
    pub fn new(length_ms: u64) -> Self {
        Window { slot_ms: (length_ms / SLOTS as u64).max(1), slots: Default::default() }
    }

    /// Adds one to `count` at `now_ms`.
    pub fn add(&self, now_ms: u64, count: Count) {
        let epoch = now_ms / self.slot_ms + 1;
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        let seen = slot.epoch.load(Ordering::Acquire);
        if seen != epoch
            && seen < epoch
            && slot.epoch.compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            for c in &slot.counts {
                c.store(0, Ordering::Relaxed);
            }
        }
        slot.counts[count as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Both counts over the window ending at `now_ms`.
    pub fn sums(&self, now_ms: u64) -> (u64, u64) {
        let epoch = now_ms / self.slot_ms + 1;
        let oldest = epoch.saturating_sub(SLOTS as u64 - 1);
        self.slots
            .iter()
            .filter(|slot| (oldest..=epoch).contains(&slot.epoch.load(Ordering::Acquire)))
            .fold((0, 0), |(a, b), slot| {
                (a + slot.counts[0].load(Ordering::Relaxed), b + slot.counts[1].load(Ordering::Relaxed))
            })
    }

    /// Forgets everything counted.
    pub fn clear(&self) {
        for slot in &self.slots {
            slot.epoch.store(0, Ordering::Release);
            for c in &slot.counts {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leave_the_window_as_it_moves_on() {
        let window = Window::new(10_000);
        window.add(0, Count::A);
        window.add(500, Count::A);
        window.add(1_500, Count::B);
        assert_eq!(window.sums(1_999), (2, 1));
        assert_eq!(window.sums(9_999), (2, 1), "still within 10 s");
        assert_eq!(window.sums(10_000), (0, 1), "the first slot has left the window");
        assert_eq!(window.sums(11_000), (0, 0));
        window.add(25_000, Count::A);
        assert_eq!(window.sums(25_000), (1, 0), "a recycled slot starts from zero");
        window.clear();
        assert_eq!(window.sums(25_000), (0, 0));
    }
}
