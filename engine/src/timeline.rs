//! One picture of a failover (or of a simulator run) over time, for people debugging it:
//! events in, an SVG or a self-contained HTML page out. Pure: no IO, no clock, no
//! randomness; the same [`Timeline`] always renders to the same bytes.
//!
//! The picture, top to bottom: a header (title, subtitle lines, the verdict: `no
//! violation` or `VIOLATION <invariant> at <t>`), a time axis (ticks of 1, 2 or 5 × 10^k
//! ms, labelled in seconds since [`Timeline::start`]), then one block per cluster (its
//! stages as bars with their durations, one row per [`BandKind`] it has, its marks as
//! diamonds), the record lane (spans and marks), the faults lane (spans as bars, instants
//! as narrow markers), and a legend. On top, across the cluster blocks: each [`overlaps`]
//! interval as a translucent vertical band (red when not accepted, amber inside an accepted
//! window), and the first violation as a red vertical line with its invariant's name.
//!
//! # Stable data attributes
//!
//! Every element a test or a script may look for is an SVG `<g>` whose first child is a
//! `<title>` holding its hover text (label, times in seconds since the start, duration,
//! then the detail), and whose attributes are written in this order:
//!
//! - `data-kind`: `stage`, `band`, `mark`, `record`, `record-mark`, `fault`, `overlap`,
//!   `violation` or `axis` (one per tick);
//! - `data-cluster`: the cluster's name (stages, bands, marks, and faults that name one);
//! - `data-band`: the band's [`BandKind::slug`] (bands only);
//! - `data-overlap`: the overlap's [`OverlapKind::slug`] (overlaps only);
//! - `data-invariant`: the invariant's name (the violation only);
//! - `data-accepted`: `true` or `false` (overlaps only);
//! - `data-label`: the label (for a band without one, its kind's [`BandKind::label`]; for
//!   an overlap the text drawn: `two primaries`, `two writers` or `uptime window
//!   (accepted)`; for a tick its text, e.g. `12.5 s`);
//! - `data-from`, `data-to`: the times in ms on the picture's axis, as integers (equal for
//!   marks, instants, ticks and the violation).
//!
//! All text is escaped for XML (`&`, `<`, `>`, `"`, `'`; characters XML forbids are
//! dropped).

use std::fmt::Write as _;

/// Milliseconds on the picture's time axis (any origin; the sim uses ms since start, the
/// CLI epoch ms).
pub type Ms = i64;

/// Everything one picture shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// The first header line.
    pub title: String,
    /// Extra header lines (seed, mode, replay command...).
    pub subtitle: Vec<String>,
    /// The axis's start, and the origin of its labels.
    pub start: Ms,
    /// The axis's end; if `end <= start`, both are derived from the content
    /// (see [`Timeline::range`]).
    pub end: Ms,
    /// One block per cluster, in order.
    pub clusters: Vec<ClusterLane>,
    /// The record lane: e.g. `lock A token 3` spans.
    pub record: Vec<Span>,
    /// The record's marks: journal positions, history items, requests.
    pub record_marks: Vec<Mark>,
    /// Faults: spans, and instants where `from == to`.
    pub faults: Vec<Fault>,
    /// Windows where an overlap is accepted (uptime mode's window): drawn amber, not red.
    pub accepted: Vec<Window>,
    /// The first violation, if any.
    pub violation: Option<Violation>,
}

/// One cluster's block: its stages, its state bands and its marks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterLane {
    /// The cluster's name (`A`, `east`...).
    pub name: String,
    /// The failover's stages as this cluster ran them (lock, stop, demote...).
    pub stages: Vec<Span>,
    /// State bands, at most one per kind (see [`ClusterLane::band_mut`]).
    pub bands: Vec<Band>,
    /// Instants on this cluster (a journal write, a hook...).
    pub marks: Vec<Mark>,
}

/// What a band shows about a cluster while it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BandKind {
    /// The cluster's volumes are primary (writable).
    #[default]
    VolumesPrimary,
    /// The application's pods run.
    PodsRunning,
    /// Traffic reaches the cluster.
    TrafficOpen,
    /// Flux reconciliation is suspended.
    FluxSuspended,
    /// The cluster is fenced.
    Fenced,
}

impl BandKind {
    /// Every kind, in the order the rows are drawn.
    pub const ALL: [BandKind; 5] = [
        BandKind::VolumesPrimary,
        BandKind::PodsRunning,
        BandKind::TrafficOpen,
        BandKind::FluxSuspended,
        BandKind::Fenced,
    ];

    /// The row's label, e.g. `volumes primary`.
    pub fn label(&self) -> &'static str {
        match self {
            BandKind::VolumesPrimary => "volumes primary",
            BandKind::PodsRunning => "pods running",
            BandKind::TrafficOpen => "traffic open",
            BandKind::FluxSuspended => "flux suspended",
            BandKind::Fenced => "fenced",
        }
    }

    /// The `data-band` value, e.g. `volumes-primary`.
    pub fn slug(&self) -> &'static str {
        match self {
            BandKind::VolumesPrimary => "volumes-primary",
            BandKind::PodsRunning => "pods-running",
            BandKind::TrafficOpen => "traffic-open",
            BandKind::FluxSuspended => "flux-suspended",
            BandKind::Fenced => "fenced",
        }
    }

    fn fill(&self) -> &'static str {
        match self {
            BandKind::VolumesPrimary => "#1f77b4",
            BandKind::PodsRunning => "#2ca02c",
            BandKind::TrafficOpen => "#17a2b8",
            BandKind::FluxSuspended => "#a6a61d",
            BandKind::Fenced => "url(#tl-hatch)",
        }
    }
}

/// The spans during which one kind of state held on a cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Band {
    /// What the band shows.
    pub kind: BandKind,
    /// When it held.
    pub spans: Vec<Span>,
}

/// Something that lasted, from `from` to `to`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Span {
    /// Start (ms).
    pub from: Ms,
    /// End (ms).
    pub to: Ms,
    /// The short text drawn on or beside the bar.
    pub label: String,
    /// The hover text (event line, decision, record after it); may be multi-line.
    pub detail: String,
}

/// Something that happened at an instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mark {
    /// When (ms).
    pub at: Ms,
    /// The short text drawn beside the mark when there is room.
    pub label: String,
    /// The hover text; may be multi-line.
    pub detail: String,
}

/// An injected fault.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fault {
    /// The cluster it affects; `None` for both clusters or the store.
    pub cluster: Option<String>,
    /// When, and what (an instant where `from == to`).
    pub span: Span,
}

/// A window in which an overlap is accepted (uptime mode's window).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    /// Start (ms).
    pub from: Ms,
    /// End (ms).
    pub to: Ms,
    /// What the window is.
    pub label: String,
}

/// The first violated invariant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Violation {
    /// When (ms).
    pub at: Ms,
    /// The invariant's name.
    pub invariant: String,
    /// The hover text; may be multi-line.
    pub detail: String,
}

/// What an [`Overlap`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OverlapKind {
    /// Two or more clusters' volumes primary at once.
    TwoPrimaries,
    /// Two or more clusters writers (volumes primary, and pods running or traffic open)
    /// at once.
    TwoWriters,
}

impl OverlapKind {
    /// The text drawn for it, e.g. `two primaries`.
    pub fn label(&self) -> &'static str {
        match self {
            OverlapKind::TwoPrimaries => "two primaries",
            OverlapKind::TwoWriters => "two writers",
        }
    }

    /// The `data-overlap` value, e.g. `two-primaries`.
    pub fn slug(&self) -> &'static str {
        match self {
            OverlapKind::TwoPrimaries => "two-primaries",
            OverlapKind::TwoWriters => "two-writers",
        }
    }
}

/// An interval where two or more clusters held the same dangerous state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// Which state.
    pub kind: OverlapKind,
    /// Start (ms).
    pub from: Ms,
    /// End (ms), after `from`.
    pub to: Ms,
    /// Whether it lies inside an accepted window.
    pub accepted: bool,
}

impl Span {
    /// A span.
    pub fn new(from: Ms, to: Ms, label: impl Into<String>, detail: impl Into<String>) -> Self {
        Span {
            from,
            to,
            label: label.into(),
            detail: detail.into(),
        }
    }
}

impl Mark {
    /// A mark.
    pub fn new(at: Ms, label: impl Into<String>, detail: impl Into<String>) -> Self {
        Mark {
            at,
            label: label.into(),
            detail: detail.into(),
        }
    }
}

impl Fault {
    /// A fault on `cluster` (`None`: both, or the store).
    pub fn new(cluster: Option<&str>, span: Span) -> Self {
        Fault {
            cluster: cluster.map(str::to_owned),
            span,
        }
    }
}

impl Window {
    /// A window.
    pub fn new(from: Ms, to: Ms, label: impl Into<String>) -> Self {
        Window {
            from,
            to,
            label: label.into(),
        }
    }
}

impl Violation {
    /// A violation.
    pub fn new(at: Ms, invariant: impl Into<String>, detail: impl Into<String>) -> Self {
        Violation {
            at,
            invariant: invariant.into(),
            detail: detail.into(),
        }
    }
}

impl Band {
    /// An empty band of `kind`.
    pub fn new(kind: BandKind) -> Self {
        Band {
            kind,
            spans: Vec::new(),
        }
    }

    /// Adds a span.
    pub fn push(
        &mut self,
        from: Ms,
        to: Ms,
        label: impl Into<String>,
        detail: impl Into<String>,
    ) -> &mut Self {
        self.spans.push(Span::new(from, to, label, detail));
        self
    }
}

impl ClusterLane {
    /// An empty lane for the cluster `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ClusterLane {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The band of `kind`, created (empty) if the lane has none yet.
    pub fn band_mut(&mut self, kind: BandKind) -> &mut Band {
        let i = match self.bands.iter().position(|b| b.kind == kind) {
            Some(i) => i,
            None => {
                self.bands.push(Band::new(kind));
                self.bands.len() - 1
            }
        };
        &mut self.bands[i]
    }

    /// Adds a stage.
    pub fn stage(
        &mut self,
        from: Ms,
        to: Ms,
        label: impl Into<String>,
        detail: impl Into<String>,
    ) -> &mut Self {
        self.stages.push(Span::new(from, to, label, detail));
        self
    }

    /// Adds a mark.
    pub fn mark(
        &mut self,
        at: Ms,
        label: impl Into<String>,
        detail: impl Into<String>,
    ) -> &mut Self {
        self.marks.push(Mark::new(at, label, detail));
        self
    }
}

impl Timeline {
    /// An empty timeline titled `title` (its range derived from the content).
    pub fn new(title: impl Into<String>) -> Self {
        Timeline {
            title: title.into(),
            ..Default::default()
        }
    }

    /// The lane of the cluster `name`, appended (empty) if there is none yet.
    pub fn cluster_mut(&mut self, name: &str) -> &mut ClusterLane {
        let i = match self.clusters.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.clusters.push(ClusterLane::new(name));
                self.clusters.len() - 1
            }
        };
        &mut self.clusters[i]
    }

    /// The axis's range: `(start, end)` when `end > start`; otherwise from the earliest
    /// to the latest time in the content (at least 1 s long; `start` + 1 s when empty).
    pub fn range(&self) -> (Ms, Ms) {
        if self.end > self.start {
            return (self.start, self.end);
        }
        let span = |s: &Span| [s.from, s.to];
        let mut ts: Vec<Ms> = Vec::new();
        for c in &self.clusters {
            ts.extend(c.stages.iter().flat_map(span));
            ts.extend(c.bands.iter().flat_map(|b| b.spans.iter().flat_map(span)));
            ts.extend(c.marks.iter().map(|m| m.at));
        }
        ts.extend(self.record.iter().flat_map(span));
        ts.extend(self.record_marks.iter().map(|m| m.at));
        ts.extend(self.faults.iter().flat_map(|f| span(&f.span)));
        ts.extend(self.accepted.iter().flat_map(|w| [w.from, w.to]));
        ts.extend(self.violation.iter().map(|v| v.at));
        let lo = ts.iter().copied().min().unwrap_or(self.start);
        let hi = ts.iter().copied().max().unwrap_or(lo);
        (lo, if hi > lo { hi } else { lo.saturating_add(1000) })
    }
}

/// Spans from a sampled boolean series (samples in time order): one from each sample where
/// the value turns true to the next where it turns false, or to `end`.
pub fn spans_of(samples: &[(Ms, bool)], end: Ms, label: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut on: Option<Ms> = None;
    for &(t, v) in samples {
        match (on, v) {
            (None, true) => on = Some(t),
            (Some(from), false) => {
                out.push(Span::new(from, t, label, ""));
                on = None;
            }
            _ => {}
        }
    }
    if let Some(from) = on {
        out.push(Span::new(from, end, label, ""));
    }
    out
}

/// A duration for people: `850 ms`, `1.4 s`, `2 min 5 s`, `1 h 3 min`.
pub fn duration(ms: Ms) -> String {
    if ms < 0 {
        return format!("-{}", duration(ms.saturating_neg()));
    }
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let tenths = ms.saturating_add(50) / 100;
    if tenths < 600 {
        return match tenths % 10 {
            0 => format!("{} s", tenths / 10),
            d => format!("{}.{d} s", tenths / 10),
        };
    }
    let secs = ms.saturating_add(500) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// The axis's tick step for a range of `span` ms: the smallest 1, 2 or 5 × 10^k ms that
/// needs at most `max_ticks` steps.
pub fn tick_step(span: Ms, max_ticks: i64) -> Ms {
    let (span, max) = (span.max(1), max_ticks.max(1));
    let mut base: Ms = 1;
    loop {
        for m in [1, 2, 5] {
            let step = base.saturating_mul(m);
            if step.saturating_mul(max) >= span {
                return step;
            }
        }
        base = base.saturating_mul(10);
    }
}

/// Seconds with at most three decimals: `12.5 s`, `0 s`, `-0.25 s`.
fn seconds(ms: Ms) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let (s, frac) = (ms.unsigned_abs() / 1000, ms.unsigned_abs() % 1000);
    if frac == 0 {
        return format!("{sign}{s} s");
    }
    format!("{sign}{s}.{} s", format!("{frac:03}").trim_end_matches('0'))
}

type Iv = (Ms, Ms);

/// Sorted, disjoint, non-empty intervals covering the same time as `v`.
fn merged(mut v: Vec<Iv>) -> Vec<Iv> {
    v.retain(|&(a, b)| b > a);
    v.sort_unstable();
    let mut out: Vec<Iv> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn ivs(spans: &[Span]) -> impl Iterator<Item = Iv> + '_ {
    spans.iter().map(|s| (s.from.min(s.to), s.from.max(s.to)))
}

fn intersect(a: &[Iv], b: &[Iv]) -> Vec<Iv> {
    let cut = |&(a0, a1): &Iv| b.iter().map(move |&(b0, b1)| (a0.max(b0), a1.min(b1)));
    merged(a.iter().flat_map(cut).collect())
}

/// `a` minus `b` (`b` merged).
fn subtract(a: &[Iv], b: &[Iv]) -> Vec<Iv> {
    let mut out = Vec::new();
    for &(from, to) in a {
        let mut f = from;
        for &(b0, b1) in b {
            if b1 <= f || b0 >= to {
                continue;
            }
            if b0 > f {
                out.push((f, b0));
            }
            f = f.max(b1);
        }
        if to > f {
            out.push((f, to));
        }
    }
    out
}

/// Where at least two of the (each merged) sets hold.
fn at_least_two(sets: &[Vec<Iv>]) -> Vec<Iv> {
    let mut ev: Vec<(Ms, i32)> = sets
        .iter()
        .flatten()
        .flat_map(|&(a, b)| [(a, 1), (b, -1)])
        .collect();
    ev.sort_unstable();
    let (mut out, mut n, mut i) = (Vec::new(), 0, 0);
    while i < ev.len() {
        let t = ev[i].0;
        while i < ev.len() && ev[i].0 == t {
            n += ev[i].1;
            i += 1;
        }
        if let (true, Some(&(next, _))) = (n >= 2, ev.get(i)) {
            out.push((t, next));
        }
    }
    merged(out)
}

/// The intervals where two or more clusters were primary ([`OverlapKind::TwoPrimaries`])
/// or writers ([`OverlapKind::TwoWriters`]: volumes primary and pods running or traffic
/// open), each split into the parts inside the accepted windows (`accepted`) and outside.
/// Primaries first, then writers, each in time order; never empty intervals.
pub fn overlaps(t: &Timeline) -> Vec<Overlap> {
    let band = |lane: &ClusterLane, kind: BandKind| -> Vec<Iv> {
        merged(
            lane.bands
                .iter()
                .filter(|b| b.kind == kind)
                .flat_map(|b| ivs(&b.spans))
                .collect(),
        )
    };
    let primary: Vec<Vec<Iv>> = t
        .clusters
        .iter()
        .map(|l| band(l, BandKind::VolumesPrimary))
        .collect();
    let writers: Vec<Vec<Iv>> = t
        .clusters
        .iter()
        .zip(&primary)
        .map(|(l, p)| {
            let mut active = band(l, BandKind::PodsRunning);
            active.extend(band(l, BandKind::TrafficOpen));
            intersect(p, &merged(active))
        })
        .collect();
    let ok = merged(
        t.accepted
            .iter()
            .map(|w| (w.from.min(w.to), w.from.max(w.to)))
            .collect(),
    );
    let mut out = Vec::new();
    for (kind, sets) in [
        (OverlapKind::TwoPrimaries, primary),
        (OverlapKind::TwoWriters, writers),
    ] {
        let both = at_least_two(&sets);
        let part = |accepted| {
            move |(from, to)| Overlap {
                kind,
                from,
                to,
                accepted,
            }
        };
        let mut parts: Vec<Overlap> = intersect(&both, &ok).into_iter().map(part(true)).collect();
        parts.extend(subtract(&both, &ok).into_iter().map(part(false)));
        parts.sort_by_key(|o| o.from);
        out.extend(parts);
    }
    out
}

const WIDTH: f64 = 1400.0;
const LEFT: f64 = 160.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 18.0;
const BAR: f64 = 14.0;
const CHAR_W: f64 = 6.6;
const RED: &str = "#d62728";
const AMBER: &str = "#ff9f1c";
const RECORD: &str = "#9467bd";
const FAULT: &str = "#e377c2";
const BOLD: &str = " font-weight=\"bold\"";
const DARK: &str = " fill=\"#222\"";
const SMALL: &str = " font-size=\"10\" fill=\"#222\"";
const STROKE: &str = " stroke=\"#333\"";

/// XML-escaped text; characters XML 1.0 forbids are dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

fn text_w(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_W
}

/// SVG being written.
#[derive(Default)]
struct Pen(String);

impl Pen {
    fn text(&mut self, x: f64, y: f64, attrs: &str, s: &str) {
        let s = esc(s);
        let _ = write!(self.0, "<text x=\"{x:.1}\" y=\"{y:.1}\"{attrs}>{s}</text>");
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, attrs: &str) {
        let (w, h) = (w.max(0.0), h.max(0.0));
        let size = format!("width=\"{w:.1}\" height=\"{h:.1}\"");
        let _ = write!(self.0, "<rect x=\"{x:.1}\" y=\"{y:.1}\" {size}{attrs}/>");
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
        let to = format!("x2=\"{x2:.1}\" y2=\"{y2:.1}\"");
        let _ = write!(self.0, "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" {to}{attrs}/>");
    }

    fn push(&mut self, s: &str) {
        self.0.push_str(s);
    }
}

fn fill(c: &str) -> String {
    format!(" fill=\"{c}\"")
}

struct Frame {
    start: Ms,
    end: Ms,
}

impl Frame {
    fn x(&self, t: Ms) -> f64 {
        let f = t.saturating_sub(self.start) as f64 / self.end.saturating_sub(self.start) as f64;
        LEFT + f.clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn rel(&self, t: Ms) -> String {
        seconds(t.saturating_sub(self.start))
    }

    /// Hover text: the label, the times (and duration when `to` is set), the detail.
    fn title(&self, label: &str, from: Ms, to: Option<Ms>, detail: &str) -> String {
        let mut s = match to {
            Some(to) => {
                let d = duration(to.saturating_sub(from));
                format!("{label}\n{} → {} ({d})", self.rel(from), self.rel(to))
            }
            None => format!("{label}\nat {}", self.rel(from)),
        };
        if !detail.is_empty() {
            let _ = write!(s, "\n{detail}");
        }
        s
    }
}

/// A data element's attributes (`data-kind`, `data-label`, ...), their values unescaped.
pub type Element = std::collections::BTreeMap<String, String>;

/// Every data element of a picture ([`svg`] or [`html`]), in document order: what tests
/// and scripts read back (the attributes are listed in the module docs).
pub fn elements(doc: &str) -> Vec<Element> {
    let unescape = |v: &str| {
        v.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    };
    let mut out = Vec::new();
    for (i, _) in doc.match_indices("<g data-kind=") {
        let Some(len) = doc[i..].find('>') else {
            break;
        };
        let tag = &doc[i + 3..i + len];
        let element = tag
            .split("\" ")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.to_string(), unescape(v.trim_end_matches('"'))))
            .collect();
        out.push(element);
    }
    out
}

/// The opening `<g>` of a data element, with its `<title>`.
fn head(kind: &str, extra: &[(&str, &str)], label: &str, from: Ms, to: Ms, title: &str) -> String {
    let mut s = format!("<g data-kind=\"{kind}\"");
    for (k, v) in extra {
        let _ = write!(s, " data-{k}=\"{}\"", esc(v));
    }
    let (l, t) = (esc(label), esc(title));
    let _ = write!(
        s,
        " data-label=\"{l}\" data-from=\"{from}\" data-to=\"{to}\"><title>{t}</title>"
    );
    s
}

enum Shape {
    Bar(&'static str),
    Diamond(&'static str),
    Instant(&'static str),
}

struct Item {
    head: String,
    x0: f64,
    x1: f64,
    text: String,
    shape: Shape,
}

/// One row at `y`: each item's shape, its text inside when it fits, else beside when there
/// is room before the next item, else on one of two text lines under the row, else only in
/// the hover text. Returns the row's height.
fn draw_row(p: &mut Pen, mut items: Vec<Item>, y: f64) -> f64 {
    items.sort_by(|a, b| a.x0.total_cmp(&b.x0));
    let (mut lines, mut used) = ([f64::MIN; 2], 0);
    for (i, it) in items.iter().enumerate() {
        let next = items.get(i + 1).map_or(WIDTH - RIGHT, |n| n.x0);
        let (x, tw, y0, cy) = (it.x0, text_w(&it.text), y + 2.0, y + 2.0 + BAR / 2.0);
        p.push(&it.head);
        let right = match it.shape {
            Shape::Bar(c) => {
                let w = (it.x1 - x).max(1.5);
                p.rect(x, y0, w, BAR, &fill(c));
                if !it.text.is_empty() && w >= tw + 6.0 {
                    p.text(x + 3.0, y + 13.0, " fill=\"#fff\"", &it.text);
                    p.push("</g>");
                    continue;
                }
                x + w
            }
            Shape::Diamond(c) => {
                let (l, r, top, bot) = (x - 5.0, x + 5.0, cy - 5.0, cy + 5.0);
                let points = format!("{l:.1},{cy} {x:.1},{top} {r:.1},{cy} {x:.1},{bot}");
                p.push(&format!("<polygon points=\"{points}\"{}/>", fill(c)));
                r
            }
            Shape::Instant(c) => {
                let (l, r, tip) = (x - 5.0, x + 5.0, y0 + 5.0);
                p.rect(x - 1.5, y0, 3.0, BAR, &fill(c));
                let points = format!("{l:.1},{y0} {r:.1},{y0} {x:.1},{tip}");
                p.push(&format!("<polygon points=\"{points}\"{}/>", fill(c)));
                r
            }
        };
        if it.text.is_empty() {
        } else if next - right >= tw + 6.0 {
            p.text(right + 3.0, y + 13.0, DARK, &it.text);
        } else {
            // Under the row, kept inside the picture's right edge.
            let lx = (x - 3.0).min(WIDTH - 4.0 - tw).max(0.0);
            if let Some(k) = lines.iter().position(|&end| end + 6.0 <= lx) {
                let ly = y + ROW + 8.0 + 11.0 * k as f64;
                p.text(lx, ly, SMALL, &it.text);
                (lines[k], used) = (lx + tw, used.max(k + 1));
            }
        }
        p.push("</g>");
    }
    ROW + used as f64 * 11.0
}

/// Assigns each interval (in input order) a sub-row so that none overlaps another in its
/// sub-row; returns the sub-rows and how many there are (at least one).
fn pack(ivs: &[Iv]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..ivs.len()).collect();
    order.sort_by_key(|&i| ivs[i]);
    let (mut rows, mut ends): (Vec<usize>, Vec<Ms>) = (vec![0; ivs.len()], Vec::new());
    for i in order {
        let (from, to) = ivs[i];
        let r = ends
            .iter()
            .position(|&e| e < from || (e == from && to > from));
        let r = r.unwrap_or_else(|| {
            ends.push(Ms::MIN);
            ends.len() - 1
        });
        (ends[r], rows[i]) = (to, r);
    }
    (rows, ends.len().max(1))
}

fn stage_fill(label: &str) -> &'static str {
    // The protocol's stages, and short names for the same.
    match label.split_whitespace().next().unwrap_or("") {
        "lock" | "initialization" => "#637939",
        "stop" | "source-preparation" => "#8c6d31",
        "demote" | "volume-demotion" => "#843c39",
        "promote" | "volume-promotion" => "#3182bd",
        "start" | "target-activation" => "#31a354",
        "record" | "completion" => "#756bb1",
        _ => "#636363",
    }
}

/// The text in the left column for the row at `y`.
fn row_label(p: &mut Pen, y: f64, s: &str, bold: bool) {
    p.text(8.0, y + 13.0, if bold { BOLD } else { "" }, s);
}

/// A span's item: a bar, or an instant's marker where `from == to`.
fn span_item(f: &Frame, head: String, s: &Span, text: String, c: &'static str) -> Item {
    let (a, b) = (s.from.min(s.to), s.from.max(s.to));
    let shape = if a == b {
        Shape::Instant(c)
    } else {
        Shape::Bar(c)
    };
    Item {
        head,
        x0: f.x(a),
        x1: f.x(b),
        text,
        shape,
    }
}

/// Rows of spans, packed so that none hides another; returns the y below them.
fn span_rows(p: &mut Pen, mut y: f64, name: &str, spans: Vec<(Iv, Item)>) -> f64 {
    let (rows, n) = pack(&spans.iter().map(|s| s.0).collect::<Vec<_>>());
    let mut by_row: Vec<Vec<Item>> = (0..n).map(|_| Vec::new()).collect();
    for ((_, it), r) in spans.into_iter().zip(rows) {
        by_row[r].push(it);
    }
    row_label(p, y, name, false);
    for items in by_row {
        y += draw_row(p, items, y);
    }
    y
}

/// The items of stages, record spans or faults (`kind`), with their data attributes.
fn spans(f: &Frame, kind: &str, extra: &[(&str, &str)], spans: &[Span]) -> Vec<(Iv, Item)> {
    let item = |s: &Span| {
        let d = duration(s.to.saturating_sub(s.from));
        let (text, c) = match (kind, extra.first()) {
            ("stage", _) if s.label.is_empty() => (d, stage_fill("")),
            ("stage", _) => {
                let text = format!("{} {d}", s.label);
                (text, stage_fill(&s.label))
            }
            ("fault", Some((_, cluster))) => (format!("{cluster}: {}", s.label), FAULT),
            ("fault", None) => (s.label.clone(), FAULT),
            _ => (s.label.clone(), RECORD),
        };
        let tl = if kind == "stage" { &s.label } else { &text };
        let title = f.title(tl, s.from, Some(s.to), &s.detail);
        let head = head(kind, extra, &s.label, s.from, s.to, &title);
        let iv = (s.from.min(s.to), s.from.max(s.to));
        (iv, span_item(f, head, s, text, c))
    };
    spans.iter().map(item).collect()
}

/// The items of marks (`kind`: `mark` or `record-mark`).
fn marks(f: &Frame, kind: &str, cluster: Option<&str>, marks: &[Mark]) -> Vec<Item> {
    let extra: Vec<(&str, &str)> = cluster.map(|c| ("cluster", c)).into_iter().collect();
    let c = if cluster.is_some() { "#333" } else { RECORD };
    let item = |m: &Mark| {
        let title = f.title(&m.label, m.at, None, &m.detail);
        let head = head(kind, &extra, &m.label, m.at, m.at, &title);
        let (x0, x1, text) = (f.x(m.at), f.x(m.at), m.label.clone());
        Item {
            head,
            x0,
            x1,
            text,
            shape: Shape::Diamond(c),
        }
    };
    marks.iter().map(item).collect()
}

/// One cluster's block; returns the y below it.
fn cluster_block(p: &mut Pen, f: &Frame, lane: &ClusterLane, mut y: f64) -> f64 {
    let name = lane.name.as_str();
    row_label(p, y, &format!("cluster {name}"), true);
    let stages = spans(f, "stage", &[("cluster", name)], &lane.stages);
    y = span_rows(p, y + ROW, "stages", stages);
    for kind in BandKind::ALL {
        let bands: Vec<&Band> = lane.bands.iter().filter(|b| b.kind == kind).collect();
        if bands.is_empty() {
            continue;
        }
        let extra = [("cluster", name), ("band", kind.slug())];
        let items = bands.iter().flat_map(|b| &b.spans).map(|s| {
            let label = if s.label.is_empty() {
                kind.label()
            } else {
                &s.label
            };
            let title = f.title(label, s.from, Some(s.to), &s.detail);
            let head = head("band", &extra, label, s.from, s.to, &title);
            let mut it = span_item(f, head, s, s.label.clone(), kind.fill());
            it.shape = Shape::Bar(kind.fill());
            it
        });
        row_label(p, y, kind.label(), false);
        y += draw_row(p, items.collect(), y);
    }
    if !lane.marks.is_empty() {
        row_label(p, y, "marks", false);
        y += draw_row(p, marks(f, "mark", Some(name), &lane.marks), y);
    }
    y
}

/// The overlaps as translucent vertical bands: in the strip from `top` to `blocks` (their
/// labels on `lines` lines, and where hovering finds them), then through the cluster
/// blocks to `bottom` (there letting the pointer through to the bars under them).
fn draw_overlaps(
    p: &mut Pen,
    f: &Frame,
    ov: &[Overlap],
    (top, blocks, bottom): (f64, f64, f64),
    lines: usize,
) {
    let mut ends = vec![f64::MIN; lines];
    for o in ov {
        let (x0, w) = (f.x(o.from), (f.x(o.to) - f.x(o.from)).max(1.5));
        let (c, tc, label, note) = match o.accepted {
            true => (
                AMBER,
                "#a65f00",
                "uptime window (accepted)",
                "inside an accepted window",
            ),
            false => (RED, "#b01010", o.kind.label(), "not accepted"),
        };
        let title = f.title(o.kind.label(), o.from, Some(o.to), note);
        let acc = o.accepted.to_string();
        let extra = [("overlap", o.kind.slug()), ("accepted", acc.as_str())];
        p.push(&head("overlap", &extra, label, o.from, o.to, &title));
        p.rect(
            x0,
            top,
            w,
            blocks - top,
            &format!("{} fill-opacity=\"0.3\"", fill(c)),
        );
        let attrs = format!("{} fill-opacity=\"0.22\" pointer-events=\"none\"", fill(c));
        p.rect(x0, blocks, w, bottom - blocks, &attrs);
        let lx = (x0 + 2.0).min(WIDTH - 4.0 - text_w(label));
        if let Some(k) = ends.iter().position(|&e| e + 6.0 <= lx) {
            let attrs = format!(" font-size=\"10\"{}", fill(tc));
            p.text(lx, top + 10.0 + 11.0 * k as f64, &attrs, label);
            ends[k] = lx + text_w(label);
        }
        p.push("</g>");
    }
}

/// The legend's row(s) from `y`; returns the y below them.
fn legend(p: &mut Pen, y: f64) -> f64 {
    let (mut x, mut y) = (8.0, y);
    let mut entries: Vec<(&str, &str)> = vec![("stage", stage_fill(""))];
    entries.extend(BandKind::ALL.iter().map(|k| (k.label(), k.fill())));
    entries.extend([
        ("record", RECORD),
        ("fault", FAULT),
        ("mark", "#333"),
        ("overlap", RED),
    ]);
    entries.extend([("accepted overlap", AMBER), ("violation", RED)]);
    for (label, c) in entries {
        let w = 30.0 + text_w(label);
        if x + w > WIDTH - RIGHT {
            (x, y) = (8.0, y + 18.0);
        }
        let op = if label.contains("overlap") {
            "0.35"
        } else {
            "1"
        };
        let sw = if label == "violation" { 2.0 } else { 12.0 };
        let attrs = format!("{} fill-opacity=\"{op}\"", fill(c));
        p.rect(x + (12.0 - sw) / 2.0, y - 10.0, sw, 12.0, &attrs);
        p.text(x + 16.0, y, "", label);
        x += w;
    }
    y + 12.0
}

/// The picture as a self-contained SVG document (no scripts, no external assets).
pub fn svg(t: &Timeline) -> String {
    let (start, end) = t.range();
    let f = Frame { start, end };
    let ov = overlaps(t);
    let (mut p, mut y) = (Pen::default(), 22.0);
    p.text(8.0, y, " font-size=\"16\" font-weight=\"bold\"", &t.title);
    for sub in &t.subtitle {
        y += 16.0;
        p.text(8.0, y, " fill=\"#444\"", sub);
    }
    let (verdict, c) = match &t.violation {
        Some(v) => (format!("VIOLATION {} at {}", v.invariant, f.rel(v.at)), RED),
        None => ("no violation".to_owned(), "#2ca02c"),
    };
    p.text(8.0, y + 18.0, &format!("{BOLD}{}", fill(c)), &verdict);
    // The axis: a tick every 1, 2 or 5 × 10^k ms from the start.
    let axis = y + 44.0;
    let (step, mut ticks) = (tick_step(end.saturating_sub(start), 12), vec![start]);
    while let Some(n) = ticks.last().and_then(|t| t.checked_add(step)) {
        if n > end {
            break;
        }
        ticks.push(n);
    }
    for &tick in &ticks {
        let (x, label) = (f.x(tick), f.rel(tick));
        let title = format!("{label}\nms {tick}");
        p.push(&head("axis", &[], &label, tick, tick, &title));
        p.line((x, axis - 4.0), (x, axis), STROKE);
        p.text(x, axis - 7.0, " text-anchor=\"middle\"", &label);
        p.push("</g>");
    }
    p.line((LEFT, axis), (WIDTH - RIGHT, axis), STROKE);
    // A strip for the violation's name and the overlaps' labels, then the blocks.
    let (strip, lines) = (axis + 4.0, ov.len().min(4));
    let marked = t.violation.is_some() || !ov.is_empty();
    let blocks_top = if marked {
        strip + 18.0 + 11.0 * lines as f64
    } else {
        strip
    };
    let (mut backs, mut y) = (Pen::default(), blocks_top);
    for (i, lane) in t.clusters.iter().enumerate() {
        let top = y;
        y = cluster_block(&mut p, &f, lane, y);
        let c = if i % 2 == 0 { "#f4f6f8" } else { "#fbfbfb" };
        backs.rect(0.0, top, WIDTH, y - top + 2.0, &fill(c));
        y += 6.0;
    }
    let blocks_bottom = y - 4.0;
    row_label(&mut p, y, "record", true);
    y = span_rows(
        &mut p,
        y + ROW,
        "spans",
        spans(&f, "record", &[], &t.record),
    );
    if !t.record_marks.is_empty() {
        row_label(&mut p, y, "marks", false);
        y += draw_row(&mut p, marks(&f, "record-mark", None, &t.record_marks), y);
    }
    row_label(&mut p, y + 6.0, "faults", true);
    let mut faults: Vec<(Iv, Item)> = Vec::new();
    for fl in &t.faults {
        let extra: Vec<(&str, &str)> = fl.cluster.iter().map(|c| ("cluster", c.as_str())).collect();
        faults.extend(spans(&f, "fault", &extra, std::slice::from_ref(&fl.span)));
    }
    let bottom = span_rows(&mut p, y + 6.0 + ROW, "", faults);
    // Overlaps and the violation, on top of the blocks.
    draw_overlaps(
        &mut p,
        &f,
        &ov,
        (strip + 14.0, blocks_top, blocks_bottom),
        lines,
    );
    if let Some(v) = &t.violation {
        let x = f.x(v.at);
        let title = f.title(&format!("VIOLATION {}", v.invariant), v.at, None, &v.detail);
        let extra = [("invariant", v.invariant.as_str())];
        p.push(&head("violation", &extra, &v.invariant, v.at, v.at, &title));
        p.line(
            (x, strip),
            (x, bottom),
            &format!(" stroke=\"{RED}\" stroke-width=\"2\""),
        );
        // Beside the line, or before it near the right edge.
        let tx = if x + 3.0 + text_w(&v.invariant) > WIDTH - 4.0 {
            x - 3.0 - text_w(&v.invariant)
        } else {
            x + 3.0
        };
        p.text(
            tx,
            strip + 11.0,
            &format!("{BOLD}{}", fill(RED)),
            &v.invariant,
        );
        p.push("</g>");
    }
    let h = legend(&mut p, bottom + 16.0).ceil();
    let mut out = Pen(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" \
         viewBox=\"0 0 {WIDTH} {h}\" font-family=\"monospace\" font-size=\"11\">\
         <defs><pattern id=\"tl-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#555\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#111\" stroke-width=\"3\"/></pattern>\
         </defs><rect width=\"{WIDTH}\" height=\"{h}\" fill=\"#fff\"/>{}",
        backs.0
    ));
    for &tick in &ticks {
        out.line((f.x(tick), axis), (f.x(tick), bottom), " stroke=\"#ddd\"");
    }
    out.push(&p.0);
    out.push("</svg>\n");
    out.0
}

const CSS: &str = "body{font-family:monospace;margin:12px;padding-bottom:34vh;color:#222}\
svg [data-kind]{cursor:pointer}svg [data-kind]:hover{opacity:.8}\
svg g.sel rect,svg g.sel polygon,svg g.sel line{stroke:#000;stroke-width:2}\
#detail{position:fixed;left:0;right:0;bottom:0;max-height:30vh;overflow:auto;margin:0;\
padding:8px 12px;white-space:pre-wrap;background:#fffbe6;border-top:2px solid #e0c060}\
table{border-collapse:collapse;margin-top:16px}th,td{border:1px solid #ccc;padding:2px 6px;\
text-align:left;vertical-align:top}td.d{white-space:pre-wrap}";

const SCRIPT: &str = "(function(){var panel=document.getElementById('detail'),pinned=null;\
function target(e){for(var n=e.target;n&&n.getAttribute;n=n.parentNode){\
if(n.getAttribute('data-kind'))return n;}return null;}\
function text(g){for(var i=0;i<g.childNodes.length;i++){var c=g.childNodes[i];\
if(c.nodeName.toLowerCase()==='title')return c.textContent;}return '';}\
var pic=document.getElementById('pic');\
pic.addEventListener('mouseover',function(e){if(pinned)return;var g=target(e);\
if(g)panel.textContent=text(g);});\
pic.addEventListener('click',function(e){var g=target(e),old=pinned;\
if(old)old.classList.remove('sel');pinned=(g&&g!==old)?g:null;\
if(pinned){pinned.classList.add('sel');panel.textContent=text(pinned);}});})();";

/// The picture as one self-contained HTML5 page (works offline): the SVG inline, a panel
/// showing the hovered (or clicked, to pin it) element's detail, and a table of the
/// faults, record marks, overlaps and the violation.
pub fn html(t: &Timeline) -> String {
    let (start, end) = t.range();
    let f = Frame { start, end };
    let mut rows: Vec<(Ms, String)> = Vec::new();
    let mut row =
        |what: &str, from: Ms, to: Option<Ms>, cluster: &str, label: &str, detail: &str| {
            let (until, dur) = match to {
                Some(to) => (f.rel(to), duration(to.saturating_sub(from))),
                None => (String::new(), String::new()),
            };
            let mut r = String::from("<tr>");
            for c in [what, &f.rel(from), &until, &dur, cluster, label] {
                let _ = write!(r, "<td>{}</td>", esc(c));
            }
            let _ = writeln!(r, "<td class=\"d\">{}</td></tr>", esc(detail));
            rows.push((from, r));
        };
    for fl in &t.faults {
        let (s, cluster) = (&fl.span, fl.cluster.as_deref().unwrap_or("all"));
        row(
            "fault",
            s.from,
            (s.to != s.from).then_some(s.to),
            cluster,
            &s.label,
            &s.detail,
        );
    }
    for m in &t.record_marks {
        row("record mark", m.at, None, "", &m.label, &m.detail);
    }
    for o in overlaps(t) {
        let what = if o.accepted {
            "overlap (accepted)"
        } else {
            "overlap"
        };
        row(what, o.from, Some(o.to), "", o.kind.label(), "");
    }
    if let Some(v) = &t.violation {
        row("VIOLATION", v.at, None, "", &v.invariant, &v.detail);
    }
    rows.sort_by_key(|r| r.0);
    let rows: String = rows.into_iter().map(|r| r.1).collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{CSS}</style></head><body>\n<div id=\"pic\">{}</div>\n<table><thead><tr>\
         <th>what</th><th>at</th><th>until</th><th>duration</th><th>cluster</th><th>label</th>\
         <th>detail</th></tr></thead><tbody>\n{rows}</tbody></table>\n<pre id=\"detail\">Hover \
         over an element for its detail; click to pin it, click again to unpin.</pre>\n\
         <script>{SCRIPT}</script></body></html>\n",
        esc(&t.title),
        svg(t)
    )
}

#[cfg(test)]
mod tests {
    use super::BandKind::*;
    use super::*;

    type Attrs = Element;

    #[test]
    fn every_data_element_opens_with_its_title() {
        let doc = svg(&sample());
        let n = doc.matches("<g data-kind=").count();
        assert_eq!(elements(&doc).len(), n);
        for (i, _) in doc.match_indices("<g data-kind=") {
            let close = i + doc[i..].find('>').unwrap();
            assert!(
                doc[close + 1..].starts_with("<title>"),
                "{}",
                &doc[i..close]
            );
        }
    }

    /// For each element of `kind` (and of `cluster` when set): the values of `keys`, joined.
    fn pick(doc: &str, kind: &str, cluster: Option<&str>, keys: &[&str]) -> Vec<String> {
        let els = elements(doc).into_iter().filter(|e| e["data-kind"] == kind);
        let els = els
            .filter(|e| cluster.is_none() || e.get("data-cluster").map(|c| c.as_str()) == cluster);
        let value = |e: &Attrs, k: &str| e.get(k).cloned().unwrap_or_else(|| "-".into());
        els.map(|e| {
            keys.iter()
                .map(|k| value(&e, k))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
    }

    fn sample() -> Timeline {
        let mut t = Timeline::new("failover A → B (consistency)");
        t.subtitle = vec!["seed 42".into(), "replay: failover-sim --seed 42".into()];
        t.end = 10_000;
        let a = t.cluster_mut("A");
        a.stage(0, 120, "lock", "lock taken\ntoken 3");
        a.stage(120, 1520, "stop", "");
        a.stage(1520, 2000, "demote", "");
        a.band_mut(VolumesPrimary).push(0, 2300, "", "");
        a.band_mut(PodsRunning).push(0, 1500, "", "");
        a.band_mut(TrafficOpen)
            .push(0, 2250, "", "traffic left open");
        a.band_mut(FluxSuspended).push(100, 10_000, "", "");
        a.band_mut(Fenced).push(2300, 10_000, "fenced", "");
        a.mark(1520, "journal stop", "journal: stop done");
        let b = t.cluster_mut("B");
        b.stage(2000, 2600, "promote", "");
        b.stage(2600, 4000, "start", "");
        b.stage(4000, 4100, "record", "");
        b.band_mut(VolumesPrimary).push(2100, 10_000, "", "");
        b.band_mut(PodsRunning).push(2150, 10_000, "", "");
        t.record
            .push(Span::new(0, 4100, "lock A token 3", "holder A\ntoken 3"));
        t.record.push(Span::new(4100, 10_000, "free token 3", ""));
        t.record_marks.push(Mark::new(1520, "journal stop", ""));
        let drop = Span::new(1000, 3000, "drop <&\"> 'x'", "");
        t.faults.push(Fault::new(Some("B"), drop));
        let throttle = Span::new(2500, 2500, "store throttle", "");
        t.faults.push(Fault::new(None, throttle));
        t.accepted.push(Window::new(2200, 5000, "uptime window"));
        t.violation = Some(Violation::new(2150, "single-writer", "A and B both write"));
        t
    }

    #[test]
    fn duration_formats() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(1000), "1 s");
        assert_eq!(duration(1449), "1.4 s");
        assert_eq!(duration(12_000), "12 s");
        assert_eq!(duration(59_960), "1 min");
        assert_eq!(duration(125_000), "2 min 5 s");
        assert_eq!(duration(3_780_000), "1 h 3 min");
        assert_eq!(duration(-1400), "-1.4 s");
        assert_eq!(seconds(12_500), "12.5 s");
        assert_eq!(seconds(-250), "-0.25 s");
    }

    #[test]
    fn tick_step_picks_1_2_5() {
        assert_eq!(tick_step(10_000, 12), 1000);
        assert_eq!(tick_step(12_345, 10), 2000);
        assert_eq!(tick_step(40_000, 10), 5000);
        assert_eq!(tick_step(60_000, 10), 10_000);
        assert_eq!(tick_step(7, 12), 1);
        assert_eq!(tick_step(0, 0), 1);
        assert!(tick_step(Ms::MAX, 12) > 0);
        let ticks = pick(&svg(&sample()), "axis", None, &["data-from", "data-label"]);
        assert_eq!(ticks.len(), 11);
        assert_eq!(
            (ticks[1].as_str(), ticks[10].as_str()),
            ("1000 1 s", "10000 10 s")
        );
    }

    #[test]
    fn spans_of_turns_samples_into_spans() {
        let samples = [(0, false), (10, true), (20, true), (30, false), (40, true)];
        let spans = spans_of(&samples, 99, "up");
        let iv: Vec<_> = spans
            .iter()
            .map(|s| (s.from, s.to, s.label.as_str()))
            .collect();
        assert_eq!(iv, [(10, 30, "up"), (40, 99, "up")]);
        assert!(spans_of(&[], 5, "x").is_empty());
    }

    #[test]
    fn overlaps_are_exact_and_split_by_accepted_windows() {
        use OverlapKind::*;
        let o = |kind, from, to, accepted| Overlap {
            kind,
            from,
            to,
            accepted,
        };
        let (p, w) = (TwoPrimaries, TwoWriters);
        let split = [o(p, 2100, 2200, false), o(p, 2200, 2300, true)];
        let split = [split, [o(w, 2150, 2200, false), o(w, 2200, 2250, true)]].concat();
        assert_eq!(overlaps(&sample()), split);
        let mut t = sample();
        t.accepted.clear();
        t.clusters[1]
            .band_mut(VolumesPrimary)
            .push(1000, 1000, "", "");
        let whole = [o(p, 2100, 2300, false), o(w, 2150, 2250, false)];
        assert_eq!(overlaps(&t), whole);
        t.clusters[1].bands.clear();
        assert!(overlaps(&t).is_empty());
    }

    #[test]
    fn svg_has_stages_per_cluster() {
        let doc = svg(&sample());
        assert!(doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(doc.trim_end().ends_with("</svg>") && !doc.contains("<script"));
        let stages = |c| {
            pick(
                &doc,
                "stage",
                Some(c),
                &["data-label", "data-from", "data-to"],
            )
        };
        assert_eq!(
            stages("A"),
            ["lock 0 120", "stop 120 1520", "demote 1520 2000"]
        );
        assert_eq!(
            stages("B"),
            ["promote 2000 2600", "start 2600 4000", "record 4000 4100"]
        );
        assert!(doc.contains(">lock 120 ms</text>") && doc.contains(">stop 1.4 s</text>"));
        assert!(doc.contains("lock\n0 s → 0.12 s (120 ms)\nlock taken\ntoken 3</title>"));
        assert_eq!(pick(&doc, "mark", Some("A"), &["data-from"]), ["1520"]);
        assert_eq!(
            pick(&doc, "record", None, &["data-label"]),
            ["lock A token 3", "free token 3"]
        );
        assert_eq!(pick(&doc, "record-mark", None, &["data-from"]), ["1520"]);
    }

    #[test]
    fn svg_has_bands_per_slug() {
        let doc = svg(&sample());
        let all: Vec<_> = BandKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(pick(&doc, "band", Some("A"), &["data-band"]), all);
        assert_eq!(
            pick(&doc, "band", Some("B"), &["data-band"]),
            ["volumes-primary", "pods-running"]
        );
        let mut t = Timeline::new("x");
        t.cluster_mut("A")
            .band_mut(Fenced)
            .push(1, 2, "", "")
            .push(3, 4, "", "");
        t.cluster_mut("A").band_mut(Fenced).push(5, 6, "", "");
        assert_eq!((t.clusters.len(), t.clusters[0].bands.len()), (1, 1));
        assert_eq!(t.range(), (1, 6));
    }

    #[test]
    fn svg_draws_overlaps_faults_and_violation() {
        let doc = svg(&sample());
        let keys = [
            "data-overlap",
            "data-from",
            "data-to",
            "data-accepted",
            "data-label",
        ];
        assert_eq!(
            pick(&doc, "overlap", None, &keys),
            [
                "two-primaries 2100 2200 false two primaries",
                "two-primaries 2200 2300 true uptime window (accepted)",
                "two-writers 2150 2200 false two writers",
                "two-writers 2200 2250 true uptime window (accepted)",
            ]
        );
        let v = pick(
            &doc,
            "violation",
            None,
            &["data-invariant", "data-from", "data-to"],
        );
        assert_eq!(v, ["single-writer 2150 2150"]);
        assert!(doc.contains(">VIOLATION single-writer at 2.15 s</text>"));
        let faults = pick(
            &doc,
            "fault",
            None,
            &["data-cluster", "data-from", "data-to"],
        );
        assert_eq!(faults, ["B 1000 3000", "- 2500 2500"]);
    }

    #[test]
    fn labels_are_escaped() {
        let doc = svg(&sample());
        assert!(doc.contains("data-label=\"drop &lt;&amp;&quot;&gt; &apos;x&apos;\""));
        assert!(doc.contains(">B: drop &lt;&amp;&quot;&gt; &apos;x&apos;</text>"));
        assert!(!doc.contains("<&") && !doc.contains("'x'"));
        assert_eq!(esc("a\u{1}b\nc"), "ab\nc");
    }

    #[test]
    fn html_is_self_contained() {
        let t = sample();
        let page = html(&t);
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains(&svg(&t)));
        assert!(page.contains("<title>failover A → B (consistency)</title>"));
        assert!(page.contains("<script>") && page.contains("<pre id=\"detail\">"));
        let rest = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!rest.contains("http://") && !rest.contains("https://"));
        assert!(!rest.contains(" src=") && !rest.contains(" href=") && !rest.contains("url(h"));
        assert!(page.contains("<td>VIOLATION</td>") && page.contains("<td>store throttle</td>"));
    }

    #[test]
    fn empty_timeline_renders() {
        let t = Timeline::default();
        assert_eq!(t.range(), (0, 1000));
        let doc = svg(&t);
        assert!(doc.contains(">no violation</text>") && elements(&doc).len() == 11);
        assert!(html(&t).contains(&doc));
        let mut odd = Timeline {
            start: 5,
            end: 5,
            ..Default::default()
        };
        odd.faults
            .push(Fault::new(None, Span::new(Ms::MAX, Ms::MIN, "", "")));
        odd.cluster_mut("A")
            .stage(3, 3, "", "")
            .mark(Ms::MIN, "", "");
        assert!(html(&odd).contains("data-kind=\"fault\""));
    }

    /// Writes the sample to the temporary directory for a look:
    /// `cargo test -p failover-engine --lib timeline -- --ignored`.
    #[test]
    #[ignore]
    fn write_sample() {
        let dir = std::env::temp_dir();
        std::fs::write(dir.join("timeline-sample.svg"), svg(&sample())).unwrap();
        std::fs::write(dir.join("timeline-sample.html"), html(&sample())).unwrap();
    }
}
