// Random valid labs, shared by tests/crash_property.rs (root, real kernel) and
// the executor's property test on the fake kernel (src/apply/tests.rs), which
// `include!` this file.

/// A small deterministic generator (xorshift), so a failing seed can be rerun.
pub struct Rng(pub u64);
impl Rng {
    pub fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.step() % n
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// A valid lab: 1-4 nodes, 0-2 bridges, cables to bridges or between nodes,
/// sometimes IPv6, routes, forwarding and NAT. With `extras`, up to 5 nodes,
/// MTUs and routes through the cables between nodes too (the same seed gives
/// the same lab as without when `extras` is off).
pub fn random_lab_with(seed: u64, extras: bool) -> String {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let s = seed % 250;
    let nodes = 1 + r.below(if extras { 5 } else { 4 }) as usize;
    let bridges = r.below(3) as usize;
    let v6 = r.chance(30);
    let mut node_ifs: Vec<Vec<String>> = vec![Vec::new(); nodes];
    let mut links = Vec::new();
    let mut bridge_yaml = Vec::new();
    let mut nat = Vec::new();
    let mut routes: Vec<Vec<String>> = vec![Vec::new(); nodes];
    for b in 0..bridges {
        let addr = r.chance(70);
        bridge_yaml.push(if addr {
            format!("  b{b}: {{ address: 10.{s}.{b}.254/24 }}")
        } else {
            format!("  b{b}: {{}}")
        });
        if addr && r.chance(50) {
            nat.push(format!("  - {{ source: 10.{s}.{b}.0/24, not_out: b{b} }}"));
        }
        for (n, ifs) in node_ifs.iter_mut().enumerate() {
            if r.chance(60) {
                let a = format!("10.{s}.{b}.{}/24", n + 1);
                let six = if v6 {
                    format!(", \"fd{s:02x}:{b}::{}/64\"", n + 1)
                } else {
                    String::new()
                };
                let mtu = if extras && r.chance(20) { ", mtu: 1400" } else { "" };
                ifs.push(format!("e{b}: {{ addresses: [{a}{six}]{mtu} }}"));
                links.push(format!("  - [n{n}:e{b}, b{b}:p{n}x{b}]"));
                if addr && r.chance(40) && routes[n].is_empty() {
                    routes[n].push(format!("\"default via 10.{s}.{b}.254\""));
                }
            }
        }
    }
    // Cables between nodes.
    for n in 0..nodes {
        for m in n + 1..nodes {
            if r.chance(35) {
                let net = 100 + n * 10 + m;
                node_ifs[n].push(format!("c{m}: {{ address: 10.{s}.{net}.1/24 }}"));
                node_ifs[m].push(format!("c{n}: {{ address: 10.{s}.{net}.2/24 }}"));
                links.push(format!("  - [n{n}:c{m}, n{m}:c{n}]"));
                if extras && r.chance(30) {
                    routes[n].push(format!("\"10.{s}.{}.0/24 via 10.{s}.{net}.2\"", 200 + m));
                }
            }
        }
    }
    let mut y = format!("name: r{seed}\n");
    if !bridge_yaml.is_empty() {
        y.push_str(&format!("bridges:\n{}\n", bridge_yaml.join("\n")));
    }
    y.push_str("nodes:\n");
    for n in 0..nodes {
        y.push_str(&format!(
            "  n{n}:\n    interfaces: {{ {} }}\n",
            node_ifs[n].join(", ")
        ));
        if !routes[n].is_empty() {
            y.push_str(&format!("    routes: [{}]\n", routes[n].join(", ")));
        }
        if r.chance(30) {
            y.push_str("    forward: true\n");
        }
    }
    if !links.is_empty() {
        y.push_str(&format!("links:\n{}\n", links.join("\n")));
    }
    if !nat.is_empty() {
        y.push_str(&format!("nat:\n{}\n", nat.join("\n")));
    }
    y
}
