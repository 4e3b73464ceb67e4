//! Measuring one command: run under /usr/bin/time, check the output, alternate rounds.

use super::*;

/// What a finished run must have produced.
#[derive(Debug, Clone)]
pub(super) enum Expect {
    /// The output file equals this source file, byte for byte.
    SameAs(PathBuf),
    /// stdout, trimmed, is exactly this (e.g. curl's `%{size_download}`).
    Stdout(String),
}

#[derive(Debug, Clone)]
pub(super) struct Contender {
    pub(super) label: String,
    pub(super) argv: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) output: Option<PathBuf>,
    pub(super) expect: Expect,
}

impl Contender {
    pub(super) fn new(
        label: &str,
        argv: Vec<String>,
        output: Option<PathBuf>,
        expect: Expect,
    ) -> Self {
        Self {
            label: label.to_string(),
            argv,
            env: Vec::new(),
            output,
            expect,
        }
    }

    pub(super) fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sample {
    pub(super) wall: f64,
    pub(super) user: f64,
    pub(super) sys: f64,
    pub(super) rss_kib: u64,
    /// Bytes passed to write-family system calls (`wchar`), when /proc/self/io is readable.
    pub(super) written: Option<u64>,
}

pub(super) fn args<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    items
        .into_iter()
        .map(|s| s.as_ref().to_string_lossy().into_owned())
        .collect()
}

pub(super) fn base_command(program: &str) -> Command {
    let mut c = Command::new(program);
    for v in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "OSS_ACCESS_KEY_ID",
        "OSS_ACCESS_KEY_SECRET",
        "OSS_SESSION_TOKEN",
        "OSS_ENDPOINT",
        "OSS_REGION",
        "RUST_LOG",
    ] {
        c.env_remove(v);
    }
    c.env("NO_PROXY", "*").stdin(Stdio::null());
    c
}

impl Bench {
    /// Empties the output directory and flushes dirty pages, so that no run pays for the
    /// write-back of the one before it.
    pub(super) fn fresh_out(&self) -> Result<(), String> {
        if self.out.exists() {
            fs::remove_dir_all(&self.out).map_err(|e| format!("clean out/: {e}"))?;
        }
        fs::create_dir_all(&self.out).map_err(|e| format!("create out/: {e}"))?;
        let _ = Command::new("sync").status();
        Ok(())
    }

    /// Runs `c` once under /usr/bin/time and checks what it produced.
    pub(super) fn run_once(&self, c: &Contender) -> Result<Sample, String> {
        self.fresh_out()?;
        let time_file = self.work.join("time.txt");
        let stdout_file = self.work.join("stdout.txt");
        let stderr_file = self.work.join("stderr.txt");
        let mut cmd = base_command("/usr/bin/time");
        cmd.args(["-f", "@@time %e %U %S %M", "-o"])
            .arg(&time_file)
            .args(&c.argv)
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdout(File::create(&stdout_file).map_err(|e| e.to_string())?)
            .stderr(File::create(&stderr_file).map_err(|e| e.to_string())?);
        let w0 = read_wchar();
        let t = Instant::now();
        let status = cmd
            .status()
            .map_err(|e| format!("{}: cannot start {:?}: {e}", c.label, c.argv))?;
        let wall = t.elapsed().as_secs_f64();
        let written = match (w0, read_wchar()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        if !status.success() {
            return Err(format!(
                "{} failed ({status}): {}\nstderr: {}",
                c.label,
                shell_line(&c.argv),
                tail(&stderr_file)
            ));
        }
        let (user, sys, rss_kib) = parse_time(&time_file)?;
        self.check(c, &stdout_file)?;
        Ok(Sample {
            wall,
            user,
            sys,
            rss_kib,
            written,
        })
    }

    pub(super) fn check(&self, c: &Contender, stdout_file: &Path) -> Result<(), String> {
        match &c.expect {
            Expect::SameAs(source) => {
                let out = c.output.as_deref().ok_or("no output to compare")?;
                same_bytes(source, out).map_err(|e| format!("{}: {e}", c.label))
            }
            Expect::Stdout(want) => {
                let got = fs::read_to_string(stdout_file).unwrap_or_default();
                if got.trim() == want {
                    Ok(())
                } else {
                    Err(format!("{}: printed {got:?}, expected {want:?}", c.label))
                }
            }
        }
    }

    /// Rounds of every contender in alternation (the first one rotating), after the warm-up.
    pub(super) fn measure(
        &self,
        scenario: u32,
        contenders: &[Contender],
    ) -> Result<Vec<Row>, String> {
        self.measure_checked(scenario, contenders, |_, _| Ok(String::new()))
    }

    /// [`Bench::measure`] with `after` run after each run of a contender: it checks the
    /// run's output (an error ends the scenario) and returns what to add to the progress line.
    pub(super) fn measure_checked(
        &self,
        scenario: u32,
        contenders: &[Contender],
        mut after: impl FnMut(&Contender, &Sample) -> Result<String, String>,
    ) -> Result<Vec<Row>, String> {
        let mut rows: Vec<Row> = contenders
            .iter()
            .map(|c| Row {
                contender: c.clone(),
                samples: Vec::new(),
            })
            .collect();
        let n = contenders.len();
        for round in 0..self.warmup + self.runs {
            for k in 0..n {
                let i = (round + k) % n;
                let s = self.run_once(&contenders[i])?;
                let extra = after(&contenders[i], &s)?;
                let warm = round < self.warmup;
                eprintln!(
                    "bench: [{scenario}] {} {:<28} {:>7.3} s{extra}  cpu {:.2} s  rss {:>6.1} MiB",
                    if warm {
                        "warm-up".to_string()
                    } else {
                        format!("run {}", round - self.warmup + 1)
                    },
                    contenders[i].label,
                    s.wall,
                    s.user + s.sys,
                    s.rss_kib as f64 / 1024.0
                );
                if !warm {
                    rows[i].samples.push(s);
                }
            }
        }
        Ok(rows)
    }
}

pub(super) fn parse_time(path: &Path) -> Result<(f64, f64, u64), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("@@time "))
        .ok_or_else(|| format!("no /usr/bin/time line in {text:?}"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| -> Result<f64, String> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("cannot parse /usr/bin/time line {line:?}"))
    };
    Ok((num(1)?, num(2)?, num(3)? as u64))
}

/// Compares two files byte for byte (both are usually in the page cache).
pub(super) fn same_bytes(a: &Path, b: &Path) -> Result<(), String> {
    let open = |p: &Path| File::open(p).map_err(|e| format!("open {}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (la, lb) = (
        fa.metadata().map_err(|e| e.to_string())?.len(),
        fb.metadata().map_err(|e| e.to_string())?.len(),
    );
    if la != lb {
        return Err(format!("{} has {lb} bytes, the source {la}", b.display()));
    }
    let (mut ba, mut bb) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    let mut off = 0u64;
    while off < la {
        let n = (la - off).min(ba.len() as u64) as usize;
        fa.read_exact(&mut ba[..n]).map_err(|e| e.to_string())?;
        fb.read_exact(&mut bb[..n]).map_err(|e| e.to_string())?;
        if ba[..n] != bb[..n] {
            return Err(format!(
                "{} differs from the source in the 4 MiB block at byte {off}",
                b.display()
            ));
        }
        off += n as u64;
    }
    Ok(())
}

pub(super) fn tail(path: &Path) -> String {
    let t = fs::read_to_string(path).unwrap_or_default();
    let start = t.len().saturating_sub(2000);
    let start = (start..t.len())
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(t.len());
    t[start..].to_string()
}

/// `wchar` of this process: its own writes plus those of every child it has reaped.
pub(super) fn read_wchar() -> Option<u64> {
    proc_io_field("/proc/self/io", "wchar")
}

pub(super) fn proc_io_field(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

pub(super) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Share of all CPUs' time that was busy (any process) between `start` and `finish`.
#[derive(Debug)]
pub(super) struct CpuBusy(Option<(u64, u64)>);

impl CpuBusy {
    pub(super) fn read() -> Option<(u64, u64)> {
        let text = fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = text
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|s| s.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((total, idle))
    }
    pub(super) fn start() -> Self {
        Self(Self::read())
    }
    pub(super) fn finish(&self) -> f64 {
        match (self.0, Self::read()) {
            (Some((t0, i0)), Some((t1, i1))) if t1 > t0 => {
                100.0 * (1.0 - (i1 - i0) as f64 / (t1 - t0) as f64)
            }
            _ => f64::NAN,
        }
    }
}

pub(super) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(super) fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

// ------------------------------------------------------------------------------------------
// Statistics and the report.

pub(super) fn json_u64(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = line[at..]
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub(super) fn spawn_plain(argv: &[String]) -> Result<Child, String> {
    base_command(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {argv:?}: {e}"))
}

pub(super) fn wait_timeout(child: &mut Child, limit: Duration) -> Result<ExitStatus, String> {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(s);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no exit within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
