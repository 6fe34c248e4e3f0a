//! Issue 20, item 2: link maps in the file. A `rate:` on a link is a tbf
//! qdisc on both ends after `up` (checked with `tc -j`), `status` is clean, a
//! qdisc deleted by hand is drift that `up` repairs, `nslab shape` overrides
//! it until `up --reset`, `up: false` leaves a cable down (`ip -j link`),
//! `delay:` on a kernel without netem exits 2 creating nothing, and `down`
//! leaves nothing.

mod common;
use common::*;

fn lab_text(name: &str, net: u8, extra: &str) -> String {
    format!(
        "name: {name}
nodes:
  a: {{ interfaces: {{ ea: {{ address: 10.{net}.0.1/24 }}, ec: {{ address: 10.{net}.1.1/24 }} }} }}
  b: {{ interfaces: {{ eb: {{ address: 10.{net}.0.2/24 }}, ed: {{ address: 10.{net}.1.2/24 }} }} }}
links:
  - {{ ends: [a:ea, b:eb], {extra} }}
  - ends: [a:ec, b:ed]
    up: false
"
    )
}

/// The root qdisc of `dev` in `ns`, from `tc -j qdisc show` (an independent witness).
fn root_qdisc(ns: &str, dev: &str) -> serde_json::Value {
    let out = sh(&format!(
        "ip netns exec {ns} tc -j qdisc show dev {dev} root"
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or(serde_json::Value::Null)
}

fn tbf_rate(ns: &str, dev: &str) -> Option<u64> {
    let q = root_qdisc(ns, dev);
    (q["kind"] == "tbf").then(|| q["options"]["rate"].as_u64().unwrap())
}

fn is_up(ns: &str, dev: &str) -> bool {
    let v = ip_json(Some(ns), &format!("link show dev {dev}"));
    let flags = v[0]["flags"].as_array().cloned().unwrap_or_default();
    flags.iter().any(|f| f == "UP")
}

fn status_json(lab: &str) -> (bool, serde_json::Value) {
    let o = nslab(&["status", "--lab", lab, "--json"]);
    (
        o.status.success(),
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o))),
    )
}

#[test]
fn a_links_rate_is_desired_state_repaired_by_up_and_overridden_by_shape() {
    let p = prefix("20fm");
    let lab = format!("{p}lm");
    let g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "lm.yaml", &lab_text("lm", 71, "rate: 10mbit"));
    let file = s(&f).to_string();
    let (a, b) = (format!("{p}a"), format!("{p}b"));

    // plan --explain names the tc commands before anything exists.
    let plan = ok(nslab(&[
        "plan",
        &file,
        "--sandbox",
        "--prefix",
        &p,
        "--explain",
    ]));
    assert!(
        stdout(&plan).contains(&format!(
            "ip netns exec {a} tc qdisc replace dev ea root tbf rate 10Mbit"
        )),
        "{}",
        stdout(&plan)
    );
    ok(nslab(&["up", &file, "--sandbox", "--prefix", &p]));
    assert_eq!(tbf_rate(&a, "ea"), Some(1_250_000));
    assert_eq!(tbf_rate(&b, "eb"), Some(1_250_000));
    // `up: false`: both ends of the second cable are down; the first is up.
    assert!(!is_up(&a, "ec") && !is_up(&b, "ed"));
    assert!(is_up(&a, "ea") && is_up(&b, "eb"));

    let (clean, j) = status_json(&lab);
    assert!(clean, "{j}");
    assert_eq!(j["drift"], serde_json::json!([]), "{j}");
    assert_eq!(j["shaping"].as_array().unwrap().len(), 2, "{j}");
    assert_eq!(j["shaping"][0]["source"], "file", "{j}");
    assert_eq!(j["shaping"][0]["in_kernel"], true, "{j}");

    // A qdisc deleted by hand is drift, and `up` puts it back.
    sh(&format!("ip netns exec {a} tc qdisc del dev ea root"));
    assert_eq!(tbf_rate(&a, "ea"), None);
    let st = nslab(&["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    assert!(text(&st).contains("missing in the kernel"), "{}", text(&st));
    ok(nslab(&["up", &file, "--sandbox", "--prefix", &p]));
    assert_eq!(tbf_rate(&a, "ea"), Some(1_250_000));
    assert!(status_json(&lab).0);
    // `up` again leaves the down cable down.
    assert!(!is_up(&a, "ec"));
    // `up: false` is desired state: set up by hand, it is drift `up` repairs.
    sh(&format!("ip netns exec {a} ip link set ec up"));
    assert!(is_up(&a, "ec"));
    let st = nslab(&["status", "--lab", &lab]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    ok(nslab(&["up", &file, "--sandbox", "--prefix", &p]));
    assert!(!is_up(&a, "ec"));
    // `nslab link END up` is runtime state: clean, kept by `up`, dropped by
    // `up --reset`.
    ok(nslab(&["link", "--lab", &lab, "a:ec", "up"]));
    assert!(is_up(&a, "ec") && !is_up(&b, "ed"));
    let (clean, j) = status_json(&lab);
    assert!(clean, "{j}");
    assert_eq!(j["runtime"]["links_up"][0]["endpoint"], "a:ec", "{j}");
    ok(nslab(&["up", &file, "--sandbox", "--prefix", &p]));
    assert!(is_up(&a, "ec"));
    ok(nslab(&[
        "up",
        &file,
        "--sandbox",
        "--prefix",
        &p,
        "--reset",
    ]));
    assert!(!is_up(&a, "ec"));
    assert!(status_json(&lab).0);

    // `nslab shape` overrides the file's shaping of that end (runtime state),
    // `up` keeps the override, `up --reset` goes back to the file's.
    ok(nslab(&["shape", "--lab", &lab, "a:ea", "--rate", "1mbit"]));
    assert_eq!(tbf_rate(&a, "ea"), Some(125_000));
    let (clean, j) = status_json(&lab);
    assert!(clean, "{j}");
    ok(nslab(&["up", &file, "--sandbox", "--prefix", &p]));
    assert_eq!(tbf_rate(&a, "ea"), Some(125_000));
    assert_eq!(tbf_rate(&b, "eb"), Some(1_250_000));
    // graph draws the running lab: the override, and the down cable dashed.
    let gr = ok(nslab(&["graph", &file, "--sandbox", "--prefix", &p]));
    assert!(
        stdout(&gr).contains("ea — eb; ea: 1mbit; eb: 10mbit\"")
            && stdout(&gr).contains("ec — ed; down\", style=dashed"),
        "{}",
        stdout(&gr)
    );
    // A probe lost on a shaped path: why-not names the shaping.
    ok(nslab(&["shape", "--lab", &lab, "b:eb", "--loss", "100%"]));
    let ping = nslab(&["ping", "--lab", &lab, "a", "10.71.0.2", "-c", "1"]);
    assert_eq!(ping.status.code(), Some(1), "{}", text(&ping));
    assert!(
        text(&ping).contains("the path is shaped")
            && text(&ping).contains("b:eb drops 100% (nslab shape)"),
        "{}",
        text(&ping)
    );
    let cl = ok(nslab(&["shape", "--lab", &lab, "b:eb", "--clear"]));
    assert!(
        stdout(&cl).starts_with("b:eb: rate 10Mbit (tbf; the file's link map)"),
        "{}",
        stdout(&cl)
    );
    assert_eq!(tbf_rate(&b, "eb"), Some(1_250_000));
    ok(nslab(&[
        "up",
        &file,
        "--sandbox",
        "--prefix",
        &p,
        "--reset",
    ]));
    assert_eq!(tbf_rate(&a, "ea"), Some(1_250_000));
    // `shape --clear` drops the override: the file's rate is back.
    ok(nslab(&["shape", "--lab", &lab, "b:eb", "--rate", "2mbit"]));
    assert_eq!(tbf_rate(&b, "eb"), Some(250_000));
    ok(nslab(&["shape", "--lab", &lab, "b:eb", "--clear"]));
    assert_eq!(tbf_rate(&b, "eb"), Some(1_250_000));

    // A file without the rate: `up` removes the qdiscs it made.
    let f2 = write_file(&dir, "lm.yaml", &lab_text("lm", 71, "up: true"));
    ok(nslab(&["up", s(&f2), "--sandbox", "--prefix", &p]));
    assert_eq!(tbf_rate(&a, "ea"), None);
    assert_eq!(tbf_rate(&b, "eb"), None);
    assert!(status_json(&lab).0);

    ok(nslab(&["down", "--lab", &lab]));
    assert_gone(&p, &lab);
    drop(g);
}

#[test]
fn delay_without_netem_exits_2_and_creates_nothing() {
    let has_netem = sh_status("modprobe -n sch_netem 2>/dev/null").0
        || std::path::Path::new("/sys/module/sch_netem").exists();
    if has_netem {
        eprintln!("this kernel has netem: the refusal is not testable here");
        return;
    }
    let p = prefix("20fd");
    let lab = format!("{p}ld");
    let _g = LabGuard::new(&lab, None);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir, "ld.yaml", &lab_text("ld", 72, "delay: 20ms"));
    let o = nslab(&["up", s(&f), "--sandbox", "--prefix", &p]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("sch_netem") && text(&o).contains("a:ea"),
        "{}",
        text(&o)
    );
    assert_gone(&p, &lab);
}
