//! The changelog's repairs on their own, on logs built record by record: what a restore
//! writes again over a fenced owner's late records, and what is left once the cleaner ran.

use jivapay_processors::ProcessorKind;
use jivapay_schemas::records::{InputOffset, LoggedChange};
use jivapay_schemas::SchemaRegistry;
use jivapay_sim::changelog::{
    batch_record, lease_record, marker_record, repair, restore, state_record, writer, Restored,
};
use jivapay_sim::master::MasterView;
use jivapay_sim::processors::AnyProcessor;
use jivapay_sim::topics::{Log, Record};
use std::rc::Rc;

fn change(key: &str, value: &str) -> LoggedChange {
    LoggedChange {
        state_key: key.to_owned(),
        state: Some(value.as_bytes().to_vec()),
    }
}

fn covered(offset: i64) -> Vec<InputOffset> {
    vec![InputOffset {
        topic: "orders.requested".into(),
        partition: 0,
        offset,
    }]
}

/// The registry, and an append at the next millisecond.
fn setup() -> (SchemaRegistry, impl FnMut(&mut Log, Record) -> i64) {
    let mut at = 0;
    let append = move |log: &mut Log, record: Record| {
        at += 1;
        log.append(Rc::new(record), at)
    };
    (SchemaRegistry::builtin().expect("schemas"), append)
}

fn restore_at(registry: &SchemaRegistry, log: &Log, marker: i64) -> Restored {
    let fresh = AnyProcessor::new(ProcessorKind::Router, MasterView::default().data);
    restore(registry, log, marker, fresh).expect("the log decodes")
}

#[test]
fn a_restore_writes_again_what_a_fenced_owner_left_on_top() {
    let (r, mut append) = setup();
    let mut log = Log::default();
    let a = append(&mut log, marker_record(&r, "a", 0).unwrap());
    append(
        &mut log,
        state_record(&r, &change("k1", "v1"), a, 0).unwrap().1,
    );
    let logged = vec![change("k2", "x")];
    let batch = batch_record(&r, 1, &writer("a", a), covered(5), logged, vec![], 0);
    append(&mut log, batch.unwrap());
    let b = append(&mut log, marker_record(&r, "b", 0).unwrap());
    // Owner `a`, fenced off by `b`, writes on.
    append(
        &mut log,
        state_record(&r, &change("k1", "late"), a, 0).unwrap().1,
    );
    for sequence in [2, 3] {
        let late = batch_record(&r, sequence, &writer("a", a), covered(9), vec![], vec![], 0);
        append(&mut log, late.unwrap());
    }
    append(
        &mut log,
        state_record(&r, &change("k2", "late"), a, 0).unwrap().1,
    );
    append(&mut log, lease_record(&r, &writer("a", a), 0).unwrap());
    let c = append(&mut log, marker_record(&r, "c", 0).unwrap());
    assert!(b < c);

    let restored = restore_at(&r, &log, c);
    assert_eq!(restored.fenced, 5);
    assert_eq!(
        restored.repair.state,
        vec![change("k1", "v1")],
        "k2 is the logged batch's: its resend writes it"
    );
    let repaired = repair(&r, &restored, 0, &writer("c", c), c, 0).unwrap();
    assert_eq!(
        repaired.checkpoint,
        Some(4),
        "above the fenced batches 2 and 3"
    );
    // What the rebuild writes: the logged batch's state records, then the repairs.
    append(
        &mut log,
        state_record(&r, &change("k2", "x"), c, 0).unwrap().1,
    );
    for record in repaired.records {
        append(&mut log, record);
    }
    // Everything cleaned: nothing the fenced owner wrote is left to count.
    log.compact(0, 1_000, 0);
    let d = append(&mut log, marker_record(&r, "d", 0).unwrap());
    let again = restore_at(&r, &log, d);
    let value = |key: &str| again.state.get(key).cloned().flatten();
    assert_eq!(value("k1"), Some(b"v1".to_vec()));
    assert_eq!(value("k2"), Some(b"x".to_vec()));
    let newest = again.logged.as_ref().map(|l| (l.sequence, l.logged_by));
    assert_eq!(newest, Some((4, c)), "the checkpoint");
    assert_eq!(again.covered.get("orders.requested"), Some(&5));
    assert_eq!((again.fenced, again.repair.state.len()), (0, 0));
    assert!(again.repair.batches.is_empty());
}

/// The fence of a fenced owner's late batch is the successor's marker before it, and
/// markers share one key: the cleaner removes it once a newer marker is old enough. The
/// checkpoint that supersedes the late batch follows that newer marker, so where the
/// cleaned part of the log ends between the two (a segment boundary, here the active
/// segment), the late batch is left with no fence before it. With the checkpoint at the
/// newest valid sequence + 1 the two tied, the first read won, and the restore took the
/// fenced owner's batch, its covered offsets and its outputs; the checkpoint's sequence is
/// now above every batch read, fenced ones too.
#[test]
fn a_fenced_batch_never_wins_once_its_fence_is_cleaned() {
    let (r, mut append) = setup();
    let mut log = Log::default();
    let z = append(&mut log, marker_record(&r, "z", 0).unwrap());
    let batch = batch_record(&r, 1, &writer("z", z), covered(10), vec![], vec![], 0);
    append(&mut log, batch.unwrap());
    append(&mut log, marker_record(&r, "s", 0).unwrap());
    let late = batch_record(&r, 2, &writer("z", z), covered(20), vec![], vec![], 0);
    append(&mut log, late.unwrap());
    let m = append(&mut log, marker_record(&r, "r", 0).unwrap());
    let restored = restore_at(&r, &log, m);
    let repaired = repair(&r, &restored, 0, &writer("r", m), m, 0).unwrap();
    assert_eq!(repaired.checkpoint, Some(3));
    for record in repaired.records {
        append(&mut log, record);
    }
    for _ in 0..3 {
        append(&mut log, lease_record(&r, &writer("r", m), 0).unwrap());
    }
    let active = log.len() - log.from(0).iter().position(|(o, _)| *o > m).unwrap();
    log.compact(active, 1_000, 0);
    let n = append(&mut log, marker_record(&r, "n", 0).unwrap());
    let again = restore_at(&r, &log, n);
    let newest = again.logged.as_ref().map(|l| (l.sequence, l.logged_by));
    assert_eq!(newest, Some((3, m)), "the checkpoint, not the fenced batch");
}
