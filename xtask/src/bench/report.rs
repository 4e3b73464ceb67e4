//! The report: rows, targets, sections, the Markdown of BENCHMARKS.md.

use super::*;

#[derive(Debug)]
pub(super) struct Row {
    pub(super) contender: Contender,
    pub(super) samples: Vec<Sample>,
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl Row {
    pub(super) fn walls(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.wall).collect()
    }
    pub(super) fn wall(&self) -> f64 {
        median(self.walls())
    }
    pub(super) fn min(&self) -> f64 {
        self.walls().into_iter().fold(f64::INFINITY, f64::min)
    }
    pub(super) fn max(&self) -> f64 {
        self.walls().into_iter().fold(0.0, f64::max)
    }
    pub(super) fn cpu(&self) -> f64 {
        median(self.samples.iter().map(|s| s.user + s.sys).collect())
    }
    pub(super) fn user(&self) -> f64 {
        median(self.samples.iter().map(|s| s.user).collect())
    }
    pub(super) fn sys(&self) -> f64 {
        median(self.samples.iter().map(|s| s.sys).collect())
    }
    pub(super) fn rss_mib(&self) -> f64 {
        median(
            self.samples
                .iter()
                .map(|s| s.rss_kib as f64 / 1024.0)
                .collect(),
        )
    }
    pub(super) fn rss_max_mib(&self) -> f64 {
        self.samples
            .iter()
            .map(|s| s.rss_kib as f64 / 1024.0)
            .fold(0.0, f64::max)
    }
    pub(super) fn written(&self) -> Option<f64> {
        let v: Option<Vec<f64>> = self
            .samples
            .iter()
            .map(|s| s.written.map(|w| w as f64))
            .collect();
        v.map(median)
    }
}

#[derive(Debug)]
pub(super) struct Target {
    pub(super) scenario: u32,
    pub(super) figure: String,
    pub(super) target: String,
    pub(super) measured: String,
    pub(super) met: bool,
}

#[derive(Debug, Default)]
pub(super) struct Section {
    pub(super) id: u32,
    pub(super) title: String,
    pub(super) setup: String,
    pub(super) table: String,
    pub(super) commands: Vec<(String, String)>,
    pub(super) notes: Vec<String>,
    pub(super) conditions: String,
}

#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) scenarios: Vec<Section>,
    pub(super) targets: Vec<Target>,
    /// Scenario 1's rows, kept for scenario 7.
    pub(super) raw_rows: Vec<Row>,
}

impl Report {
    pub(super) fn target(
        &mut self,
        scenario: u32,
        figure: &str,
        target: &str,
        measured: String,
        met: bool,
    ) {
        self.targets.push(Target {
            scenario,
            figure: figure.into(),
            target: target.into(),
            measured,
            met,
        });
    }

    pub(super) fn summary(&self, b: &Bench) -> String {
        let mut s = format!(
            "bench: targets (ratios from this run; reported, never asserted){}\n",
            match (b.quick, b.profile == "release") {
                (_, false) => format!(
                    " — {} build, quick run: validates the harness, figures not comparable",
                    b.profile
                ),
                (true, true) => " — quick run: indicative only".into(),
                (false, true) => String::new(),
            }
        );
        for t in &self.targets {
            let _ = writeln!(
                s,
                "  [{}] {:<6} {}: {} (target {})",
                t.scenario,
                if t.met { "met" } else { "MISSED" },
                t.figure,
                t.measured,
                t.target
            );
        }
        s
    }

    pub(super) fn markdown(
        &self,
        b: &Bench,
        opts: &Opts,
        load_before: &str,
        load_after: &str,
        secs: f64,
    ) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "{RESULTS_BEGIN}");
        let _ = writeln!(
            m,
            "\n## Results of `cargo xtask bench{}`\n",
            if opts.quick { " --quick" } else { "" }
        );
        if b.quick {
            let _ = writeln!(
                m,
                "**Quick run (64 MiB objects, {} rounds, no warm-up): it validates the harness; \
                 its figures are indicative only.**\n",
                b.runs
            );
        }
        let _ = writeln!(m, "{}", machine(b, load_before, load_after, secs));
        let _ = writeln!(m, "### Targets\n");
        let _ = writeln!(
            m,
            "| # | figure | target | measured (median) | |\n|---|---|---|---|---|"
        );
        for t in &self.targets {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                t.scenario,
                t.figure,
                t.target,
                t.measured,
                if t.met { "met" } else { "**missed**" }
            );
        }
        let _ = writeln!(m);
        for s in &self.scenarios {
            let _ = writeln!(m, "### {}. {}\n", s.id, s.title);
            let _ = writeln!(m, "{}\n", s.setup);
            let _ = writeln!(m, "{}", s.table);
            for n in &s.notes {
                let _ = writeln!(m, "- {n}");
            }
            if !s.notes.is_empty() {
                let _ = writeln!(m);
            }
            let _ = writeln!(m, "Conditions: {}.\n", s.conditions);
            if !s.commands.is_empty() {
                let _ = writeln!(m, "Commands (`$W` = `{}`):\n", rel(&b.root, &b.work));
                let _ = writeln!(m, "```sh");
                for (label, cmd) in &s.commands {
                    let _ = writeln!(m, "# {label}\n{}", b.display(cmd));
                }
                let _ = writeln!(m, "```\n");
            }
        }
        let _ = writeln!(m, "{RESULTS_END}");
        m
    }
}

pub(super) fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

impl Bench {
    /// A command as printed in the report: the work directory as `$W`, the repository root
    /// as `.`.
    pub(super) fn display(&self, cmd: &str) -> String {
        let work = self.work.display().to_string();
        let root = self.root.display().to_string();
        cmd.replace(&work, "$W").replace(&format!("{root}/"), "./")
    }
}

pub(super) fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => format!("unavailable ({e})"),
    }
}

pub(super) fn machine(b: &Bench, load_before: &str, load_after: &str, secs: f64) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let fs_type = first_line(
        "findmnt",
        &["-n", "-o", "FSTYPE", "-T", &b.work.display().to_string()],
    );
    let py = Command::new(&b.python)
        .args([
            "-c",
            "import sys, oss2, alibabacloud_oss_v2 as v2; \
             print('Python', sys.version.split()[0], '· oss2', oss2.__version__, \
             '· alibabacloud-oss-v2', v2.__version__)",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let commit = first_line(
        "git",
        &[
            "-C",
            &b.root.display().to_string(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    let dirty = Command::new("git")
        .args(["-C", &b.root.display().to_string(), "status", "--porcelain"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let mut s = String::new();
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| date | {} |",
        first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(
        s,
        "| commit | {commit}{} |",
        if dirty { " + uncommitted changes" } else { "" }
    );
    let _ = writeln!(s, "| CPU | {cpu}, {cores} cores visible |");
    let _ = writeln!(s, "| memory | {mem} |");
    let _ = writeln!(s, "| kernel | {} |", first_line("uname", &["-sr"]));
    let _ = writeln!(s, "| file system of the outputs | {fs_type} |");
    let _ = writeln!(
        s,
        "| load average (1, 5, 15 min) | before {load_before}, after {load_after} ({secs:.0} s of \
         scenarios) |"
    );
    let _ = writeln!(
        s,
        "| resume-get | {} (`cargo build --profile {}`{}) |",
        first_line(&b.resume_get.display().to_string(), &["--version"]),
        b.profile,
        if b.profile == "release" {
            ""
        } else {
            ": not the release build, figures not comparable"
        }
    );
    let _ = writeln!(s, "| rustc | {} |", first_line("rustc", &["--version"]));
    let _ = writeln!(s, "| curl | {} |", first_line("curl", &["--version"]));
    let _ = writeln!(s, "| aria2c | {} |", first_line("aria2c", &["--version"]));
    let _ = writeln!(s, "| nginx | {} |", first_line("nginx", &["-v"]));
    let _ = writeln!(s, "| Python SDKs | {py} |");
    let _ = writeln!(
        s,
        "| rounds | {} measured per contender, in alternation, after {} warm-up round(s) |",
        b.runs, b.warmup
    );
    s
}

pub(super) fn write_report(path: &Path, generated: &str) -> Result<(), String> {
    let existing = fs::read_to_string(path).unwrap_or_default();
    let text = match (existing.find(RESULTS_BEGIN), existing.find(RESULTS_END)) {
        (Some(a), Some(z)) if a < z => format!(
            "{}{}{}",
            &existing[..a],
            generated.trim_end(),
            &existing[z + RESULTS_END.len()..]
        ),
        _ => format!(
            "# Benchmarks\n\nGenerated by `cargo xtask bench` (see `xtask/src/bench/`); the \
             results below are replaced by every full run, the rest of this file is kept.\n\n\
             {generated}"
        ),
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

pub(super) fn bytes(n: u64) -> String {
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{} GiB", n / GIB)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

/// `8MiB`-style sizes for command lines.
pub(super) fn size_arg(n: u64) -> String {
    bytes(n).replace(' ', "")
}

pub(super) fn mib_s(size: u64, secs: f64) -> f64 {
    size as f64 / MIB as f64 / secs
}

/// The standard table: one row per contender, ratios against `peers` (row indices).
pub(super) fn table(rows: &[Row], size: u64, peers: &[usize]) -> String {
    let mut t = String::new();
    let peer_names: Vec<String> = peers
        .iter()
        .map(|&p| format!("÷ {}", rows[p].contender.label))
        .collect();
    let _ = write!(
        t,
        "| contender | median s | min–max s | MiB/s | {} | CPU s (user + sys) | cpu-s/GiB | peak \
         RSS MiB |\n|---|---:|---:|---:|{}---:|---:|---:|\n",
        peer_names.join(" | "),
        "---:|".repeat(peers.len())
    );
    for r in rows {
        let ratios: Vec<String> = peers
            .iter()
            .map(|&p| format!("{:.2}×", r.wall() / rows[p].wall()))
            .collect();
        let _ = writeln!(
            t,
            "| {} | {:.3} | {:.3}–{:.3} | {:.0} | {} | {:.2} ({:.2} + {:.2}) | {:.2} | {:.1} |",
            r.contender.label,
            r.wall(),
            r.min(),
            r.max(),
            mib_s(size, r.wall()),
            ratios.join(" | "),
            r.cpu(),
            r.user(),
            r.sys(),
            r.cpu() / (size as f64 / GIB as f64),
            r.rss_mib()
        );
    }
    t
}

pub(super) fn commands(rows: &[Row]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (k, v) in &r.contender.env {
                let v = if k.contains("SECRET") {
                    "…"
                } else {
                    v.as_str()
                };
                let _ = write!(line, "{k}={} ", shell_quote(v));
            }
            line.push_str(&shell_line(&r.contender.argv));
            (r.contender.label.clone(), line)
        })
        .collect()
}
