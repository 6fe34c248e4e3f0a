//! The SVG rendering of a `Scene`, laid out by `layout-rs`.

use super::{BRIDGE_FILL, GraphError, HOST_FILL, INET_FILL, Key, NODE_FILL, ROUTER_FILL, Scene};
use crate::util::xml;
use layout::adt::dag::NodeHandle;
use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

pub(super) fn svg(sc: &Scene) -> Result<String, GraphError> {
    laid_out(sc, |vg, _, w| {
        let head = svg_head(sc, vg);
        touch_up(&replace_head_and_style(&w.finalize(), &head))
    })
}

/// Lay the scene out with layout-rs and hand `then` the laid-out graph, its
/// boxes' handles and the SVG writer it drew into.
pub(super) fn laid_out<T>(
    sc: &Scene,
    then: impl FnOnce(&VisualGraph, &Boxes, SVGWriter) -> T,
) -> Result<T, GraphError> {
    // layout-rs asserts its own invariants; a failed one must not take nslab
    // down. Nothing of the closure's outlives a panic (only shared borrows go
    // in), so asserting unwind safety is sound.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut vg = VisualGraph::new(DIR);
        let boxes = add_boxes(&mut vg, sc);
        add_cables(&mut vg, sc, &boxes);
        let mut w = SVGWriter::new();
        // Without layout-rs's crossing optimizer (the second flag): with it, some
        // small valid labs trip its internal assertions (see the test
        // `layout_rs_assertion_case`) and 1000 nodes on a bridge take minutes
        // instead of under a second.
        vg.do_it(false, true, false, &mut w);
        then(&vg, &boxes, w)
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "layout-rs failed".to_string());
        GraphError::Layout(msg)
    })
}

/// Font sizes (px) of the SVG: boxes, cable labels. They must differ: the
/// style sheet tells labels from box text by their class, named after the size.
const BOX_FONT: usize = 13;
const EDGE_FONT: usize = 12;

const DIR: Orientation = Orientation::LeftToRight;

/// The laid-out graph's handles of the scene's boxes.
pub(super) struct Boxes {
    pub(super) nodes: Vec<NodeHandle>,
    pub(super) bridges: Vec<NodeHandle>,
    pub(super) host: Option<NodeHandle>,
    pub(super) internet: Option<NodeHandle>,
}

impl Boxes {
    pub(super) fn handle(&self, k: Key) -> Option<NodeHandle> {
        match k {
            Key::Node(i) => self.nodes.get(i).copied(),
            Key::Bridge(i) => self.bridges.get(i).copied(),
            Key::Host => self.host,
            Key::Internet => self.internet,
        }
    }
}

/// A box for each panel of the scene (or one saying there is nothing, as
/// layout-rs cannot lay out an empty graph).
fn add_boxes(vg: &mut VisualGraph, sc: &Scene) -> Boxes {
    const FONT: usize = BOX_FONT;
    let look = |fill: &str, rounded: usize| {
        StyleAttr::new(
            Color::fast("#333333"),
            1,
            Some(Color::fast(fill)),
            rounded,
            FONT,
        )
    };
    // layout-rs sizes a box by its text: font size per character and line.
    let size = |lines: &[String]| {
        let w = lines
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(1)
            .max(1);
        let h = lines.len().max(1);
        Point::new(
            w as f64 * FONT as f64 * 0.62 + 16.0,
            h as f64 * FONT as f64 * 1.25 + 14.0,
        )
    };
    let add = |vg: &mut VisualGraph, lines: Vec<String>, fill: &str, rounded: usize| {
        let text = lines.join("\n");
        vg.add_node(Element::create(
            ShapeKind::new_box(&text),
            look(fill, rounded),
            DIR,
            size(&lines),
        ))
    };

    let nodes: Vec<_> = sc
        .nodes
        .iter()
        .map(|p| {
            add(
                vg,
                p.lines(true),
                if p.router { ROUTER_FILL } else { NODE_FILL },
                0,
            )
        })
        .collect();
    let bridges: Vec<_> = sc
        .bridges
        .iter()
        .map(|b| add(vg, b.lines(), BRIDGE_FILL, 12))
        .collect();
    let host = sc
        .host
        .as_ref()
        .map(|h| add(vg, h.lines(true), HOST_FILL, 0));
    let internet = sc
        .internet
        .as_ref()
        .map(|i| add(vg, i.lines(true), INET_FILL, 0));
    if nodes.is_empty() && host.is_none() && internet.is_none() {
        // layout-rs cannot lay out an empty graph.
        add(
            vg,
            vec![format!("lab {}", sc.lab), "(no nodes)".to_string()],
            HOST_FILL,
            0,
        );
    }
    Boxes {
        nodes,
        bridges,
        host,
        internet,
    }
}

/// The cables between boxes, and a dotted line from each bridge to the host.
fn add_cables(vg: &mut VisualGraph, sc: &Scene, boxes: &Boxes) {
    let cable = |label: &str, style: LineStyleKind| {
        let mut look = StyleAttr::simple();
        look.font_size = EDGE_FONT;
        look.line_width = 2;
        look.line_color = Color::fast("#333333");
        Arrow::new(
            LineEndKind::None,
            LineEndKind::None,
            style,
            label,
            &look,
            &None,
            &None,
        )
    };
    for e in &sc.edges {
        if let (Some(a), Some(b)) = (boxes.handle(e.from.key), boxes.handle(e.to.key)) {
            // Two blank lines under the label lift it above the line through
            // the middle of its connector.
            let label = format!("{}\n \n ", e.label);
            let style = if e.down {
                LineStyleKind::Dashed
            } else {
                LineStyleKind::Normal
            };
            vg.add_edge(cable(&label, style), a, b);
        }
    }
    // Bridges live in the host: a dotted line, so they sit between nodes and host.
    if let Some(h) = boxes.host {
        for b in &boxes.bridges {
            vg.add_edge(cable("", LineStyleKind::Dashed), *b, h);
        }
    }
}

/// The SVG's opening: our own canvas (from the boxes' extents), title and
/// white background.
fn svg_head(sc: &Scene, vg: &VisualGraph) -> String {
    // layout-rs sizes the canvas from a rough guess at text extents (far too
    // tall) and lists its font classes from a hash map (in random order): put
    // our own canvas size and style sheet in instead.
    let mut bounds: Option<(Point, Point)> = None;
    for h in vg.iter_nodes() {
        let (a, b) = vg.pos(h).bbox(false);
        bounds = Some(match bounds {
            None => (a, b),
            Some((lo, hi)) => (
                Point::new(lo.x.min(a.x), lo.y.min(a.y)),
                Point::new(hi.x.max(b.x), hi.y.max(b.y)),
            ),
        });
    }
    let (lo, hi) = bounds.unwrap_or((Point::new(0., 0.), Point::new(200., 40.)));
    let margin = 20.0;
    let (x0, y0) = ((lo.x - margin).floor(), (lo.y - margin).floor());
    let (wd, ht) = ((hi.x + margin).ceil() - x0, (hi.y + margin).ceil() - y0);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{wd}\" height=\"{ht}\" viewBox=\"{x0} {y0} {wd} {ht}\">\n<title>{}</title>\n<rect x=\"{x0}\" y=\"{y0}\" width=\"{wd}\" height=\"{ht}\" fill=\"#ffffff\"/>\n",
        xml(&format!("nslab lab {} ({})", sc.lab, sc.mode()))
    )
}

/// layout-rs's SVG with our opening (`head`) and style sheet in place of its own.
fn replace_head_and_style(raw: &str, head: &str) -> String {
    let style = format!(
        "<style>\n.a{BOX_FONT} {{ font-size: {BOX_FONT}px; font-family: Helvetica, Arial, sans-serif; }}\n.a{EDGE_FONT} {{ font-size: {EDGE_FONT}px; font-family: Helvetica, Arial, sans-serif; paint-order: stroke; stroke: #ffffff; stroke-width: 4px; stroke-linejoin: round; }}\n</style>\n"
    );
    let mut out = String::with_capacity(raw.len() + 512);
    let body = match (raw.find("<svg "), raw.find("<defs>")) {
        (Some(a), Some(b)) if a < b => {
            out.push_str(&raw[..a]);
            out.push_str(head);
            &raw[b..]
        }
        _ => raw,
    };
    match (body.find("<style>"), body.find("</style>\n")) {
        (Some(a), Some(b)) if a < b => {
            out.push_str(&body[..a]);
            out.push_str(&style);
            out.push_str(&body[b + "</style>\n".len()..]);
        }
        _ => out.push_str(body),
    }
    out
}

/// Box titles in bold. And layout-rs draws cable labels before the cables, so
/// the lines would cross them out: move the labels (the text of class
/// `a{EDGE_FONT}`) to the end of the picture, on top of everything.
fn touch_up(svg: &str) -> String {
    const OPEN: &str = "<text dominant-baseline";
    const CLOSE: &str = "</text>";
    let class = format!("class=\"a{EDGE_FONT}\"");
    let Some(end) = svg.rfind("</svg>") else {
        return svg.to_string();
    };
    let (mut body, mut labels) = (String::with_capacity(svg.len()), String::new());
    let mut rest = &svg[..end];
    while let Some(a) = rest.find(OPEN) {
        let Some(len) = rest[a..].find(CLOSE) else {
            break;
        };
        let b = a + len + CLOSE.len();
        body.push_str(&rest[..a]);
        let text = &rest[a..b];
        if text.contains(&class) {
            labels.push_str(text);
            labels.push('\n');
        } else {
            // The first line of a box is its title.
            body.push_str(&text.replacen("<tspan ", "<tspan font-weight=\"bold\" ", 1));
        }
        rest = &rest[b..];
    }
    body.push_str(rest);
    body.push_str(&labels);
    body.push_str(&svg[end..]);
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body
}
