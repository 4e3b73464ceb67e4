//! Set-up: peers, build, data, servers.

use super::*;

/// Installs the peers that are missing (apt-get, like `.ci/run`); never skips one.
pub(super) fn ensure_peers() -> Result<(), String> {
    let wanted = [
        ("curl", "curl"),
        ("aria2c", "aria2"),
        ("nginx", "nginx-light"),
        ("cp", "coreutils"),
    ];
    let mut missing: Vec<&str> = wanted
        .iter()
        .filter(|(bin, _)| find_program(bin).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if !Path::new("/usr/bin/time").is_file() {
        missing.push("time");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("bench: installing missing peers with apt-get: {missing:?}");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run_ok("apt-get update", apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run_ok("apt-get install", install)?;
    for (bin, pkg) in wanted {
        if find_program(bin).is_none() {
            return Err(format!("{bin} is still missing after installing {pkg}"));
        }
    }
    Ok(())
}

/// Builds resume-get and the emulator, and with `lab` the WAN lab's delay daemon.
pub(super) fn build(root: &Path, profile: &str, lab: bool) -> Result<(), String> {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root)
        .args(["build", "--profile", profile])
        .args(["-p", "resume-cli", "-p", "oss-emulator"]);
    run_ok(&format!("cargo build --profile {profile}"), c)?;
    if lab {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(root)
            .args(["build", "--profile", profile])
            .args(["-p", "test-support", "--bin", "netlab-delayd"]);
        run_ok(
            &format!("cargo build --profile {profile} (netlab-delayd)"),
            c,
        )?;
    }
    Ok(())
}

/// Where cargo puts a profile's binaries.
pub(super) fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

pub(super) fn run_ok(what: &str, mut c: Command) -> Result<(), String> {
    eprintln!("bench: {what}: {c:?}");
    let status = c
        .status()
        .map_err(|e| format!("{what}: cannot start {c:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

pub(super) fn workspace_root() -> Result<PathBuf, String> {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        if !dir.pop() {
            return Err("cannot find the workspace root".into());
        }
    }
    Ok(dir)
}

/// Everything the scenarios share: binaries, data, servers.
#[derive(Debug)]
pub(super) struct Bench {
    pub(super) quick: bool,
    pub(super) runs: usize,
    pub(super) warmup: usize,
    /// The server's congestion controls scenario 8 runs each loss level with.
    pub(super) wan_cc: Vec<Congestion>,
    pub(super) profile: String,
    pub(super) size: u64,
    pub(super) root: PathBuf,
    pub(super) work: PathBuf,
    pub(super) out: PathBuf,
    pub(super) data: PathBuf,
    /// Source of scenario 2 (256 MiB; the 64 MiB object in quick mode).
    pub(super) cap_data: PathBuf,
    pub(super) cap_size: u64,
    pub(super) resume_get: PathBuf,
    pub(super) emulator: PathBuf,
    pub(super) python: PathBuf,
    pub(super) peer_script: PathBuf,
    pub(super) nginx: Nginx,
    pub(super) oss: OssEmulator,
}

impl Bench {
    pub(super) fn new(
        root: &Path,
        opts: &Opts,
        size: u64,
        python: PathBuf,
    ) -> Result<Self, String> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let work = target.join("bench");
        let release = target.join(profile_dir(&opts.profile));
        let resume_get = release.join("resume-get");
        let emulator = release.join("oss-emulator");
        for b in [&resume_get, &emulator] {
            if !b.is_file() {
                return Err(format!("{} is missing after the build", b.display()));
            }
        }
        if work.exists() {
            fs::remove_dir_all(&work).map_err(|e| format!("clean {}: {e}", work.display()))?;
        }
        let www = work.join("www");
        let out = work.join("out");
        for d in [&www, &out] {
            fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        let data = www.join("obj.bin");
        generate(&data, size, 1)?;
        let cap_size = if opts.quick { size } else { 256 * MIB };
        let cap_data = if cap_size == size {
            data.clone()
        } else {
            let p = www.join("cap.bin");
            generate(&p, cap_size, 2)?;
            p
        };
        let peer_script = work.join("oss_peer.py");
        fs::write(&peer_script, PEER_SCRIPT).map_err(|e| format!("write peer script: {e}"))?;
        let nginx = Nginx::start(&work, &www)?;
        let oss = OssEmulator::start(&emulator, &work, &data)?;
        if read_wchar().is_none() {
            eprintln!("bench: /proc/self/io is not readable: bytes written will not be reported");
        }
        Ok(Self {
            quick: opts.quick,
            runs: opts.runs,
            profile: opts.profile.clone(),
            warmup: usize::from(!opts.quick),
            wan_cc: opts.wan_cc.clone(),
            size,
            root: root.to_path_buf(),
            work,
            out,
            data,
            cap_data,
            cap_size,
            resume_get,
            emulator,
            python,
            peer_script,
            nginx,
            oss,
        })
    }
}

/// Writes `size` bytes that no compressor or deduplicator can shrink, the same every run:
/// a 1 MiB block from a seeded xorshift generator, with every 4 KiB page stamped with its
/// offset so that no two pages of the file are equal.
pub(super) fn generate(path: &Path, size: u64, seed: u64) -> Result<(), String> {
    let mut block = vec![0u8; MIB as usize];
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    for c in block.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    let mut f = File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(MIB) as usize;
        for page in (0..n).step_by(4096) {
            block[page..page + 8].copy_from_slice(&(off + page as u64).to_le_bytes());
        }
        f.write_all(&block[..n])
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        off += n as u64;
    }
    f.sync_all()
        .map_err(|e| format!("sync {}: {e}", path.display()))
}

/// nginx (Debian's nginx-light) on 127.0.0.1 with sendfile, serving `www` three ways:
/// `/` plain, `/capped/` with `limit_rate 25m`, `/logged/` with an access log that has each
/// request's start time in milliseconds.
#[derive(Debug)]
pub(super) struct Nginx {
    pub(super) base: String,
    pub(super) log: PathBuf,
    pub(super) _guard: ChildGuard,
}

impl Nginx {
    pub(super) fn start(work: &Path, www: &Path) -> Result<Self, String> {
        let d = work.join("nginx");
        let log = d.join("access.log");
        let http = "    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    log_format bench '$msec $request_time $request_method $status $body_bytes_sent \"$http_range\"';";
        let server = format!(
            "        root {www};
        location /capped/ {{ alias {www}/; limit_rate {CAP_NGINX}; }}
        location /logged/ {{ alias {www}/; access_log {log} bench; }}",
            www = www.display(),
            log = log.display(),
        );
        let (addr, guard) = start_nginx(&d, http, &server)?;
        Ok(Self {
            base: format!("http://{addr}"),
            log,
            _guard: guard,
        })
    }
}

/// Loads `objects` (key, source file) into an emulator root, through the emulator's own PUT
/// (so it computes the MD5 ETag and the CRC-64 as it would for any upload), with signature
/// checks off for the upload only.
pub(super) fn load_objects(
    bin: &Path,
    root: &Path,
    objects: &[(&str, &Path)],
) -> Result<(), String> {
    let (_guard, addr) = ChildGuard::spawn_reading_first_line(
        Command::new(bin).arg("--root").arg(root).args([
            "--bucket",
            OSS_BUCKET,
            "--no-verify",
            "--log-level",
            "warn",
        ]),
        "oss-emulator (upload)",
        Duration::from_secs(20),
    );
    for (key, data) in objects {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-f",
                "-o",
                "/dev/null",
                "-H",
                "Authorization: OSS bench:x",
                "-T",
            ])
            .arg(data)
            .arg(format!("http://{addr}/{OSS_BUCKET}/{key}"))
            .output()
            .map_err(|e| format!("curl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "uploading {key} to the emulator failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

/// The project's `oss-emulator` with V4 signatures checked (region cn-hangzhou), serving the
/// object from a directory.
#[derive(Debug)]
pub(super) struct OssEmulator {
    pub(super) endpoint: String,
    pub(super) _guard: ChildGuard,
}

impl OssEmulator {
    pub(super) fn start(bin: &Path, work: &Path, data: &Path) -> Result<Self, String> {
        let root = work.join("oss");
        load_objects(bin, &root, &[("obj.bin", data)])?;
        let (guard, addr) = ChildGuard::spawn_reading_first_line(
            Command::new(bin)
                .arg("--root")
                .arg(&root)
                .args(["--access-key", &format!("{OSS_AK}:{OSS_SK}")])
                .args(["--region", OSS_REGION, "--log-level", "warn"]),
            "oss-emulator",
            Duration::from_secs(20),
        );
        Ok(Self {
            endpoint: format!("http://{addr}"),
            _guard: guard,
        })
    }
}

pub(super) const PEER_SCRIPT: &str = r#""""Downloads one object with an official Alibaba Cloud Python SDK, as a user would.

usage: oss_peer.py oss2|oss-v2 ENDPOINT REGION BUCKET KEY DEST WORKDIR PART_SIZE THREADS
Credentials from OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET; V4 signatures; SDK defaults
otherwise (both verify the CRC-64 of what they download).
"""
import os
import sys

tool, endpoint, region, bucket_name, key, dest, workdir, part_size, threads = sys.argv[1:10]
part_size, threads = int(part_size), int(threads)
ak, sk = os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"]

if tool == "oss2":
    import oss2
    from oss2.credentials import StaticCredentialsProvider

    auth = oss2.ProviderAuthV4(StaticCredentialsProvider(ak, sk, ""))
    bucket = oss2.Bucket(auth, endpoint, bucket_name, region=region)
    store = oss2.ResumableDownloadStore(root=workdir)
    oss2.resumable_download(bucket, key, dest, store=store, multiget_threshold=part_size,
                            part_size=part_size, num_threads=threads)
elif tool == "oss-v2":
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk)
    cfg.region = region
    cfg.endpoint = endpoint
    client = oss.Client(cfg)
    d = client.downloader(part_size=part_size, parallel_num=threads)
    d.download_file(oss.GetObjectRequest(bucket=bucket_name, key=key), filepath=dest)
else:
    sys.exit("unknown tool " + tool)
"#;
