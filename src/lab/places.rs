//! The endpoint grammar: one parser for the names of places and endpoints of a
//! lab (`NODE`, `NODE:IF`, `host`, `host:IF`, `internet`, `internet:IF`,
//! `BRIDGE`, `BRIDGE:PORT`, an IP address), and the errors each command gives
//! for a name it cannot use.

use crate::error::Error;
use crate::topology::{Lab, Place};
use std::net::IpAddr;

/// A name of the endpoint grammar, resolved against a lab's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `NODE`, `host` or `internet` (only in a sandboxed lab).
    Place(Place),
    /// `NODE:IF`, `host:IF`, `internet:IF`.
    Iface(Place, String),
    /// `BRIDGE`.
    Bridge(String),
    /// `BRIDGE:PORT` (the port is not checked here).
    Port(String, String),
    /// An IP address.
    Addr(IpAddr),
}

/// A place name: `host`, `internet` (in a sandboxed lab) or a node of the lab.
pub fn parse_place(model: &Lab, s: &str) -> Option<Place> {
    match s {
        "host" => Some(Place::Host),
        "internet" if model.sandbox => Some(Place::Internet),
        n if model.node(n).is_some() => Some(Place::Node(n.to_string())),
        _ => None,
    }
}

/// Any name of the endpoint grammar: an IP address first, then a bridge (with
/// `:PORT`), then a place (with `:IF`). Names of nodes and bridges share one space.
pub fn parse(model: &Lab, s: &str) -> Option<Endpoint> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(Endpoint::Addr(a));
    }
    let (left, ifname) = match s.split_once(':') {
        Some((l, i)) => (l, Some(i)),
        None => (s, None),
    };
    if let Some(b) = model.bridge(left) {
        return Some(match ifname {
            Some(p) => Endpoint::Port(b.name.clone(), p.to_string()),
            None => Endpoint::Bridge(b.name.clone()),
        });
    }
    let p = parse_place(model, left)?;
    Some(match ifname {
        Some(i) => Endpoint::Iface(p, i.to_string()),
        None => Endpoint::Place(p),
    })
}

/// A place that can send or serve (`ping`, `serve`, ...): a node, `host` or `internet`.
pub fn place(model: &Lab, name: &str) -> Result<Place, Error> {
    parse_place(model, name).ok_or_else(|| {
        Error::Usage(format!(
            "{name:?} is not a node, `host` or `internet` of lab {}",
            model.name
        ))
    })
}

/// A place of the lab `lab` that is up (`exec`): `host`, `internet` or a node.
pub fn place_of_lab(model: &Lab, lab: &str, name: &str) -> Result<Place, Error> {
    match name {
        "host" => Ok(Place::Host),
        "internet" if model.sandbox => Ok(Place::Internet),
        "internet" => Err(Error::Usage(format!(
            "lab {lab} is not sandboxed: it has no emulated internet"
        ))),
        n if model.node(n).is_some() => Ok(Place::Node(n.to_string())),
        n => {
            let names: Vec<&str> = model.nodes.iter().map(|n| n.name.as_str()).collect();
            Err(Error::Usage(format!(
                "lab {lab} has no node {n:?} (nodes: {})",
                names.join(", ")
            )))
        }
    }
}

/// A destination that is not one: `spec` names nothing of the lab.
pub fn not_a_destination(model: &Lab, spec: &str) -> Error {
    Error::Usage(format!(
        "{spec:?} is not a node, bridge, endpoint, `host`, `internet` or IP address of lab {}",
        model.name
    ))
}

/// A destination with no address of the family asked for.
pub fn no_address(spec: &str, family: u8) -> Error {
    Error::Usage(format!("{spec} has no IPv{family} address"))
}

/// What `capture` is asked to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSpec {
    /// `all`: every interface of every place.
    All,
    /// `NODE`, `host`, `internet`: the place's interfaces.
    Place(Place),
    /// `NODE:IF`, `host:IF`, `internet:IF`.
    Iface(Place, String),
    /// `BRIDGE`: its ports.
    Bridge(String),
    /// `BRIDGE:PORT` (a port of the bridge).
    Port(String, String),
}

/// A capture target of the lab `lab`.
pub fn capture_spec(model: &Lab, lab: &str, spec: &str) -> Result<CaptureSpec, Error> {
    if spec == "all" {
        return Ok(CaptureSpec::All);
    }
    match parse(model, spec) {
        Some(Endpoint::Port(b, port)) => {
            let ports = model
                .bridge(&b)
                .map(|b| b.ports.clone())
                .unwrap_or_default();
            if !ports.contains(&port) {
                return Err(Error::Usage(format!(
                    "{port:?} is not a port of bridge {b} (ports: {})",
                    ports.join(", ")
                )));
            }
            Ok(CaptureSpec::Port(b, port))
        }
        Some(Endpoint::Bridge(b)) => Ok(CaptureSpec::Bridge(b)),
        Some(Endpoint::Iface(p, i)) => Ok(CaptureSpec::Iface(p, i)),
        Some(Endpoint::Place(p)) => Ok(CaptureSpec::Place(p)),
        Some(Endpoint::Addr(_)) | None => Err(match spec.split_once(':') {
            Some((left, _)) => Error::Usage(format!(
                "{left:?} in {spec:?} is not a node, bridge, `host` or `internet` of lab {lab}"
            )),
            None => Error::Usage(format!(
                "{spec:?} is not a node, bridge, endpoint (NODE:IF, host:IF, BRIDGE:PORT) or `all` of lab {lab}"
            )),
        }),
    }
}

/// A place to capture on that has no interfaces.
pub fn nothing_to_capture(spec: &str) -> Error {
    Error::Usage(format!("{spec} has no interfaces to capture on"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Options, parse_str};

    const OBJ2: &str = include_str!("../../examples/objective2-bridge.yaml");

    fn lab(sandbox: bool) -> Lab {
        let opts = Options {
            prefix: "p-".into(),
            sandbox,
            check_programs: false,
        };
        parse_str(OBJ2, "t.yaml", &opts).unwrap()
    }

    fn usage(e: Error) -> String {
        match e {
            Error::Usage(m) => m,
            e => panic!("not a usage error: {e}"),
        }
    }

    fn node(n: &str) -> Place {
        Place::Node(n.into())
    }

    #[test]
    fn every_form_parses() {
        let m = lab(true);
        let cases = [
            ("black", Endpoint::Place(node("black"))),
            (
                "black:bveth",
                Endpoint::Iface(node("black"), "bveth".into()),
            ),
            ("host", Endpoint::Place(Place::Host)),
            (
                "host:bbrveth",
                Endpoint::Iface(Place::Host, "bbrveth".into()),
            ),
            ("internet", Endpoint::Place(Place::Internet)),
            (
                "internet:eth0",
                Endpoint::Iface(Place::Internet, "eth0".into()),
            ),
            ("bri0", Endpoint::Bridge("bri0".into())),
            (
                "bri0:bbrveth",
                Endpoint::Port("bri0".into(), "bbrveth".into()),
            ),
            (
                "192.168.1.1",
                Endpoint::Addr("192.168.1.1".parse().unwrap()),
            ),
            ("fd00::1", Endpoint::Addr("fd00::1".parse().unwrap())),
        ];
        for (s, want) in cases {
            assert_eq!(parse(&m, s), Some(want), "{s}");
        }
        for s in ["nobody", "nobody:eth0", "", ":x"] {
            assert_eq!(parse(&m, s), None, "{s}");
        }
    }

    #[test]
    fn the_internet_is_a_place_only_in_a_sandbox() {
        let m = lab(false);
        assert_eq!(parse_place(&m, "internet"), None);
        assert_eq!(parse(&m, "internet"), None);
        assert_eq!(parse_place(&m, "host"), Some(Place::Host));
        assert_eq!(parse_place(&m, "white"), Some(node("white")));
        assert_eq!(parse_place(&m, "bri0"), None);
        assert_eq!(parse_place(&lab(true), "internet"), Some(Place::Internet));
    }

    #[test]
    fn a_place_that_is_not_one_is_named() {
        let m = lab(false);
        assert_eq!(place(&m, "white").unwrap(), node("white"));
        assert_eq!(
            usage(place(&m, "nobody").unwrap_err()),
            "\"nobody\" is not a node, `host` or `internet` of lab p-objective2"
        );
        assert_eq!(
            usage(place(&m, "internet").unwrap_err()),
            "\"internet\" is not a node, `host` or `internet` of lab p-objective2"
        );
    }

    #[test]
    fn a_place_of_a_lab_that_is_up() {
        let m = lab(false);
        assert_eq!(place_of_lab(&m, "L", "host").unwrap(), Place::Host);
        assert_eq!(place_of_lab(&m, "L", "green").unwrap(), node("green"));
        assert_eq!(
            place_of_lab(&lab(true), "L", "internet").unwrap(),
            Place::Internet
        );
        assert_eq!(
            usage(place_of_lab(&m, "L", "internet").unwrap_err()),
            "lab L is not sandboxed: it has no emulated internet"
        );
        assert_eq!(
            usage(place_of_lab(&m, "L", "nobody").unwrap_err()),
            "lab L has no node \"nobody\" (nodes: black, white, green)"
        );
    }

    #[test]
    fn destination_errors() {
        let m = lab(false);
        assert_eq!(
            usage(not_a_destination(&m, "nobody")),
            "\"nobody\" is not a node, bridge, endpoint, `host`, `internet` or IP address of lab p-objective2"
        );
        assert_eq!(usage(no_address("black", 6)), "black has no IPv6 address");
    }

    #[test]
    fn capture_specs() {
        let m = lab(true);
        let ok = |s: &str| capture_spec(&m, "L", s).unwrap();
        let err = |s: &str| usage(capture_spec(&m, "L", s).unwrap_err());
        assert_eq!(ok("all"), CaptureSpec::All);
        assert_eq!(ok("black"), CaptureSpec::Place(node("black")));
        assert_eq!(ok("host"), CaptureSpec::Place(Place::Host));
        assert_eq!(
            ok("black:bveth"),
            CaptureSpec::Iface(node("black"), "bveth".into())
        );
        assert_eq!(
            ok("internet:eth0"),
            CaptureSpec::Iface(Place::Internet, "eth0".into())
        );
        assert_eq!(ok("bri0"), CaptureSpec::Bridge("bri0".into()));
        assert_eq!(
            ok("bri0:wbrveth"),
            CaptureSpec::Port("bri0".into(), "wbrveth".into())
        );
        assert_eq!(
            err("bri0:eth9"),
            "\"eth9\" is not a port of bridge bri0 (ports: bbrveth, wbrveth, gbrveth)"
        );
        assert_eq!(
            err("nobody:eth0"),
            "\"nobody\" in \"nobody:eth0\" is not a node, bridge, `host` or `internet` of lab L"
        );
        assert_eq!(
            err("fd00::1"),
            "\"fd00\" in \"fd00::1\" is not a node, bridge, `host` or `internet` of lab L"
        );
        assert_eq!(
            err("nobody"),
            "\"nobody\" is not a node, bridge, endpoint (NODE:IF, host:IF, BRIDGE:PORT) or `all` of lab L"
        );
        assert_eq!(
            err("10.0.0.1"),
            "\"10.0.0.1\" is not a node, bridge, endpoint (NODE:IF, host:IF, BRIDGE:PORT) or `all` of lab L"
        );
        assert_eq!(
            usage(nothing_to_capture("black")),
            "black has no interfaces to capture on"
        );
    }
}
