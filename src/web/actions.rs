//! What the page can do to the lab (never in `--read-only`): a probe between
//! two places (`POST /api/act`) answered with the path its packets took as
//! the capture saw it and, when it failed, why and at which hop; a cable end
//! set down or up (`POST /api/link`); the check matrix (`GET /api/check`).

use super::path::{self, Flow, Hop};
use super::{State, text};
use crate::api::PingOptions;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;

/// How long after a probe the capture may still be delivering its packets.
const SETTLE: Duration = Duration::from_millis(400);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Act {
    kind: String,
    from: String,
    to: String,
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkAct {
    /// An endpoint (`black:bveth`, `bri0:bbrveth`) or a cable id (`A--B`: its `a` end).
    cable: String,
    action: String,
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// The POST routes; None: not one of them.
pub(super) async fn post(st: &Arc<State>, p: &str, body: &[u8]) -> Option<Response> {
    Some(match p {
        "/api/act" => match serde_json::from_slice::<Act>(body) {
            Ok(a) => act(st, a).await,
            Err(e) => text(StatusCode::BAD_REQUEST, format!("400: /api/act: {e}")),
        },
        "/api/link" => match serde_json::from_slice::<LinkAct>(body) {
            Ok(a) => link(st, a).await,
            Err(e) => text(StatusCode::BAD_REQUEST, format!("400: /api/link: {e}")),
        },
        _ => return None,
    })
}

/// What the probe itself answered, before the path is known.
struct Probe {
    ok: bool,
    flow: Option<Flow>,
    address: Option<String>,
    rtt_ms: Option<f64>,
    error: Option<String>,
    /// A why-not reason (serialized `WhyNot`) and its sentence.
    why: Option<(Value, String)>,
    status: Option<u16>,
}

fn run_probe(lab: &crate::Lab, a: &Act) -> crate::Result<Probe> {
    // One echo from `from` to `to`, with why-not when it fails.
    let ping = |secs: u64| {
        lab.ping_explained(
            &a.from,
            &a.to,
            &PingOptions {
                count: 1,
                timeout: Duration::from_secs(secs),
                ..PingOptions::default()
            },
            &mut |_| {},
        )
    };
    let explain = || -> Option<(Value, String)> {
        let w = ping(1).ok()?.why_not?;
        Some((serde_json::to_value(&w).ok()?, w.to_string()))
    };
    let dst = lab.address_of(&a.to, false)?;
    let mut p = Probe {
        ok: false,
        flow: None,
        address: Some(dst.to_string()),
        rtt_ms: None,
        error: None,
        why: None,
        status: None,
    };
    let port = |default: u16| a.port.unwrap_or(default);
    match a.kind.as_str() {
        "ping" => {
            let out = ping(2)?;
            p.ok = out.ok();
            if let Some(r) = &out.report {
                p.flow = Some(Flow::Icmp { ident: r.ident });
                p.rtt_ms = r.rtt.as_ref().map(|x| x.min.as_secs_f64() * 1e3);
                if !p.ok {
                    p.error = Some(format!("no reply from {dst}"));
                }
            }
            if let Some(e) = out.send_error {
                p.error = Some(e);
            }
            p.why = out
                .why_not
                .and_then(|w| Some((serde_json::to_value(&w).ok()?, w.to_string())));
        }
        "tcp" => {
            let port = port(80);
            p.flow = Some(Flow::Tcp { dst, port });
            match lab.tcp_connect(&a.from, &a.to, port) {
                Ok(d) => {
                    p.ok = true;
                    p.rtt_ms = Some(d.as_secs_f64() * 1e3);
                }
                Err(e) => p.error = Some(e.to_string()),
            }
        }
        "http" => {
            let port = port(80);
            p.flow = Some(Flow::Tcp { dst, port });
            let host = match dst {
                std::net::IpAddr::V6(d) => format!("[{d}]"),
                d => d.to_string(),
            };
            match lab.http_get(&a.from, &format!("http://{host}:{port}/")) {
                Ok(r) => {
                    p.ok = (200..400).contains(&r.status);
                    p.status = Some(r.status);
                    if !p.ok {
                        p.error = Some(format!("HTTP {} {}", r.status, r.reason));
                    }
                }
                Err(e) => p.error = Some(e.to_string()),
            }
        }
        k => {
            return Err(crate::Error::Usage(format!(
                "kind {k:?}: expected ping, tcp or http"
            )));
        }
    }
    // A connection that failed without a reset: the path is walked to say why.
    if !p.ok && p.why.is_none() && a.kind != "ping" {
        p.why = explain();
    }
    Ok(p)
}

/// The place a why-not reason names (`at`, or `host` for a missing NAT).
fn why_place(v: &Value) -> Option<String> {
    v.get("at")
        .or_else(|| v.get("host"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The why of a failed probe, placed at its hop. A reset is its own reason:
/// the server's side answered that nothing listens.
fn why_json(p: &Probe, hops: &[Hop], port: Option<u16>) -> Option<Value> {
    if !p.ok
        && let Some(i) = hops.iter().position(|h| h.kind == "reset")
    {
        let at = path::place_of(&hops[i].from).to_string();
        return Some(json!({
            "reason": "reset",
            "at": at,
            "hop": hops[i].n,
            "cable": hops[i].cable,
            "text": format!(
                "connection refused: {at} answered with a TCP reset (nothing listens on port {})",
                port.unwrap_or(80)
            ),
        }));
    }
    let (v, sentence) = p.why.as_ref()?;
    let at = why_place(v);
    let hop = at.as_deref().and_then(|at| path::hop_at(hops, at));
    Some(json!({
        "reason": v.get("reason"),
        "at": at,
        "hop": hop.map(|i| hops[i].n),
        "cable": hop.map(|i| hops[i].cable.clone()),
        "text": sentence,
        "detail": v,
    }))
}

async fn act(st: &Arc<State>, a: Act) -> Response {
    // Listening before the first packet leaves.
    let mut rx = st.tx.subscribe();
    let lab = st.lab.clone();
    let (kind, port) = (a.kind.clone(), a.port);
    let done = tokio::task::spawn_blocking(move || run_probe(&lab, &a).map(|p| (p, a))).await;
    let (p, a) = match done {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let status = match e {
                crate::Error::Usage(_) | crate::Error::Topology(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return text(status, format!("{}: {e}", status.as_u16()));
        }
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("500: {e}")),
    };
    tokio::time::sleep(SETTLE).await;
    let mut seen = Vec::new();
    let mut lost = 0;
    loop {
        match rx.try_recv() {
            Ok(s) => seen.push((s.event.clone(), s.summary.clone())),
            Err(TryRecvError::Lagged(n)) => lost += n,
            Err(_) => break,
        }
    }
    let hops = p
        .flow
        .as_ref()
        .map(|f| path::path(&seen, f))
        .unwrap_or_default();
    let mut why = why_json(&p, &hops, port);
    // Stopped before any packet left (a link down at the source): the cable
    // of the interface the reason names.
    if let Some(w) = why.as_mut().filter(|w| w["cable"].is_null()) {
        let end = format!(
            "{}:{}",
            w["at"].as_str().unwrap_or(""),
            w["detail"]["interface"].as_str().unwrap_or("")
        );
        if let Some(c) = st.layout.cables.iter().find(|c| c.a == end || c.b == end) {
            w["cable"] = json!(c.id);
        }
    }
    let answer = json!({
            "ok": p.ok,
            "kind": kind,
            "from": a.from,
            "to": a.to,
            "port": port,
            "address": p.address,
            "rtt_ms": p.rtt_ms,
            "status": p.status,
            "error": p.error,
            "why": why,
            "path": hops,
            "lost": lost,
    });
    if let Some(r) = &st.recorder
        && let Ok(mut r) = r.lock()
    {
        let block =
            json!({"type": "act", "ts": crate::capture::pcap::Timestamp::now(), "answer": answer});
        if let Err(e) = r.block(&block) {
            return text(StatusCode::INTERNAL_SERVER_ERROR, format!("500: {e}"));
        }
    }
    json_response(StatusCode::OK, &answer)
}

async fn link(st: &Arc<State>, a: LinkAct) -> Response {
    // A cable id names its ends: act on the captured bridge side's peer, the `a` end.
    let end = match st.layout.cables.iter().find(|c| c.id == a.cable) {
        Some(c) => c.a.clone(),
        None => a.cable.clone(),
    };
    let up = match a.action.as_str() {
        "up" => true,
        "down" => false,
        x => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("400: /api/link: action {x:?}: expected up or down"),
            );
        }
    };
    let lab = st.lab.clone();
    let e2 = end.clone();
    let r = tokio::task::spawn_blocking(move || {
        if up {
            lab.link_up(&e2)
        } else {
            lab.link_down(&e2)
        }
    })
    .await;
    match r {
        Ok(Ok(rep)) => json_response(
            StatusCode::OK,
            &json!({"ok": true, "endpoint": end, "up": up, "report": serde_json::to_value(&rep).ok()}),
        ),
        Ok(Err(e)) => text(StatusCode::BAD_REQUEST, format!("400: {end}: {e}")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("500: {e}")),
    }
}

/// The check matrix (`nslab check --matrix --json`), nodes only.
pub(super) async fn check(st: &Arc<State>) -> Response {
    let lab = st.lab.clone();
    let r = tokio::task::spawn_blocking(move || {
        lab.check_with(&crate::api::CheckOptions {
            matrix: true,
            nodes_only: true,
            ..Default::default()
        })
    })
    .await;
    match r {
        Ok(Ok(rep)) => json_response(
            StatusCode::OK,
            &serde_json::to_value(&rep).unwrap_or(Value::Null),
        ),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("500: {e}")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("500: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_is_the_why_at_the_servers_hop() {
        let hop = |n, kind, from: &str| Hop {
            n,
            cable: format!("c{n}"),
            dir: "ab",
            from: from.into(),
            to: "x:y".into(),
            src: String::new(),
            dst: String::new(),
            kind,
            text: String::new(),
            ts: 0.0,
        };
        let hops = [
            hop(1, "segment", "green:gveth"),
            hop(2, "reset", "black:bveth"),
        ];
        let p = Probe {
            ok: false,
            flow: None,
            address: None,
            rtt_ms: None,
            error: Some("refused".into()),
            why: None,
            status: None,
        };
        let w = why_json(&p, &hops, Some(81)).unwrap();
        assert_eq!(w["at"], "black");
        assert_eq!(w["hop"], 2);
        assert!(w["text"].as_str().unwrap().contains("port 81"), "{w}");
        // A reason from the path walk lands on the last hop that touched its place.
        let p = Probe {
            why: Some((
                json!({"reason": "no_route_back", "at": "green"}),
                "no route".into(),
            )),
            ..p
        };
        let w = why_json(&p, &hops[..1], None).unwrap();
        assert_eq!(
            (w["reason"].as_str(), w["hop"].as_u64()),
            (Some("no_route_back"), Some(1))
        );
        assert_eq!(
            why_place(&json!({"reason": "no_nat", "host": "host"})).as_deref(),
            Some("host")
        );
    }
}
