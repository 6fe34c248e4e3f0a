//! `nslab web` actions end to end: probes started from the page in a real
//! headless Chromium (chromedriver + fantoccini) light the path the capture
//! saw, a closed port shows the reset at black's cable, a lab without a route
//! back shows the why-not at the hop that lacks it; `--read-only` refuses
//! actions but still streams packets. Needs root, chromium and chromium-driver.

mod common;
use common::web::*;
use common::*;
use fantoccini::Locator;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GREEN: &str = "green:gveth--bri0:gbrveth";
const BLACK: &str = "black:bveth--bri0:bbrveth";
const WHITE: &str = "white:wveth--bri0:wbrveth";

type R<T> = Result<T, String>;

fn e(e: fantoccini::error::CmdError) -> String {
    e.to_string()
}

/// Pick the probe in the page's form, send it, and wait for its answer.
async fn act(c: &fantoccini::Client, from: &str, to: &str, kind: &str, port: &str) -> R<()> {
    // The previous answer goes away: waiting for data-ok then waits for this one.
    c.execute(
        "document.getElementById('act-result').removeAttribute('data-ok')",
        vec![],
    )
    .await
    .map_err(e)?;
    for (id, v) in [("act-from", from), ("act-to", to), ("act-kind", kind)] {
        c.find(Locator::Id(id))
            .await
            .map_err(e)?
            .select_by_value(v)
            .await
            .map_err(e)?;
    }
    let p = c.find(Locator::Id("act-port")).await.map_err(e)?;
    p.clear().await.map_err(e)?;
    p.send_keys(port).await.map_err(e)?;
    click(c, Locator::Id("act-go")).await.map_err(e)?;
    wait_for(c, 20, "#act-result[data-ok]").await.map_err(e)?;
    Ok(())
}

async fn attr(c: &fantoccini::Client, css: &str, name: &str) -> R<Option<String>> {
    match c.find_all(Locator::Css(css)).await.map_err(e)?.first() {
        Some(el) => el.attr(name).await.map_err(e),
        None => Ok(None),
    }
}

/// The attribute `name` of the cable whose id is `cable`, if both are there.
async fn cable_attr(c: &fantoccini::Client, cable: &str, name: &str) -> R<Option<String>> {
    attr(c, &format!("g.cable[data-cable=\"{cable}\"]"), name).await
}

async fn open(c: &fantoccini::Client, addr: &str, token: &str) -> R<()> {
    c.goto(&format!("http://{addr}/?token={token}"))
        .await
        .map_err(e)?;
    wait_for(c, 15, "#act-go").await.map_err(e)?;
    Ok(())
}

async fn healthy_lab(c: &fantoccini::Client, addr: &str, token: &str) -> R<()> {
    open(c, addr, token).await?;
    // A ping from green to black: both cables, both ways, and not white's.
    act(c, "green", "black", "ping", "").await?;
    let ok = attr(c, "#act-result", "data-ok").await?;
    let result = el_text(c, Locator::Id("act-result")).await.map_err(e)?;
    assert_eq!(ok.as_deref(), Some("1"), "{result}");
    for cable in [GREEN, BLACK] {
        let dir = cable_attr(c, cable, "data-path-dir").await?;
        assert_eq!(dir.as_deref(), Some("both"), "{cable}: {result}");
    }
    let white = cable_attr(c, WHITE, "data-path").await?;
    assert_eq!(white, None, "white's cable is on the path: {result}");
    // The hops in order, with the addresses on each.
    let hops = c.find_all(Locator::Css("#path li")).await.map_err(e)?.len();
    assert_eq!(hops, 4, "{result}");
    assert!(
        result.contains("192.168.3.1 > 192.168.1.1")
            && result.contains("192.168.1.1 > 192.168.3.1"),
        "{result}"
    );
    assert!(
        attr(c, "[data-why]", "data-why").await?.is_none(),
        "a why on a ping that worked"
    );

    // Nothing listens on 81 in black: its reset, seen on black's cable.
    act(c, "green", "black", "tcp", "81").await?;
    let result = el_text(c, Locator::Id("act-result")).await.map_err(e)?;
    assert_eq!(
        attr(c, "#act-result", "data-ok").await?.as_deref(),
        Some("0")
    );
    let first_reset = attr(c, "#path li[data-kind=\"reset\"]", "data-cable").await?;
    assert_eq!(first_reset.as_deref(), Some(BLACK), "{result}");
    let why = cable_attr(c, BLACK, "data-why").await?;
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("reset") && w.contains("81")),
        "{why:?}: {result}"
    );
    Ok(())
}

async fn broken_lab(c: &fantoccini::Client, addr: &str, token: &str) -> R<()> {
    open(c, addr, token).await?;
    act(c, "green", "black", "ping", "").await?;
    let result = el_text(c, Locator::Id("act-result")).await.map_err(e)?;
    assert_eq!(
        attr(c, "#act-result", "data-ok").await?.as_deref(),
        Some("0")
    );
    // The request reached black, which has no route back: the why is there.
    let why = cable_attr(c, BLACK, "data-why").await?;
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("no route back") && w.contains("black")),
        "{why:?}: {result}"
    );
    let at_box = attr(c, "g.box[data-box=\"black\"]", "data-why").await?;
    assert_eq!(at_box, why);
    assert_eq!(cable_attr(c, GREEN, "data-why").await?, None);
    let dir = cable_attr(c, BLACK, "data-path-dir").await?;
    assert_eq!(dir.as_deref(), Some("ba"), "only the request: {result}");
    // For people to look at (not checked).
    let shot = c.screenshot().await.map_err(e)?;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-actions.png");
    std::fs::write(path, shot).unwrap();
    Ok(())
}

#[tokio::test]
async fn web_actions_light_the_path_show_the_reset_and_the_missing_route_back() {
    let (_p, lab, _guard) = up_example("wact", "objective2-bridge.yaml");
    // A copy of objective 2 where black has no route back to green.
    let dir = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(example("objective2-bridge.yaml")).unwrap();
    let broken = yaml.replace("    routes: [ \"default dev bveth\" ]\n", "");
    assert_ne!(broken, yaml);
    let file = write_file(&dir, "broken.yaml", &broken);
    let bp = prefix("wabr");
    let blab = format!("{bp}objective2");
    let _bguard = LabGuard::new(&blab, None);
    ok(nslab(&["up", s(&file), "--sandbox", "--prefix", &bp]));

    let rec = dir.path().join("run.pcapng");
    let (web, addr, token) = start_web(&["--lab", &lab, "--record", s(&rec)]);
    let (_bweb, baddr, btoken) = start_web(&["--lab", &blab]);
    // Actions need the token like everything else.
    let (status, _) = request(&addr, "POST", "/api/act", "{}");
    assert!(status.contains(" 401 "), "{status}");
    let (status, body) = request(
        &addr,
        "POST",
        &format!("/api/act?token={token}"),
        r#"{"kind":"smtp","from":"green","to":"black"}"#,
    );
    assert!(
        status.contains(" 400 ") && body.contains("smtp"),
        "{status} {body}"
    );

    if !have_chromium() {
        return;
    }
    let (_driver, c) = browser().await;
    let mut result = healthy_lab(&c, &addr, &token).await;
    if result.is_ok() {
        result = broken_lab(&c, &baddr, &btoken).await;
    }
    // That run's recording, replayed by nobody, in the same browser.
    drop(web);
    let mut replay = None;
    if result.is_ok() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (p, raddr, rtoken) = start_replay_as_nobody(&rec);
        replay = Some(p);
        result = replayed_page(&c, &raddr, &rtoken).await;
    }
    let _ = c.close().await;
    drop(replay);
    result.unwrap();
}

/// `nslab web --replay FILE` as nobody: the process, its address and token.
fn start_replay_as_nobody(file: &std::path::Path) -> (Proc, String, String) {
    let (p, url) = spawn_web(replay_as_nobody(file));
    let (addr, token) =
        parse_url(&url).unwrap_or_else(|| panic!("replay as nobody printed no URL: {url:?}"));
    (p, addr, token)
}

/// The command line of `nslab web --replay FILE` as nobody, on a free loopback port.
fn replay_as_nobody(file: &std::path::Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", bin()])
        .args(["web", "--replay", s(file), "--speed", "20"])
        .args(["--listen", "127.0.0.1:0"]);
    cmd
}

/// The replayed page: actions off, both recorded actions listed, and the
/// ping's and the reset's packets in the packet list again.
async fn replayed_page(c: &fantoccini::Client, addr: &str, token: &str) -> R<()> {
    open(c, addr, token).await?;
    let off = el_text(c, Locator::Id("act-off")).await.map_err(e)?;
    assert!(off.contains("replay"), "{off}");
    assert!(
        c.find(Locator::Id("act-go"))
            .await
            .map_err(e)?
            .attr("disabled")
            .await
            .map_err(e)?
            .is_some(),
        "send is enabled in a replay"
    );
    let acts = c
        .find_all(Locator::Css("#recorded-acts button"))
        .await
        .map_err(e)?;
    assert_eq!(acts.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rows = String::new();
    while Instant::now() < deadline {
        rows = el_text(c, Locator::Id("packets")).await.map_err(e)?;
        if rows.contains("echo reply") && rows.contains("Flags [R.]") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        rows.contains("echo request") && rows.contains("echo reply"),
        "{rows}"
    );
    assert!(
        rows.contains("192.168.1.1.81 > 192.168.3.1") && rows.contains("Flags [R.]"),
        "{rows}"
    );
    // The recorded reset, shown again: its why at black's cable.
    acts[1].click().await.map_err(e)?;
    let why = cable_attr(c, BLACK, "data-why").await?;
    assert!(why.is_some_and(|w| w.contains("reset")), "replayed tcp act");
    Ok(())
}

#[test]
fn web_read_only_refuses_actions_and_still_streams_packets() {
    let (p, lab, _guard) = up_example("waro", "objective2-bridge.yaml");
    let (_web, addr, token) = start_web(&["--lab", &lab, "--read-only"]);
    for (path, body) in [
        ("/api/act", r#"{"kind":"ping","from":"green","to":"black"}"#),
        ("/api/link", r#"{"cable":"black:bveth","action":"down"}"#),
    ] {
        let (status, body) = request(&addr, "POST", &format!("{path}?token={token}"), body);
        assert!(status.contains(" 403 "), "{path}: {status} {body}");
    }
    let (status, _) = request(&addr, "GET", &format!("/api/check?token={token}"), "");
    assert!(status.contains(" 403 "), "/api/check: {status}");
    // Nothing was set down.
    assert!(pings(&format!("{p}green"), "192.168.1.1"));

    let st = events(&addr, &token);
    let mut r = BufReader::new(st.try_clone().unwrap());
    let mut line = String::new();
    while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
        line.clear();
    }
    let ping = sh(&format!(
        "ip netns exec {p}green ping -c 2 -i 0.2 -q 192.168.1.1"
    ));
    assert!(ping.contains("2 received"), "{ping}");
    st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut packets = Vec::new();
    while packets.len() < 4 && Instant::now() < deadline {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(d) = line.trim().strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(d).unwrap_or_default();
            if v["proto"] == "icmp" {
                packets.push(v["cable"].as_str().unwrap_or("").to_string());
            }
        }
    }
    assert!(
        packets.len() >= 4 && packets.iter().any(|c| c == BLACK),
        "live packets in --read-only: {packets:?}"
    );
}

/// Every packet event of an SSE stream at `addr` until `enough` says so or 10 s pass.
fn sse_packets(
    addr: &str,
    token: &str,
    enough: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let st = events(addr, token);
    st.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut r = BufReader::new(st);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut line, mut event, mut got) = (String::new(), String::new(), Vec::new());
    while !enough(&got) && Instant::now() < deadline {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => continue,
        }
        if let Some(e) = line.trim().strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.trim().strip_prefix("data: ")
            && event == "packet"
        {
            got.push(serde_json::from_str(d).unwrap());
        }
    }
    got
}

#[test]
fn web_recording_replays_as_nobody_with_the_same_packets() {
    let (_p, lab, _guard) = up_example("warec", "objective2-bridge.yaml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("class.pcapng");
    let (web, addr, token) = start_web(&["--lab", &lab, "--record", s(&file)]);
    let mut hops = Vec::new();
    for body in [
        r#"{"kind":"ping","from":"green","to":"black"}"#,
        r#"{"kind":"tcp","from":"green","to":"black","port":81}"#,
    ] {
        let (status, answer) = request(&addr, "POST", &format!("/api/act?token={token}"), body);
        assert!(status.contains(" 200 "), "{status} {answer}");
        let j: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let path = j["path"].as_array().unwrap().clone();
        assert_eq!(path.len(), 4, "{answer}");
        hops.extend(path);
    }
    // Killed outright: every block is already on disk.
    drop(web);

    // Readable by nobody, as a teacher hands it out.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = replay_as_nobody(&file);
    cmd.stderr(Stdio::piped());
    let (replay, url) = spawn_web(cmd);
    let Some((raddr, rtoken)) = parse_url(&url) else {
        let mut child = replay;
        let mut err = child.0.stderr.take().unwrap();
        drop(child);
        let mut e = String::new();
        err.read_to_string(&mut e).unwrap();
        panic!("replay as nobody printed no URL: {url:?} {e}");
    };
    let (raddr, rtoken) = (raddr.as_str(), rtoken.as_str());
    let (status, body) = request(raddr, "GET", &format!("/api/lab?token={rtoken}"), "");
    assert!(status.contains(" 200 "), "{status}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["replay"], true);
    assert_eq!(j["acts"].as_array().map(Vec::len), Some(2), "{body}");
    assert!(body.contains(GREEN), "{body}");
    let (status, _) = request(
        raddr,
        "POST",
        &format!("/api/act?token={rtoken}"),
        r#"{"kind":"ping","from":"green","to":"black"}"#,
    );
    assert!(status.contains(" 403 "), "{status}");

    let key = |v: &serde_json::Value| {
        ["cable", "from", "to", "text"].map(|k| v[k].as_str().unwrap_or("").to_string())
    };
    let want: Vec<_> = hops.iter().map(key).collect();
    let got = sse_packets(raddr, rtoken, |got| {
        let got: Vec<_> = got.iter().map(key).collect();
        want.iter().all(|w| got.contains(w))
    });
    let got: Vec<_> = got.iter().map(key).collect();
    for w in &want {
        assert!(got.contains(w), "{w:?} not replayed; got {got:?}");
    }
}

#[test]
fn web_replay_refuses_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = write_file(&dir, "junk.pcapng", "not a recording");
    for (args, want) in [
        (vec!["--replay", s(&junk)], "junk.pcapng"),
        (vec!["--replay", "/nonexistent/wa.pcapng"], "wa.pcapng"),
        (vec!["--replay", s(&junk), "--lab", "x"], "--lab"),
        (vec!["--replay", s(&junk), "--speed", "0"], "--speed"),
        (vec!["--record", "/nonexistent/wa.pcapng"], "--record"),
        (vec!["--record", s(dir.path())], "--record"),
    ] {
        let o = Command::new(bin()).arg("web").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?} printed a URL");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    }
}

#[test]
fn web_link_buttons_set_a_cable_down_and_up_and_the_check_panel_gets_the_matrix() {
    let (p, lab, _guard) = up_example("walnk", "objective2-bridge.yaml");
    let (_web, addr, token) = start_web(&["--lab", &lab]);
    let post = |path: &str, body: &str| {
        let (status, body) = request(&addr, "POST", &format!("{path}?token={token}"), body);
        assert!(status.contains(" 200 "), "{path}: {status} {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let down = post(
        "/api/link",
        &format!(r#"{{"cable":"{WHITE}","action":"down"}}"#),
    );
    assert_eq!(down["endpoint"], "white:wveth", "{down}");
    assert!(!pings(&format!("{p}white"), "192.168.1.1"));
    let r = post("/api/act", r#"{"kind":"ping","from":"white","to":"black"}"#);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["why"]["reason"], "link_down", "{r}");
    assert_eq!(r["why"]["cable"], WHITE, "{r}");
    post(
        "/api/link",
        &format!(r#"{{"cable":"{WHITE}","action":"up"}}"#),
    );
    let r = post("/api/act", r#"{"kind":"ping","from":"white","to":"black"}"#);
    assert_eq!(r["ok"], true, "{r}");
    let (status, body) = request(
        &addr,
        "POST",
        &format!("/api/link?token={token}"),
        r#"{"cable":"black:bveth","action":"sideways"}"#,
    );
    assert!(
        status.contains(" 400 ") && body.contains("sideways"),
        "{status} {body}"
    );

    let (status, body) = request(&addr, "GET", &format!("/api/check?token={token}"), "");
    assert!(status.contains(" 200 "), "{status} {body}");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Three nodes, every pair reaches.
    assert_eq!(m["summary"]["pairs"], 6, "{body}");
    assert_eq!(m["summary"]["pairs_reach"], 6, "{body}");
}

#[test]
fn web_act_path_shows_the_nat_rewrite_at_the_uplink() {
    let (_p, lab, _guard) = up_example("wanat", "objective3-nat.yaml");
    let (_web, addr, token) = start_web(&["--lab", &lab]);
    let (status, body) = request(
        &addr,
        "POST",
        &format!("/api/act?token={token}"),
        r#"{"kind":"ping","from":"green","to":"internet"}"#,
    );
    assert!(status.contains(" 200 "), "{status} {body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["ok"], true, "{body}");
    let hops: Vec<[String; 4]> = j["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| ["cable", "src", "dst", "kind"].map(|k| h[k].as_str().unwrap().to_string()))
        .collect();
    let on = |cable: &str, kind: &str| {
        hops.iter()
            .find(|h| h[0] == cable && h[3] == kind)
            .unwrap_or_else(|| panic!("no {kind} on {cable}: {hops:?}"))
            .clone()
    };
    let uplink = j["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["cable"].as_str().unwrap())
        .find(|c| c.contains("internet"))
        .unwrap_or_else(|| panic!("the path never reaches the internet: {hops:?}"))
        .to_string();
    // The private source on green's cable, the host's public one past the NAT.
    assert_eq!(on(GREEN, "request")[1], "192.168.3.1");
    let out = on(&uplink, "request");
    assert!(out[1].starts_with("203.0.113."), "{out:?}");
    assert_eq!(on(&uplink, "reply")[2], out[1]);
    assert_eq!(on(GREEN, "reply")[2], "192.168.3.1");
}
