//! Several batches with the sink at once, and reachability probes: the machine alone, events
//! in and actions out.

use serde_json::json;

use super::tests::{batch, machine, send, sent, seqs_of, start_read, waited};
use super::*;

/// Starts at 0 and brings `batches` batches of five records (0..5, 5..10, ...) to the sink;
/// the read of the next one is under way.
fn in_flight(m: &mut ExportMachine, batches: u64) {
    assert_eq!(m.start(0), vec![start_read(0)]);
    for k in 0..batches {
        let from = 5 * k;
        assert_eq!(
            m.handle(Event::BatchRead(batch(from..from + 5))),
            vec![Action::Acquire { bytes: 50 }]
        );
        assert_eq!(
            m.handle(Event::Acquired),
            vec![Action::Send { from }, start_read(from + 5)]
        );
    }
}

fn refused(from: u64) -> Event {
    Event::SendFailed {
        from,
        error: SinkError::Retryable {
            reason: "connection refused".into(),
            retry_after: None,
        },
    }
}

fn probed(reachable: bool, took_ms: u64) -> Event {
    Event::Probed {
        reachable,
        took: Duration::from_millis(took_ms),
    }
}

fn probe_after(ms: u64) -> Action {
    Action::Probe {
        after: Duration::from_millis(ms),
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

#[test]
fn up_to_max_in_flight_batches_go_at_once_and_the_next_waits_read() {
    let mut m = machine(json!({"max_in_flight_batches": 3}));
    in_flight(&mut m, 3);
    assert_eq!(
        m.handle(Event::BatchRead(batch(15..20))),
        vec![],
        "the window is full: the batch read ahead waits, nothing more is read"
    );
    assert_eq!(
        m.handle(sent(0)),
        vec![Action::Commit(5), Action::Acquire { bytes: 50 }]
    );
    assert_eq!(m.handle(Event::Committed), vec![]);
    assert_eq!(
        m.handle(Event::Acquired),
        vec![Action::Send { from: 15 }, start_read(20)]
    );
}

#[test]
fn a_window_of_one_sends_each_batch_after_the_last_was_confirmed() {
    let mut m = machine(json!({"max_in_flight_batches": 1}));
    in_flight(&mut m, 1);
    assert_eq!(m.handle(Event::BatchRead(batch(5..10))), vec![]);
    assert_eq!(
        m.handle(sent(0)),
        vec![Action::Commit(5), Action::Acquire { bytes: 50 }]
    );
}

#[test]
fn confirmations_in_any_order_move_the_checkpoint_only_over_a_contiguous_prefix() {
    for order in permutations(4) {
        let mut m = machine(json!({"max_in_flight_batches": 4}));
        in_flight(&mut m, 4);
        let mut confirmed = [false; 4];
        let mut stored = 0;
        for &k in &order {
            confirmed[k] = true;
            let prefix = 5 * confirmed.iter().take_while(|c| **c).count() as u64;
            let actions = m.handle(sent(5 * k as u64));
            if prefix > stored {
                assert_eq!(actions.first(), Some(&Action::Commit(prefix)), "{order:?}");
                m.handle(Event::Committed);
                stored = prefix;
            } else {
                assert!(
                    !actions.iter().any(|a| matches!(a, Action::Commit(_))),
                    "{order:?}: a commit past an open batch: {actions:?}"
                );
            }
            assert_eq!(m.status().checkpoint, stored, "{order:?}");
        }
        assert_eq!(stored, 20);
        assert_eq!(m.status().batches_sent, 4);
    }
}

#[test]
fn a_failure_in_the_middle_of_the_window_holds_the_checkpoint_until_it_is_confirmed() {
    let mut m = machine(json!({"max_in_flight_batches": 3}));
    in_flight(&mut m, 3);
    waited(m.handle(refused(5)));
    assert_eq!(m.status().state, ExportState::Retrying);
    assert_eq!(m.handle(sent(10)), vec![]);
    assert_eq!(m.handle(sent(0)), vec![Action::Commit(5)], "not past 5");
    m.handle(Event::Committed);
    assert_eq!(
        m.handle(Event::BatchRead(batch(15..20))),
        vec![],
        "nothing new goes while the sink refuses"
    );
    assert_eq!(m.handle(Event::Waited), vec![Action::Send { from: 5 }]);
    assert_eq!(seqs_of(&m, 5), vec![5, 6, 7, 8, 9], "the same batch again");
    assert_eq!(
        m.handle(sent(5)),
        vec![Action::Commit(15), Action::Acquire { bytes: 50 }]
    );
    m.handle(Event::Committed);
    let s = m.status();
    assert_eq!((s.state, s.checkpoint), (ExportState::Running, 15));
    assert_eq!((s.batches_sent, s.records_sent, s.retries), (3, 15, 1));
}

#[test]
fn a_sink_that_refuses_everything_gets_one_request_per_backoff_step_then_the_rest() {
    let mut m = machine(json!({"max_in_flight_batches": 3}));
    in_flight(&mut m, 3);
    let first = waited(m.handle(refused(0)));
    assert_eq!(
        m.handle(refused(10)),
        vec![],
        "one wait for the whole window"
    );
    assert_eq!(m.handle(refused(5)), vec![]);
    assert_eq!(m.status().retries, 3);
    assert_eq!(m.handle(Event::Waited), vec![Action::Send { from: 0 }]);
    let second = waited(m.handle(refused(0)));
    assert!(
        first <= BACKOFF_MIN && second >= BACKOFF_MIN,
        "{first:?} then {second:?}"
    );
    assert_eq!(m.handle(Event::Waited), vec![Action::Send { from: 0 }]);
    assert_eq!(
        m.handle(sent(0)),
        vec![
            Action::Send { from: 5 },
            Action::Send { from: 10 },
            Action::Commit(5)
        ],
        "the others go again together, in order"
    );
    m.handle(Event::Committed);
    assert_eq!(m.status().state, ExportState::Running);
    assert_eq!(m.handle(sent(10)), vec![]);
    assert_eq!(m.handle(sent(5)), vec![Action::Commit(15)]);
}

#[test]
fn under_skip_a_batch_refused_for_good_in_the_middle_is_passed_once_those_before_are_confirmed() {
    let mut m = machine(json!({"max_in_flight_batches": 3, "on_permanent_error": "skip"}));
    in_flight(&mut m, 3);
    let refused_for_good = Event::SendFailed {
        from: 5,
        error: SinkError::Permanent {
            reason: "400".into(),
        },
    };
    assert_eq!(m.handle(refused_for_good), vec![]);
    assert_eq!(m.handle(sent(0)), vec![Action::Commit(10)]);
    let s = m.status();
    assert_eq!((s.records_skipped, s.records_sent), (5, 5));
}

#[test]
fn under_pause_a_batch_refused_for_good_pauses_with_the_checkpoint_before_open_batches() {
    let mut m = machine(json!({"max_in_flight_batches": 3}));
    in_flight(&mut m, 3);
    assert_eq!(m.handle(sent(0)), vec![Action::Commit(5)]);
    m.handle(Event::Committed);
    let refused_for_good = Event::SendFailed {
        from: 10,
        error: SinkError::Permanent {
            reason: "400".into(),
        },
    };
    assert_eq!(m.handle(refused_for_good), vec![Action::Pause]);
    assert_eq!(m.handle(sent(5)), vec![], "nothing more once paused");
    let s = m.status();
    assert_eq!((s.state, s.checkpoint), (ExportState::Paused, 5));
}

#[test]
fn shutdown_with_batches_in_flight_keeps_the_checkpoint_before_them() {
    let mut m = machine(json!({"max_in_flight_batches": 3}));
    in_flight(&mut m, 3);
    assert_eq!(m.handle(sent(5)), vec![]);
    m.stop(None);
    assert_eq!(
        m.handle(sent(0)),
        vec![],
        "answers after the stop change nothing"
    );
    let s = m.status();
    assert_eq!((s.state, s.checkpoint), (ExportState::Stopped, 0));
}

#[test]
fn records_removed_by_retention_behind_open_batches_are_passed_once_those_are_confirmed() {
    let mut m = machine(json!({"max_in_flight_batches": 3}));
    in_flight(&mut m, 2);
    let trimmed = Event::ReadFailed(Error::SequenceTrimmed {
        name: "s".into(),
        requested: 10,
        oldest: 30,
    });
    assert_eq!(m.handle(trimmed), vec![start_read(30)]);
    assert_eq!(m.status().records_dropped_by_retention, 20);
    assert_eq!(m.handle(sent(5)), vec![]);
    assert_eq!(m.handle(sent(0)), vec![Action::Commit(30)]);
}

#[test]
fn an_unreachable_sink_is_probed_every_second_and_its_return_ends_the_wait_at_once() {
    let mut m = machine(json!({}));
    send(&mut m, 0..3);
    waited(m.handle(refused(0)));
    assert_eq!(m.handle(probed(false, 300)), vec![probe_after(700)]);
    assert_eq!(m.handle(probed(false, 1000)), vec![probe_after(0)]);
    assert_eq!(
        m.handle(probed(true, 2)),
        vec![Action::Send { from: 0 }],
        "back: no waiting for the rest of the backoff"
    );
    assert_eq!(m.status().state, ExportState::Retrying);
    assert_eq!(m.handle(Event::Waited), vec![], "the cut wait is stale");
    assert_eq!(m.handle(probed(false, 1)), vec![], "so is any probe");
    assert_eq!(m.handle(sent(0))[0], Action::Commit(3));
    assert_eq!(m.status().state, ExportState::Running);
}

#[test]
fn a_sink_reachable_right_after_it_failed_is_left_to_its_backoff() {
    let mut m = machine(json!({}));
    send(&mut m, 0..3);
    waited(m.handle(refused(0)));
    assert_eq!(
        m.handle(probed(true, 1)),
        vec![],
        "a 503 is not a lost link"
    );
    assert_eq!(m.handle(probed(true, 1)), vec![]);
    assert_eq!(m.handle(Event::Waited), vec![Action::Send { from: 0 }]);
}

#[test]
fn a_sink_back_but_still_refusing_falls_back_to_its_backoff() {
    let mut m = machine(json!({}));
    send(&mut m, 0..3);
    waited(m.handle(refused(0)));
    m.handle(probed(false, 5));
    assert_eq!(m.handle(probed(true, 5)), vec![Action::Send { from: 0 }]);
    let d = waited(m.handle(refused(0)));
    assert!(d >= BACKOFF_MIN, "the backoff went on growing: {d:?}");
    assert_eq!(m.handle(probed(true, 5)), vec![], "reachable, yet refusing");
    assert_eq!(m.handle(Event::Waited), vec![Action::Send { from: 0 }]);
}
