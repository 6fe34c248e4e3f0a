//! The JSON Schema of the topology file: the committed copy is what the types
//! give, the repository's lab files pass it, and structural mistakes fail it.

use super::raw::schema;
use std::path::Path;

const COMMITTED: &str = include_str!("../../schema/nslab.schema.json");

pub(super) fn validator() -> jsonschema::Validator {
    let s: serde_json::Value = serde_json::from_str(&schema()).expect("schema is JSON");
    jsonschema::validator_for(&s).expect("a valid JSON Schema")
}

/// The YAML text as JSON, as an editor's YAML language server sees it.
pub(super) fn as_json(yaml: &str) -> serde_json::Value {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"))
}

pub(super) fn errors(v: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    v.iter_errors(&as_json(yaml))
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn the_committed_schema_is_what_the_types_give() {
    assert!(
        COMMITTED == schema(),
        "schema/nslab.schema.json is stale: run `cargo run -- schema > schema/nslab.schema.json`"
    );
}

#[test]
fn the_repositorys_lab_files_pass_the_schema() {
    let v = validator();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["examples", "tests/data"] {
        for e in std::fs::read_dir(root.join(dir)).expect(dir) {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let text = std::fs::read_to_string(&p).expect("read");
                let errs = errors(&v, &text);
                assert!(errs.is_empty(), "{}: {errs:?}", p.display());
                // And nslab itself takes them (the schema is not looser than a
                // lab that parses, nor stricter).
                super::parse_str(&text, &p.display().to_string(), &Default::default())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                seen += 1;
            }
        }
    }
    assert!(seen >= 5, "only {seen} lab files found");
}

const GOOD: &str = "name: x\nnodes:\n  red:\n    forward: true\n    routes: [ \"default dev e0\" ]\n    run: [ \"sleep 1\" ]\n    interfaces:\n      e0: { address: 10.0.0.1/24, mtu: 1400, mac: \"02:00:00:00:00:01\" }\n  green:\n    interfaces:\n      e1: { addresses: [10.0.0.2/24, \"fd00::2/64\"] }\nbridges:\n  br0: { address: 10.1.0.1/24 }\nlinks:\n  - [ red:e0, green:e1 ]\nnat:\n  - { source: 10.0.0.0/8, not_out: br0 }\nipv6_link_local: true\nexpect:\n  - reach: red -> green\n    family: 6\n    size: 1000\n  - http: red -> http://green:80/\n    status: 200\n  - tcp: red -> green:22\n";

// `forward: yes` is left out: serde-saphyr reads `yes` as true into an untyped
// value (YAML 1.1), editors' YAML 1.2 servers as a string; nslab's parser
// refuses it (tests.rs).
#[test]
fn structural_mistakes_fail_the_schema() {
    let v = validator();
    assert_eq!(errors(&v, GOOD), Vec::<String>::new());
    for (from, to) in [
        ("    routes:", "    rutes:"),
        ("name: x\n", "name: x\nnodez: {}\n"),
        ("mtu: 1400", "mtu: \"1500\""),
        ("mtu: 1400", "mtu: 1500.5"),
        ("mtu: 1400", "mtu: -1"),
        ("forward: true", "forward: \"true\""),
        ("forward: true", "forward: 1"),
        ("ipv6_link_local: true", "ipv6_link_local: \"true\""),
        ("status: 200", "status: \"200\""),
        ("family: 6", "family: 5"),
        ("size: 1000", "size: big"),
        ("[ red:e0, green:e1 ]", "[ red:e0, green:e1, br0:p1 ]"),
        ("[ red:e0, green:e1 ]", "[ red:e0 ]"),
        (
            "[ red:e0, green:e1 ]",
            "{ ends: [ red:e0, green:e1 ], rtae: 10mbit }",
        ),
        ("[ red:e0, green:e1 ]", "{ rate: 10mbit }"),
        (
            "[ red:e0, green:e1 ]",
            "{ ends: [ red:e0, green:e1 ], egress: { \"red:e0\": { lost: 1% } } }",
        ),
        (
            "[ red:e0, green:e1 ]",
            "{ ends: [ red:e0, green:e1 ], up: \"false\" }",
        ),
        (
            "routes: [ \"default dev e0\" ]",
            "routes: \"default dev e0\"",
        ),
        ("{ source: 10.0.0.0/8, not_out: br0 }", "{ not_out: br0 }"),
        (
            "  - tcp: red -> green:22\n",
            "  - tcp: red -> green:22\n    port: 22\n",
        ),
    ] {
        let bad = GOOD.replacen(from, to, 1);
        assert_ne!(bad, GOOD, "{from} not in the good lab");
        assert!(!errors(&v, &bad).is_empty(), "the schema took {to}");
        // nslab's parser refuses each of them too.
        assert!(
            super::parse_str(&bad, "t.yaml", &Default::default()).is_err(),
            "nslab took {to}"
        );
    }
}

#[test]
fn link_maps_pass_the_schema() {
    let v = validator();
    for map in [
        "{ ends: [ red:e0, green:e1 ], rate: 10mbit, loss: 1%, limit: 100, up: false }",
        "{ ends: [ red:e0, green:e1 ], egress: { \"red:e0\": { loss: 1%, rate: 1mbit } } }",
    ] {
        // (GOOD's IPv6 reach has no IPv6 source: nslab refuses that part.)
        let good =
            GOOD.replacen("[ red:e0, green:e1 ]", map, 1)
                .replacen("family: 6", "family: 4", 1);
        assert_eq!(errors(&v, &good), Vec::<String>::new(), "{map}");
        super::parse_str(&good, "t.yaml", &Default::default())
            .unwrap_or_else(|e| panic!("{map}: {e}"));
    }
}
