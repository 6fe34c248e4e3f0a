//! Render ops as the iproute2 / shell commands a person would type for them, so a
//! plan reads like the tutorial (`nslab plan --explain`).

use super::{Ns, Op, VEnd};
use crate::util::shell_quote;
use ipnet::IpNet;

fn ip(ns: &Ns) -> String {
    if ns.is_host() {
        "ip".into()
    } else {
        format!("ip -n {ns}")
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The commands for one op, in order.
pub fn commands(op: &Op) -> Vec<String> {
    let q = shell_quote;
    match op {
        Op::CreateNs { ns, sysctls, mark } => {
            let mut v = vec![
                format!("ip netns add {ns}"),
                format!("ip -n {ns} link set lo alias {} up", q(mark)),
            ];
            v.extend(
                sysctls
                    .iter()
                    .map(|(k, val)| format!("ip netns exec {ns} sysctl -qw {k}={val}")),
            );
            v
        }
        Op::DeleteNs { ns } => vec![format!("ip netns del {ns}")],
        Op::Sysctl { ns, key, value } => {
            // A vector value (`1024 2048`) is one argument to sysctl.
            let kv = shell_quote(&format!("{key}={value}"));
            vec![if ns.is_host() {
                format!("sysctl -qw {kv}")
            } else {
                format!("ip netns exec {ns} sysctl -qw {kv}")
            }]
        }
        Op::CreateBridge {
            ns,
            name,
            mac: m,
            mtu,
        } => {
            let mtu = mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
            vec![format!(
                "{} link add {name} address {}{mtu} type bridge",
                ip(ns),
                mac(m)
            )]
        }
        Op::SetBridgeStp { ns, name, stp } => vec![match stp {
            Some(s) => format!(
                "{} link set {name} type bridge stp_state 1 forward_delay {} max_age {}",
                ip(ns),
                s.forward_delay,
                s.max_age
            ),
            None => format!("{} link set {name} type bridge stp_state 0", ip(ns)),
        }],
        Op::CreateVeth { a, b } => vec![veth(a, b)],
        Op::CreateVxlan { ns, into, vxlan: v } => {
            let netns = into
                .name()
                .filter(|_| into != ns)
                .map(|n| format!(" netns {n}"))
                .unwrap_or_default();
            let remote = v.remote.map(|r| format!(" remote {r}")).unwrap_or_default();
            vec![format!(
                "{} link add {}{netns} address {} mtu {} type vxlan id {} local {}{remote} dstport {} nolearning",
                ip(ns),
                v.name,
                mac(&v.mac),
                v.mtu,
                v.vni,
                v.local,
                v.port
            )]
        }
        Op::AddFdb { ns, dev, dst } => vec![format!(
            "{}bridge fdb append 00:00:00:00:00:00 dev {dev} dst {dst}",
            ns.name()
                .map(|n| format!("ip netns exec {n} "))
                .unwrap_or_default()
        )],
        Op::DeleteLink { ns, name } => vec![format!("{} link del {name}", ip(ns))],
        Op::SetLink {
            ns,
            name,
            no_link_local,
            master,
            mtu,
            mac: new_mac,
            alias,
            up,
            down,
        } => {
            let mut v = Vec::new();
            if *no_link_local {
                v.push(format!("{} link set {name} addrgenmode none", ip(ns)));
            }
            let mut s = link_set_args(master, mtu, new_mac, alias, *up);
            if *down {
                s.push_str(" down");
            }
            if !s.is_empty() {
                v.push(format!("{} link set {name}{s}", ip(ns)));
            }
            v
        }
        Op::AddAddr { ns, dev, addr } => {
            let extra = match addr {
                IpNet::V4(n) if n.prefix_len() < 31 => " broadcast +".to_string(),
                IpNet::V6(_) => " nodad".to_string(),
                _ => String::new(),
            };
            vec![format!("{} addr add {addr}{extra} dev {dev}", ip(ns))]
        }
        Op::DelAddr { ns, dev, addr } => vec![format!("{} addr del {addr} dev {dev}", ip(ns))],
        Op::AddRoute { ns, route } => vec![format!("{} route add {route} proto static", ip(ns))],
        Op::DelRoute { ns, route } => vec![format!("{} route del {route}", ip(ns))],
        Op::WriteLabHosts { path, content } | Op::WriteLabResolv { path, content } => {
            write_file(path, content)
        }
        Op::LinkHosts { ns, target } => vec![
            format!("mkdir -p /etc/netns/{ns}"),
            format!("ln -sfn {target} /etc/netns/{ns}/hosts"),
        ],
        Op::RemoveEtc { ns } => vec![format!("rm -rf /etc/netns/{ns}")],
        Op::LinkResolv { ns, target } => vec![
            format!("mkdir -p /etc/netns/{ns}"),
            format!("ln -sfn {target} /etc/netns/{ns}/resolv.conf"),
        ],
        Op::SetNat { ns, table, rules } => set_nat(ns, table, rules),
        Op::DeleteNat { ns, table } => {
            let c = super::nft_text::explain_delete_table(table);
            vec![if ns.is_host() {
                c
            } else {
                format!("ip netns exec {ns} {c}")
            }]
        }
    }
}

/// `ip link add` for a veth pair, its far end perhaps in another namespace.
fn veth(a: &VEnd, b: &VEnd) -> String {
    let mut s = format!("{} link add {}", ip(&a.ns), a.name);
    if let Some(m) = &a.master {
        s.push_str(&format!(" master {m}"));
    }
    if let Some(m) = a.mtu {
        s.push_str(&format!(" mtu {m}"));
    }
    if let Some(m) = &a.mac {
        s.push_str(&format!(" address {}", mac(m)));
    }
    s.push_str(&format!(" type veth peer name {}", b.name));
    if b.ns != a.ns {
        s.push_str(&format!(
            " netns {}",
            if b.ns.is_host() {
                "1".to_string()
            } else {
                b.ns.to_string()
            }
        ));
    }
    if let Some(m) = b.mtu {
        s.push_str(&format!(" mtu {m}"));
    }
    if let Some(m) = &b.mac {
        s.push_str(&format!(" address {}", mac(m)));
    }
    s
}

/// The arguments of `ip link set NAME...` (empty when there is nothing to set).
fn link_set_args(
    master: &Option<String>,
    mtu: &Option<u32>,
    new_mac: &Option<[u8; 6]>,
    alias: &Option<String>,
    up: bool,
) -> String {
    let mut s = String::new();
    if let Some(m) = master {
        s.push_str(&format!(" master {m}"));
    }
    if let Some(m) = mtu {
        s.push_str(&format!(" mtu {m}"));
    }
    if let Some(m) = new_mac {
        s.push_str(&format!(" address {}", mac(m)));
    }
    if let Some(a) = alias {
        s.push_str(&format!(" alias {}", shell_quote(a)));
    }
    if up {
        s.push_str(" up");
    }
    s
}

/// Write a lab file (hosts, resolv.conf) line by line.
fn write_file(path: &str, content: &str) -> Vec<String> {
    let lines: Vec<String> = content.lines().map(shell_quote).collect();
    let dir = std::path::Path::new(path)
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| ".".into());
    vec![
        format!("mkdir -p {dir}"),
        format!("printf '%s\\n' {} > {path}", lines.join(" ")),
    ]
}

/// The nft commands that write the lab's NAT table, run in its namespace.
fn set_nat(ns: &Ns, table: &str, rules: &[crate::topology::Nat]) -> Vec<String> {
    let rules: Vec<_> = rules
        .iter()
        .map(crate::model::nat::Masquerade::from)
        .collect();
    let mark = crate::topology::mark_for(table.strip_prefix("nslab-").unwrap_or(table));
    let cmds = super::nft_text::explain_nat_table(table, &mark, &rules);
    cmds.into_iter()
        .map(|c| {
            if ns.is_host() {
                c
            } else {
                format!("ip netns exec {ns} {c}")
            }
        })
        .collect()
}

/// The whole plan as a shell script body.
pub fn script(ops: &[Op]) -> Vec<String> {
    ops.iter().flat_map(commands).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::VxlanSpec;

    /// A cable's VXLAN (unicast remote, into a node) and a bridge port's (no
    /// remote, stays in the host): their display, commands and JSON are pinned,
    /// since `plan --json` and `up --json` print ops.
    #[test]
    fn vxlan_op_renders() {
        let cable = Op::CreateVxlan {
            ns: Ns::HOST,
            into: Ns::from("dd-a"),
            vxlan: VxlanSpec {
                name: "vx-a".into(),
                vni: 4097,
                local: "10.9.0.1".parse().unwrap(),
                remote: Some("10.9.0.2".parse().unwrap()),
                port: 4789,
                mtu: 1450,
                mac: [2, 0, 0, 0, 0, 1],
            },
        };
        let port = Op::CreateVxlan {
            ns: Ns::HOST,
            into: Ns::HOST,
            vxlan: VxlanSpec {
                name: "vx-br".into(),
                vni: 7,
                local: "fd00::1".parse().unwrap(),
                remote: None,
                port: 4789,
                mtu: 1430,
                mac: [2, 0, 0, 0, 0, 2],
            },
        };
        assert_eq!(
            cable.to_string(),
            "create VXLAN vx-a (vni 4097, udp 4789, local 10.9.0.1, remote 10.9.0.2) from the host into dd-a"
        );
        assert_eq!(
            port.to_string(),
            "create VXLAN vx-br (vni 7, udp 4789, local fd00::1) from the host"
        );
        assert_eq!(
            commands(&cable),
            [
                "ip link add vx-a netns dd-a address 02:00:00:00:00:01 mtu 1450 type vxlan id 4097 local 10.9.0.1 remote 10.9.0.2 dstport 4789 nolearning"
            ]
        );
        assert_eq!(
            commands(&port),
            [
                "ip link add vx-br address 02:00:00:00:00:02 mtu 1430 type vxlan id 7 local fd00::1 dstport 4789 nolearning"
            ]
        );
        assert_eq!(
            serde_json::to_string(&cable).unwrap(),
            r#"{"op":"create_vxlan","ns":"","into":"dd-a","name":"vx-a","vni":4097,"local":"10.9.0.1","remote":"10.9.0.2","port":4789,"mtu":1450,"mac":[2,0,0,0,0,1]}"#
        );
        assert_eq!(
            serde_json::to_string(&port).unwrap(),
            r#"{"op":"create_vxlan","ns":"","into":"","name":"vx-br","vni":7,"local":"fd00::1","port":4789,"mtu":1430,"mac":[2,0,0,0,0,2]}"#
        );
    }
}
