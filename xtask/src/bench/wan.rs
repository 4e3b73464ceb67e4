//! What the WAN scenarios share: the lab (`test_support::netlab`: client, router and server
//! namespaces, the router delaying and dropping with `netlab-delayd`, `tbf` as the
//! bottleneck), the oss-emulator in the server namespace (signed requests for resume-get and
//! the SDKs, anonymous reads for curl and aria2c), and contenders run in the client namespace.
//!
//! Needs root (network namespaces); fails, never skips, without it. Not run by default (nor
//! by `--quick`): `--only 8,9,10` or `--wan`.

use std::ffi::OsString;

use test_support::netlab::{Lab, LabConfig};

use super::*;

/// The WAN object: 256 MiB (64 MiB with `--quick`).
pub(super) const WAN_KEY: &str = "wan.bin";
/// The link of the issue: 200 Mbit/s, RTT 50 ms.
pub(super) const WAN_RATE_BITS: u64 = 200_000_000;
pub(super) const WAN_RTT_MS: u64 = 50;

/// A lab and the emulator in its server namespace. Fields drop in order: the server first.
pub(super) struct WanSite {
    _server: ChildGuard,
    pub(super) lab: Lab,
    /// `http://SERVER_IP:PORT`, as the client namespace reaches it.
    pub(super) endpoint: String,
    prefix: Vec<OsString>,
}

impl WanSite {
    /// `argv` run in the client namespace.
    pub(super) fn client(&self, argv: Vec<String>) -> Vec<String> {
        let mut all: Vec<String> = self
            .prefix
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        all.extend(argv);
        all
    }
}

impl Bench {
    pub(super) fn wan_size(&self) -> u64 {
        if self.quick { 64 * MIB } else { 256 * MIB }
    }

    /// The WAN object's source file and the emulator root holding it (made once).
    pub(super) fn wan_object(&self) -> Result<(PathBuf, PathBuf), String> {
        let data = self.work.join("www").join(WAN_KEY);
        let root = self.work.join("wan-oss");
        if !data.is_file() {
            generate(&data, self.wan_size(), 3)?;
            load_objects(&self.emulator, &root, &[(WAN_KEY, &data)])?;
        }
        Ok((data, root))
    }

    /// A lab with `config` and the emulator serving the WAN object in its server namespace,
    /// with `faults` (a fault plan in JSON) if given.
    pub(super) fn wan_site(
        &self,
        config: LabConfig,
        faults: Option<&str>,
    ) -> Result<WanSite, String> {
        let (_, root) = self.wan_object()?;
        // The delay daemon of the bench's profile, built with the binaries.
        let lab = Lab::try_start(config.delayd(self.emulator.with_file_name("netlab-delayd")))?;
        let mut cmd = lab.server().command(&self.emulator);
        cmd.arg("--root")
            .arg(&root)
            .args(["--access-key", &format!("{OSS_AK}:{OSS_SK}")])
            .args(["--region", OSS_REGION, "--anonymous"])
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn"]);
        if let Some(plan) = faults {
            let p = self.work.join("wan-faults.json");
            fs::write(&p, plan).map_err(|e| format!("write {}: {e}", p.display()))?;
            cmd.arg("--faults").arg(p);
        }
        let (server, line) = ChildGuard::spawn_reading_first_line(
            &mut cmd,
            "oss-emulator (lab server namespace)",
            Duration::from_secs(30),
        );
        let local: std::net::SocketAddr = line
            .parse()
            .map_err(|_| format!("the emulator printed {line:?}, not its address"))?;
        let addr = lab.expose(local.port());
        Ok(WanSite {
            _server: server,
            prefix: lab.client().exec_prefix(),
            endpoint: format!("http://{addr}"),
            lab,
        })
    }

    /// resume-get over `oss://` (V4) in the client namespace, with `extra` options.
    pub(super) fn wan_resume_get(&self, site: &WanSite, label: &str, extra: &[&str]) -> Contender {
        let (data, _) = self.wan_object().unwrap_or_default();
        // One file per variant, so two resume-get rows of a scenario never share a DEST.
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dest = self.out_file(&format!("{name}.bin"));
        let mut argv = args([
            self.rg(),
            "-q".into(),
            format!("oss://{OSS_BUCKET}/{WAN_KEY}"),
            dest.display().to_string(),
            "--endpoint".into(),
            site.endpoint.clone(),
            "--region".into(),
            OSS_REGION.into(),
        ]);
        argv.extend(args(extra));
        Contender::new(label, site.client(argv), Some(dest), Expect::SameAs(data))
            .env("OSS_ACCESS_KEY_ID", OSS_AK)
            .env("OSS_ACCESS_KEY_SECRET", OSS_SK)
    }

    /// curl, aria2c -x16 -s16 and oss2 over the same emulator, in the client namespace.
    pub(super) fn wan_peers(&self, site: &WanSite) -> Vec<Contender> {
        let (data, _) = self.wan_object().unwrap_or_default();
        let url = format!("{}/{OSS_BUCKET}/{WAN_KEY}", site.endpoint);
        let curl = self.curl_o(&url, &data);
        let aria = self.aria2c(&url, &data, &["--allow-overwrite=true"]);
        let dest = self.out_file("oss2.bin");
        let oss2 = Contender::new(
            "oss2.resumable_download (8 threads × 8 MiB)",
            args([
                self.python.display().to_string(),
                self.peer_script.display().to_string(),
                "oss2".into(),
                site.endpoint.clone(),
                OSS_REGION.into(),
                OSS_BUCKET.into(),
                WAN_KEY.into(),
                dest.display().to_string(),
                self.out.display().to_string(),
                (8 * MIB).to_string(),
                "8".into(),
            ]),
            Some(dest),
            Expect::SameAs(data),
        )
        .env("OSS_ACCESS_KEY_ID", OSS_AK)
        .env("OSS_ACCESS_KEY_SECRET", OSS_SK);
        [curl, aria, oss2]
            .into_iter()
            .map(|mut c| {
                c.argv = site.client(c.argv);
                c
            })
            .collect()
    }
}

/// Percent of the WAN link's rate `size` bytes in `secs` seconds are.
pub(super) fn link_percent(size: u64, secs: f64) -> f64 {
    size as f64 * 8.0 / secs / WAN_RATE_BITS as f64 * 100.0
}
