//! The picture as data, for `nslab web`: the SVG layout's boxes and cables
//! with their coordinates and names, so a page can draw them with its own
//! element per box and cable (and light a cable when a packet crosses it).

use super::svg::{Boxes, laid_out};
use super::{
    BRIDGE_FILL, GraphError, HOST_FILL, INET_FILL, Key, NODE_FILL, Overlay, ROUTER_FILL, Scene,
};
use crate::topology::Lab;
use layout::topo::layout::VisualGraph;
use serde::Serialize;

/// Where everything of a lab's picture is, in SVG user units.
#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub lab: String,
    /// `sandbox` or `host mode`.
    pub mode: &'static str,
    /// x, y, width, height of the whole picture.
    pub view_box: [f64; 4],
    pub boxes: Vec<BoxView>,
    pub cables: Vec<CableView>,
    /// Bridges live in the host: (bridge, `host`) pairs drawn dotted.
    pub ties: Vec<[String; 2]>,
}

/// A box: a node, a bridge, the host or the internet.
#[derive(Debug, Clone, Serialize)]
pub struct BoxView {
    /// The name cables' ends use: the node's or bridge's name, `host`, `internet`.
    pub id: String,
    /// `node`, `router`, `bridge`, `host` or `internet`.
    pub kind: &'static str,
    /// The box's text, title first (as `nslab graph --format svg` writes it).
    pub lines: Vec<String>,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub fill: &'static str,
    /// Interface name and its addresses (bridges: their own addresses).
    pub interfaces: Vec<(String, Vec<String>)>,
    /// Routes as the file declares them, in iproute2 words.
    pub routes: Vec<String>,
}

/// A cable (a veth pair, or the sandbox's uplink).
#[derive(Debug, Clone, Serialize)]
pub struct CableView {
    /// `a--b`, with `a` and `b` as below.
    pub id: String,
    /// The ends in the endpoint grammar (`black:bveth`, `bri0:bbrveth`,
    /// `host:IF`), `a` drawn on the left.
    pub a: String,
    pub b: String,
    /// The boxes (their `id`) of `a` and `b`.
    pub from: String,
    pub to: String,
    pub label: String,
    pub down: bool,
    pub shaped: bool,
    /// The line: x1, y1, x2, y2 (box border to box border).
    pub line: [f64; 4],
}

/// Lay `lab` out as `nslab graph --format svg` does and say where each box and cable is.
pub fn layout(lab: &Lab, overlay: &Overlay) -> Result<Layout, GraphError> {
    let sc = Scene::of(lab, overlay);
    laid_out(&sc, |vg, handles, _| layout_of(&sc, vg, handles))
}

fn layout_of(sc: &Scene, vg: &VisualGraph, handles: &Boxes) -> Layout {
    let rect = |k: Key| -> Option<[f64; 4]> {
        handles.handle(k).map(|h| {
            let (a, b) = vg.pos(h).bbox(false);
            [a.x, a.y, b.x - a.x, b.y - a.y]
        })
    };
    let mut boxes = Vec::new();
    let mut push = |k: Key,
                    id: String,
                    kind: &'static str,
                    lines: Vec<String>,
                    fill: &'static str,
                    interfaces: Vec<(String, Vec<String>)>,
                    routes: Vec<String>| {
        if let Some([x, y, w, h]) = rect(k) {
            boxes.push(BoxView {
                id,
                kind,
                lines,
                x,
                y,
                w,
                h,
                fill,
                interfaces,
                routes,
            });
        }
    };
    let ifs = |p: &super::Panel| {
        p.ifaces
            .iter()
            .map(|i| (i.name.clone(), i.addresses.clone()))
            .collect::<Vec<_>>()
    };
    for (i, p) in sc.nodes.iter().enumerate() {
        let (kind, fill) = if p.router {
            ("router", ROUTER_FILL)
        } else {
            ("node", NODE_FILL)
        };
        push(
            Key::Node(i),
            p.title.clone(),
            kind,
            p.lines(true),
            fill,
            ifs(p),
            p.routes.clone(),
        );
    }
    for (i, b) in sc.bridges.iter().enumerate() {
        push(
            Key::Bridge(i),
            b.name.clone(),
            "bridge",
            b.lines(),
            BRIDGE_FILL,
            vec![(b.name.clone(), b.addresses.clone())],
            Vec::new(),
        );
    }
    if let Some(h) = &sc.host {
        push(
            Key::Host,
            "host".into(),
            "host",
            h.lines(true),
            HOST_FILL,
            ifs(h),
            h.routes.clone(),
        );
    }
    if let Some(i) = &sc.internet {
        push(
            Key::Internet,
            "internet".into(),
            "internet",
            i.lines(true),
            INET_FILL,
            ifs(i),
            i.routes.clone(),
        );
    }

    let id_of = |k: Key| -> String {
        match k {
            Key::Node(i) => sc.nodes[i].title.clone(),
            Key::Bridge(i) => sc.bridges[i].name.clone(),
            Key::Host => "host".into(),
            Key::Internet => "internet".into(),
        }
    };
    let cables = sc
        .edges
        .iter()
        .filter_map(|e| {
            let (ra, rb) = (rect(e.from.key)?, rect(e.to.key)?);
            Some(CableView {
                id: format!("{}--{}", e.ends[0], e.ends[1]),
                a: e.ends[0].clone(),
                b: e.ends[1].clone(),
                from: id_of(e.from.key),
                to: id_of(e.to.key),
                label: e.label.clone(),
                down: e.down,
                shaped: e.shaped,
                line: border_line(ra, rb),
            })
        })
        .collect();
    let ties = if sc.host.is_some() {
        sc.bridges
            .iter()
            .map(|b| [b.name.clone(), "host".to_string()])
            .collect()
    } else {
        Vec::new()
    };

    let margin = 20.0;
    let (mut lo, mut hi) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
    for b in &boxes {
        lo = (lo.0.min(b.x), lo.1.min(b.y));
        hi = (hi.0.max(b.x + b.w), hi.1.max(b.y + b.h));
    }
    let view_box = if boxes.is_empty() {
        [0.0, 0.0, 200.0, 40.0]
    } else {
        let (x0, y0) = ((lo.0 - margin).floor(), (lo.1 - margin).floor());
        [
            x0,
            y0,
            (hi.0 + margin).ceil() - x0,
            (hi.1 + margin).ceil() - y0,
        ]
    };
    Layout {
        lab: sc.lab.clone(),
        mode: sc.mode(),
        view_box,
        boxes,
        cables,
        ties,
    }
}

/// A line between the centres of two boxes, cut where it leaves each box.
fn border_line(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    let centre = |r: [f64; 4]| (r[0] + r[2] / 2.0, r[1] + r[3] / 2.0);
    let (ca, cb) = (centre(a), centre(b));
    let (dx, dy) = (cb.0 - ca.0, cb.1 - ca.1);
    // The fraction of the way from the centre of `r` to its border along (dx, dy).
    let cut = |r: [f64; 4]| {
        let fx = if dx == 0.0 {
            f64::INFINITY
        } else {
            (r[2] / 2.0) / dx.abs()
        };
        let fy = if dy == 0.0 {
            f64::INFINITY
        } else {
            (r[3] / 2.0) / dy.abs()
        };
        fx.min(fy).min(0.5)
    };
    let (ta, tb) = (cut(a), cut(b));
    [
        ca.0 + dx * ta,
        ca.1 + dy * ta,
        cb.0 - dx * tb,
        cb.1 - dy * tb,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objective2() -> Lab {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/objective2-bridge.yaml");
        crate::lab::load(&file, "", true).unwrap()
    }

    #[test]
    fn layout_names_boxes_and_cable_ends_as_capture_does() {
        let lab = objective2();
        let l = layout(&lab, &Overlay::of_file(&lab)).unwrap();
        let ids: Vec<&str> = l.boxes.iter().map(|b| b.id.as_str()).collect();
        for want in ["black", "white", "green", "bri0", "host", "internet"] {
            assert!(ids.contains(&want), "{want} missing from {ids:?}");
        }
        let cables: Vec<&str> = l.cables.iter().map(|c| c.id.as_str()).collect();
        assert!(cables.contains(&"black:bveth--bri0:bbrveth"), "{cables:?}");
        assert!(cables.contains(&"green:gveth--bri0:gbrveth"), "{cables:?}");
        // The sandbox's uplink is a cable too.
        assert_eq!(l.cables.len(), 4, "{cables:?}");
        // Every cable's line starts at its own boxes' borders, inside the picture.
        let [x0, y0, w, h] = l.view_box;
        for c in &l.cables {
            let [x1, y1, x2, y2] = c.line;
            for (x, y) in [(x1, y1), (x2, y2)] {
                assert!(x >= x0 && x <= x0 + w && y >= y0 && y <= y0 + h, "{c:?}");
            }
            assert!((x1, y1) != (x2, y2), "{c:?}");
        }
        assert_eq!(l.ties, vec![["bri0".to_string(), "host".to_string()]]);
    }

    #[test]
    fn border_line_is_cut_at_both_boxes() {
        // Two 10x10 boxes side by side: from the right side of one to the left of the other.
        let l = border_line([0.0, 0.0, 10.0, 10.0], [30.0, 0.0, 10.0, 10.0]);
        assert_eq!(l, [10.0, 5.0, 30.0, 5.0]);
    }
}
