//! Root integration tests of `kernel::nft`, each in network namespaces of its own.
//!
//! Most tests run their body on a fresh thread that calls unshare(CLONE_NEWNET): the
//! namespace lives only as long as that thread and vanishes with it, pass or fail, and
//! `nft` commands spawned from the thread inherit it (checked in `in_new_netns`). The
//! traffic test needs three namespaces wired with veths; each is held by an open fd
//! (`TestNetns`) and reached as /proc/PID/fd/N with `nsenter` and `ip link set ...
//! netns`, so nothing is created under /run/netns and drop frees them. Nothing here
//! touches the host's own namespace, ruleset or network; traffic uses documentation
//! prefixes only, between namespaces made here.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

use ipnet::{IpNet, Ipv4Net};
use nslab::kernel::nft::{
    BaseChainInfo, Family, Hook, Masquerade, NftError, NftSocket, OutMatch, TableInfo,
};
use nslab::plan::nft_text::{explain_delete_table, explain_nat_table};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Harness

fn netns_link() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .expect("read own netns")
        .to_string_lossy()
        .into_owned()
}

/// Run `f` on a new thread inside a new, anonymous network namespace.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::spawn(move || {
        let host = netns_link();
        // SAFETY: unshare affects only this thread, which exits after `f`.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        let mine = netns_link();
        assert_ne!(host, mine, "still in the host's network namespace");
        // Children spawned from this thread must run in it too.
        let child = run("readlink", &["/proc/self/ns/net"]);
        assert_eq!(child.trim(), mine, "child process in another namespace");
        f()
    });
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn run_status(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(program: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = run_status(program, args);
    assert!(ok, "{program} {args:?} failed: {stderr}");
    stdout
}

fn sh(cmd: &str) {
    let (ok, _, stderr) = run_status("sh", &["-c", cmd]);
    assert!(ok, "`{cmd}` failed: {stderr}");
}

/// `nft -j list ruleset` of the current thread's namespace, without metainfo.
fn ruleset_json() -> Vec<Value> {
    let out = run("nft", &["-j", "list", "ruleset"]);
    let v: Value = serde_json::from_str(&out).expect("nft -j output is JSON");
    v["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter(|o| o.get("metainfo").is_none())
        .cloned()
        .collect()
}

fn objects<'a>(ruleset: &'a [Value], kind: &str, table: &str) -> Vec<&'a Value> {
    ruleset
        .iter()
        .filter_map(|o| o.get(kind))
        .filter(|o| o["table"] == table || (kind == "table" && o["name"] == table))
        .collect()
}

/// The rules' expressions of `table inet NAME`, in order.
fn rule_exprs(ruleset: &[Value], table: &str) -> Vec<Value> {
    objects(ruleset, "rule", table)
        .into_iter()
        .map(|r| r["expr"].clone())
        .collect()
}

fn masq(source: &str, out: OutMatch) -> Masquerade {
    Masquerade {
        source: source.parse::<IpNet>().expect("prefix"),
        out,
    }
}

fn tutorial_rules() -> Vec<Masquerade> {
    vec![masq("192.168.0.0/16", OutMatch::NotOut("bri0".into()))]
}

fn sock() -> NftSocket {
    NftSocket::new().expect("open NETLINK_NETFILTER socket")
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn create_read_replace_delete() {
    in_new_netns(|| {
        let mut s = sock();
        let (name, mark) = ("nslab-t1", "nslab:owner=t1");
        let rules = vec![
            masq("192.168.0.0/16", OutMatch::NotOut("bri0".into())),
            masq("10.1.2.0/23", OutMatch::Out("eth0".into())),
            masq("0.0.0.0/0", OutMatch::Any),
        ];
        assert_eq!(s.read_nat_rules(name).expect("read"), None);
        s.create_nat_table(name, mark, &rules).expect("create");

        // What nft sees.
        let text = run("nft", &["list", "table", "inet", name]);
        assert!(text.contains(&format!("comment \"{mark}\"")), "{text}");
        assert!(
            text.contains("type nat hook postrouting priority srcnat; policy accept;"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr 192.168.0.0/16 oifname != \"bri0\" masquerade"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr 10.1.2.0/23 oifname \"eth0\" masquerade"),
            "{text}"
        );
        let rs = ruleset_json();
        let chains = objects(&rs, "chain", name);
        assert_eq!(chains.len(), 1);
        let c = chains[0];
        assert_eq!(
            (
                &c["family"],
                &c["name"],
                &c["type"],
                &c["hook"],
                &c["prio"],
                &c["policy"]
            ),
            (
                &Value::from("inet"),
                &Value::from("postrouting"),
                &Value::from("nat"),
                &Value::from("postrouting"),
                &Value::from(100),
                &Value::from("accept")
            )
        );
        let exprs = rule_exprs(&rs, name);
        assert_eq!(exprs.len(), 3);
        assert_eq!(
            exprs[0],
            serde_json::json!([
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                           "right": {"prefix": {"addr": "192.168.0.0", "len": 16}}}},
                {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "bri0"}},
                {"masquerade": null}
            ])
        );
        assert_eq!(
            exprs[2],
            serde_json::json!([
                {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}},
                {"masquerade": null}
            ])
        );

        // What we read back.
        let read = s.read_nat_rules(name).expect("read").expect("table exists");
        assert_eq!(read.comment.as_deref(), Some(mark));
        assert!(read.chain_ok);
        assert_eq!(read.masquerades, rules);
        assert_eq!(read.unknown_rules, 0);
        assert!(read.matches(mark, &rules));
        assert!(!read.matches(mark, &rules[..1]));
        assert!(!read.matches("nslab:owner=other", &rules));
        let tables = s.list_tables().expect("list tables");
        assert_eq!(
            tables,
            vec![TableInfo {
                family: Family::Inet,
                name: name.into(),
                comment: Some(mark.into())
            }]
        );

        // A second create fails with EEXIST and changes nothing; the socket stays usable.
        let before = ruleset_json();
        let err = s
            .create_nat_table(name, mark, &tutorial_rules())
            .unwrap_err();
        assert!(matches!(err, NftError::Exists { .. }), "{err}");
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert_eq!(
            ruleset_json(),
            before,
            "a failed create changed the ruleset"
        );
        assert_eq!(s.list_tables().expect("list").len(), 1);

        // Replace: one table, new rules only, no duplicates.
        let new_rules = vec![masq("198.51.100.0/24", OutMatch::NotOut("br-lan0".into()))];
        s.replace_nat_table(name, mark, &new_rules)
            .expect("replace");
        let read = s.read_nat_rules(name).expect("read").expect("exists");
        assert!(read.matches(mark, &new_rules), "{read:?}");
        let rs = ruleset_json();
        assert_eq!(objects(&rs, "table", name).len(), 1);
        assert_eq!(objects(&rs, "chain", name).len(), 1);
        assert_eq!(rule_exprs(&rs, name).len(), 1);
        // Replacing with the same rules again is fine too (idempotent).
        s.replace_nat_table(name, mark, &new_rules)
            .expect("replace again");
        assert_eq!(rule_exprs(&ruleset_json(), name).len(), 1);

        // Delete: not with another mark; then yes; then it is gone.
        let err = s
            .delete_table_if_marked(name, "nslab:owner=other")
            .unwrap_err();
        assert!(matches!(err, NftError::Foreign { .. }), "{err}");
        assert_eq!(objects(&ruleset_json(), "table", name).len(), 1);
        assert!(s.delete_table_if_marked(name, mark).expect("delete"));
        assert!(!s.delete_table_if_marked(name, mark).expect("delete again"));
        assert_eq!(run("nft", &["list", "tables"]).trim(), "");
        assert_eq!(s.read_nat_rules(name).expect("read"), None);

        // Replace of an absent table creates it.
        s.replace_nat_table(name, mark, &new_rules)
            .expect("replace absent");
        assert!(
            s.read_nat_rules(name)
                .expect("read")
                .expect("exists")
                .matches(mark, &new_rules)
        );
        assert!(s.delete_table_if_marked(name, mark).expect("delete"));
    });
}

#[test]
fn foreign_tables_are_never_touched() {
    in_new_netns(|| {
        let mut s = sock();
        let mark = "nslab:owner=t2";
        sh("nft add table inet nslab-f1");
        sh(
            "nft add chain inet nslab-f1 postrouting '{ type nat hook postrouting priority srcnat; }'",
        );
        sh("nft add rule inet nslab-f1 postrouting meta nfproto ipv4 masquerade");
        sh("nft add table inet nslab-f2 '{ comment \"someone-else\"; }'");
        // Same name as ours but another family: not our table either way.
        sh("nft add table ip6 nslab-f3 '{ comment \"nslab:owner=t2\"; }'");
        let before = ruleset_json();

        for (name, found) in [("nslab-f1", None), ("nslab-f2", Some("someone-else"))] {
            let err = s.delete_table_if_marked(name, mark).unwrap_err();
            match &err {
                NftError::Foreign { found: f, .. } => assert_eq!(f.as_deref(), found),
                other => panic!("expected Foreign, got {other}"),
            }
            let err = s
                .replace_nat_table(name, mark, &tutorial_rules())
                .unwrap_err();
            assert!(matches!(err, NftError::Foreign { .. }), "{err}");
            let err = s
                .create_nat_table(name, mark, &tutorial_rules())
                .unwrap_err();
            assert!(matches!(err, NftError::Exists { .. }), "{err}");
        }
        // ip6 nslab-f3 does not make `inet nslab-f3` exist.
        assert!(
            !s.delete_table_if_marked("nslab-f3", mark)
                .expect("absent in ip")
        );
        assert_eq!(ruleset_json(), before, "a foreign table was changed");

        let f1 = s.read_nat_rules("nslab-f1").expect("read").expect("exists");
        assert_eq!(f1.comment, None);
        // nft's chain has the same hook and priority, and its rule is a plain masquerade.
        assert_eq!(f1.masquerades, vec![masq("0.0.0.0/0", OutMatch::Any)]);
        assert!(!f1.matches(mark, &f1.masquerades));

        let tables = s.list_tables().expect("list");
        let mut got: Vec<(Family, String, Option<String>)> = tables
            .into_iter()
            .map(|t| (t.family, t.name, t.comment))
            .collect();
        got.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            got,
            vec![
                (Family::Inet, "nslab-f1".into(), None),
                (Family::Inet, "nslab-f2".into(), Some("someone-else".into())),
                (Family::Ip6, "nslab-f3".into(), Some(mark.into())),
            ]
        );
    });
}

#[test]
fn base_chains_show_a_forward_drop() {
    in_new_netns(|| {
        let mut s = sock();
        sh("nft add table inet fw");
        sh("nft add chain inet fw forward '{ type filter hook forward priority 0; policy drop; }'");
        sh("nft add chain inet fw helper");
        sh("nft add table ip6 raw6");
        sh("nft add chain ip6 raw6 pre '{ type filter hook prerouting priority -300; }'");
        sh("nft add table netdev nd");
        sh("nft add chain netdev nd ing '{ type filter hook ingress device lo priority -500; }'");
        sh("nft add table ip legacy");
        sh(
            "nft add chain ip legacy FORWARD '{ type filter hook forward priority filter; policy drop; }'",
        );
        s.create_nat_table("nslab-t3", "nslab:owner=t3", &tutorial_rules())
            .expect("create");

        let mut chains = s.list_base_chains().expect("list chains");
        chains.sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
        let chain =
            |family, table: &str, name: &str, hook, priority, policy_drop, t: &str| BaseChainInfo {
                family,
                table: table.into(),
                name: name.into(),
                hook,
                priority,
                policy_drop,
                chain_type: t.into(),
            };
        assert_eq!(
            chains,
            vec![
                chain(
                    Family::Inet,
                    "fw",
                    "forward",
                    Hook::Forward,
                    0,
                    true,
                    "filter"
                ),
                chain(
                    Family::Ip,
                    "legacy",
                    "FORWARD",
                    Hook::Forward,
                    0,
                    true,
                    "filter"
                ),
                chain(
                    Family::Netdev,
                    "nd",
                    "ing",
                    Hook::Ingress,
                    -500,
                    false,
                    "filter"
                ),
                chain(
                    Family::Inet,
                    "nslab-t3",
                    "postrouting",
                    Hook::Postrouting,
                    100,
                    false,
                    "nat"
                ),
                chain(
                    Family::Ip6,
                    "raw6",
                    "pre",
                    Hook::Prerouting,
                    -300,
                    false,
                    "filter"
                ),
            ]
        );
        let drops: Vec<String> = chains
            .iter()
            .filter(|c| c.policy_drop && c.hook == Hook::Forward)
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            drops,
            vec![
                "table inet fw chain forward { type filter hook forward priority 0; policy drop; }",
                "table ip legacy chain FORWARD { type filter hook forward priority 0; policy drop; }",
            ]
        );
    });
}

/// The explain output, run with the real nft, builds the same table as the module.
#[test]
fn explained_commands_build_the_same_table() {
    in_new_netns(|| {
        let mut s = sock();
        let mark = "nslab:owner=t4 lab";
        let rules = vec![
            masq("192.168.0.0/16", OutMatch::NotOut("bri0".into())),
            masq("0.0.0.0/0", OutMatch::Any),
            masq("10.1.2.3/32", OutMatch::Out("bridge".into())),
            masq("10.1.2.0/23", OutMatch::NotOut("1abc".into())),
            masq("172.16.0.0/12", OutMatch::Out("counter".into())),
            masq("198.51.100.0/24", OutMatch::Out("veth-a.1".into())),
            masq("203.0.113.128/25", OutMatch::NotOut("x@y$z".into())),
            masq("fd00::/8", OutMatch::NotOut("bri0".into())),
            masq("2001:db8:1::/48", OutMatch::Out("eth0".into())),
            masq("::/0", OutMatch::Any),
        ];
        for line in explain_nat_table("nslab-by-nft", mark, &rules) {
            sh(&line);
        }
        s.create_nat_table("nslab-by-us", mark, &rules)
            .expect("create");

        let rs = ruleset_json();
        assert_eq!(
            rule_exprs(&rs, "nslab-by-nft"),
            rule_exprs(&rs, "nslab-by-us")
        );
        assert_eq!(rule_exprs(&rs, "nslab-by-us").len(), rules.len());
        let strip = |t: &str| {
            run("nft", &["list", "table", "inet", t])
                .replace(t, "T")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(strip("nslab-by-nft"), strip("nslab-by-us"));
        for t in ["nslab-by-nft", "nslab-by-us"] {
            let read = s.read_nat_rules(t).expect("read").expect("exists");
            assert!(read.matches(mark, &rules), "{t}: {read:?}");
        }
        sh(&explain_delete_table("nslab-by-nft"));
        assert!(
            s.delete_table_if_marked("nslab-by-us", mark)
                .expect("delete")
        );
        assert_eq!(run("nft", &["list", "tables"]).trim(), "");
    });
}

/// Rules written by nft are decoded when they have our shape, counted otherwise.
#[test]
fn nft_written_rules_decode_or_count_as_unknown() {
    in_new_netns(|| {
        let mut s = sock();
        let t = "nslab-t5";
        sh(&format!("nft add table inet {t} '{{ comment \"m5\"; }}'"));
        sh(&format!(
            "nft add chain inet {t} postrouting '{{ type nat hook postrouting priority srcnat; policy accept; }}'"
        ));
        let ours = [
            (
                "ip saddr 10.0.0.0/8 oifname eth0 masquerade",
                masq("10.0.0.0/8", OutMatch::Out("eth0".into())),
            ),
            (
                "ip saddr 10.1.2.3 masquerade",
                masq("10.1.2.3/32", OutMatch::Any),
            ),
            (
                "ip saddr 0.0.0.0/0 masquerade",
                masq("0.0.0.0/0", OutMatch::Any),
            ),
            (
                "ip saddr 10.1.2.0/23 oifname != br0 masquerade",
                masq("10.1.2.0/23", OutMatch::NotOut("br0".into())),
            ),
            (
                "ip saddr 10.1.0.0/17 masquerade",
                masq("10.1.0.0/17", OutMatch::Any),
            ),
            (
                "ip6 saddr fd00:1::/32 oifname eth0 masquerade",
                masq("fd00:1::/32", OutMatch::Out("eth0".into())),
            ),
        ];
        let others = [
            "counter masquerade",
            "oifname \\\"br*\\\" masquerade",
            "ip daddr 10.0.0.0/8 masquerade",
            "masquerade random",
            "ip saddr 10.0.0.0/8 accept",
            "meta l4proto tcp masquerade to :1000-2000",
        ];
        for (text, _) in &ours[..2] {
            sh(&format!("nft add rule inet {t} postrouting {text}"));
        }
        for text in &others {
            sh(&format!("nft \"add rule inet {t} postrouting {text}\""));
        }
        for (text, _) in &ours[2..] {
            sh(&format!("nft add rule inet {t} postrouting {text}"));
        }
        sh(&format!("nft add chain inet {t} extra"));
        sh(&format!("nft add rule inet {t} extra masquerade"));

        let read = s.read_nat_rules(t).expect("read").expect("exists");
        assert_eq!(read.comment.as_deref(), Some("m5"));
        assert!(read.chain_ok);
        assert_eq!(read.other_chains, vec!["extra".to_string()]);
        let want: Vec<Masquerade> = ours.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(read.masquerades, want);
        assert_eq!(read.unknown_rules, others.len() + 1);
        assert!(!read.matches("m5", &want));
        // Ours to delete: the mark matches.
        assert!(s.delete_table_if_marked(t, "m5").expect("delete"));
    });
}

/// A change by someone else between our observation and our batch makes the batch
/// fail (ERESTART) and changes nothing.
#[test]
fn generation_id_refuses_stale_batches() {
    in_new_netns(|| {
        let mut s = sock();
        let (name, mark) = ("nslab-t6", "nslab:owner=t6");
        s.create_nat_table(name, mark, &tutorial_rules())
            .expect("create");
        let generation = s.generation().expect("generation");
        assert_eq!(
            s.generation().expect("generation"),
            generation,
            "stable when idle"
        );

        sh("nft add table ip someone-else");
        let before = ruleset_json();
        let new_rules = vec![masq("10.0.0.0/8", OutMatch::Any)];
        let err = s
            .replace_nat_table_at(generation, name, mark, &new_rules)
            .unwrap_err();
        assert!(matches!(err, NftError::GenerationChanged { .. }), "{err}");
        assert_eq!(err.errno(), Some(libc::ERESTART));
        let err = s
            .delete_table_if_marked_at(generation, name, mark)
            .unwrap_err();
        assert!(matches!(err, NftError::GenerationChanged { .. }), "{err}");
        assert_eq!(ruleset_json(), before, "a stale batch changed the ruleset");

        // With the current generation it goes through, and moves the generation on.
        let now = s.generation().expect("generation");
        assert_ne!(now, generation);
        s.replace_nat_table_at(now, name, mark, &new_rules)
            .expect("replace at now");
        assert!(
            s.read_nat_rules(name)
                .expect("read")
                .expect("exists")
                .matches(mark, &new_rules)
        );
        let later = s.generation().expect("generation");
        assert_ne!(later, now);
        assert!(
            s.delete_table_if_marked_at(later, name, mark)
                .expect("delete at later")
        );
        // The retrying variants re-check and succeed after an unrelated change.
        s.create_nat_table(name, mark, &tutorial_rules())
            .expect("create");
        sh("nft delete table ip someone-else");
        assert!(s.delete_table_if_marked(name, mark).expect("delete"));
    });
}

/// Many rules in one batch: every ACK is read (none lost to a full receive buffer).
#[test]
fn a_large_batch_is_read_whole() {
    in_new_netns(|| {
        let mut s = sock();
        let rules: Vec<Masquerade> = (0..1500u32)
            .map(|i| {
                let a = std::net::Ipv4Addr::from(0x0a00_0000 | (i << 8));
                Masquerade {
                    source: IpNet::V4(Ipv4Net::new(a, 24).expect("prefix")),
                    out: OutMatch::NotOut(format!("br{}", i % 7)),
                }
            })
            .collect();
        s.create_nat_table("nslab-big", "m", &rules)
            .expect("create big");
        let read = s
            .read_nat_rules("nslab-big")
            .expect("read")
            .expect("exists");
        assert!(read.matches("m", &rules));
        assert_eq!(rule_exprs(&ruleset_json(), "nslab-big").len(), rules.len());
        s.replace_nat_table("nslab-big", "m", &rules[..10])
            .expect("replace");
        assert!(s.delete_table_if_marked("nslab-big", "m").expect("delete"));
    });
}

/// A socket keeps working in the namespace it was created in, whichever thread (in
/// whichever namespace) uses it later.
#[test]
fn socket_stays_in_its_namespace() {
    in_new_netns(|| {
        let mut s = sock();
        let a = netns_link();
        let b = std::thread::spawn(move || {
            // SAFETY: affects only this thread.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            s.create_nat_table("nslab-t7", "m7", &tutorial_rules())
                .expect("create from another namespace");
            let b = netns_link();
            (run("nft", &["list", "tables"]), b)
        })
        .join()
        .expect("thread b");
        assert_ne!(b.1, a);
        assert_eq!(
            b.0.trim(),
            "",
            "table landed in the namespace of the using thread"
        );
        assert_eq!(
            run("nft", &["list", "tables"]).trim(),
            "table inet nslab-t7"
        );
    });
}

#[test]
fn invalid_input_changes_nothing() {
    in_new_netns(|| {
        let mut s = sock();
        for (name, mark, rules) in [
            ("", "m", tutorial_rules()),
            ("t", "", tutorial_rules()),
            ("t", "quo\"te", tutorial_rules()),
            ("t", "m", vec![masq("192.168.1.0/16", OutMatch::Any)]),
            (
                "t",
                "m",
                vec![masq("10.0.0.0/8", OutMatch::Out("a-very-long-name".into()))],
            ),
            (
                "t",
                "m",
                vec![masq("10.0.0.0/8", OutMatch::Out("br*".into()))],
            ),
        ] {
            let err = s.create_nat_table(name, mark, &rules).unwrap_err();
            assert!(matches!(err, NftError::Invalid { .. }), "{err}");
            let err = s.replace_nat_table(name, mark, &rules).unwrap_err();
            assert!(matches!(err, NftError::Invalid { .. }), "{err}");
        }
        assert_eq!(run("nft", &["list", "ruleset"]).trim(), "");
    });
}

// ---------------------------------------------------------------------------
// Traffic: lan -> router (masquerade) -> wan, all namespaces of this test

/// An anonymous network namespace, alive while this handle (an open fd on it) is:
/// nothing is created under /run/netns, and dropping it (pass or fail) frees the
/// namespace and the veth ends in it.
struct TestNetns {
    fd: File,
}

impl TestNetns {
    fn new() -> Self {
        let fd = std::thread::spawn(|| {
            // SAFETY: affects only this short-lived thread.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            File::open("/proc/thread-self/ns/net").expect("open own netns")
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
        TestNetns { fd }
    }

    /// A path other processes can open (`ip link set X netns PATH`, `nsenter --net=PATH`).
    fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    fn sh(&self, cmd: &str) {
        sh(&format!("nsenter --net={} {cmd}", self.path()));
    }

    fn pings(&self, dst: &str) -> bool {
        let net = format!("--net={}", self.path());
        run_status("nsenter", &[&net, "ping", "-n", "-c", "1", "-W", "1", dst]).0
    }

    /// Run `f` on a thread that entered this namespace.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let fd = self.fd.try_clone().expect("dup netns fd");
        std::thread::spawn(move || {
            let host = netns_link();
            // SAFETY: setns on this short-lived thread only.
            assert_eq!(
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            assert_ne!(netns_link(), host);
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

#[test]
fn masquerade_carries_traffic_between_test_namespaces() {
    let (lan, router, wan) = (TestNetns::new(), TestNetns::new(), TestNetns::new());
    // lan 198.51.100.2/24 -- 198.51.100.1 [router] 203.0.113.1 -- 203.0.113.2 wan.
    // wan has no route back to 198.51.100.0/24: replies arrive only if masqueraded.
    router.sh("ip link add rlan type veth peer name llan");
    router.sh("ip link add rwan type veth peer name wwan");
    router.sh(&format!("ip link set llan netns {}", lan.path()));
    router.sh(&format!("ip link set wwan netns {}", wan.path()));
    router.sh("ip addr add 198.51.100.1/24 dev rlan");
    router.sh("ip addr add 203.0.113.1/24 dev rwan");
    router.sh("ip link set rlan up");
    router.sh("ip link set rwan up");
    router.sh("sysctl -q -w net.ipv4.ip_forward=1");
    lan.sh("ip addr add 198.51.100.2/24 dev llan");
    lan.sh("ip link set llan up");
    lan.sh("ip route add default via 198.51.100.1");
    wan.sh("ip addr add 203.0.113.2/24 dev wwan");
    wan.sh("ip link set wwan up");

    assert!(lan.pings("198.51.100.1"), "lan reaches the router");
    assert!(!lan.pings("203.0.113.2"), "no NAT yet, yet wan answered");

    let (mark, name) = ("nslab:owner=traffic", "nslab-traffic");
    let r = vec![masq("198.51.100.0/24", OutMatch::NotOut("rlan".into()))];
    router
        .enter(move || sock().create_nat_table(name, mark, &r))
        .expect("create in router");
    assert!(
        lan.pings("203.0.113.2"),
        "masquerade did not carry the ping"
    );

    // A rule that excludes the wan side stops it again (a new ping is a new flow).
    let r = vec![masq("198.51.100.0/24", OutMatch::NotOut("rwan".into()))];
    router
        .enter(move || sock().replace_nat_table(name, mark, &r))
        .expect("replace in router");
    assert!(
        !lan.pings("203.0.113.2"),
        "excluded interface still masqueraded"
    );

    let deleted = router
        .enter(move || sock().delete_table_if_marked(name, mark))
        .expect("delete in router");
    assert!(deleted);
    assert!(!lan.pings("203.0.113.2"), "still masqueraded after delete");
}

/// A NAT table as versions before the inet table wrote it (`table ip`, marked):
/// read as legacy, and replaced by the inet table, after which only that remains.
/// One with another mark is left alone.
#[test]
fn the_old_ip_table_is_replaced_by_the_inet_table() {
    in_new_netns(|| {
        let mut s = sock();
        let mark = "nslab:owner=t9";
        sh("nft add table ip nslab-old '{ comment \"nslab:owner=t9\"; }'");
        sh(
            "nft add chain ip nslab-old postrouting '{ type nat hook postrouting priority srcnat; policy accept; }'",
        );
        sh(
            "nft add rule ip nslab-old postrouting ip saddr 192.168.0.0/16 oifname != bri0 masquerade",
        );
        sh("nft add table ip nslab-theirs '{ comment \"someone-else\"; }'");
        let read = s.read_nat_rules("nslab-old").expect("read").expect("seen");
        assert!(read.legacy, "{read:?}");
        assert!(!read.matches(mark, &tutorial_rules()));
        s.replace_nat_table("nslab-old", mark, &tutorial_rules())
            .expect("replace");
        let read = s
            .read_nat_rules("nslab-old")
            .expect("read")
            .expect("exists");
        assert!(read.matches(mark, &tutorial_rules()), "{read:?}");
        let tables: Vec<(Family, String)> = s
            .list_tables()
            .expect("list")
            .into_iter()
            .map(|t| (t.family, t.name))
            .collect();
        assert!(
            tables.contains(&(Family::Inet, "nslab-old".into())),
            "{tables:?}"
        );
        assert!(
            !tables.contains(&(Family::Ip, "nslab-old".into())),
            "{tables:?}"
        );
        // Not ours: neither replaced nor deleted.
        s.replace_nat_table("nslab-theirs", mark, &tutorial_rules())
            .expect("the inet table is ours to make");
        assert!(
            s.delete_table_if_marked("nslab-theirs", mark)
                .expect("delete")
        );
        assert!(run("nft", &["list", "tables"]).contains("table ip nslab-theirs"));
    });
}
