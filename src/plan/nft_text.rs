//! The `nft` commands a person would type for a lab's NAT table, for
//! `plan --explain` (the kernel side, which builds the same table over netlink,
//! is the kernel layer's nft module; the rules are `crate::model::nat`).

use crate::model::nat::{Masquerade, NAT_CHAIN, OutMatch};

/// Quote a word for a POSIX shell, only when needed.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b'@' | b'%' | b'+' | b'=' | b',' | b':'
                )
        })
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An interface name as an `nft` string on a shell command line. `"bri0"` reaches nft
/// as the bare word bri0, which nft takes as a string; words that are nft keywords
/// (`bridge`, `counter`) or start with a digit are not, so those keep their double
/// quotes inside single ones.
fn nft_ifname_arg(ifname: &str) -> String {
    let bytes = ifname.as_bytes();
    let bare_ok = bytes.first().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.last().is_some_and(|b| b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if bare_ok {
        format!("\"{ifname}\"")
    } else {
        format!("'\"{ifname}\"'")
    }
}

/// The rule part after the chain name, shell-quoted.
fn explain_rule(rule: &Masquerade) -> String {
    let mut words = Vec::new();
    words.push(rule.source_words());
    match &rule.out {
        OutMatch::Any => {}
        OutMatch::Out(ifname) => words.push(format!("oifname {}", nft_ifname_arg(ifname))),
        OutMatch::NotOut(ifname) => words.push(format!("oifname != {}", nft_ifname_arg(ifname))),
    }
    words.push("masquerade".to_string());
    words.join(" ")
}

/// The `nft` commands a person would type to build the same table as
/// the kernel layer's `NftSocket::create_nat_table`. Table names must be nft identifiers (letters,
/// digits, `-_./`, not starting with a digit, not an nft keyword) for the commands
/// to parse; interface names and marks are quoted as nft needs.
pub fn explain_nat_table(name: &str, mark: &str, rules: &[Masquerade]) -> Vec<String> {
    let table = shell_word(name);
    let mut out = vec![
        format!("nft add table inet {table} '{{ comment \"{mark}\"; }}'"),
        format!(
            "nft add chain inet {table} {NAT_CHAIN} '{{ type nat hook postrouting priority srcnat; policy accept; }}'"
        ),
    ];
    out.extend(
        rules
            .iter()
            .map(|r| format!("nft add rule inet {table} {NAT_CHAIN} {}", explain_rule(r))),
    );
    out
}

/// The `nft` command that deletes the table.
pub fn explain_delete_table(name: &str) -> String {
    format!("nft delete table inet {}", shell_word(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::nat::tests::{masq, tutorial_rule};

    #[test]
    fn explain_renders_the_tutorial_table() {
        let lines = explain_nat_table("nslab-test", "nslab:owner=objective3", &[tutorial_rule()]);
        assert_eq!(
            lines,
            vec![
                "nft add table inet nslab-test '{ comment \"nslab:owner=objective3\"; }'",
                "nft add chain inet nslab-test postrouting '{ type nat hook postrouting priority srcnat; policy accept; }'",
                "nft add rule inet nslab-test postrouting ip saddr 192.168.0.0/16 oifname != \"bri0\" masquerade",
            ]
        );
        assert_eq!(
            explain_delete_table("nslab-test"),
            "nft delete table inet nslab-test"
        );
    }

    #[test]
    fn explain_quotes_what_nft_would_misread() {
        let rules = [
            masq("0.0.0.0/0", OutMatch::Any),
            masq("10.1.2.3/32", OutMatch::Out("bridge".into())),
            masq("10.0.0.0/8", OutMatch::NotOut("1abc".into())),
            masq("10.0.0.0/8", OutMatch::Out("veth-a1".into())),
        ];
        let lines = explain_nat_table("t", "m", &rules);
        assert_eq!(
            lines[2],
            "nft add rule inet t postrouting meta nfproto ipv4 masquerade"
        );
        assert_eq!(
            lines[3],
            "nft add rule inet t postrouting ip saddr 10.1.2.3/32 oifname '\"bridge\"' masquerade"
        );
        assert_eq!(
            lines[4],
            "nft add rule inet t postrouting ip saddr 10.0.0.0/8 oifname != '\"1abc\"' masquerade"
        );
        assert_eq!(
            lines[5],
            "nft add rule inet t postrouting ip saddr 10.0.0.0/8 oifname \"veth-a1\" masquerade"
        );
    }
}
