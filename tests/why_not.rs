//! Issue 15: the catalogue of broken labs. Each test brings up a small sandboxed
//! lab, checks with the system's `ping` that it works with only a CONTROL present
//! (the same feature off the probe's path), injects one fault, checks with `ping`
//! that the fault breaks the probe, then asks `nslab check` (or `nslab ping`) why
//! not: the reason class (the JSON `reason`), the place (`at`) and the fields the
//! contract names (src/probe/why.rs `Reason`), and that neither the JSON nor the
//! text names the control.
//!
//! Node names are words that do not occur in the explanations' English (`ann`,
//! `bob`, `cy`, `r1`, `r2`), so "the detail names the place" is a real check.

mod common;
use common::*;
use nslab::probe::why::Reason;
use serde_json::Value;

/// Replace the `expect` section of a file by one expectation (YAML lines after
/// `- `, e.g. "reach: ann -> bob\n    size: 1400").
fn with_expect(text: &str, expect: &str) -> String {
    let base = text.find("expect:").map(|i| &text[..i]).unwrap_or(text);
    format!("{base}expect:\n  - {expect}\n")
}

fn example_text(name: &str) -> String {
    std::fs::read_to_string(example(name)).unwrap()
}

/// A sandboxed lab of one test; taken down when dropped (also on panic).
struct Lab {
    p: String,
    lab: String,
    base: String,
    _g: LabGuard,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// `up FILE --sandbox --prefix P` with `text` as the file (its `expect`
    /// section replaced by `expect`).
    fn up(tag: &str, base: &str, text: &str, expect: &str) -> Lab {
        Lab::up_file(tag, base, &with_expect(text, expect))
    }

    /// `up FILE --sandbox --prefix P` with `text` as the file, as it is.
    fn up_file(tag: &str, base: &str, text: &str) -> Lab {
        let p = prefix(tag);
        let lab = format!("{p}{base}");
        let g = LabGuard::new(&lab, None);
        let dir = tempfile::tempdir().unwrap();
        let f = write_file(&dir, "lab.yaml", text);
        ok(nslab(&["up", s(&f), "--sandbox", "--prefix", &p]));
        Lab {
            p,
            lab,
            base: base.into(),
            _g: g,
            _dir: dir,
        }
    }

    /// The namespace of node `n`.
    fn ns(&self, n: &str) -> String {
        format!("{}{n}", self.p)
    }

    /// The lab's host namespace (bridges live there).
    fn host(&self) -> String {
        format!("{}{}-host", self.p, self.base)
    }

    /// Run `cmd` inside node `n` (`ip netns exec`).
    fn exec(&self, n: &str, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.ns(n)))
    }

    /// Run `cmd` inside the lab's host namespace.
    fn exec_host(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.host()))
    }

    /// The system's ping from node `n` (an independent witness): true if a
    /// reply came. Retried, so that a `true` is never missed.
    fn reaches(&self, n: &str, addr: &str, extra: &str) -> bool {
        (0..3).any(|_| {
            sh_status(&format!(
                "ip netns exec {} ping -4 -n -c 1 -W 1 {extra} {addr}",
                self.ns(n)
            ))
            .0
        })
    }

    /// One system ping from node `n`: (replied, what ping printed).
    fn ping_once(&self, n: &str, addr: &str) -> (bool, String) {
        sh_status(&format!(
            "ip netns exec {} ping -4 -n -c 1 -W 1 {addr}",
            self.ns(n)
        ))
    }

    #[track_caller]
    fn assert_reaches(&self, n: &str, addr: &str, extra: &str, when: &str) {
        assert!(
            self.reaches(n, addr, extra),
            "{when}: ping {extra} from {n} to {addr} must work"
        );
    }

    #[track_caller]
    fn assert_fails(&self, n: &str, addr: &str, extra: &str, when: &str) {
        assert!(
            !self.reaches(n, addr, extra),
            "{when}: ping {extra} from {n} to {addr} must fail"
        );
    }

    /// `check --json --no-matrix`: the one expectation, which must fail.
    fn check_fails(&self) -> Value {
        let o = nslab(&["check", "--lab", &self.lab, "--json", "--no-matrix"]);
        let j: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        assert_eq!(o.status.code(), Some(1), "{j:#}");
        let e = j["expectations"][0].clone();
        assert_eq!(e["ok"], false, "{j:#}");
        assert!(e["error"].is_null(), "the probe ran: {j:#}");
        e
    }

    /// `ping SRC DST -c 1 -W 1 [extra] --json`: must fail; its `why_not`.
    fn ping_why(&self, src: &str, dst: &str, extra: &[&str]) -> Value {
        let mut args = vec!["ping", "--lab", &self.lab, src, dst, "-c", "1", "-W", "1"];
        args.extend_from_slice(extra);
        args.push("--json");
        let o = nslab(&args);
        let j: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        assert_eq!(o.status.code(), Some(1), "{j:#}");
        j["why_not"].clone()
    }
}

/// The explanation in a check expectation's `detail`: what follows "no reply"
/// (the detail starts with "SRC -> DST (addresses)", which names both ends anyway).
fn why_text(e: &Value) -> String {
    let d = e["detail"].as_str().unwrap_or("");
    match d.find("no reply") {
        Some(i) => d[i..].to_string(),
        None => d.to_string(),
    }
}

/// Words of a text: names, interface names, addresses and prefixes.
fn words(t: &str) -> Vec<String> {
    t.split(|c: char| !(c.is_alphanumeric() || "-_./:".contains(c)))
        .map(|w| w.trim_matches(|c: char| ".:".contains(c)).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The reason class, the place and the detail naming it.
#[track_caller]
fn assert_reason(e: &Value, class: &str, at: &str) {
    let w = &e["why"];
    assert_eq!(w["reason"], class, "reason class: {e:#}");
    assert_eq!(w["at"], at, "the place: {e:#}");
    assert_detail_names(e, at);
}

/// The explanation in `detail` names `what` (a place, an interface...).
#[track_caller]
fn assert_detail_names(e: &Value, what: &str) {
    let t = why_text(e);
    assert!(
        words(&t).iter().any(|w| w == what),
        "the detail names {what}: {t:?}"
    );
}

/// Nothing of the control is named: no field of the reason holds any of
/// `control` (or a text containing it), and the explanation has none as a word.
#[track_caller]
fn assert_not_named(why: &Value, detail: &str, control: &[&str]) {
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut fields = Vec::new();
    strings(why, &mut fields);
    let ws = words(detail);
    for c in control {
        for f in &fields {
            assert!(
                f != c && !words(f).iter().any(|w| w == c),
                "the reason names the control {c:?}: {why:#}"
            );
        }
        assert!(
            !ws.iter().any(|w| w == c),
            "the explanation names the control {c:?}: {detail:?}"
        );
    }
}

#[track_caller]
fn assert_control_not_named(e: &Value, control: &[&str]) {
    assert_not_named(&e["why"], &why_text(e), control);
}

/// ann - r1 - bob, and cy off r1 (the place for controls). r1 forwards.
const Y: &str = "name: y
nodes:
  ann:
    interfaces: { ae: { address: 10.0.1.2/24 } }
    routes: [\"default via 10.0.1.1\"]
  r1:
    forward: true
    interfaces:
      r1a: { address: 10.0.1.1/24 }
      r1b: { address: 10.0.2.1/24 }
      r1c: { address: 10.0.3.1/24 }
  bob:
    interfaces: { be: { address: 10.0.2.2/24 } }
    routes: [\"default via 10.0.2.1\"]
  cy:
    interfaces: { ce: { address: 10.0.3.2/24 } }
    routes: [\"default via 10.0.3.1\"]
links:
  - [ann:ae, r1:r1a]
  - [r1:r1b, bob:be]
  - [r1:r1c, cy:ce]
";

const BOB: &str = "10.0.2.2";

// 1. ------------------------------------------------------------------------

#[test]
fn interface_down_at_the_source() {
    let l = Lab::up("wn1", "y", Y, "reach: ann -> bob");
    // Control: an interface down on another node.
    sh(&format!("ip -n {} link set ce down", l.ns("cy")));
    l.assert_reaches("ann", BOB, "", "with cy's ce down");
    // Fault: the source's own interface.
    sh(&format!("ip -n {} link set ae down", l.ns("ann")));
    l.assert_fails("ann", BOB, "", "with ann's ae down");
    let e = l.check_fails();
    judge_interface_down(&e);
}

fn judge_interface_down(e: &Value) {
    assert_reason(e, "interface_down", "ann");
    assert_eq!(e["why"]["interface"], "ae", "{e:#}");
    assert_detail_names(e, "ae");
    assert_control_not_named(e, &["cy", "ce", "r1c"]);
}

// 2. ------------------------------------------------------------------------

#[test]
fn far_end_of_a_cable_down() {
    let l = Lab::up("wn2", "y", Y, "reach: ann -> bob");
    // Control: the far end of another cable (r1's r1c loses its carrier).
    sh(&format!("ip -n {} link set ce down", l.ns("cy")));
    l.assert_reaches("ann", BOB, "", "with cy's ce down");
    // Fault: r1's end of ann's cable.
    sh(&format!("ip -n {} link set r1a down", l.ns("r1")));
    l.assert_fails("ann", BOB, "", "with r1's r1a down");
    let e = l.check_fails();
    judge_peer_down(&e);
}

fn judge_peer_down(e: &Value) {
    assert_reason(e, "peer_down", "ann");
    let w = &e["why"];
    assert_eq!(w["interface"], "ae", "{e:#}");
    assert_eq!(w["far_at"], "r1", "{e:#}");
    assert_eq!(w["far_interface"], "r1a", "{e:#}");
    assert_detail_names(e, "r1");
    assert_detail_names(e, "r1a");
    assert_control_not_named(e, &["cy", "ce", "r1c"]);
}

// 3. ------------------------------------------------------------------------

/// A port's STP state as `bridge -j link show` prints it.
fn port_state(host_ns: &str, port: &str) -> String {
    let out = sh(&format!("bridge -n {host_ns} -j link show"));
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|x| x["ifname"] == port)
        .and_then(|x| x["state"].as_str())
        .unwrap_or_else(|| panic!("no port {port}: {out}"))
        .to_string()
}

/// objective2: green and black are bridged by bri0 in the lab's host.
const BLACK: &str = "192.168.1.1";

#[test]
fn bridge_port_down_on_the_destination_side() {
    let text = example_text("objective2-bridge.yaml");
    let l = Lab::up("wn3a", "objective2", &text, "reach: green -> black");
    let h = l.host();
    // Control: white's port down.
    sh(&format!("ip -n {h} link set wbrveth down"));
    l.assert_reaches("green", BLACK, "", "with white's port down");
    // Fault: black's port.
    sh(&format!("ip -n {h} link set bbrveth down"));
    l.assert_fails("green", BLACK, "", "with black's port down");
    // The witness: the kernel's bridge no longer forwards on that port.
    let stp = port_state(&h, "bbrveth");
    assert_ne!(stp, "forwarding");
    let e = l.check_fails();
    judge_bridge_port_down(&e);
}

/// A neighbour that has the address but does not answer ARP (arp_ignore=8:
/// never reply for local addresses): the failed probe leaves green's entry
/// unresolved, and the walk names black as the silent holder. Control: white
/// does not answer ARP either, off the path.
#[test]
fn a_holder_that_does_not_answer_arp() {
    let text = example_text("objective2-bridge.yaml");
    let l = Lab::up("wn3n", "objective2", &text, "reach: green -> black");
    l.exec("white", "sysctl -qw net.ipv4.conf.wveth.arp_ignore=8");
    l.assert_reaches("green", BLACK, "", "with white silent on ARP");
    l.exec("black", "sysctl -qw net.ipv4.conf.bveth.arp_ignore=8");
    // Black forgets green too: re-checking a stale entry, black would send green
    // an ARP request, from which green learns black's MAC and the probe gets through.
    l.exec("black", "ip neigh flush dev bveth");
    l.exec("green", "ip neigh flush dev gveth");
    l.assert_fails("green", BLACK, "", "with black silent on ARP");
    let e = l.check_fails();
    assert_reason(&e, "no_neighbour", "green");
    assert_eq!(e["why"]["holder"], "black:bveth", "{e:#}");
    assert!(
        ["incomplete", "failed"].contains(&e["why"]["state"].as_str().unwrap_or("")),
        "{e:#}"
    );
    assert_control_not_named(&e, &["white", "wveth"]);
}

/// `state` says why the port does not forward; the contract does not fix its
/// words (the port's link is "down", its STP state "disabled"), only that it
/// is not "forwarding".
fn judge_bridge_port_down(e: &Value) {
    assert_reason(e, "bridge_port_down", "host");
    let w = &e["why"];
    assert_eq!(w["bridge"], "bri0", "{e:#}");
    assert_eq!(w["port"], "bbrveth", "{e:#}");
    let state = w["state"].as_str().unwrap_or("");
    assert!(
        !state.is_empty() && state != "forwarding",
        "why the port does not forward: {e:#}"
    );
    assert_detail_names(e, "bbrveth");
    assert_control_not_named(e, &["white", "wveth", "wbrveth"]);
}

#[test]
fn bridge_down() {
    let text = example_text("objective2-bridge.yaml");
    let l = Lab::up("wn3b", "objective2", &text, "reach: green -> black");
    let h = l.host();
    // Control: white's port down.
    sh(&format!("ip -n {h} link set wbrveth down"));
    l.assert_reaches("green", BLACK, "", "with white's port down");
    // Fault: the bridge itself.
    sh(&format!("ip -n {h} link set bri0 down"));
    l.assert_fails("green", BLACK, "", "with bri0 down");
    let e = l.check_fails();
    judge_bridge_down(&e);
}

fn judge_bridge_down(e: &Value) {
    assert_reason(e, "bridge_down", "host");
    assert_eq!(e["why"]["bridge"], "bri0", "{e:#}");
    assert_detail_names(e, "bri0");
    assert_control_not_named(e, &["white", "wveth", "wbrveth"]);
}

// 4. ------------------------------------------------------------------------

/// The handle of the only rule of `chain` in table `family name`, as
/// `nft -a -j list table` shows it.
fn rule_handle(l: &Lab, node: &str, family: &str, table: &str, chain: &str) -> u64 {
    let out = l.exec(node, &format!("nft -a -j list table {family} {table}"));
    let v: Value = serde_json::from_str(&out).unwrap();
    let rules: Vec<u64> = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.get("rule"))
        .filter(|r| r["chain"] == chain)
        .filter_map(|r| r["handle"].as_u64())
        .collect();
    assert_eq!(rules.len(), 1, "{out}");
    rules[0]
}

#[test]
fn nftables_rule_in_the_destination_drops_echo_requests() {
    let l = Lab::up("wn4", "y", Y, "reach: ann -> bob");
    // Control: a drop rule that does not match the probe, on the router on the path.
    l.exec(
        "r1",
        "nft add table inet ctl \\; add chain inet ctl ctlfwd '{ type filter hook forward priority 0; }' \\; add rule inet ctl ctlfwd tcp dport 9 drop",
    );
    l.assert_reaches("ann", BOB, "", "with r1 dropping tcp port 9");
    // Fault: bob drops echo requests.
    l.exec(
        "bob",
        "nft add table inet f \\; add chain inet f input '{ type filter hook input priority 0; }' \\; add rule inet f input icmp type echo-request drop",
    );
    l.assert_fails("ann", BOB, "", "with bob dropping echo requests");
    let handle = rule_handle(&l, "bob", "inet", "f", "input");
    let e = l.check_fails();
    judge_nft_rule(&e, handle);
}

fn judge_nft_rule(e: &Value, handle: u64) {
    assert_reason(e, "firewall_drop", "bob");
    let w = &e["why"];
    assert_eq!(w["family"], "inet", "{e:#}");
    assert_eq!(w["table"], "f", "{e:#}");
    assert_eq!(w["chain"], "input", "{e:#}");
    assert_eq!(w["handle"], handle, "the handle `nft -a` shows: {e:#}");
    assert_detail_names(e, "input");
    assert_control_not_named(e, &["ctl", "ctlfwd", "r1"]);
}

/// 4b. A firewall that drops only TCP: ping gets through, so only a traced
/// connection finds the rule. Control: a rule dropping another port on r1.
#[test]
fn nftables_rule_dropping_only_tcp_is_found_by_a_traced_connection() {
    let l = Lab::up("wn4t", "y", Y, "tcp: ann -> bob:9");
    l.exec(
        "r1",
        "nft add table inet ctl \\; add chain inet ctl ctlfwd '{ type filter hook forward priority 0; }' \\; add rule inet ctl ctlfwd tcp dport 7 drop",
    );
    l.exec(
        "bob",
        "nft add table inet f \\; add chain inet f input '{ type filter hook input priority 0; }' \\; add rule inet f input tcp dport 9 drop",
    );
    // Witness: ICMP still passes, so the walk alone finds nothing wrong.
    l.assert_reaches("ann", BOB, "", "with bob dropping tcp port 9");
    let handle = rule_handle(&l, "bob", "inet", "f", "input");
    let e = l.check_fails();
    judge_nft_rule(&e, handle);
}

// 5. ------------------------------------------------------------------------

/// ann - r1 - bob; bob also on a cable to r2; cy off r1 with no routes at all.
const BACK: &str = "name: back
nodes:
  ann:
    interfaces: { ae: { address: 10.0.1.2/24 } }
    routes: [\"default via 10.0.1.1\"]
  r1:
    forward: true
    interfaces:
      r1a: { address: 10.0.1.1/24 }
      r1b: { address: 10.0.2.1/24 }
      r1c: { address: 10.0.3.1/24 }
  bob:
    interfaces:
      be: { address: 10.0.2.2/24 }
      be2: { address: 10.0.4.2/24 }
    routes: [\"default via 10.0.2.1\"]
  r2:
    forward: true
    interfaces: { r2b: { address: 10.0.4.1/24 } }
  cy:
    interfaces: { ce: { address: 10.0.3.2/24 } }
links:
  - [ann:ae, r1:r1a]
  - [r1:r1b, bob:be]
  - [bob:be2, r2:r2b]
  - [r1:r1c, cy:ce]
";

#[test]
fn return_path_through_a_router_without_a_route() {
    // Control (in the file): cy has no route to ann's network either, off the path.
    let l = Lab::up("wn5", "back", BACK, "reach: ann -> bob:be");
    l.assert_reaches("ann", BOB, "", "before bob's route via r2");
    // Fault: bob's way back to ann's network goes via r2, which has no route there.
    sh(&format!(
        "ip -n {} route add 10.0.1.0/24 via 10.0.4.1",
        l.ns("bob")
    ));
    l.assert_fails("ann", BOB, "", "with bob's way back via r2");
    let (found, out) = sh_status(&format!("ip -n {} route get 10.0.1.2", l.ns("r2")));
    assert!(!found, "r2 has no route to ann: {out}");
    let e = l.check_fails();
    judge_no_route_back(&e);
}

fn judge_no_route_back(e: &Value) {
    assert_reason(e, "no_route_back", "r2");
    assert_eq!(e["why"]["to"], "10.0.1.2", "{e:#}");
    assert_control_not_named(e, &["cy", "ce"]);
}

// 6. ------------------------------------------------------------------------

/// Two ways between ann and bob: out by r1 (ann's default route), back by r2
/// (bob's route to ann's network), arriving on ann's ae2. cy is a router off r1.
const ASYM: &str = include_str!("data/asym.yaml");

#[test]
fn rp_filter_drops_an_asymmetric_reply() {
    let l = Lab::up("wn6", "asym", ASYM, "reach: ann -> bob:be");
    // Control: strict reverse-path filtering on a router the probe does not cross.
    l.exec("cy", "sysctl -qw net.ipv4.conf.all.rp_filter=1");
    l.assert_reaches("ann", BOB, "", "asymmetric, with rp_filter in cy");
    // Fault: strict reverse-path filtering in ann.
    l.exec("ann", "sysctl -qw net.ipv4.conf.all.rp_filter=1");
    l.assert_fails("ann", BOB, "", "with rp_filter in ann");
    // The reply does arrive, on ae2 (tcpdump sees it before rp_filter drops it).
    let td = Tcpdump::start(&l.ns("ann"), "ae2", "icmp");
    assert!(!l.ping_once("ann", BOB).0);
    let seen = td.stop();
    assert!(
        seen.contains(&format!("{BOB} > 10.0.1.2: ICMP echo reply")),
        "the reply arrives on ae2: {seen}"
    );
    let e = l.check_fails();
    judge_rp_filter(&e);
}

fn judge_rp_filter(e: &Value) {
    assert_reason(e, "rp_filter", "ann");
    let w = &e["why"];
    assert_eq!(w["interface"], "ae2", "the reply arrives on ae2: {e:#}");
    assert_eq!(w["mode"], "strict", "{e:#}");
    assert_eq!(w["src"], BOB, "{e:#}");
    assert_detail_names(e, "ae2");
    assert_control_not_named(e, &["cy", "ce", "r1c"]);
}

// 7. ------------------------------------------------------------------------

/// ann - r1 - bob where bob's end of the cable has MTU 1280 and r1's 1500; the
/// control: r1's end of cy's cable has MTU 1280 and cy's 1500.
fn mtu_lab() -> String {
    Y.replace(
        "be: { address: 10.0.2.2/24 }",
        "be: { address: 10.0.2.2/24, mtu: 1280 }",
    )
    .replace(
        "r1c: { address: 10.0.3.1/24 }",
        "r1c: { address: 10.0.3.1/24, mtu: 1280 }",
    )
}

#[track_caller]
fn assert_mtu_reason(why: &Value, detail: &str) {
    assert_eq!(why["reason"], "mtu", "{why:#}");
    assert_eq!(why["at"], "bob", "bob's be cannot take it: {why:#}");
    assert_eq!(why["interface"], "be", "{why:#}");
    assert_eq!(why["mtu"], 1280, "{why:#}");
    assert!(
        why["size"].as_u64().is_some_and(|s| s > 1280),
        "the size of the probe: {why:#}"
    );
    assert_not_named(why, detail, &["cy", "ce", "r1c"]);
}

/// The MTU mismatch, witnessed by the system's ping: default size passes,
/// 1400 bytes with DF do not.
fn mtu_witness(l: &Lab) {
    l.assert_reaches("ann", BOB, "", "default size");
    l.assert_reaches("ann", BOB, "-M do -s 1200", "1200 bytes");
    l.assert_fails(
        "ann",
        BOB,
        "-M do -s 1400",
        "1400 bytes across the mismatch",
    );
}

/// NOTE: `size:` in an expectation is being added on another branch; until it
/// is, `up` rejects the file (unknown field `size`) and this test fails there.
#[test]
fn mtu_mismatch_check_with_size() {
    let l = Lab::up("wn7", "y", &mtu_lab(), "reach: ann -> bob\n    size: 1400");
    mtu_witness(&l);
    let e = l.check_fails();
    judge_mtu(&e);
}

fn judge_mtu(e: &Value) {
    assert_mtu_reason(&e["why"], &why_text(e));
    assert_detail_names(e, "bob");
    assert_detail_names(e, "be");
}

#[test]
fn mtu_mismatch_ping_with_size() {
    let l = Lab::up("wn7p", "y", &mtu_lab(), "reach: ann -> bob");
    mtu_witness(&l);
    // The default size passes: no why.
    let o = nslab(&[
        "ping", "--lab", &l.lab, "ann", "bob", "-c", "1", "-W", "1", "--json",
    ]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{j:#}");
    assert!(j["why_not"].is_null(), "{j:#}");
    let w = l.ping_why("ann", "bob", &["-s", "1400"]);
    assert_mtu_reason(&w, "");
}

// 8. ------------------------------------------------------------------------

/// A blocking route of `kind` for bob's address in `node`, with the control: a
/// route of the same kind for another prefix in the same node.
fn blocking(tag: &str, kind: &str, node: &str) {
    let l = Lab::up(tag, "y", Y, "reach: ann -> bob");
    let ns = l.ns(node);
    sh(&format!("ip -n {ns} route add {kind} 10.9.9.0/24"));
    l.assert_reaches(
        "ann",
        BOB,
        "",
        &format!("with {kind} 10.9.9.0/24 in {node}"),
    );
    sh(&format!("ip -n {ns} route add {kind} {BOB}/32"));
    l.assert_fails("ann", BOB, "", &format!("with {kind} {BOB} in {node}"));
    let e = l.check_fails();
    judge_blocking(&e, kind, node);
}

fn judge_blocking(e: &Value, kind: &str, node: &str) {
    assert_reason(e, "blocking_route", node);
    let w = &e["why"];
    assert_eq!(w["kind"], kind, "{e:#}");
    assert_eq!(w["dst"], BOB, "{e:#}");
    let route = w["route"].as_str().unwrap_or("");
    assert!(
        route.contains(BOB) && route.contains(kind),
        "the route as `ip route` shows it: {e:#}"
    );
    assert_detail_names(e, kind);
    assert_control_not_named(e, &["10.9.9.0/24", "10.9.9.0"]);
}

#[test]
fn blackhole_route_in_a_router() {
    blocking("wn8a", "blackhole", "r1");
}

#[test]
fn unreachable_route_at_the_source() {
    blocking("wn8b", "unreachable", "ann");
}

#[test]
fn prohibit_route_in_a_router() {
    blocking("wn8c", "prohibit", "r1");
}

// 9. ------------------------------------------------------------------------

/// ann - r1 - r2 - bob; the control: r1 and r2 send 10.7.7.0/24 to each other.
const LOOP: &str = include_str!("data/loop.yaml");

#[test]
fn routing_loop_between_two_routers() {
    let l = Lab::up("wn9", "loop", LOOP, "reach: ann -> bob");
    l.assert_reaches("ann", BOB, "", "with a loop for 10.7.7.0/24");
    // Fault: r2 sends bob's address back to r1.
    sh(&format!(
        "ip -n {} route add {BOB}/32 via 10.0.9.1",
        l.ns("r2")
    ));
    l.assert_fails("ann", BOB, "", "with r2 sending bob back to r1");
    let (_, out) = l.ping_once("ann", BOB);
    assert!(out.contains("Time to live exceeded"), "{out}");
    let e = l.check_fails();
    judge_loop(&e);
}

fn judge_loop(e: &Value) {
    let w = &e["why"];
    assert_eq!(w["reason"], "routing_loop", "{e:#}");
    let at = w["at"].as_str().unwrap_or("");
    assert!(at == "r1" || at == "r2", "{e:#}");
    assert_detail_names(e, at);
    let path: Vec<&str> = w["path"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert!(
        path.contains(&"r1") && path.contains(&"r2"),
        "both routers in the path: {e:#}"
    );
    assert_detail_names(e, "r1");
    assert_detail_names(e, "r2");
    assert_control_not_named(e, &["10.7.7.0/24", "10.7.7.0"]);
}

// 10. -----------------------------------------------------------------------

#[test]
fn no_address_on_the_source_interface() {
    let l = Lab::up("wn10", "y", Y, "reach: ann -> bob");
    // Control: cy without an address (on-link default route), off the path.
    sh(&format!(
        "ip -n {0} addr flush dev ce && ip -n {0} route replace default dev ce",
        l.ns("cy")
    ));
    l.assert_reaches("ann", BOB, "", "with cy without an address");
    // Fault: ann's ae without an address; an on-link default route.
    sh(&format!(
        "ip -n {0} addr flush dev ae && ip -n {0} route replace default dev ae",
        l.ns("ann")
    ));
    l.assert_fails("ann", BOB, "", "with ann without an address");
    let e = l.check_fails();
    judge_no_address(&e);
}

fn judge_no_address(e: &Value) {
    assert_reason(e, "no_address", "ann");
    assert_eq!(e["why"]["interface"], "ae", "{e:#}");
    assert_eq!(e["why"]["family"], 4, "{e:#}");
    assert_detail_names(e, "ae");
    assert_control_not_named(e, &["cy", "ce"]);
}

// 11. -----------------------------------------------------------------------

#[test]
fn docker_style_forward_policy_drops_bridged_traffic() {
    let text = example_text("objective2-bridge.yaml");
    let l = Lab::up("wn11", "objective2", &text, "reach: green -> black");
    let v = sh(&format!(
        "ip netns exec {} sysctl -n net.bridge.bridge-nf-call-iptables 2>&1 || true",
        l.host()
    ));
    eprintln!(
        "net.bridge.bridge-nf-call-iptables in {}: {}",
        l.host(),
        v.trim()
    );
    if v.trim() != "1" {
        eprintln!(
            "SKIPPED: br_netfilter does not pass bridged traffic through the forward hook here (value {:?}), so the fault cannot happen",
            v.trim()
        );
        return;
    }
    // Control: the same chain in white, a node the bridged probe does not cross.
    l.exec(
        "white",
        "nft add table ip ctl \\; add chain ip ctl FORWARD '{ type filter hook forward priority 0; policy drop; }'",
    );
    l.assert_reaches("green", BLACK, "", "with white's forward policy drop");
    // Fault: Docker's FORWARD policy in the host.
    l.exec_host(
        "nft add table ip filter \\; add chain ip filter FORWARD '{ type filter hook forward priority 0; policy drop; }'",
    );
    l.assert_fails("green", BLACK, "", "with the host's FORWARD policy drop");
    let e = l.check_fails();
    judge_docker(&e);
}

fn judge_docker(e: &Value) {
    assert_reason(e, "firewall_drop", "host");
    let w = &e["why"];
    assert_eq!(w["family"], "ip", "{e:#}");
    assert_eq!(w["table"], "filter", "{e:#}");
    assert_eq!(w["chain"], "FORWARD", "{e:#}");
    assert!(w["handle"].is_null(), "the policy, not a rule: {e:#}");
    assert_detail_names(e, "FORWARD");
    assert_control_not_named(e, &["white", "ctl"]);
}

// 12. -----------------------------------------------------------------------

/// ann - r1 - bob, and bob - cy on a second cable (bw). bob's route to ann's
/// network goes via r1; the control: ann has an on-link route for 10.0.8.0/24
/// that leads nowhere.
const TWO: &str = "name: two
nodes:
  ann:
    interfaces: { ae: { address: 10.0.1.2/24 } }
    routes: [\"default via 10.0.1.1\", \"10.0.8.0/24 dev ae metric 10\"]
  r1:
    forward: true
    interfaces:
      r1a: { address: 10.0.1.1/24 }
      r1b: { address: 10.0.2.1/24 }
  bob:
    interfaces:
      be: { address: 10.0.2.2/24 }
      bw: { address: 10.0.7.2/24 }
    routes: [\"default via 10.0.2.1\", \"10.0.1.0/24 via 10.0.2.1 metric 100\"]
  cy:
    interfaces: { ce: { address: 10.0.7.1/24 } }
links:
  - [ann:ae, r1:r1a]
  - [r1:r1b, bob:be]
  - [bob:bw, cy:ce]
";

#[test]
fn reply_leaves_by_the_wrong_interface() {
    let l = Lab::up("wn12", "two", TWO, "reach: ann -> bob:be");
    l.assert_reaches("ann", BOB, "", "one route back");
    // Fault: a second route for ann's network, lower metric, on bw (to cy).
    sh(&format!(
        "ip -n {} route add 10.0.1.0/24 dev bw metric 10",
        l.ns("bob")
    ));
    l.assert_fails("ann", BOB, "", "with the reply leaving by bw");
    // bob asked for ann's address on bw, and nobody answered.
    let n = sh(&format!("ip -n {} neigh show 10.0.1.2 dev bw", l.ns("bob")));
    assert!(
        n.contains("INCOMPLETE") || n.contains("FAILED"),
        "bob's neighbour entry for ann on bw: {n:?}"
    );
    let e = l.check_fails();
    judge_wrong_interface(&e);
}

fn judge_wrong_interface(e: &Value) {
    assert_reason(e, "no_neighbour", "bob");
    assert_eq!(e["why"]["interface"], "bw", "{e:#}");
    assert_eq!(e["why"]["next_hop"], "10.0.1.2", "{e:#}");
    assert_detail_names(e, "bw");
    assert_control_not_named(e, &["10.0.8.0/24", "10.0.8.0"]);
}

// 13. -----------------------------------------------------------------------

#[test]
fn nat_entry_that_excludes_the_uplink() {
    let t = example_text("objective3-nat.yaml");
    let from = "nat:\n  - { source: 192.168.0.0/16, not_out: bri0 }\n";
    assert!(t.contains(from));
    // Fault: the entry excludes the uplink. Control: an entry for another network.
    let t = t.replace(
        from,
        "nat:\n  - { source: 192.168.0.0/16, not_out: uplink }\n  - { source: 10.99.0.0/16, out: uplink }\n",
    );
    let l = Lab::up("wn13", "objective3", &t, "reach: green -> internet");
    l.assert_fails("green", "198.51.100.8", "", "without NAT on the uplink");
    // The request reaches the internet untranslated.
    let td = Tcpdump::start(&format!("{}objective3-inet", l.p), "isp", "icmp");
    assert!(!l.ping_once("green", "198.51.100.8").0);
    let seen = td.stop();
    assert!(
        seen.contains("192.168.3.1 > 198.51.100.8: ICMP echo request"),
        "untranslated at the internet: {seen}"
    );
    l.assert_reaches("green", "192.168.1.1", "", "inside the lab");
    // Both entries are in the host's ruleset: the control is there, and it
    // does not translate green's 192.168.3.1.
    let rules = l.exec_host("nft list ruleset");
    assert!(
        rules.contains("10.99.0.0/16") && rules.contains("192.168.0.0/16"),
        "{rules}"
    );
    let e = l.check_fails();
    judge_nat(&e);
}

fn judge_nat(e: &Value) {
    let w = &e["why"];
    assert_eq!(w["reason"], "no_nat", "{e:#}");
    assert_eq!(w["host"], "host", "{e:#}");
    assert_eq!(w["out"], "uplink", "{e:#}");
    assert_eq!(w["src"], "192.168.3.1", "{e:#}");
    let by = w["excluded_by"].as_str().unwrap_or("");
    assert!(
        by.contains("192.168.0.0/16"),
        "names the entry that exists: {e:#}"
    );
    assert!(!by.contains("10.99"), "not the control's entry: {e:#}");
    let t = why_text(e);
    assert!(
        !t.contains("add a `nat` entry"),
        "an entry exists, it does not apply: {t}"
    );
    assert_detail_names(e, "host");
    assert_detail_names(e, "uplink");
    assert_control_not_named(e, &["10.99.0.0/16"]);
}

// 14. -----------------------------------------------------------------------

/// A sandboxed lab with a bridge in the host, NAT, and a router node `r1` that
/// does not forward, with `dee` behind it (the host routes dee's network via r1).
const ADV: &str = "name: adv
bridges:
  br0: { address: 192.168.0.1/16 }
nodes:
  gee:
    interfaces: { ge: { address: 192.168.3.1/24 } }
    routes: [\"192.168.0.0/16 dev ge\", \"default via 192.168.0.1\"]
  r1:
    interfaces:
      rg: { address: 192.168.4.1/24 }
      rd: { address: 10.0.4.1/24 }
    routes: [\"192.168.0.0/16 dev rg\", \"default via 192.168.0.1\"]
  dee:
    interfaces: { de: { address: 10.0.4.2/24 } }
    routes: [\"default via 10.0.4.1\"]
host:
  routes: [\"10.0.4.0/24 via 192.168.4.1\"]
links:
  - [gee:ge, br0:pg]
  - [r1:rg, br0:pr]
  - [r1:rd, dee:de]
nat:
  - { source: 192.168.0.0/16, not_out: br0 }
expect:
  - reach: gee -> 198.51.100.9
  - reach: internet -> gee
  - reach: host -> 198.51.100.9
  - reach: gee -> dee
  - reach: gee -> internet
";

const FORWARD_ADVICE: &str = "give it `forward: true`";

/// The failed expectations of a check, by name.
fn failed(l: &Lab) -> Vec<Value> {
    let o = nslab(&["check", "--lab", &l.lab, "--json", "--no-matrix"]);
    let j: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(o.status.code(), Some(1), "{j:#}");
    j["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ok"] == false)
        .cloned()
        .collect()
}

fn by_name<'a>(v: &'a [Value], name: &str) -> &'a Value {
    v.iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} did not fail: {v:#?}"))
}

/// The place a reason is at (`host` for no_nat).
fn place_of(why: &Value) -> String {
    why["at"]
        .as_str()
        .or(why["host"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn advice_never_reconfigures_host_or_internet() {
    let l = Lab::up_file("wn14", "adv", ADV);
    // The witnesses: the internet holds only 198.51.100.8 and forwards nothing;
    // r1 does not forward.
    l.assert_fails("gee", "198.51.100.9", "", "an address the internet lacks");
    l.assert_reaches("gee", "198.51.100.8", "", "through NAT");
    l.assert_fails("gee", "10.0.4.2", "", "through r1, which does not forward");
    let mut at_outside = 0;
    let mut judge = |e: &Value| {
        let at = place_of(&e["why"]);
        let t = why_text(e);
        if at == "internet" || at == "host" {
            at_outside += 1;
            assert!(
                !t.contains(FORWARD_ADVICE),
                "{}: advises changing {at}: {t}",
                e["name"]
            );
        }
    };
    let f1 = failed(&l);
    for e in &f1 {
        judge(e);
    }
    // Probes failing at the internet: it holds no 198.51.100.9 and does not
    // forward; it has no route to the lab's private network.
    assert_eq!(
        place_of(&by_name(&f1, "reach: gee -> 198.51.100.9")["why"]),
        "internet",
        "{f1:#?}"
    );
    assert_eq!(
        place_of(&by_name(&f1, "reach: internet -> gee")["why"]),
        "internet",
        "{f1:#?}"
    );
    assert_eq!(
        place_of(&by_name(&f1, "reach: host -> 198.51.100.9")["why"]),
        "internet",
        "{f1:#?}"
    );
    // Control: r1 is a node of the file, and there the advice is right.
    let c = by_name(&f1, "reach: gee -> dee");
    assert_reason(c, "not_forwarding", "r1");
    assert!(why_text(c).contains(FORWARD_ADVICE), "{c:#}");
    assert!(
        f1.iter().all(|e| e["name"] != "reach: gee -> internet"),
        "NAT works: {f1:#?}"
    );
    // Fault: the host stops forwarding; now probes fail at the host.
    l.exec_host("sysctl -qw net.ipv4.ip_forward=0");
    l.assert_fails("gee", "198.51.100.8", "", "with the host not forwarding");
    let f2 = failed(&l);
    for e in &f2 {
        judge(e);
    }
    let e = by_name(&f2, "reach: gee -> internet");
    assert_reason(e, "not_forwarding", "host");
    // ping's "why not:" line too.
    for (src, dst) in [("gee", "internet"), ("gee", "198.51.100.9")] {
        let o = nslab(&["ping", "--lab", &l.lab, src, dst, "-c", "1", "-W", "1"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let out = stdout(&o);
        let line = out
            .lines()
            .find(|x| x.starts_with("why not:"))
            .unwrap_or_else(|| panic!("no why not: {out}"));
        assert!(!line.contains(FORWARD_ADVICE), "{src} -> {dst}: {line}");
    }
    assert!(at_outside >= 4, "probes failed at internet and host");
}

// 15. -----------------------------------------------------------------------

#[test]
fn healthy_probe_has_no_why() {
    let l = Lab::up("wn15", "y", Y, "reach: ann -> bob");
    // An interface down on another node, and an unrelated neighbour in ann.
    sh(&format!("ip -n {} link set ce down", l.ns("cy")));
    sh(&format!(
        "ip -n {} neigh add 10.0.1.77 lladdr 02:00:00:00:00:77 dev ae nud permanent",
        l.ns("ann")
    ));
    l.assert_reaches("ann", BOB, "", "healthy");
    let o = nslab(&["check", "--lab", &l.lab, "--json", "--no-matrix"]);
    let j: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(o.status.code(), Some(0), "{j:#}");
    let e = &j["expectations"][0];
    assert_eq!(e["ok"], true, "{j:#}");
    assert!(e["why"].is_null(), "{j:#}");
    let o = nslab(&[
        "ping", "--lab", &l.lab, "ann", "bob", "-c", "1", "-W", "1", "--json",
    ]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{j:#}");
    assert!(j["why_not"].is_null(), "{j:#}");
}

// The assertions themselves ----------------------------------------------------

/// An expectation as `check --json` prints it when the walk finds `r`.
fn answer(ends: &str, r: &dyn Why) -> Value {
    serde_json::json!({
        "ok": false,
        "error": null,
        "detail": format!("{ends}: no reply: {r}"),
        "why": r.json(),
    })
}

/// A firewall drop, as JSON and text: built by hand because the variant's
/// other fields (the rule's text, bridged traffic) differ between branches.
struct Fw(Value, String);

impl std::fmt::Display for Fw {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

fn fw(at: &str, family: &str, table: &str, chain: &str, handle: Option<u64>) -> Fw {
    let text = match handle {
        Some(h) => format!(
            "a firewall rule in {at} drops the probe: table {family} {table}, chain {chain}, rule handle {h}"
        ),
        None => format!(
            "a firewall in {at} drops the probe: the policy of chain {chain} in table {family} {table}"
        ),
    };
    Fw(
        serde_json::json!({"reason": "firewall_drop", "at": at, "family": family,
            "table": table, "chain": chain, "handle": handle}),
        text,
    )
}

/// What `answer` takes: a `Reason`, or a hand-built `Fw`.
trait Why: std::fmt::Display {
    fn json(&self) -> Value;
}

impl Why for Reason {
    fn json(&self) -> Value {
        serde_json::to_value(self).unwrap()
    }
}

impl Why for Fw {
    fn json(&self) -> Value {
        self.0.clone()
    }
}

fn ip(a: &str) -> std::net::IpAddr {
    a.parse().unwrap()
}

fn st(a: &str) -> String {
    a.to_string()
}

/// Each fault's assertions accept the answer the contract describes (built
/// from the library's own `Reason`, printed by its own `Display`), so the
/// tests above can pass; and they reject today's answers and ones naming the
/// control.
#[test]
fn the_assertions_accept_the_right_answers_and_reject_wrong_ones() {
    let ab = "ann -> bob (10.0.2.2)";
    let gb = "green -> black (192.168.1.1)";
    judge_interface_down(&answer(
        ab,
        &Reason::InterfaceDown {
            at: st("ann"),
            interface: st("ae"),
        },
    ));
    judge_peer_down(&answer(
        ab,
        &Reason::PeerDown {
            at: st("ann"),
            interface: st("ae"),
            far_at: st("r1"),
            far_interface: st("r1a"),
        },
    ));
    judge_bridge_port_down(&answer(
        gb,
        &Reason::BridgePortDown {
            at: st("host"),
            bridge: st("bri0"),
            port: st("bbrveth"),
            state: st("disabled"),
        },
    ));
    judge_bridge_down(&answer(
        gb,
        &Reason::BridgeDown {
            at: st("host"),
            bridge: st("bri0"),
        },
    ));
    judge_nft_rule(&answer(ab, &fw("bob", "inet", "f", "input", Some(2))), 2);
    judge_no_route_back(&answer(
        ab,
        &Reason::NoRouteBack {
            at: st("r2"),
            to: ip("10.0.1.2"),
        },
    ));
    judge_rp_filter(&answer(
        ab,
        &Reason::RpFilter {
            at: st("ann"),
            interface: st("ae2"),
            src: ip(BOB),
            mode: st("strict"),
        },
    ));
    judge_mtu(&answer(
        ab,
        &Reason::Mtu {
            at: st("bob"),
            interface: st("be"),
            mtu: 1280,
            size: 1428,
        },
    ));
    for (kind, node) in [
        ("blackhole", "r1"),
        ("unreachable", "ann"),
        ("prohibit", "r1"),
    ] {
        judge_blocking(
            &answer(
                ab,
                &Reason::BlockingRoute {
                    at: st(node),
                    dst: ip(BOB),
                    kind: st(kind),
                    route: format!("{kind} {BOB}"),
                },
            ),
            kind,
            node,
        );
    }
    judge_loop(&answer(
        ab,
        &Reason::RoutingLoop {
            at: st("r2"),
            path: vec![st("r1"), st("r2"), st("r1")],
        },
    ));
    judge_no_address(&answer(
        ab,
        &Reason::NoAddress {
            at: st("ann"),
            interface: st("ae"),
            family: 4,
        },
    ));
    judge_docker(&answer(gb, &fw("host", "ip", "filter", "FORWARD", None)));
    judge_wrong_interface(&answer(
        ab,
        &Reason::NoNeighbour {
            at: st("bob"),
            next_hop: ip("10.0.1.2"),
            interface: st("bw"),
            holder: None,
            state: None,
        },
    ));
    judge_nat(&answer(
        "green -> internet (198.51.100.8)",
        &Reason::NoNat {
            host: st("host"),
            src: ip("192.168.3.1"),
            out: st("uplink"),
            excluded_by: Some(st("{ source: 192.168.0.0/16, not_out: uplink }")),
        },
    ));

    // Wrong answers are rejected: today's, and ones naming the control.
    let rejects = |what: &str, f: &dyn Fn()| {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        assert!(r.is_err(), "accepted a wrong answer: {what}");
    };
    rejects("no_route for a down interface", &|| {
        judge_interface_down(&answer(
            ab,
            &Reason::NoRoute {
                at: st("ann"),
                dst: ip(BOB),
            },
        ))
    });
    rejects("the control's interface", &|| {
        judge_interface_down(&answer(
            ab,
            &Reason::InterfaceDown {
                at: st("cy"),
                interface: st("ce"),
            },
        ))
    });
    rejects("a far end without a name", &|| {
        judge_peer_down(&answer(
            ab,
            &Reason::PeerDown {
                at: st("ann"),
                interface: st("ae"),
                far_at: String::new(),
                far_interface: String::new(),
            },
        ))
    });
    rejects("the control's port", &|| {
        judge_bridge_port_down(&answer(
            gb,
            &Reason::BridgePortDown {
                at: st("host"),
                bridge: st("bri0"),
                port: st("wbrveth"),
                state: st("disabled"),
            },
        ))
    });
    rejects("the control's rule", &|| {
        judge_nft_rule(&answer(ab, &fw("r1", "inet", "ctl", "ctlfwd", Some(2))), 2)
    });
    rejects("another rule's handle", &|| {
        judge_nft_rule(&answer(ab, &fw("bob", "inet", "f", "input", Some(3))), 2)
    });
    rejects("the control's blackhole", &|| {
        judge_blocking(
            &answer(
                ab,
                &Reason::BlockingRoute {
                    at: st("r1"),
                    dst: ip(BOB),
                    kind: st("blackhole"),
                    route: st("blackhole 10.9.9.0/24"),
                },
            ),
            "blackhole",
            "r1",
        )
    });
    rejects("rp_filter in the control router", &|| {
        judge_rp_filter(&answer(
            ab,
            &Reason::RpFilter {
                at: st("cy"),
                interface: st("ce"),
                src: ip(BOB),
                mode: st("strict"),
            },
        ))
    });
    rejects("a nat answer that advises adding an entry", &|| {
        judge_nat(&answer(
            "green -> internet (198.51.100.8)",
            &Reason::NoNat {
                host: st("host"),
                src: ip("192.168.3.1"),
                out: st("uplink"),
                excluded_by: None,
            },
        ))
    });
    rejects("the control's nat entry", &|| {
        judge_nat(&answer(
            "green -> internet (198.51.100.8)",
            &Reason::NoNat {
                host: st("host"),
                src: ip("192.168.3.1"),
                out: st("uplink"),
                excluded_by: Some(st("{ source: 10.99.0.0/16, out: uplink }")),
            },
        ))
    });
}
