//! Link maps in `links:`: shaping values, per-end `egress`, `up: false`, and
//! every mistake with its line and field.

use super::*;

fn parse(text: &str) -> Result<Lab, TopologyError> {
    parse_str(text, "t.yaml", &Options::default())
}

const HEAD: &str = "name: x
bridges: { br0: {} }
nodes:
  a: { interfaces: { eth0: { address: 10.0.0.1/24 } } }
  b: { interfaces: { eth0: { address: 10.0.0.2/24 } } }
  c: { interfaces: { e: { address: 10.0.1.3/24 } } }
links:
  - [ c:e, br0:pc ]
";

/// HEAD with `link` as the second entry of `links:` (line 9).
fn with(link: &str) -> String {
    format!("{HEAD}  - {link}\n")
}

/// All issues: (line, field, message).
fn issues(link: &str) -> Vec<(u64, String, String)> {
    let e = parse(&with(link)).expect_err("the file should be refused");
    e.issues
        .iter()
        .map(|i| (i.line, i.field.clone(), i.message.clone()))
        .collect()
}

fn one(link: &str) -> (u64, String, String) {
    let v = issues(link);
    assert_eq!(v.len(), 1, "{v:?}");
    v[0].clone()
}

#[test]
fn a_map_shapes_both_ends_egress() {
    let l = parse(&with(
        "{ ends: [a:eth0, b:eth0], rate: 10mbit, loss: 1%, limit: 100 }",
    ))
    .unwrap();
    let link = &l.links[1];
    assert!(link.up);
    assert_eq!(link.shapes.len(), 2);
    let (sa, sb) = (&link.shapes[0], &link.shapes[1]);
    assert_eq!((sa.endpoint.as_str(), sa.place.as_str()), ("a:eth0", "a"));
    assert_eq!(
        (sb.endpoint.as_str(), sb.ifname.as_str()),
        ("b:eth0", "eth0")
    );
    for s in [sa, sb] {
        assert_eq!(
            (s.rate, s.loss, s.limit, s.delay_us),
            (Some(10_000_000), Some(100), Some(100), None)
        );
    }
    assert_eq!(l.file_shapes().len(), 2);
    assert!(l.file_down_ends().is_empty());
    // The list form stays valid and unshaped.
    assert!(l.links[0].shapes.is_empty() && l.links[0].up);
}

#[test]
fn egress_shapes_one_end_over_the_links_values() {
    let l = parse(&with(
        "{ ends: [a:eth0, br0:pb], rate: 1mbit, egress: { \"br0:pb\": { loss: 20% } } }",
    ))
    .unwrap_err();
    // a bridge port needs a node on the other end: b's eth0 is unplugged.
    assert!(l.to_string().contains("eth0"), "{l}");
    let text = format!(
        "{HEAD}  - {{ ends: [a:eth0, b:eth0], rate: 1mbit, egress: {{ \"b:eth0\": {{ loss: 20%, rate: 2mbit }} }} }}\n"
    );
    let l = parse(&text).unwrap();
    let s = &l.links[1].shapes;
    assert_eq!((s[0].rate, s[0].loss), (Some(1_000_000), None));
    assert_eq!((s[1].rate, s[1].loss), (Some(2_000_000), Some(2000)));
    // Only one end shaped: one shaping.
    let l = parse(&with(
        "{ ends: [a:eth0, b:eth0], egress: { \"a:eth0\": { loss: 1% } } }",
    ))
    .unwrap();
    assert_eq!(l.links[1].shapes.len(), 1);
    assert_eq!(l.links[1].shapes[0].endpoint, "a:eth0");
}

#[test]
fn up_false_is_kept_and_block_maps_work() {
    let text = format!(
        "{HEAD}  - ends: [a:eth0, b:eth0]\n    up: false\n    delay: 20ms\n    jitter: 2ms\n"
    );
    let l = parse(&text).unwrap();
    assert!(!l.links[1].up);
    let downs: Vec<String> = l.file_down_ends().iter().map(|e| e.to_string()).collect();
    assert_eq!(downs, ["a:eth0", "b:eth0"]);
    // Validation takes delay (the kernel's netem is checked by `up`).
    assert_eq!(l.links[1].shapes[0].delay_us, Some(20_000));
    assert_eq!(l.links[1].shapes[0].jitter_us, Some(2_000));
}

#[test]
fn bad_values_name_line_and_field() {
    let (line, field, msg) = one("{ ends: [a:eth0, b:eth0], rate: 10mbps }");
    assert_eq!((line, field.as_str()), (9, "links[1].rate"));
    assert!(msg.contains("ambiguous"), "{msg}");
    let (line, field, msg) = one("{ ends: [a:eth0, b:eth0], loss: 5 }");
    assert_eq!((line, field.as_str()), (9, "links[1].loss"));
    assert!(msg.contains('%'), "{msg}");
    let (_, field, _) = one("{ ends: [a:eth0, b:eth0], delay: 20 }");
    assert_eq!(field, "links[1].delay");
    let (_, field, msg) = one("{ ends: [a:eth0, b:eth0], rate: true }");
    assert_eq!(field, "links[1].rate");
    assert!(msg.contains("not a shaping value"), "{msg}");
    let (_, field, _) = one("{ ends: [a:eth0, b:eth0], rate: 1mbit, limit: 0 }");
    assert_eq!(field, "links[1].limit");
    let (line, field, msg) =
        one("{ ends: [a:eth0, b:eth0], egress: { \"a:eth0\": { loss: 120% } } }");
    assert_eq!(
        (line, field.as_str()),
        (9, "links[1].egress.\"a:eth0\".loss")
    );
    assert!(msg.contains("100%"), "{msg}");
}

#[test]
fn unknown_keys_and_foreign_egress_ends_are_errors() {
    let (line, field, msg) = one("{ ends: [a:eth0, b:eth0], rtae: 10mbit }");
    assert_eq!((line, field.as_str()), (9, "links[1].rtae"));
    assert!(msg.contains("unknown key") && msg.contains("rate"), "{msg}");
    let (_, field, msg) = one("{ ends: [a:eth0, b:eth0], egress: { \"c:e\": { loss: 1% } } }");
    assert_eq!(field, "links[1].egress.\"c:e\"");
    assert!(msg.contains("not one of this link's ends"), "{msg}");
    let (_, field, _) = one("{ ends: [a:eth0, b:eth0], egress: { \"a:eth0\": { up: false } } }");
    assert_eq!(field, "links[1].egress.\"a:eth0\".up");
    // In block style the line is the key's own.
    let text = format!("{HEAD}  - ends: [a:eth0, b:eth0]\n    rate: 1mbit\n    colour: red\n");
    let e = parse(&text).unwrap_err();
    assert_eq!(
        (e.issues[0].line, e.issues[0].field.as_str()),
        (11, "links[1].colour")
    );
}

#[test]
fn combinations_and_shapes_are_checked() {
    let (_, field, msg) = one("{ ends: [a:eth0, b:eth0], jitter: 2ms }");
    assert_eq!(field, "links[1]");
    assert!(msg.contains("a:eth0") && msg.contains("delay"), "{msg}");
    assert!(!msg.contains("--"), "{msg}");
    // (a's and b's interfaces are then unplugged: issues of their own.)
    let of_link = |link: &str| {
        issues(link)
            .into_iter()
            .find(|i| i.1.starts_with("links"))
            .expect("an issue of the link")
    };
    let (line, field, msg) = of_link("{ rate: 1mbit }");
    assert_eq!((line, field.as_str()), (9, "links[1]"));
    assert!(msg.contains("ends"), "{msg}");
    let (_, field, msg) = of_link("{ ends: [a:eth0], rate: 1mbit }");
    assert_eq!(field, "links[1]");
    assert!(msg.contains("two ends"), "{msg}");
    // `up` is a boolean, not text.
    let e = parse(&with("{ ends: [a:eth0, b:eth0], up: \"no\" }")).unwrap_err();
    assert_eq!(e.issues[0].line, 9);
    assert!(e.to_string().contains("boolean"), "{e}");
    // A scalar is no link at all.
    let e = parse(&with("a:eth0")).unwrap_err();
    assert!(e.to_string().contains("cable"), "{e}");
}
