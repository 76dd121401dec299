//! Issue 17: a run's picture, checked by its structure (the data elements the renderer
//! writes), not by its pixels.

use failover_engine::timeline::{Element, elements, html, svg};
use failover_model::{Mode, Variant};
use failover_sim::picture::picture;
use failover_sim::run::{Hooking, Profile, RunConfig, RunReport, run};

fn config(seed: u64, mode: Option<Mode>, profile: Profile, variant: Variant) -> RunConfig {
    RunConfig {
        seed,
        mode,
        profile,
        variant,
        shape: None,
        timeline: true,
        hooks: Hooking::Off,
        driver_lag: None,
        watch_lag: 0,
    }
}

fn drawn(cfg: RunConfig) -> (RunReport, Vec<Element>) {
    let r = run(cfg);
    let doc = svg(&picture(&r, "replay"));
    (r, elements(&doc))
}

fn of<'a>(els: &'a [Element], kind: &str) -> impl Iterator<Item = &'a Element> {
    els.iter().filter(move |e| e["data-kind"] == kind)
}

fn attr(e: &Element, key: &str) -> String {
    e.get(key).cloned().unwrap_or_default()
}

fn num(e: &Element, key: &str) -> i64 {
    attr(e, key).parse().expect("a number")
}

/// The labels of `kind` elements of cluster `c`, in document order, without repeats.
fn labels(els: &[Element], kind: &str, c: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in of(els, kind).filter(|e| attr(e, "data-cluster") == c) {
        let l = attr(e, "data-label");
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// A consistency failover without faults (seed 7): the source's three stages and the
/// target's three, every state band in both clusters, volumes primary in one cluster at
/// a time (no overlap), the lock in the record lane with the journal's marks.
#[test]
fn a_consistency_failover_shows_its_stages_bands_and_record() {
    let (r, els) = drawn(config(
        7,
        Some(Mode::Consistency),
        Profile::None,
        Variant::Correct,
    ));
    assert_eq!(r.violation, None);
    assert_eq!(
        labels(&els, "stage", "A"),
        ["initialization", "source-preparation", "volume-demotion"]
    );
    assert_eq!(
        labels(&els, "stage", "B"),
        ["volume-promotion", "target-activation", "completion"]
    );
    for c in ["A", "B"] {
        let bands: Vec<String> = of(&els, "band")
            .filter(|e| attr(e, "data-cluster") == c)
            .map(|e| attr(e, "data-band"))
            .collect();
        for band in [
            "volumes-primary",
            "pods-running",
            "traffic-open",
            "flux-suspended",
        ] {
            assert!(
                bands.iter().any(|b| b == band),
                "{c} lacks {band}: {bands:?}"
            );
        }
    }
    let primary = |c: &str| -> Vec<(i64, i64)> {
        of(&els, "band")
            .filter(|e| attr(e, "data-cluster") == c && attr(e, "data-band") == "volumes-primary")
            .map(|e| (num(e, "data-from"), num(e, "data-to")))
            .collect()
    };
    let (a, b) = (primary("A"), primary("B"));
    assert!(a[0].1 <= b[0].0, "A primary until {a:?}, B from {b:?}");
    assert_eq!(of(&els, "overlap").count(), 0);
    assert_eq!(of(&els, "violation").count(), 0);
    assert!(of(&els, "record").any(|e| attr(e, "data-label").contains("lock A · token 1")));
    assert!(of(&els, "record-mark").any(|e| attr(e, "data-label") == "B: TakeOver"));
    assert!(of(&els, "record-mark").any(|e| attr(e, "data-label") == "B: Complete"));
}

/// An uptime failover (seed 7): both clusters primary while it is in flight, drawn as
/// the overlap the mode accepts, never as a red one.
#[test]
fn the_uptime_window_is_drawn_as_an_accepted_overlap() {
    let (r, els) = drawn(config(
        7,
        Some(Mode::Uptime),
        Profile::None,
        Variant::Correct,
    ));
    assert_eq!(r.violation, None);
    let overlaps: Vec<&Element> = of(&els, "overlap").collect();
    assert!(
        overlaps
            .iter()
            .any(|e| attr(e, "data-overlap") == "two-primaries"),
        "{overlaps:?}"
    );
    assert!(
        overlaps.iter().all(|e| attr(e, "data-accepted") == "true"),
        "{overlaps:?}"
    );
}

/// The first seed that catches `promote-before-demote` (seed 0): the violation marked
/// with its invariant where the run found it, over a red two-primaries overlap.
#[test]
fn a_broken_variants_first_failing_seed_marks_the_violation() {
    let (r, els) = drawn(RunConfig {
        hooks: Hooking::Drawn,
        ..config(0, None, Profile::Swarm, Variant::PromoteBeforeDemote)
    });
    assert!(r.violation.is_some());
    let v: Vec<&Element> = of(&els, "violation").collect();
    assert_eq!(v.len(), 1);
    assert_eq!(attr(v[0], "data-invariant"), "no-two-primaries");
    let at = num(v[0], "data-from");
    assert_eq!(Some(at as u64), r.violation_at);
    assert!(
        of(&els, "overlap").any(|e| attr(e, "data-overlap") == "two-primaries"
            && attr(e, "data-accepted") == "false"
            && num(e, "data-from") <= at
            && at <= num(e, "data-to")),
        "no red overlap at {at}"
    );
}

/// Faults are spans with their labels (seed 3062 with a driver slower than its bound:
/// the active cluster's partition lasts from its start to the end of the run).
#[test]
fn faults_are_spans_and_the_html_page_is_self_contained() {
    let r = run(RunConfig {
        driver_lag: Some(9_000),
        watch_lag: 0,
        hooks: Hooking::Drawn,
        ..config(3062, None, Profile::Swarm, Variant::Correct)
    });
    let t = picture(&r, "scripts/sim.sh replay --seed 3062 --driver-lag-ms 9000");
    let els = elements(&svg(&t));
    let partition = of(&els, "fault")
        .find(|e| attr(e, "data-label") == "partition-full")
        .expect("the partition is drawn");
    assert_eq!(attr(partition, "data-cluster"), "A");
    assert!(num(partition, "data-from") < num(partition, "data-to"));
    // Fenced from the self-fence, labelled with where the lease ends (the peer forces
    // after it).
    let fenced = of(&els, "band")
        .find(|e| attr(e, "data-cluster") == "A" && attr(e, "data-band") == "fenced")
        .expect("A is fenced");
    assert_eq!(attr(fenced, "data-label"), "lease ends 23.045 s");
    let page = html(&t);
    assert_eq!(elements(&page).len(), els.len());
    let external = page
        .match_indices("http")
        .filter(|(i, _)| !page[*i..].starts_with("http://www.w3.org/2000/svg"))
        .count();
    assert_eq!(external, 0, "the page loads nothing");
}

/// README's two pictures are what `scripts/pictures.sh` draws: the replay of seed 7
/// without faults in each mode, byte for byte (run the script after a change to the
/// renderer or the simulator).
#[test]
fn readme_pictures_are_what_scripts_pictures_sh_draws() {
    for mode in [Mode::Consistency, Mode::Uptime] {
        let r = run(config(7, Some(mode), Profile::None, Variant::Correct));
        let replay =
            format!("scripts/sim.sh replay --seed 7 --faults none --mode {mode} --hooks off");
        let drawn = svg(&picture(&r, &replay));
        let path = format!("{}/../docs/timeline-{mode}.svg", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).expect("the committed picture");
        assert!(
            drawn == committed,
            "{path} is stale: run scripts/pictures.sh"
        );
    }
}

/// Seed 15978 (issue 13's finding, safe since issue 17): a full partition from both
/// DynamoDB and the API server whose API part ends first, and a kind failing until the
/// heal at 90 s, each a span of its own.
#[test]
fn partitions_and_faults_until_the_heal_are_spans() {
    let r = run(RunConfig {
        hooks: Hooking::Drawn,
        ..config(15978, None, Profile::Swarm, Variant::Correct)
    });
    assert_eq!(r.violation, None);
    let els = elements(&svg(&picture(&r, "replay")));
    let span = |label: &str| -> (i64, i64) {
        let e = of(&els, "fault")
            .find(|e| attr(e, "data-label") == label)
            .unwrap_or_else(|| panic!("{label} is drawn"));
        (num(e, "data-from"), num(e, "data-to"))
    };
    let full = span("partition-full");
    let store = span("partition-store");
    assert!(
        full.0 < full.1 && full.1 == store.0 && store.0 < store.1,
        "{full:?} {store:?}"
    );
    let kind = span("every change to workloads fails (until the heal)");
    assert_eq!(kind.1, 90_000, "ends at the heal");
}
