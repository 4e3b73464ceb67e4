//! Scenario 1: raw throughput from nginx on loopback.

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 1,
    name: "raw throughput (nginx, loopback)",
    default: true,
    lab: false,
    needs: &[],
    conditions: None,
    run: Bench::raw_throughput,
};

impl Bench {
    pub(super) fn raw_throughput(&self, report: &mut Report) -> Result<Section, String> {
        let url = format!("{}/obj.bin", self.nginx.base);
        let contenders = vec![
            self.resume_get_http("resume-get", &url, &[], &self.data),
            self.curl_o(&url, &self.data),
            self.aria2c(&url, &self.data, &["--allow-overwrite=true"]),
            Contender::new(
                "curl -o /dev/null (floor)",
                args([
                    "curl",
                    "-sS",
                    "-f",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{size_download}",
                    &url,
                ]),
                None,
                Expect::Stdout(self.size.to_string()),
            ),
            Contender::new(
                "cp (floor)",
                args([
                    "cp".to_string(),
                    self.data.display().to_string(),
                    self.out_file("cp.bin").display().to_string(),
                ]),
                Some(self.out_file("cp.bin")),
                Expect::SameAs(self.data.clone()),
            ),
            {
                // What curl costs with the durability resume-get always has: the file's data
                // on disk (fsync) before it counts as downloaded.
                let dest = self.out_file("curl-sync.bin");
                let d = dest.display().to_string();
                Contender::new(
                    "curl -o, then sync FILE",
                    args([
                        "sh".to_string(),
                        "-c".into(),
                        format!("curl -sS -f -o {d} {url} && sync {d}"),
                    ]),
                    Some(dest),
                    Expect::SameAs(self.data.clone()),
                )
            },
            {
                // The floor of the durability resume-get always has, with no network at all:
                // the bytes copied from the page cache into a fresh file and synced to disk.
                let dest = self.out_file("cp-sync.bin");
                let d = dest.display().to_string();
                Contender::new(
                    "cp, then sync FILE (floor)",
                    args([
                        "sh".to_string(),
                        "-c".into(),
                        format!("cp {} {d} && sync {d}", self.data.display()),
                    ]),
                    Some(dest),
                    Expect::SameAs(self.data.clone()),
                )
            },
        ];
        let rows = self.measure(1, &contenders)?;
        let (rg, curl, aria, null) = (&rows[0], &rows[1], &rows[2], &rows[3]);
        let r_curl = rg.wall() / curl.wall();
        let r_aria = rg.wall() / aria.wall();
        let r_null = rg.wall() / null.wall();
        report.target(
            1,
            "resume-get ÷ curl -o (wall)",
            "≤ 0.40×",
            format!("{r_curl:.2}×"),
            r_curl <= 0.40,
        );
        report.target(
            1,
            "resume-get ÷ aria2c -x16 -s16 (wall)",
            "≤ 0.40×",
            format!("{r_aria:.2}×"),
            r_aria <= 0.40,
        );
        report.target(
            1,
            "resume-get ÷ curl -o /dev/null (wall)",
            "≤ 1.5×",
            format!("{r_null:.2}×"),
            r_null <= 1.5,
        );
        let s = Section {
            id: 1,
            title: "Raw throughput".into(),
            setup: format!(
                "A {} object from nginx (sendfile, loopback) into a fresh file in `$W/out` \
                 (resume-get with its defaults: `--jobs auto` from 8 connections, `--part-size \
                 auto`, {} parts here; CRC-64 and BLAKE3 of every byte, \
                 fsync before the rename, as always). The floors only receive the bytes (`curl \
                 -o /dev/null`), copy the file (`cp`), or copy it with resume-get's durability \
                 (`cp, then sync FILE`: no network, no hashing); `curl -o, then sync FILE` is \
                 curl with the same durability as resume-get (a reference, not a target).",
                bytes(self.size),
                bytes((self.size / 128).div_ceil(MIB).clamp(2, 64) * MIB)
            ),
            table: table(&rows, self.size, &[1, 2, 3, 5, 6]),
            commands: commands(&rows),
            notes: vec![],
            conditions: String::new(),
        };
        report.raw_rows = rows;
        Ok(s)
    }
}
