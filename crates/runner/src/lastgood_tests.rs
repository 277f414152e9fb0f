#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use egress_model::{DecodeOptions, Outcome, decode_file};

use super::*;

fn se(name: &str, host: &str) -> Resource {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: ns\nspec:\n  hosts:\n  - {host}\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: DNS\n"
    );
    let opts = DecodeOptions::default();
    match decode_file("t.yaml", &yaml, &opts).into_iter().next() {
        Some(Outcome::Valid(d)) => d.resource,
        other => panic!("{other:?}"),
    }
}

fn id(name: &str) -> ObjectId {
    ObjectId::new("ServiceEntry", Some("ns"), name)
}

fn good(name: &str, host: &str) -> (ObjectId, Option<String>, Read) {
    (id(name), None, Read::Good(se(name, host)))
}

fn bad(name: &str) -> (ObjectId, Option<String>, Read) {
    (
        id(name),
        None,
        Read::Bad(vec![format!("{name}.json: truncated")]),
    )
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

#[test]
fn a_bad_object_keeps_its_last_good_version_and_others_apply() {
    let mut lg = LastGood::new();
    let m = lg.merge([good("a", "a.com"), good("b", "b.com")], &none());
    assert!(m.changed);
    assert_eq!(m.resources.len(), 2);
    assert!(m.problems.is_empty());

    // a turns bad, b is deleted: b goes, a's last good stays.
    let m = lg.merge([bad("a")], &none());
    assert!(m.changed);
    assert_eq!(m.resources, vec![se("a", "a.com")]);
    assert_eq!(m.problems.len(), 1);
    assert_eq!(m.problems[0].held, Held::LastGood);
    assert_eq!(m.problems[0].id, id("a"));
    let lines = m.lines();
    assert_eq!(
        lines,
        vec!["ServiceEntry ns/a (last good version kept): a.json: truncated"]
    );
    assert_eq!(
        m.counts().into_iter().collect::<Vec<_>>(),
        vec![(("ServiceEntry".to_owned(), Held::LastGood), 1)]
    );

    // Still bad, nothing else moved: no change.
    let m = lg.merge([bad("a")], &none());
    assert!(!m.changed);

    // Repaired with new content: applied, no problem left.
    let m = lg.merge([good("a", "a2.com")], &none());
    assert!(m.changed);
    assert_eq!(m.resources, vec![se("a", "a2.com")]);
    assert!(m.problems.is_empty());
}

#[test]
fn a_bad_object_that_never_was_good_stays_absent() {
    let mut lg = LastGood::new();
    let m = lg.merge([bad("new"), good("b", "b.com")], &none());
    assert_eq!(m.resources, vec![se("b", "b.com")]);
    assert_eq!(m.problems[0].held, Held::Refused);
    assert!(m.lines()[0].contains("not applied"), "{:?}", m.lines());
}

#[test]
fn a_deleted_bad_object_is_gone() {
    let mut lg = LastGood::new();
    lg.merge([good("a", "a.com")], &none());
    lg.merge([bad("a")], &none());
    let m = lg.merge([], &none());
    assert!(m.changed);
    assert!(m.resources.is_empty());
    assert!(m.problems.is_empty());
}

#[test]
fn objects_of_an_unreadable_file_keep_their_last_good_version() {
    let mut lg = LastGood::new();
    let f = |n: &str, h: &str, file: &str| (id(n), Some(file.to_owned()), Read::Good(se(n, h)));
    lg.merge(
        [f("a", "a.com", "x.yaml"), f("b", "b.com", "y.yaml")],
        &none(),
    );
    let lost: BTreeSet<String> = ["x.yaml".to_owned()].into();
    let m = lg.merge([f("b", "b2.com", "y.yaml")], &lost);
    assert_eq!(m.resources, vec![se("a", "a.com"), se("b", "b2.com")]);
    assert_eq!(m.problems.len(), 1);
    assert_eq!(m.problems[0].held, Held::LastGood);
    assert!(m.problems[0].problems[0].contains("x.yaml"));
    // The file is readable again and no longer holds a: a is deleted.
    let m = lg.merge([f("b", "b2.com", "y.yaml")], &none());
    assert_eq!(m.resources, vec![se("b", "b2.com")]);
}

#[test]
fn a_good_read_wins_over_a_bad_one_for_the_same_id() {
    let mut lg = LastGood::new();
    let m = lg.merge([bad("a"), good("a", "a.com")], &none());
    assert_eq!(m.resources, vec![se("a", "a.com")]);
    assert!(m.problems.is_empty());
}

/// A file damaged by hand while the journal still holds the object as committed: that version
/// is in effect (held as last good) even when this record never saw it good, and it wins over
/// an older version the record did see (it is what was last declared).
#[test]
fn a_damaged_object_stays_at_its_committed_version() {
    let damaged = |host: &str| {
        (
            id("a"),
            None,
            Read::Damaged {
                problems: vec!["a.json:8: EOF while parsing".to_owned()],
                committed: se("a", host),
            },
        )
    };
    let mut fresh = LastGood::new();
    let m = fresh.merge([damaged("committed.example.com")], &none());
    assert_eq!(m.resources, vec![se("a", "committed.example.com")]);
    assert_eq!(m.problems.len(), 1);
    assert_eq!(m.problems[0].held, Held::LastGood);
    assert_eq!(m.problems[0].problems, ["a.json:8: EOF while parsing"]);

    let mut seen_older = LastGood::new();
    seen_older.merge([good("a", "older.example.com")], &none());
    let m = seen_older.merge([damaged("committed.example.com")], &none());
    assert_eq!(m.resources, vec![se("a", "committed.example.com")]);
    assert!(m.changed);
    // Without the journal's version, the record's own last good one stays.
    let m = seen_older.merge([bad("a")], &none());
    assert_eq!(m.resources, vec![se("a", "committed.example.com")]);
    assert_eq!(m.problems[0].held, Held::LastGood);
}
