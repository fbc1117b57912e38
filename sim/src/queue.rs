//! The simulated clock's agenda: events ordered by time, ties by the order they were
//! scheduled, so a seed replays the same interleaving every time.

use crate::people::Ack;
use crate::topics::Record;
use jivapay_domain::{OrderId, TraderId};
use jivapay_processors::core::Millis;
use jivapay_schemas::records::TraderCommandKind;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

/// Something a person does.
#[derive(Debug, Clone)]
pub enum Action {
    Customer {
        order: OrderId,
        trader: TraderId,
        expires_at: Millis,
        attempt: u32,
    },
    Trader {
        order: OrderId,
        trader: TraderId,
        kind: TraderCommandKind,
        deadline: Option<Millis>,
        attempt: u32,
    },
    Staff {
        order: OrderId,
        trader: TraderId,
    },
}

#[derive(Debug)]
pub enum Event {
    /// The next pay-in arrives.
    Arrival,
    /// A record reaches its partition (a producer's delivery, an edge's, a duplicate).
    Append {
        topic: &'static str,
        partition: i32,
        record: Rc<Record>,
        ack: Option<Box<Ack>>,
    },
    Poll {
        kind: usize,
        instance: usize,
        life: u64,
    },
    /// A frozen instance goes on where it stopped.
    Resume {
        kind: usize,
        instance: usize,
        life: u64,
    },
    /// A resumed instance learns that its assignment is gone (its next heartbeat): until
    /// then it goes on as the owner of its old partitions (`runtime.rs`, disturbed owners).
    Lost {
        kind: usize,
        instance: usize,
        life: u64,
    },
    /// A dead instance's process starts again.
    Restart {
        kind: usize,
        instance: usize,
        life: u64,
    },
    /// The group notices a member that stayed silent.
    SessionTimeout {
        kind: usize,
        instance: usize,
        life: u64,
    },
    /// A member leaves the group for a while.
    Leave {
        kind: usize,
    },
    /// It comes back.
    Rejoin {
        kind: usize,
        instance: usize,
    },
    /// The `trader.capacity` table reader fetches.
    TablePoll,
    /// The admin changes master data.
    Admin,
    /// A trader tops up or withdraws.
    TopUp,
    Act(Action),
    /// Log cleaning, retention, periodic checks.
    Housekeeping,
}

struct Scheduled {
    at: Millis,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed: the heap's greatest is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
pub struct Queue {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    /// Appends and actions still to happen (quiescence waits for them).
    pub in_flight: u64,
}

impl Queue {
    pub fn push(&mut self, at: Millis, event: Event) {
        if matches!(event, Event::Append { .. } | Event::Act(_)) {
            self.in_flight += 1;
        }
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    pub fn pop(&mut self) -> Option<(Millis, Event)> {
        let s = self.heap.pop()?;
        if matches!(s.event, Event::Append { .. } | Event::Act(_)) {
            self.in_flight -= 1;
        }
        Some((s.at, s.event))
    }
}
