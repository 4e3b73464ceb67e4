//! Scenario 8: the WAN link of issue 15 (200 Mbit/s, RTT 50 ms) at 0, 0.1 and 1 % loss:
//! resume-get with its defaults vs curl, aria2c -x16 -s16 and oss2, all over the emulator.

use test_support::netlab::{LabConfig, Loss};

use super::wan::*;
use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 8,
    name: "WAN: 200 Mbit/s, RTT 50 ms, loss 0 / 0.1 / 1 % (lab, root)",
    default: false,
    lab: true,
    needs: &[],
    conditions: None,
    run: Bench::wan_links,
};

impl Bench {
    pub(super) fn wan_links(&self, report: &mut Report) -> Result<Section, String> {
        let size = self.wan_size();
        let mut table_text = String::new();
        let mut notes = Vec::new();
        let mut cmds = Vec::new();
        let mut setup_line = String::new();
        for (loss, label, seed) in [(0.0, "0 %", 80), (0.001, "0.1 %", 81), (0.01, "1 %", 82)] {
            let mut config = LabConfig::new()
                .rtt(Duration::from_millis(WAN_RTT_MS))
                .rate_bits(WAN_RATE_BITS)
                .seed(seed);
            if loss > 0.0 {
                config = config.loss(Loss::Random(loss));
            }
            let site = self.wan_site(config, None)?;
            setup_line = site.lab.config().describe();
            let mut contenders = vec![self.wan_resume_get(&site, "resume-get (defaults)", &[])];
            contenders.extend(self.wan_peers(&site));
            let rows = self.measure(8, &contenders)?;
            let chose = self.wan_choice(&site)?;
            let pct = |r: &Row| link_percent(size, r.wall());
            let _ = writeln!(table_text, "**Loss {label}** (each way):\n");
            table_text.push_str(&table(&rows, size, &[1, 2]));
            let _ = writeln!(
                table_text,
                "\n% of the link (median): {}\n",
                rows.iter()
                    .map(|r| format!("{} {:.0} %", r.contender.label, pct(r)))
                    .collect::<Vec<_>>()
                    .join(" · ")
            );
            notes.push(format!("loss {label}: resume-get {chose}"));
            let (rg, aria) = (&rows[0], &rows[2]);
            let (want, min) = if loss < 0.005 {
                ("≥ 90 %", 90.0)
            } else {
                ("≥ 80 %", 80.0)
            };
            report.target(
                8,
                &format!("resume-get defaults, loss {label}: % of 200 Mbit/s"),
                want,
                format!("{:.0} %", pct(rg)),
                pct(rg) >= min,
            );
            if loss > 0.005 {
                let x = aria.wall() / rg.wall();
                report.target(
                    8,
                    "resume-get defaults ÷ aria2c -x16 -s16, loss 1 % (speed)",
                    "≥ 1.2×",
                    format!("{x:.2}×"),
                    x >= 1.2,
                );
            }
            if cmds.is_empty() {
                cmds = commands(&rows);
            }
        }
        Ok(Section {
            id: 8,
            title: "WAN: 200 Mbit/s, RTT 50 ms, loss 0 / 0.1 / 1 %".into(),
            setup: format!(
                "A {} object from the oss-emulator in the lab's server namespace, downloaded in \
                 its client namespace; the router delays (netlab-delayd, NFQUEUE) and drops \
                 (random loss, each way), `tbf` at 200 Mbit/s with a BDP of queue; TSO/GSO/GRO \
                 off; the kernel's congestion control for every flow ({}). resume-get over \
                 `oss://` (V4 signatures) with its defaults (`--jobs auto`, `--part-size \
                 auto`); curl and aria2c read the same object anonymously over HTTP; oss2 \
                 with 8 threads × 8 MiB. Lab: {setup_line}.",
                bytes(size),
                if setup_line.ends_with("cubic") {
                    "cubic"
                } else {
                    "bbr"
                }
            ),
            table: table_text,
            commands: cmds,
            notes,
            conditions: String::new(),
        })
    }

    /// One more, untimed, run of resume-get's defaults with `--json`: what `--jobs auto` and
    /// `--part-size auto` chose, and the requests' latency.
    pub(super) fn wan_choice(&self, site: &WanSite) -> Result<String, String> {
        self.wan_choice_with(site, &[])
    }

    pub(super) fn wan_choice_with(&self, site: &WanSite, extra: &[&str]) -> Result<String, String> {
        self.fresh_out()?;
        let mut opts = vec!["--json"];
        opts.extend_from_slice(extra);
        let c = self.wan_resume_get(site, "resume-get --json", &opts);
        let mut argv = c.argv.clone();
        // `-q` and `--json` together: JSON wins; drop -q for clarity.
        argv.retain(|a| a != "-q");
        let out = base_command(&argv[0])
            .args(&argv[1..])
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| format!("cannot start {argv:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "resume-get --json failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let started = text.lines().find(|l| l.contains("\"event\":\"started\""));
        let completed = text.lines().find(|l| l.contains("\"event\":\"completed\""));
        let jobs: Vec<String> = text
            .lines()
            .filter(|l| l.contains("\"event\":\"jobs\""))
            .map(|l| {
                format!(
                    "{}→{} ({})",
                    json_u64(l, "from").unwrap_or(0),
                    json_u64(l, "to").unwrap_or(0),
                    json_str(l, "reason").unwrap_or_default()
                )
            })
            .collect();
        let (Some(started), Some(completed)) = (started, completed) else {
            return Err(format!("resume-get --json printed no started/completed: {text}"));
        };
        let obj = |key: &str| {
            completed
                .find(&format!("\"{key}\":{{"))
                .map(|at| {
                    let rest = &completed[at..];
                    rest[..rest.find('}').map_or(rest.len(), |e| e + 1)].to_string()
                })
                .unwrap_or_default()
        };
        Ok(format!(
            "chose {} parts of {}; connections {} (changes: {}); first byte (ms) {}; {} retries",
            json_u64(started, "parts").unwrap_or(0),
            bytes(json_u64(started, "part_size").unwrap_or(0)),
            obj("jobs"),
            if jobs.is_empty() {
                "none".to_string()
            } else {
                jobs.join(", ")
            },
            obj("first_byte_ms"),
            json_u64(completed, "retries").unwrap_or(0)
        ))
    }
}

/// A string field of a JSON line (no escapes in the values read here).
pub(super) fn json_str(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    Some(line[at..].split('"').next()?.to_string())
}
