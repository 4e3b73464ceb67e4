//! Scenario 11: batch jobs (`resume-get -r`, issue 12), scaled down; scenario 12
//! (`scenario_batch_full.rs`) runs the same code at the issue's sizes.
//!
//! Two sets of objects: many small ones, and a mixed set (many 1 MiB objects and two large
//! ones). Both are served by `s3s-fs` (an S3 server on a directory, from crates.io, installed
//! under `target/bench-tools` with `cargo install` as CI would) and the small set (and, when
//! disk allows, the mixed one) by `oss-emulator`. Contenders, side by side in one run:
//! `resume-get -r` from each server, `rclone copy` and `aws s3 cp --recursive` from `s3s-fs`,
//! and the server's own ceiling (`curl --parallel`, V4-signed, bodies to /dev/null). Every
//! output tree is compared file by file with the objects, and must hold nothing else (no
//! `.rgpart`, no `.rgcp`; resume-get's journal directory `.resume-get/` aside). Then a rerun
//! of a completed job: timed, and the emulator's request log counts the object requests it
//! made (the target is none).

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 11,
    name: "batch jobs (-r) vs rclone and aws s3 cp, scaled down (s3s-fs, oss-emulator)",
    default: false,
    needs: &[],
    lab: false,
    conditions: None,
    run: batch_scaled,
};

fn batch_scaled(b: &Bench, report: &mut Report) -> Result<Section, String> {
    let sets = if b.quick {
        Sets {
            id: 11,
            small_n: 300,
            small_size: 64 * KIB,
            mixed_n: 30,
            mixed_size: MIB,
            large_n: 2,
            large_size: 16 * MIB,
            emulator_mixed: true,
        }
    } else {
        Sets {
            id: 11,
            small_n: 2_000,
            small_size: 64 * KIB,
            mixed_n: 200,
            mixed_size: MIB,
            large_n: 2,
            large_size: 128 * MIB,
            emulator_mixed: true,
        }
    };
    b.batch(report, &sets)
}

/// Pinned like the Python SDKs: the AWS CLI v1 from PyPI.
const AWSCLI: &str = "awscli==1.46.3";
/// The newest s3s-fs that builds with the workspace's Rust (0.15+ need a newer rustc).
const S3S_FS_VERSION: &str = "0.14.1";
const S3_AK: &str = "bench-s3-ak";
const S3_SK: &str = "bench-s3-secret-9d2e";
const S3_REGION: &str = "us-east-1";
/// Concurrency given to every contender: parts (resume-get `-j`; it keeps up to 2 × jobs
/// objects in flight), transfers (rclone), requests (aws, curl).
pub(super) const CONCURRENCY: usize = 32;

/// The objects of one batch scenario.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sets {
    pub(super) id: u32,
    pub(super) small_n: usize,
    pub(super) small_size: u64,
    pub(super) mixed_n: usize,
    pub(super) mixed_size: u64,
    pub(super) large_n: usize,
    pub(super) large_size: u64,
    /// Whether the emulator serves the mixed set too (a second copy of it on disk).
    pub(super) emulator_mixed: bool,
}

impl Sets {
    fn keys(&self, set: &str) -> Vec<(String, u64)> {
        match set {
            "small" => (0..self.small_n)
                .map(|i| {
                    (
                        format!("small/d{:02}/f{i:05}.bin", i / 1000),
                        self.small_size,
                    )
                })
                .collect(),
            _ => (0..self.mixed_n)
                .map(|i| (format!("mixed/m{i:04}.bin"), self.mixed_size))
                .chain((0..self.large_n).map(|i| (format!("mixed/large-{i}.bin"), self.large_size)))
                .collect(),
        }
    }
}

/// The servers and peers of a batch scenario.
struct Lab {
    dir: PathBuf,
    /// s3s-fs's root: `ROOT/bench/KEY` are the objects' bytes (the reference outputs are
    /// compared with).
    s3_root: PathBuf,
    s3_endpoint: String,
    _s3: ChildGuard,
    oss_endpoint: String,
    oss_log: PathBuf,
    _oss: ChildGuard,
    aws: PathBuf,
    aws_config: PathBuf,
    rclone_config: PathBuf,
}

fn s3s_fs_bin(b: &Bench) -> Result<PathBuf, String> {
    let root = b.root.join("target").join("bench-tools");
    let bin = root.join("bin").join("s3s-fs");
    if bin.is_file() {
        return Ok(bin);
    }
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(["install", "s3s-fs", "--version", S3S_FS_VERSION])
        .args(["--features", "binary", "--locked", "--root"])
        .arg(&root);
    run_ok("cargo install s3s-fs", c)?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} is missing after cargo install", bin.display()))
    }
}

fn ensure_rclone() -> Result<(), String> {
    if find_program("rclone").is_some() {
        return Ok(());
    }
    eprintln!("bench: installing rclone with apt-get");
    let apt = |a: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(a).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run_ok("apt-get update", apt(&["update", "-qq"]))?;
    run_ok(
        "apt-get install rclone",
        apt(&["install", "-y", "-qq", "--no-install-recommends", "rclone"]),
    )?;
    find_program("rclone")
        .map(|_| ())
        .ok_or_else(|| "rclone is still missing after apt-get install rclone".into())
}

/// Writes a small object: seeded xorshift bytes, different for every `seed`.
fn write_small(path: &Path, size: u64, seed: u64) -> Result<(), String> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    let mut buf = vec![0u8; size as usize];
    for c in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    fs::write(path, &buf).map_err(|e| format!("write {}: {e}", path.display()))
}

fn poll_port(addr: &str, what: &str) -> Result<(), String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} did not listen on {addr} within 30 s"))
}

impl Lab {
    fn start(b: &Bench, sets: &Sets) -> Result<Self, String> {
        ensure_rclone()?;
        let python = std::panic::catch_unwind(|| python_with(&[AWSCLI]))
            .map_err(|_| "cannot install the AWS CLI in the bench venv (see above)".to_string())?;
        let aws = python.with_file_name("aws");
        let s3s = s3s_fs_bin(b)?;
        let dir = b.work.join(format!("batch{}", sets.id));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("clean {}: {e}", dir.display()))?;
        }
        let src = dir.join("src");
        let s3_root = dir.join("s3");
        fs::create_dir_all(s3_root.join(OSS_BUCKET)).map_err(|e| e.to_string())?;
        let t = Instant::now();
        for (i, (key, size)) in sets
            .keys("small")
            .into_iter()
            .chain(sets.keys("mixed"))
            .enumerate()
        {
            let p = src.join(&key);
            if size >= 8 * MIB {
                fs::create_dir_all(p.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
                generate(&p, size, 100 + i as u64)?;
            } else {
                write_small(&p, size, 100 + i as u64)?;
            }
        }
        eprintln!("bench: [{}] objects generated in {:.1?}", sets.id, t.elapsed());

        // Configurations: the AWS CLI's (concurrency; uploads in one piece so that ETags are
        // plain MD5s, which rclone checks), rclone's (an S3 remote on the local server).
        let s3_port = test_support::free_port();
        let s3_endpoint = format!("http://127.0.0.1:{s3_port}");
        let aws_config = dir.join("aws.config");
        fs::write(
            &aws_config,
            format!(
                "[default]\nregion = {S3_REGION}\ns3 =\n  max_concurrent_requests = \
                 {CONCURRENCY}\n  max_queue_size = 10000\n  multipart_threshold = 4GB\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let rclone_config = dir.join("rclone.conf");
        fs::write(
            &rclone_config,
            format!(
                "[s3s]\ntype = s3\nprovider = Other\naccess_key_id = {S3_AK}\n\
                 secret_access_key = {S3_SK}\nendpoint = {s3_endpoint}\nregion = {S3_REGION}\n\
                 force_path_style = true\n"
            ),
        )
        .map_err(|e| e.to_string())?;

        // s3s-fs, loaded through its own PUT (it stores each object's MD5 then; without it,
        // every GET, ranged or not, would hash the whole file).
        let s3 = ChildGuard::spawn(
            base_command(&s3s.display().to_string())
                .args(["--host", "127.0.0.1", "--port", &s3_port.to_string()])
                .args(["--access-key", S3_AK, "--secret-key", S3_SK])
                .arg(&s3_root)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "s3s-fs",
        );
        poll_port(&format!("127.0.0.1:{s3_port}"), "s3s-fs")?;
        let t = Instant::now();
        let mut up = base_command(&aws.display().to_string());
        up.args(["s3", "cp", "--recursive", "--only-show-errors", "--no-progress"])
            .arg(&src)
            .arg(format!("s3://{OSS_BUCKET}/"))
            .args(["--endpoint-url", &s3_endpoint]);
        aws_env(&mut up, &aws_config);
        run_ok("upload to s3s-fs", up)?;
        eprintln!("bench: [{}] s3s-fs loaded in {:.1?}", sets.id, t.elapsed());

        // oss-emulator: loaded through its own PUT (signatures off), then restarted with them
        // checked and every request logged.
        let emulator = b
            .resume_get
            .with_file_name("oss-emulator")
            .display()
            .to_string();
        let oss_root = dir.join("oss");
        {
            let (_guard, addr) = ChildGuard::spawn_reading_first_line(
                base_command(&emulator)
                    .arg("--root")
                    .arg(&oss_root)
                    .args(["--bucket", OSS_BUCKET, "--no-verify", "--log-level", "warn"]),
                "oss-emulator (upload)",
                Duration::from_secs(20),
            );
            let mut cfg = String::new();
            let sets_up: &[&str] = if sets.emulator_mixed {
                &["small", "mixed"]
            } else {
                &["small"]
            };
            for set in sets_up {
                for (key, _) in sets.keys(set) {
                    let _ = writeln!(
                        cfg,
                        "upload-file = \"{}\"\nurl = \"http://{addr}/{OSS_BUCKET}/{key}\"\n\
                         output = /dev/null",
                        src.join(&key).display()
                    );
                }
            }
            let cfg_path = dir.join("oss-upload.curl");
            fs::write(&cfg_path, cfg).map_err(|e| e.to_string())?;
            let mut c = base_command("curl");
            c.args(["-sS", "-f", "--parallel", "--parallel-max", "16"])
                .args(["-H", "Authorization: OSS bench:x", "-K"])
                .arg(&cfg_path);
            run_ok("upload to oss-emulator", c)?;
        }
        let oss_log = dir.join("oss-requests.log");
        let (oss, addr) = ChildGuard::spawn_reading_first_line(
            base_command(&emulator)
                .arg("--root")
                .arg(&oss_root)
                .args(["--access-key", &format!("{OSS_AK}:{OSS_SK}")])
                .args(["--region", OSS_REGION, "--log-level", "info"])
                .stderr(File::create(&oss_log).map_err(|e| e.to_string())?),
            "oss-emulator",
            Duration::from_secs(20),
        );
        // The objects now live in both servers: s3s-fs's copy is the reference.
        fs::remove_dir_all(&src).map_err(|e| format!("clean {}: {e}", src.display()))?;
        let _ = Command::new("sync").status();
        Ok(Self {
            dir,
            s3_root,
            s3_endpoint,
            _s3: s3,
            oss_endpoint: format!("http://{addr}"),
            oss_log,
            _oss: oss,
            aws,
            aws_config,
            rclone_config,
        })
    }

    /// Object requests (a GET or HEAD naming a key) in the emulator's log so far.
    fn oss_object_requests(&self) -> usize {
        let log = fs::read_to_string(&self.oss_log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("request"))
            .filter_map(|l| {
                let at = l.find(" key=")? + 5;
                let v = l[at..].split_whitespace().next().unwrap_or("");
                Some(!v.is_empty() && v != "\"\"")
            })
            .filter(|&named| named)
            .count()
    }
}

fn aws_env(c: &mut Command, config: &Path) {
    c.env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ACCESS_KEY_ID", S3_AK)
        .env("AWS_SECRET_ACCESS_KEY", S3_SK)
        .env("AWS_DEFAULT_REGION", S3_REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Every file below `dir` (relative paths), journal directory `.resume-get/` excluded.
fn tree(dir: &Path) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(|e| format!("read {}: {e}", d.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            if e.file_type().map_err(|e| e.to_string())?.is_dir() {
                if rel != ".resume-get" {
                    stack.push(p);
                }
            } else {
                out.insert(rel);
            }
        }
    }
    Ok(out)
}

impl Bench {
    pub(super) fn batch(&self, report: &mut Report, sets: &Sets) -> Result<Section, String> {
        let t = Instant::now();
        let lab = Lab::start(self, sets)?;
        eprintln!("bench: [{}] batch lab ready in {:.1?}", sets.id, t.elapsed());
        let dest = self.out.join("tree");
        let mut tables = String::new();
        let mut all_rows = Vec::new();
        for set in ["small", "mixed"] {
            let keys = sets.keys(set);
            let total: u64 = keys.iter().map(|(_, s)| s).sum();
            let contenders = self.batch_contenders(&lab, set, &keys, &dest, sets);
            let rows = self.measure_tree(sets.id, &contenders, &lab, &keys)?;
            let find = |prefix: &str| rows.iter().position(|r| r.contender.label.starts_with(prefix));
            let (rg, rclone, aws) = (
                find("resume-get -r (s3").ok_or("no resume-get row")?,
                find("rclone").ok_or("no rclone row")?,
                find("aws").ok_or("no aws row")?,
            );
            let n = keys.len() as f64;
            let ops = |i: usize| n / rows[i].wall();
            let title = if set == "small" {
                format!("{} × {}", sets.small_n, bytes(sets.small_size))
            } else {
                format!(
                    "{} × {} + {} × {}",
                    sets.mixed_n,
                    bytes(sets.mixed_size),
                    sets.large_n,
                    bytes(sets.large_size)
                )
            };
            if set == "small" {
                let (r1, r2) = (ops(rg) / ops(rclone), ops(rg) / ops(aws));
                report.target(
                    sets.id,
                    &format!("{title}: resume-get objects/s ÷ rclone's, ÷ aws's (s3s-fs)"),
                    "≥ 2×, ≥ 4×",
                    format!("{r1:.2}×, {r2:.2}×"),
                    r1 >= 2.0 && r2 >= 4.0,
                );
            } else {
                let best = rows[rclone].wall().min(rows[aws].wall());
                let r = rows[rg].wall() / best;
                report.target(
                    sets.id,
                    &format!("{title}: resume-get wall ÷ the best peer's (s3s-fs)"),
                    "≤ 1.10×",
                    format!("{r:.2}×"),
                    r <= 1.10,
                );
            }
            let _ = writeln!(
                tables,
                "**{title}** ({}):\n\n{}",
                bytes(total),
                batch_table(&rows, keys.len(), total, rclone, aws)
            );
            all_rows.extend(rows);
        }
        let rerun = self.batch_rerun(&lab, sets, &dest)?;
        tables.push_str(&rerun.0);
        report.target(
            sets.id,
            &format!("rerun of a completed {}-object job", sets.small_n),
            "0 object requests, < 1 s",
            rerun.1.clone(),
            rerun.2,
        );
        let section = Section {
            id: sets.id,
            title: format!(
                "Batch jobs (`-r`){}",
                if sets.id == 11 { ", scaled down" } else { "" }
            ),
            setup: format!(
                "`s3s-fs` {S3S_FS_VERSION} (crates.io; objects loaded through its PUT) and \
                 `oss-emulator` (V4 signatures checked, every request logged), both on \
                 loopback; output trees compared file by file with the objects. Concurrency \
                 {CONCURRENCY} for everyone (resume-get `-j {CONCURRENCY}`, rclone \
                 `--transfers {CONCURRENCY} --checkers {CONCURRENCY}`, aws \
                 `max_concurrent_requests = {CONCURRENCY}`, curl `--parallel-max \
                 {CONCURRENCY}`). rclone copies the bucket's root with `--include '/SET/**'` \
                 and `--s3-list-version 2 --s3-no-head --s3-no-check-bucket --no-check-dest`: \
                 s3s-fs answers 500 to its HEAD of a prefix (a directory on its disk; rclone \
                 retries it for 80-100 s) and to the recursive listing of `--fast-list`. The \
                 curl row is the server's \
                 ceiling: it writes nothing and checks nothing.{}",
                if sets.emulator_mixed {
                    ""
                } else {
                    " The emulator serves the small set only (a second copy of the mixed set \
                     does not fit the disk)."
                }
            ),
            table: tables,
            commands: commands(&all_rows),
            notes: vec![],
            conditions: String::new(),
        };
        let _ = fs::remove_dir_all(&lab.dir);
        Ok(section)
    }

    fn batch_contenders(
        &self,
        lab: &Lab,
        set: &str,
        keys: &[(String, u64)],
        dest: &Path,
        sets: &Sets,
    ) -> Vec<Contender> {
        let d = dest.display().to_string();
        let j = CONCURRENCY.to_string();
        let none = || Expect::Stdout(String::new());
        // `resume-get -q -r -j N URL DEST --endpoint E --region R`, quiet, into `dest`.
        let resume_get = |label: &str, url: String, endpoint: &str, region: &str| {
            Contender::new(
                label,
                args([
                    self.rg().as_str(),
                    "-q",
                    "-r",
                    "-j",
                    &j,
                    &url,
                    &d,
                    "--endpoint",
                    endpoint,
                    "--region",
                    region,
                ]),
                Some(dest.to_path_buf()),
                none(),
            )
        };
        let mut v = vec![
            resume_get(
                "resume-get -r (s3://, s3s-fs)",
                format!("s3://{OSS_BUCKET}/{set}/"),
                &lab.s3_endpoint,
                S3_REGION,
            )
            .env("AWS_ACCESS_KEY_ID", S3_AK)
            .env("AWS_SECRET_ACCESS_KEY", S3_SK)
            .env("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        if set == "small" || sets.emulator_mixed {
            v.push(
                resume_get(
                    "resume-get -r (oss://, emulator)",
                    format!("oss://{OSS_BUCKET}/{set}/"),
                    &lab.oss_endpoint,
                    OSS_REGION,
                )
                .env("OSS_ACCESS_KEY_ID", OSS_AK)
                .env("OSS_ACCESS_KEY_SECRET", OSS_SK),
            );
        }
        // rclone at its best against s3s-fs: the bucket's root with a filter, because rclone's
        // HEAD of a prefix (does it name a file?) gets 500 from s3s-fs, whose prefix is a
        // directory on its disk, and rclone retries it for 80-100 s before listing
        // (`--s3-no-head` does not skip it); not `--fast-list`, whose recursive listing s3s-fs
        // answers with 500 (nothing copied). No look at the empty destination, no bucket
        // check. Its files land below DEST/SET/.
        v.push(
            Contender::new(
                &format!("rclone copy --transfers {CONCURRENCY}"),
                args([
                    "rclone",
                    "copy",
                    "-q",
                    "--config",
                    &lab.rclone_config.display().to_string(),
                    "--transfers",
                    &j,
                    "--checkers",
                    &j,
                    "--s3-list-version",
                    "2",
                    "--s3-no-head",
                    "--s3-no-check-bucket",
                    "--no-check-dest",
                    "--include",
                    &format!("/{set}/**"),
                    &format!("s3s:{OSS_BUCKET}"),
                    &d,
                ]),
                Some(dest.join(set)),
                none(),
            )
            // The AWS SDK in rclone refuses a CA bundle on a plain-HTTP transport; empty is unset.
            .env("AWS_CA_BUNDLE", ""),
        );
        let mut aws = Contender::new(
            "aws s3 cp --recursive",
            args([
                lab.aws.display().to_string().as_str(),
                "s3",
                "cp",
                "--recursive",
                "--only-show-errors",
                "--no-progress",
                &format!("s3://{OSS_BUCKET}/{set}/"),
                &d,
                "--endpoint-url",
                &lab.s3_endpoint,
            ]),
            Some(dest.to_path_buf()),
            none(),
        )
        .env("AWS_CONFIG_FILE", &lab.aws_config.display().to_string())
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ACCESS_KEY_ID", S3_AK)
        .env("AWS_SECRET_ACCESS_KEY", S3_SK)
        .env("AWS_EC2_METADATA_DISABLED", "true");
        aws.env.push(("AWS_DEFAULT_REGION".into(), S3_REGION.into()));
        v.push(aws);
        // The server's ceiling: V4-signed parallel GETs, bodies thrown away.
        let cfg = lab.dir.join(format!("ceiling-{set}.curl"));
        // The credentials go in the config file, not on the command line the report prints.
        let mut text = format!("user = \"{S3_AK}:{S3_SK}\"\n");
        for (key, _) in keys {
            let _ = writeln!(
                text,
                "url = \"{}/{OSS_BUCKET}/{key}\"\noutput = /dev/null",
                lab.s3_endpoint
            );
        }
        if fs::write(&cfg, text).is_ok() {
            v.push(Contender::new(
                &format!("ceiling: curl --parallel-max {CONCURRENCY} (no files)"),
                args([
                    "curl",
                    "-sS",
                    "-f",
                    "--parallel",
                    "--parallel-max",
                    &j,
                    "--aws-sigv4",
                    &format!("aws:amz:{S3_REGION}:s3"),
                    "-H",
                    "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                    "-K",
                    &cfg.display().to_string(),
                ]),
                None,
                none(),
            ));
        }
        v
    }

    /// Compares the tree at `dest` with the objects (s3s-fs's copies).
    fn check_tree(&self, lab: &Lab, keys: &[(String, u64)], dest: &Path) -> Result<(), String> {
        let got = tree(dest)?;
        let want: BTreeSet<String> = keys
            .iter()
            .map(|(k, _)| k.split_once('/').map_or(k.as_str(), |(_, r)| r).to_string())
            .collect();
        if got != want {
            let extra: Vec<_> = got.difference(&want).take(5).collect();
            let missing: Vec<_> = want.difference(&got).take(5).collect();
            return Err(format!(
                "{}: output tree differs: extra {extra:?}, missing {missing:?}",
                dest.display()
            ));
        }
        for (k, _) in keys {
            let rel = k.split_once('/').map_or(k.as_str(), |(_, r)| r);
            same_bytes(&lab.s3_root.join(OSS_BUCKET).join(k), &dest.join(rel))?;
        }
        Ok(())
    }

    /// [`Bench::measure`] with each output tree (below the contender's `output`) checked after
    /// its run, and the objects per second of each run in the progress line.
    fn measure_tree(
        &self,
        id: u32,
        contenders: &[Contender],
        lab: &Lab,
        keys: &[(String, u64)],
    ) -> Result<Vec<Row>, String> {
        self.measure_checked(id, contenders, |c, s| {
            if let Some(root) = &c.output {
                self.check_tree(lab, keys, root)
                    .map_err(|e| format!("{}: {e}", c.label))?;
            }
            Ok(format!("  {:>7.0} obj/s", keys.len() as f64 / s.wall))
        })
    }

    /// A completed job of the small set (from the emulator, then from s3s-fs), run again:
    /// (table, measured, met).
    fn batch_rerun(
        &self,
        lab: &Lab,
        sets: &Sets,
        dest: &Path,
    ) -> Result<(String, String, bool), String> {
        let keys = sets.keys("small");
        let contenders = self.batch_contenders(lab, "small", &keys, dest, sets);
        let mut rows = Vec::new();
        let mut requests = Vec::new();
        for c in contenders
            .iter()
            .filter(|c| c.label.starts_with("resume-get"))
        {
            self.run_once(c)?;
            self.check_tree(lab, &keys, dest)?;
            let mut row = Row {
                contender: c.clone(),
                samples: Vec::new(),
            };
            for _ in 0..self.runs {
                let before = lab.oss_object_requests();
                row.samples.push(self.time_in_place(c)?);
                requests.push(lab.oss_object_requests() - before);
                self.check_tree(lab, &keys, dest)?;
            }
            rows.push(row);
        }
        let oss = rows
            .iter()
            .find(|r| r.contender.label.contains("oss://"))
            .ok_or("no oss rerun row")?;
        let worst = oss.max();
        let asked = requests.iter().copied().max().unwrap_or(0);
        let mut t = format!(
            "**Rerun of a completed {}-object job** ({} rounds each; object requests counted in \
             the emulator's log: {requests:?}):\n\n\
             | contender | median s | min–max s | CPU s | peak RSS MiB |\n|---|---:|---:|---:|---:|\n",
            sets.small_n, self.runs
        );
        for r in &rows {
            let _ = writeln!(
                t,
                "| {} (rerun) | {:.3} | {:.3}–{:.3} | {:.2} | {:.1} |",
                r.contender.label,
                r.wall(),
                r.min(),
                r.max(),
                r.cpu(),
                r.rss_mib()
            );
        }
        Ok((
            t,
            format!("{asked} object requests; {worst:.3} s (slowest of the emulator's reruns)"),
            asked == 0 && worst < 1.0,
        ))
    }

    /// Runs `c` under /usr/bin/time without emptying the output directory first.
    fn time_in_place(&self, c: &Contender) -> Result<Sample, String> {
        let time_file = self.work.join("time.txt");
        let mut cmd = base_command("/usr/bin/time");
        cmd.args(["-f", "@@time %e %U %S %M", "-o"])
            .arg(&time_file)
            .args(&c.argv)
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t = Instant::now();
        let status = cmd
            .status()
            .map_err(|e| format!("{}: cannot start: {e}", c.label))?;
        let wall = t.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!("{} (rerun) failed ({status})", c.label));
        }
        let (user, sys, rss_kib) = parse_time(&time_file)?;
        Ok(Sample {
            wall,
            user,
            sys,
            rss_kib,
            written: None,
        })
    }
}

/// Objects/s, MiB/s, CPU and memory, with ratios of objects/s to rclone's and aws's.
fn batch_table(rows: &[Row], n: usize, total: u64, rclone: usize, aws: usize) -> String {
    let mut t = String::from(
        "| contender | median s | min–max s | objects/s | MiB/s | ÷ rclone (objects/s) | ÷ aws \
         (objects/s) | CPU s (user + sys) | peak RSS MiB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {:.3} | {:.3}–{:.3} | {:.0} | {:.0} | {:.2}× | {:.2}× | {:.2} ({:.2} + {:.2}) \
             | {:.1} |",
            r.contender.label,
            r.wall(),
            r.min(),
            r.max(),
            n as f64 / r.wall(),
            mib_s(total, r.wall()),
            rows[rclone].wall() / r.wall(),
            rows[aws].wall() / r.wall(),
            r.cpu(),
            r.user(),
            r.sys(),
            r.rss_mib()
        );
    }
    t
}
