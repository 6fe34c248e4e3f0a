//! Issue 17 (privileges): every command that needs privileges checks them first,
//! exits 2 (exec: 125, its own errors) naming the capability, and changes nothing.

mod common;
use common::*;

#[test]
fn every_command_without_privileges_names_the_capability_and_changes_nothing() {
    let (p, lab, _g) = up_example("priv", "objective1-veth.yaml");
    let file = example("objective1-veth.yaml");
    let f = s(&file);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["up", f, "--sandbox", "--prefix", &p],
            2,
            "CAP_NET_ADMIN",
        ),
        (vec!["down", "--lab", &lab], 2, "CAP_NET_ADMIN"),
        (vec!["down", "--all", "--prefix", &p], 2, "CAP_NET_ADMIN"),
        (vec!["clean", "--prefix", &p], 2, "CAP_SYS_ADMIN"),
        (vec!["status", "--lab", &lab], 2, "CAP_SYS_ADMIN"),
        (
            vec!["plan", f, "--sandbox", "--prefix", &p],
            2,
            "CAP_SYS_ADMIN",
        ),
        (
            vec!["ping", "--lab", &lab, "red", "green"],
            2,
            "CAP_NET_RAW",
        ),
        (vec!["check", "--lab", &lab], 2, "CAP_NET_RAW"),
        (
            vec!["capture", "--lab", &lab, "red", "-c", "1"],
            2,
            "CAP_NET_RAW",
        ),
        (
            vec!["serve", "--lab", &lab, "red", "--detach"],
            2,
            "CAP_SYS_ADMIN",
        ),
        (
            vec!["exec", "--lab", &lab, "red", "--", "true"],
            125,
            "CAP_SYS_ADMIN",
        ),
    ];
    for (args, code, cap) in cases {
        let o = as_nobody(&args);
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {msg}");
        assert!(msg.contains(cap), "{args:?} names {cap}: {msg}");
        assert!(
            !msg.contains("missing") && !msg.contains("os error"),
            "{args:?}: no raw error and no false report: {msg}"
        );
    }
    // Nothing changed: the lab is whole and still answers.
    ok(nslab(&["status", "--lab", &lab]));
    assert!(pings(&format!("{p}red"), "192.168.1.2"));
    // Commands that need nothing work as nobody.
    let o = as_nobody(&["graph", f]);
    assert!(o.status.success(), "{}", text(&o));
}
