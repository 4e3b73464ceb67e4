//! Reliability over a real (emulated) WAN: `resume-get` in the lab's client namespace, the
//! `oss-emulator` binary in its server namespace, the router between them delaying, losing,
//! black-holing, flapping and resetting (`test_support::netlab`). Every download ends
//! byte-identical with no user action beyond running the same command again after a crash.
//!
//! Objects are tens of MiB at most and links tens of Mbit/s, so each test takes seconds. The
//! delay daemon's loss is seeded. Needs root and network namespaces (CI runs as root); fails,
//! never skips, without them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e_tests::support::{Running, Value, WanServer, assert_file_is, data, num};
use test_support::netlab::{Congestion, Lab, LabConfig, Loss, Way};

const KEY: &str = "wan/object.bin";
const MIB: usize = 1 << 20;

/// A lab, the emulator in it holding one object, and a destination. Fields drop in order:
/// the server before the lab.
struct Scene {
    server: WanServer,
    lab: Lab,
    content: Vec<u8>,
    _dir: tempfile::TempDir,
    dest: PathBuf,
}

fn scene(config: LabConfig, size: usize, seed: u64) -> Scene {
    let lab = Lab::start(config);
    let content = data(seed, size);
    let server = WanServer::start(&lab, &[(KEY, &content)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("object.bin");
    Scene {
        server,
        lab,
        content,
        _dir: dir,
        dest,
    }
}

impl Scene {
    fn get(&self) -> e2e_tests::support::Get {
        self.server.get(KEY, &self.dest)
    }

    fn assert_identical(&self, what: &str) {
        assert_file_is(&self.dest, &self.content, what);
    }
}

/// Waits until the download reported at least `bytes` done.
fn wait_progress(run: &mut Running, bytes: u64) {
    let got = run.wait_for(Duration::from_secs(60), |e| {
        e["event"] == "progress" && e["done_bytes"].as_u64().is_some_and(|d| d >= bytes)
    });
    assert!(got.is_some(), "the download exited before {bytes} bytes");
}

fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// Retries that resumed inside their part (not at its first byte): bytes received before a
/// failure were kept.
fn retries_resumed_mid_part(events: &[Value]) -> usize {
    let part_size = events_named(events, "started")
        .first()
        .map(|s| num(s, "part_size"))
        .expect("a started event");
    events_named(events, "retry")
        .iter()
        .filter(|r| num(r, "resume_at") > num(r, "part") * part_size)
        .count()
}

#[test]
fn one_percent_loss_each_way_with_cubic_ends_byte_identical() {
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(20))
            .rate_bits(100_000_000)
            .loss(Loss::Random(0.01))
            .congestion(Congestion::Cubic)
            .seed(15),
        16 * MIB,
        1501,
    );
    let out = s.get().args(["--part-size", "1MiB"]).run();
    out.expect_ok();
    s.assert_identical("download over 1 % loss");
    let stats = s.lab.delay_stats();
    assert!(
        stats.down.dropped > 0 && stats.up.dropped > 0,
        "the lab dropped packets both ways: {stats:?}"
    );
    let c = out.completed();
    eprintln!(
        "{}: {} ms, {} retries; {stats:?}",
        s.lab.config().describe(),
        num(c, "elapsed_ms"),
        num(c, "retries")
    );
}

#[test]
fn a_blackhole_mid_download_is_outwaited_by_the_idle_timeout_and_resumed_at_the_byte() {
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(20))
            .rate_bits(40_000_000),
        16 * MIB,
        1502,
    );
    let mut run = s.get().args(["--timeout", "1s"]).spawn();
    wait_progress(&mut run, 2 * MIB as u64);
    let blackhole = Duration::from_secs(5);
    s.lab.blackhole_for(blackhole);
    let still_running = !run.exited();
    let out = run.finish();
    out.expect_ok();
    s.assert_identical("download across a 5 s blackhole");
    assert!(still_running, "the download ended during the blackhole");
    let retries = events_named(&out.events, "retry");
    assert!(
        !retries.is_empty(),
        "the idle timeout never fired during the blackhole"
    );
    assert!(
        retries_resumed_mid_part(&out.events) > 0,
        "no retry resumed inside its part: {retries:?}"
    );
    let c = out.completed();
    assert_eq!(
        num(c, "fetched_bytes"),
        s.content.len() as u64,
        "bytes received before the blackhole were kept, none fetched twice"
    );
    eprintln!(
        "{}: {} ms with a {blackhole:?} blackhole, {} retries",
        s.lab.config().describe(),
        num(c, "elapsed_ms"),
        retries.len()
    );
}

#[test]
fn ten_link_flaps_during_a_download_end_byte_identical() {
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(20))
            .rate_bits(16_000_000),
        12 * MIB,
        1503,
    );
    let mut run = s.get().args(["--timeout", "2s"]).spawn();
    wait_progress(&mut run, MIB as u64);
    for _ in 0..10 {
        s.lab.flap(Duration::from_millis(200));
        // Pump events meanwhile (the pipe never fills).
        run.pump_until(Instant::now() + Duration::from_millis(100));
    }
    let still_running = !run.exited();
    let out = run.finish();
    out.expect_ok();
    s.assert_identical("download across ten link flaps");
    assert!(still_running, "the download ended before the tenth flap");
    eprintln!(
        "{}: {} ms with ten 200 ms flaps, {} retries",
        s.lab.config().describe(),
        num(out.completed(), "elapsed_ms"),
        num(out.completed(), "retries")
    );
}

#[test]
fn a_reset_storm_ends_byte_identical_resuming_at_the_byte() {
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(10))
            .rate_bits(40_000_000),
        16 * MIB,
        1504,
    );
    let mut run = s.get().spawn();
    wait_progress(&mut run, MIB as u64);
    let mut killed = 0;
    for _ in 0..10 {
        killed += s.lab.reset_connections();
        run.pump_until(Instant::now() + Duration::from_millis(250));
    }
    let still_running = !run.exited();
    let out = run.finish();
    out.expect_ok();
    s.assert_identical("download through a reset storm");
    assert!(still_running, "the download ended before the last reset");
    assert!(killed >= 10, "ss -K reset only {killed} connections");
    assert!(
        retries_resumed_mid_part(&out.events) > 0,
        "no retry resumed inside its part"
    );
    eprintln!(
        "{}: {} ms, {killed} connections reset, {} retries",
        s.lab.config().describe(),
        num(out.completed(), "elapsed_ms"),
        num(out.completed(), "retries")
    );
}

#[test]
fn kill_9_during_a_blackhole_then_the_same_command_resumes_byte_identical() {
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(20))
            .rate_bits(40_000_000),
        16 * MIB,
        1505,
    );
    let cmd = s.get().args(["--part-size", "1MiB", "--timeout", "1s"]);
    let mut run = cmd.spawn();
    for _ in 0..3 {
        assert!(
            run.wait_event("part_done", Duration::from_secs(60))
                .is_some(),
            "the download exited early"
        );
    }
    s.lab.set_blackhole(true);
    // Long enough for the idle timeout to fire and the retries to start.
    run.pump_until(Instant::now() + Duration::from_millis(2500));
    run.kill();
    let killed = run.finish();
    assert_eq!(
        killed.code(),
        None,
        "killed by SIGKILL: {:?}",
        killed.status
    );
    let done_before = events_named(&killed.events, "part_done").len() as u64;
    s.lab.set_blackhole(false);

    let out = cmd.run();
    out.expect_ok();
    s.assert_identical("resume after kill -9 during a blackhole");
    let started = out.started();
    assert_eq!(
        started["resumed"], true,
        "the second run resumed: {started}"
    );
    assert!(
        num(started, "parts_reused") >= done_before,
        "every part reported done before the kill was reused: {started}, {done_before} done"
    );
    eprintln!(
        "{}: {done_before} parts done before kill -9, resumed with {} reused",
        s.lab.config().describe(),
        num(started, "parts_reused")
    );
}

#[test]
fn a_20s_blackhole_mid_download_fires_the_idle_timeout_and_retries_resume_at_the_byte() {
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(50))
            .rate_bits(40_000_000),
        16 * MIB,
        1506,
    );
    // The defaults (--jobs auto, --part-size auto) but a 5 s idle timeout, below the outage.
    let mut run = s.get().args(["--timeout", "5s"]).spawn();
    wait_progress(&mut run, 4 * MIB as u64);
    let blackhole = Duration::from_secs(20);
    s.lab.blackhole_for(blackhole);
    let still_running = !run.exited();
    let out = run.finish();
    out.expect_ok();
    s.assert_identical("download across a 20 s blackhole");
    assert!(still_running, "the download ended during the blackhole");
    let retries = events_named(&out.events, "retry");
    assert!(
        retries.iter().any(|r| r["cause"]
            .as_str()
            .is_some_and(|c| c.contains("idle timeout"))),
        "the idle timeout never fired during the blackhole: {retries:?}"
    );
    assert!(
        retries_resumed_mid_part(&out.events) > 0,
        "no retry resumed inside its part: {retries:?}"
    );
    let c = out.completed();
    assert_eq!(
        num(c, "fetched_bytes"),
        s.content.len() as u64,
        "bytes received before the blackhole were kept, none fetched twice"
    );
    eprintln!(
        "{}: {} ms with a {blackhole:?} blackhole and a 5 s idle timeout, {} retries",
        s.lab.config().describe(),
        num(c, "elapsed_ms"),
        retries.len()
    );
}

#[test]
fn jobs_auto_over_a_50ms_link_with_per_connection_caps_adds_connections() {
    // Each connection is capped at 4 Mbit/s (htb), the link at 200 Mbit/s: every connection
    // added raises the aggregate rate, as on a long fat or lossy link where one TCP flow gets
    // a fraction of the link.
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(50))
            .rate_bits(200_000_000)
            .per_connection_bits(4_000_000, 64),
        32 * MIB,
        1507,
    );
    // --jobs auto is the default; 1 MiB parts so that parts are left to claim when it grows.
    let out = s.get().args(["--part-size", "1MiB"]).run();
    out.expect_ok();
    s.assert_identical("download with --jobs auto");
    let c = out.completed();
    let jobs = &c["jobs"];
    assert_eq!(jobs["auto"], true, "{c}");
    let grew: Vec<&Value> = events_named(&out.events, "jobs")
        .into_iter()
        .filter(|e| e["reason"] == "rate_grew")
        .collect();
    assert!(
        num(jobs, "peak") > num(jobs, "start"),
        "--jobs auto never added a connection: {c}; jobs events: {:?}",
        events_named(&out.events, "jobs")
    );
    assert!(!grew.is_empty(), "no rate_grew event: {c}");
    for g in &grew {
        assert!(
            num(g, "to") > num(g, "from") && num(g, "rate_after") > 0,
            "a growth step that does not grow: {g}"
        );
    }
    eprintln!(
        "{}: {} ms, jobs {jobs}, events {:?}",
        s.lab.config().describe(),
        num(c, "elapsed_ms"),
        events_named(&out.events, "jobs")
    );
}

#[test]
fn jobs_auto_probes_again_when_a_held_level_loses_its_rate() {
    // 8 cubic flows fill 16 Mbit/s: `--jobs auto` holds 16 connections (or 8) once doubling
    // stops raising the rate. Then the link turns lossy (10 % each way, RTT 100 ms): each
    // flow is bound to well under 1 Mbit/s and the held level no longer fills the link, so
    // the tuner must probe again and add connections.
    let s = scene(
        LabConfig::new()
            .rtt(Duration::from_millis(100))
            .rate_bits(16_000_000)
            .congestion(Congestion::Cubic),
        24 * MIB,
        1508,
    );
    let mut run = s.get().args(["--part-size", "256KiB"]).spawn();
    let held = run.wait_for(Duration::from_secs(60), |e| {
        e["event"] == "jobs" && e["from"] == e["to"]
    });
    let held = held.expect("the download ended before --jobs auto held a level");
    assert_eq!(
        held["reason"], "rate_flat",
        "held for another reason: {held}"
    );
    let level = num(&held, "to");
    assert!(
        level < 32,
        "held at {level}: no probing again past 32 ({held})"
    );
    for way in [Way::Up, Way::Down] {
        let mut spec = s.lab.config().spec(way);
        spec.loss = Loss::Random(0.10);
        s.lab.set_spec(way, spec);
    }
    let fell = run.wait_for(Duration::from_secs(60), |e| {
        e["event"] == "jobs" && e["reason"] == "rate_fell"
    });
    let out = run.finish();
    out.expect_ok();
    s.assert_identical("download over a link that turned lossy");
    let fell = fell.expect("the held level's rate fell by half and --jobs auto never probed again");
    assert_eq!(num(&fell, "from"), level, "{fell}");
    assert_eq!(num(&fell, "to"), 2 * level, "{fell}");
    assert!(
        num(&fell, "rate_after") * 100 < num(&fell, "rate_held") * 85,
        "a probe without a fall: {fell}"
    );
    let c = out.completed();
    assert!(num(&c["jobs"], "peak") >= 2 * level, "{c}");
    eprintln!(
        "{}, then 10 % loss: {} ms, held {level}, {fell}, jobs {}",
        s.lab.config().describe(),
        num(c, "elapsed_ms"),
        c["jobs"]
    );
}
