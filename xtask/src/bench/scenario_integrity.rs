//! Scenario 20: what checking a download costs (issue 13): the same download from nginx with
//! nothing to check, with one more CRC (computed per part, combined), and with MD5 or SHA-256
//! (which do not combine: hashed in object order, streamed while the parts complete, or in one
//! read of the finished file with the hidden `--digests-at-end`).

use super::*;

pub(super) const SCENARIO: Scenario = Scenario {
    id: 20,
    name: "integrity checks: CPU per GiB (CRC, MD5, SHA-256; streamed vs at the end)",
    default: true,
    lab: false,
    needs: &[],
    conditions: None,
    run: Bench::integrity,
};

/// The digests of the source file, as `--checksum` takes them (lower-case hex).
struct Digests {
    crc32: String,
    md5: String,
    sha256: String,
}

impl Bench {
    /// CRC-32 (zlib's), MD5 and SHA-256 of the source, from Python's standard library: an
    /// implementation independent of the one measured.
    fn source_digests(&self) -> Result<Digests, String> {
        let script = "import hashlib, sys, zlib\n\
            crc, md5, sha = 0, hashlib.md5(), hashlib.sha256()\n\
            with open(sys.argv[1], 'rb') as f:\n\
            \x20   for block in iter(lambda: f.read(1 << 20), b''):\n\
            \x20       crc = zlib.crc32(block, crc); md5.update(block); sha.update(block)\n\
            print(f'{crc:08x} {md5.hexdigest()} {sha.hexdigest()}')\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&self.data)
            .output()
            .map_err(|e| format!("python3 (digests of the source): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "python3 (digests of the source): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(str::to_owned);
        match (it.next(), it.next(), it.next()) {
            (Some(crc32), Some(md5), Some(sha256)) => Ok(Digests { crc32, md5, sha256 }),
            _ => Err(format!("python3 (digests of the source): {text:?}")),
        }
    }

    fn checked(&self, label: &str, file: &str, url: &str, extra: &[String]) -> Contender {
        let dest = self.out_file(file);
        let mut argv = args([self.rg().as_str(), "-q"]);
        argv.extend(extra.iter().cloned());
        argv.extend(args([url.to_string(), dest.display().to_string()]));
        Contender::new(label, argv, Some(dest), Expect::SameAs(self.data.clone()))
    }

    pub(super) fn integrity(&self, report: &mut Report) -> Result<Section, String> {
        let url = format!("{}/obj.bin", self.nginx.base);
        let d = self.source_digests()?;
        let sum = |alg: &str, hex: &str| vec!["--checksum".to_string(), format!("{alg}={hex}")];
        let at_end = |mut v: Vec<String>| {
            v.push("--digests-at-end".into());
            v
        };
        let contenders = vec![
            self.checked("nothing to check", "plain.bin", &url, &[]),
            self.checked("+ CRC-32", "crc32.bin", &url, &sum("crc32", &d.crc32)),
            self.checked("+ MD5, streamed", "md5.bin", &url, &sum("md5", &d.md5)),
            self.checked(
                "+ MD5, at the end",
                "md5-end.bin",
                &url,
                &at_end(sum("md5", &d.md5)),
            ),
            self.checked(
                "+ SHA-256, streamed",
                "sha256.bin",
                &url,
                &sum("sha256", &d.sha256),
            ),
            self.checked(
                "+ SHA-256, at the end",
                "sha256-end.bin",
                &url,
                &at_end(sum("sha256", &d.sha256)),
            ),
        ];
        let rows = self.measure(20, &contenders)?;
        let gib = self.size as f64 / GIB as f64;
        let per = |r: &Row| r.cpu() / gib;
        let base = per(&rows[0]);
        let mut extra = String::from(
            "| check | cpu-s/GiB | ÷ nothing to check (cpu) | extra cpu-s/GiB | wall s | ÷ \
             nothing to check (wall) |\n|---|---:|---:|---:|---:|---:|\n",
        );
        for r in &rows {
            let _ = writeln!(
                extra,
                "| {} | {:.2} | {:.2}× | {:+.2} | {:.3} | {:.2}× |",
                r.contender.label,
                per(r),
                per(r) / base,
                per(r) - base,
                r.wall(),
                r.wall() / rows[0].wall()
            );
        }
        let crc = per(&rows[1]) / base;
        report.target(
            20,
            "one more CRC ÷ nothing to check (cpu-s/GiB)",
            "≤ 1.10×",
            format!("{crc:.2}×"),
            crc <= 1.10,
        );
        let mut table = table(&rows, self.size, &[0]);
        table.push('\n');
        table.push_str(&extra);
        Ok(Section {
            id: 20,
            title: "Integrity checks: CPU per GiB".into(),
            setup: format!(
                "The {} object of scenario 1 from nginx (loopback, which publishes no checksum) \
                 into a fresh file, resume-get with its defaults and `--checksum ALG=HEX` (the \
                 digests computed beforehand by Python's hashlib/zlib). Every run computes \
                 BLAKE3 and CRC-64/XZ of every byte (the parts' records); a CRC given or \
                 published is one more CRC in the same pass, combined from the parts. MD5 and \
                 SHA-256 do not combine: `streamed` hashes each part on a thread of its own as \
                 soon as it and every part before it are done (read back while in the page \
                 cache), `at the end` reads the finished file once (`--digests-at-end`). The \
                 MD5 and SHA-256 rows are reported, not held to the CRC budget.",
                bytes(self.size)
            ),
            table,
            commands: commands(&rows),
            notes: vec![],
            conditions: String::new(),
        })
    }
}
