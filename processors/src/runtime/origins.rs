//! Exact deduplication and fencing of what processors read from each other (issue 14 (d), (e)).
//!
//! Every output a processor produces carries its **origin** in a record header: the source
//! processor and partition, the generation of the owner that sent it, the generation of the
//! owner that logged its batch, the batch's sequence and the output's index in it. A source
//! partition logs batch N+1 only once every output of batch N was acknowledged, and after a
//! crash its next owner sends only the newest logged batch again. So, per destination
//! partition, it is enough to remember for each source partition the newest batch seen (its
//! sequence and who logged it) and which indices of it arrived: anything of an older batch, or
//! an index seen already, is a duplicate. The state is one entry per source partition however
//! long a replay is — no window it can outrun.
//!
//! Fencing: a generation is the offset of its owner's restore marker in the changelog, so a
//! newer owner has a higher one. Once a destination saw generation G from a source partition,
//! records sent by an older owner (one frozen past its session, then resumed) are dropped.
//!
//! The trackers are state of the consuming partition: they are logged with its decisions
//! under `__origins/<partition>/<source>/<source partition>` and restored with its state.

use jivapay_schemas::records::LoggedChange;
use std::collections::{BTreeMap, BTreeSet};

/// The record header that carries an output's origin.
pub const HEADER: &str = "jivapay-origin";

/// The state-key prefix of the trackers in a changelog.
pub const STATE_PREFIX: &str = "__origins/";

/// Where one output came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The processor that produced it (`router`, `commissions`, …).
    pub source: String,
    pub partition: i32,
    /// The generation of the owner that sent it.
    pub sender: i64,
    /// The generation of the owner that logged its batch (an owner re-sending a previous
    /// owner's newest batch sends it as that owner logged it).
    pub logged_by: i64,
    pub sequence: i64,
    pub index: u32,
}

impl Origin {
    /// The header value: `source/partition/sender/logged_by/sequence/index`.
    pub fn header(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}/{}",
            self.source, self.partition, self.sender, self.logged_by, self.sequence, self.index
        )
    }

    /// Reads a header value; `None` when it is not one (then the record is not tracked).
    pub fn parse(value: &[u8]) -> Option<Origin> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.rsplitn(6, '/');
        let index = parts.next()?.parse().ok()?;
        let sequence = parts.next()?.parse().ok()?;
        let logged_by = parts.next()?.parse().ok()?;
        let sender = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let source = parts.next()?.to_owned();
        Some(Origin {
            source,
            partition,
            sender,
            logged_by,
            sequence,
            index,
        })
    }
}

/// What one destination partition knows of one source partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Track {
    /// The newest generation seen sending: older senders are fenced off.
    fence: i64,
    /// The newest batch seen: (sequence, generation that logged it).
    batch: (i64, i64),
    /// The indices of that batch seen.
    seen: BTreeSet<u32>,
}

impl Track {
    /// Whether `origin` is new; remembers it if so.
    fn admit(&mut self, origin: &Origin) -> bool {
        if origin.sender < self.fence {
            return false; // sent by an owner that lost the partition
        }
        self.fence = origin.sender;
        let batch = (origin.sequence, origin.logged_by);
        if batch < self.batch {
            // An older batch: fully delivered before the newer one was logged. Or the same
            // sequence logged by an owner fenced since, which its successor re-decided.
            return false;
        }
        if batch > self.batch {
            self.batch = batch;
            self.seen.clear();
        }
        self.seen.insert(origin.index)
    }

    /// `fence/sequence/logged_by/ranges`, ranges as `a-b` joined by `,`.
    fn encode(&self) -> Vec<u8> {
        let mut ranges: Vec<String> = Vec::new();
        let mut run: Option<(u32, u32)> = None;
        for index in &self.seen {
            run = match run {
                Some((start, end)) if end + 1 == *index => Some((start, *index)),
                Some((start, end)) => {
                    ranges.push(format!("{start}-{end}"));
                    Some((*index, *index))
                }
                None => Some((*index, *index)),
            };
        }
        if let Some((start, end)) = run {
            ranges.push(format!("{start}-{end}"));
        }
        format!(
            "{}/{}/{}/{}",
            self.fence,
            self.batch.0,
            self.batch.1,
            ranges.join(",")
        )
        .into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Track> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(4, '/');
        let fence = parts.next()?.parse().ok()?;
        let sequence = parts.next()?.parse().ok()?;
        let logged_by = parts.next()?.parse().ok()?;
        let mut seen = BTreeSet::new();
        for range in parts.next()?.split(',').filter(|r| !r.is_empty()) {
            let (start, end) = range.split_once('-')?;
            let (start, end): (u32, u32) = (start.parse().ok()?, end.parse().ok()?);
            seen.extend(start..=end);
        }
        Some(Track {
            fence,
            batch: (sequence, logged_by),
            seen,
        })
    }
}

/// The trackers of one destination partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    tracks: BTreeMap<(String, i32), Track>,
    touched: BTreeSet<(String, i32)>,
}

impl Origins {
    /// Whether a record of `origin` is new (to be applied); remembers it if so.
    pub fn admit(&mut self, origin: &Origin) -> bool {
        let key = (origin.source.clone(), origin.partition);
        let track = self.tracks.entry(key.clone()).or_default();
        let fence = track.fence;
        let new = track.admit(origin);
        // A duplicate can raise the fence (a new owner resending what was seen): that is a
        // change to log too, or a restore would forget it. Found by the simulation.
        if new || track.fence != fence {
            self.touched.insert(key);
        }
        new
    }

    /// The trackers changed since the last call, as state changes of `partition`.
    pub fn take_changes(&mut self, partition: i32) -> Vec<LoggedChange> {
        std::mem::take(&mut self.touched)
            .into_iter()
            .map(|key| LoggedChange {
                state_key: state_key(partition, &key.0, key.1),
                state: Some(self.tracks[&key].encode()),
            })
            .collect()
    }

    /// Loads a tracker from its state record; `false` when `key` is not a tracker's.
    pub fn restore(&mut self, key: &str, state: Option<&[u8]>) -> bool {
        let Some((source, partition)) = parse_state_key(key) else {
            return false;
        };
        match state.and_then(Track::decode) {
            Some(track) => self.tracks.insert((source, partition), track),
            None => self.tracks.remove(&(source, partition)),
        };
        true
    }
}

fn state_key(partition: i32, source: &str, source_partition: i32) -> String {
    format!("{STATE_PREFIX}{partition}/{source}/{source_partition}")
}

/// The source and source partition of a tracker's state key.
fn parse_state_key(key: &str) -> Option<(String, i32)> {
    let rest = key.strip_prefix(STATE_PREFIX)?;
    let (_, rest) = rest.split_once('/')?;
    let (source, partition) = rest.rsplit_once('/')?;
    Some((source.to_owned(), partition.parse().ok()?))
}

/// The changelog partition a tracker's state key belongs to (the destination partition it
/// names), `None` for other keys.
pub fn state_partition(key: &str) -> Option<i32> {
    key.strip_prefix(STATE_PREFIX)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(sender: i64, logged_by: i64, sequence: i64, index: u32) -> Origin {
        Origin {
            source: "router".into(),
            partition: 3,
            sender,
            logged_by,
            sequence,
            index,
        }
    }

    #[test]
    fn a_header_round_trips() {
        let o = origin(17, 12, 9, 4);
        assert_eq!(o.header(), "router/3/17/12/9/4");
        assert_eq!(Origin::parse(o.header().as_bytes()), Some(o));
        assert_eq!(Origin::parse(b"router/3/x/1/1/1"), None);
    }

    #[test]
    fn a_batch_sent_again_whole_after_a_crash_is_dropped_however_long() {
        let mut origins = Origins::default();
        for index in 0..10_000 {
            assert!(origins.admit(&origin(5, 5, 1, index)));
        }
        // The next owner (generation 40) sends the newest logged batch again.
        for index in 0..10_000 {
            assert!(!origins.admit(&origin(40, 5, 1, index)));
        }
        assert!(origins.admit(&origin(40, 40, 2, 0)), "its own next batch");
    }

    #[test]
    fn a_partly_delivered_batch_sent_again_delivers_only_what_was_missing() {
        let mut origins = Origins::default();
        for index in [0, 1, 3] {
            assert!(origins.admit(&origin(5, 5, 7, index)));
        }
        let again: Vec<u32> = (0..5)
            .filter(|i| origins.admit(&origin(9, 5, 7, *i)))
            .collect();
        assert_eq!(again, vec![2, 4]);
        assert!(!origins.admit(&origin(9, 5, 6, 0)), "an older batch");
    }

    #[test]
    fn an_owner_that_lost_its_partition_is_fenced_off() {
        let mut origins = Origins::default();
        assert!(origins.admit(&origin(5, 5, 7, 0)));
        assert!(origins.admit(&origin(9, 9, 8, 0)), "the new owner");
        assert!(
            !origins.admit(&origin(5, 5, 8, 1)),
            "the old owner, resumed, decided batch 8 too"
        );
        assert!(!origins.admit(&origin(5, 5, 9, 0)));
    }

    #[test]
    fn a_new_owner_redeciding_a_batch_a_fenced_owner_sent_first_is_applied() {
        // The old owner (5) logged batch 8 after the new owner (9) restored: the new owner
        // never read it and decides batch 8 itself, from the same inputs.
        let mut origins = Origins::default();
        assert!(origins.admit(&origin(5, 5, 8, 0)));
        assert!(origins.admit(&origin(9, 9, 8, 0)));
        assert!(!origins.admit(&origin(5, 5, 8, 1)), "fenced since");
    }

    #[test]
    fn a_fence_raised_by_a_dropped_duplicate_is_a_change() {
        let mut origins = Origins::default();
        assert!(origins.admit(&origin(5, 5, 7, 0)));
        origins.take_changes(2);
        assert!(!origins.admit(&origin(9, 5, 7, 0)), "the new owner resends");
        let changes = origins.take_changes(2);
        assert_eq!(changes.len(), 1, "the fence moved to 9");
        let mut restored = Origins::default();
        restored.restore(&changes[0].state_key, changes[0].state.as_deref());
        assert!(
            !restored.admit(&origin(5, 5, 8, 0)),
            "the old owner stays fenced"
        );
    }

    #[test]
    fn trackers_survive_a_restore() {
        let mut origins = Origins::default();
        for index in [0, 1, 2, 5, 7, 8] {
            origins.admit(&origin(5, 5, 7, index));
        }
        let changes = origins.take_changes(11);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].state_key, "__origins/11/router/3");
        assert_eq!(state_partition(&changes[0].state_key), Some(11));
        assert_eq!(state_partition("trader/x"), None);
        assert!(origins.take_changes(11).is_empty(), "nothing new");

        let mut restored = Origins::default();
        assert!(restored.restore(&changes[0].state_key, changes[0].state.as_deref()));
        assert!(!restored.restore("trader/x", None));
        assert_eq!(restored.tracks, origins.tracks);
        assert!(!restored.admit(&origin(6, 5, 7, 8)));
        assert!(restored.admit(&origin(6, 5, 7, 6)));
    }
}
