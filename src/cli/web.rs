use super::{FilePath, LabSel};
use nslab::error::{Error, Result};
use nslab::graph::Overlay;
use std::net::SocketAddr;

/// See a running lab live in a browser.
///
/// Serve a page that draws the lab (nslab's own layout: nodes, bridges,
/// cables, host, internet) and lights each cable as packets cross it, in
/// their direction, with a tcpdump-style list of where each packet was seen.
/// It captures on one end of every cable (the bridge port for bridge ports).
///
/// The first line on stdout is the URL, with a random token: requests
/// without it get 401. It listens on loopback unless --listen says otherwise.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nslab web --lab objective2              # then open the URL it prints
  nslab web examples/objective2-bridge.yaml --listen 127.0.0.1:0 --open
  nslab web --lab objective2 --record class.pcapng   # save what the page shows
  nslab web --replay class.pcapng --speed 2          # no root, no lab needed")]
pub struct Args {
    /// The topology file the lab came from (or use --lab).
    pub file: Option<FilePath>,
    #[command(flatten)]
    pub sel: LabSel,
    /// Address and port to listen on (port 0: any free port). Anything but
    /// loopback lets others on the network see the lab (with the token).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Open the page with xdg-open.
    #[arg(long)]
    pub open: bool,
    /// Refuse every request that would change something (any method but
    /// GET/HEAD gets 403): the page shows live packets but sends no probes
    /// and sets no link down.
    #[arg(long)]
    pub read_only: bool,
    /// At most N packet events per second per browser; above it the page
    /// gets a sample and says so.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_events: u64,
    /// Save what the page shows to FILE while serving: the topology, every
    /// captured packet and the actions' answers, as pcapng (Wireshark opens
    /// it; the README describes the blocks).
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
    /// Serve a recording instead of a lab: no root and no lab needed; the
    /// packets come with their recorded spacing and nothing can be changed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["file", "lab", "record"])]
    pub replay: Option<std::path::PathBuf>,
    /// Replay that many times faster (0.5: half as fast).
    #[arg(long, default_value_t = 1.0, value_name = "X", requires = "replay")]
    pub speed: f64,
    /// Print the first line (URL, address, token) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let listen: SocketAddr = a.listen.parse().map_err(|_| {
        Error::Usage(format!(
            "--listen {:?}: expected ADDRESS:PORT, e.g. 127.0.0.1:8080 or [::1]:8080",
            a.listen
        ))
    })?;
    if a.max_events == 0 {
        return Err(Error::Usage("--max-events must be at least 1".into()));
    }
    if !(a.speed.is_finite() && a.speed > 0.0) {
        return Err(Error::Usage(format!(
            "--speed {}: expected a number above 0, e.g. 2 or 0.5",
            a.speed
        )));
    }
    if let Some(file) = &a.replay {
        return replay(&a, file, listen);
    }
    if let Some(f) = &a.record {
        // Refused before anything is served, not once the URL is out.
        let dir = match f.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if f.is_dir() || !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--record {}: not a file in an existing directory",
                f.display()
            )));
        }
    }
    let (rec, model) = super::lab_up(&a.sel, a.file.as_deref())?;
    let lab = a.sel.open(a.file.as_deref())?;
    // Laid out once: a 200-node lab is not laid out again for every page load.
    let layout = nslab::graph::layout(&model, &Overlay::of_running(&model, &rec.runtime))
        .map_err(|e| Error::Failed(e.to_string()))?;
    let (listener, bound, token, url) =
        bind_and_print(&a, listen, serde_json::json!({ "lab": lab.name() }))?;
    if !listen.ip().is_loopback() {
        eprintln!(
            "nslab: warning: listening on {bound}, not loopback: anyone who can reach it and has the token sees the lab"
        );
    }
    eprintln!(
        "nslab: serving lab {} on http://{bound}/ ({} cables; Ctrl-C to stop)",
        lab.name(),
        layout.cables.len()
    );
    if a.open {
        open_browser(&url);
    }
    let stop = super::signals::stop_flag();
    let opts = nslab::web::WebOptions {
        read_only: a.read_only,
        max_events: a.max_events,
        record: a.record.clone(),
    };
    nslab::web::serve(lab, layout, listener, token, opts, stop)?;
    Ok(0)
}

/// Listen on `listen` and print the URL with a new token (with `--json`, an
/// object of the URL, the address, the token and `extra`'s fields): the
/// listener, its address, the token and the URL.
fn bind_and_print(
    a: &Args,
    listen: SocketAddr,
    extra: serde_json::Value,
) -> Result<(std::net::TcpListener, SocketAddr, String, String)> {
    let listener =
        std::net::TcpListener::bind(listen).map_err(Error::io(format!("listen on {listen}")))?;
    let bound = listener
        .local_addr()
        .map_err(Error::io("read the listening address"))?;
    let token = nslab::web::new_token()?;
    let url = format!("http://{bound}/?token={token}");
    if a.json {
        let mut j = serde_json::json!({ "url": url, "listen": bound.to_string(), "token": token });
        if let (Some(j), serde_json::Value::Object(extra)) = (j.as_object_mut(), extra) {
            j.extend(extra);
        }
        println!("{j}");
    } else {
        println!("{url}");
    }
    Ok((listener, bound, token, url))
}

/// `--replay FILE`: the page served from a recording.
fn replay(a: &Args, file: &std::path::Path, listen: SocketAddr) -> Result<i32> {
    let rec = nslab::web::recording::load(file)?;
    let name = rec.topology["layout"]["lab"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let (listener, bound, token, url) = bind_and_print(
        a,
        listen,
        serde_json::json!({ "lab": name, "replay": file.display().to_string(), "packets": rec.events.len() }),
    )?;
    eprintln!(
        "nslab: replaying {} (lab {name}, {} packets, {} actions) on http://{bound}/ (Ctrl-C to stop)",
        file.display(),
        rec.events.len(),
        rec.acts.len()
    );
    if a.open {
        open_browser(&url);
    }
    let stop = super::signals::stop_flag();
    nslab::web::recording::serve_replay(rec, listener, token, a.speed, a.max_events, stop)?;
    Ok(0)
}

fn open_browser(url: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("xdg-open").is_file()));
    if !found {
        eprintln!("nslab: --open: xdg-open not found; open {url} yourself");
        return;
    }
    match std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        // Reaped on a thread of its own: the server keeps running meanwhile.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("nslab: --open: xdg-open failed ({e}); open {url} yourself"),
    }
}
