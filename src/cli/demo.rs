use super::print_json;
use nslab::error::Result;

/// Run the tutorial end to end in sandboxes (start here).
///
/// The tutorial, end to end, in sandboxes: two namespaces and a cable (objective
/// 1), three on a bridge (objective 2), and NAT to an emulated internet (objective
/// 3), narrated step by step with real pings, HTTP, a capture on the bridge port,
/// `identify`, and NAT absent then present. The real host network is never
/// touched, and nothing is left behind, also when interrupted with Ctrl-C.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Prefix of the demo's labs and namespaces (two demos can run side by side).
    #[arg(long, default_value = "demo-", value_name = "P")]
    pub prefix: String,
    /// Report each step and its result as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    nslab::error::require_caps("demo")?;
    let json = a.json;
    let mut say = |s: &nslab::demo::Step| {
        if json {
            return;
        }
        println!("\n[{}] {}", if s.ok { " ok " } else { "FAIL" }, s.title);
        for l in &s.output {
            println!("    {l}");
        }
    };
    let mut narrate = |m: &str| {
        if !json {
            println!("\n== {m}");
        }
    };
    let mut d = nslab::demo::Demo::new(
        &a.prefix,
        &mut say,
        &mut narrate,
        super::signals::stop_flag(),
    );
    let r = d.run();
    let steps = std::mem::take(&mut d.steps);
    drop(d);
    let ok = r.is_ok() && steps.iter().all(|s| s.ok);
    if json {
        print_json(
            &serde_json::json!({ "ok": ok, "error": r.as_ref().err().map(|e| e.to_string()), "steps": steps }),
        );
    } else {
        match &r {
            Ok(()) => println!(
                "\n{} of {} as the tutorial shows; everything was taken down again.",
                steps.iter().filter(|s| s.ok).count(),
                super::plural(steps.len(), "step")
            ),
            Err(e) => {
                eprintln!("\nnslab: demo stopped: {e}; everything it made was taken down again.")
            }
        }
    }
    if super::signals::stopped() {
        return Ok(130);
    }
    r?;
    Ok(if ok { 0 } else { 1 })
}
