//! A lab with expectations, one of them wrong on purpose: the check says which
//! failed and why.
//!
//! Run as root: `cargo run --example check`. The lab is sandboxed (prefix
//! `exc-`) and taken down at the end.

use nslab::{Lab, Options, Topology};

fn main() -> nslab::Result<()> {
    let topo = Topology::from_yaml(
        "
name: chk
nodes:
  a:
    interfaces: { eth0: { address: 10.82.1.2/24 } }
    routes: [ default via 10.82.1.1 ]
  r:
    interfaces:
      left: { address: 10.82.1.1/24 }
      right: { address: 10.82.2.1/24 }
    forward: true
  b:
    interfaces: { eth0: { address: 10.82.2.2/24 } }
    # no route back to a: a's packets arrive, b's replies have nowhere to go
links:
  - [ a:eth0, r:left ]
  - [ r:right, b:eth0 ]
expect:
  - reach: a -> r
  - reach: r -> b
  - name: deliberate failure (b has no route to 10.82.1.0/24)
    reach: a -> b
",
    );
    let opts = Options {
        prefix: "exc-".into(),
        sandbox: true,
        state_dir: std::env::var_os("NSLAB_STATE_DIR").map(Into::into),
        ..Options::default()
    };
    let lab = Lab::up(&topo, &opts)?;
    let report = lab.check()?;
    for e in &report.expectations {
        println!(
            "{} {}: {}",
            if e.ok { "ok  " } else { "FAIL" },
            e.name,
            e.detail
        );
    }
    lab.down()?;
    // The example succeeds when the check caught exactly the deliberate failure.
    let failed: Vec<_> = report.expectations.iter().filter(|e| !e.ok).collect();
    if report.ok || failed.len() != 1 || !failed[0].name.starts_with("deliberate") {
        return Err(nslab::Error::Failed(
            "the check did not catch exactly the deliberate failure".into(),
        ));
    }
    println!("the check caught the deliberate failure");
    Ok(())
}
