//! Scenario 10: bytes fetched again after `kill -9` with 64 MiB parts, on the WAN link.

use std::io::BufRead as _;

use test_support::netlab::LabConfig;

use super::wan::*;
use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 10,
    name: "WAN: bytes re-fetched after kill -9 with 64 MiB parts (lab, root)",
    default: false,
    lab: true,
    needs: &[],
    conditions: None,
    run: Bench::wan_kill,
};

impl Bench {
    pub(super) fn wan_kill(&self, report: &mut Report) -> Result<Section, String> {
        let size = self.wan_size();
        let part = 64 * MIB;
        let site = self.wan_site(
            LabConfig::new()
                .rtt(Duration::from_millis(WAN_RTT_MS))
                .rate_bits(WAN_RATE_BITS)
                .seed(100),
            None,
        )?;
        let c = self.wan_resume_get(
            &site,
            "resume-get --part-size 64MiB",
            &["--json", "--part-size", "64MiB"],
        );
        let mut argv = c.argv.clone();
        argv.retain(|a| a != "-q");
        let mut t = String::from(
            "| round | killed at (progress) | reused on resume | re-fetched (≥) | jobs at the kill \
             |\n|---:|---:|---:|---:|---:|\n",
        );
        let mut refetched = Vec::new();
        let mut jobs_at_kill = 0;
        for round in 1..=self.runs {
            self.fresh_out()?;
            let mut child = base_command(&argv[0])
                .args(&argv[1..])
                .envs(c.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {argv:?}: {e}"))?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut done = 0u64;
            let mut jobs = 8u64;
            for line in BufReader::new(stdout).lines() {
                let line = line.map_err(|e| e.to_string())?;
                if line.contains("\"event\":\"progress\"") {
                    done = json_u64(&line, "done_bytes").unwrap_or(done);
                } else if line.contains("\"event\":\"jobs\"") {
                    jobs = json_u64(&line, "to").unwrap_or(jobs);
                }
                if done >= size / 2 {
                    break;
                }
            }
            let _ = child.kill();
            let status = child.wait().map_err(|e| e.to_string())?;
            if status.success() {
                return Err("the download finished before the kill at 50 %".into());
            }
            let out = base_command(&argv[0])
                .args(&argv[1..])
                .envs(c.env.iter().map(|(k, v)| (k, v)))
                .output()
                .map_err(|e| format!("cannot start {argv:?}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "the resume failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            same_bytes(&self.wan_object()?.0, c.output.as_deref().ok_or("no output")?)?;
            let text = String::from_utf8_lossy(&out.stdout);
            let reused = text
                .lines()
                .find(|l| l.contains("\"event\":\"started\""))
                .and_then(|l| json_u64(l, "reused_bytes"))
                .unwrap_or(0);
            let lost = done.saturating_sub(reused);
            eprintln!(
                "bench: [10] round {round}: killed at {} done, {} reused, ≥ {} re-fetched, {jobs} \
                 connections",
                bytes_approx(done),
                bytes_approx(reused),
                bytes_approx(lost)
            );
            let _ = writeln!(
                t,
                "| {round} | {} | {} | {} | {jobs} |",
                bytes_approx(done),
                bytes_approx(reused),
                bytes_approx(lost)
            );
            refetched.push(lost as f64);
            jobs_at_kill = jobs_at_kill.max(jobs);
        }
        let m = median(refetched.clone());
        let bound = jobs_at_kill * MIB;
        report.target(
            10,
            "re-fetched after kill -9 with 64 MiB parts (median, lower bound)",
            "≤ jobs × 1 MiB",
            format!(
                "{} (jobs × 1 MiB = {})",
                bytes_approx(m as u64),
                bytes(bound)
            ),
            m <= bound as f64,
        );
        Ok(Section {
            id: 10,
            title: "WAN: bytes re-fetched after kill -9 with 64 MiB parts".into(),
            setup: format!(
                "resume-get `--part-size 64MiB` (and `--jobs auto`) on the link of scenario 8 \
                 without loss ({}), a {} object; SIGKILL once its progress events report half \
                 the object, then the same command again. Re-fetched is the progress reported \
                 before the kill minus what the resume reused: a lower bound (bytes received \
                 after the last progress event, at most 100 ms of them, are not counted). \
                 Whatever the engine records below the part (issue 15.2) shows here.",
                site.lab.config().describe(),
                bytes(size)
            ),
            table: t,
            commands: vec![(c.label.clone(), shell_line(&argv))],
            notes: vec![format!("part size {}", bytes(part))],
            conditions: String::new(),
        })
    }
}

/// `12.3 MiB`.
fn bytes_approx(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / MIB as f64)
}
