//! Contenders the scenarios share: resume-get, curl and aria2c over HTTP.

use super::*;

impl Bench {
    pub(super) fn rg(&self) -> String {
        self.resume_get.display().to_string()
    }

    pub(super) fn out_file(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    pub(super) fn resume_get_http(
        &self,
        label: &str,
        url: &str,
        extra: &[&str],
        source: &Path,
    ) -> Contender {
        let dest = self.out_file("resume-get.bin");
        let mut argv = args([self.rg().as_str(), "-q"]);
        argv.extend(args(extra));
        argv.extend(args([url.to_string(), dest.display().to_string()]));
        Contender::new(
            label,
            argv,
            Some(dest),
            Expect::SameAs(source.to_path_buf()),
        )
    }

    pub(super) fn curl_o(&self, url: &str, source: &Path) -> Contender {
        let dest = self.out_file("curl.bin");
        Contender::new(
            "curl -o",
            args(["curl", "-sS", "-f", "-o"])
                .into_iter()
                .chain(args([dest.display().to_string(), url.to_string()]))
                .collect(),
            Some(dest),
            Expect::SameAs(source.to_path_buf()),
        )
    }

    /// `-k 1M`: aria2c refuses to split below 20 MiB by default, which would leave it fewer
    /// than 16 connections on the 64–256 MiB objects; this gives it the 16 it is asked for.
    pub(super) fn aria2c(&self, url: &str, source: &Path, extra: &[&str]) -> Contender {
        let dest = self.out_file("aria2c.bin");
        let mut argv = args([
            "aria2c",
            "-q",
            "-x16",
            "-s16",
            "-k1M",
            "--auto-file-renaming=false",
        ]);
        argv.extend(args(extra));
        argv.extend(args([
            "-d".to_string(),
            self.out.display().to_string(),
            "-o".to_string(),
            "aria2c.bin".to_string(),
            url.to_string(),
        ]));
        Contender::new(
            "aria2c -x16 -s16",
            argv,
            Some(dest),
            Expect::SameAs(source.to_path_buf()),
        )
    }
}
