//! `nslab web` end to end: the objective 2 lab in a real headless Chromium
//! (driven through chromedriver by fantoccini). Needs root, chromium and
//! chromium-driver (scripts/test.sh installs them).

mod common;
use common::web::*;
use common::*;
use fantoccini::Locator;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// GET `path` from `addr` with std's TcpStream: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    request(addr, "GET", path, "")
}

#[tokio::test]
async fn web_page_draws_objective2_and_lights_the_cables_a_ping_crosses() {
    if !have_chromium() {
        return;
    }
    let (p, lab, _guard) = up_example("wb", "objective2-bridge.yaml");

    let (_web, addr, token) = start_web(&["--lab", &lab]);
    let (addr, token) = (addr.as_str(), token.as_str());
    let url = format!("http://{addr}/?token={token}");
    assert_eq!(token.len(), 32, "{url}");

    // Without the token, or with a wrong one: 401, for the page and the API.
    for path in ["/", "/api/lab", "/api/events", "/api/lab?token=00"] {
        let (status, _) = get(addr, path);
        assert!(status.contains(" 401 "), "{path}: {status}");
    }
    let (status, body) = get(addr, &format!("/api/lab?token={token}"));
    assert!(status.contains(" 200 "), "{status}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cables: Vec<&str> = j["layout"]["cables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(cables.contains(&"green:gveth--bri0:gbrveth"), "{cables:?}");
    // Nothing but GET here (405); without the token, still 401.
    let (status, _) = request(addr, "POST", &format!("/api/lab?token={token}"), "");
    assert!(status.contains(" 405 "), "{status}");
    let (status, _) = request(addr, "POST", "/api/lab", "");
    assert!(status.contains(" 401 "), "{status}");
    // A bad filter is refused with what is wrong.
    let (status, body) = get(
        addr,
        &format!("/api/events?token={token}&proto=smtp&check=1"),
    );
    assert!(
        status.contains(" 400 ") && body.contains("smtp"),
        "{status} {body}"
    );

    let (_driver, c) = browser().await;
    let result = browse(&c, &url, &p, &lab).await;
    let _ = c.close().await;
    result.unwrap();
}

/// The 200-node measurement of README/BENCHMARKS (run by hand:
/// `cargo test --release --test web -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn web_200_nodes_page_load() {
    if !have_chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s200.yaml");
    ok(nslab(&[
        "new",
        "--topo",
        "single,200",
        "--name",
        "s200",
        "-o",
        s(&file),
    ]));
    let p = prefix("wbb");
    let _guard = LabGuard::new(&format!("{p}s200"), None);
    ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &p]));
    let t0 = Instant::now();
    let (_web, addr, token) = start_web(&["--lab", &format!("{p}s200")]);
    eprintln!("nslab web printed its URL after {:?}", t0.elapsed());
    let (_driver, c) = browser().await;
    for round in 0..3 {
        let t = Instant::now();
        c.goto(&format!("http://{addr}/?token={token}"))
            .await
            .unwrap();
        let svg = c
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("svg#lab[data-ready]"))
            .await
            .unwrap();
        let drawn = svg.attr("data-drawn-ms").await.unwrap().unwrap_or_default();
        let boxes = c.find_all(Locator::Css("g.box")).await.unwrap().len();
        let cables = c.find_all(Locator::Css("g.cable")).await.unwrap().len();
        eprintln!(
            "round {round}: {boxes} boxes, {cables} cables drawn {drawn} ms after navigation ({:?} as the test saw it)",
            t.elapsed()
        );
        assert_eq!((boxes, cables), (203, 201));
    }
    let _ = c.close().await;
}

async fn browse(c: &fantoccini::Client, url: &str, p: &str, lab: &str) -> Result<(), String> {
    let e = |e: fantoccini::error::CmdError| e.to_string();
    c.goto(url).await.map_err(e)?;
    wait_for(c, 15, "svg#lab[data-ready]").await.map_err(e)?;
    let svg = c
        .find(Locator::Css("svg#lab"))
        .await
        .map_err(e)?
        .html(false)
        .await
        .map_err(e)?;
    for name in ["black", "white", "green", "bri0"] {
        assert!(
            svg.contains(&format!("data-box=\"{name}\"")) && svg.contains(&format!(">{name}<")),
            "{name} is not drawn in the SVG"
        );
    }
    let green = "[data-cable=\"green:gveth--bri0:gbrveth\"]";
    let black = "[data-cable=\"black:bveth--bri0:bbrveth\"]";
    let white = "[data-cable=\"white:wveth--bri0:wbrveth\"]";
    for cable in [green, black, white] {
        c.find(Locator::Css(&format!("g.cable{cable}")))
            .await
            .map_err(e)?;
    }
    // Listening before the ping starts.
    wait_for(c, 10, "#conn.live").await.map_err(e)?;
    let active = |sel: &str| format!("g.cable{sel}[data-active]");
    assert!(
        !present(c, &active(green)).await.map_err(e)?,
        "green's cable is lit before any ping"
    );

    let start = Instant::now();
    // Killed and reaped on drop if an assertion fails first.
    let mut ping = Proc(
        Command::new("ip")
            .args(["netns", "exec", &format!("{p}green")])
            .args(["ping", "-c", "4", "-i", "0.5", "192.168.1.1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lit = (None, None);
    while start.elapsed() < Duration::from_secs(2) && (lit.0.is_none() || lit.1.is_none()) {
        if lit.0.is_none() && present(c, &active(green)).await.map_err(e)? {
            lit.0 = Some(start.elapsed());
        }
        if lit.1.is_none() && present(c, &active(black)).await.map_err(e)? {
            lit.1 = Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("cables lit after {lit:?}");
    assert!(lit.0.is_some(), "green—bri0 not lit within 2 s of the ping");
    assert!(lit.1.is_some(), "bri0—black not lit within 2 s of the ping");
    // The bridge learned both MACs from ARP: the pings never reach white.
    assert!(
        !present(c, &active(white)).await.map_err(e)?,
        "white's cable lit by a ping between green and black"
    );
    let rows = el_text(c, Locator::Css("#packets")).await.map_err(e)?;
    assert!(
        rows.contains("bri0:gbrveth")
            && rows.contains("192.168.3.1")
            && rows.contains("192.168.1.1"),
        "packet list: {rows}"
    );
    assert!(
        ping.0.wait().unwrap().success(),
        "green could not ping black"
    );

    // A click on a box shows its routes as the kernel has them.
    click(c, Locator::Css("g.box[data-box=\"black\"]"))
        .await
        .map_err(e)?;
    let details = el_text(c, Locator::Css("#details")).await.map_err(e)?;
    assert!(
        details.contains("routes") && details.contains("default dev bveth"),
        "details after a click on black: {details}"
    );
    assert_eq!(cable_state(c, black).await?.as_deref(), Some("up"));

    let shot = c.screenshot().await.map_err(e)?;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-objective2.png");
    std::fs::write(&path, &shot).unwrap();
    let dec = png::Decoder::new(std::io::Cursor::new(shot));
    let mut reader = dec.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let px = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()]
        .chunks(px)
        .take(4_000_000)
        .collect();
    assert!(
        info.width >= 400 && info.height >= 300 && colours.len() > 10,
        "{}: {}x{} with {} colours",
        path.display(),
        info.width,
        info.height,
        colours.len()
    );

    // The page's filter, as `nslab capture --proto tcp`: a ping then an HTTP
    // request from green to black's server list only the TCP packets.
    c.find(Locator::Css("#filters input[name=proto]"))
        .await
        .map_err(e)?
        .send_keys("tcp")
        .await
        .map_err(e)?;
    click(c, Locator::Css("#filters button")).await.map_err(e)?;
    wait_for(c, 10, "#conn.live[data-filter*=\"proto=tcp\"]")
        .await
        .map_err(e)?;
    click(c, Locator::Css("#clear")).await.map_err(e)?;
    assert!(pings(&format!("{p}green"), "192.168.1.1"));
    let page = sh(&format!(
        "ip netns exec {p}green curl -sS -m 5 -o /dev/null -w '%{{http_code}}' http://192.168.1.1:800/"
    ));
    assert_eq!(page.trim(), "200");
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows = loop {
        let rows = el_text(c, Locator::Css("#packets")).await.map_err(e)?;
        if rows.contains("192.168.1.1.800 >") || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        rows.contains("192.168.1.1.800 >"),
        "no TCP reply listed: {rows}"
    );
    assert!(!rows.contains("ICMP"), "proto=tcp listed ICMP: {rows}");

    // A cable taken down at run time is drawn down on the next load.
    ok(nslab(&["link", "--lab", lab, "black:bveth", "down"]));
    c.goto(url).await.map_err(e)?;
    wait_for(c, 15, "svg#lab[data-ready]").await.map_err(e)?;
    assert_eq!(cable_state(c, black).await?.as_deref(), Some("down"));
    assert_eq!(cable_state(c, green).await?.as_deref(), Some("up"));
    Ok(())
}

/// The `data-state` of the cable `sel` (an attribute selector) finds.
async fn cable_state(c: &fantoccini::Client, sel: &str) -> Result<Option<String>, String> {
    let e = |e: fantoccini::error::CmdError| e.to_string();
    c.find(Locator::Css(&format!("g.cable{sel}")))
        .await
        .map_err(e)?
        .attr("data-state")
        .await
        .map_err(e)
}

#[test]
fn web_samples_a_flood_above_max_events_and_read_only_refuses_changes() {
    let (p, lab, _guard) = up_example("wbs", "objective2-bridge.yaml");
    let (_web, addr, token) = start_web(&["--lab", &lab, "--max-events", "5", "--read-only"]);
    // Read-only: any method but GET and HEAD is refused (once the token is right).
    for m in ["POST", "PUT", "DELETE"] {
        let (status, _) = request(&addr, m, &format!("/api/lab?token={token}"), "");
        assert!(status.contains(" 403 "), "{m}: {status}");
    }
    let (status, _) = request(&addr, "POST", "/api/lab?token=0", "");
    assert!(status.contains(" 401 "), "{status}");
    let s = events(&addr, &token);
    let mut r = BufReader::new(s.try_clone().unwrap());
    // The stream's headers: it is listening once they came.
    let mut line = String::new();
    while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
        assert!(
            !line.starts_with("HTTP/1.1") || line.contains(" 200 "),
            "{line}"
        );
        line.clear();
    }
    // 100 echo requests and 100 replies, each seen on two cables, in about a second.
    let flood = sh(&format!(
        "ip netns exec {p}green ping -c 100 -i 0.01 -q 192.168.1.1"
    ));
    assert!(flood.contains("100 received"), "{flood}");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut packets, mut sampling) = (0, None);
    let mut event = String::new();
    while sampling.is_none() && Instant::now() < deadline {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(e) = line.trim().strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.trim().strip_prefix("data: ") {
            match event.as_str() {
                "packet" => packets += 1,
                "sampling" => {
                    sampling = Some(serde_json::from_str::<serde_json::Value>(d).unwrap())
                }
                _ => {}
            }
        }
    }
    let sampling = sampling.expect("no sampling event after a flood");
    assert_eq!(sampling["sent"], 5, "{sampling}");
    assert!(sampling["offered"].as_u64().unwrap() > 5, "{sampling}");
    assert!(
        packets <= 10,
        "{packets} packets sent in what should be at most two windows"
    );
}

#[test]
fn web_refuses_bad_input_with_exit_2_and_serves_nothing() {
    for (args, want) in [
        (vec!["--lab", "wbnosuchlab"], "wbnosuchlab"),
        (vec!["--listen", "nowhere"], "--listen"),
        (vec!["--max-events", "0"], "--max-events"),
    ] {
        let o = Command::new(bin()).arg("web").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?} printed a URL");
    }
}
