use super::LabSel;
use nslab::error::{Error, Result};
use nslab::serve::{Content, Server};
use std::net::{IpAddr, SocketAddr};

/// Run a small web server inside a node.
///
/// A small web server inside a node, so labs and probes need no python: a page
/// naming the node (and who asked), or a directory listing with `--dir`. It answers
/// plain text with `400 Bad request syntax`, as the tutorial's server does.
/// Foreground by default (Ctrl-C stops it); `--detach` leaves it running, recorded
/// with the lab, and `nslab down` stops it.
///
/// Example: nslab serve black --port 800
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node to serve from (or `host`, `internet`).
    pub node: String,
    /// The TCP port to listen on.
    #[arg(long, short = 'p', default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on (default: all of the node's addresses).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// Serve this directory instead of the page naming the node.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Run in the background; `nslab down` stops it.
    #[arg(long)]
    pub detach: bool,
    /// The topology file the lab came from (or use --lab).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub sel: LabSel,
}

pub fn run(a: Args) -> Result<i32> {
    let (rec, model) = super::lab_up(&a.sel, a.file.as_deref())?;
    let lab = rec.lab.clone();
    let place = super::place(&model, &a.node)?;
    let bind = SocketAddr::new(a.bind.unwrap_or(IpAddr::from([0, 0, 0, 0])), a.port);
    if let Some(d) = &a.dir
        && !d.is_dir()
    {
        return Err(Error::Usage(format!("{} is not a directory", d.display())));
    }
    if a.detach {
        return detach(&a, &lab, &place, bind);
    }
    let file = nslab::lab::place_file(&rec, &place)?;
    let content = match &a.dir {
        Some(d) => Content::Directory(
            std::fs::canonicalize(d).map_err(Error::io(format!("{}", d.display())))?,
        ),
        None => Content::Page {
            node: a.node.clone(),
        },
    };
    // The listening socket is made inside the node and keeps its namespace.
    let server = nslab::lab::run_in(&file, move || Server::bind(bind, content))?
        .map_err(|e| Error::Failed(format!("listen on {bind} in {}: {e}", a.node)))?;
    println!("serving HTTP in {} on {bind} (Ctrl-C to stop)", a.node);
    let stop = super::signals::stop_flag();
    server
        .serve(stop, &mut |line| println!("{line}"))
        .map_err(|e| Error::Failed(format!("serve: {e}")))?;
    Ok(0)
}

fn detach(a: &Args, lab: &str, place: &nslab::topology::Place, bind: SocketAddr) -> Result<i32> {
    let exe = std::env::current_exe().map_err(Error::io("find nslab's own path"))?;
    let mut argv = vec![
        exe.display().to_string(),
        "serve".into(),
        a.node.clone(),
        "--lab".into(),
        lab.into(),
        "--port".into(),
        a.port.to_string(),
        "--bind".into(),
        bind.ip().to_string(),
    ];
    if let Some(d) = &a.dir {
        argv.push("--dir".into());
        argv.push(
            std::fs::canonicalize(d)
                .map_err(Error::io(format!("{}", d.display())))?
                .display()
                .to_string(),
        );
    }
    let log = nslab::programs::log_dir(lab).join(format!("serve-{}-{}.log", a.node, a.port));
    // The child enters the node itself; start it from here (no namespace).
    // In a cgroup of the lab's from the start: `down` stops it even if this
    // process dies before recording it.
    let cg = nslab::programs::new_cgroup(lab, "serve")?;
    let cgroup = cg.as_ref().map(|c| c.display().to_string());
    let (pid, start_time) =
        match nslab::programs::spawn(&nslab::plan::Ns::HOST, &argv, &log, cg.as_deref()) {
            Ok(x) => x,
            Err(e) => {
                if let Some(c) = &cg {
                    let _ = nslab::programs::remove_cgroup(c);
                }
                return Err(e);
            }
        };
    let command = format!("nslab serve {} --port {}", a.node, a.port);
    // Ready when it answers (or gone, with its log saying why).
    let rec = nslab::lab::record_of(lab)?;
    let file = nslab::lab::place_file(&rec, place)?;
    let probe = SocketAddr::new(
        if bind.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            bind.ip()
        },
        bind.port(),
    );
    let t0 = std::time::Instant::now();
    loop {
        let up = nslab::lab::run_in(&file, || {
            std::net::TcpStream::connect_timeout(&probe, std::time::Duration::from_millis(200))
                .is_ok()
        })
        .unwrap_or(false);
        if up {
            break;
        }
        let proc_ = nslab::record::Proc {
            pid,
            start_time,
            node: a.node.clone(),
            command: command.clone(),
            log: None,
            origin: "serve".into(),
            cgroup: cgroup.clone(),
        };
        if !nslab::programs::alive(&proc_) || t0.elapsed() > std::time::Duration::from_secs(10) {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = nslab::programs::stop(&proc_, std::time::Duration::from_secs(1));
            return Err(Error::Failed(format!(
                "the server did not start: {}",
                l.trim()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nslab::lab::add_process(
        lab,
        nslab::record::Proc {
            pid,
            start_time,
            node: a.node.clone(),
            command,
            log: Some(log.display().to_string()),
            origin: "serve".into(),
            cgroup,
        },
    )?;
    println!(
        "serving HTTP in {} on {bind} (pid {pid}, log {}); `nslab down` stops it",
        a.node,
        log.display()
    );
    Ok(0)
}
