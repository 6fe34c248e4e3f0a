//! A client and a server across a router, in Rust threads inside the nodes.
//!
//! Run as root: `cargo run --example client_server`. The lab is sandboxed
//! (prefix `exa-`) and taken down at the end, even if something panics.

use nslab::{Lab, Options, Topology};
use std::io::{BufRead, BufReader, Write};

fn main() -> nslab::Result<()> {
    // client - router - server, over two private networks.
    let topo = Topology::builder("cs")
        .node("client", |n| {
            n.interface("eth0", &["10.80.1.2/24"])
                .route("default via 10.80.1.1")
        })
        .node("router", |n| {
            n.interface("left", &["10.80.1.1/24"])
                .interface("right", &["10.80.2.1/24"])
                .forward(true)
        })
        .node("server", |n| {
            n.interface("eth0", &["10.80.2.2/24"])
                .route("default via 10.80.2.1")
        })
        .link("client:eth0", "router:left")
        .link("router:right", "server:eth0")
        .build();
    let opts = Options {
        prefix: "exa-".into(),
        sandbox: true,
        // The library reads no environment; scripts/test.sh points this at its own directory.
        state_dir: std::env::var_os("NSLAB_STATE_DIR").map(Into::into),
        ..Options::default()
    };
    let lab = Lab::up(&topo, &opts)?;
    println!("lab {} is up: {:?}", lab.name(), lab.nodes());

    // The listening socket is made inside `server`; it keeps that namespace
    // wherever it is used afterwards.
    let listener = lab
        .node("server")?
        .with(|| std::net::TcpListener::bind("0.0.0.0:9000"))?
        .map_err(nslab::Error::io("listen in server"))?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (conn, peer) = listener.accept()?;
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line)?;
        (&conn).write_all(format!("hello {peer}, you said {line}").as_bytes())
    });

    // The client connects by node name: `server` resolves through the lab's hosts file.
    let reply = lab.node("client")?.with(|| -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect("server:9000")?;
        s.write_all(b"ping\n")?;
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply)?;
        Ok(reply)
    })?;
    let reply = reply.map_err(nslab::Error::io("talk to server"))?;
    print!("client got: {reply}");
    server
        .join()
        .expect("server thread")
        .map_err(nslab::Error::io("serve"))?;
    assert!(reply.starts_with("hello 10.80.1.2:"));

    let down = lab.down()?;
    println!("down: removed {} namespaces", down.namespaces.len());
    Ok(())
}
