//! The batches of one export between its checkpoint and its read position, in sequence order:
//! sent and waiting for the sink's answer, waiting to be sent again, or settled (confirmed,
//! skipped, or records retention removed). The checkpoint is the end of the contiguous prefix of
//! settled batches: a batch confirmed after one that is still open never moves it past the gap.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Batch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    InFlight,
    /// Refused for a reason worth retrying: goes again when the export's retry says so.
    Failed,
    Settled,
}

struct Slot {
    /// The range of sequence numbers it covers: `from..end`. Slots are contiguous.
    from: u64,
    end: u64,
    /// Dropped once settled: memory is held by open batches only.
    batch: Option<Arc<Batch>>,
    state: SlotState,
    /// Was given to the sink: counts towards the in-flight limit until the checkpoint passes it.
    sent: bool,
}

pub struct Window {
    /// Everything before it is settled: the checkpoint to store.
    start: u64,
    slots: VecDeque<Slot>,
}

impl Window {
    pub fn new(start: u64) -> Self {
        Window {
            start,
            slots: VecDeque::new(),
        }
    }

    /// Where the settled prefix ends.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Where the next slot begins.
    pub fn end(&self) -> u64 {
        self.slots.back().map_or(self.start, |s| s.end)
    }

    /// Batches given to the sink whose range the checkpoint has not passed yet (confirmed ones
    /// behind an open one included): the number a crash could send again.
    pub fn sent_batches(&self) -> usize {
        self.slots.iter().filter(|s| s.sent).count()
    }

    /// Adds `batch` (covering `from..end`, `from` being [`Window::end`]) as sent.
    pub fn push_sent(&mut self, from: u64, end: u64, batch: Arc<Batch>) {
        debug_assert_eq!(from, self.end(), "slots are contiguous");
        self.slots.push_back(Slot {
            from,
            end,
            batch: Some(batch),
            state: SlotState::InFlight,
            sent: true,
        });
    }

    /// Adds a range that needs no sending (skipped records, records retention removed).
    pub fn push_settled(&mut self, from: u64, end: u64) {
        debug_assert_eq!(from, self.end(), "slots are contiguous");
        if end > from {
            self.slots.push_back(Slot {
                from,
                end,
                batch: None,
                state: SlotState::Settled,
                sent: false,
            });
        }
        self.pop_settled();
    }

    fn slot(&mut self, from: u64) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.from == from)
    }

    /// The batch of the open slot at `from`.
    pub fn batch(&self, from: u64) -> Option<Arc<Batch>> {
        let slot = self.slots.iter().find(|s| s.from == from)?;
        slot.batch.clone()
    }

    /// Whether the slot at `from` waits for the sink's answer (an answer for anything else is
    /// stale: ignored).
    pub fn is_in_flight(&self, from: u64) -> bool {
        self.slots
            .iter()
            .any(|s| s.from == from && s.state == SlotState::InFlight)
    }

    /// Takes the batch of the slot at `from` out to change it; [`Window::put_back`] returns
    /// it. Not copied when nobody else holds it (the send that used it is over).
    pub fn take_batch(&mut self, from: u64) -> Batch {
        let taken = self.slot(from).and_then(|s| s.batch.take());
        match taken.map(Arc::try_unwrap) {
            Some(Ok(batch)) => batch,
            Some(Err(shared)) => Batch {
                records: shared.records.clone(),
                body: shared.body.clone(),
            },
            None => Batch::default(),
        }
    }

    pub fn put_back(&mut self, from: u64, batch: Batch) {
        if let Some(s) = self.slot(from) {
            s.batch = Some(Arc::new(batch));
        }
    }

    pub fn mark_failed(&mut self, from: u64) {
        if let Some(s) = self.slot(from) {
            s.state = SlotState::Failed;
        }
    }

    pub fn mark_in_flight(&mut self, from: u64) {
        if let Some(s) = self.slot(from) {
            s.state = SlotState::InFlight;
        }
    }

    /// Settles the slot at `from` and returns its batch (for counting), then moves the start
    /// over the settled prefix.
    pub fn settle(&mut self, from: u64) -> Option<Arc<Batch>> {
        let batch = self.slot(from).and_then(|s| {
            s.state = SlotState::Settled;
            s.batch.take()
        });
        self.pop_settled();
        batch
    }

    /// The slots waiting to be sent again, oldest first.
    pub fn failed(&self) -> Vec<u64> {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Failed)
            .map(|s| s.from)
            .collect()
    }

    /// Moves the start over the settled slots at the front.
    fn pop_settled(&mut self) {
        while let Some(s) = self.slots.front() {
            if s.state != SlotState::Settled {
                break;
            }
            self.start = s.end;
            self.slots.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(w: &mut Window, from: u64, end: u64) {
        w.push_sent(from, end, Arc::new(Batch::default()));
    }

    #[test]
    fn the_start_moves_only_over_a_contiguous_settled_prefix() {
        let mut w = Window::new(0);
        sent(&mut w, 0, 5);
        sent(&mut w, 5, 10);
        sent(&mut w, 10, 15);
        w.settle(10);
        w.settle(5);
        assert_eq!(w.start(), 0, "the first batch is still open");
        assert_eq!(
            w.sent_batches(),
            3,
            "confirmed batches behind a gap still count"
        );
        w.settle(0);
        assert_eq!((w.start(), w.end(), w.sent_batches()), (15, 15, 0));
    }

    #[test]
    fn ranges_that_need_no_sending_count_for_nothing_and_settle_at_once() {
        let mut w = Window::new(3);
        sent(&mut w, 3, 5);
        w.push_settled(5, 9);
        assert_eq!((w.sent_batches(), w.end(), w.start()), (1, 9, 3));
        w.settle(3);
        assert_eq!(w.start(), 9);
        w.push_settled(9, 9);
        assert_eq!(w.end(), 9, "an empty range adds no slot");
    }

    #[test]
    fn failed_slots_are_listed_oldest_first_and_only_in_flight_ones_take_answers() {
        let mut w = Window::new(0);
        for from in [0, 5, 10] {
            sent(&mut w, from, from + 5);
        }
        w.mark_failed(10);
        w.mark_failed(0);
        assert_eq!(w.failed(), vec![0, 10]);
        assert!(!w.is_in_flight(0) && w.is_in_flight(5) && !w.is_in_flight(99));
        w.mark_in_flight(0);
        assert_eq!(w.failed(), vec![10]);
    }

    #[test]
    fn a_batch_taken_out_is_copied_only_while_a_send_still_holds_it() {
        let record = crate::record::Record {
            sequence_number: 0,
            timestamp_ms: 0,
            metadata: Default::default(),
            payload: "p".into(),
        };
        let mut w = Window::new(0);
        let in_send = Arc::new(Batch {
            records: vec![record],
            body: Some("x".into()),
        });
        let original = in_send.records.as_ptr();
        w.push_sent(0, 1, in_send.clone());
        let copied = w.take_batch(0);
        assert_ne!(copied.records.as_ptr(), original, "shared: copied");
        assert_eq!(copied.records, in_send.records);
        w.put_back(0, copied);
        let put_back = w.batch(0).unwrap().records.as_ptr();
        let taken = w.take_batch(0);
        assert_eq!(
            taken.records.as_ptr(),
            put_back,
            "held by the window only: moved"
        );
        assert!(w.batch(0).is_none(), "taken out");
    }
}
