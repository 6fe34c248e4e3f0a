//! Groups of nodes: one grammar for expectations (`reach: all -> all`),
//! `nslab partition` and `nslab check --from/--to`.
//!
//! - `all`: every node of the lab (not `host`, not `internet`; `check --from/--to`
//!   keep their older meaning, every place of the matrix, see [`Members::Places`])
//! - `a`, `a,b`, `[a, b, c]`: the nodes named
//! - `@br0`: the nodes cabled to bridge `br0`
//!
//! Words combine (`[@br0, lone]`); a node named twice counts once. Pure: no
//! kernel, no probes.

use super::model::{Lab, Place};

/// What a group may hold besides nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    /// Nodes only (`nslab partition`): `host` and `internet` are refused.
    Nodes,
    /// Nodes, and `host` / `internet` when named (expectations); `all` is
    /// the nodes.
    NodesOrNamed,
    /// Every place of the check matrix (`check --from/--to`): `all` is
    /// `host`, the `internet` (sandboxed labs) and every node.
    Places,
}

/// Is `s` a group rather than one place: `all`, a list (`[...]` or with a
/// comma) or `@BRIDGE`?
pub fn is_group(s: &str) -> bool {
    let s = s.trim();
    s == "all" || s.starts_with('[') || s.starts_with('@') || s.contains(',')
}

/// The names a group holds, in order, each once; or what is wrong with it
/// (naming the word).
pub fn parse(lab: &Lab, sel: &str, members: Members) -> Result<Vec<String>, String> {
    let sel = sel.trim();
    let inner = match (sel.strip_prefix('['), sel.strip_suffix(']')) {
        (Some(_), Some(_)) => &sel[1..sel.len() - 1],
        (Some(_), None) => return Err(format!("{sel:?}: a list `[` needs its closing `]`")),
        (None, Some(_)) => return Err(format!("{sel:?}: a `]` without its opening `[`")),
        (None, None) => sel,
    };
    let mut out: Vec<String> = Vec::new();
    for w in inner.split(',').map(str::trim) {
        if w.is_empty() {
            if inner.trim().is_empty() {
                break;
            }
            return Err(format!("{sel:?}: an empty name between commas"));
        }
        out.extend(word(lab, w, members)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|n| seen.insert(n.clone()));
    if out.is_empty() {
        return Err(format!("{sel:?} names no node of the lab"));
    }
    Ok(out)
}

fn word(lab: &Lab, w: &str, members: Members) -> Result<Vec<String>, String> {
    let nodes = || lab.nodes.iter().map(|n| n.name.clone());
    let places = members != Members::Nodes;
    match w {
        "all" if members == Members::Places => {
            let mut v = vec!["host".to_string()];
            if lab.sandbox {
                v.push("internet".into());
            }
            v.extend(nodes());
            Ok(v)
        }
        "all" => Ok(nodes().collect()),
        "host" if places => Ok(vec![w.into()]),
        // The emulated internet exists only in a sandboxed lab; an
        // expectation naming it in host mode is skipped, the matrix has none.
        "internet" if members == Members::NodesOrNamed || lab.sandbox && places => {
            Ok(vec![w.into()])
        }
        "host" | "internet" if !places => Err(format!(
            "{w:?} is not a node; a group here holds nodes only (`all`, `[a, b]`, `a,b`, `@BRIDGE`)"
        )),
        _ if w.starts_with('@') => {
            let b = &w[1..];
            if lab.bridge(b).is_none() {
                return Err(format!("{b:?} is not a bridge of the lab (in {w:?})"));
            }
            Ok(on_bridge(lab, b))
        }
        n if lab.node(n).is_some() => Ok(vec![n.into()]),
        _ => Err(format!(
            "{w:?} is not a node, {}`all` or @BRIDGE of the lab",
            if places { "`host`, `internet`, " } else { "" }
        )),
    }
}

/// The nodes cabled to bridge `b`, in the order of the links.
pub fn on_bridge(lab: &Lab, b: &str) -> Vec<String> {
    let mut v = Vec::new();
    for l in &lab.links {
        for (x, y) in [(&l.a, &l.b), (&l.b, &l.a)] {
            if x.bridge.as_deref() == Some(b)
                && y.bridge.is_none()
                && let Place::Node(n) = &y.place
                && !v.contains(n)
            {
                v.push(n.clone());
            }
        }
    }
    v
}

/// The (source, destination) pairs of two groups, without a member paired
/// with itself.
pub fn pairs(src: &[String], dst: &[String]) -> Vec<(String, String)> {
    src.iter()
        .flat_map(|s| dst.iter().map(move |d| (s.clone(), d.clone())))
        .filter(|(s, d)| s != d)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(sandbox: bool) -> Lab {
        let mut y = String::from(
            "name: g\nbridges:\n  br0: { address: 10.9.0.254/24 }\n  br1: {}\nnodes:\n",
        );
        for i in 1..=4 {
            y.push_str(&format!(
                "  n{i}: {{ interfaces: {{ e: {{ address: 10.9.0.{i}/24 }} }} }}\n"
            ));
        }
        y.push_str("  lone: { interfaces: { x: { address: 10.8.0.1/24 } } }\n  mate: {}\nlinks:\n  - [ lone:x, mate:x ]\n");
        for i in 1..=3 {
            y.push_str(&format!("  - [ n{i}:e, br0:p{i} ]\n"));
        }
        y.push_str("  - [ n4:e, br1:p4 ]\n");
        let o = crate::topology::Options {
            sandbox,
            ..Default::default()
        };
        crate::topology::parse_str(&y, "g.yaml", &o).expect("valid")
    }

    #[test]
    fn all_is_every_node_and_only_nodes() {
        let l = lab(true);
        let all = parse(&l, "all", Members::Nodes).unwrap();
        assert_eq!(all, ["n1", "n2", "n3", "n4", "lone", "mate"]);
        assert_eq!(parse(&l, "all", Members::NodesOrNamed).unwrap(), all);
        // The matrix's `all` (check --from/--to) keeps host and internet.
        let p = parse(&l, "all", Members::Places).unwrap();
        assert_eq!(&p[..2], ["host", "internet"]);
        assert_eq!(&p[2..], &all[..]);
        assert_eq!(parse(&lab(false), "all", Members::Places).unwrap()[1], "n1");
    }

    #[test]
    fn lists_bridges_and_their_mixes() {
        let l = lab(false);
        assert_eq!(parse(&l, "n2,n1", Members::Nodes).unwrap(), ["n2", "n1"]);
        assert_eq!(
            parse(&l, "[ n3, lone ]", Members::Nodes).unwrap(),
            ["n3", "lone"]
        );
        assert_eq!(
            parse(&l, "@br0", Members::Nodes).unwrap(),
            ["n1", "n2", "n3"]
        );
        assert_eq!(parse(&l, "@br1", Members::Nodes).unwrap(), ["n4"]);
        // A node named twice counts once.
        assert_eq!(
            parse(&l, "[@br0, n1, lone]", Members::Nodes).unwrap(),
            ["n1", "n2", "n3", "lone"]
        );
        assert_eq!(
            parse(&l, "[host, n1]", Members::NodesOrNamed).unwrap(),
            ["host", "n1"]
        );
        assert!(is_group("all") && is_group("[a]") && is_group("a,b") && is_group("@br0"));
        assert!(!is_group("a") && !is_group("a:80") && !is_group("host"));
    }

    #[test]
    fn bad_groups_name_the_word() {
        let l = lab(false);
        for (sel, m, want) in [
            ("[n1, nope]", Members::Nodes, "\"nope\" is not a node"),
            ("@br9", Members::Nodes, "\"br9\" is not a bridge"),
            ("@n1", Members::NodesOrNamed, "\"n1\" is not a bridge"),
            ("host", Members::Nodes, "\"host\" is not a node"),
            (
                "[n1, internet]",
                Members::Nodes,
                "\"internet\" is not a node",
            ),
            // No internet in host mode for the matrix.
            ("internet", Members::Places, "\"internet\" is not a node"),
            ("[]", Members::Nodes, "names no node"),
            ("[n1,,n2]", Members::Nodes, "empty name"),
            ("[n1, n2", Members::Nodes, "closing `]`"),
            ("n1]", Members::Nodes, "opening `[`"),
        ] {
            let e = parse(&l, sel, m).unwrap_err();
            assert!(e.contains(want), "{sel}: {e}");
        }
        // A sandboxed lab's matrix has an internet.
        assert_eq!(
            parse(&lab(true), "internet", Members::Places).unwrap(),
            ["internet"]
        );
    }

    #[test]
    fn pairs_skip_a_node_with_itself() {
        let g = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            pairs(&g("a,b"), &g("b,c")),
            [
                ("a".into(), "b".into()),
                ("a".into(), "c".into()),
                ("b".into(), "c".into())
            ]
        );
        assert_eq!(pairs(&g("a,b,c"), &g("a,b,c")).len(), 6);
    }
}
