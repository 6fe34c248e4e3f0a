//! `nslab plan --explain` tells the truth: the printed commands, run with real
//! `ip`, `nft` and `sysctl` in a test-made namespace, build the same lab as
//! `nslab up` does in another one.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// What matters of a namespace: links (name, kind, up, master), addresses, routes.
fn shape(ns: &str, only: Option<&BTreeSet<String>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let links = ip_json(Some(ns), "-d link show");
    let keep = |n: &str| only.is_none_or(|o| o.contains(n));
    let mut names = std::collections::BTreeMap::new();
    for l in links.as_array().unwrap() {
        names.insert(
            l["ifindex"].as_u64().unwrap(),
            l["ifname"].as_str().unwrap().to_string(),
        );
    }
    for l in links.as_array().unwrap() {
        let name = l["ifname"].as_str().unwrap();
        if !keep(name) {
            continue;
        }
        let up = l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
        let kind = l["linkinfo"]["info_kind"].as_str().unwrap_or("-");
        let master = l["master"].as_str().unwrap_or("-");
        out.insert(format!(
            "link {name} {kind} up={up} master={master} alias={}",
            l["ifalias"]
                .as_str()
                .unwrap_or("-")
                .split(':')
                .next()
                .unwrap_or("")
        ));
    }
    for a in ip_json(Some(ns), "addr show").as_array().unwrap() {
        let name = a["ifname"].as_str().unwrap();
        if !keep(name) {
            continue;
        }
        for i in a["addr_info"].as_array().unwrap() {
            out.insert(format!(
                "addr {name} {}/{}",
                i["local"].as_str().unwrap(),
                i["prefixlen"]
            ));
        }
    }
    for v in ["-4", "-6"] {
        for r in ip_json(Some(ns), &format!("{v} route show"))
            .as_array()
            .unwrap()
        {
            let dev = r["dev"].as_str().unwrap_or("-");
            if !keep(dev) {
                continue;
            }
            out.insert(format!(
                "route {} via {} dev {dev} proto {}",
                r["dst"].as_str().unwrap_or(""),
                r["gateway"].as_str().unwrap_or("-"),
                r["protocol"].as_str().unwrap_or("-")
            ));
        }
    }
    out
}

fn nat_rules(ns: &str, table: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&sh(&format!(
        "ip netns exec {ns} nft -j list table inet {table}"
    )))
    .unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.get("rule").map(|r| r["expr"].clone()))
        .collect()
}

#[test]
fn explained_commands_build_what_up_builds() {
    let pa = prefix("exa");
    let pb = prefix("exb");
    let t1 = TestNs::new(&format!("{pa}T"));
    let t2 = TestNs::new(&format!("{pb}T"));
    let lab_b = format!("{pb}objective3");
    let _g = LabGuard::new(&lab_b, Some(&t2.name));
    let file = example("objective3-nat.yaml");
    // Whatever happens, remove what the script made (its namespaces and hosts files).
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for n in ["black", "white", "green"] {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &format!("{}{n}", self.0)])
                    .output();
                let _ = std::fs::remove_dir_all(format!("/etc/netns/{}{n}", self.0));
            }
            // The hosts file and resolv.conf the explained commands wrote.
            for dir in ["hosts", "resolv"] {
                let _ = std::fs::remove_file(common::state(&format!("{dir}/{}objective3", self.0)));
            }
        }
    }
    let _c = Cleanup(pa.clone());

    let o = ok(nslab_in(
        Some(&t1.name),
        &["plan", s(&file), "--prefix", &pa, "--explain"],
    ));
    let script = stdout(&o);
    assert!(
        script.contains(&format!("ip netns add {pa}black")),
        "{script}"
    );
    sh(&format!(
        "nsenter --net=/run/netns/{} sh -e -c {}",
        t1.name,
        nslab::util::shell_quote(&script)
    ));
    ok(nslab_in(Some(&t2.name), &["up", s(&file), "--prefix", &pb]));

    for n in ["black", "white", "green"] {
        let a = shape(&format!("{pa}{n}"), None);
        let b = shape(&format!("{pb}{n}"), None);
        assert_eq!(a, b, "node {n}");
        assert!(
            a.iter()
                .any(|x| x.starts_with("route default via 192.168.0.1")),
            "{a:?}"
        );
    }
    let host_ifs: BTreeSet<String> = ["bri0", "bbrveth", "wbrveth", "gbrveth"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    let (ha, hb) = (
        shape(&t1.name, Some(&host_ifs)),
        shape(&t2.name, Some(&host_ifs)),
    );
    assert_eq!(ha, hb, "the hosts");
    assert!(
        ha.contains("link gbrveth veth up=true master=bri0 alias=nslab"),
        "{ha:?}"
    );
    assert_eq!(
        nat_rules(&t1.name, &format!("nslab-{pa}objective3")),
        nat_rules(&t2.name, &format!("nslab-{pb}objective3"))
    );
    assert_eq!(
        sh(&format!(
            "ip netns exec {} sysctl -n net.ipv4.ip_forward",
            t1.name
        ))
        .trim(),
        "1"
    );
    // The script-built lab works like the real one.
    assert!(pings(&format!("{pa}green"), "192.168.1.1"));
    // `nslab status FILE` of the script-made lab would see it too: same names.
    assert!(
        std::fs::read_to_string(format!("/etc/netns/{pa}green/hosts"))
            .unwrap()
            .contains("192.168.1.1\tblack")
    );
}
