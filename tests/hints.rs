//! Messages that point the user at what they meant.

mod common;
use common::*;

#[test]
fn ping_with_namespace_names_says_which_nodes_they_are() {
    let p = prefix("hnt");
    let lab = format!("{p}objective1");
    let _g = LabGuard::new(&lab, None);
    ok(nslab(&[
        "up",
        s(&example("objective1-veth.yaml")),
        "--sandbox",
        "--prefix",
        &p,
    ]));
    let o = nslab(&[
        "ping",
        "--lab",
        &lab,
        &format!("{p}red"),
        &format!("{p}green"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!("{p}red is the namespace of node red of lab {lab}")),
        "{t}"
    );
    // The hint's own advice works.
    ok(nslab(&["ping", "--lab", &lab, "red", "green", "-c", "1"]));
    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
}
