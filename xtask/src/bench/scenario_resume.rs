//! Scenario 6: kill at 50 %, resume.

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 6,
    name: "kill -9 at 50 %, then resume",
    default: true,
    lab: false,
    needs: &[],
    conditions: None,
    run: Bench::resume_cost,
};

/// One nginx access-log line of the `/logged/` location.
#[derive(Debug, Clone, Copy)]
pub(super) struct Logged {
    pub(super) start_ms: u64,
    pub(super) get: bool,
    pub(super) ok: bool,
    pub(super) bytes: u64,
}

/// `1795555427.123` → 1795555427123.
pub(super) fn parse_ms(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let mut frac = frac.to_string();
    frac.truncate(3);
    while frac.len() < 3 {
        frac.push('0');
    }
    Some(secs.parse::<u64>().ok()? * 1000 + frac.parse::<u64>().ok()?)
}

pub(super) fn read_log(path: &Path, from: u64) -> Vec<Logged> {
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let end = parse_ms(f.first()?)?;
            let took = parse_ms(f.get(1)?)?;
            let status: u32 = f.get(3)?.parse().ok()?;
            Some(Logged {
                start_ms: end.saturating_sub(took),
                get: *f.get(2)? == "GET",
                ok: status == 200 || status == 206,
                bytes: f.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A resume contender: the same command twice, killed (SIGKILL) at 50 % the first time.
#[derive(Debug)]
pub(super) struct ResumeContender {
    pub(super) label: String,
    pub(super) argv: Vec<String>,
    pub(super) output: PathBuf,
    /// resume-get: its checkpoint file (size reported after the kill) and JSON events.
    pub(super) checkpoint: Option<PathBuf>,
    /// A wrong result is a failure for resume-get, a finding for a peer.
    pub(super) must_be_right: bool,
}

#[derive(Debug, Default, Clone)]
pub(super) struct ResumeSample {
    pub(super) killed_at: u64,
    pub(super) checkpoint_bytes: Option<u64>,
    pub(super) first_fresh_ms: Option<u64>,
    pub(super) first_resume_ms: Option<u64>,
    pub(super) started_event_ms: Option<f64>,
    pub(super) resume_wall: f64,
    pub(super) served: u64,
    pub(super) reused: Option<u64>,
    pub(super) right: bool,
}

/// Reads stdout lines as they come; remembers when the first `started` event arrived and the
/// `completed` line.
#[derive(Debug, Default)]
pub(super) struct Events {
    pub(super) started: Option<Instant>,
    pub(super) completed: Option<String>,
}

impl Bench {
    pub(super) fn resume_contenders(&self, part: u64) -> Vec<ResumeContender> {
        let url = format!("{}/logged/obj.bin", self.nginx.base);
        let rg_out = self.out_file("resume-get.bin");
        let mut cp = rg_out.clone().into_os_string();
        cp.push(".rgcp");
        vec![
            ResumeContender {
                label: format!("resume-get ({MANY_PARTS} parts of {})", bytes(part)),
                argv: args([
                    self.rg(),
                    "--json".into(),
                    "--part-size".into(),
                    size_arg(part),
                    url.clone(),
                    rg_out.display().to_string(),
                ]),
                output: rg_out,
                checkpoint: Some(PathBuf::from(cp)),
                must_be_right: true,
            },
            ResumeContender {
                label: "curl -C -".into(),
                argv: args([
                    "curl".to_string(),
                    "-sS".into(),
                    "-f".into(),
                    "-C".into(),
                    "-".into(),
                    "-o".into(),
                    self.out_file("curl.bin").display().to_string(),
                    url.clone(),
                ]),
                output: self.out_file("curl.bin"),
                checkpoint: None,
                must_be_right: false,
            },
            ResumeContender {
                label: "aria2c -c -x16 -s16".into(),
                argv: args([
                    "aria2c".to_string(),
                    "-q".into(),
                    "-c".into(),
                    "-x16".into(),
                    "-s16".into(),
                    "-k1M".into(),
                    "--auto-file-renaming=false".into(),
                    "-d".into(),
                    self.out.display().to_string(),
                    "-o".into(),
                    "aria2c.bin".into(),
                    url,
                ]),
                output: self.out_file("aria2c.bin"),
                checkpoint: None,
                must_be_right: false,
            },
        ]
    }

    /// Kills the first run once the process has written half the object, then resumes.
    pub(super) fn resume_once(&self, c: &ResumeContender) -> Result<ResumeSample, String> {
        let mut sample = ResumeSample::default();
        let mut tries = 0;
        // Run 1, killed at 50 %. A run that finishes before the kill lands is retried.
        let (log_from, t_fresh) = loop {
            tries += 1;
            self.fresh_out()?;
            let log_from = fs::metadata(&self.nginx.log).map_or(0, |m| m.len());
            let t_fresh = now_ms();
            let mut child = spawn_plain(&c.argv)?;
            let mut out = child.stdout.take();
            let drain = std::thread::spawn(move || {
                let mut sink = Vec::new();
                if let Some(o) = out.as_mut() {
                    let _ = o.read_to_end(&mut sink);
                }
            });
            let io = format!("/proc/{}/io", child.id());
            let deadline = Instant::now() + Duration::from_secs(300);
            let mut killed = false;
            while Instant::now() < deadline {
                if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                    break;
                }
                if proc_io_field(&io, "wchar").is_some_and(|w| w >= self.size / 2) {
                    let _ = child.kill();
                    killed = true;
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = drain.join();
            if killed {
                break (log_from, t_fresh);
            }
            if tries >= 5 {
                return Err(format!(
                    "{}: finished before it could be killed at 50 % ({tries} tries)",
                    c.label
                ));
            }
        };
        sample.killed_at = fs::metadata(&c.output).map_or(0, |m| m.len());
        sample.checkpoint_bytes = c
            .checkpoint
            .as_ref()
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| m.len());
        // Let nginx notice the dead connections and log them.
        std::thread::sleep(Duration::from_millis(200));

        // Run 2: the same command.
        let t_resume = now_ms();
        let t = Instant::now();
        let mut child = spawn_plain(&c.argv)?;
        let events = Arc::new(Mutex::new(Events::default()));
        let reader = {
            let events = events.clone();
            let out = child.stdout.take();
            std::thread::spawn(move || {
                let Some(out) = out else { return };
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut e = events.lock().unwrap_or_else(|p| p.into_inner());
                    if e.started.is_none() && line.contains("\"event\":\"started\"") {
                        e.started = Some(Instant::now());
                    }
                    if line.contains("\"event\":\"completed\"") {
                        e.completed = Some(line);
                    }
                }
            })
        };
        let status = wait_timeout(&mut child, Duration::from_secs(600))?;
        sample.resume_wall = t.elapsed().as_secs_f64();
        let _ = reader.join();
        if !status.success() {
            return Err(format!("{}: the resumed run failed ({status})", c.label));
        }
        {
            let e = events.lock().unwrap_or_else(|p| p.into_inner());
            sample.started_event_ms = e
                .started
                .map(|s| s.duration_since(t).as_secs_f64() * 1000.0);
            sample.reused = e
                .completed
                .as_deref()
                .and_then(|l| json_u64(l, "reused_bytes"));
        }
        sample.right = same_bytes(&self.data, &c.output).is_ok();
        if c.must_be_right && !sample.right {
            return Err(format!(
                "{}: the resumed file differs from the source",
                c.label
            ));
        }

        let log = read_log(&self.nginx.log, log_from);
        let first_get = |from: u64, to: u64| {
            log.iter()
                .filter(|l| l.get && l.start_ms >= from && l.start_ms < to)
                .map(|l| l.start_ms)
                .min()
                .map(|s| s - from)
        };
        sample.first_fresh_ms = first_get(t_fresh, t_resume);
        sample.first_resume_ms = first_get(t_resume, u64::MAX);
        sample.served = log
            .iter()
            .filter(|l| l.get && l.ok && l.start_ms >= t_fresh)
            .map(|l| l.bytes)
            .sum();
        Ok(sample)
    }

    pub(super) fn resume_cost(&self, report: &mut Report) -> Result<Section, String> {
        let part = self.size / MANY_PARTS;
        let jobs = 8u64;
        let contenders = self.resume_contenders(part);
        let mut results: Vec<Vec<ResumeSample>> = vec![Vec::new(); contenders.len()];
        let n = contenders.len();
        for round in 0..self.warmup + self.runs {
            for k in 0..n {
                let i = (round + k) % n;
                let s = self.resume_once(&contenders[i])?;
                eprintln!(
                    "bench: [6] {} {:<28} served {:>6.1} MiB  first request fresh {:?} ms, \
                     resumed {:?} ms  resume {:.3} s{}",
                    if round < self.warmup {
                        "warm-up".to_string()
                    } else {
                        format!("run {}", round - self.warmup + 1)
                    },
                    contenders[i].label,
                    s.served as f64 / MIB as f64,
                    s.first_fresh_ms,
                    s.first_resume_ms,
                    s.resume_wall,
                    if s.right { "" } else { "  WRONG BYTES" }
                );
                if round >= self.warmup {
                    results[i].push(s);
                }
            }
        }
        let med = |v: &[ResumeSample], f: &dyn Fn(&ResumeSample) -> Option<f64>| {
            let xs: Vec<f64> = v.iter().filter_map(f).collect();
            if xs.is_empty() {
                None
            } else {
                Some(median(xs))
            }
        };
        let refetch =
            |s: &ResumeSample| Some(s.served.saturating_sub(self.size) as f64 / KIB as f64);
        let first_resume = |s: &ResumeSample| s.first_resume_ms.map(|v| v as f64);
        let first_fresh = |s: &ResumeSample| s.first_fresh_ms.map(|v| v as f64);
        let fmt = |x: Option<f64>, d: usize| x.map_or("–".to_string(), |v| format!("{v:.d$}"));
        let mut table = String::from(
            "| contender | re-fetched KiB (median) | max | first request on resume, ms | on a fresh \
             start, ms | resumed run s | right bytes |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for (c, v) in contenders.iter().zip(&results) {
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {} | {} | {}/{} |",
                c.label,
                fmt(med(v, &refetch), 0),
                fmt(v.iter().filter_map(refetch).reduce(f64::max), 0),
                fmt(med(v, &first_resume), 0),
                fmt(med(v, &first_fresh), 0),
                fmt(med(v, &|s| Some(s.resume_wall)), 3),
                v.iter().filter(|s| s.right).count(),
                v.len()
            );
        }
        let rg = &results[0];
        let curl = &results[1];
        let _ = writeln!(
            table,
            "\nresume-get: checkpoint on disk at the kill {} bytes (median); `started` event \
             (checkpoint loaded, verified and re-saved) {} ms after spawn; {} bytes reused.",
            fmt(med(rg, &|s| s.checkpoint_bytes.map(|b| b as f64)), 0),
            fmt(med(rg, &|s| s.started_event_ms), 1),
            fmt(med(rg, &|s| s.reused.map(|b| b as f64)), 0),
        );
        let bound = (jobs * part) as f64 / KIB as f64;
        let worst = rg
            .iter()
            .filter_map(refetch)
            .reduce(f64::max)
            .unwrap_or(f64::NAN);
        let r_curl = med(curl, &refetch);
        report.target(
            6,
            &format!("re-fetched after kill -9 at 50 % ({MANY_PARTS} parts)"),
            &format!("≤ jobs × part size = {bound:.0} KiB"),
            format!(
                "{} KiB median, {worst:.0} KiB max (curl -C -: {} KiB)",
                fmt(med(rg, &refetch), 0),
                fmt(r_curl, 0)
            ),
            worst <= bound,
        );
        let fr = med(rg, &first_resume);
        let fc = med(curl, &first_resume);
        report.target(
            6,
            "start → first byte requested on resume",
            "≤ 50 ms",
            format!(
                "{} ms ({}× curl -C -, {} ms)",
                fmt(fr, 0),
                match (fr, fc) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.1}", a / b),
                    _ => "–".into(),
                },
                fmt(fc, 0)
            ),
            fr.is_some_and(|v| v <= 50.0),
        );
        Ok(Section {
            id: 6,
            title: "Resume cost".into(),
            setup: format!(
                "A {} object from nginx (`/logged/`, access log with each request's start in \
                 ms). Each contender runs, is killed with SIGKILL once it has written half the \
                 object (polling `/proc/PID/io`), and the same command runs again. Re-fetched = \
                 body bytes nginx served over both runs − the object's size (bytes a killed \
                 request had in flight count: they crossed the network twice). First request = \
                 the first GET nginx received after the spawn, from the harness's clock (same \
                 machine, ms).",
                bytes(self.size)
            ),
            table,
            commands: contenders
                .iter()
                .map(|c| (c.label.clone(), shell_line(&c.argv)))
                .collect(),
            notes: vec![
                "aria2c saves its control file only every 60 s (`--auto-save-interval`), so \
                 after a kill -9 it has none to resume from: it is shown with its defaults."
                    .into(),
            ],
            conditions: String::new(),
        })
    }
}
